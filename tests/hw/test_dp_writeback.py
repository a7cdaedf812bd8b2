"""The write-back in Amaranth's simulator against :func:`binaccel.sw.dpref.writeback`."""

import numpy as np
import pytest

from binaccel.hw.dp.writeback import WriteBack
from binaccel.sw import dpref
from tests.hw.gateware import run_sim

R, AW = 16, 10


def _cfg(**kw):
    cfg = {"logits": 0, "planes_last": 0, "plane_size": 0, "last_out": 3, "out_off": [0, 2, 20, 22], "linear": 0,
           "last_cols": 4, "last_tx": 2, "last_ty": 1, "last_gt": 1, "base": 5, "dx": 4, "dy": 40, "rows_last": 15}
    cfg.update(kw)
    return cfg


@pytest.mark.parametrize("cfg,bits,gap", [
    (_cfg(), 1, 4), (_cfg(planes_last=3, plane_size=100), 4, 16), (_cfg(last_out=0, out_off=[0, 0, 0, 0]), 1, 1),
    (_cfg(linear=1, last_cols=2, out_off=[0, 1, 2, 3]), 1, 4), (_cfg(planes_last=7, plane_size=64, last_out=0), 8, 8),
    (_cfg(logits=1, last_out=0, last_tx=0, last_ty=0, last_gt=1, rows_last=9), 20, 16),
])
def test_writeback_matches_reference(cfg, bits, gap):
    rng = np.random.default_rng(bits + gap)
    dut = WriteBack(rows=R, cols=4, y_width=24, aw=AW, count_w=4)
    n = (cfg["last_gt"] + 1) * (cfg["last_ty"] + 1) * (cfg["last_tx"] + 1) * (cfg["last_out"] + 1)
    lo = -(1 << (bits - 1)) if cfg["logits"] else 0
    hi = (1 << (bits - 1)) if cfg["logits"] else (1 << bits)
    outputs = [[int(v) for v in rng.integers(lo, hi, R)] for _ in range(n)]
    want_w, want_l = dpref.writeback(cfg, outputs, cols=4)
    got_w, got_l = [], []

    async def tb(ctx):
        ctx.set(dut.cfg, cfg)
        ctx.set(dut.start, 1)
        await ctx.tick()
        ctx.set(dut.start, 0)
        # output k of every row in cycle t_k; outputs at least `gap` cycles apart, plus random idle
        times, t = [], 2
        for _ in outputs:
            times.append(t)
            t += gap + int(rng.integers(0, 3))
        events = {}
        reserve = {tk - 1 for tk in times}   # a logits segment reserves its rows before its outputs
        for k, tk in enumerate(times):
            for r in range(R):
                events.setdefault(tk, []).append((r, outputs[k][r]))
        cyc = 0
        while cyc < t + 3 * R or ctx.get(dut.busy) or ctx.get(dut.l_stream.valid):
            for r in range(R):
                ctx.set(dut.i[r].valid, 0)
            for r, v in events.get(cyc, []):
                ctx.set(dut.i[r], {"valid": 1, "y": v})
            ctx.set(dut.take, int(cfg["logits"] and cyc in reserve))
            ready = int(rng.random() < 0.5)
            ctx.set(dut.l_stream.ready, ready)
            if ctx.get(dut.wr_en):
                got_w.append((int(ctx.get(dut.wr_addr)), int(ctx.get(dut.wr_data))))
            if ready and ctx.get(dut.l_stream.valid):
                got_l.append(int(ctx.get(dut.l_stream.payload)))
            await ctx.tick()
            cyc += 1
            assert cyc < 5000

        if cfg["logits"]:  # every reserved entry comes back: pushed ones when read, unused rows at once
            ctx.set(dut.take, 0)
            assert ctx.get(dut.credits) == dut.logit_depth

    run_sim(dut, tb)
    assert got_w == want_w
    assert got_l == want_l
    assert (len(got_l) == 26) if cfg["logits"] else (len(got_w) > 0)
