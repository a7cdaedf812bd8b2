"""Modulation unit in Amaranth's simulator: acc_j = sum_t M[t][j] * P_t per column, vs numpy."""

import numpy as np
import pytest

from binaccel.hw.modulation import ModulationUnit
from tests.hw.gateware import run_sim


def _run(dut, mfilter, tiles, *, rng, gap):
    """tiles: list of (n_seg, P[n_seg][cols], gt_last). Returns list of (acc tuple, gt_last, last_col)."""
    cols, K = dut.cols, dut.max_planes
    got = []

    async def tb(ctx):
        ctx.set(dut.mfilter, [[int(v) for v in row] for row in mfilter])
        pending = []
        for n_seg, P, gt_last in tiles:
            for t in range(n_seg):
                for c in range(cols):
                    pending.append(dict(valid=1, p=int(P[t][c]), t=t, tile_last=int(t == n_seg - 1),
                                        gt_last=gt_last, last_col=int(c == cols - 1)))
        for item in pending + [None] * 4:
            while item is not None and rng.random() < gap:
                ctx.set(dut.i.valid, 0)
                await ctx.tick()
                o = ctx.get(dut.o)
                if o.valid:
                    got.append((tuple(int(o.acc[j]) for j in range(K)), o.gt_last, o.last_col))
            if item is None:
                ctx.set(dut.i.valid, 0)
            else:
                ctx.set(dut.i, item)
            await ctx.tick()
            o = ctx.get(dut.o)
            if o.valid:
                got.append((tuple(int(o.acc[j]) for j in range(K)), o.gt_last, o.last_col))

    run_sim(dut, tb)
    return got


def _expected(mfilter, tiles, cols):
    out = []
    for n_seg, P, gt_last in tiles:
        acc = np.asarray(mfilter[:n_seg], dtype=np.int64).T @ np.asarray(P, dtype=np.int64)  # (K, cols)
        for c in range(cols):
            out.append((tuple(int(v) for v in acc[:, c]), gt_last, int(c == cols - 1)))
    return out


@pytest.mark.parametrize("cols,K,taps,m_bits,gap,seed", [
    (3, 2, 9, 8, 0.0, 0), (1, 4, 4, 3, 0.5, 1), (4, 1, 1, 1, 0.3, 2), (2, 3, 9, 16, 0.2, 3),
    (2, 3, 4, 1, 0.2, 4),   # 1-bit factors (the plain builds): a select instead of a multiplier
])
def test_modulation_random(cols, K, taps, m_bits, gap, seed):
    rng = np.random.default_rng(seed)
    p_width = 12
    acc_width = p_width + m_bits + taps.bit_length()
    dut = ModulationUnit(cols=cols, max_planes=K, max_taps=taps, p_width=p_width, acc_width=acc_width,
                         m_bits=m_bits)
    mfilter = rng.integers(0, 1 << m_bits, size=(taps, K))
    tiles = []
    for i in range(5):
        n_seg = int(rng.integers(1, taps + 1))
        P = rng.integers(-(1 << (p_width - 1)), 1 << (p_width - 1), size=(n_seg, cols))
        tiles.append((n_seg, P, int(rng.integers(0, 2))))
    assert _run(dut, mfilter, tiles, rng=rng, gap=gap) == _expected(mfilter, tiles, cols)


@pytest.mark.parametrize("sign", [1, -1])
def test_modulation_extremes(sign):
    """Largest partials times the largest factor on every tap: the accumulator bound, no overflow."""
    cols, K, taps, m_bits, p_bound = 2, 2, 9, 8, 1000
    p_width = p_bound.bit_length() + 1
    acc_bound = taps * p_bound * ((1 << m_bits) - 1)
    acc_width = acc_bound.bit_length() + 1
    dut = ModulationUnit(cols=cols, max_planes=K, max_taps=taps, p_width=p_width, acc_width=acc_width,
                         m_bits=m_bits)
    mfilter = np.full((taps, K), (1 << m_bits) - 1)
    tiles = [(taps, np.full((taps, cols), sign * p_bound), 1)]
    got = _run(dut, mfilter, tiles, rng=np.random.default_rng(0), gap=0.0)
    assert got == _expected(mfilter, tiles, cols)
    assert got[0][0][0] == sign * acc_bound


def test_modulation_rejects_bad_parameters():
    with pytest.raises(ValueError, match="acc_width"):
        ModulationUnit(cols=2, max_planes=2, max_taps=9, p_width=20, acc_width=10, m_bits=4)
    with pytest.raises(TypeError, match="cols"):
        ModulationUnit(cols=2.0, max_planes=2, max_taps=9, p_width=8, acc_width=10, m_bits=4)
