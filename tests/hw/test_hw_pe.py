"""PE and systolic array in Amaranth's simulator against a numpy model of XNOR/AND-popcount steps."""

import numpy as np
import pytest

from binaccel.hw.array import SystolicArray
from binaccel.hw.pe import PE
from tests.hw.gateware import run_sim, step_contrib


def _pe_case(rng, word, in_bits, nsteps, directed=None):
    """Random steps: (valid, a, w, m, b, seg_last)."""
    steps = []
    for i in range(nsteps):
        valid = int(rng.random() < 0.8)
        if in_bits == 1:
            a, w, m = (int(v) for v in rng.integers(0, 1 << word, 3))
            b = 0
        else:
            x = int(rng.integers(0, 1 << word))
            a, m, w, b = x, x, int(rng.integers(0, 1 << word)), int(rng.integers(0, in_bits))
        steps.append((valid, a, w, m, b, int(rng.random() < 0.25)))
    if directed == "agree":  # all taps agree with the weights: contrib = +popcount(m) << b
        steps = [(1, s[2], s[2], (1 << word) - 1, in_bits - 1, 0) for s in steps]
    elif directed == "disagree":
        steps = [(1, ~s[2] & ((1 << word) - 1), s[2], (1 << word) - 1, in_bits - 1, 0) for s in steps]
    steps[-1] = steps[-1][:5] + (1,)
    steps[-1] = (1,) + steps[-1][1:]
    return steps


@pytest.mark.parametrize("stages", [1, 2])
@pytest.mark.parametrize("word,in_bits,seed,directed,last_col", [
    (8, 1, 0, None, True), (8, 4, 1, None, False), (5, 8, 2, None, True), (16, 1, 3, None, False),
    (8, 8, 4, "agree", True), (8, 8, 5, "disagree", False), (8, 1, 6, "agree", False), (8, 1, 7, "disagree", True),
])
def test_pe_matches_model(word, in_bits, seed, directed, last_col, stages):
    """Partials of a PE. The last-column PE drains its partial at once (its own commit); any other PE
    holds it while the next segment accumulates and drains it on the row's commit. With two stages
    a step reaches the partial a cycle after the PE sees it (``ctl_acc`` is that step's control)."""
    rng = np.random.default_rng(seed)
    nsteps = 40
    p_width = (nsteps * word * ((1 << in_bits) - 1 if in_bits > 1 else 1)).bit_length() + 1
    dut = PE(word=word, max_in_bits=in_bits, p_width=p_width, tap_width=2, last_col=last_col, stages=stages)
    steps = _pe_case(rng, word, in_bits, nsteps, directed)
    expected, acc = [], 0
    for valid, a, w, mk, b, last in steps:
        if valid:
            acc += step_contrib(a, w, mk, b, word)
            if last:
                expected.append(acc)
                acc = 0
    if directed:
        amax = 1 << (in_bits - 1)
        assert expected == [(1 if directed == "agree" else -1) * nsteps * word * amax]
    got = []

    async def tb(ctx):
        commit_at = None
        # the step the PE accumulates in each cycle: that cycle's with one stage, the previous one's
        # with two (then one bubble at the end lets the last step reach the partial)
        seen = steps + [(0, *steps[-1][1:5], 0)] * (stages - 1)
        acc_steps = [(0,) * 6] * (stages - 1) + steps
        for i, (valid, a, w, mk, b, last) in enumerate(seen):
            ctx.set(dut.a_in, a), ctx.set(dut.w_in, w), ctx.set(dut.m_in, mk)
            ctx.set(dut.n_in, bin(mk).count("1"))
            ctx.set(dut.ctl_in, {"valid": valid, "b": b, "seg_last": last, "tile_last": last,
                                 "gt_last": 0, "t": 1})
            ctx.set(dut.d_in, {"valid": 0, "p": 0, "t": 0, "tile_last": 0, "gt_last": 0, "last_col": 0})
            finishes = bool(acc_steps[i][0] and acc_steps[i][5])
            assert ctx.get(dut.ctl_acc.valid) == acc_steps[i][0]
            if last_col:
                commit = finishes
            else:  # the row commits one cycle after this PE finished (or at once if it finishes again)
                commit = commit_at == i or (commit_at is not None and finishes)
            ctx.set(dut.commit, int(bool(commit)))
            await ctx.tick()
            d = ctx.get(dut.d_out)
            if commit:
                assert d.valid == 1 and d.t == 1 and d.tile_last == 1 and d.last_col == int(last_col)
                got.append(d.p)
                commit_at = None
            else:
                assert d.valid == 0
            if not last_col and finishes:
                commit_at = i + 1
        if commit_at is not None:  # the row's commit of the last held partial
            ctx.set(dut.ctl_in.valid, 0)
            ctx.set(dut.commit, 1)
            await ctx.tick()
            got.append(ctx.get(dut.d_out).p)
            # operands are passed on one cycle later
            assert ctx.get(dut.w_out) == w and ctx.get(dut.a_out) == a and ctx.get(dut.m_out) == mk

    run_sim(dut, tb)
    assert got == expected


def test_pe_rejects_bad_parameters():
    with pytest.raises(ValueError, match="word"):
        PE(word=0, max_in_bits=1, p_width=8, tap_width=1)
    with pytest.raises(ValueError, match="max_in_bits"):
        PE(word=8, max_in_bits=9, p_width=8, tap_width=1)
    with pytest.raises(TypeError, match="last_col"):
        PE(word=8, max_in_bits=1, p_width=8, tap_width=1, last_col=1)
    with pytest.raises(ValueError, match="stages must be in 1..2, got 3"):
        PE(word=8, max_in_bits=1, p_width=8, tap_width=1, stages=3)
    with pytest.raises(ValueError, match="pe_stages must be in 1..2, got 0"):
        SystolicArray(rows=1, cols=1, word=8, max_in_bits=1, p_width=8, tap_width=1, pe_stages=0)


def _array_schedule(rng, *, rows, cols, word, in_bits, nseg, idle):
    """Operand steps with bubbles; segment ends kept >= cols cycles apart."""
    spacing = cols
    cycles, segs = [], []
    last_end = -10 ** 9
    for s in range(nseg):
        length = int(rng.integers(1, 5))
        seg = []
        for i in range(length):
            while rng.random() < idle:
                cycles.append(None)
            if i == length - 1:
                while len(cycles) - last_end < spacing:
                    cycles.append(None)
                last_end = len(cycles)
            w = rng.integers(0, 1 << word, rows)
            if in_bits == 1:
                a = rng.integers(0, 1 << word, cols)
                mk = rng.integers(0, 1 << word, cols)
                b = 0
            else:
                a = rng.integers(0, 1 << word, cols)
                mk = a
                b = int(rng.integers(0, in_bits))
            step = dict(w=[int(v) for v in w], a=[int(v) for v in a], m=[int(v) for v in mk], b=b,
                        last=int(i == length - 1), t=s % 4)
            seg.append(step)
            cycles.append(step)
        segs.append(seg)
    return cycles, segs


@pytest.mark.parametrize("rows,cols,word,in_bits,idle,seed,stages", [
    (2, 3, 8, 1, 0.0, 0, 1), (3, 2, 8, 4, 0.3, 1, 1), (1, 1, 4, 1, 0.5, 2, 1), (2, 4, 6, 8, 0.2, 3, 1),
    (2, 3, 8, 1, 0.0, 0, 2), (3, 2, 8, 4, 0.3, 1, 2), (1, 1, 4, 1, 0.5, 2, 2),
])
def test_array_partials(rows, cols, word, in_bits, idle, seed, stages):
    rng = np.random.default_rng(seed)
    p_width = 16
    dut = SystolicArray(rows=rows, cols=cols, word=word, max_in_bits=in_bits, p_width=p_width,
                        tap_width=2, pe_stages=stages)
    cycles, segs = _array_schedule(rng, rows=rows, cols=cols, word=word, in_bits=in_bits, nseg=6,
                                   idle=idle)
    expected = [[] for _ in range(rows)]
    for seg in segs:
        for r in range(rows):
            for c in range(cols):
                p = sum(step_contrib(s["a"][c], s["w"][r], s["m"][c], s["b"], word) for s in seg)
                expected[r].append((p, seg[-1]["t"], int(c == cols - 1)))
    got = [[] for _ in range(rows)]
    ends = [i for i, s in enumerate(cycles) if s is not None and s["last"]]

    async def tb(ctx):
        total = len(cycles) + 2 * rows + 3 * cols + 4
        for i in range(total):
            s = cycles[i] if i < len(cycles) else None
            if s is None:
                ctx.set(dut.i.ctl.valid, 0)
            else:
                ctx.set(dut.i, {"ctl": {"valid": 1, "b": s["b"], "seg_last": s["last"], "tile_last": s["last"],
                                        "gt_last": 0, "t": s["t"]},
                                "w": s["w"], "a": s["a"], "m": s["m"]})
            await ctx.tick()
            # after this edge we are in cycle i+1
            for r in range(rows):
                d = ctx.get(dut.drain[r])
                if d.valid:
                    got[r].append((d.p, d.t, d.last_col))
                    # documented timing: partial of column c during T + pe_stages + r + cols + c
                    k = len(got[r]) - 1
                    seg_i, c = divmod(k, cols)
                    assert i + 1 == ends[seg_i] + stages + r + cols + c, (r, c, i + 1, ends[seg_i])

    run_sim(dut, tb)
    assert got == expected


@pytest.mark.parametrize("in_bits,padding,stride,seed", [(1, 1, 1, 0), (4, 1, 2, 1), (1, 0, 1, 2)])
def test_array_tap_partials_equal_intref(in_bits, padding, stride, seed):
    """An mcn layer folded by the host (one segment per tap): the array's drained partials of one tile
    equal intref.tap_partials (whole tensor)."""
    from binaccel.sw import intref, pack
    from binaccel.sw.randmodel import random_input, random_layer

    rows, cols, word = 2, 3, 8
    rng = np.random.default_rng(seed)
    layer = random_layer(rng, mode="mcn", planes=2, m_bits=4, in_ch=11, in_h=4, in_w=4, out_ch=4, kernel=3,
                         padding=padding, stride=stride, in_bits=in_bits)
    x = random_input(rng, layer, 1)
    vals, valid, wbits = pack.fold_layer(layer, x, word)
    taps, cw = 9, -(-layer.in_ch // word)
    L = layer.conv_h * layer.conv_w
    assert L >= cols and layer.groups == rows
    words = lambda bits: [[int(sum(int(v) << i for i, v in enumerate(row[k * word:(k + 1) * word])))  # noqa: E731
                           for k in range(taps * cw)] for row in bits]
    wv = words(wbits)
    planes = [vals] if in_bits == 1 else [(vals >> b) & 1 for b in range(in_bits)]
    av = [words(p[:cols]) for p in planes]
    mv = words(valid[:cols]) if in_bits == 1 else av
    steps = []
    for k in range(taps * cw):
        for b in range(in_bits):
            mk = [mv[c][k] for c in range(cols)] if in_bits == 1 else [av[b][c][k] for c in range(cols)]
            steps.append(dict(w=[wv[r][k] for r in range(rows)], a=[av[b][c][k] for c in range(cols)], m=mk,
                              b=b, last=int(k % cw == cw - 1 and b == in_bits - 1), t=k // cw))
    sched, last_end = [], -cols
    for s in steps:  # bubbles keep segment ends cols cycles apart (as the engine's sequencer does)
        while s["last"] and len(sched) - last_end < cols:
            sched.append(None)
        if s["last"]:
            last_end = len(sched)
        sched.append(s)
    dut = SystolicArray(rows=rows, cols=cols, word=word, max_in_bits=max(in_bits, 1), p_width=16, tap_width=4)
    got = np.zeros((rows, taps, cols), dtype=np.int64)
    count = [0] * rows

    async def tb(ctx):
        for s in sched + [None] * (rows + 2 * cols + 4):
            if s is None:
                ctx.set(dut.i.ctl.valid, 0)
            else:
                ctx.set(dut.i, {"ctl": {"valid": 1, "b": s["b"], "seg_last": s["last"], "tile_last": 0,
                                        "gt_last": 0, "t": s["t"]}, "w": s["w"], "a": s["a"], "m": s["m"]})
            await ctx.tick()
            for r in range(rows):
                d = ctx.get(dut.drain[r])
                if d.valid:
                    t, c = divmod(count[r], cols)
                    assert d.t == t
                    got[r, t, c] = d.p
                    count[r] += 1

    run_sim(dut, tb)
    ref = intref.tap_partials(layer, x)[0].reshape(rows, taps, L)[:, :, :cols]
    assert count == [taps * cols] * rows
    assert np.array_equal(got, ref)
