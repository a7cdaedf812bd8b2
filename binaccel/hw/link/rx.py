"""The frame receiver: bytes in, verified frame payloads and one status event per frame out."""

from amaranth.hdl import Array, Cat, Const, Module, Mux, Signal
from amaranth.lib import stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from binaccel.sw.link import (
    HOST_TO_DEVICE, MAX_PAYLOAD, SYNC0, SYNC1, TYPE_EOT, TYPE_RESERVED_MASK, TYPE_SOT, FrameKind, RxCode,
)

from .._util import check_int, checking
from .frames import DEFAULT_TIMEOUT, RX_BEAT, RX_STATUS, _check_geometry, _check_kinds, crc16_byte


class FrameRx(wiring.Component):
    """Frame receiver, store-and-forward.

    Keyword-only parameters: ``max_payload`` (largest LEN accepted; power of two, default 256),
    ``depth`` (frame buffers; power of two, default 2), ``timeout`` (idle cycles inside a frame
    before it is dropped, >= 1, default :data:`DEFAULT_TIMEOUT`), ``kinds`` (the frame kinds
    accepted, default :data:`~binaccel.sw.link.HOST_TO_DEVICE`). The buffers are one
    ``amaranth.lib.memory.Memory`` of ``depth * max_payload`` bytes (512 bytes by default).

    Ports:

    * ``i_stream`` (``stream.Signature(8)``): the byte stream from the transport.
    * ``o_stream`` (``stream.Signature(RX_BEAT)``): the payload of each good frame, in order, one
      beat per byte (a frame with LEN 0: one ``empty`` beat). A frame is released only after its
      CRC has been checked, so a bad frame never reaches ``o_stream``.
    * ``o_status`` (``stream.Signature(RX_STATUS)``): one event per frame: ``OK`` when a frame's
      last beat has been handed to ``o_stream`` (its buffer is free again) or when a RESET frame
      took effect; an error code when a frame was dropped: ``HEADER_CRC``, ``TYPE`` (kind not in
      ``kinds`` or reserved bits), ``LENGTH`` (LEN > ``max_payload``), ``CRC``, ``SEQUENCE`` (SEQ
      is not the expected number; the frame is skipped by its LEN), ``TIMEOUT`` (no byte for
      ``timeout`` cycles inside a frame). Tie ``o_status.ready`` high if the events are not used:
      the receiver waits for room before posting the next event.
    * ``o_reset``: high for the one cycle after a good RESET frame. In that cycle the receiver is
      back to its reset state except for the sequence number (the RESET frame's SEQ + 1): the
      buffered frames are discarded and ``o_stream.valid`` is low, also if a beat was on offer
      (the consumer must treat ``o_reset`` as its own reset).

    Sequence numbers: after reset the receiver expects SEQ 0, then +1 mod 256 per accepted frame;
    a RESET frame is accepted with any SEQ. After any error the receiver searches for the next
    sync pattern (a SEQUENCE error first skips the frame by its LEN, which the header CRC
    protects); the sequence number does not advance, so a host resends from the dropped frame.

    Events are posted as they happen: an error when it is detected, OK when the frame's last
    beat has been handed on; so the error of a later frame can come before the OK of an earlier
    one (each event names its frame's SEQ).

    Timing: ``i_stream`` takes one byte per cycle, except: one cycle after each header (the
    header decision); while all buffers hold frames not yet handed on (from the first payload
    byte of a frame on); while an event must be posted and the previous one still waits for
    ``o_status``. Back to back full frames: 256 payload bytes per 267 cycles. A frame's first
    beat is offered 3 cycles after its last byte. ``o_stream`` runs at one beat per cycle. Both
    streams tolerate any valid/ready pattern.
    """

    i_stream: In(stream.Signature(8))
    o_stream: Out(stream.Signature(RX_BEAT))
    o_status: Out(stream.Signature(RX_STATUS))
    o_reset: Out(1)

    def __init__(self, *, max_payload=MAX_PAYLOAD, depth=2, timeout=DEFAULT_TIMEOUT, kinds=HOST_TO_DEVICE):
        with checking(self):
            _check_geometry("FrameRx", max_payload, depth)
            check_int("FrameRx: timeout", timeout, 1, 1 << 32)
            kinds = _check_kinds("FrameRx", kinds)
        self.max_payload, self.depth, self.timeout, self.kinds = max_payload, depth, timeout, kinds
        super().__init__()

    @property
    def memory_bytes(self):
        """Bytes of frame buffer memory."""
        return self.max_payload * self.depth

    def elaborate(self, platform):
        m = Module()
        P, D = self.max_payload, self.depth
        i, o, st = self.i_stream, self.o_stream, self.o_status

        m.submodules.mem = mem = Memory(shape=8, depth=P * D, init=[])
        wr = mem.write_port()
        rd = mem.read_port()

        # ---- shared state ------------------------------------------------------------------
        full = Signal(D)                                   # buffer holds a verified frame
        w_slot = Signal(range(D))
        r_slot = Signal(range(D))
        meta_len = Array(Signal(range(P + 1), name=f"len{k}") for k in range(D))
        meta_empty = Array(Signal(name=f"empty{k}") for k in range(D))     # LEN == 0
        meta_short = Array(Signal(name=f"short{k}") for k in range(D))     # LEN <= 1
        meta_kind = Array(Signal(4, name=f"kind{k}") for k in range(D))
        meta_sot = Array(Signal(name=f"sot{k}") for k in range(D))
        meta_eot = Array(Signal(name=f"eot{k}") for k in range(D))
        meta_seq = Array(Signal(8, name=f"seq{k}") for k in range(D))
        expect = Signal(8)

        wev_valid = Signal()                               # write-side event waiting for o_status
        wev = Signal(RX_STATUS)
        rev_valid = Signal()                               # read-side (OK) event waiting
        rev = Signal(RX_STATUS)

        set_full = Signal()                                # commit the frame in w_slot
        clr_full = Signal()                                # r_slot handed on
        do_reset = Signal()                                # RESET frame verified
        reset_q = Signal()                                 # ... one cycle later: clear buffers

        # ---- write side: parse, check, buffer -----------------------------------------------
        byte = i.payload
        take = i.valid & i.ready
        crc = Signal(16)
        crc_next = crc16_byte(crc, byte)
        typ = Signal(8)
        seq = Signal(8)
        length = Signal(16)
        hbad = Signal()
        cbad = Signal()
        widx = Signal(range(P))
        skip_left = Signal(range(P + 2))                   # LEN + 2 bytes to skip, LEN <= P
        idle = Signal(range(self.timeout))
        in_frame = Signal()
        kind = typ[:4]
        # Header checks are registered as their bytes arrive, so that the decision at HCRC_HI is
        # a few gates deep: TYPE -> is_reset, type_bad; SEQ -> seq_bad; LEN_HI -> len_bad.
        is_reset = Signal()
        type_bad = Signal()
        seq_bad = Signal()
        len_bad = Signal()
        len_zero = Signal()
        len_one = Signal()
        w_last = Signal()                                  # the next payload byte is the last
        commit_ok = Signal()                               # CRC good, not a RESET: buffer it
        herr = Signal()                                    # the header is refused ...
        hcode = Signal(4)                                  # ... with this code
        cfail = Signal()
        m.d.comb += cfail.eq(cbad | (byte != crc[8:]))
        kind_mask = sum(1 << int(k) for k in self.kinds)
        byte_type_ok = Signal()
        m.d.comb += byte_type_ok.eq(Const(kind_mask, 16).bit_select(byte[:4], 1)
                                    & ((byte & TYPE_RESERVED_MASK) == 0))
        full_w = Signal()                                  # registered full[w_slot]
        room = Signal()                                    # a buffer for the frame's payload
        m.d.comb += room.eq(is_reset | ~full_w)
        # idle_done: `timeout - 1` idle cycles have passed, so this idle cycle is the timeout-th.
        idle_done = Signal()
        timed_out = Signal()
        m.d.comb += timed_out.eq(in_frame & ~i.valid & idle_done & ~wev_valid)
        if self.timeout == 1:
            m.d.comb += idle_done.eq(1)
        else:
            with m.If(~in_frame | i.valid):
                m.d.sync += [idle.eq(0), idle_done.eq(0)]
            with m.Elif(~idle_done):
                m.d.sync += [idle.eq(idle + 1), idle_done.eq(idle == self.timeout - 2)]

        def post(code, expect_after=expect):
            m.d.sync += [
                wev_valid.eq(1),
                wev.code.eq(code), wev.kind.eq(kind), wev.seq.eq(seq), wev.expect.eq(expect_after),
            ]

        def on_timeout():
            with m.Elif(timed_out):
                post(RxCode.TIMEOUT)
                m.next = "HUNT"

        m.d.comb += wr.addr.eq(Cat(widx, w_slot)), wr.data.eq(byte)

        with m.FSM(name="rx_fsm") as fsm:
            with m.State("HUNT"):
                m.d.comb += i.ready.eq(1)
                with m.If(take & (byte == SYNC0)):
                    m.next = "SYNC1"
            with m.State("SYNC1"):
                m.d.comb += i.ready.eq(1)
                with m.If(take):
                    with m.If(byte == SYNC1):
                        m.d.sync += [crc.eq(0xFFFF), typ.eq(0), seq.eq(0), is_reset.eq(0)]
                        m.next = "TYPE"
                    with m.Elif(byte != SYNC0):
                        m.next = "HUNT"
            for state, nxt, reg in (("TYPE", "SEQ", typ), ("SEQ", "LEN0", seq),
                                    ("LEN0", "LEN1", length[:8]), ("LEN1", "HCRC0", length[8:])):
                with m.State(state):
                    m.d.comb += i.ready.eq(1)
                    with m.If(take):
                        m.d.sync += [reg.eq(byte), crc.eq(crc_next)]
                        if state == "TYPE":
                            m.d.sync += [is_reset.eq(byte[:4] == FrameKind.RESET),
                                         type_bad.eq(~byte_type_ok)]
                        elif state == "SEQ":
                            m.d.sync += seq_bad.eq(byte != expect)
                        elif state == "LEN1":
                            m.d.sync += [len_bad.eq(Cat(length[:8], byte) > P),
                                         len_zero.eq(Cat(length[:8], byte) == 0),
                                         len_one.eq(Cat(length[:8], byte) == 1)]
                        m.next = nxt
                    on_timeout()
            with m.State("HCRC0"):
                m.d.comb += i.ready.eq(1)
                with m.If(take):
                    m.d.sync += hbad.eq(byte != crc[:8])
                    m.next = "HCRC1"
                on_timeout()
            with m.State("HCRC1"):
                m.d.comb += i.ready.eq(1)
                with m.If(take):
                    # the header's outcome, in priority order, registered for HDEC
                    hfail = hbad | (byte != crc[8:])
                    with m.If(hfail):
                        m.d.sync += [herr.eq(1), hcode.eq(RxCode.HEADER_CRC)]
                    with m.Elif(type_bad):
                        m.d.sync += [herr.eq(1), hcode.eq(RxCode.TYPE)]
                    with m.Elif(len_bad):
                        m.d.sync += [herr.eq(1), hcode.eq(RxCode.LENGTH)]
                    with m.Elif(~is_reset & seq_bad):
                        m.d.sync += [herr.eq(1), hcode.eq(RxCode.SEQUENCE)]
                    with m.Else():
                        m.d.sync += [herr.eq(0), hcode.eq(RxCode.OK)]
                    m.next = "HDEC"
                on_timeout()
            with m.State("HDEC"):                        # act on the header (no byte taken)
                with m.If(~herr):
                    m.d.sync += [widx.eq(0), cbad.eq(0), w_last.eq(len_one)]
                    with m.If(len_zero):
                        m.next = "CRC0"
                    with m.Else():
                        m.next = "PAYLOAD"
                with m.Elif(~wev_valid):
                    post(hcode)
                    with m.If(hcode == RxCode.SEQUENCE):
                        m.d.sync += skip_left.eq(length + 1)
                        m.next = "SKIP"
                    with m.Else():
                        m.next = "HUNT"
            with m.State("PAYLOAD"):
                m.d.comb += i.ready.eq(room)
                with m.If(take):
                    m.d.comb += wr.en.eq(~is_reset)
                    m.d.sync += [crc.eq(crc_next), widx.eq(widx + 1), w_last.eq(widx + 2 == length)]
                    with m.If(w_last):
                        m.next = "CRC0"
                on_timeout()
            with m.State("CRC0"):
                m.d.comb += i.ready.eq(room)
                with m.If(take):
                    m.d.sync += cbad.eq(byte != crc[:8])
                    m.next = "CRC1"
                on_timeout()
            with m.State("CRC1"):
                m.d.comb += i.ready.eq(room)
                with m.If(take):
                    m.d.sync += [cbad.eq(cfail), commit_ok.eq(~cfail & ~is_reset)]
                    m.next = "CDEC"
                on_timeout()
            with m.State("CDEC"):                        # decide on the frame; the byte offered
                m.d.comb += i.ready.eq(commit_ok | ~wev_valid)    # meanwhile is seen as in HUNT
                with m.If(commit_ok | ~wev_valid):
                    with m.If(commit_ok):
                        m.d.comb += set_full.eq(1)
                        m.d.sync += [
                            meta_len[w_slot].eq(length), meta_kind[w_slot].eq(kind),
                            meta_empty[w_slot].eq(len_zero), meta_short[w_slot].eq(len_zero | len_one),
                            meta_sot[w_slot].eq(typ & TYPE_SOT != 0),
                            meta_eot[w_slot].eq(typ & TYPE_EOT != 0),
                            meta_seq[w_slot].eq(seq),
                            expect.eq(expect + 1),
                        ]
                    with m.Elif(cbad):
                        post(RxCode.CRC)
                    with m.Else():                       # a good RESET frame
                        m.d.comb += do_reset.eq(1)
                        m.d.sync += expect.eq(seq + 1)
                        post(RxCode.OK, expect_after=seq + 1)
                    with m.If(take & (byte == SYNC0)):
                        m.next = "SYNC1"
                    with m.Else():
                        m.next = "HUNT"
            with m.State("SKIP"):
                m.d.comb += i.ready.eq(1)
                with m.If(take):
                    m.d.sync += skip_left.eq(skip_left - 1)
                    with m.If(skip_left == 0):
                        m.next = "HUNT"
                on_timeout()
        m.d.comb += in_frame.eq(~fsm.ongoing("HUNT") & ~fsm.ongoing("SYNC1"))

        # ---- read side: hand verified frames on ---------------------------------------------
        ob = Signal(RX_BEAT)                               # beat fields except data
        ridx = Signal(range(P))
        advance = Signal()
        m.d.comb += advance.eq(~o.valid | o.ready)
        # Registered position flags keep the issue decision short: at_first (the next beat is
        # the first of its frame), nxt_last (past the first: the next beat is the last).
        at_first = Signal(init=1)
        nxt_last = Signal()
        is_last = Signal()
        short_r = Signal()                                 # registered meta_short[r_slot]
        m.d.comb += is_last.eq(Mux(at_first, short_r, nxt_last))
        can_issue = Signal()
        full_r = Signal()                                  # registered full[r_slot]
        m.d.comb += can_issue.eq(full_r & ~(is_last & rev_valid))
        m.d.comb += [rd.addr.eq(Cat(ridx, r_slot)), rd.en.eq(advance)]
        m.d.comb += [o.payload.eq(ob), o.payload.data.eq(Mux(ob.empty, 0, rd.data))]
        with m.If(advance):
            m.d.sync += o.valid.eq(can_issue)
            with m.If(can_issue):
                m.d.sync += [
                    ob.kind.eq(meta_kind[r_slot]), ob.sot.eq(meta_sot[r_slot]),
                    ob.eot.eq(meta_eot[r_slot]), ob.first.eq(at_first), ob.last.eq(is_last),
                    ob.empty.eq(at_first & meta_empty[r_slot]),
                    at_first.eq(is_last),
                ]
                with m.If(is_last):
                    m.d.comb += clr_full.eq(1)
                    m.d.sync += [
                        ridx.eq(0),
                        rev_valid.eq(1), rev.code.eq(RxCode.OK), rev.kind.eq(meta_kind[r_slot]),
                        rev.seq.eq(meta_seq[r_slot]), rev.expect.eq(expect),
                    ]
                with m.Else():
                    m.d.sync += [ridx.eq(ridx + 1), nxt_last.eq(ridx + 2 == meta_len[r_slot])]

        # ---- buffer bookkeeping and RESET ---------------------------------------------------
        # Next state of the buffer flags and indices; full[w_slot] and full[r_slot] are kept in
        # registers (full_w, full_r) so that the stream handshakes do not go through the index.
        m.d.sync += reset_q.eq(do_reset)
        full_next = Signal(D)
        w_next = Signal(range(D))
        r_next = Signal(range(D))
        for k in range(D):
            m.d.comb += full_next[k].eq(~reset_q & Mux(set_full & (w_slot == k), 1,
                                                       Mux(clr_full & (r_slot == k), 0, full[k])))
        m.d.comb += [w_next.eq(Mux(reset_q, 0, Mux(set_full, w_slot + 1, w_slot))),
                     r_next.eq(Mux(reset_q, 0, Mux(clr_full, r_slot + 1, r_slot)))]
        m.d.sync += [full.eq(full_next), w_slot.eq(w_next), r_slot.eq(r_next),
                     full_w.eq(full_next.bit_select(w_next, 1)),
                     full_r.eq(full_next.bit_select(r_next, 1)),
                     short_r.eq(Mux(set_full & (w_slot == r_next), len_zero | len_one,
                                    meta_short[r_next]))]
        m.d.sync += self.o_reset.eq(reset_q)
        with m.If(reset_q):
            m.d.sync += [ridx.eq(0), at_first.eq(1), o.valid.eq(0)]

        # ---- status events ------------------------------------------------------------------
        with m.If(~st.valid | st.ready):
            with m.If(wev_valid):
                m.d.sync += [st.valid.eq(1), st.payload.eq(wev), wev_valid.eq(0)]
            with m.Elif(rev_valid):
                m.d.sync += [st.valid.eq(1), st.payload.eq(rev), rev_valid.eq(0)]
            with m.Else():
                m.d.sync += st.valid.eq(0)
        return m
