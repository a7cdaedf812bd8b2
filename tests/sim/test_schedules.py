"""Random valid/ready schedules at scale (binaccel.sim.schedules) and the fast path's batch runs and
mid-run resets (binaccel.sim.fastpath).

Default tier: the harness's reset and batch modes on a FIFO; 25 seeded schedules of each of two
layer kinds on the pipelined accelerator (one build), which must all match the integer reference;
negative controls (a corrupted expected logit, a wrong model, the command line's exit status) that
must report mismatches; runs with a forced reset in the middle of every run; the command line's
errors and replay. `sim`: the MCN kind on the whole-network accelerator (a second build). `slow`:
the whole record, 10,000 runs of every kind (what `make schedules` runs).
"""

from __future__ import annotations

import dataclasses
import json
import random

import pytest

from binaccel.sim import schedules as sch
from binaccel.sim.fastpath import FastSim, FastSimJob
from tests.sim.infra_designs import InfraFIFO

KINDS2 = ("plain", "stride2")


# --------------------------------------------------------------------------------------------------
# The harness: batch runs and resets


@pytest.fixture(scope="module")
def fifo():
    return FastSim(InfraFIFO, name="infra_fifo", params={"depth": 4})


def test_reset_mid_run_reruns_cleanly(fifo):
    words = [random.Random(1).randrange(1 << 13) for _ in range(400)]
    r = fifo.run_detailed(words, len(words), idle=0.3, backpressure=0.4, seed=3, reset_at=250, stamps=True)
    assert r.reset and r.reset_cycle == 250
    assert 0 < r.out_before_reset < len(words) and r.in_before_reset[0] >= r.out_before_reset
    assert r.out == words and r.in_consumed == [len(words)]
    assert r.stamps[0] >= 250 and r.cycles == r.stamps[-1]   # the rerun's words only, cycles count on
    # a reset cycle after the end: no reset
    late = fifo.run_detailed(words, len(words), reset_at=10_000)
    assert not late.reset and late.out == words and late.out_before_reset == 0


def test_batch_equals_single_runs(fifo):
    rng = random.Random(2)
    words = [rng.randrange(1 << 13) for _ in range(200)]
    other = [rng.randrange(1 << 13) for _ in range(50)]
    jobs = [FastSimJob(words if s % 3 else other, 200 if s % 3 else 50, idle=0.1 * (s % 8),
                       backpressure=0.05 * s, seed=s, reset_at=(40 * s or None)) for s in range(12)]
    batch = fifo.run_batch(jobs, stamps=True)
    for job, b in zip(jobs, batch):
        one = fifo.run_detailed(job.words, job.n_out, idle=job.idle, backpressure=job.backpressure, seed=job.seed,
                                reset_at=job.reset_at, stamps=True)
        assert b.out == job.words == one.out
        assert (b.cycles, b.stamps, b.reset, b.out_before_reset) == (one.cycles, one.stamps, one.reset,
                                                                      one.out_before_reset)
    assert sum(b.reset for b in batch) >= 3


def test_batch_timeout_is_reported_not_raised(fifo):
    words = list(range(100))
    res = fifo.run_batch([FastSimJob(words, 101, max_cycles=500), FastSimJob(words, 100)])
    assert res[0].timeout and res[0].out == words
    assert not res[1].timeout and res[1].out == words


def test_reset_at_checked(fifo):
    with pytest.raises(ValueError, match="reset_at"):
        fifo.run_detailed([1, 2], 2, reset_at=0)


# --------------------------------------------------------------------------------------------------
# Schedules


def test_schedules_are_seeded_and_varied():
    a = [sch.schedule("plain", s, 1000) for s in range(200)]
    assert a == [sch.schedule("plain", s, 1000) for s in range(200)]
    assert a != [sch.schedule("fc", s, 1000) for s in range(200)]
    assert {s.variant for s in a} == set(range(sch.VARIANTS))
    assert sum(s.idle == 0 for s in a) > 10 and max(s.idle for s in a) > 0.8
    assert sum(s.backpressure == 0 for s in a) > 10 and max(s.backpressure for s in a) > 0.8
    assert 30 < sum(s.reset_at is not None for s in a) < 80


@pytest.mark.parametrize("kind", sorted(sch.KINDS))
def test_every_kind_compiles_for_its_design(kind):
    v = sch.variant(kind, 0)
    assert v.n_out > 0 and len(v.words) > 0 and len(v.refs) == len(v.model.layers)
    assert sch.KINDS[kind].design == ("accel" if kind == "mcn" else "dp")
    assert {layer.mode for layer in v.model.layers} >= ({"mcn"} if kind == "mcn" else
                                                         {"mcn1"} if kind == "mcn1" else {"plain"})


@pytest.mark.parametrize("kind", KINDS2)
def test_random_schedules_match(kind):
    res = sch.run_kind(kind, range(25), progress=False)
    assert res.runs == 25 and res.mismatches == [] and res.timeouts == 0
    assert res.resets > 0 and res.sim_cycles > 0
    rec = res.record()
    assert rec["runs"] == 25 and rec["mismatches"] == 0 and rec["design"] == "dp" and rec["seeds"] == [0, 24]


def _corrupt_logit(v):
    v.refs[-1] = v.refs[-1].copy()
    v.refs[-1][1].flat[3] += 1          # image 1, logit 3


def test_negative_control_corrupted_logit():
    res = sch.run_kind("plain", range(10), tamper=_corrupt_logit, progress=False)
    assert len(res.mismatches) == res.runs == 10
    d = res.mismatches[0].difference
    assert (d.what, d.image, d.index, d.count) == ("logits", 1, (3,), 1) and d.got == d.want - 1


def test_negative_control_wrong_model():
    """The references of a model with one weight of the hidden conv flipped: the maps differ."""
    def wrong(v):
        m = dataclasses.replace(v.model, layers=list(v.model.layers))
        l1 = dataclasses.replace(m.layers[1], weights=m.layers[1].weights.copy())
        l1.weights.flat[0] *= -1
        m.layers[1] = l1
        v.refs = sch.intref.run_model(m, v.images)

    res = sch.run_kind("stride2", range(16), tamper=wrong, progress=False)
    assert len(res.mismatches) > 0
    assert all(o.difference.what in ("map", "logits") for o in res.mismatches)


def test_forced_reset_in_every_run():
    """A reset in every run, during the set-up (at a third of the clean run's cycles) or after the
    first reply words (at 1.15 times them; idle and backpressure of 0.3 stretch the run to about 1.4
    times): every run is reset and its clean rerun matches."""
    def mid(kind, seed, clean):
        s = sch.schedule(kind, seed, clean)
        return dataclasses.replace(s, idle=0.3, backpressure=0.3, reset_at=clean // 3 if seed % 2 else int(1.15 * clean))

    res = sch.run_kind("plain", range(16), schedules=mid, progress=False)
    assert res.mismatches == [] and res.resets == 16 and 0 < res.resets_mid_output <= 8


def test_command_line(tmp_path, capsys):
    out = tmp_path / "s.json"
    assert sch.main(["--runs", "8", "--kinds", "fc,plain", "--seed", "5", "--out", str(out), "--no-progress"]) == 0
    rec = json.loads(out.read_text())
    assert list(rec["kinds"]) == ["fc", "plain"]
    for k in rec["kinds"].values():
        assert (k["runs"], k["mismatches"], k["seeds"], k["design"]) == (8, 0, [5, 12], "dp")
        assert k["run_time_s"] > 0 and "params" in k and k["network"]["layers"]
    assert rec["total_run_time_s"] > 0 and rec["runs_per_kind"] == 8


def test_command_line_mismatch_exits_1(tmp_path, capsys, monkeypatch):
    real = sch.intref.run_model

    def off_by_one(model, images):
        refs = real(model, images)
        refs[-1] = refs[-1] + 1
        return refs

    monkeypatch.setattr(sch.intref, "run_model", off_by_one)
    out = tmp_path / "s.json"
    assert sch.main(["--runs", "3", "--kinds", "fc", "--seed", "7", "--out", str(out), "--no-progress"]) == 1
    text = capsys.readouterr().out
    assert text.count("MISMATCH kind fc seed ") == 3 and "--replay fc:7" in text and "first at index (0,)" in text
    assert "idle" in text and "backpressure" in text and "sim seed" in text
    assert json.loads(out.read_text())["kinds"]["fc"]["mismatches"] == 3


def test_replay(capsys):
    assert sch.main(["--replay", "fc:3"]) == 0
    text = capsys.readouterr().out
    assert "kind fc seed 3" in text and sch.schedule("fc", 3, 0).describe().split(", sim seed")[0] in text


@pytest.mark.parametrize("argv,msg", [(["--kinds", "nope"], "unknown kind(s) nope"), (["--runs", "0"], "--runs"),
                                      (["--replay", "plain"], "KIND:SEED"), (["--seed", "-1"], "--seed")])
def test_command_line_errors(argv, msg, capsys):
    assert sch.main(argv) == 2
    err = capsys.readouterr().err
    assert msg in err and err.count("\n") == 1


@pytest.mark.sim
def test_mcn_on_the_whole_network_accelerator():
    res = sch.run_kind("mcn", range(25), progress=False)
    assert res.runs == 25 and res.mismatches == [] and res.resets > 0
    assert res.record()["design"] == "accel"


@pytest.mark.slow
def test_ten_thousand_per_kind(tmp_path):
    out = tmp_path / "schedules.json"
    assert sch.main(["--runs", "10000", "--out", str(out), "--no-progress"]) == 0
    rec = json.loads(out.read_text())
    assert set(rec["kinds"]) == set(sch.KINDS)
    for k in rec["kinds"].values():
        assert k["runs"] == 10_000 and k["mismatches"] == 0 and k["timeouts"] == 0 and k["resets"] > 1000
