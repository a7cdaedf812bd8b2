"""binaccel.demo.bench: the demo's synthesis + bench section, without synthesis (budget 0 or a reused
report) and with the engine cycle model, on tiny random models and a small boards.json (a few seconds)."""

import json
import os

import numpy as np
import pytest

from binaccel import bench
from binaccel.demo import bench as demo_bench
from binaccel.hw import sweep
from binaccel.sw import modelfile
from binaccel.sw.randmodel import random_model


def _summary(board, kind, rows, cols, word, fmax, fits=True):
    report = {"board": board, "status": "ok" if fits else "no_fit", "fits": fits, "seed": 1,
              "params": {"rows": rows, "cols": cols, "word": word}, "design_kind": kind,
              "utilization": {"LUT": {"used": 1000 * rows, "total": 5280 if board == "icebreaker" else 83640,
                                      "resource": "LC"},
                              "FF": {"used": 500, "total": 5280, "resource": "FF"},
                              "BRAM": {"used": 4, "total": 30, "resource": "RAM"},
                              "DSP": {"used": 2, "total": 8, "resource": "DSP"}},
              "accel_clock": {"fmax_mhz": fmax} if fits else None, "out_dir": f"/x/{board}{kind}{rows}"}
    return sweep.board_summary(report)


@pytest.fixture
def setup(tmp_path):
    rng = np.random.default_rng(5)
    files = {}
    for name, mode, planes in (("siman", "plain", 1), ("mcn", "mcn", 2)):
        m = random_model(rng, mode=mode, planes=planes)
        m.name = name
        files[name] = tmp_path / "models" / f"{name}.bnm"
        files[name].parent.mkdir(exist_ok=True)
        modelfile.save(m, files[name])
    boards = tmp_path / "boards.json"
    ulx = _summary("ulx3s", "accel+uart", 2, 2, 32, 60.0)
    ice_acc = _summary("icebreaker", "accel+uart", 1, 1, 16, None, fits=False)
    ice_eng = _summary("icebreaker", "engine", 2, 4, 16, 20.0)
    sweep.write_boards_json({"ulx3s": {"board": "ulx3s", "design": "accel+uart", "best": ulx, "points": [ulx],
                                       "target_mhz": 150.0},
                             "icebreaker": {"board": "icebreaker", "design": "accel+uart", "best": None,
                                            "points": [ice_acc], "target_mhz": 48.0}},
                            boards, engine_results={"icebreaker": {"board": "icebreaker", "design": "engine",
                                                                   "best": ice_eng, "points": [ice_eng],
                                                                   "target_mhz": 48.0}})
    return tmp_path, files, boards


def _run(tmp_path, files, boards, **kw):
    summary, msgs = {}, []
    lines = demo_bench.bench_section(summary, model_files={**files, "gone": tmp_path / "nope.bnm"},
                                     out_dir=str(tmp_path / "bench"), log=msgs.append, boards_path=boards,
                                     synth_root=tmp_path / "synth", cycles="model", reps=1, warmup=0,
                                     plots=False, **kw)
    return summary, lines, msgs


def test_bench_section_without_synthesis(setup):
    tmp_path, files, boards = setup
    summary, lines, _ = _run(tmp_path, files, boards, synth_budget_s=0)
    syn = summary["synthesis"]
    assert syn["action"] == "skipped" and "budget" in syn["why"] and syn["design"] == "accel+uart"
    eng = summary["synthesis_engine_link"]
    assert eng["action"] == "skipped" and eng["design"] == "engine+uart" and eng["params"]["word"] == 16
    text = "\n".join(lines)
    assert "not synthesized" in text and "budget 0 s" in text
    b = summary["bench"]
    assert set(b["boards"]) == {"ulx3s", "icebreaker"}
    assert b["boards"]["ulx3s"]["design"] == "accel+uart" and b["boards"]["icebreaker"]["design"] == "engine"
    assert "no accelerator build fits" in b["boards"]["icebreaker"]["fallback"]
    assert b["missing_model_files"] == ["gone"]
    doc = json.loads((tmp_path / "bench" / "bench.json").read_text())
    for net in ("siman", "mcn"):  # random models are not 1x28x28: benched under their own names
        for board, arr in (("ulx3s", {"rows": 2, "cols": 2, "word": 32}), ("icebreaker", {"rows": 2, "cols": 4, "word": 16})):
            e = b["networks"][net][board]
            for key in ("fpga_s_per_image", "cpu_torch_s_per_image", "cpu_packed_s_per_image", "utilisation",
                        "cpu_onnxruntime_t1_s_per_image", "cpu_onnxruntime_tall_s_per_image", "cpu_best_s_per_image"):
                assert isinstance(e[key], float) and e[key] > 0
                assert doc["networks"][net][board][key] == e[key]
            # the ratios are at the clock of a timing-met bitstream, and there is none without one
            if e["fpga_bitstream_s_per_image"] is None:
                assert e["ratio_fpga_over_cpu_best"] is None
            else:
                assert e["ratio_fpga_over_cpu_best"] == pytest.approx(e["fpga_bitstream_s_per_image"]
                                                                      / e["cpu_best_s_per_image"])
            assert e["cpu_best_s_per_image"] == min(e[k] for k in (
                "cpu_torch_s_per_image", "cpu_onnxruntime_t1_s_per_image", "cpu_onnxruntime_tall_s_per_image",
                "cpu_packed_s_per_image"))
            # the engine-only design has no host link; the accelerator's link is timed at 3 Mbaud
            if board == "icebreaker":
                assert e["link_s_per_image"] is None and e["end_to_end_s_per_image"] is None
            else:
                assert e["link_s_per_image"] > 0
            # the cycles are the engine model's for the board's array, the time is cycles / fmax
            m = modelfile.load(files[net])
            cyc = bench.network_cycles(m, arr, n=1)["cycles_per_image"]
            assert e["cycles_per_image"] == cyc
            fmax = 60.0 if board == "ulx3s" else 20.0
            assert e["fpga_s_per_image"] == pytest.approx(cyc / (fmax * 1e6))
            assert set(e["batch"]) == {"1", "64"}
            assert f"| {net} | {board} | 1 | {cyc:.0f} | model |" in text
    assert "| icebreaker | engine | 2x4x16 |" in text and "| ulx3s | accel+uart | 2x2x32 |" in text
    assert "not found (not benched): gone" in text
    json.dumps(summary)  # the demo writes it as JSON


def test_bench_section_reuses_report_with_same_inputs(setup, monkeypatch):
    tmp_path, files, boards = setup
    params = sweep.full_params({**sweep.base_params("icebreaker"), "rows": 1, "cols": 1, "word": 16})
    out = sweep._point_dir("icebreaker", params, 1, root=tmp_path / "synth" / "icebreaker" / "accel", design="accel")
    out.mkdir(parents=True)
    report = {"board": "icebreaker", "status": "no_fit", "fits": False, "seed": 1, "params": params,
              "factory": "accel_design", "design_kind": "accel+uart", "inputs_sha256": sweep.inputs_hash(),
              "error": "nextpnr exit 125: ERROR: Unable to place cell",
              "utilization": {"LUT": {"used": 11625, "total": 5280, "resource": "ICESTORM_LC"}},
              "accel_clock": None, "runtime_s": {"total": 61.0}, "tools": {"yosys": "Yosys 0.70"},
              "out_dir": str(out)}
    (out / "report.json").write_text(json.dumps(report))
    # and the engine board design's report of its point, which fits
    eparams = sweep.full_params({**sweep.base_params("icebreaker", "engine-link"), "rows": 1, "cols": 1, "word": 16},
                                "engine-link")
    eout = sweep._point_dir("icebreaker", eparams, 1, root=tmp_path / "synth" / "icebreaker" / "engine-link",
                            design="engine-link")
    eout.mkdir(parents=True)
    (eout / "report.json").write_text(json.dumps({
        **report, "status": "ok", "fits": True, "params": eparams, "factory": "linked_engine_design",
        "design_kind": "engine+uart", "error": None, "accel_clock": {"fmax_mhz": 24.1, "target_mhz": 48.0},
        "utilization": {"LUT": {"used": 2684, "total": 5280, "resource": "ICESTORM_LC"}}, "out_dir": str(eout)}))
    monkeypatch.setattr(sweep, "synth_point", lambda *a, **k: pytest.fail("must reuse the report"))
    summary, lines, _ = _run(tmp_path, files, boards, synth_budget_s=300)
    eng = summary["synthesis_engine_link"]
    assert eng["action"] == "reused" and eng["fits"] is True and eng["luts"] == 2684 and eng["design"] == "engine+uart"
    assert "LinkedEngine" in "\n".join(lines) and "2684/5280" in "\n".join(lines)
    syn = summary["synthesis"]
    assert syn["action"] == "reused" and "inputs unchanged" in syn["why"]
    assert syn["luts"] == 11625 and syn["fits"] is False
    text = "\n".join(lines)
    assert "last report reused" in text and "does not fit" in text and "11625/5280" in text
    # other inputs (sources or tools changed) and a budget below the last run time: reused, marked stale
    report["inputs_sha256"] = "0" * 64
    (out / "report.json").write_text(json.dumps(report))
    summary, lines, _ = _run(tmp_path, files, boards, synth_budget_s=30)
    assert summary["synthesis"]["action"] == "reused (stale)"
    assert "may be stale" in "\n".join(lines) and "different inputs" in summary["synthesis"]["why"]
    # other sources but the build plan this checkout makes for the point: reused as current
    report["plan_sha256"] = sweep.plan_hash("icebreaker", params)
    (out / "report.json").write_text(json.dumps(report))
    summary, lines, _ = _run(tmp_path, files, boards, synth_budget_s=300)
    assert summary["synthesis"]["action"] == "reused" and "build plan unchanged" in summary["synthesis"]["why"]


def test_report_path_shown_relative_to_the_working_directory(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path / "..")
    root = tmp_path.parent.parent
    assert bench.shown_path(tmp_path / "build" / "synth" / "report.json") == os.path.join(
        tmp_path.name, "build", "synth", "report.json")
    assert bench.shown_path(root / "report.json") == str(root / "report.json")
