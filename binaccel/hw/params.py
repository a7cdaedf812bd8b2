"""The Amaranth side of the host/hardware interface (:mod:`binaccel.sw.hwif`).

The build parameters (:class:`~binaccel.sw.hwif.EngineParams`,
:class:`~binaccel.sw.hwif.AccelParams`), the stream layouts, the beat and output kinds and the
constants are defined once, in plain Python, in :mod:`binaccel.sw.hwif`. This module gives the
gateware their Amaranth forms:

* :func:`layout`: a plain layout (``Struct``/``Array``/``Union`` of ``Bits``/``Enum`` fields) as
  the ``amaranth.lib.data`` layout with the same fields at the same offsets;
* :class:`BeatKind`, :class:`OutKind`: the kinds as Amaranth enums (2-bit shapes) with the same
  members and values;
* :func:`ctl_layout`, :func:`drain_layout`: the array-internal layouts (control travelling down
  the columns, partials leaving a PE), which the host never sees.

See ``docs/hardware.md`` for the bounds and the stream formats.
"""

from __future__ import annotations

import functools
import types

from amaranth.hdl import Shape, signed, unsigned
from amaranth.lib import data, enum

from binaccel.sw import hwif
from binaccel.sw.hwif import AccelParams, EngineParams, dp, signed_width

__all__ = [
    "EngineParams", "AccelParams", "BeatKind", "OutKind", "WinMode", "LaneKind", "layout", "ctl_layout", "drain_layout",
    "param_lane_layout", "signed_width",
]


def _amaranth_enum(plain: type, width: int):
    """The Amaranth ``IntEnum`` of ``width`` bits with the members of the plain enum ``plain``."""
    def body(ns):
        ns["__module__"], ns["__qualname__"], ns["__doc__"] = __name__, plain.__name__, plain.__doc__
        for m in plain:
            ns[m.name] = m.value

    cls = types.new_class(plain.__name__, (enum.IntEnum,), {"shape": width}, body)
    if Shape.cast(cls) != unsigned(width):
        raise AssertionError(f"{plain.__name__} does not fit {width} bits")
    return cls


#: Kind of an engine input beat (:class:`binaccel.sw.hwif.BeatKind` as an Amaranth enum).
BeatKind = _amaranth_enum(hwif.BeatKind, 2)
#: Output kind of a layer (:class:`binaccel.sw.hwif.OutKind` as an Amaranth enum).
OutKind = _amaranth_enum(hwif.OutKind, 2)

#: Tile placement of the window generator (:class:`binaccel.sw.hwif.dp.WinMode` as an Amaranth enum).
WinMode = _amaranth_enum(dp.WinMode, 2)

#: What an output lane makes of a value (:class:`binaccel.sw.hwif.dp.LaneKind` as an Amaranth enum).
LaneKind = _amaranth_enum(dp.LaneKind, 2)

_ENUMS = {hwif.BeatKind: BeatKind, hwif.OutKind: OutKind, dp.WinMode: WinMode, dp.LaneKind: LaneKind}


def _shape(shape):
    if isinstance(shape, hwif.Bits):
        return signed(shape.width) if shape.signed else unsigned(shape.width)
    if isinstance(shape, hwif.Enum):
        cls = _ENUMS[shape.cls]
        if Shape.cast(cls).width != shape.width:
            raise ValueError(f"enum field {shape.cls.__name__} is {shape.width} bits wide, its Amaranth enum is not")
        return cls
    return layout(shape)


@functools.cache
def layout(plain):
    """The ``amaranth.lib.data`` layout of a plain :mod:`~binaccel.sw.hwif` layout: a ``Struct``
    becomes a ``StructLayout``, an ``Array`` an ``ArrayLayout``, a ``Union`` a ``UnionLayout``,
    ``Bits`` fields ``signed``/``unsigned`` shapes and ``Enum`` fields the Amaranth enums of this
    module. Fields keep their names, order, widths and offsets."""
    if isinstance(plain, hwif.Struct):
        lay = data.StructLayout({name: _shape(slot.shape) for name, slot in plain})
    elif isinstance(plain, hwif.Union):
        lay = data.UnionLayout({name: _shape(slot.shape) for name, slot in plain})
    elif isinstance(plain, hwif.Array):
        lay = data.ArrayLayout(_shape(plain.elem), plain.length)
    else:
        raise TypeError(f"layout() takes a hwif Struct, Array or Union, got {plain!r}")
    if lay.size != plain.size:
        raise AssertionError(f"layout size {lay.size} differs from the interface's {plain.size}")
    return lay


def ctl_layout(*, b_width: int, tap_width: int) -> data.StructLayout:
    """Control travelling with an operand step through the array (down the columns)."""
    return data.StructLayout({
        "valid": 1,          # a real step (0: bubble)
        "b": unsigned(b_width),  # bit plane of the activation word (0 for binary layers)
        "seg_last": 1,       # last step of a segment: the PE hands its partial to the drain
        "tile_last": 1,      # last step of the tile (implies seg_last)
        "gt_last": 1,        # last step of the last tile of a group tile
        "t": unsigned(tap_width),  # segment (tap) index inside the tile
    })


def drain_layout(*, p_width: int, tap_width: int) -> data.StructLayout:
    """A partial sum leaving a PE (through the row's drain chain)."""
    return data.StructLayout({
        "valid": 1,
        "p": signed(p_width),
        "t": unsigned(tap_width),
        "tile_last": 1,
        "gt_last": 1,
        "last_col": 1,       # set by the PE of the last column
    })


def param_lane_layout(*, p_width: int, q_width: int) -> data.StructLayout:
    """Per output channel scale parameters (:func:`binaccel.sw.hwif.param_lane_layout`)."""
    return layout(hwif.param_lane_layout(p_width=p_width, q_width=q_width))
