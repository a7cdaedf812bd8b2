"""The output lane in Amaranth's simulator against :func:`binaccel.sw.dpref.lane`."""

import numpy as np
import pytest

from binaccel.hw.dp.lane import Lane
from binaccel.hw.params import LaneKind
from binaccel.sw import dpref
from binaccel.sw.hwif import dp as dpif
from tests.hw.gateware import run_sim

KW = dict(acc_width=14, n_width=10, tag_width=2, off_width=12, mul_bits=12, add_bits=20,
          shift_width=5, y_width=40)
KINDS = {"sign": LaneKind.SIGN, "requant": LaneKind.REQUANT, "logits": LaneKind.LOGITS}


def _bank(rng):
    return {"noff": int(rng.integers(-2000, 2000)), "mul": int(rng.integers(-2048, 2048)),
            "add": int(rng.integers(-(1 << 19), 1 << 19))}


@pytest.mark.parametrize("kind", ["sign", "requant", "logits"])
@pytest.mark.parametrize("alpha,sum_cols,pool,cols,seed", [
    (1, 0, 0, 4, 0), (0, 0, 1, 4, 1), (1, 1, 0, 4, 2), (1, 1, 1, 2, 3), (0, 1, 0, 3, 4), (1, 0, 1, 1, 5),
])
def test_lane_matches_reference(kind, alpha, sum_cols, pool, cols, seed):
    rng = np.random.default_rng(seed)
    dut = Lane(cols=cols, **KW)
    cfg = {"kind": kind, "alpha": alpha, "sum_cols": sum_cols, "pool": pool,
           "shift": int(rng.integers(0, 12)), "out_bits": int(rng.integers(1, 9))}
    banks = [_bank(rng), _bank(rng)]
    if kind == "sign":  # thresholds near the values, so both outcomes occur
        for b in banks:
            t = int(rng.integers(-200, 200)) * (cols if sum_cols else 1)
            flip = int(rng.integers(0, 2))
            b.update({"noff": -int(rng.integers(0, 300)), "mul": -1 if flip else 1, "add": t if flip else -t})
    n_res = cols * 24
    results = []
    for g in range(n_res // cols):
        tag = int(rng.integers(0, 4))  # the bank (tag bit 0) is the same within a group
        for _ in range(cols):
            results.append((int(rng.integers(0, 1 << 14)) // (1 if kind != "sign" else 40),
                            int(rng.integers(0, 1 << 10)) // (1 if kind != "sign" else 3), tag))
    want = dpref.lane(results, cfg=cfg, banks=banks, cols=cols)
    got = []

    async def tb(ctx):
        masks = dpif.lane_masks(shift=cfg["shift"], out_bits=cfg["out_bits"], z_width=dut.z_width)
        ctx.set(dut.cfg, {**cfg, "kind": KINDS[kind], **masks})
        for b in range(2):
            ctx.set(dut.p_we, 1), ctx.set(dut.p_bank, b), ctx.set(dut.p_data, banks[b])
            await ctx.tick()
        ctx.set(dut.p_we, 0)
        pending = list(results)
        for cyc in range(len(results) * 2 + dut.latency + 4):
            if pending and rng.random() < 0.7:
                acc, n, tag = pending.pop(0)
                ctx.set(dut.i, {"valid": 1, "acc": acc, "n": n, "tag": tag})
            else:
                ctx.set(dut.i.valid, 0)
            if ctx.get(dut.o.valid):
                got.append(int(ctx.get(dut.o.y)))
            await ctx.tick()

    run_sim(dut, tb)
    assert got == want
    pooled = pool and kind != "logits"   # logits are never pooled
    assert len(got) == n_res // (cols if sum_cols else 1) // (cols if pooled else 1)
    if kind == "sign":
        assert 0 < sum(got) < len(got)
