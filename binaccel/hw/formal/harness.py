"""Formal harnesses: components that wrap one unit with property logic (Assert on what the unit
drives, Assume on what its environment drives), for SymbiYosys (see :mod:`binaccel.hw.formal`).

Each harness takes ``prop``, the one property whose assertions it emits (every assumption is
always emitted), so that one proof job decides one property. The harness's own ports are the
unit's free inputs: the model checker chooses them in every cycle, subject to the assumptions.
The ``sync`` domain's reset is a free input too: every harness register that models the past
(:class:`_Past`) has no reset, the counters that model the stream contents do.

Stream rules (``amaranth.lib.stream``), for a stream with ``valid``/``ready``/``payload``: once
``valid`` is high it stays high until ``ready`` (the beat is taken), and ``payload`` does not
change meanwhile. Exception: the cycle after a reset, and the documented exceptions of a unit.
"""

from __future__ import annotations

from amaranth.asserts import AnyConst
from amaranth.hdl import Assert, Assume, Cat, Const, Cover, Module, Mux, ResetSignal, Signal, Value
from amaranth.lib import stream, wiring
from amaranth.lib.fifo import SyncFIFO
from amaranth.lib.wiring import In, Out

from binaccel.sw.hwif import IO_WIDTH
from binaccel.sw.link import SYNC0, SYNC1, TYPE_RESERVED_MASK, RxCode

from ..dp.array import array_step_layout
from ..dp.window import SLOT, WindowGen
from ..link import RX_BEAT, RX_STATUS, TX_BEAT, FrameRx, FrameTx
from ..link import rx as _rx_module
from ..link import tx as _tx_module

__all__ = ["FifoHarness", "WindowHarness", "RxHarness", "RxCrcHarness", "TxHarness", "StreamRules"]


class _Past:
    """Registered copies of values (no reset): ``past(v)`` is ``v`` one cycle ago; ``ok`` is high
    from the second cycle on when the previous cycle was not a reset cycle."""

    def __init__(self, m):
        self.m = m
        self.started = Signal(reset_less=True, name="past_started")
        self.rst = Signal(reset_less=True, name="past_rst")
        m.d.sync += [self.started.eq(1), self.rst.eq(ResetSignal())]
        self.ok = Signal(name="past_ok")
        m.d.comb += self.ok.eq(self.started & ~self.rst)
        self.after_reset = Signal(name="after_reset")
        m.d.comb += self.after_reset.eq(self.started & self.rst)
        self._n = 0

    def __call__(self, value, name=None):
        self._n += 1
        value = Value.cast(value)
        q = Signal(len(value), reset_less=True, name=f"past_{name or self._n}")
        self.m.d.sync += q.eq(value)
        return q


class StreamRules:
    """The stream rules of ``s`` as conditions: ``hold`` (``valid`` stays high until ``ready``)
    and ``stable`` (``payload`` unchanged while not taken); each is true in every cycle where the
    rule holds. ``exempt``: cycles where the rule does not apply (besides the one after reset)."""

    def __init__(self, m, past, s, name, exempt=0):
        pv, pr, pp = past(s.valid, f"{name}_valid"), past(s.ready, f"{name}_ready"), past(s.payload, f"{name}_payload")
        waiting = Signal(name=f"{name}_waiting")
        m.d.comb += waiting.eq(past.ok & pv & ~pr & ~exempt)
        self.hold = ~waiting | s.valid
        self.stable = ~waiting | (Value.cast(s.payload) == pp)

    def assume(self, m):
        m.d.comb += [Assume(self.hold), Assume(self.stable)]


def _count(m, name, width, event):
    """A beat counter (reset with the domain): +1 in every cycle where ``event``."""
    n = Signal(width, name=name)
    with m.If(event):
        m.d.sync += n.eq(n + 1)
    return n


# ---- the accelerator's stream buffers -------------------------------------------------------------

class FifoHarness(wiring.Component):
    """The pipelined accelerator's stream buffers (:class:`~binaccel.hw.dp.accel.DpAccelerator`):
    ``SyncFIFO(width=32, depth=2)``, written from ``i`` while not in reset, read as the stream
    ``o`` -- the wiring of ``in_fifo`` (and, without the reset gate, of ``out_fifo``).

    Properties: ``o_hold``, ``o_stable`` (the stream rules on ``o``), ``count`` (occupancy <=
    depth, and beats out == beats in - occupancy, mod 2**8), ``order`` (the n-th beat in is the
    n-th beat out, for an arbitrary n: nothing lost, duplicated, reordered or changed),
    ``reset`` (the cycle after a reset: ``o`` idle, the buffer empty; during a reset ``i`` takes
    nothing). ``mutant="drop_valid"``: a broken variant whose ``o.valid`` falls after one cycle
    without ``ready`` (the negative control)."""

    DEPTH = 2

    def __init__(self, prop, *, mutant=None, width=IO_WIDTH):
        self.prop, self.mutant, self.width = prop, mutant, width
        super().__init__({"i": In(stream.Signature(width)), "o": Out(stream.Signature(width))})

    def elaborate(self, platform):
        m = Module()
        rst = ResetSignal()
        m.submodules.fifo = fifo = SyncFIFO(width=self.width, depth=self.DEPTH)
        i, o = self.i, self.o
        m.d.comb += [fifo.w_data.eq(i.payload), fifo.w_en.eq(i.valid & ~rst), i.ready.eq(fifo.w_rdy & ~rst),
                     o.payload.eq(fifo.r_data), fifo.r_en.eq(o.ready)]
        if self.mutant == "drop_valid":
            waited = Signal()
            m.d.sync += waited.eq(o.valid & ~o.ready)
            m.d.comb += o.valid.eq(fifo.r_rdy & ~waited)
        else:
            m.d.comb += o.valid.eq(fifo.r_rdy)

        past = _Past(m)
        StreamRules(m, past, i, "i").assume(m)
        rules = StreamRules(m, past, o, "o")
        took_in = i.valid & i.ready
        took_out = o.valid & o.ready
        p = self.prop
        if p == "o_hold":
            m.d.comb += Assert(rules.hold)
        elif p == "o_stable":
            m.d.comb += Assert(rules.stable)
        elif p == "count":
            n_in = _count(m, "n_in", 8, took_in)
            n_out = _count(m, "n_out", 8, took_out)
            m.d.comb += [Assert(fifo.r_level <= self.DEPTH), Assert((n_in - n_out)[:8] == fifo.r_level)]
        elif p == "order":
            # beat number `n` (any): its payload in, then the beat of the same number out
            n = AnyConst(4)
            n_in = _count(m, "n_in", 5, took_in)
            n_out = _count(m, "n_out", 5, took_out)
            seen = Signal()
            value = Signal(self.width)
            with m.If(took_in & (n_in == n)):
                m.d.sync += [seen.eq(1), value.eq(i.payload)]
            with m.If(took_out & (n_out == n)):
                m.d.comb += Assert(seen & (o.payload == value))
        elif p == "reset":
            with m.If(past.after_reset):
                m.d.comb += [Assert(~o.valid), Assert(fifo.r_level == 0)]
            with m.If(rst):
                m.d.comb += Assert(~i.ready)
        else:
            raise ValueError(f"FifoHarness: unknown property {p!r}")
        return m


# ---- the window generator -----------------------------------------------------------------------

#: Small WindowGen parameters for the proofs: one column, 1-bit tile/group counters, 2 steps.
WINDOW_PARAMS = dict(rows=1, cols=1, n_width=6, tag_width=1, aw=4, cw=3, count_w=1, steps_w=1, tbl_aw=2,
                     w_aw=2, mem_latency=1)


class WindowHarness(wiring.Component):
    """:class:`~binaccel.hw.dp.window.WindowGen` (parameters :data:`WINDOW_PARAMS`) with an
    arbitrary configuration held for the whole trace, ``start`` only while idle, ``hold`` and
    the memory data free. ``o`` has no ``ready`` (nothing stalls); its ``valid`` marks a step.

    Properties: ``reset`` (the cycle after a reset: no step, not busy), ``framing`` (the steps
    of a run come in segments: a step is its segment's ``first`` exactly when the step before
    it was a ``last``), ``spacing`` (two segment ends of a run at least ``cfg.spacing`` cycles apart),
    ``count`` (a run delivers ``(last_gt+1)(last_ty+1)(last_tx+1)(planes_last+1)(last_step+1)``
    steps: checked when ``busy`` falls; ``planes_last <= 1``), ``idle`` (no step while not busy)."""

    def __init__(self, prop, *, params=None):
        self.prop = prop
        self.params = dict(WINDOW_PARAMS, **(params or {}))
        self.win = WindowGen(**self.params)
        p = self.params
        super().__init__({
            "start": In(1), "hold": In(1), "hold_every": In(1),
            "tbl_data": In(self.win.entry_layout), "w_data": In(self.win.w_data.shape()),
            "rd_data": In(self.win.rd_data.shape()),
            "o": Out(array_step_layout(rows=p["rows"], cols=p["cols"], word=2 * SLOT, slot=SLOT,
                                       n_width=p["n_width"], tag_width=p["tag_width"])),
            "busy": Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        m.submodules.win = win = self.win
        cfg = Signal(win.cfg_layout)
        m.d.comb += cfg.eq(AnyConst(win.cfg_layout.size))
        m.d.comb += [win.cfg.eq(cfg), win.start.eq(self.start), win.hold.eq(self.hold),
                     win.hold_every.eq(self.hold_every), win.tbl_data.eq(self.tbl_data),
                     win.w_data.eq(self.w_data), win.rd_data.eq(self.rd_data),
                     self.o.eq(win.o), self.busy.eq(win.busy)]
        past = _Past(m)
        rst = ResetSignal()
        m.d.comb += Assume(~self.start | (~win.busy & ~rst))
        step = win.o.ctl.valid
        ctl = win.o.ctl
        p = self.prop
        if p == "reset":
            with m.If(past.after_reset):
                m.d.comb += [Assert(~step), Assert(~win.busy)]
        elif p == "idle":
            m.d.comb += Assert(win.busy | ~step)
        elif p == "framing":
            after_last = Signal(init=1)
            with m.If(step):
                m.d.sync += after_last.eq(ctl.last)
                m.d.comb += Assert(ctl.first == after_last)
        elif p == "spacing":
            top = (1 << len(cfg.spacing)) - 1
            since = Signal(len(cfg.spacing), init=top)     # cycles since the last segment end (saturating)
            with m.If(step & ctl.last):
                m.d.sync += since.eq(1)
                m.d.comb += Assert(since >= cfg.spacing)
            with m.Elif(since != top):
                m.d.sync += since.eq(since + 1)
            # (within a run: a run starts afresh, as the unit's own count does; runs are apart by
            # the accelerator's drain and write-back wait)
            with m.If(self.start):
                m.d.sync += since.eq(top)
        elif p == "count":
            m.d.comb += Assume(cfg.planes_last <= 1)
            n = _count(m, "steps", 8, step)
            with m.If(self.start):
                m.d.sync += n.eq(0)
            expect = ((cfg.last_gt + 1) * (cfg.last_ty + 1) * (cfg.last_tx + 1) * (cfg.planes_last + 1)
                      * (cfg.last_step + 1))
            ran = Signal()
            with m.If(self.start):
                m.d.sync += ran.eq(1)
            fell = past.ok & past(win.busy, "busy") & ~win.busy & ran
            with m.If(fell):
                m.d.comb += Assert(n == expect)
        else:
            raise ValueError(f"WindowHarness: unknown property {p!r}")
        return m


# ---- the frame link ----------------------------------------------------------------------------------

#: Small link parameters for the proofs: frames of up to 2 bytes, two buffers, a 4-cycle timeout.
RX_PARAMS = dict(max_payload=2, depth=2, timeout=4)
TX_PARAMS = dict(max_payload=2, depth=2)


class RxHarness(wiring.Component):
    """:class:`~binaccel.hw.link.FrameRx` (:data:`RX_PARAMS`) with any byte stream that obeys the
    stream rules, and any ``ready`` pattern on its outputs.

    Properties: ``o_hold``, ``o_stable`` (the stream rules on ``o_stream``, except in the cycle
    of ``o_reset``, which the receiver documents as its consumer's reset), ``st_hold``,
    ``st_stable`` (the same on ``o_status``), ``reset`` (the cycle after a reset: both outputs
    idle, no ``o_reset``), ``framing`` (``first`` exactly on the beat after a ``last``, ``empty``
    beats are single-beat frames)."""

    def __init__(self, prop, *, params=None):
        self.prop = prop
        self.rx = FrameRx(**dict(RX_PARAMS, **(params or {})))
        super().__init__({"i": In(stream.Signature(8)), "o": Out(stream.Signature(RX_BEAT)),
                          "st": Out(RX_STATUS), "st_valid": Out(1),
                          "st_ready": In(1), "o_reset": Out(1)})

    def elaborate(self, platform):
        m = Module()
        m.submodules.rx = rx = self.rx
        wiring.connect(m, wiring.flipped(self.i), rx.i_stream)
        wiring.connect(m, rx.o_stream, wiring.flipped(self.o))
        st = rx.o_status
        m.d.comb += [self.st.eq(st.payload), self.st_valid.eq(st.valid), st.ready.eq(self.st_ready),
                     self.o_reset.eq(rx.o_reset)]
        past = _Past(m)
        StreamRules(m, past, rx.i_stream, "i").assume(m)
        p = self.prop
        o = rx.o_stream
        if p in ("o_hold", "o_stable"):
            rules = StreamRules(m, past, o, "o", exempt=rx.o_reset)
            m.d.comb += Assert(rules.hold if p == "o_hold" else rules.stable)
        elif p in ("st_hold", "st_stable"):
            rules = StreamRules(m, past, st, "st")
            m.d.comb += Assert(rules.hold if p == "st_hold" else rules.stable)
        elif p == "reset":
            with m.If(past.after_reset):
                m.d.comb += [Assert(~o.valid), Assert(~st.valid), Assert(~rx.o_reset)]
        elif p == "framing":
            after_last = Signal(init=1)
            with m.If(rx.o_reset):
                m.d.sync += after_last.eq(1)
            with m.Elif(o.valid & o.ready):
                m.d.sync += after_last.eq(o.payload.last)
            with m.If(o.valid & ~rx.o_reset):
                m.d.comb += Assert(o.payload.first == after_last)
                with m.If(o.payload.empty):
                    m.d.comb += Assert(o.payload.first & o.payload.last)
        else:
            raise ValueError(f"RxHarness: unknown property {p!r}")
        return m


def check16_byte(crc, byte):
    """The check function of the ``bad_crc`` jobs in place of CRC-16: the halves swapped, the byte
    XORed into the low one (every bit one XOR deep). Whether the receiver ever accepts a frame
    whose check bytes differ from its check function's value does not depend on which function
    that is; with CRC-16 itself the solver does not finish the unrolled XOR chains (rx: past
    depth 15).
    (CRC-16 itself: ``tests/hw/test_link_hw.py::test_crc16_byte_gateware_matches_host``.)"""
    return Cat(crc[8:] ^ byte, crc[:8])


def _with_check(cls, module):
    class Checked(cls):
        __doc__ = f":class:`{cls.__name__}` elaborated with :func:`check16_byte` in place of ``crc16_byte``."

        def elaborate(self, platform):
            saved = module.crc16_byte
            module.crc16_byte = check16_byte
            try:
                return super().elaborate(platform)
            finally:
                module.crc16_byte = saved
    Checked.__name__ = Checked.__qualname__ = f"_Check{cls.__name__}"
    return Checked


_CheckRx = _with_check(FrameRx, _rx_module)
_CheckTx = _with_check(FrameTx, _tx_module)


class RxCrcHarness(wiring.Component):
    """:class:`~binaccel.hw.link.FrameRx` (:data:`RX_PARAMS`) fed by a frame generator: frames
    one after the other, each SYNC0 SYNC1 TYPE SEQ LEN (0..3) HCRC PAYLOAD CRC (``docs/link.md``)
    with any TYPE, SEQ, payload bytes and pauses, a header CRC that may be wrong, and a payload
    CRC that is wrong (``good=True``: right). The CRC is :func:`check16_byte` (``crc``: the
    function, ``crc16_byte`` for the receiver as it is). No byte but a frame's first is SYNC0, so the
    receiver, however it loses and finds the sync, only ever parses the generator's frames.

    Properties: ``bad_crc`` (no beat on ``o_stream``, no ``o_reset``, no OK event: a frame with
    a bad CRC is never accepted, RESET frames included), ``crc_seen`` (cover: a CRC error event
    is posted: the generator's frames reach the CRC check), ``good_seen`` (cover, with
    ``good=True``: a frame's last beat leaves, so the generator's CRC is the receiver's)."""

    def __init__(self, prop, *, good=False, params=None, crc=check16_byte):
        self.prop, self.good, self.crc = prop, good, crc
        rx_class = _CheckRx if crc is check16_byte else FrameRx
        self.rx = rx_class(**dict(RX_PARAMS, **(params or {})))
        super().__init__({"env_valid": In(1), "env_byte": In(8), "env_err": In(16), "env_herr": In(16),
                          "o_ready": In(1), "st_ready": In(1), "o_valid": Out(1)})

    def elaborate(self, platform):
        m = Module()
        m.submodules.rx = rx = self.rx
        i = rx.i_stream
        m.d.comb += [rx.o_stream.ready.eq(self.o_ready), rx.o_status.ready.eq(self.st_ready),
                     self.o_valid.eq(rx.o_stream.valid)]

        # the generator: byte k of the current frame, from fields latched when its SYNC0 is taken
        k = Signal(4)
        typ, seq = Signal(8), Signal(8)
        ln = Signal(2)
        pay = [Signal(8, name=f"pay{j}") for j in range(3)]
        err, herr = Signal(16, init=1), Signal(16)
        take = i.valid & i.ready
        pending = Signal()
        m.d.sync += pending.eq(i.valid & ~i.ready)
        m.d.comb += i.valid.eq(self.env_valid | pending)
        # the CRC as the receiver computes it: a register fed with the bytes taken (TYPE .. LEN1,
        # then the payload); the header CRC is its value after LEN1 (changes only on a take, so
        # every byte is stable while offered)
        byte = Signal(8)
        crc = Signal(16)
        in_pay = (k >= 8) & ((k - 8) < ln)
        with m.If(take):
            with m.If(k == 1):
                m.d.sync += crc.eq(0xFFFF)
            with m.If(((k >= 2) & (k < 6)) | in_pay):
                m.d.sync += crc.eq(self.crc(crc, byte))
        hcrc = crc
        crc_sent = crc if self.good else crc ^ err
        hcrc_sent = hcrc ^ herr
        with m.Switch(k):
            for pos, value in enumerate((SYNC0, SYNC1, typ, seq, Cat(ln, Const(0, 6)), 0,
                                         hcrc_sent[:8], hcrc_sent[8:])):
                with m.Case(pos):
                    m.d.comb += byte.eq(value)
            with m.Default():
                j = k - 8
                with m.If(j < ln):
                    m.d.comb += byte.eq(Mux(j == 0, pay[0], Mux(j == 1, pay[1], pay[2])))
                with m.Elif(j == ln):
                    m.d.comb += byte.eq(crc_sent[:8])
                with m.Else():
                    m.d.comb += byte.eq(crc_sent[8:])
        m.d.comb += i.payload.eq(byte)
        frame_end = k == 8 + ln + 1
        with m.If(take):
            m.d.sync += k.eq(Mux(frame_end, 0, k + 1))
        # the fields: free inputs, each latched when the byte before the one that carries it is taken
        with m.If(take & (k == 0)):
            m.d.sync += [err.eq(self.env_err), herr.eq(self.env_herr)]
            m.d.comb += Assume(self.env_err != 0)
        with m.If(take & (k == 1)):
            m.d.sync += typ.eq(self.env_byte)
        with m.If(take & (k == 2)):
            m.d.sync += seq.eq(self.env_byte)
        with m.If(take & (k == 3)):
            m.d.sync += ln.eq(self.env_byte[:2])
        for j in range(3):
            with m.If(take & (k == 4 + j)):
                m.d.sync += pay[j].eq(self.env_byte)
        # no byte but SYNC0 at k = 0 is SYNC0
        m.d.comb += Assume(~i.valid | (k == 0) | (byte != SYNC0))

        st = rx.o_status
        p = self.prop
        if p == "bad_crc":
            assert not self.good
            m.d.comb += [Assert(~rx.o_stream.valid), Assert(~rx.o_reset),
                         Assert(~(st.valid & (st.payload.code == RxCode.OK)))]
        elif p == "crc_seen":
            m.d.comb += Cover(st.valid & (st.payload.code == RxCode.CRC))
        elif p == "good_seen":
            assert self.good
            o = rx.o_stream
            m.d.comb += Cover(o.valid & o.ready & o.payload.last & ~o.payload.empty & o.payload.first)
        else:
            raise ValueError(f"RxCrcHarness: unknown property {p!r}")
        return m


class TxHarness(wiring.Component):
    """:class:`~binaccel.hw.link.FrameTx` (:data:`TX_PARAMS`) with any transfer beats that obey
    the stream rules, and any ``ready`` pattern on ``o_stream``.

    Properties: ``o_hold``, ``o_stable`` (the stream rules on ``o_stream``), ``reset`` (the
    cycle after a reset: ``o_stream`` idle, ``i_stream`` ready), ``frames`` (every frame sent is
    well formed: SYNC0 SYNC1, no reserved TYPE bit, SEQ 0, 1, 2, ... from reset, LEN <=
    max_payload, right header and payload checks: the CRC-16 replaced by :func:`check16_byte` in
    the transmitter and here, ``crc``: the function), ``count`` (0 <= payload bytes taken - payload
    bytes sent <= depth * max_payload + 2: no byte duplicated, none lost beyond the buffers and
    the two output registers)."""

    def __init__(self, prop, *, params=None, crc=check16_byte):
        self.prop, self.crc = prop, crc
        tx_class = _CheckTx if crc is check16_byte else FrameTx
        self.tx = tx_class(**dict(TX_PARAMS, **(params or {})))
        super().__init__({"i": In(stream.Signature(TX_BEAT)), "o": Out(stream.Signature(8))})

    def elaborate(self, platform):
        m = Module()
        m.submodules.tx = tx = self.tx
        wiring.connect(m, wiring.flipped(self.i), tx.i_stream)
        wiring.connect(m, tx.o_stream, wiring.flipped(self.o))
        past = _Past(m)
        StreamRules(m, past, tx.i_stream, "i").assume(m)
        o = tx.o_stream
        P, D = tx.max_payload, tx.depth
        p = self.prop
        if p in ("o_hold", "o_stable"):
            rules = StreamRules(m, past, o, "o")
            m.d.comb += Assert(rules.hold if p == "o_hold" else rules.stable)
        elif p == "reset":
            with m.If(past.after_reset):
                m.d.comb += [Assert(~o.valid), Assert(tx.i_stream.ready)]
        elif p in ("frames", "count"):
            # the bytes sent, parsed: position k in the frame, LEN, the running CRC
            sent = o.valid & o.ready
            b = o.payload
            k = Signal(range(8 + P + 2 + 1))
            ln = Signal(16)
            crc = Signal(16)
            seq = Signal(8)
            in_pay = (k >= 8) & (k < 8 + ln)
            with m.If(sent):
                m.d.sync += k.eq(k + 1)
                with m.If((k >= 2) & (k < 6) | in_pay):
                    m.d.sync += crc.eq(self.crc(crc, b))
                with m.If(k == 1):
                    m.d.sync += crc.eq(0xFFFF)
                with m.If(k == 4):
                    m.d.sync += ln[:8].eq(b)
                with m.If(k == 5):
                    m.d.sync += ln[8:].eq(b)
                with m.If(k == 8 + ln + 1):
                    m.d.sync += [k.eq(0), seq.eq(seq + 1)]
            if p == "frames":
                with m.If(sent):
                    with m.Switch(k):
                        with m.Case(0):
                            m.d.comb += Assert(b == SYNC0)
                        with m.Case(1):
                            m.d.comb += Assert(b == SYNC1)
                        with m.Case(2):
                            m.d.comb += Assert((b & TYPE_RESERVED_MASK) == 0)
                        with m.Case(3):
                            m.d.comb += Assert(b == seq)
                        with m.Case(6):
                            m.d.comb += Assert((ln <= P) & (b == crc[:8]))
                        with m.Case(7):
                            m.d.comb += Assert(b == crc[8:])
                    with m.If((k >= 8) & (k == 8 + ln)):
                        m.d.comb += Assert(b == crc[:8])
                    with m.If((k >= 8) & (k == 8 + ln + 1)):
                        m.d.comb += Assert(b == crc[8:])
            else:
                n_in = _count(m, "n_in", 8, tx.i_stream.valid & tx.i_stream.ready & ~tx.i_stream.payload.empty)
                n_out = _count(m, "n_out", 8, sent & in_pay)
                diff = (n_in - n_out)[:8]
                m.d.comb += Assert(diff <= D * P + 2)
        else:
            raise ValueError(f"TxHarness: unknown property {p!r}")
        return m
