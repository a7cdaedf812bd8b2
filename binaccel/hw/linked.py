"""The accelerator behind the frame link: what a board runs behind its UART.

:class:`LinkedAccelerator` is a byte-stream component (``i_stream`` / ``o_stream``, 8 bits): the
bytes of host frames (``docs/link.md``) come in, the accelerator's command words
(``docs/accelerator.md``) are the payloads of the data frames, four bytes per word, little-endian;
its output words go back as ``RESULT`` transfers, and every receiver event as a ``STATUS`` frame.
:class:`~binaccel.hw.boards.BoardTop` puts it on a board; :mod:`binaccel.sim.tb_uart` simulates it
behind the simulated UART (``UARTBridge``) for the host driver's ``uart`` transport.

::

    i_stream -> FrameLink.rx -> bytes to words -> Accelerator -> words to bytes -> FrameLink.tx -> o_stream
                       `-- RESET frame: resets the accelerator and both converters (not the link)
"""


from amaranth.hdl import Cat, Module, Mux, ResetInserter, Shape, Signal, Value
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from binaccel.sw.hwif import IO_WIDTH
from binaccel.sw.link import MAX_PAYLOAD, FrameKind

from ._util import checking
from .boards import UARTBridge
from .engine import Engine
from .link import DEFAULT_TIMEOUT, RX_BEAT, TX_BEAT, FrameLink
from .params import layout
from .top import Accelerator
from .uart import _check_divisor

__all__ = ["LinkedAccelerator", "UartAccelerator", "LinkedEngine", "BytesToWords", "WordsToBytes", "WordsToBeats",
           "BeatsToWords", "UartEngine"]

_BYTES = IO_WIDTH // 8


class BytesToWords(wiring.Component):
    """Payload bytes of received frames (``RX_BEAT``) -> little-endian ``IO_WIDTH``-bit words.

    Every data byte counts, whatever its frame's kind; frame and transfer boundaries do not
    (a word may straddle two frames); ``empty`` beats carry nothing. Bytes of an unfinished word
    wait for the next ones. Takes a byte per cycle; tolerates any valid/ready pattern.
    """

    i_stream: In(stream.Signature(RX_BEAT))
    o_stream: Out(stream.Signature(IO_WIDTH))

    def elaborate(self, platform):
        m = Module()
        shreg = Signal(IO_WIDTH - 8)
        n = Signal(range(_BYTES))
        beat = self.i_stream.payload
        last_byte = n == _BYTES - 1
        m.d.comb += self.o_stream.payload.eq(
            (beat.data << (IO_WIDTH - 8)) | shreg)
        m.d.comb += self.o_stream.valid.eq(self.i_stream.valid & ~beat.empty & last_byte)
        m.d.comb += self.i_stream.ready.eq(beat.empty | ~last_byte | self.o_stream.ready)
        with m.If(self.i_stream.valid & self.i_stream.ready & ~beat.empty):
            m.d.sync += n.eq(Mux(last_byte, 0, n + 1))
            m.d.sync += shreg.eq((shreg >> 8) | (beat.data << (IO_WIDTH - 16)))
        return m


class WordsToBytes(wiring.Component):
    """``IO_WIDTH``-bit words -> ``RESULT`` transfer bytes (``TX_BEAT``), little-endian.

    A transfer ends (``last``) after a word if no further word had been offered by the time that
    word's first bytes were sent: output that comes in a burst (the logits and counters of an
    image) travels as one transfer, and a transfer is never held open waiting for the
    accelerator. ``last`` and the data are stable while offered.

    ``flush`` (one cycle) drops the word being sent; a transfer left open is then closed with an
    empty ``last`` beat, so the frame transmitter behind is never left waiting for its end.
    Tolerates any valid/ready pattern.
    """

    i_stream: In(stream.Signature(IO_WIDTH))
    o_stream: Out(stream.Signature(TX_BEAT))
    flush: In(1)

    def elaborate(self, platform):
        m = Module()
        buf = Signal(IO_WIDTH)
        left = Signal(range(_BYTES + 1))  # bytes of buf still to send
        more = Signal()  # another word was offered while this one was being sent
        open_ = Signal()  # a transfer has begun and not ended
        close = Signal()  # an empty last beat is owed (after a flush)
        beat = self.o_stream.payload
        # The kind is a constant, but a comb assignment of a constant alone becomes an
        # `always @*` block without inputs in Yosys' Verilog, which Verilator never evaluates
        # (the kind read 0). A register holding that value is the same on every backend.
        kind = Signal(4, init=FrameKind.RESULT)
        m.d.sync += kind.eq(FrameKind.RESULT)
        m.d.comb += beat.kind.eq(kind)
        with m.If(close):
            m.d.comb += [self.o_stream.valid.eq(1), beat.empty.eq(1), beat.last.eq(1)]
        with m.Else():
            m.d.comb += [
                self.o_stream.valid.eq(left != 0),
                beat.data.eq(buf[:8]),
                beat.last.eq((left == 1) & ~more),
                self.i_stream.ready.eq(left == 0),
            ]
        with m.If(self.flush):
            m.d.sync += [left.eq(0), more.eq(0), open_.eq(0), close.eq(close | open_)]
        with m.Elif(close):
            with m.If(self.o_stream.ready):
                m.d.sync += close.eq(0)
        with m.Elif(left == 0):
            with m.If(self.i_stream.valid):
                m.d.sync += [buf.eq(self.i_stream.payload), left.eq(_BYTES), more.eq(0)]
        with m.Else():
            with m.If(left > 1):
                m.d.sync += more.eq(more | self.i_stream.valid)
            with m.If(self.o_stream.ready):
                m.d.sync += [buf.eq(buf >> 8), left.eq(left - 1), open_.eq(~beat.last)]
        return m


class _Linked(wiring.Component):
    """A core behind a :class:`~binaccel.hw.link.FrameLink` (``LinkedAccelerator``,
    ``LinkedEngine``): frame bytes -> link -> words (:class:`BytesToWords`) -> the core's stages
    (:meth:`_chain`, each a component with ``i_stream``/``o_stream``, words into the first and out of
    the last) -> RESULT transfers (:class:`WordsToBytes`) -> link. A good RESET frame
    resets everything behind the link (``ResetInserter``) and flushes the transmitting converter."""

    i_stream: In(stream.Signature(8))
    o_stream: Out(stream.Signature(8))
    busy: Out(1)
    error: Out(1)

    def __init__(self, core, *, max_payload, depth, timeout):
        with checking(self):
            try:
                self.link = FrameLink(max_payload=max_payload, depth=depth, timeout=timeout)
            except Exception:
                core._MustUse__silence = True
                raise
        self.link_params = {"max_payload": max_payload, "depth": depth, "timeout": timeout}
        super().__init__()

    def _chain(self, m, soft):
        """Add the core's stages (reset by ``soft``) to ``m``; return them in stream order, and the
        core's ``busy`` and ``error``."""
        raise NotImplementedError

    def elaborate(self, platform):
        m = Module()
        m.submodules.link = link = self.link
        soft = link.o_reset
        m.submodules.b2w = b2w = ResetInserter(soft)(BytesToWords())
        stages, busy, error = self._chain(m, soft)
        m.submodules.w2b = w2b = WordsToBytes()
        m.d.comb += w2b.flush.eq(soft)
        wiring.connect(m, wiring.flipped(self.i_stream), link.i_stream)
        wiring.connect(m, link.o_stream, wiring.flipped(self.o_stream))
        wiring.connect(m, link.o_data, b2w.i_stream)
        chain = [b2w, *stages, w2b]
        for a, b in zip(chain, chain[1:]):
            wiring.connect(m, a.o_stream, b.i_stream)
        wiring.connect(m, w2b.o_stream, link.i_data)
        m.d.comb += [self.busy.eq(busy), self.error.eq(error)]
        return m


class LinkedAccelerator(_Linked):
    """:class:`~binaccel.hw.top.Accelerator` behind a :class:`~binaccel.hw.link.FrameLink`.

    Keyword-only parameters: ``max_payload``, ``depth``, ``timeout`` of the link (see
    :class:`~binaccel.hw.link.FrameRx`), everything else is an accelerator build parameter
    (:class:`~binaccel.hw.seq.AccelParams`), each checked.

    Ports: ``i_stream`` / ``o_stream`` (``stream.Signature(8)``): frame bytes from / to the host;
    ``busy`` and ``error`` of the accelerator. The payload bytes of ``PROGRAM``, ``WEIGHTS``,
    ``TABLES`` and ``IMAGE`` frames, in frame order, are the accelerator's input words
    (little-endian, 4 bytes each); its output words come back in ``RESULT`` transfers. A good
    ``RESET`` frame resets the accelerator and the converters (the link keeps its sequence
    numbers, see ``docs/link.md``): a run cut off by a corrupted or truncated stream is abandoned
    and the accelerator is idle again, with its build unchanged.
    """

    def __init__(self, *, max_payload=MAX_PAYLOAD, depth=2, timeout=DEFAULT_TIMEOUT, **accel_params):
        with checking(self):
            self.accel = Accelerator(**accel_params)
        self.params = self.accel.params
        super().__init__(self.accel, max_payload=max_payload, depth=depth, timeout=timeout)

    def _chain(self, m, soft):
        m.submodules.accel = acc = ResetInserter(soft)(self.accel)
        return [acc], acc.busy, acc.error


class _UartDesign(wiring.Component):
    """A linked design (byte streams, ``busy``, ``error``) behind the board's UART glue
    (:class:`~binaccel.hw.boards.UARTBridge`): everything :class:`~binaccel.hw.boards.BoardTop`
    puts on a board except the pins, clock and reset."""

    rx: In(1, init=1)
    tx: Out(1, init=1)
    uart_error: Out(1)
    busy: Out(1)
    error: Out(1)

    def __init__(self, linked_cls, *, divisor, rx_fifo_depth=16, **params):
        with checking(self):
            _check_divisor(divisor, type(self).__name__)
            self.linked = linked_cls(**params)
            self.bridge = UARTBridge(self.linked, divisor=divisor, rx_fifo_depth=rx_fifo_depth)
        self.divisor = divisor
        super().__init__()

    def elaborate(self, platform):
        m = Module()
        m.submodules.bridge = bridge = self.bridge
        m.d.comb += [bridge.rx.eq(self.rx), self.tx.eq(bridge.tx), self.uart_error.eq(bridge.error),
                     self.busy.eq(self.linked.busy), self.error.eq(self.linked.error)]
        return m


class UartAccelerator(_UartDesign):
    """:class:`LinkedAccelerator` behind the board's UART glue
    (:class:`~binaccel.hw.boards.UARTBridge`): everything :class:`~binaccel.hw.boards.BoardTop`
    puts on a board except the pins, clock and reset. What the ``uart`` transport simulates.

    Keyword-only parameters: ``divisor`` (clock cycles per UART bit, >= 4), ``rx_fifo_depth``
    (bytes between the UART receiver and the link, default 16), and those of
    :class:`LinkedAccelerator`.

    Ports: ``rx`` (line in, idle high), ``tx`` (line out); ``uart_error`` (a framing error or
    receive overrun, sticky until reset); ``busy`` and ``error`` of the accelerator.
    """

    def __init__(self, *, divisor, rx_fifo_depth=16, **params):
        super().__init__(LinkedAccelerator, divisor=divisor, rx_fifo_depth=rx_fifo_depth, **params)


def _words_per_beat(layout) -> int:
    """``IO_WIDTH``-bit words per beat of ``layout`` (checked: shape-castable, at least 1 bit)."""
    try:
        width = Shape.cast(layout).width
    except TypeError as e:
        raise TypeError(f"layout must be shape-castable, got {layout!r}") from e
    if width < 1:
        raise ValueError(f"layout must be at least 1 bit wide, got {width}")
    return -(-width // IO_WIDTH)


class WordsToBeats(wiring.Component):
    """``IO_WIDTH``-bit words -> beats of ``layout``: ``words`` = ceil(width / IO_WIDTH) words per
    beat, least significant word first, the bits past the layout's width ignored.

    Keyword-only parameter: ``layout`` (any shape-castable: the payload of ``o_stream``).
    A beat is offered with its last word (no extra cycle); tolerates any valid/ready pattern.
    """

    def __init__(self, *, layout):
        with checking(self):
            self.words = _words_per_beat(layout)
        self.layout = layout
        super().__init__({"i_stream": In(stream.Signature(IO_WIDTH)), "o_stream": Out(stream.Signature(layout))})

    def elaborate(self, platform):
        m = Module()
        n = self.words
        width = Shape.cast(self.layout).width
        if n == 1:
            m.d.comb += [self.o_stream.payload.eq(self.i_stream.payload[:width]),
                         self.o_stream.valid.eq(self.i_stream.valid), self.i_stream.ready.eq(self.o_stream.ready)]
            return m
        held = Signal((n - 1) * IO_WIDTH)
        k = Signal(range(n))
        last = k == n - 1
        m.d.comb += [
            self.o_stream.payload.eq(Cat(held, self.i_stream.payload)[:width]),
            self.o_stream.valid.eq(self.i_stream.valid & last),
            self.i_stream.ready.eq(~last | self.o_stream.ready),
        ]
        with m.If(self.i_stream.valid & self.i_stream.ready):
            m.d.sync += k.eq(Mux(last, 0, k + 1))
            with m.Switch(k):
                for j in range(n - 1):
                    with m.Case(j):
                        m.d.sync += held[j * IO_WIDTH:(j + 1) * IO_WIDTH].eq(self.i_stream.payload)
        return m


class BeatsToWords(wiring.Component):
    """Beats of ``layout`` -> ``IO_WIDTH``-bit words: ceil(width / IO_WIDTH) words per beat, least
    significant first, zero-padded. The inverse of :class:`WordsToBeats`.

    Keyword-only parameter: ``layout`` (any shape-castable: the payload of ``i_stream``).
    A beat is taken when its previous one's last word leaves; tolerates any valid/ready pattern.
    """

    def __init__(self, *, layout):
        with checking(self):
            self.words = _words_per_beat(layout)
        self.layout = layout
        super().__init__({"i_stream": In(stream.Signature(layout)), "o_stream": Out(stream.Signature(IO_WIDTH))})

    def elaborate(self, platform):
        m = Module()
        n = self.words
        buf = Signal(n * IO_WIDTH)
        left = Signal(range(n + 1))        # words of buf still to send
        m.d.comb += [
            self.o_stream.payload.eq(buf[:IO_WIDTH]),
            self.o_stream.valid.eq(left != 0),
            self.i_stream.ready.eq(left == 0),
        ]
        with m.If(self.i_stream.valid & self.i_stream.ready):
            m.d.sync += [buf.eq(Value.cast(self.i_stream.payload)), left.eq(n)]
        with m.Elif(self.o_stream.valid & self.o_stream.ready):
            m.d.sync += [buf.eq(buf >> IO_WIDTH), left.eq(left - 1)]
        return m


class LinkedEngine(_Linked):
    """The layer :class:`~binaccel.hw.engine.Engine` behind a :class:`~binaccel.hw.link.FrameLink`:
    the board design for a device too small for the whole-network accelerator (the iCE40UP5K).
    The host does what the accelerator's fetch unit, write-back and sequencer do (im2col, operand
    packing, pooling, the feature maps between layers: :mod:`binaccel.sw.enginehost`); the device
    computes each layer's XNOR/AND-popcounts, modulation and scale.

    Keyword-only parameters: ``max_payload``, ``depth``, ``timeout`` of the link (see
    :class:`~binaccel.hw.link.FrameRx`), everything else is an engine build parameter
    (:class:`~binaccel.hw.params.EngineParams`), each checked.

    Ports: ``i_stream`` / ``o_stream`` (``stream.Signature(8)``): frame bytes from / to the host;
    ``busy`` and ``error`` of the engine. The payload bytes of data frames, in frame order, are the
    engine's input beats (``EngineParams.in_layout``), each ``in_words`` little-endian 32-bit words
    (``docs/hardware.md``); its output beats (``out_layout``, ``out_words`` words each) come back in
    ``RESULT`` transfers. A good ``RESET`` frame resets the engine and the converters (not the link).
    """

    def __init__(self, *, max_payload=MAX_PAYLOAD, depth=2, timeout=DEFAULT_TIMEOUT, **engine_params):
        with checking(self):
            self.engine = Engine(**engine_params)
        self.params = p = self.engine.params
        self.in_words = _words_per_beat(layout(p.in_layout))
        self.out_words = _words_per_beat(layout(p.out_layout))
        super().__init__(self.engine, max_payload=max_payload, depth=depth, timeout=timeout)

    def _chain(self, m, soft):
        p = self.params
        m.submodules.w2beat = w2beat = ResetInserter(soft)(WordsToBeats(layout=layout(p.in_layout)))
        m.submodules.engine = eng = ResetInserter(soft)(self.engine)
        m.submodules.beat2w = beat2w = ResetInserter(soft)(BeatsToWords(layout=layout(p.out_layout)))
        return [w2beat, eng, beat2w], eng.busy | beat2w.o_stream.valid, eng.error


class UartEngine(_UartDesign):
    """:class:`LinkedEngine` behind the board's UART glue, as :class:`UartAccelerator` for the
    accelerator: what :mod:`binaccel.sim.engine_link` simulates. Keyword-only parameters:
    ``divisor``, ``rx_fifo_depth`` (as :class:`UartAccelerator`) and those of :class:`LinkedEngine`.
    Ports: as :class:`UartAccelerator`'s; ``busy`` and ``error`` are the engine's.
    """

    def __init__(self, *, divisor, rx_fifo_depth=16, **params):
        super().__init__(LinkedEngine, divisor=divisor, rx_fifo_depth=rx_fifo_depth, **params)
