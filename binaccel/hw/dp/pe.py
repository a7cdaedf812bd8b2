"""Pipelined XNOR-popcount processing element."""

from __future__ import annotations

from amaranth.hdl import Cat, Const, Module, Mux, Signal, Value
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out

from .._util import REPLICA, check_int, checking
from .carry import Term, fused_add

__all__ = ["XnorPE", "step_ctl_layout", "result_layout", "valid_register"]


def valid_register(m, value, name, *, replica=0):
    """``value`` (a layout view or value whose bit 0 is ``valid``) registered in ``m``'s ``sync``
    domain; only the valid bit has a reset, so that the reset reaches few flip-flops. Returns a
    view of the same layout (or a value). ``replica``: the register's first ``replica`` bits are a
    deliberate copy (:data:`~binaccel.hw._util.REPLICA`)."""
    v = Value.cast(value)
    valid = Signal(name=f"{name}_valid", attrs=REPLICA if replica else {})
    m.d.sync += valid.eq(v[0])
    parts = [valid]
    for lo, hi, attrs, suffix in ((1, max(replica, 1), REPLICA, "hot"), (max(replica, 1), len(v), {}, "rest")):
        if hi > lo:
            r = Signal(hi - lo, name=f"{name}_{suffix}", reset_less=True, attrs=attrs)
            m.d.sync += r.eq(v[lo:hi])
            parts.append(r)
    if len(v) == 1:
        return valid
    out = Cat(*parts)
    return data.View(value.shape(), out) if isinstance(value, data.View) else out


#: The control bits of a step that steer a PE's accumulator (``valid``, ``first``, ``dbl``,
#: ``last``: the first fields of :func:`step_ctl_layout`).
HOT_CTL_BITS = 4


def step_ctl_layout(*, n_width: int, tag_width: int) -> data.StructLayout:
    """Control travelling with an operand step: ``valid`` (0: a bubble), ``first`` (the step starts
    a segment), ``dbl`` (Horner: the partial so far is doubled before the step is added, at a new
    bit plane), ``last`` (the step ends the segment), ``n`` (the column's count of valid bits
    so far in the segment) and an opaque ``tag`` that comes back with the result."""
    return data.StructLayout({"valid": 1, "first": 1, "dbl": 1, "last": 1,
                              "n": n_width, "tag": tag_width})


def result_layout(*, acc_width: int, n_width: int, tag_width: int) -> data.StructLayout:
    """A finished segment: ``valid``, the partial ``acc``, the count ``n`` and the ``tag`` of the
    segment's last step."""
    return data.StructLayout({"valid": 1, "acc": acc_width, "n": n_width, "tag": tag_width})


class XnorPE(wiring.Component):
    """One processing element of :class:`~binaccel.hw.dp.array.XnorArray`.

    Parameters (keyword-only): ``word`` (bits per step), ``slot`` (bits per slot; ``word`` is a
    multiple of it), ``acc_width`` (width of the unsigned partial), ``n_width``, ``tag_width``
    (fields of :func:`step_ctl_layout`), ``levels_per_stage`` (adder-tree levels between pipeline
    registers, default 2).

    A step (``a_in``, ``w_in``, ``m_in`` with one mask bit per slot, ``ctl_in``) is forwarded
    unchanged on the ``*_out`` ports one cycle later. A valid step adds
    ``p = sum over slots s with m_in[s] set of popcount(~(a_in ^ w_in)) in slot s`` to the
    partial: ``acc = p + (0 if first else 2*acc if dbl else acc)``. The step that ends a segment
    (``last``) puts ``acc``, with the step's ``n`` and ``tag``, on ``res`` (``valid`` for one
    cycle) :attr:`latency` cycles after the step was on the inputs; while ``res.valid`` is 0, the
    other fields of ``res`` are 0. The PE never stalls.
    """

    def __init__(self, *, word, slot, acc_width, n_width, tag_width, levels_per_stage=2):
        with checking(self):
            check_int("word", word, 1)
            check_int("slot", slot, 1, word)
            if word % slot:
                raise ValueError(f"word ({word}) must be a multiple of slot ({slot})")
            check_int("acc_width", acc_width, 2)
            check_int("n_width", n_width, 1)
            check_int("tag_width", tag_width, 1)
            check_int("levels_per_stage", levels_per_stage, 1)
        self.word, self.slot, self.acc_width = word, slot, acc_width
        self.slots = word // slot
        self.levels_per_stage = levels_per_stage
        self.ctl_layout = step_ctl_layout(n_width=n_width, tag_width=tag_width)
        self.res_layout = result_layout(acc_width=acc_width, n_width=n_width, tag_width=tag_width)
        super().__init__({
            "a_in": In(word), "w_in": In(word), "m_in": In(self.slots), "ctl_in": In(self.ctl_layout),
            "a_out": Out(word), "w_out": Out(word), "m_out": Out(self.slots), "ctl_out": Out(self.ctl_layout),
            "res": Out(self.res_layout),
        })

    @property
    def tree_levels(self) -> tuple:
        """(levels of the slot popcount, levels of the masked sum over slots)."""
        return (self.slot - 1).bit_length(), (self.slots - 1).bit_length()

    @property
    def stages(self) -> int:
        """Pipeline registers between the inputs and the partial's adder."""
        lv = self.levels_per_stage
        slot_levels, sum_levels = self.tree_levels
        # the slot popcounts in groups of `lv` levels, then the masked sum over the slots (at least
        # one register: the step's `p`)
        return -(-slot_levels // lv) + max(1, -(-sum_levels // lv))

    @property
    def latency(self) -> int:
        """Cycles from a step on the inputs to its result on ``res``."""
        return self.stages + 1

    def elaborate(self, platform):
        m = Module()
        lv = self.levels_per_stage
        # data registers have no reset (what they hold counts only with a valid control)
        a_q = Signal(self.word, reset_less=True)
        w_q = Signal(self.word, reset_less=True)
        m_q = Signal(self.slots, reset_less=True)
        m.d.sync += [a_q.eq(self.a_in), w_q.eq(self.w_in), m_q.eq(self.m_in)]
        m.d.comb += [self.a_out.eq(a_q), self.w_out.eq(w_q), self.m_out.eq(m_q),
                     self.ctl_out.eq(valid_register(m, self.ctl_in, "ctl_fwd"))]

        regs = 0                        # pipeline registers passed so far
        mask, ctl = self.m_in, self.ctl_in

        prev_ctl = ctl                  # the control one stage before `ctl`

        def register(values, name):
            nonlocal regs, mask, ctl, prev_ctl
            out = []
            for i, v in enumerate(values):
                r = Signal(len(v), name=f"{name}_{i}", reset_less=True)
                m.d.sync += r.eq(v)
                out.append(r)
            # (the control and mask are the same in every PE of a column: each PE keeps its own
            # copy, so that none drives the whole column's accumulators)
            mq = Signal.like(mask, name=f"mask_q{regs}", reset_less=True, attrs=REPLICA)
            m.d.sync += mq.eq(mask)
            # (valid, first, dbl, last: copies; the count and the tag only go out with the result)
            prev_ctl = ctl
            mask, ctl = mq, valid_register(m, ctl, f"ctl_q{regs}", replica=HOT_CTL_BITS)
            regs += 1
            return out

        def reduce(level, levels, name):
            for k in range(levels):
                level = [level[i] + level[i + 1] if i + 1 < len(level) else level[i]
                         for i in range(0, len(level), 2)]
                if (k + 1) % lv == 0 or k + 1 == levels:
                    level = register(level, f"{name}{k}")
            return level

        x = ~(self.a_in ^ self.w_in)
        slot_levels, sum_levels = self.tree_levels
        # the slot popcounts, level by level over all slots at once (the registers line up)
        level = [x[i].as_unsigned() for i in range(self.word)]
        for k in range(slot_levels):
            nxt = []
            for s in range(self.slots):
                part = level[s * len(level) // self.slots:(s + 1) * len(level) // self.slots]
                nxt += [part[i] + part[i + 1] if i + 1 < len(part) else part[i] for i in range(0, len(part), 2)]
            level = nxt
            if (k + 1) % lv == 0 or k + 1 == slot_levels:
                level = register(level, f"pc{k}")
        # masked sum over the slots (the mask gates the inputs of the first level)
        level = [Mux(mask[s], level[s], 0) for s in range(self.slots)]
        if sum_levels:
            level = reduce(level, sum_levels, "slot")
        else:
            level = register(level, "p")
        p = level[0]
        assert regs == self.stages, (regs, self.stages)

        # the partial is cleared (the flip-flops' synchronous reset) while a segment's first step
        # is one stage before it, so that step adds to 0; the doubling select lies in the carry cells
        acc = Signal(self.acc_width, reset_less=True)
        acc_next = Signal(self.acc_width)
        m.d.comb += acc_next.eq(fused_add(m, platform, Term(p),
                                          Term(acc, ctl.dbl, "mux", alt=Cat(Const(0, 1), acc[:-1])), name="acc"))
        with m.If(prev_ctl.valid & prev_ctl.first):
            m.d.sync += acc.eq(0)
        with m.Elif(ctl.valid):
            m.d.sync += acc.eq(acc_next)
        res_v = Signal()
        res_acc = Signal(self.acc_width, reset_less=True)
        res_n = Signal(len(ctl.n), reset_less=True)
        res_tag = Signal(len(ctl.tag), reset_less=True)
        # (the result's fields are 0 while it is not valid: the flip-flops' synchronous reset, so
        # that a row of PEs merges its results by an OR, without a select driven by `valid`)
        m.d.sync += res_v.eq(ctl.valid & ctl.last)
        with m.If(ctl.valid & ctl.last):
            m.d.sync += [res_acc.eq(acc_next), res_n.eq(ctl.n), res_tag.eq(ctl.tag)]
        with m.Else():
            m.d.sync += [res_acc.eq(0), res_n.eq(0), res_tag.eq(0)]
        m.d.comb += [self.res.valid.eq(res_v), self.res.acc.eq(res_acc), self.res.n.eq(res_n),
                     self.res.tag.eq(res_tag)]
        return m
