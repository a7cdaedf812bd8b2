"""Bench on the whole-network accelerator simulation (binaccel.sim.top): the cycles the bench reports are
the simulated accelerator's hardware counters. Slow: builds the accelerator with Verilator (~1-2 min)."""

import json

import numpy as np
import pytest

from binaccel import bench
from binaccel.hw import sweep
from binaccel.sim import top
from binaccel.sw import intref
from binaccel.sw.hwif import AccelParams
from binaccel.sw.randmodel import random_model

pytestmark = pytest.mark.slow


def test_bench_cycles_equal_accelerator_simulation(tmp_path):
    rng = np.random.default_rng(5)
    model = random_model(rng, mode="plain")
    params = AccelParams()  # the default build (shared with the accelerator's own tests)
    report = {"board": "ulx3s", "status": "ok", "fits": True, "seed": 1, "params": params.engine.as_dict(),
              "utilization": {"LUT": {"used": 1, "total": 2, "resource": "x"}},
              "accel_clock": {"fmax_mhz": 100.0}}
    boards = {"ulx3s": sweep.board_summary(report)}
    bench.run_bench(out_dir=tmp_path, boards=boards, networks=["tiny"], extra_models={"tiny": model},
                    batches=(1, 4), warmup=0, reps=1, train=False, cycles="accel", accel_params=params,
                    accel_images=4, plots=False, log=lambda *a: None)
    doc = json.loads((tmp_path / "bench.json").read_text())
    e = doc["networks"]["tiny"]["ulx3s"]
    assert e["cycles_source"] == bench.ACCEL_SOURCE
    images = np.random.default_rng(0).integers(0, 256, size=(4, *model.input_shape)).astype(np.uint8)
    r = top.run_model(model, images, transport="fast", params=params, check=True)
    assert np.array_equal(r.logits, intref.predict(model, images))
    assert e["batch"]["1"]["cycles_per_image"] == r.cycles_per_image
    assert [l["cycles"] for l in e["batch"]["1"]["layers"]] == r.cycles_per_layer
    assert e["fpga_s_per_image"] == pytest.approx(r.cycles_per_image / 100e6, rel=1e-12)
