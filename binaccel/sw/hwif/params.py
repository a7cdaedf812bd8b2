"""The build parameters: :class:`EngineParams` (the layer engine) and :class:`AccelParams` (the
whole-network accelerator), checked at construction, and every width derived from them (width
bounds: the package docstring)."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

from .codes import BeatKind, IO_WIDTH, OutKind, Target
from .layouts import Array, Bits, Enum, Struct, Union


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
