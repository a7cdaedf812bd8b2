"""Scale unit in Amaranth's simulator against binaccel.sw.intref.postprocess (all out kinds)."""

from types import SimpleNamespace

import numpy as np
import pytest

from binaccel.hw.params import EngineParams, OutKind
from binaccel.hw.scale import ScaleUnit
from tests.hw.gateware import run_sim
from binaccel.sw import intref

P = EngineParams(rows=2, cols=2, word=8, max_fan_in=100, max_in_bits=8, max_planes=2, m_bits=4,
                 mul_bits=10, add_bits=16)
LANES = 4


def _dut():
    return ScaleUnit(lanes=LANES, acc_width=P.acc_width, thresh_width=P.thresh_width, mul_bits=P.mul_bits,
                     add_bits=P.add_bits, y_width=P.y_width)


def _run(dut, cases, kind, shift, out_bits):
    """cases: list of (acc[LANES], p[LANES], q[LANES]); returns outputs (n, LANES)."""
    got = []

    async def tb(ctx):
        ctx.set(dut.cfg, {"out_kind": kind, "shift": shift, "out_bits": out_bits})
        for item in list(cases) + [None, None]:
            if item is None:
                ctx.set(dut.i.valid, 0)
            else:
                acc, pv, qv = item
                ctx.set(dut.i, {"valid": 1, "acc": [int(v) for v in acc]})
                ctx.set(dut.params, [{"p": int(a), "q": int(b)} for a, b in zip(pv, qv)])
            await ctx.tick()
            o = ctx.get(dut.o)
            if o.valid:
                got.append([int(o.y[k]) for k in range(LANES)])

    run_sim(dut, tb)
    return np.array(got, dtype=np.int64)


def _reference(out_kind, cases, shift, out_bits):
    out = []
    for acc, pv, qv in cases:
        if out_kind == "sign":
            layer = SimpleNamespace(out_kind="sign", thresh=np.asarray(pv), flip=np.asarray(qv))
        else:
            layer = SimpleNamespace(out_kind=out_kind, mul=np.asarray(pv), add=np.asarray(qv), shift=shift,
                                    out_bits=out_bits)
        out.append(intref.postprocess(layer, np.asarray(acc).reshape(1, LANES, 1, 1)).reshape(-1))
    return np.array(out, dtype=np.int64)


B = P.acc_bound
MB, AB = 1 << (P.mul_bits - 1), 1 << (P.add_bits - 1)


def _random_cases(rng, kind, n=30):
    cases = []
    for _ in range(n):
        acc = rng.integers(-B, B + 1, LANES)
        if kind == "sign":
            pv = acc + rng.integers(-2, 3, LANES)  # thresholds near the accumulator: ties matter
            pv = np.clip(pv, -B - 1, B + 1)
            qv = rng.integers(0, 2, LANES)
        else:
            pv = rng.integers(-MB, MB, LANES)
            qv = rng.integers(-AB, AB, LANES)
        cases.append((acc, pv, qv))
    return cases


def _extreme_cases(kind):
    if kind == "sign":
        accs = [[B, -B, B, -B], [0, 0, -B, B]]
        return [(np.array(a), np.array(t), np.array(f)) for a in accs
                for t in ([B + 1, -B - 1, B, -B], [-B - 1, B + 1, 0, 0]) for f in ([0, 1, 0, 1], [1, 0, 1, 0])]
    accs = [[B, -B, B, -B], [-B, B, 0, 1]]
    return [(np.array(a), np.array(m), np.array(q)) for a in accs
            for m in ([-MB, -MB, MB - 1, MB - 1], [MB - 1, -MB, 1, 0]) for q in ([-AB, AB - 1, AB - 1, -AB],)]


@pytest.mark.parametrize("kind,shift,out_bits,seed", [
    ("sign", 0, 1, 0), ("requant", 8, 4, 1), ("requant", 0, 8, 2), ("requant", 63, 2, 3),
    ("requant", 20, 8, 4), ("logits", 4, 1, 5), ("logits", 0, 1, 6),
])
def test_scale_matches_postprocess(kind, shift, out_bits, seed):
    rng = np.random.default_rng(seed)
    cases = _random_cases(rng, kind) + _extreme_cases(kind)
    got = _run(_dut(), cases, OutKind[kind.upper()], shift, out_bits)
    ref = _reference(kind, cases, shift, out_bits)
    assert np.array_equal(got, ref)


def test_scale_y_width_holds_extremes():
    """|acc*mul + add| reaches the documented bound y_bound and fits y_width."""
    cases = [(np.array([B, -B, B, -B]), np.array([-MB, -MB, MB - 1, MB - 1]), np.array([-AB, AB - 1, AB - 1, -AB]))]
    got = _run(_dut(), cases, OutKind.LOGITS, 0, 1)
    assert got[0][0] == -P.y_bound
    assert np.array_equal(got, _reference("logits", cases, 0, 1))


@pytest.mark.parametrize("out_bits,shift", [(15, 0), (8, 0), (1, 0), (8, 3)])
def test_requant_clamp_edges(out_bits, shift):
    """The clamp to [0, 2**out_bits - 1] around its edges: just below, at and above the top, values
    whose low 16 bits are small but higher bits are set (2**16 + 3), and negative ones."""
    hi = (1 << out_bits) - 1
    ys = [hi - 1, hi, hi + 1, 65535, 65536, 65536 + 3, (1 << 20) + 1, 0, -1, -65536]
    # y = acc * mul + add: small ones with mul = 1, larger ones with mul = MB - 1 and the rest in add
    cases = []
    for y in ys:
        y <<= shift
        mul = MB - 1 if abs(y) >= AB else 1
        acc = int(np.clip(y // mul, -B, B))
        cases.append((acc, mul, y - acc * mul))
    cases += [(B, MB - 1, AB - 1), (B, -MB, -AB)]     # the largest and the smallest y
    assert all(-AB <= add < AB for _, _, add in cases), cases
    cases = [(np.full(LANES, a), np.full(LANES, mul), np.full(LANES, add)) for a, mul, add in cases]
    got = _run(_dut(), cases, OutKind.REQUANT, shift, out_bits)
    ref = _reference("requant", cases, shift, out_bits)
    assert np.array_equal(got, ref)
    assert {int(v) for v in got[:, 0]} >= {0, hi}
