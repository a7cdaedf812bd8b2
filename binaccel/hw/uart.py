"""Byte-serial UART link (8N1) between a host and the accelerator.

``amaranth.lib`` 0.5 has no UART and amaranth-stdio is not a dependency, so the link is here:

* :class:`UARTTx` serialises the bytes of its ``i_stream``.
* :class:`UARTRx` deserialises the line into bytes on its ``o_stream``; a frame whose stop bit
  is low is dropped and reported on ``framing_error``, a byte that arrives while the previous
  one is still waiting on ``o_stream`` is dropped and reported on ``overrun``.

Both run in the ``sync`` domain and take ``divisor``: the number of clock cycles per bit
(``clk_hz // baud`` or :func:`uart_divisor`).
"""

from amaranth.hdl import Module, Signal, Cat, Const
from amaranth.lib import wiring, stream
from amaranth.lib.cdc import FFSynchronizer
from amaranth.lib.wiring import In, Out

__all__ = ["UARTTx", "UARTRx", "UARTEcho", "uart_divisor", "MIN_DIVISOR"]

#: Smallest supported number of clock cycles per bit (the receiver samples in the middle of a bit).
MIN_DIVISOR = 4


def _check_divisor(divisor, who):
    if not isinstance(divisor, int) or isinstance(divisor, bool):
        raise TypeError(f"{who}: divisor must be an int (clock cycles per bit), "
                        f"not {divisor!r}")
    if divisor < MIN_DIVISOR:
        raise ValueError(f"{who}: divisor must be >= {MIN_DIVISOR} clock cycles per bit, "
                         f"not {divisor}")
    return divisor


def uart_divisor(clk_hz, baud, *, max_error=0.02):
    """Clock cycles per bit for ``baud`` at ``clk_hz``, rounded to nearest.

    Raises ``ValueError`` if the divisor is below :data:`MIN_DIVISOR` or the achieved baud rate
    is off by more than ``max_error`` (relative): an 8N1 receiver tolerates roughly 4 % of
    total mismatch between both ends, so one end must use at most about half of that.
    """
    if not isinstance(clk_hz, (int, float)) or clk_hz <= 0:
        raise ValueError(f"clk_hz must be a positive number, not {clk_hz!r}")
    if not isinstance(baud, (int, float)) or baud <= 0:
        raise ValueError(f"baud must be a positive number, not {baud!r}")
    divisor = int(round(clk_hz / baud))
    if divisor < MIN_DIVISOR:
        raise ValueError(f"baud {baud} is too fast for a {clk_hz / 1e6:g} MHz clock: "
                         f"{clk_hz / baud:.2f} cycles per bit, need >= {MIN_DIVISOR}")
    error = abs(clk_hz / divisor - baud) / baud
    if error > max_error:
        raise ValueError(f"baud {baud} at {clk_hz / 1e6:g} MHz: divisor {divisor} gives "
                         f"{clk_hz / divisor:.1f} baud, error {error:.2%} > {max_error:.2%}")
    return divisor


class UARTTx(wiring.Component):
    """UART transmitter, 8N1, LSB first.

    Parameters
    ----------
    divisor : int, keyword-only
        Clock cycles per bit, >= :data:`MIN_DIVISOR`.

    Ports
    -----
    i_stream : In(stream.Signature(8))
        Bytes to send. A byte is taken when ``valid & ready``; ``ready`` is high only while the
        transmitter is idle, so any valid pattern is accepted.
    tx : Out(1)
        Serial line, idle high. Each bit lasts ``divisor`` cycles (the stop bit one cycle more
        when bytes follow back to back).
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
        div = self.divisor

        shreg = Signal(9)                      # data bits then stop bit, shifted out LSB first
        bits_left = Signal(range(11))          # bits still to finish, start bit included
        timer = Signal(range(div))

        m.d.comb += self.busy.eq(bits_left != 0)
        with m.If(bits_left == 0):
            m.d.comb += self.i_stream.ready.eq(1)
            with m.If(self.i_stream.valid):
                m.d.sync += [
                    shreg.eq(Cat(self.i_stream.payload, Const(1, 1))),
                    self.tx.eq(0),             # start bit
                    bits_left.eq(10),
                    timer.eq(div - 1),
                ]
        with m.Elif(timer == 0):
            m.d.sync += [
                self.tx.eq(shreg[0]),
                shreg.eq(Cat(shreg[1:], Const(1, 1))),
                bits_left.eq(bits_left - 1),
                timer.eq(div - 1),
            ]
        with m.Else():
            m.d.sync += timer.eq(timer - 1)
        return m


class UARTRx(wiring.Component):
    """UART receiver, 8N1, LSB first.

    Parameters
    ----------
    divisor : int, keyword-only
        Clock cycles per bit, >= :data:`MIN_DIVISOR`.

    Ports
    -----
    rx : In(1)
        Serial line, idle high; asynchronous to the clock (synchronised inside).
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
        div = self.divisor

        rx = Signal(init=1)
        m.submodules.rx_sync = FFSynchronizer(self.rx, rx, init=1)

        timer = Signal(range(div))
        shreg = Signal(8)
        bit = Signal(range(9))

        # Output register: the transfer clears valid; a new byte loads it (see "STOP").
        with m.If(self.o_stream.valid & self.o_stream.ready):
            m.d.sync += self.o_stream.valid.eq(0)

        with m.FSM():
            with m.State("IDLE"):
                with m.If(~rx):
                    m.d.sync += timer.eq(div // 2 - 1)
                    m.next = "START"
            with m.State("START"):
                with m.If(timer == 0):
                    with m.If(rx):             # glitch, not a start bit
                        m.next = "IDLE"
                    with m.Else():
                        m.d.sync += [timer.eq(div - 1), bit.eq(0)]
                        m.next = "DATA"
                with m.Else():
                    m.d.sync += timer.eq(timer - 1)
            with m.State("DATA"):
                with m.If(timer == 0):
                    m.d.sync += [
                        shreg.eq(Cat(shreg[1:], rx)),
                        timer.eq(div - 1),
                        bit.eq(bit + 1),
                    ]
                    with m.If(bit == 7):
                        m.next = "STOP"
                with m.Else():
                    m.d.sync += timer.eq(timer - 1)
            with m.State("STOP"):
                with m.If(timer == 0):
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
                with m.Else():
                    m.d.sync += timer.eq(timer - 1)
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

