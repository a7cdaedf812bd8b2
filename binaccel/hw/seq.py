"""Accelerator build parameters, the layer descriptor, the command words and the engine feeder.

:class:`AccelParams` fixes one accelerator build: the engine's parameters
(:class:`~binaccel.hw.params.EngineParams`) plus the sizes of the on-chip buffers. Every width of the
accelerator is derived from it. :attr:`AccelParams.desc_layout` is the per-layer descriptor the
host compiler (:mod:`binaccel.sw.program`) fills in; it carries the engine's own descriptor plus the
constants the fetch and write-back units step through (the host does every multiplication, the
hardware only adds). See ``docs/accelerator.md`` for the command stream and the buffer layouts.

:class:`Feeder` produces the engine's input beats of one layer run: the descriptor, the M-Filter
columns and, per group tile, the parameter beats (from the table buffer) followed by the operand
steps of the fetch unit.
"""

from __future__ import annotations

from dataclasses import dataclass

from amaranth.hdl import Module, Signal, signed, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out
from amaranth.utils import ceil_log2

from ._util import checking
from .params import BeatKind, EngineParams

__all__ = ["AccelParams", "Op", "Target", "IO_WIDTH", "MAGIC", "VERSION", "Feeder"]

#: Width of the accelerator's input and output stream words.
IO_WIDTH = 32
#: First word of the INFO reply ("BACC").
MAGIC = 0x42414343
#: Second word of the INFO reply: 2 since the build parameter ``pair_reads``, 3 since ``pe_stages``
#: (one more word each).
VERSION = 3


class Op:
    """Command opcodes (bits 3:0 of a command header word)."""

    NOP = 0
    WRITE = 1   #: write ``count`` entries of a buffer from address (next word)
    RUN = 2     #: image words follow; run the program's layers on it
    INFO = 3    #: reply with the build parameters


class Target:
    """Buffer written by a WRITE command (header bits 7:4)."""

    DESC = 0
    WEIGHT = 1
    TABLE = 2
    FMAP0 = 3
    FMAP1 = 4


def _bits(n: int) -> int:
    """Width of an unsigned value holding ``0..n``."""
    return max(int(n), 1).bit_length()


_ENGINE_FIELDS = EngineParams.names()


@dataclass(frozen=True, kw_only=True)
class AccelParams:
    """Build parameters of the accelerator (keyword-only, checked).

    The engine's parameters (``rows``, ``cols``, ``word``, ``max_fan_in``, ``max_in_bits``,
    ``max_planes``, ``max_taps``, ``m_bits``, ``mul_bits``, ``add_bits``, ``count_bits``,
    ``pe_stages``) and:

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
    """

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
    fm_depth: int = 1024
    w_depth: int = 512
    t_depth: int = 256
    max_layers: int = 8
    max_dim: int = 64
    pair_reads: int = 1

    _LIMITS = {"fm_depth": (2, 1 << 20), "w_depth": (2, 1 << 20), "t_depth": (2, 1 << 20),
               "max_layers": (1, 256), "max_dim": (1, 4096), "pair_reads": (0, 1)}

    def __post_init__(self):
        object.__setattr__(self, "_engine", EngineParams(**{k: getattr(self, k) for k in _ENGINE_FIELDS}))
        for name, (lo, hi) in self._LIMITS.items():
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int):
                raise TypeError(f"accelerator parameter {name} must be an int, got {v!r}")
            if not lo <= v <= hi:
                raise ValueError(f"accelerator parameter {name} must be in {lo}..{hi}, got {v}")
        if self.max_in_bits > 1 and self.word < 8:
            raise ValueError(f"accelerator parameter word must be at least 8 when max_in_bits > 1 "
                             f"(multi-bit maps hold one byte per value), got {self.word}")

    @classmethod
    def names(cls) -> tuple:
        return tuple(_ENGINE_FIELDS) + tuple(cls._LIMITS)

    def as_dict(self) -> dict:
        return {k: getattr(self, k) for k in self.names()}

    @property
    def engine(self) -> EngineParams:
        return self._engine

    @property
    def tag(self) -> str:
        d = AccelParams()
        extra = "".join(f"-{k}{getattr(self, k)}" for k in self._LIMITS if getattr(self, k) != getattr(d, k))
        return f"{self.engine.tag}{extra}"

    # -- derived widths ---------------------------------------------------------------------------
    @property
    def fm_aw(self) -> int:
        return max(1, ceil_log2(self.fm_depth))

    @property
    def w_aw(self) -> int:
        return max(1, ceil_log2(self.w_depth))

    @property
    def t_aw(self) -> int:
        return max(1, ceil_log2(self.t_depth))

    @property
    def ring_count_w(self) -> int:
        """Width of the streamed-weight entry counters (written, released), which count modulo
        ``2**ring_count_w``: they are never more than ``w_depth`` apart."""
        return self.w_aw + 1

    @property
    def d_aw(self) -> int:
        return max(1, ceil_log2(self.max_layers))

    @property
    def dim_w(self) -> int:
        return _bits(self.max_dim)

    @property
    def coord_w(self) -> int:
        """Signed width of the fetch unit's input coordinates (``oy*stride - pad`` of a position up
        to ``cols`` past the end of the map, plus a kernel offset)."""
        return _bits((self.max_dim + self.cols + 1) * (self.max_dim + 1) + self.max_dim) + 1

    @property
    def oy_w(self) -> int:
        return _bits(self.max_dim + self.cols + 1)

    @property
    def mb_chunk(self) -> int:
        """Channels per feature-map word of a multi-bit map (one byte per value)."""
        return max(self.word // 8, 1)

    @property
    def ch_w(self) -> int:
        """Width of channel counts (output channels of a layer)."""
        return _bits(self.max_fan_in * max(self.max_planes, 1) + self.rows * self.max_planes)

    @property
    def nwords_w(self) -> int:
        return _bits(self.max_taps * self.engine.max_seg_words)

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
    def desc_layout(self) -> data.StructLayout:
        aw, dw, cw = self.fm_aw, self.dim_w, self.coord_w
        W = self.word
        return data.StructLayout({
            # engine
            "eng": self.engine.desc_layout,
            "w_base": unsigned(self.w_aw),
            "w_stream": 1,                           # weights streamed through the ring
            "nwords": unsigned(self.nwords_w),       # words per tile (n_seg * seg_words)
            "m_base": unsigned(self.t_aw),
            "p_base": unsigned(self.t_aw),
            "gt_opers": unsigned(32),                # operand steps per group tile
            # fetch (input map)
            "in_bank": 1,
            "in_base": unsigned(aw),
            "mb_in": 1,                              # input map holds bytes (multi-bit layer)
            "nch": unsigned(aw),                     # words per input pixel
            "last_n": unsigned(_bits(W)),            # channels in the last word of a pixel
            "kh": unsigned(dw), "kw": unsigned(dw),
            "in_h": unsigned(dw), "in_w": unsigned(dw),
            "seg_tap": 1,                            # one engine segment per tap (mcn)
            "pair": 1,                               # read two taps per cycle (one word per pixel, 2*C <= word)
            "conv_h": unsigned(dw), "conv_w": unsigned(dw),
            "c_init": signed(cw),                    # -padding
            "a_init": unsigned(aw),                  # address of the window of position 0
            "da_ky": unsigned(aw),                   # address step to the next kernel row
            # column stepping: by one position (init) and by `cols` positions (next tile)
            "r1": unsigned(dw), "q1": unsigned(self.oy_w), "dix1": signed(cw), "diy1": signed(cw),
            "da1": unsigned(aw),
            "rc": unsigned(dw), "qc": unsigned(self.oy_w), "dixc": signed(cw), "diyc": signed(cw),
            "dac": unsigned(aw),
            "dixw": signed(cw), "diyw": signed(cw), "daw": unsigned(aw),   # row wrap
            # write-back (output map)
            "out_bank": 1,
            "out_base": unsigned(aw),
            "mb_out": 1,                             # output map holds bytes (requant layer)
            "logits": 1,                             # outputs go to o_stream (last layer)
            "dump": 1,                               # stream the output map out after the layer
            "pool": 1,
            "out_ch": unsigned(self.ch_w),
            "planes": unsigned(_bits(self.max_planes)),
            "gt_ch": unsigned(self.ch_w),            # channels per group tile: rows * planes
            "nch_out": unsigned(aw),                 # words per output pixel
            "out_h": unsigned(dw), "out_w": unsigned(dw),   # after pooling
            "d_word": unsigned(aw), "d_bit": unsigned(_bits(W)),  # gt_ch * value bits = d_word*W + d_bit
            "dump_words": unsigned(aw + 1),
        })


class Feeder(wiring.Component):
    """Engine input beats of one layer run.

    After ``start`` (one cycle, with ``cfg`` valid and stable for the whole run) ``o_stream``
    carries: the DESC beat ``cfg.eng``; ``cfg.eng.n_seg`` MFILT beats (table entries
    ``m_base ..``); then per group tile ``rows`` PARAM beats (table entries ``p_base ..``,
    consecutive over the group tiles) followed by ``cfg.gt_opers`` OPER beats taken from
    ``oper_stream``. ``busy`` is high from ``start`` to the last beat's transfer. Table reads go
    through ``t_addr``/``t_en``/``t_data`` (a synchronous read port, one cycle latency).
    """

    def __init__(self, *, params: AccelParams):
        with checking(self):
            if not isinstance(params, AccelParams):
                raise TypeError(f"params must be an AccelParams, got {type(params).__name__}")
        self.params = p = params
        e = p.engine
        super().__init__({
            "cfg": In(p.desc_layout),
            "start": In(1),
            "busy": Out(1),
            "t_addr": Out(p.t_aw),
            "t_en": Out(1),
            "t_data": In(p.table_width),
            "oper_stream": In(stream.Signature(e.oper_layout)),
            "o_stream": Out(stream.Signature(e.in_layout)),
        })

    def elaborate(self, platform):
        m = Module()
        p = self.params
        e = p.engine
        cfg = self.cfg
        out = self.o_stream
        xfer = Signal()
        m.d.comb += xfer.eq(out.valid & out.ready)

        idx = Signal(range(max(e.max_taps, e.rows) + 1))
        ptr = Signal(p.t_aw)
        tvalid = Signal()                  # t_data holds the entry at ptr
        gt = Signal(e.count_bits)
        opers = Signal(32)

        last_m = idx == cfg.eng.n_seg - 1
        last_r = idx == e.rows - 1
        m.d.comb += self.t_addr.eq(ptr)

        def table_beat(kind, field, last, next_ptr_on_last, on_last):
            m.d.comb += [out.payload.kind.eq(kind), out.valid.eq(tvalid)]
            m.d.comb += field.eq(self.t_data[:len(field.as_value())])
            with m.If(~tvalid):
                m.d.comb += self.t_en.eq(1)
                m.d.sync += tvalid.eq(1)
            with m.Elif(xfer):
                with m.If(last):
                    m.d.sync += [idx.eq(0), tvalid.eq(0)]
                    if next_ptr_on_last is not None:
                        m.d.sync += ptr.eq(next_ptr_on_last)
                    on_last()
                with m.Else():
                    # read the next entry at once: one beat per cycle
                    m.d.comb += [self.t_en.eq(1), self.t_addr.eq(ptr + 1)]
                    m.d.sync += [idx.eq(idx + 1), ptr.eq(ptr + 1)]

        with m.FSM(name="feed") as fsm:
            with m.State("IDLE"):
                with m.If(self.start):
                    m.d.sync += [idx.eq(0), ptr.eq(cfg.m_base), tvalid.eq(0), gt.eq(0)]
                    m.next = "DESC"
            with m.State("DESC"):
                m.d.comb += [out.valid.eq(1), out.payload.kind.eq(BeatKind.DESC),
                             out.payload.data.desc.eq(cfg.eng)]
                with m.If(xfer):
                    m.next = "MFILT"
            with m.State("MFILT"):
                def to_param():
                    m.next = "PARAM"
                table_beat(BeatKind.MFILT, out.payload.data.mfilt, last_m, cfg.p_base, to_param)
            with m.State("PARAM"):
                def to_oper():
                    m.d.sync += opers.eq(0)
                    m.next = "OPER"
                table_beat(BeatKind.PARAM, out.payload.data.param, last_r, ptr + 1, to_oper)
            with m.State("OPER"):
                m.d.comb += [out.valid.eq(self.oper_stream.valid), out.payload.kind.eq(BeatKind.OPER),
                             out.payload.data.oper.eq(self.oper_stream.payload),
                             self.oper_stream.ready.eq(out.ready)]
                with m.If(xfer):
                    with m.If(opers == cfg.gt_opers - 1):
                        with m.If(gt == cfg.eng.n_gt - 1):
                            m.next = "IDLE"
                        with m.Else():
                            m.d.sync += gt.eq(gt + 1)
                            m.next = "PARAM"
                    with m.Else():
                        m.d.sync += opers.eq(opers + 1)
        m.d.comb += self.busy.eq(~fsm.ongoing("IDLE"))
        return m
