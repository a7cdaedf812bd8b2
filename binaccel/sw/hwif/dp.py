"""Plain layouts of the pipelined datapath's configuration words (:mod:`binaccel.hw.dp`)."""

from __future__ import annotations

import enum
from dataclasses import dataclass

from .layouts import Array, Bits, Enum, Struct

__all__ = ["WinMode", "LaneKind", "DpTarget", "DpParams", "SLOT", "window_cfg_layout", "table_entry_layout",
           "lane_cfg_layout", "lane_param_layout", "first_cfg_layout", "wb_cfg_layout"]

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
        "spacing": 7,                    # cycles between segment ends (>= cols, and >= the writes of a tile: up to 8 x 8)
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


class LaneKind(enum.IntEnum):
    """What an output lane makes of a value: a sign bit, a requantized value, or a logit."""
    SIGN = 0
    REQUANT = 1
    LOGITS = 2


class DpTarget:
    """Buffers of the pipelined accelerator a WRITE command fills (header bits 7:4)."""
    DESC = 0
    WEIGHT = 1
    TABLE = 2
    FMAP0 = 3
    FMAP1 = 4
    PARAM = 5


def _uw(n: int) -> int:
    return max(int(n), 1).bit_length()


def _clog2(n: int) -> int:
    return max((int(n) - 1).bit_length(), 1)


_DP_LIMITS = {"rows": (16, 16), "cols": (1, 8), "fm_depth": (64, 1 << 20), "w_depth": (2, 1 << 16),
              "t_depth": (2, 1 << 16), "p_depth": (16, 1 << 16), "max_layers": (1, 64), "max_dim": (2, 1024),
              "max_steps": (1, 1 << 14), "acc_width": (13, 26), "mul_bits": (2, 18), "add_bits": (2, 48),
              "mem_latency": (1, 3), "logit_depth": (16, 256), "flu_positions": (1, 4), "flu_max_ch": (1, 64)}


@dataclass(frozen=True, kw_only=True)
class DpParams:
    """Build parameters of the pipelined accelerator (:class:`binaccel.hw.dp.accel.DpAccelerator`),
    keyword-only and checked. ``rows`` is 16 (a group tile fills one feature-map slot);
    ``cols`` output positions per tile; ``fm_depth`` slots per feature-map bank; ``w_depth``,
    ``t_depth``, ``p_depth`` entries of the weight, offset-table and lane-parameter buffers (a
    lane-parameter entry holds two rows);
    ``max_layers``; ``max_dim`` the largest map height or width; ``max_steps`` the most steps a
    segment's bit plane takes; ``acc_width`` the partial's width; ``mul_bits``, ``add_bits`` the
    lane multiplier and addend; ``mem_latency`` the buffers' read latency (2: registered outputs; 3: also registered addresses);
    ``logit_depth`` the logits FIFO; ``flu_positions`` the output positions the first-layer
    unit computes per cycle (1, 2 or 4: a 2x2 quad takes ``4 / flu_positions`` cycles per
    input channel); ``flu_max_ch`` the most input channels of a first layer (its sums are
    ``flu_acc_width`` bits)."""

    rows: int = 16
    cols: int = 4
    fm_depth: int = 8192
    w_depth: int = 512
    t_depth: int = 512
    p_depth: int = 256
    max_layers: int = 16
    max_dim: int = 64
    max_steps: int = 512
    acc_width: int = 20
    mul_bits: int = 16
    add_bits: int = 32
    mem_latency: int = 2
    logit_depth: int = 32
    flu_positions: int = 2
    flu_max_ch: int = 4

    def __post_init__(self):
        for name, (lo, hi) in _DP_LIMITS.items():
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int):
                raise TypeError(f"DpParams parameter {name} must be an int, got {v!r}")
            if not lo <= v <= hi:
                raise ValueError(f"DpParams parameter {name} must be in {lo}..{hi}, got {v}")
        if self.flu_positions not in (1, 2, 4):
            raise ValueError(f"DpParams parameter flu_positions must be 1, 2 or 4, got {self.flu_positions}")
        if self.fm_depth & (self.fm_depth - 1):
            raise ValueError(f"DpParams parameter fm_depth must be a power of two, got {self.fm_depth}")

    def as_dict(self) -> dict:
        return {f: getattr(self, f) for f in self.__dataclass_fields__}

    @classmethod
    def names(cls) -> tuple:
        return tuple(cls.__dataclass_fields__)

    # widths
    @property
    def word(self) -> int:
        return 2 * SLOT

    @property
    def aw(self) -> int:
        return _clog2(self.fm_depth)

    @property
    def cw(self) -> int:
        return _uw(self.max_dim) + 2

    @property
    def count_w(self) -> int:
        return _uw(max(self.max_dim, self.p_depth // self.rows))

    @property
    def steps_w(self) -> int:
        return _uw(self.max_steps)

    @property
    def tbl_aw(self) -> int:
        return _clog2(self.t_depth)

    @property
    def w_aw(self) -> int:
        return _clog2(self.w_depth)

    @property
    def p_aw(self) -> int:
        return _clog2(self.p_depth)

    @property
    def n_width(self) -> int:
        return _uw(self.max_steps * 8 * self.word)

    @property
    def flu_acc_width(self) -> int:
        """Width of a first-layer sum: 9 taps x 255 x the input channels (at least 13 bits)."""
        return max((9 * 255 * self.flu_max_ch).bit_length(), 13)

    @property
    def off_width(self) -> int:
        return self.acc_width + 3

    @property
    def y_width(self) -> int:
        return max(self.acc_width + 4 + self.mul_bits, self.add_bits) + 1

    @property
    def tag_width(self) -> int:
        return 1

    @property
    def shift_width(self) -> int:
        return 6

    @property
    def lane_param_layout(self) -> Struct:
        return lane_param_layout(off_width=self.off_width, mul_bits=self.mul_bits, add_bits=self.add_bits)

    @property
    def param_entry_layout(self) -> Array:
        """A PARAM entry: the lane parameters of two rows (``2i``, ``2i + 1``) of a group tile."""
        return Array(self.lane_param_layout, 2)

    @property
    def window_cfg_layout(self) -> Struct:
        return window_cfg_layout(cols=self.cols, aw=self.aw, cw=self.cw, count_w=self.count_w, steps_w=self.steps_w,
                                 tbl_aw=self.tbl_aw, w_aw=self.w_aw)

    @property
    def first_cfg_layout(self) -> Struct:
        return first_cfg_layout(count_w=self.count_w, aw=self.aw, w_aw=self.w_aw)

    @property
    def wb_cfg_layout(self) -> Struct:
        return wb_cfg_layout(cols=self.cols, aw=self.aw, count_w=self.count_w)

    @property
    def z_width(self) -> int:
        return lane_z_width(acc_width=self.acc_width, n_width=self.n_width, cols=self.cols, off_width=self.off_width,
                            mul_bits=self.mul_bits, add_bits=self.add_bits)

    @property
    def lane_cfg_layout(self) -> Struct:
        return lane_cfg_layout(shift_width=self.shift_width, z_width=self.z_width)

    @property
    def table_entry_layout(self) -> Array:
        return table_entry_layout(aw=self.aw, kb=2)

    @property
    def desc_layout(self) -> Struct:
        """A layer's descriptor."""
        return Struct({
            "first": 1,                  # the first-layer unit runs the layer (else the array)
            "in_bank": 1, "out_bank": 1,
            "win": self.window_cfg_layout,
            "flu": self.first_cfg_layout,
            "lane": self.lane_cfg_layout,
            "wb": self.wb_cfg_layout,
            "prm_base": self.p_aw,       # lane parameters of group g, rows 2i, 2i+1 at prm_base + g*rows/2 + i
            "dump": 1,                   # send the output map (dump_words 32-bit words from dump_base)
            "dump_base": self.aw, "dump_words": self.aw + 1,
        })

    @property
    def desc_words(self) -> int:
        return -(-self.desc_layout.size // 32)

    def entry_words(self, target: int) -> int:
        """32-bit words of one entry of a WRITE target."""
        width = {DpTarget.DESC: 32, DpTarget.WEIGHT: self.rows * self.word,
                 DpTarget.TABLE: self.table_entry_layout.size, DpTarget.FMAP0: 32, DpTarget.FMAP1: 32,
                 DpTarget.PARAM: self.param_entry_layout.size}[target]
        return -(-width // 32)


def lane_cfg_layout(*, shift_width: int, z_width: int) -> Struct:
    """Per-layer configuration of the output lanes (``z_width``: :func:`lane_z_width`)."""
    return Struct({
        "kind": Enum(LaneKind, 2),
        "alpha": 1,         # v = (acc << alpha) - n - off: 1 for binary inputs, 0 for bit planes and pixels
        "sum_cols": 1,      # sum each group of `cols` consecutive values (an FC reduction split over columns)
        "pool": 1,          # max over each group of `cols` consecutive outputs (a 2x2 pooling quad)
        "shift": shift_width,
        "out_bits": 4,
        "top": 8,           # REQUANT: 2**out_bits - 1
        "high": z_width,    # REQUANT: the bits of z at or above shift + out_bits (any set: clipped)
    })


def lane_z_width(*, acc_width: int, n_width: int, cols: int, off_width: int, mul_bits: int, add_bits: int) -> int:
    """Width of a lane's ``z = s * mul + add`` (two's complement), for results of ``acc_width`` and
    counts of ``n_width`` bits summed over up to ``cols`` columns with an offset of ``off_width``."""
    v_width = max(acc_width + 1, n_width) + 2
    s_width = max(v_width + max(cols - 1, 1).bit_length(), off_width) + 1
    return max(s_width + mul_bits, add_bits) + 1


def lane_masks(*, shift: int, out_bits: int, z_width: int) -> dict:
    """The pre-decoded ``top`` and ``high`` lane fields of a requantization by ``shift`` to
    ``out_bits`` bits."""
    keep = shift + out_bits
    high = ((1 << z_width) - 1) ^ ((1 << keep) - 1) if keep < z_width else 0
    return {"top": (1 << out_bits) - 1, "high": high}


def lane_param_layout(*, off_width, mul_bits, add_bits) -> Struct:
    """Per-output-channel lane parameters: ``noff`` (added to the sum), ``mul`` and ``add``
    (``z = s * mul + add``; a sign layer's threshold is folded into them)."""
    return Struct({"noff": Bits(off_width, signed=True), "mul": Bits(mul_bits, signed=True),
                   "add": Bits(add_bits, signed=True)})


def first_cfg_layout(*, count_w: int, aw: int, w_aw: int) -> Struct:
    """Per-layer configuration of the first-layer unit (pre-decoded by the compiler)."""
    return Struct({
        "pool": 1, "spacing": 7,
        "last_qx": count_w, "last_qy": count_w, "last_ch": count_w, "last_gt": count_w,
        "img_base": aw, "tile_row": aw, "ch_size": aw,   # tile-word addresses (two slots each)
        "need_off": aw,     # a quad at tile address a reads words up to a + need_off (waits for them)
        "w_base": w_aw, "w_stride": w_aw,
    })


def wb_cfg_layout(*, cols: int, aw: int, count_w: int) -> Struct:
    """Per-layer configuration of the write-back (pre-decoded by the compiler)."""
    return Struct({
        "logits": 1, "planes_last": 3, "plane_size": aw, "last_out": _clog2(cols) if cols > 1 else 1,
        "out_off": Array(aw, cols), "linear": 1, "last_cols": cols.bit_length(),
        "last_tx": count_w, "last_ty": count_w, "last_gt": count_w,
        "base": aw, "dx": aw, "dy": aw, "rows_last": 5,
    })
