"""Byte-serial UART link (8N1) between a host and the accelerator.

``amaranth.lib`` 0.5 has no UART and amaranth-stdio is not a dependency, so the link is here:

* :class:`UARTTx` serialises the bytes of its ``i_stream``.
* :class:`UARTRx` deserialises the line into bytes on its ``o_stream``; a frame whose stop bit
  is low is dropped and reported on ``framing_error``, a byte that arrives while the previous
  one is still waiting on ``o_stream`` is dropped and reported on ``overrun``.

Both run in the ``sync`` domain and take ``divisor``: the number of clock cycles per bit, an
``int`` or a :class:`fractions.Fraction` (:func:`uart_divisor` gives ``clk_hz / baud``). The bit
period is fractional: a phase accumulator (:class:`_BitClock`) adds the denominator every cycle
and ticks when it passes the numerator, so bit ``k`` of a frame starts at cycle ``ceil(k *
divisor)`` after the frame's start (the receiver samples at ``(k + 1/2) * divisor`` after the
start bit's falling edge, rounded up). Each edge or sample is less than one clock cycle from its
ideal time, and that error does not grow along the frame.
"""

from fractions import Fraction
from numbers import Rational

from amaranth.hdl import Module, Signal, Cat, Const
from amaranth.lib import wiring, stream
from amaranth.lib.cdc import FFSynchronizer
from amaranth.lib.wiring import In, Out

__all__ = ["UARTTx", "UARTRx", "UARTEcho", "uart_divisor", "divisor_tag", "MIN_DIVISOR", "MAX_DENOMINATOR"]

#: Smallest supported number of clock cycles per bit (the receiver samples in the middle of a bit).
MIN_DIVISOR = 4

#: Largest denominator :func:`uart_divisor` uses for a fractional bit period (the accumulator then
#: has at most ``log2(2 * divisor * MAX_DENOMINATOR)`` bits; the period is within
#: ``1 / MAX_DENOMINATOR**2`` cycles of ``clk_hz / baud``).
MAX_DENOMINATOR = 256


def _check_divisor(divisor, who):
    if isinstance(divisor, bool) or not isinstance(divisor, Rational):
        raise TypeError(f"{who}: divisor must be an int or a fractions.Fraction (clock cycles per bit, "
                        f"e.g. uart_divisor(clk_hz, baud)), not {divisor!r}")
    if divisor < MIN_DIVISOR:
        raise ValueError(f"{who}: divisor must be >= {MIN_DIVISOR} clock cycles per bit, "
                         f"not {divisor}")
    return divisor


def divisor_tag(divisor) -> str:
    """A file-name-safe spelling of a divisor: ``4`` -> ``"4"``, ``Fraction(25, 3)`` -> ``"25_3"``."""
    d = Fraction(_check_divisor(divisor, "divisor_tag"))
    return str(d.numerator) if d.denominator == 1 else f"{d.numerator}_{d.denominator}"


def uart_divisor(clk_hz, baud, *, max_error=0.02):
    """Clock cycles per bit for ``baud`` at ``clk_hz``: ``clk_hz / baud`` as an ``int`` when it is
    whole, else as a :class:`~fractions.Fraction` (denominator at most :data:`MAX_DENOMINATOR`).

    Raises ``ValueError`` if the divisor is below :data:`MIN_DIVISOR` (the baud is too fast for
    the clock) or the achieved baud rate is off by more than ``max_error`` (relative): an 8N1
    receiver tolerates roughly 4 % of total mismatch between both ends, so one end must use at
    most about half of that.
    """
    if isinstance(clk_hz, bool) or not isinstance(clk_hz, (int, float, Rational)) or clk_hz <= 0:
        raise ValueError(f"clk_hz: expected a positive number, got {clk_hz!r}")
    if isinstance(baud, bool) or not isinstance(baud, (int, float, Rational)) or baud <= 0:
        raise ValueError(f"baud: expected a positive number, got {baud!r}")
    exact = Fraction(clk_hz) / Fraction(baud)
    if exact < MIN_DIVISOR:
        raise ValueError(f"baud {baud} is too fast for a {clk_hz / 1e6:g} MHz clock: "
                         f"{float(exact):.2f} cycles per bit, need >= {MIN_DIVISOR}")
    divisor = exact.limit_denominator(MAX_DENOMINATOR)
    divisor = max(divisor, Fraction(MIN_DIVISOR))
    error = abs(float(Fraction(clk_hz) / divisor - Fraction(baud)) / float(baud))
    if error > max_error:
        raise ValueError(f"baud {baud} at {clk_hz / 1e6:g} MHz: divisor {divisor} gives "
                         f"{float(Fraction(clk_hz) / divisor):.1f} baud, error {error:.2%} > {max_error:.2%}")
    return int(divisor) if divisor.denominator == 1 else divisor


class _BitClock:
    """Phase accumulator for a bit period of ``divisor = n / d`` cycles, in units of ``1 / (2 d)``
    cycle: ``phase`` grows by ``2 d`` per cycle and wraps at ``2 n``; ``tick`` is high in the cycle
    it wraps. :meth:`restart` starts a period (``half``: half a period) at the next cycle."""

    def __init__(self, m, divisor, name):
        d = Fraction(divisor)
        self.modulus, self.step = 2 * d.numerator, 2 * d.denominator
        self.phase = Signal(range(self.modulus), name=f"{name}_phase")
        self.tick = Signal(name=f"{name}_tick")
        self.m = m
        m.d.comb += self.tick.eq(self.phase >= self.modulus - self.step)

    def run(self):
        """Advance one cycle (call inside the states that time bits)."""
        with self.m.If(self.tick):
            self.m.d.sync += self.phase.eq(self.phase + (self.step - self.modulus))
        with self.m.Else():
            self.m.d.sync += self.phase.eq(self.phase + self.step)

    def restart(self, *, half=False):
        """The next period starts now: the next tick comes after a whole period (or half of one)."""
        self.m.d.sync += self.phase.eq(self.modulus // 2 if half else 0)


class UARTTx(wiring.Component):
    """UART transmitter, 8N1, LSB first.

    Parameters
    ----------
    divisor : int or fractions.Fraction, keyword-only
        Clock cycles per bit, >= :data:`MIN_DIVISOR`.

    Ports
    -----
    i_stream : In(stream.Signature(8))
        Bytes to send. A byte is taken when ``valid & ready``; ``ready`` is high only while the
        transmitter is idle, so any valid pattern is accepted.
    tx : Out(1)
        Serial line, idle high. Bit ``k`` of a frame starts ``ceil(k * divisor)`` cycles after
        the start bit (an integer divisor: every bit lasts ``divisor`` cycles); the stop bit
        lasts one cycle more when bytes follow back to back.
    busy : Out(1)
        High while a frame is on the line.
    """

    i_stream: In(stream.Signature(8))
    tx: Out(1, init=1)
    busy: Out(1)

    def __init__(self, *, divisor):
        self.divisor = _check_divisor(divisor, "UARTTx")
        super().__init__()

    def elaborate(self, platform):
        m = Module()
        clock = _BitClock(m, self.divisor, "bit")

        shreg = Signal(9)                      # data bits then stop bit, shifted out LSB first
        bits_left = Signal(range(11))          # bits still to finish, start bit included

        m.d.comb += self.busy.eq(bits_left != 0)
        with m.If(bits_left == 0):
            m.d.comb += self.i_stream.ready.eq(1)
            with m.If(self.i_stream.valid):
                m.d.sync += [
                    shreg.eq(Cat(self.i_stream.payload, Const(1, 1))),
                    self.tx.eq(0),             # start bit
                    bits_left.eq(10),
                ]
                clock.restart()
        with m.Else():
            clock.run()
            with m.If(clock.tick):
                m.d.sync += [
                    self.tx.eq(shreg[0]),
                    shreg.eq(Cat(shreg[1:], Const(1, 1))),
                    bits_left.eq(bits_left - 1),
                ]
        return m


class UARTRx(wiring.Component):
    """UART receiver, 8N1, LSB first.

    Parameters
    ----------
    divisor : int or fractions.Fraction, keyword-only
        Clock cycles per bit, >= :data:`MIN_DIVISOR`.

    Ports
    -----
    rx : In(1)
        Serial line, idle high; asynchronous to the clock (synchronised inside). Bit ``k`` of a
        frame (0: the start bit) is sampled ``ceil((k + 1/2) * divisor)`` cycles after the start
        bit's falling edge is seen.
    o_stream : Out(stream.Signature(8))
        Received bytes, one transfer per good frame. ``payload`` is stable while
        ``valid & ~ready``; the line cannot be held off, so the consumer has about one frame
        time (``10 * divisor`` cycles) to take a byte before the next one completes.
    framing_error : Out(1)
        One-cycle pulse when a frame's stop bit is low; the frame's byte is dropped. The
        receiver then waits for the line to return high before looking for a new start bit.
    overrun : Out(1)
        One-cycle pulse when a good frame completes while ``o_stream`` still holds an
        untaken byte; the new byte is dropped and the held one kept.
    """

    o_stream: Out(stream.Signature(8))
    rx: In(1, init=1)
    framing_error: Out(1)
    overrun: Out(1)

    def __init__(self, *, divisor):
        self.divisor = _check_divisor(divisor, "UARTRx")
        super().__init__()

    def elaborate(self, platform):
        m = Module()

        rx = Signal(init=1)
        m.submodules.rx_sync = FFSynchronizer(self.rx, rx, init=1)

        clock = _BitClock(m, self.divisor, "sample")
        shreg = Signal(8)
        bit = Signal(range(9))

        # Output register: the transfer clears valid; a new byte loads it (see "STOP").
        with m.If(self.o_stream.valid & self.o_stream.ready):
            m.d.sync += self.o_stream.valid.eq(0)

        with m.FSM():
            with m.State("IDLE"):
                with m.If(~rx):
                    clock.restart(half=True)   # sample in the middle of each bit
                    m.next = "START"
            with m.State("START"):
                clock.run()
                with m.If(clock.tick):
                    with m.If(rx):             # glitch, not a start bit
                        m.next = "IDLE"
                    with m.Else():
                        m.d.sync += bit.eq(0)
                        m.next = "DATA"
            with m.State("DATA"):
                clock.run()
                with m.If(clock.tick):
                    m.d.sync += [
                        shreg.eq(Cat(shreg[1:], rx)),
                        bit.eq(bit + 1),
                    ]
                    with m.If(bit == 7):
                        m.next = "STOP"
            with m.State("STOP"):
                clock.run()
                with m.If(clock.tick):
                    with m.If(rx):
                        with m.If(self.o_stream.valid & ~self.o_stream.ready):
                            m.d.comb += self.overrun.eq(1)
                        with m.Else():
                            m.d.sync += [
                                self.o_stream.payload.eq(shreg),
                                self.o_stream.valid.eq(1),
                            ]
                        m.next = "IDLE"
                    with m.Else():
                        m.d.comb += self.framing_error.eq(1)
                        m.next = "BREAK"
            with m.State("BREAK"):
                with m.If(rx):
                    m.next = "IDLE"
        return m


class UARTEcho(wiring.Component):
    """Smoke-test design: every byte from ``i_stream`` goes back out on ``o_stream``.

    A one-byte register between the streams, so both sides see registered handshakes;
    ``o_stream.payload`` is stable while ``valid & ~ready``.
    """

    i_stream: In(stream.Signature(8))
    o_stream: Out(stream.Signature(8))

    def elaborate(self, platform):
        m = Module()
        m.d.comb += self.i_stream.ready.eq(~self.o_stream.valid | self.o_stream.ready)
        with m.If(self.i_stream.valid & self.i_stream.ready):
            m.d.sync += [
                self.o_stream.payload.eq(self.i_stream.payload),
                self.o_stream.valid.eq(1),
            ]
        with m.Elif(self.o_stream.ready):
            m.d.sync += self.o_stream.valid.eq(0)
        return m

