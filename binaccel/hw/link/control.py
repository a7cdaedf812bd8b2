"""The link: receiver and transmitter behind one byte transport, with the receiver's status events
sent back to the host as STATUS frames between the transfers."""

from amaranth.hdl import Array, Module, Signal
from amaranth.lib import stream, wiring
from amaranth.lib.fifo import SyncFIFO
from amaranth.lib.wiring import In, Out

from binaccel.sw.link import HOST_TO_DEVICE, MAX_PAYLOAD, STATUS_SIZE, FrameKind

from .._util import check_int, checking
from .frames import DEFAULT_TIMEOUT, RX_BEAT, RX_STATUS, TX_BEAT
from .rx import FrameRx
from .tx import FrameTx


class FrameLink(wiring.Component):
    """Both directions of the frame link, for an accelerator behind a byte transport.

    Keyword-only parameters: ``max_payload``, ``depth``, ``timeout``, ``kinds`` as
    :class:`FrameRx` (``depth`` and ``max_payload`` also for the :class:`FrameTx`);
    ``status_depth`` (default 4): status events held while an accelerator transfer is being sent
    (beyond the 3 the receiver itself holds).

    Ports:

    * ``i_stream`` (bytes from the transport) -> :class:`FrameRx` -> ``o_data``
      (``stream.Signature(RX_BEAT)``) to the accelerator; ``o_reset`` as ``FrameRx.o_reset``.
    * ``i_data`` (``stream.Signature(TX_BEAT)``) from the accelerator -> :class:`FrameTx` ->
      ``o_stream`` (bytes to the transport).
    * Every receiver status event goes back to the host as a STATUS frame (payload:
      code, kind, seq, expect; :func:`binaccel.sw.link.parse_status`), sent between the
      accelerator's transfers (a transfer on ``i_data`` is never split by a STATUS frame).
    """

    i_stream: In(stream.Signature(8))
    o_stream: Out(stream.Signature(8))
    o_data: Out(stream.Signature(RX_BEAT))
    i_data: In(stream.Signature(TX_BEAT))
    o_reset: Out(1)

    def __init__(self, *, max_payload=MAX_PAYLOAD, depth=2, timeout=DEFAULT_TIMEOUT, kinds=HOST_TO_DEVICE,
                 status_depth=4):
        with checking(self):
            check_int("FrameLink: status_depth", status_depth, 1, 1024)
            self.status_depth = status_depth
            self.rx = FrameRx(max_payload=max_payload, depth=depth, timeout=timeout, kinds=kinds)
            self.tx = FrameTx(max_payload=max_payload, depth=depth)
        super().__init__()

    def elaborate(self, platform):
        m = Module()
        m.submodules.rx = rx = self.rx
        m.submodules.tx = tx = self.tx
        wiring.connect(m, wiring.flipped(self.i_stream), rx.i_stream)
        wiring.connect(m, tx.o_stream, wiring.flipped(self.o_stream))
        wiring.connect(m, rx.o_stream, wiring.flipped(self.o_data))
        m.d.comb += self.o_reset.eq(rx.o_reset)

        # Status events wait in a FIFO, so that a long accelerator transfer does not hold up the
        # receiver. The arbiter in front of the transmitter switches only between transfers. The
        # head event is read combinationally and popped after its last byte (an asynchronous read:
        # a few registers, not a block RAM, for this small queue).
        m.submodules.status_fifo = q = SyncFIFO(width=RX_STATUS.size, depth=self.status_depth)
        m.d.comb += [q.w_data.eq(rx.o_status.payload), q.w_en.eq(rx.o_status.valid),
                     rx.o_status.ready.eq(q.w_rdy)]
        ev = Signal(RX_STATUS)
        m.d.comb += ev.eq(q.r_data)
        ev_bytes = Array([ev.code, ev.kind, ev.seq, ev.expect])
        k = Signal(range(STATUS_SIZE))
        with m.FSM(name="arbiter"):
            with m.State("IDLE"):
                with m.If(q.r_rdy):
                    m.d.sync += k.eq(0)
                    m.next = "STATUS"
                with m.Elif(self.i_data.valid):
                    m.next = "DATA"
            with m.State("STATUS"):
                m.d.comb += [
                    tx.i_stream.valid.eq(1),
                    tx.i_stream.payload.data.eq(ev_bytes[k]),
                    tx.i_stream.payload.kind.eq(FrameKind.STATUS),
                    tx.i_stream.payload.last.eq(k == STATUS_SIZE - 1),
                ]
                with m.If(tx.i_stream.ready):
                    m.d.sync += k.eq(k + 1)
                    with m.If(k == STATUS_SIZE - 1):
                        m.d.comb += q.r_en.eq(1)
                        m.next = "IDLE"
            with m.State("DATA"):
                wiring.connect(m, wiring.flipped(self.i_data), tx.i_stream)
                with m.If(self.i_data.valid & self.i_data.ready & self.i_data.payload.last):
                    m.next = "IDLE"
        return m
