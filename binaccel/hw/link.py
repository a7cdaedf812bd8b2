"""Frame link gateware: the framing layer between a byte transport (UART, simulator, ...) and the
accelerator, in both directions. The frame format is ``docs/link.md``; its constants come from
:mod:`binaccel.sw.link` (the host side), the single source of the format in code.

* :class:`FrameRx`: bytes in -> verified frame payloads out (store-and-forward), plus one status
  event per frame (delivered, or dropped and why).
* :class:`FrameTx`: transfers in (bytes with a kind and an end marker) -> framed bytes out.
* :class:`FrameLink`: both, with the receiver's status events sent back to the host as STATUS
  frames between the transfers.

Stream payload layouts: :data:`RX_BEAT` (``FrameRx.o_stream``), :data:`TX_BEAT`
(``FrameTx.i_stream``), :data:`RX_STATUS` (``FrameRx.o_status``).
"""


from amaranth.hdl import Array, Cat, Const, Module, Mux, Signal
from amaranth.lib import data, stream, wiring
from amaranth.lib.fifo import SyncFIFO
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from binaccel.sw.link import (
    HOST_TO_DEVICE, MAX_PAYLOAD, STATUS_SIZE, SYNC0, SYNC1, TYPE_EOT, TYPE_RESERVED_MASK, TYPE_SOT,
    FrameKind, RxCode,
)

from ._util import check_int, checking

__all__ = ["RX_BEAT", "TX_BEAT", "RX_STATUS", "FrameRx", "FrameTx", "FrameLink", "crc16_byte",
           "DEFAULT_TIMEOUT", "LINT_WAIVERS"]

#: ``FrameRx.o_stream`` payload: one payload byte of a verified frame.
#: ``data``: the byte (0 when ``empty``); ``kind``: the frame's :class:`FrameKind`;
#: ``first``/``last``: first/last beat of the frame; ``empty``: the frame has no payload (LEN 0;
#: it is delivered as this single beat, ``first = last = 1``); ``sot``/``eot``: the frame's
#: transfer flags (first/last frame of a transfer), the same on all its beats.
RX_BEAT = data.StructLayout({
    "data": 8, "kind": 4, "first": 1, "last": 1, "empty": 1, "sot": 1, "eot": 1,
})

#: ``FrameTx.i_stream`` payload: one beat of a transfer. ``data``: a byte (ignored when ``empty``);
#: ``kind``: the transfer's :class:`FrameKind` (read on the first beat of each frame); ``last``:
#: the transfer ends with this beat; ``empty``: the beat carries no byte (an empty transfer is one
#: beat with ``empty = last = 1``; an empty beat without ``last`` does nothing).
TX_BEAT = data.StructLayout({"data": 8, "kind": 4, "last": 1, "empty": 1})

#: ``FrameRx.o_status`` payload: one event per frame (see :class:`~binaccel.sw.link.StatusEvent`).
#: ``code``: :class:`RxCode`; ``kind``: TYPE bits 3..0 as received (0 if the frame ended before
#: them); ``seq``: SEQ as received (0 if the frame ended before it); ``expect``: the sequence
#: number the receiver expects next, after this event.
RX_STATUS = data.StructLayout({"code": 4, "kind": 4, "seq": 8, "expect": 8})

#: Default idle limit of :class:`FrameRx` inside a frame: 2**22 cycles, 87 ms at 48 MHz (a UART
#: byte at 115200 baud takes 87 us; a host write may pause for a USB frame or a scheduler tick).
DEFAULT_TIMEOUT = 1 << 22

#: Waivers for ``verilator --lint-only -Wall`` of the link's Verilog (with
#: :func:`binaccel.sim.lint.amaranth_waivers`), each with its reason. They cover how Yosys'
#: ``write_verilog`` spells Amaranth's cells, never a width chosen in the design.
LINT_WAIVERS = {
    r"WIDTHEXPAND:Operator \w+ expects \d+ bits? on the (LHS|RHS)": (
        "Yosys writes each Amaranth comparison/arithmetic cell with its operands at their own width "
        "(FSM state compares such as `rx_fsm_state == 2'h2` against a 4-bit state, `kind == 3'h7`, "
        "`widx + 1 == length`) and relies on Verilog's zero-extension of unsigned operands, which is "
        "Amaranth's semantics; all these operands are unsigned."
    ),
    r"WIDTHTRUNC:Logical operator LOGNOT expects 1 bit": (
        "Yosys spells a comparison with zero (`x == 0`, e.g. an FSM state test or `length == 0`) as "
        "the logical negation `!x` of the vector, which is exactly 'x is zero'."
    ),
    r"WIDTHTRUNC:Operator ASSIGNW expects 1 bits on the Assign RHS, but Assign RHS's SHIFTR": (
        "A run-time bit index (`full.bit_select(w_slot, 1)`: is the buffer full; "
        "`Const(mask).bit_select(kind, 1)`: is the kind accepted) is written as a right shift of the "
        "vector whose lowest bit is kept: the intended one-bit select."
    ),
    r"CASEINCOMPLETE:": (
        "Yosys writes Amaranth Switch/FSM statements and Array reads as `casez` after assigning the "
        "default value, so an encoding without a case (an unused FSM state) keeps the default: "
        "Amaranth's defined semantics, not a latch."
    ),
}

_SEL_CONST, _SEL_MEM, _SEL_CRC_LO, _SEL_CRC_HI = range(4)


def crc16_byte(crc, byte):
    """Next CRC-16/CCITT-FALSE register value (polynomial 0x1021, MSB first) after ``byte``:
    an Amaranth expression of the 16-bit ``crc`` and the 8-bit ``byte``."""
    c = [crc[i] for i in range(16)]
    for i in range(7, -1, -1):
        fb = c[15] ^ byte[i]
        c = [fb] + c[:15]
        c[5] = c[5] ^ fb
        c[12] = c[12] ^ fb
    return Cat(*c)


def _is_pow2(n):
    return n >= 1 and n & (n - 1) == 0


def _check_geometry(who, max_payload, depth):
    check_int(f"{who}: max_payload", max_payload, 1, 32768)
    if not _is_pow2(max_payload):
        raise ValueError(f"{who}: max_payload must be a power of two (one frame per memory "
                         f"region), got {max_payload}")
    check_int(f"{who}: depth", depth, 1, 16)
    if not _is_pow2(depth):
        raise ValueError(f"{who}: depth (frame buffers) must be a power of two, got {depth}")


def _check_kinds(who, kinds):
    try:
        kinds = frozenset(FrameKind(k) for k in kinds)
    except (TypeError, ValueError):
        raise ValueError(f"{who}: kinds must be FrameKind values, got {kinds!r}") from None
    if not kinds:
        raise ValueError(f"{who}: kinds must name at least one FrameKind")
    return kinds


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
