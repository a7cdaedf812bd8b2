"""The interface between the host and the gateware, in plain Python (no Amaranth).

Everything the host side must know about the hardware is defined here once, and the gateware
(:mod:`binaccel.hw`) imports it from here:

* the build parameters: :class:`EngineParams` (the layer engine) and :class:`AccelParams` (the
  whole-network accelerator: the engine's parameters plus its buffer sizes), plain frozen
  dataclasses checked at construction, and every width derived from them;
* the stream payloads as plain layouts (:class:`Struct`, :class:`Array`, :class:`Union` of
  :class:`Bits` and :class:`Enum` fields) with their field offsets and a packer
  (:meth:`Struct.pack`); :func:`binaccel.hw.params.layout` turns one into the
  ``amaranth.lib.data`` layout the gateware uses, field for field;
* the engine's beat kinds (:class:`BeatKind`) and output kinds (:class:`OutKind`), the
  accelerator's command opcodes (:class:`Op`) and write targets (:class:`Target`), its stream word
  width (:data:`IO_WIDTH`) and the INFO reply (:func:`info_words`).

* the frame link's constants: sync bytes, header and trailer sizes, the largest payload, the TYPE
  bits, the frame kinds (:class:`FrameKind`) and the receiver's codes (:class:`RxCode`); the codec
  is :mod:`binaccel.sw.link`.

The formats are specified in
``docs/hardware.md`` (engine beats), ``docs/accelerator.md`` (command stream) and ``docs/link.md``
(frames).

Width bounds of :class:`EngineParams` (a build is correct for every layer that fits its limits;
:func:`binaccel.sw.pack.check_layer` says which do):

* ``pe_width``: the per-segment partial ``P`` of one PE; ``|P| <= max_fan_in * amax`` where
  ``amax = 2**max_in_bits - 1`` (1 for a binary-only build).
* ``acc_width``: the modulated accumulator; ``|acc| <= max_fan_in * amax * (2**m_bits - 1)``.
  Plain and MCNs-1 layers use the same path with a single segment (M = 1 for plain layers).
* ``thresh_width``: ``acc_width + 1``: thresholds are clamped by the host to ``[-B-1, B+1]``
  (``B`` = :attr:`EngineParams.acc_bound`), which keeps every comparison's result.
* ``y_width``: ``acc * mul + add``; ``|y| <= B * 2**(mul_bits-1) + 2**(add_bits-1)``.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from functools import cached_property

__all__ = [
    "Bits", "Enum", "Struct", "Array", "Union", "Slot", "FieldRangeError",
    "BeatKind", "OutKind", "OUT_KIND", "Op", "Target", "IO_WIDTH", "MAGIC", "VERSION", "info_words",
    "signed_width", "param_lane_layout", "EngineParams", "AccelParams",
    "SYNC", "SYNC0", "SYNC1", "HEADER_SIZE", "TRAILER_SIZE", "OVERHEAD", "MAX_PAYLOAD", "CRC_INIT",
    "TYPE_KIND_MASK", "TYPE_SOT", "TYPE_EOT", "TYPE_RESERVED_MASK", "FrameKind", "HOST_TO_DEVICE",
    "DEVICE_TO_HOST", "ALL_KINDS", "RxCode", "STATUS_SIZE",
]


# ---- plain layouts ---------------------------------------------------------------------------------

class FieldRangeError(ValueError):
    """A value given to :meth:`Struct.pack` does not fit its field."""


@dataclass(frozen=True)
class Bits:
    """An integer field of ``width`` bits, two's complement when ``signed``."""

    width: int
    signed: bool = False

    @property
    def size(self) -> int:
        return self.width

    @property
    def range(self) -> tuple:
        """The smallest and largest value the field holds."""
        if self.signed:
            return -(1 << (self.width - 1)), (1 << (self.width - 1)) - 1
        return 0, (1 << self.width) - 1


@dataclass(frozen=True)
class Enum:
    """A field holding a member of ``cls`` (an ``enum.IntEnum`` of this module) in ``width`` bits."""

    cls: type
    width: int

    @property
    def size(self) -> int:
        return self.width

    @property
    def signed(self) -> bool:
        return False

    @property
    def range(self) -> tuple:
        return 0, (1 << self.width) - 1


@dataclass(frozen=True)
class Slot:
    """Where a field sits in its layout: its ``shape`` and bit ``offset``."""

    shape: object
    offset: int

    @property
    def width(self) -> int:
        return self.shape.size


def _as_shape(shape):
    """An int ``n`` stands for ``Bits(n)`` (as in Amaranth's layouts)."""
    if isinstance(shape, bool) or not isinstance(shape, (int, Bits, Enum, Struct, Array, Union)):
        raise TypeError(f"a layout field must be an int, Bits, Enum, Struct, Array or Union, got {shape!r}")
    return Bits(shape) if isinstance(shape, int) else shape


class _Layout:
    """Common part of the aggregate layouts: named slots, a size, nested offsets."""

    _slots: tuple  # ((name, Slot), ...)

    def __iter__(self):
        return iter(self._slots)

    def __getitem__(self, key) -> Slot:
        for name, slot in self._slots:
            if name == key:
                return slot
        raise KeyError(f"{type(self).__name__} has no field {key!r}")

    def __eq__(self, other):
        return type(self) is type(other) and self._slots == other._slots

    def __hash__(self):
        return hash((type(self), self._slots))

    def offset(self, *path) -> int:
        """Bit offset of a nested field (``path`` of names and indices)."""
        off, lay = 0, self
        for key in path:
            slot = lay[key]
            off += slot.offset
            lay = slot.shape
        return off


class Struct(_Layout):
    """Fields one after the other, the first at bit 0 (as ``amaranth.lib.data.StructLayout``)."""

    def __init__(self, fields: dict):
        slots, off = [], 0
        for name, shape in fields.items():
            shape = _as_shape(shape)
            slots.append((name, Slot(shape, off)))
            off += shape.size
        self._slots, self.size = tuple(slots), off

    def __repr__(self):
        return f"Struct({dict((n, s.shape) for n, s in self._slots)!r})"

    def pack(self, values: dict, *, where: str = "struct", what: str = "field") -> int:
        """``values`` (nested dicts for nested structs) -> the int of this layout. Every field must
        be given and fit: a missing one raises KeyError, one out of range :class:`FieldRangeError`,
        both naming ``where`` and the field (``what`` names what a field is, e.g. "descriptor
        field")."""
        out = 0
        for name, slot in self._slots:
            if name not in values:
                raise KeyError(f"{where}: {what} {name!r} missing")
            v, shape = values[name], slot.shape
            if isinstance(shape, Struct):
                out |= shape.pack(v, where=where, what=what) << slot.offset
                continue
            if not isinstance(shape, (Bits, Enum)):
                raise TypeError(f"{where}: {what} {name!r}: only struct, integer and enum fields can be packed")
            v = int(v)
            lo, hi = shape.range
            if not lo <= v <= hi:
                raise FieldRangeError(
                    f"{where}: {what} '{name}' = {v} does not fit the build's {shape.width}-bit "
                    f"{'signed' if shape.signed else 'unsigned'} field [{lo}, {hi}]")
            out |= (v & ((1 << shape.width) - 1)) << slot.offset
        return out


class Array(_Layout):
    """``length`` elements of ``elem``, element ``i`` at bit ``i * elem.size``."""

    def __init__(self, elem, length: int):
        self.elem, self.length = _as_shape(elem), int(length)
        self._slots = tuple((i, Slot(self.elem, i * self.elem.size)) for i in range(self.length))
        self.size = self.length * self.elem.size

    def __repr__(self):
        return f"Array({self.elem!r}, {self.length})"


class Union(_Layout):
    """Members overlapping at bit 0; the size is the largest member's."""

    def __init__(self, members: dict):
        self._slots = tuple((name, Slot(_as_shape(shape), 0)) for name, shape in members.items())
        self.size = max((s.shape.size for _, s in self._slots), default=0)

    def __repr__(self):
        return f"Union({dict((n, s.shape) for n, s in self._slots)!r})"


# ---- kinds, opcodes, constants ----------------------------------------------------------------------

class BeatKind(enum.IntEnum):
    """Kind of an engine input beat (field ``kind`` of :attr:`EngineParams.in_layout`, 2 bits)."""

    DESC = 0    #: layer descriptor; starts a layer
    MFILT = 1   #: one M-Filter column: the planes' factors of one segment (tap)
    PARAM = 2   #: one row's output-channel parameters (thresh/flip or mul/add) of a group tile
    OPER = 3    #: one operand step: a weight word per row, an activation and a mask word per column


class OutKind(enum.IntEnum):
    """Output kind of a layer (descriptor field ``out_kind``, 2 bits), as ``Layer.out_kind``."""

    SIGN = 0
    REQUANT = 1
    LOGITS = 2


#: ``Layer.out_kind`` -> :class:`OutKind`.
OUT_KIND = {"sign": OutKind.SIGN, "requant": OutKind.REQUANT, "logits": OutKind.LOGITS}


class Op:
    """Accelerator command opcodes (bits 3:0 of a command header word; plain ints, so that the
    gateware's constants keep the width of the value)."""

    NOP = 0
    WRITE = 1   #: write ``count`` entries of a buffer from address (next word)
    RUN = 2     #: image words follow; run the program's layers on it
    INFO = 3    #: reply with the build parameters


class Target:
    """Buffer written by a WRITE command (header bits 7:4; plain ints, as :class:`Op`)."""

    DESC = 0
    WEIGHT = 1
    TABLE = 2
    FMAP0 = 3
    FMAP1 = 4


#: Width of the accelerator's input and output stream words (and of the link's words).
IO_WIDTH = 32
#: First word of the INFO reply ("BACC").
MAGIC = 0x42414343
#: Second word of the INFO reply: 2 since the build parameter ``pair_reads``, 3 since ``pe_stages``
#: (one more word each).
VERSION = 3


def info_words(params: "AccelParams") -> list:
    """The words of the INFO reply of a build: magic, version, then every parameter in
    :meth:`AccelParams.names` order."""
    return [MAGIC, VERSION] + [getattr(params, k) for k in params.names()]


# ---- the frame link (docs/link.md; the codec is binaccel.sw.link) ----------------------------------

SYNC0 = 0xA5
SYNC1 = 0x5A
SYNC = bytes([SYNC0, SYNC1])
#: Bytes before the payload: SYNC0 SYNC1 TYPE SEQ LEN_LO LEN_HI HCRC_LO HCRC_HI.
HEADER_SIZE = 8
#: Bytes after the payload: CRC_LO CRC_HI.
TRAILER_SIZE = 2
OVERHEAD = HEADER_SIZE + TRAILER_SIZE
#: Default (and the gateware's default) largest payload of one frame, in bytes.
MAX_PAYLOAD = 256
#: Initial value of the frames' CRC-16/CCITT-FALSE.
CRC_INIT = 0xFFFF

TYPE_KIND_MASK = 0x0F
TYPE_SOT = 0x10
TYPE_EOT = 0x20
TYPE_RESERVED_MASK = 0xC0


class FrameKind(enum.IntEnum):
    """Frame kinds (bits 3..0 of TYPE). 0 and 8..15 are not defined (an 'unknown type')."""

    PROGRAM = 1   #: host -> device: layer descriptors
    WEIGHTS = 2   #: host -> device: packed weights
    TABLES = 3    #: host -> device: threshold / requantisation tables
    IMAGE = 4     #: host -> device: one input image
    RESULT = 5    #: device -> host: logits / outputs
    STATUS = 6    #: device -> host: link and accelerator status (see ``binaccel.sw.link.StatusEvent``)
    RESET = 7     #: host -> device: return the receiver (and what it feeds) to idle


HOST_TO_DEVICE = frozenset({FrameKind.PROGRAM, FrameKind.WEIGHTS, FrameKind.TABLES, FrameKind.IMAGE,
                            FrameKind.RESET})
DEVICE_TO_HOST = frozenset({FrameKind.RESULT, FrameKind.STATUS})
ALL_KINDS = frozenset(FrameKind)


class RxCode(enum.IntEnum):
    """Outcome of one frame at the gateware receiver (``FrameRx.o_status.code``; STATUS payload byte 0)."""

    OK = 0          #: frame verified and its payload handed to the output (RESET: reset done)
    HEADER_CRC = 1  #: header CRC mismatch (type, sequence and length cannot be trusted)
    TYPE = 2        #: unknown kind or reserved TYPE bits set
    LENGTH = 3      #: LEN larger than the receiver's max_payload
    CRC = 4         #: frame CRC mismatch
    SEQUENCE = 5    #: SEQ is not the expected sequence number (frame dropped)
    TIMEOUT = 6     #: the frame stopped arriving (idle too long before its last byte)


#: Bytes of a STATUS frame's payload: code, kind, seq, expect.
STATUS_SIZE = 4


# ---- widths -----------------------------------------------------------------------------------------

def signed_width(bound: int) -> int:
    """Width of a two's complement value holding every integer in ``[-bound, bound]``."""
    return max(int(bound), 1).bit_length() + 1


def _uwidth(maximum: int) -> int:
    """Width of an unsigned value holding ``0 .. maximum``."""
    return max(int(maximum), 1).bit_length()


def _clog2(n: int) -> int:
    """Smallest ``k`` with ``2**k >= n`` (``n >= 1``)."""
    return (int(n) - 1).bit_length()


def param_lane_layout(*, p_width: int, q_width: int) -> Struct:
    """Per output channel scale parameters: ``p`` = thresh (sign) or mul; ``q`` = flip or add."""
    return Struct({"p": Bits(p_width, signed=True), "q": Bits(q_width, signed=True)})


def _check_fields(who: str, obj, limits: dict):
    for name, (lo, hi) in limits.items():
        v = getattr(obj, name)
        if isinstance(v, bool) or not isinstance(v, int):
            raise TypeError(f"{who} parameter {name} must be an int, got {v!r}")
        if not lo <= v <= hi:
            raise ValueError(f"{who} parameter {name} must be in {lo}..{hi}, got {v}")


# ---- build parameters -------------------------------------------------------------------------------

_ENGINE_LIMITS = {
    "rows": (1, 64), "cols": (1, 64), "word": (1, 1024), "max_fan_in": (1, 1 << 24),
    "max_in_bits": (1, 8), "max_planes": (1, 64), "max_taps": (1, 64), "m_bits": (1, 16),
    "mul_bits": (2, 32), "add_bits": (2, 64), "count_bits": (1, 32), "pe_stages": (1, 2),
}


@dataclass(frozen=True, kw_only=True)
class _EngineFields:
    """The engine's build parameters, shared by :class:`EngineParams` and :class:`AccelParams`
    (declared once; checked at construction)."""

    rows: int = 4
    cols: int = 4
    word: int = 32
    max_fan_in: int = 4608
    max_in_bits: int = 8
    max_planes: int = 4
    max_taps: int = 9
    m_bits: int = 8
    mul_bits: int = 16
    add_bits: int = 32
    count_bits: int = 20
    pe_stages: int = 1

    def __post_init__(self):
        _check_fields("engine", self, _ENGINE_LIMITS)

    def as_dict(self) -> dict:
        """Every parameter by name, in :meth:`names` order."""
        return {k: getattr(self, k) for k in self.names()}


@dataclass(frozen=True, kw_only=True)
class EngineParams(_EngineFields):
    """Build parameters of the engine (all keyword-only, checked at construction).

    rows, cols
        Systolic array size: ``rows`` weight groups x ``cols`` output positions per tile.
    word
        Bits of the XNOR/AND-popcount slice each PE consumes per cycle.
    max_fan_in
        Largest ``Layer.fan_in`` (``C*k*k`` or an FC's ``C*H*W``) a layer may have.
    max_in_bits
        Largest activation width (1 = binary only; 2..8 adds bit-serial multi-bit layers).
    max_planes
        Largest MCN plane count ``K`` (output lanes per array row).
    max_taps
        Largest ``k*k`` of an ``mcn`` layer (segments per tile, M-Filter columns).
    m_bits
        Width of the unsigned M-Filter factors (``Layer.m_bits`` must not exceed it).
    mul_bits, add_bits
        Signed widths of the requant/logits factors ``mul`` and ``add``.
    count_bits
        Width of the tile counters (position tiles and group tiles per layer run).
    pe_stages
        Pipeline stages of a PE: 1 (the step's popcount is added to the partial in the cycle the PE
        sees the step) or 2 (the step's contribution is registered first and added a cycle later:
        a shorter clock path for small FPGAs, one cycle more per layer run; see
        ``docs/hardware.md``, "Dataflow and timing"). Results are the same.
    """

    @classmethod
    def names(cls) -> tuple:
        return tuple(_ENGINE_LIMITS)

    @property
    def tag(self) -> str:
        """Short name of the configuration (used for build folders)."""
        d = EngineParams()
        extra = "".join(f"-{k}{getattr(self, k)}" for k in EngineParams.names()[3:]
                        if getattr(self, k) != getattr(d, k))
        return f"r{self.rows}c{self.cols}w{self.word}{extra}"

    # -- derived bounds and widths --------------------------------------------------------------
    @property
    def amax(self) -> int:
        return 1 if self.max_in_bits == 1 else (1 << self.max_in_bits) - 1

    @property
    def pe_bound(self) -> int:
        """Largest ``|P|`` of a PE partial."""
        return self.max_fan_in * self.amax

    @property
    def acc_bound(self) -> int:
        """Largest ``|acc|`` after modulation."""
        return self.pe_bound * ((1 << self.m_bits) - 1)

    @property
    def pe_width(self) -> int:
        return signed_width(self.pe_bound)

    @property
    def acc_width(self) -> int:
        return signed_width(self.acc_bound)

    @property
    def thresh_width(self) -> int:
        return signed_width(self.acc_bound + 1)

    @property
    def y_bound(self) -> int:
        return self.acc_bound * (1 << (self.mul_bits - 1)) + (1 << (self.add_bits - 1))

    @property
    def y_width(self) -> int:
        return signed_width(self.y_bound)

    @property
    def pcount_width(self) -> int:
        return _uwidth(self.word)

    @property
    def b_width(self) -> int:
        return _uwidth(self.max_in_bits - 1)

    @property
    def tap_width(self) -> int:
        return _uwidth(self.max_taps - 1)

    @property
    def max_seg_words(self) -> int:
        """Most words of one segment: the whole fan-in of the largest layer."""
        return -(-self.max_fan_in // self.word)

    @property
    def lanes(self) -> int:
        """Output values per output beat: ``rows * max_planes``."""
        return self.rows * self.max_planes

    @property
    def seg_spacing(self) -> int:
        """Minimum cycles between two segment ends (a row's drain chain emits one partial per cycle)."""
        return self.cols

    # -- pipeline latency and buffer depths (see docs/hardware.md, "Timing") -----------------------
    @property
    def latency(self) -> int:
        """Cycles from accepting a tile's last operand step (cycle ``T``) to the transfer of the
        tile's last output beat (cycle ``T + latency``) without backpressure: array input register
        and PE ``(r, c)`` at ``T + 1 + r + c`` (its partial ``pe_stages - 1`` cycles later), row
        commit and drain chain (partial of column ``c`` of row ``r`` at ``T + pe_stages + r + cols +
        c``), modulation 2, row alignment to row ``rows-1``, scale 2, output FIFO 2: the beat of
        column ``c`` leaves at ``T + rows + cols + 5 + pe_stages + c``."""
        return self.rows + 2 * self.cols + 4 + self.pe_stages

    @property
    def tiles_in_flight(self) -> int:
        """Tiles whose outputs can be pending at once without backpressure."""
        return self.latency // self.seg_spacing + 2

    @property
    def out_fifo_depth(self) -> int:
        return self.cols * self.tiles_in_flight

    @property
    def param_fifo_depth(self) -> int:
        return self.tiles_in_flight + 1

    # -- stream layouts ---------------------------------------------------------------------------
    @property
    def param_lane_layout(self) -> Struct:
        return param_lane_layout(p_width=max(self.thresh_width, self.mul_bits), q_width=self.add_bits)

    @property
    def desc_layout(self) -> Struct:
        """The engine's layer descriptor (the DESC beat)."""
        return Struct({
            "in_bits": _uwidth(self.max_in_bits),
            "seg_words": _uwidth(self.max_seg_words),
            "n_seg": _uwidth(self.max_taps),
            "n_pt": self.count_bits,
            "n_gt": self.count_bits,
            "out_kind": Enum(OutKind, 2),
            "shift": 6,
            "out_bits": 4,
        })

    @property
    def mfilt_layout(self) -> Array:
        return Array(self.m_bits, self.max_planes)

    @property
    def param_layout(self) -> Array:
        return Array(self.param_lane_layout, self.max_planes)

    @property
    def oper_layout(self) -> Struct:
        return Struct({
            "w": Array(self.word, self.rows),
            "a": Array(self.word, self.cols),
            "m": Array(self.word, self.cols),
        })

    @property
    def in_layout(self) -> Struct:
        """Payload of the engine's input stream: a kind and a union of the four beat kinds."""
        return Struct({
            "kind": Enum(BeatKind, 2),
            "data": Union({
                "desc": self.desc_layout,
                "mfilt": self.mfilt_layout,
                "param": self.param_layout,
                "oper": self.oper_layout,
            }),
        })

    @property
    def out_layout(self) -> Array:
        """Payload of the output stream: ``lanes`` values, lane ``r*max_planes + j``."""
        return Array(Bits(self.y_width, signed=True), self.lanes)


_ACCEL_LIMITS = {"fm_depth": (2, 1 << 20), "w_depth": (2, 1 << 20), "t_depth": (2, 1 << 20),
                 "max_layers": (1, 256), "max_dim": (1, 4096), "pair_reads": (0, 1)}


@dataclass(frozen=True, kw_only=True)
class AccelParams(_EngineFields):
    """Build parameters of the accelerator (keyword-only, checked): the engine's parameters
    (the fields of :class:`EngineParams`, with the same defaults; :attr:`engine`) and:

    fm_depth
        Words (of ``word`` bits) of each of the two feature-map banks.
    w_depth
        Entries (of ``rows * word`` bits) of the weight buffer.
    t_depth
        Entries of the table buffer (one M-Filter column or one row's output parameters each).
    max_layers
        Layer descriptors of the program buffer.
    max_dim
        Largest feature-map height/width and kernel size (an FC layer's kernel is its whole input).
    pair_reads
        1: the fetch unit has a second read port per column and reads two taps per cycle where a
        pixel is one word holding at most half a word of channels (the compiler sets the layer's
        ``pair`` flag); 0: one tap per cycle, fewer block RAM copies and less logic.

    :attr:`desc_layout` is the per-layer descriptor the host compiler (:mod:`binaccel.sw.program`)
    fills in: the engine's own descriptor plus the constants the fetch and write-back units step
    through (the host does every multiplication, the hardware only adds).
    """

    fm_depth: int = 1024
    w_depth: int = 512
    t_depth: int = 256
    max_layers: int = 8
    max_dim: int = 64
    pair_reads: int = 1

    def __post_init__(self):
        super().__post_init__()
        _check_fields("accelerator", self, _ACCEL_LIMITS)
        if self.max_in_bits > 1 and self.word < 8:
            raise ValueError(f"accelerator parameter word must be at least 8 when max_in_bits > 1 "
                             f"(multi-bit maps hold one byte per value), got {self.word}")

    @classmethod
    def names(cls) -> tuple:
        return tuple(_ENGINE_LIMITS) + tuple(_ACCEL_LIMITS)

    @cached_property
    def engine(self) -> EngineParams:
        """The engine's parameters of this build."""
        return EngineParams(**{k: getattr(self, k) for k in EngineParams.names()})

    @property
    def tag(self) -> str:
        d = AccelParams()
        extra = "".join(f"-{k}{getattr(self, k)}" for k in _ACCEL_LIMITS if getattr(self, k) != getattr(d, k))
        return f"{self.engine.tag}{extra}"

    # -- derived widths ---------------------------------------------------------------------------
    @property
    def fm_aw(self) -> int:
        return max(1, _clog2(self.fm_depth))

    @property
    def w_aw(self) -> int:
        return max(1, _clog2(self.w_depth))

    @property
    def t_aw(self) -> int:
        return max(1, _clog2(self.t_depth))

    @property
    def ring_count_w(self) -> int:
        """Width of the streamed-weight entry counters (written, released), which count modulo
        ``2**ring_count_w``: they are never more than ``w_depth`` apart."""
        return self.w_aw + 1

    @property
    def d_aw(self) -> int:
        return max(1, _clog2(self.max_layers))

    @property
    def dim_w(self) -> int:
        return _uwidth(self.max_dim)

    @property
    def coord_w(self) -> int:
        """Signed width of the fetch unit's input coordinates (``oy*stride - pad`` of a position up
        to ``cols`` past the end of the map, plus a kernel offset)."""
        return _uwidth((self.max_dim + self.cols + 1) * (self.max_dim + 1) + self.max_dim) + 1

    @property
    def oy_w(self) -> int:
        return _uwidth(self.max_dim + self.cols + 1)

    @property
    def mb_chunk(self) -> int:
        """Channels per feature-map word of a multi-bit map (one byte per value)."""
        return max(self.word // 8, 1)

    @property
    def ch_w(self) -> int:
        """Width of channel counts (output channels of a layer)."""
        return _uwidth(self.max_fan_in * max(self.max_planes, 1) + self.rows * self.max_planes)

    @property
    def nwords_w(self) -> int:
        return _uwidth(self.max_taps * self.engine.max_seg_words)

    @property
    def io_words(self) -> dict:
        """Stream words per entry of each WRITE target."""
        return {Target.DESC: -(-self.desc_layout.size // IO_WIDTH),
                Target.WEIGHT: -(-self.rows * self.word // IO_WIDTH),
                Target.TABLE: -(-self.table_width // IO_WIDTH),
                Target.FMAP0: -(-self.word // IO_WIDTH),
                Target.FMAP1: -(-self.word // IO_WIDTH)}

    @property
    def table_width(self) -> int:
        e = self.engine
        return max(e.param_layout.size, e.mfilt_layout.size)

    @property
    def logit_words(self) -> int:
        """Stream words per logit value (two's complement, least significant word first)."""
        return -(-self.engine.y_width // IO_WIDTH)

    @property
    def wb_words(self) -> int:
        """Most feature-map words one output beat of the engine touches."""
        return -(-(self.word - 1 + self.rows * self.max_planes * 8) // self.word)

    @property
    def desc_layout(self) -> Struct:
        """The accelerator's layer descriptor (see the class doc)."""
        aw, dw, cw = self.fm_aw, self.dim_w, self.coord_w
        W = self.word
        return Struct({
            # engine
            "eng": self.engine.desc_layout,
            "w_base": self.w_aw,
            "w_stream": 1,                           # weights streamed through the ring
            "nwords": self.nwords_w,                 # words per tile (n_seg * seg_words)
            "m_base": self.t_aw,
            "p_base": self.t_aw,
            "gt_opers": 32,                          # operand steps per group tile
            # fetch (input map)
            "in_bank": 1,
            "in_base": aw,
            "mb_in": 1,                              # input map holds bytes (multi-bit layer)
            "nch": aw,                               # words per input pixel
            "last_n": _uwidth(W),                    # channels in the last word of a pixel
            "kh": dw, "kw": dw,
            "in_h": dw, "in_w": dw,
            "seg_tap": 1,                            # one engine segment per tap (mcn)
            "pair": 1,                               # read two taps per cycle (one word per pixel, 2*C <= word)
            "conv_h": dw, "conv_w": dw,
            "c_init": Bits(cw, signed=True),         # -padding
            "a_init": aw,                            # address of the window of position 0
            "da_ky": aw,                             # address step to the next kernel row
            # column stepping: by one position (init) and by `cols` positions (next tile)
            "r1": dw, "q1": self.oy_w, "dix1": Bits(cw, signed=True), "diy1": Bits(cw, signed=True),
            "da1": aw,
            "rc": dw, "qc": self.oy_w, "dixc": Bits(cw, signed=True), "diyc": Bits(cw, signed=True),
            "dac": aw,
            "dixw": Bits(cw, signed=True), "diyw": Bits(cw, signed=True), "daw": aw,   # row wrap
            # write-back (output map)
            "out_bank": 1,
            "out_base": aw,
            "mb_out": 1,                             # output map holds bytes (requant layer)
            "logits": 1,                             # outputs go to o_stream (last layer)
            "dump": 1,                               # stream the output map out after the layer
            "pool": 1,
            "out_ch": self.ch_w,
            "planes": _uwidth(self.max_planes),
            "gt_ch": self.ch_w,                      # channels per group tile: rows * planes
            "nch_out": aw,                           # words per output pixel
            "out_h": dw, "out_w": dw,                # after pooling
            "d_word": aw, "d_bit": _uwidth(W),       # gt_ch * value bits = d_word*W + d_bit
            "dump_words": aw + 1,
        })
