"""The frame transmitter: transfers in, framed bytes out."""

from amaranth.hdl import Array, Cat, Const, Module, Mux, Signal
from amaranth.lib import stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from binaccel.sw.link import MAX_PAYLOAD, SYNC0, SYNC1

from .._util import checking
from .frames import _SEL_CONST, _SEL_CRC_HI, _SEL_CRC_LO, _SEL_MEM, TX_BEAT, _check_geometry, crc16_byte


class FrameTx(wiring.Component):
    """Frame transmitter: transfers in, framed bytes out.

    Keyword-only parameters: ``max_payload`` (bytes per frame; power of two, default 256) and
    ``depth`` (frame buffers; power of two, default 2). Buffer memory: one
    ``amaranth.lib.memory.Memory`` of ``depth * max_payload`` bytes.

    Ports:

    * ``i_stream`` (``stream.Signature(TX_BEAT)``): transfers, one byte per beat, the last beat
      marked ``last``. Each transfer leaves as frames of ``max_payload`` bytes, the last one
      shorter (LEN 0 if the transfer is empty, or if its end comes as an ``empty`` beat right
      after a full frame); SOT marks its first frame and EOT its last. The kind of a frame is the
      ``kind`` of its first beat. ``ready`` is a register (a buffer is free).
    * ``o_stream`` (``stream.Signature(8)``): the frames' bytes (``docs/link.md``), sequence
      numbers 0, 1, 2, ... mod 256 from reset.

    A frame is sent once it is complete (``max_payload`` bytes or the transfer's end); the next
    frame fills the other buffer meanwhile. ``o_stream`` runs at one byte per cycle; both streams
    tolerate any valid/ready pattern.
    """

    i_stream: In(stream.Signature(TX_BEAT))
    o_stream: Out(stream.Signature(8))

    def __init__(self, *, max_payload=MAX_PAYLOAD, depth=2):
        with checking(self):
            _check_geometry("FrameTx", max_payload, depth)
        self.max_payload, self.depth = max_payload, depth
        super().__init__()

    @property
    def memory_bytes(self):
        """Bytes of frame buffer memory."""
        return self.max_payload * self.depth

    def elaborate(self, platform):
        m = Module()
        P, D = self.max_payload, self.depth
        i, o = self.i_stream, self.o_stream

        m.submodules.mem = mem = Memory(shape=8, depth=P * D, init=[])
        wr = mem.write_port()
        rd = mem.read_port()

        full = Signal(D)
        w_slot = Signal(range(D))
        r_slot = Signal(range(D))
        meta_len = Array(Signal(range(P + 1), name=f"len{k}") for k in range(D))
        meta_type = Array(Signal(8, name=f"type{k}") for k in range(D))
        set_full = Signal()
        clr_full = Signal()
        # Next state of the buffer flags, so that `i_stream.ready` (the fill buffer is free) is
        # a register: no combinational path from the send side (or the reader of o_stream) to
        # i_stream.ready.
        full_next = Signal(D)
        w_next = Signal(range(D))
        wfree = Signal(init=1)
        for k in range(D):
            m.d.comb += full_next[k].eq(Mux(set_full & (w_slot == k), 1,
                                            Mux(clr_full & (r_slot == k), 0, full[k])))
        m.d.comb += w_next.eq(Mux(set_full, w_slot + 1, w_slot))
        m.d.sync += [full.eq(full_next), w_slot.eq(w_next), wfree.eq(~full_next.bit_select(w_next, 1))]

        # ---- fill side ---------------------------------------------------------------------
        b = i.payload
        widx = Signal(range(P))
        fopen = Signal()                                   # the frame being filled has a beat
        fkind = Signal(4)
        next_sot = Signal(init=1)                          # the next frame starts a transfer
        kind_now = Mux(fopen, fkind, b.kind)
        wend = Signal(init=int(P == 1))                    # widx == P - 1: the frame is full after this byte
        m.d.comb += i.ready.eq(wfree)
        m.d.comb += [wr.addr.eq(Cat(widx, w_slot)), wr.data.eq(b.data)]

        def commit(n, eot):
            m.d.comb += set_full.eq(1)
            m.d.sync += [
                meta_len[w_slot].eq(n),
                meta_type[w_slot].eq(Cat(kind_now, next_sot, eot, Const(0, 2))),
                widx.eq(0), wend.eq(P == 1), fopen.eq(0), next_sot.eq(eot),
            ]

        with m.If(i.valid & i.ready):
            with m.If(~b.empty):
                m.d.comb += wr.en.eq(1)
                with m.If(b.last | wend):
                    commit(widx + 1, b.last)
                with m.Else():
                    m.d.sync += [widx.eq(widx + 1), wend.eq(widx == P - 2), fopen.eq(1),
                                 fkind.eq(kind_now)]
            with m.Elif(b.last):
                commit(widx, 1)

        # ---- send side: stage 0 (FSM) -> stage 1 (item) -> output register -------------------
        crc = Signal(16)
        s1_valid = Signal()
        s1_sel = Signal(2)
        s1_const = Signal(8)
        s1_feed = Signal()                                 # byte goes into the CRC
        s1_init = Signal()                                 # byte starts a frame: CRC := 0xFFFF
        s1_value = Signal(8)
        m.d.comb += s1_value.eq(Array([s1_const, rd.data, crc[:8], crc[8:]])[s1_sel])
        obyte = Signal(8)
        m.d.comb += o.payload.eq(obyte)
        s2_adv = Signal()
        s1_adv = Signal()
        m.d.comb += [s2_adv.eq(~o.valid | o.ready), s1_adv.eq(~s1_valid | s2_adv)]
        with m.If(s2_adv):
            m.d.sync += o.valid.eq(s1_valid)
            with m.If(s1_valid):
                m.d.sync += obyte.eq(s1_value)
                with m.If(s1_init):
                    m.d.sync += crc.eq(0xFFFF)
                with m.Elif(s1_feed):
                    m.d.sync += crc.eq(crc16_byte(crc, s1_value))

        ridx = Signal(range(P))
        r_zero = Signal()                                  # the frame being sent has LEN 0
        r_last = Signal()                                  # the next payload byte is its last
        seq = Signal(8)
        cur_len = meta_len[r_slot]
        cur_type = meta_type[r_slot]
        m.d.comb += [rd.addr.eq(Cat(ridx, r_slot)), rd.en.eq(s1_adv)]

        def issue(sel, value=0, feed=0, init=0):
            m.d.sync += [s1_valid.eq(1), s1_sel.eq(sel), s1_const.eq(value), s1_feed.eq(feed),
                         s1_init.eq(init)]

        with m.If(s1_adv):
            m.d.sync += s1_valid.eq(0)                     # unless an item is issued below
            with m.FSM(name="tx_fsm"):
                with m.State("IDLE"):
                    with m.If(full.bit_select(r_slot, 1)):
                        issue(_SEL_CONST, SYNC0, init=1)
                        m.next = "SYNC1"
                steps = (("SYNC1", SYNC1, 0, "TYPE"), ("TYPE", cur_type, 1, "SEQ"),
                         ("SEQ", seq, 1, "LEN0"), ("LEN0", cur_len[:8], 1, "LEN1"),
                         ("LEN1", cur_len[8:], 1, "HCRC0"))
                for state, value, feed, nxt in steps:
                    with m.State(state):
                        issue(_SEL_CONST, value, feed=feed)
                        m.next = nxt
                with m.State("HCRC0"):
                    issue(_SEL_CRC_LO)
                    m.d.sync += [r_zero.eq(cur_len == 0), r_last.eq(cur_len == 1)]
                    m.next = "HCRC1"
                with m.State("HCRC1"):
                    issue(_SEL_CRC_HI)
                    m.d.sync += ridx.eq(0)
                    with m.If(r_zero):
                        m.next = "CRC0"
                    with m.Else():
                        m.next = "PAY"
                with m.State("PAY"):
                    issue(_SEL_MEM, feed=1)
                    m.d.sync += [ridx.eq(ridx + 1), r_last.eq(ridx + 2 == cur_len)]
                    with m.If(r_last):
                        m.next = "CRC0"
                with m.State("CRC0"):
                    issue(_SEL_CRC_LO)
                    m.d.comb += clr_full.eq(1)             # the payload has been read
                    m.d.sync += [r_slot.eq(r_slot + 1), seq.eq(seq + 1)]
                    m.next = "CRC1"
                with m.State("CRC1"):
                    issue(_SEL_CRC_HI)
                    m.next = "IDLE"
        return m
