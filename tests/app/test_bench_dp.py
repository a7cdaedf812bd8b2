"""The pipelined accelerator's bench: the bitstream it picks, the link bytes, a small run."""

import json

import numpy as np

from binaccel.bench import dp as dpbench
from binaccel.bench import linktime
from binaccel.hw.dp.synth import ULX3S_BUILD
from binaccel.sw import dpprog, zoo
from binaccel.sw.hwif.dp import DpParams


def _report(path, *, mhz, met, params=None, fits=True):
    path.mkdir(parents=True)
    rep = {"fits": fits, "clk_hz": mhz * 1e6, "params": params or dict(ULX3S_BUILD), "plan_sha256": f"p{mhz}",
           "accel_clock": {"fmax_mhz": mhz * 1.02 if met else mhz * 0.8, "met": met},
           "utilization": {"LUT": {"used": 40000, "total": 83640}, "FF": {"used": 1}, "BRAM": {"used": 2},
                           "DSP": {"used": 3}}}
    (path / "report.json").write_text(json.dumps(rep))


def test_bitstream_is_the_fastest_met_build_of_the_same_parameters(tmp_path):
    _report(tmp_path / "dp-4c-125", mhz=125, met=False)
    _report(tmp_path / "dp-4c-90", mhz=90, met=True)
    _report(tmp_path / "dp-4c-80", mhz=80, met=True)
    _report(tmp_path / "dp-4c-100", mhz=100, met=True, params={**ULX3S_BUILD, "cols": 2})
    (tmp_path / "dp-4c-70").mkdir()
    (tmp_path / "dp-4c-70" / "report.json").write_text("{not json")
    got = dpbench.bitstream("ulx3s", root=tmp_path)
    assert got["clock_mhz"] == 90 and got["plan_sha256"] == "p90" and got["luts"] == 40000
    assert dpbench.bitstream("ulx3s", root=tmp_path / "dp-4c-125") is None


def test_link_bytes_are_the_run_command_and_reply():
    model = zoo.untrained_model("siman")
    prog = dpprog.compile_model(model, DpParams(**ULX3S_BUILD))
    link = linktime.dp_link(prog, model, 3_000_000)
    img = np.zeros(model.input_shape, dtype=np.uint8)
    assert link["payload_bytes_in"] == 4 * len(prog.run_words(img, stats=False))
    assert link["payload_bytes_out"] == 4 * prog.reply_words(stats=False)
    assert link["host_to_device_bytes"] > link["payload_bytes_in"]
    assert 0 < link["link_s_per_image"] < 0.01


def test_close_timing_rebuilds_below_the_fmax(tmp_path, monkeypatch):
    from binaccel.hw.dp import synth as dpsynth

    def report(mhz, fmax, out):
        out.mkdir(parents=True, exist_ok=True)
        return {"fits": True, "status": "ok", "clk_hz": mhz * 1e6, "out_dir": str(out), "plan_sha256": f"p{mhz:g}",
                "accel_clock": {"fmax_mhz": fmax, "met": fmax >= mhz}, "files": {"bitstream": str(out / "top.bit")}}

    asked = []

    def fake_synth(board, freq_mhz, params=None, *, seed=1, timeout=None):
        asked.append(freq_mhz)
        # the first rebuild misses again (its own fmax lower), the second meets
        fmax = 70.0 if len(asked) == 1 else freq_mhz + 1
        return report(freq_mhz, fmax, tmp_path / f"dp-{freq_mhz:g}")

    monkeypatch.setattr(dpsynth, "synth_dp", fake_synth)
    first = report(125, 80.0, tmp_path / "dp-125")
    out = dpsynth.close_timing_dp("ulx3s", first, log=lambda *a: None)
    assert len(asked) == 2 and asked[0] <= 0.97 * 80 and asked[1] <= 0.97 * 70
    assert out["met"] and out["clock_mhz"] == round(asked[1], 4) and out["bitstream"].endswith("top.bit")
    assert [a["met"] for a in out["attempts"]] == [False, False, True]
    saved = json.loads((tmp_path / "dp-125" / "closure.json").read_text())
    assert saved["clock_mhz"] == out["clock_mhz"]
