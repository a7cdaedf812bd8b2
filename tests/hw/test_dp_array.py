"""The pipelined XNOR-popcount PE array in Amaranth's simulator against its numpy reference
(:func:`binaccel.sw.dpref.xnor_array`): whole result lists equal, and each result in its cycle."""

import numpy as np
import pytest

from binaccel.hw.dp.array import XnorArray
from binaccel.hw.dp.pe import XnorPE
from binaccel.sw import dpref
from tests.hw.gateware import run_sim


def _steps(rng, *, rows, cols, word, slot, n_width, tag_width, segments, directed=None):
    """Random segments (1..6 valid steps, random Horner doublings) with random bubbles; segment
    ends at least ``cols`` cycles apart."""
    full = (1 << word) - 1
    slots = word // slot
    steps, since = [], cols
    for s in range(segments):
        length = int(rng.integers(1, 7))
        for j in range(length):
            while rng.random() < 0.3:
                steps.append(None)
                since += 1
            last = j == length - 1
            while last and since < cols:
                steps.append(None)
                since += 1
            w = [int(v) for v in rng.integers(0, 1 << word, rows, dtype=np.uint64)]
            a = [int(v) for v in rng.integers(0, 1 << word, cols, dtype=np.uint64)]
            mk = [int(v) for v in rng.integers(0, 1 << slots, cols)]
            if directed == "agree":
                a, mk = [w[0]] * cols, [(1 << slots) - 1] * cols
                w = [w[0]] * rows
            elif directed == "disagree":
                a, mk = [~w[0] & full] * cols, [(1 << slots) - 1] * cols
                w = [w[0]] * rows
            steps.append({"valid": 1, "first": int(j == 0), "dbl": int(j > 0 and rng.random() < 0.3),
                          "last": int(last), "tag": int(rng.integers(0, 1 << tag_width)), "w": w, "a": a,
                          "m": mk, "n": [int(v) for v in rng.integers(0, 4, cols)]})
            since = 1 if last else since + 1
    return steps


def _run(dut, steps, *, extra):
    R = dut.rows
    got = [[] for _ in range(R)]
    seen = []

    async def tb(ctx):
        for cyc in range(len(steps) + extra):
            st = steps[cyc] if cyc < len(steps) else None
            if st is None:
                ctx.set(dut.i.ctl.valid, 0)
            else:
                ctx.set(dut.i, {"ctl": {k: st[k] for k in ("valid", "first", "dbl", "last", "tag")},
                                "w": st["w"], "a": st["a"], "m": st["m"], "n": st["n"]})
            for r in range(R):
                o = ctx.get(dut.o[r])
                if o.valid:
                    got[r].append((int(o.acc), int(o.n), int(o.tag)))
                    seen.append((r, cyc))
                else:           # a row's result is the OR of its PEs': theirs are 0 when not valid
                    assert (int(o.acc), int(o.n), int(o.tag)) == (0, 0, 0), (r, cyc)
            await ctx.tick()

    run_sim(dut, tb)
    return got, seen


@pytest.mark.parametrize("rows,cols,word,slot,levels,seed,directed", [
    (2, 3, 32, 16, 2, 0, None), (3, 2, 32, 32, 2, 1, None), (1, 1, 8, 2, 1, 2, None),
    (2, 2, 16, 4, 3, 3, None), (2, 4, 32, 8, 2, 4, None), (2, 2, 32, 16, 2, 5, "agree"),
    (2, 2, 32, 16, 2, 6, "disagree"), (1, 2, 5, 5, 2, 7, None),
])
def test_array_matches_reference(rows, cols, word, slot, levels, seed, directed):
    rng = np.random.default_rng(seed)
    n_width, tag_width = 8, 3
    acc_width = 16
    dut = XnorArray(rows=rows, cols=cols, word=word, slot=slot, acc_width=acc_width, n_width=n_width,
                    tag_width=tag_width, levels_per_stage=levels)
    steps = _steps(rng, rows=rows, cols=cols, word=word, slot=slot, n_width=n_width, tag_width=tag_width,
                   segments=12, directed=directed)
    ref = dpref.xnor_array([s or {"valid": 0} for s in steps], rows=rows, cols=cols, word=word, slot=slot)
    ref = [[(acc % (1 << acc_width), n % (1 << n_width), t) for acc, n, t in row] for row in ref]
    got, seen = _run(dut, steps, extra=dut.latency + rows + cols + 2)
    assert got == ref
    assert all(len(row) == 12 * cols for row in got)
    # timing: the segment ending at edge cycle T leaves every row's column c at T + latency + c
    ends = [t for t, s in enumerate(steps) if s and s["last"]]
    want = sorted((r, T + dut.latency + c) for T in ends for r in range(rows) for c in range(cols))
    assert sorted(seen) == want
    if directed == "agree":   # every bit agrees: p is the number of unmasked bits
        assert all(acc > 0 for row in got for acc, _, _ in row)


def test_pe_latency_and_stages():
    pe = XnorPE(word=32, slot=16, acc_width=20, n_width=8, tag_width=2)
    pe._MustUse__silence = True
    assert pe.tree_levels == (4, 1) and pe.stages == 3 and pe.latency == 4
    pe = XnorPE(word=64, slot=16, acc_width=20, n_width=8, tag_width=2, levels_per_stage=3)
    assert pe.tree_levels == (4, 2) and pe.stages == 2 + 1
    pe._MustUse__silence = True


@pytest.mark.parametrize("kw,err", [
    ({"word": 32, "slot": 12}, ValueError), ({"word": 0, "slot": 1}, ValueError),
    ({"word": 32.0, "slot": 16}, TypeError), ({"word": 32, "slot": 16, "acc_width": 1}, ValueError),
])
def test_pe_parameters_checked(kw, err):
    args = {"acc_width": 16, "n_width": 4, "tag_width": 1, **kw}
    with pytest.raises(err):
        XnorPE(**args)
