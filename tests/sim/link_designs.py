"""Test designs around the frame link (``binaccel.hw.link``), used by ``tests/hw/test_link_hw.py`` in
Amaranth's simulator, by the cocotb testbench ``tests/sim/tb_link.py`` and by the fast path
(``tests/sim/test_link_sim.py``). Not part of the accelerator.

* :class:`LinkEcho`: bytes in -> :class:`~binaccel.hw.link.FrameLink` -> every received transfer
  is sent back unchanged (same kind, same bytes), STATUS frames in between -> bytes out.
* :class:`UartLinkEcho`: :class:`LinkEcho` behind ``UARTRx``/``UARTTx`` (ports ``rx``, ``tx``).
* :class:`FrameRxBench`: a :class:`~binaccel.hw.link.FrameRx` whose status events are taken
  (``o_status.ready`` high), for throughput measurements with one output stream.
"""

from amaranth.hdl import Module, Signal
from amaranth.lib import stream, wiring
from amaranth.lib.fifo import SyncFIFO
from amaranth.lib.wiring import In, Out

from binaccel.hw.link import RX_BEAT, TX_BEAT, FrameLink, FrameRx
from binaccel.hw.uart import UARTRx, UARTTx
from binaccel.sw.link import ALL_KINDS, MAX_PAYLOAD

__all__ = ["EchoAdapter", "LinkEcho", "UartLinkEcho", "FrameRxBench"]


class EchoAdapter(wiring.Component):
    """Received beats (``RX_BEAT``) -> transfer beats (``TX_BEAT``) through a two-entry FIFO (so
    that no combinational path runs from the transmitter's ``ready`` to the receiver): the same
    byte and kind; a transfer ends where the received frame with EOT ends."""

    i_stream: In(stream.Signature(RX_BEAT))
    o_stream: Out(stream.Signature(TX_BEAT))

    def elaborate(self, platform):
        m = Module()
        i, o = self.i_stream, self.o_stream
        m.submodules.fifo = q = SyncFIFO(width=TX_BEAT.size, depth=2)
        beat = Signal(TX_BEAT)
        m.d.comb += [
            beat.data.eq(i.payload.data), beat.kind.eq(i.payload.kind),
            beat.last.eq(i.payload.last & i.payload.eot), beat.empty.eq(i.payload.empty),
            q.w_data.eq(beat), q.w_en.eq(i.valid), i.ready.eq(q.w_rdy),
            o.payload.eq(q.r_data), o.valid.eq(q.r_rdy), q.r_en.eq(o.ready),
        ]
        return m


class LinkEcho(wiring.Component):
    """Frame link with an echo behind it: ``i_stream`` bytes (frames from the host) ->
    ``o_stream`` bytes (each transfer echoed with its kind, and a STATUS frame per received frame).
    Keyword-only parameters as :class:`~binaccel.hw.link.FrameLink`; all kinds are accepted."""

    i_stream: In(stream.Signature(8))
    o_stream: Out(stream.Signature(8))

    def __init__(self, *, max_payload=MAX_PAYLOAD, depth=2, timeout=1 << 16, status_depth=4):
        self.link = FrameLink(max_payload=max_payload, depth=depth, timeout=timeout,
                              kinds=ALL_KINDS, status_depth=status_depth)
        super().__init__()

    def elaborate(self, platform):
        m = Module()
        m.submodules.link = link = self.link
        m.submodules.echo = echo = EchoAdapter()
        wiring.connect(m, wiring.flipped(self.i_stream), link.i_stream)
        wiring.connect(m, link.o_stream, wiring.flipped(self.o_stream))
        wiring.connect(m, link.o_data, echo.i_stream)
        wiring.connect(m, echo.o_stream, link.i_data)
        return m


class UartLinkEcho(wiring.Component):
    """:class:`LinkEcho` behind a UART (8N1, ``divisor`` clock cycles per bit): ``rx`` in,
    ``tx`` out. Keyword-only parameters: ``divisor`` and those of :class:`LinkEcho`."""

    rx: In(1, init=1)
    tx: Out(1, init=1)

    def __init__(self, *, divisor, **link_params):
        self.uart_rx = UARTRx(divisor=divisor)
        self.uart_tx = UARTTx(divisor=divisor)
        self.echo = LinkEcho(**link_params)
        super().__init__()

    def elaborate(self, platform):
        m = Module()
        m.submodules.uart_rx = urx = self.uart_rx
        m.submodules.uart_tx = utx = self.uart_tx
        m.submodules.echo = echo = self.echo
        m.d.comb += [urx.rx.eq(self.rx), self.tx.eq(utx.tx)]
        wiring.connect(m, urx.o_stream, echo.i_stream)
        wiring.connect(m, echo.o_stream, utx.i_stream)
        return m


class FrameRxBench(wiring.Component):
    """:class:`~binaccel.hw.link.FrameRx` (all kinds accepted) with ``o_status`` always taken:
    ``i_stream`` bytes -> ``o_stream`` ``RX_BEAT`` beats."""

    i_stream: In(stream.Signature(8))
    o_stream: Out(stream.Signature(RX_BEAT))

    def __init__(self, *, max_payload=MAX_PAYLOAD, depth=2, timeout=1 << 16):
        self.rx = FrameRx(max_payload=max_payload, depth=depth, timeout=timeout, kinds=ALL_KINDS)
        super().__init__()

    def elaborate(self, platform):
        m = Module()
        m.submodules.rx = rx = self.rx
        wiring.connect(m, wiring.flipped(self.i_stream), rx.i_stream)
        wiring.connect(m, rx.o_stream, wiring.flipped(self.o_stream))
        m.d.comb += rx.o_status.ready.eq(1)
        return m
