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


@pytest.mark.parametrize("kind", ["sign", "logits"])
def test_lane_output_comes_latency_cycles_after_its_result(kind):
    """One result on ``i`` in cycle 3: ``o.valid`` is set in cycle ``3 + Lane.latency`` and in no
    other cycle (the sequencer's drain and the cycle model count on it)."""
    dut = Lane(cols=1, **KW)
    seen = []

    async def tb(ctx):
        cfg = {"kind": KINDS[kind], "alpha": 1, "sum_cols": 0, "pool": 0, "shift": 0, "out_bits": 1}
        ctx.set(dut.cfg, {**cfg, **dpif.lane_masks(shift=0, out_bits=1, z_width=dut.z_width)})
        for b in range(2):
            ctx.set(dut.p_we, 1), ctx.set(dut.p_bank, b), ctx.set(dut.p_data, {"noff": 0, "mul": 1, "add": 0})
            await ctx.tick()
        ctx.set(dut.p_we, 0)
        for cyc in range(3 + Lane.latency + 6):
            ctx.set(dut.i, {"valid": int(cyc == 3), "acc": 5, "n": 3, "tag": 0})
            if ctx.get(dut.o.valid):
                seen.append(cyc)
            await ctx.tick()

    run_sim(dut, tb)
    assert Lane.latency == 10
    assert seen == [3 + Lane.latency]


def test_registered_mul_is_one_registered_dsp_on_ecp5():
    """On ECP5 the lane's multiplier is a MULT18X18D with its input and output registers (the
    simulators run the same two registers around a ``*``)."""
    from amaranth.back import rtlil

    from binaccel.hw.dp.dsp import RegisteredMul

    text = rtlil.convert(RegisteredMul(a_width=18, b_width=16), platform=type("P", (), {"family": "ecp5"})())
    assert "MULT18X18D" in text
    for param in ("REG_INPUTA_CLK", "REG_INPUTB_CLK", "REG_OUTPUT_CLK"):
        assert f'parameter \\{param} "CLK0"' in text
    assert 'parameter \\REG_PIPELINE_CLK "NONE"' in text
    assert "MULT18X18D" not in rtlil.convert(RegisteredMul(a_width=18, b_width=16))


def test_registered_mul_products_and_latency():
    from binaccel.hw.dp.dsp import RegisteredMul

    dut = RegisteredMul(a_width=18, b_width=16)
    rng = np.random.default_rng(4)
    pairs = [(-(1 << 17), -(1 << 15)), ((1 << 17) - 1, (1 << 15) - 1), (-(1 << 17), (1 << 15) - 1), (0, -1)]
    pairs += [(int(a), int(b)) for a, b in zip(rng.integers(-(1 << 17), 1 << 17, 40),
                                               rng.integers(-(1 << 15), 1 << 15, 40))]
    got = []

    async def tb(ctx):
        for k in range(len(pairs) + RegisteredMul.latency):
            if k < len(pairs):
                ctx.set(dut.a, pairs[k][0]), ctx.set(dut.b, pairs[k][1])
            await ctx.tick()
            if k + 1 >= RegisteredMul.latency:
                got.append(ctx.get(dut.p))

    run_sim(dut, tb)
    assert got[:len(pairs)] == [a * b for a, b in pairs]
    with pytest.raises(ValueError, match="a_width"):
        RegisteredMul(a_width=19, b_width=16)
