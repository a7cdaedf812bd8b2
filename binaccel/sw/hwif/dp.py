"""Plain layouts of the pipelined datapath's configuration words (:mod:`binaccel.hw.dp`)."""

from __future__ import annotations

import enum

from .layouts import Array, Bits, Enum, Struct

__all__ = ["WinMode", "SLOT", "window_cfg_layout", "table_entry_layout"]

#: Bits of a feature-map slot: every feature-map word holds 16 channels of one pixel (one bit plane).
SLOT = 16


class WinMode(enum.IntEnum):
    """How the window generator places a tile's ``cols`` output positions.

    LINEAR: ``cols`` consecutive positions of one output row; QUAD: a 2x2 pooling quad (column
    ``c`` at ``(c // 2, c % 2)``); FC: one position, the reduction split over the columns."""
    LINEAR = 0
    QUAD = 1
    FC = 2


def window_cfg_layout(*, cols: int, aw: int, cw: int, count_w: int, steps_w: int, tbl_aw: int,
                      w_aw: int) -> Struct:
    """Per-layer configuration of the window generator, every field pre-decoded by the compiler.

    ``aw``: feature-map address width (16-bit slots); ``cw``: signed coordinate width;
    ``count_w``: tile and group counters; ``steps_w``: steps per bit plane; ``tbl_aw``,
    ``w_aw``: offset-table and weight address widths."""
    return Struct({
        "mode": Enum(WinMode, 2),
        "binary": 1,                     # binary activations: invalid taps are masked and counted out
        "planes_last": 3,                # bit planes - 1 (the segment runs them MSB first)
        "plane_size": aw,                # addresses from one bit plane of the input map to the next
        "addr0": aw,                     # address of the first tile's origin pixel, top plane
        "iy0": Bits(cw, signed=True),    # input coordinates of the first tile's origin (-padding)
        "ix0": Bits(cw, signed=True),
        "hin": cw, "win": cw,            # input map size (taps outside are padding)
        "dx_addr": aw, "dy_addr": aw,    # address step to the next tile in a row / to the next tile row
        "dx_pix": cw, "dy_pix": cw,      # the same in input pixels
        "last_tx": count_w, "last_ty": count_w, "last_gt": count_w,
        "last_cols": cols.bit_length(),  # LINEAR: columns in use in a row's last tile
        "last_step": steps_w,            # steps per bit plane - 1
        "spacing": 5,                    # cycles between segment ends (>= cols, and >= the writes of a tile)
        "tbl_base": tbl_aw,              # the layer's first offset-table entry
        "w_base": w_aw, "w_stride": w_aw,  # weights of group tile g start at w_base + g * w_stride
        "col_off": Array(aw, cols),      # per column: address of its position's origin from the tile's
        "col_dy": Array(cw, cols),       # ... and its input coordinates from the tile's
        "col_dx": Array(cw, cols),
        "col_lim": Array(steps_w + 2, cols),  # per column: slots (2*step + s) below this are in range
    })


def table_entry_layout(*, aw: int, kb: int) -> Array:
    """One offset-table entry: the two slots of a step, each ``off`` (address from the position's
    origin), ``ky``/``kx`` (its tap, for the padding test), ``nbits`` (channels in the slot) and
    ``used``."""
    return Array(Struct({"off": Bits(aw + 1, signed=True), "ky": kb, "kx": kb, "nbits": 5, "used": 1}), 2)
