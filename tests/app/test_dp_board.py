"""The pipelined accelerator as the ULX3S's board design: `binaccel synth --design dp` (fake
reports, no synthesis), its dp_boards section, the bench's board choice and its dp path, the record."""

import argparse
import json
import types

import numpy as np
import pytest

from binaccel import bench, records
from binaccel.bench import linktime
from binaccel.cli import main
from binaccel.commands import synth as synth_cmd
from binaccel.hw import sweep
from binaccel.hw.dp import synth as dpsynth
from binaccel.hw.sweep import dp as sweepdp
from binaccel.sim import dp as simdp
from binaccel.sw import dpprog, intref, modelfile, paths, zoo
from binaccel.sw.data import load_mnist
from binaccel.sw.hwif.dp import DpParams


@pytest.fixture
def build(tmp_path, monkeypatch):
    """``tmp_path / "build"`` as the build folder."""
    monkeypatch.setattr(paths, "_chosen", None)
    monkeypatch.setenv(paths.ENV_VAR, str(tmp_path / "build"))
    return tmp_path / "build"


def _report(out, *, mhz, fmax, plan, seed=1, status="ok", cols=4):
    """A dp synthesis report (the fields synth_dp's reports have) written to ``out``/report.json."""
    out.mkdir(parents=True, exist_ok=True)
    rep = {"design": "LinkedDpAccelerator", "board": "ulx3s", "device": "LFE5U-85F", "package": "BG381",
           "description": "pipelined accelerator (test report)", "status": status, "fits": status == "ok",
           "error": None, "seed": seed, "params": sweepdp.dp_params(cols), "clk_hz": mhz * 1e6, "plan_sha256": plan,
           "accel_clock": {"net": "bridge.clk", "fmax_mhz": fmax, "target_mhz": mhz, "met": fmax >= mhz},
           "utilization": {"LUT": {"used": 41000 + int(fmax), "total": 83640, "resource": "TRELLIS_COMB"},
                           "FF": {"used": 39000, "total": 83640, "resource": "TRELLIS_FF"},
                           "BRAM": {"used": 56, "total": 208, "resource": "DP16KD"},
                           "DSP": {"used": 35, "total": 156, "resource": "MULT18X18D"}},
           "tools": {"yosys": "Yosys 0.70"}, "files": {"bitstream": str(out / "top.bit")}, "out_dir": str(out)}
    (out / "report.json").write_text(json.dumps(rep))
    return rep


class _FakeFlow:
    """synth_dp and plan_sha256_dp replaced: a build at ``f`` MHz reaches ``fmax(f)``; the plan of this
    checkout is ``plan(f)``; the builds made are listed in ``built``."""

    def __init__(self, monkeypatch, fmax, plan=lambda f: f"plan{f:g}"):
        self.built, self.fmax, self.plan = [], fmax, plan
        monkeypatch.setattr(dpsynth, "synth_dp", self.synth_dp)
        monkeypatch.setattr(dpsynth, "plan_sha256_dp", lambda board, f, params=None: self.plan(f))

    def synth_dp(self, board, freq_mhz, params=None, *, seed=1, timeout=None):
        self.built.append(freq_mhz)
        out = sweepdp.dp_point_dir(board, freq_mhz, params or dpsynth.ULX3S_BUILD)
        return _report(out, mhz=freq_mhz, fmax=self.fmax(freq_mhz), plan=self.plan(freq_mhz), seed=seed)


@pytest.fixture(autouse=True)
def _no_plan_of_the_old_designs(monkeypatch):
    """The old designs' records below are not this checkout's (no elaboration of their builds)."""
    monkeypatch.setattr(sweep, "plan_hash", lambda *a, **k: "not-the-record's")


def _record_with_other_boards(tmp_path):
    """A record of the old designs: ULX3S accelerator 5x6x32 (timing closed at 25 MHz), iCEBreaker
    engine + UART 2x2x32 (the accelerator does not fit it)."""
    def summary(board, design, rows, cols, word, fmax, fits=True):
        params = {**sweep.base_params(board, sweep.DESIGN_OF_KIND[design]), "rows": rows, "cols": cols, "word": word}
        return sweep.board_summary({
            "board": board, "status": "ok" if fits else "no_fit", "fits": fits, "seed": 1, "params": params,
            "design_kind": design, "target_mhz": sweep.TARGET_MHZ[board], "clk_hz": sweep.TARGET_MHZ[board] * 1e6,
            "plan_sha256": "ab" * 32, "utilization": {"LUT": {"used": 1000, "total": 83640, "resource": "LUT"}},
            "accel_clock": {"fmax_mhz": fmax, "met": False} if fits else None,
            "out_dir": f"build/synth/{board}/{design}/r{rows}c{cols}w{word}_s1"})

    acc = {**summary("ulx3s", "accel+uart", 5, 6, 32, 34.0),
           "closure": {"met": True, "clock_mhz": 25.0, "fmax_mhz": 35.1, "margin": 0.97, "attempts": []}}
    nofit = summary("icebreaker", "accel+uart", 1, 1, 16, None, fits=False)
    link = summary("icebreaker", "engine+uart", 2, 2, 32, 23.4)
    path = sweep.write_boards_json(
        {"ulx3s": {"board": "ulx3s", "design": "accel+uart", "best": acc, "points": [acc], "target_mhz": 150.0},
         "icebreaker": {"board": "icebreaker", "design": "accel+uart", "best": None, "points": [nofit],
                        "target_mhz": 48.0}},
        tmp_path / "search" / "boards.json",
        link_results={"icebreaker": {"board": "icebreaker", "design": "engine+uart", "best": link, "points": [link],
                                     "target_mhz": 48.0}})
    return records.record_from_boards(sweep.load_boards_json(path))


def _json_of(out: str) -> dict:
    """The JSON summary `binaccel synth` prints (after the report and before the boards file's update)."""
    return json.JSONDecoder().raw_decode(out[out.rindex('\n{\n "board"') + 1:])[0]


# --- binaccel synth --design dp -----------------------------------------------------------------

def test_synth_dp_closes_timing_and_records_its_builds(tmp_path, build, monkeypatch, capsys, use_record):
    """A build at 90 MHz misses (fmax 63); --close-timing rebuilds below 0.97 x 63 MHz, which meets.
    The summary says so; --update-boards puts both builds into dp_boards (the met one best, with its
    closure), starting the boards file from the record so that its other boards stay."""
    use_record(_record_with_other_boards(tmp_path))
    flow = _FakeFlow(monkeypatch, fmax=lambda f: 63.0 if f > 80 else f + 4.0)
    assert main(["synth", "--board", "ulx3s", "--design", "dp", "--freq", "90", "--close-timing",
                 "--update-boards"]) == 0
    out = capsys.readouterr().out
    clock = sweep.closure_clock("ulx3s", 63.0)
    assert flow.built == [90.0, clock] and clock <= 0.97 * 63
    s = _json_of(out)
    assert (s["board"], s["design"], s["datapath"]) == ("ulx3s", "accel+uart", "pipelined")
    assert s["params"] == DpParams(**dpsynth.ULX3S_BUILD).as_dict() and s["array"] == {"rows": 16, "cols": 4,
                                                                                        "word": 32}
    assert s["macs_per_cycle"] == 2048 and s["fits"] and s["fmax_mhz"] == 63.0 and s["freq_mhz"] == 90.0
    assert s["timing_met"] is False and s["clock_mhz"] == clock and s["closure"]["met"]
    assert s["target_mhz"] == 150.0 and s["met"] is False and s["plan_sha256"] == "plan90" and s["reused"] is False
    assert (s["luts"], s["luts_total"], s["ffs"], s["brams"], s["dsps"]) == (41063, 83640, 39000, 56, 35)
    assert s["report"] == str(sweepdp.dp_point_dir("ulx3s", 90, s["params"]) / "report.json")
    assert "did not exist: started it from the curated record" in out
    doc = sweep.load_boards_json(bench.boards_json_path())
    res = doc["dp_boards"]["ulx3s"]
    assert [p["freq_mhz"] for p in res["points"]] == [90.0, clock]
    assert res["best"]["freq_mhz"] == clock and res["best"]["timing_met"] and res["best"]["clock_mhz"] == clock
    assert res["best"]["closure"]["clock_mhz"] == clock and "closure" not in res["points"][0]
    assert res["points"][0]["clock_mhz"] is None         # the 90 MHz build has no timing-met bitstream
    # the record's other sections are in the boards file as they were
    assert doc["boards"]["ulx3s"]["best"]["array"] == {"rows": 5, "cols": 6, "word": 32}
    assert doc["engine_link_boards"]["icebreaker"]["best"]["array"] == {"rows": 2, "cols": 2, "word": 32}
    assert "Pipelined accelerator" in bench.boards_json_path().with_suffix(".md").read_text()

    # again: both reports and the closure are this checkout's, so nothing is built; the points are replaced
    capsys.readouterr()
    assert main(["synth", "--board", "ulx3s", "--design", "dp", "--freq", "90", "--close-timing",
                 "--update-boards"]) == 0
    out = capsys.readouterr().out
    assert flow.built == [90.0, clock] and "reusing" in out and "reusing the timing closure" in out
    assert _json_of(out)["reused"] is True
    res = sweep.load_boards_json(bench.boards_json_path())["dp_boards"]["ulx3s"]
    assert len(res["points"]) == 2 and res["best"]["freq_mhz"] == clock
    # an update of another design keeps the dp_boards section
    acc = sweep.load_boards_json(bench.boards_json_path())["boards"]["ulx3s"]
    sweep.update_boards_json("ulx3s", acc, bench.boards_json_path())
    assert sweep.load_boards_json(bench.boards_json_path())["dp_boards"]["ulx3s"]["best"]["freq_mhz"] == clock


def test_synth_dp_reuses_a_report_only_of_this_checkouts_plan(tmp_path, build, monkeypatch, capsys):
    """An existing report of the build folder is recorded without a build when its plan_sha256 is the
    one this checkout makes (and said so); another plan is rebuilt, or refused with --no-build;
    --force rebuilds a current one."""
    params = sweepdp.dp_params()
    _report(sweepdp.dp_point_dir("ulx3s", 66.6667, params), mhz=66.6667, fmax=68.2, plan="mine")
    flow = _FakeFlow(monkeypatch, fmax=lambda f: 70.0, plan=lambda f: "mine")
    argv = ["synth", "--board", "ulx3s", "--design", "dp", "--freq", "66.6667"]
    assert main([*argv, "--no-build", "--update-boards"]) == 0
    out = capsys.readouterr().out
    assert flow.built == [] and "reusing" in out and "is this checkout's" in out
    s = _json_of(out)
    assert s["fmax_mhz"] == 68.2 and s["timing_met"] and s["clock_mhz"] == 66.6667 and s["reused"]
    # (the boards file starts from the committed record, whose best build may be another one)
    points = sweep.load_boards_json(bench.boards_json_path())["dp_boards"]["ulx3s"]["points"]
    mine = [p for p in points if p.get("plan_sha256") == "mine"]
    assert len(mine) == 1 and mine[0]["fmax_mhz"] == 68.2 and mine[0]["freq_mhz"] == 66.6667

    flow.plan = lambda f: "other"                      # this checkout's gateware changed
    capsys.readouterr()
    assert main([*argv, "--no-build"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--no-build" in err and "plan_sha256 mine" in err and "report.json" in err
    assert flow.built == []
    assert main(argv) == 0 and flow.built == [66.6667]
    assert _json_of(capsys.readouterr().out)["plan_sha256"] == "other"
    flow.plan = lambda f: "other"
    assert main([*argv, "--force"]) == 0 and flow.built == [66.6667, 66.6667]
    # a missing report with --no-build
    assert main(["synth", "--board", "ulx3s", "--design", "dp", "--freq", "75", "--no-build"]) == 2
    assert "no report in" in capsys.readouterr().err


@pytest.mark.parametrize("argv, needle", [
    (["--board", "ulx3s", "--design", "dp", "--rows", "8"], "--rows is not a parameter of --design dp"),
    (["--board", "ulx3s", "--design", "dp", "--word", "64"], "--word is not a parameter of --design dp"),
    (["--board", "ulx3s", "--design", "dp", "--fm-depth", "64"], "--fm-depth is not a parameter of --design dp"),
    (["--design", "dp", "--search"], "--search is not supported with --design dp"),
    (["--design", "dp"], "--board is required with --design dp"),
    (["--board", "icebreaker", "--design", "dp"], "not built for icebreaker"),
    (["--board", "ulx3s", "--design", "dp", "--closure-margin", "0.9"], "--closure-margin is not supported"),
    (["--board", "ulx3s", "--design", "dp", "--no-build", "--force"], "contradict"),
    (["--board", "ulx3s", "--design", "dp", "--cols", "9"], "cols must be in 1..8, got 9"),
    (["--board", "ulx3s", "--rows", "4", "--no-build"], "--no-build is for --design dp"),
])
def test_synth_dp_bad_options_are_one_line_errors(build, monkeypatch, capsys, argv, needle):
    monkeypatch.setattr(dpsynth, "synth_dp", lambda *a, **k: pytest.fail("must not synthesize"))
    monkeypatch.setattr(sweep, "synth_point", lambda *a, **k: pytest.fail("must not synthesize"))
    assert main(["synth", *argv]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("binaccel synth: error: ") and needle in err
    assert not build.exists()


def test_synth_dp_refuses_an_unreadable_boards_file(build, monkeypatch, capsys):
    _FakeFlow(monkeypatch, fmax=lambda f: f + 1)
    bench.boards_json_path().parent.mkdir(parents=True)
    bench.boards_json_path().write_text("{not json")
    assert main(["synth", "--board", "ulx3s", "--design", "dp", "--freq", "60", "--update-boards"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "boards.json: not valid JSON" in err
    assert bench.boards_json_path().read_text() == "{not json"


# --- the bench's board design -------------------------------------------------------------------

def _dp_result(tmp_path, *builds):
    """A dp_boards result of ULX3S builds ``(clock, fmax)``, from reports in ``tmp_path``."""
    points = [sweepdp.dp_summary(_report(tmp_path / f"dp-4c-{mhz:g}", mhz=mhz, fmax=fmax, plan=f"plan{mhz:g}"))
              for mhz, fmax in builds]
    return sweepdp.dp_result("ulx3s", points)


def test_load_boards_prefers_a_timing_met_dp_build(tmp_path, use_record, monkeypatch):
    """A dp_boards entry with a timing-met build is the ULX3S's design (the met build at the largest
    clock), gateware_current from its plan; without a met build, or with --array naming another
    array, the accelerator of the boards section; the iCEBreaker keeps its engine+uart fallback."""
    record = _record_with_other_boards(tmp_path)
    doc = records.boards_doc(record)
    monkeypatch.setattr(dpsynth, "plan_sha256_dp", lambda board, f, params=None: f"plan{f:g}")
    path = sweep.write_boards_json(doc["boards"], tmp_path / "b.json", engine_results=doc["engine_boards"],
                                   link_results=doc["engine_link_boards"],
                                   dp_results={"ulx3s": _dp_result(tmp_path, (90, 63.0), (57.1429, 66.8),
                                                                   (50, 52.0))})
    boards = bench.load_boards(path)
    u = boards["ulx3s"]
    assert (u["design"], u["datapath"], u["bitstream_mhz"], u["fmax_mhz"]) == ("accel+uart", "pipelined", 57.1429,
                                                                                66.8)
    assert u["array"] == {"rows": 16, "cols": 4, "word": 32} and u["gateware_current"] is True
    assert bench.stale_note("ulx3s", u) is None
    assert boards["icebreaker"]["design"] == "engine+uart" and "no accelerator build fits" in boards["icebreaker"][
        "fallback"]
    assert bench.load_boards(path, arrays={"ulx3s": (16, 4, 32)})["ulx3s"]["datapath"] == "pipelined"
    old = bench.load_boards(path, arrays={"ulx3s": (5, 6, 32)})["ulx3s"]
    assert old["array"] == {"rows": 5, "cols": 6, "word": 32} and "datapath" not in old
    # other gateware: flagged, with the command that measures it again
    monkeypatch.setattr(dpsynth, "plan_sha256_dp", lambda board, f, params=None: "changed")
    u = bench.load_boards(path)["ulx3s"]
    assert u["gateware_current"] is False
    note = bench.stale_note("ulx3s", u)
    assert "plan_sha256 plan57.1429" in note and "this checkout changed" in note
    assert "`binaccel synth --board ulx3s --design dp --freq 57.1429 --update-boards`" in note
    # no build meets its clock: the accelerator of the boards section
    path = sweep.write_boards_json(doc["boards"], tmp_path / "c.json", dp_results={"ulx3s": _dp_result(
        tmp_path / "x", (90, 63.0))})
    u = bench.load_boards(path)["ulx3s"]
    assert "datapath" not in u and u["array"] == {"rows": 5, "cols": 6, "word": 32}


def _fake_run_model(monkeypatch, *, wrong=0):
    """sim.dp.run_model replaced: logits from intref (``wrong`` images counted as differing), cycles
    from the compiled program's ideal cycles plus 40 per layer; the images it got in ``seen``."""
    seen = []

    def run_model(model, images, *, params=None, chunk=100):
        seen.append(np.array(images))
        prog = dpprog.compile_model(model, params)
        logits = intref.predict(model, images)
        layers = [{"layer": c.layer.name, "unit": c.unit, "cycles": int(c.ideal_cycles) + 40,
                   "ideal_cycles": float(c.ideal_cycles), "utilisation": c.ideal_cycles / (int(c.ideal_cycles) + 40)}
                  for c in prog.layers]
        cycles = sum(x["cycles"] for x in layers) + 225
        record = {"exact": {"checked": len(images), "matched": len(images) - wrong}, "cycles_per_image": float(cycles),
                  "layers": layers, "images": len(images), "params": DpParams(**params.as_dict()).as_dict(),
                  "utilisation": sum(x["ideal_cycles"] for x in layers) / cycles, "utilisation_binary_conv": 0.8,
                  "source": "fake"}
        return types.SimpleNamespace(logits=logits, matched=len(images) - wrong, cycles_per_image=float(cycles),
                                     layer_cycles=[x["cycles"] for x in layers], record=record)

    monkeypatch.setattr(simdp, "run_model", run_model)
    return seen


def _mnist_files(tmp_path):
    files = {}
    for name in ("sign", "mcn"):
        files[name] = tmp_path / "models" / f"{name}.bnm"
        files[name].parent.mkdir(parents=True, exist_ok=True)
        modelfile.save(zoo.untrained_model(name), files[name])
    return files


def test_bench_runs_mnist_networks_on_the_dp_board(tmp_path, use_record, monkeypatch):
    """On the dp board: the MNIST test digits simulated (--accel-images of them) and checked; cycles
    per image at batch 1 and 64 the simulation's; FPGA time at the bitstream's clock and the fmax; link
    bytes of the RUN command; MCN listed with the compiler's reason; the iCEBreaker on its own path."""
    record = _record_with_other_boards(tmp_path)
    doc = records.boards_doc(record)
    monkeypatch.setattr(dpsynth, "plan_sha256_dp", lambda board, f, params=None: f"plan{f:g}")
    path = sweep.write_boards_json(doc["boards"], tmp_path / "b.json", engine_results=doc["engine_boards"],
                                   link_results=doc["engine_link_boards"],
                                   dp_results={"ulx3s": _dp_result(tmp_path, (57.1429, 66.8))})
    boards = bench.load_boards(path)
    seen = _fake_run_model(monkeypatch)
    files = _mnist_files(tmp_path)
    res = bench.run_bench(out_dir=tmp_path / "out", boards=boards, model_files=files, batches=(1, 8), warmup=0,
                          networks=["mnist_sign", "mnist_mcn"],
                          reps=1, train=False, cycles="model", accel_images=3, plots=True, log=lambda *a: None)
    doc = json.loads((tmp_path / "out" / "bench.json").read_text())
    assert doc == json.loads(json.dumps(res))
    b = doc["boards"]["ulx3s"]
    assert (b["design"], b["datapath"], b["bitstream_mhz"], b["gateware_current"]) == ("accel+uart", "pipelined",
                                                                                        57.1429, True)
    for key in ("fmax_mhz", "luts", "luts_total", "ffs", "brams", "dsps", "array", "plan_sha256"):
        assert b[key] == boards["ulx3s"][key]
    assert len(seen) == 1       # sign only: mcn does not run
    assert np.array_equal(seen[0].reshape(3, 28, 28), load_mnist().x_test[:3].reshape(3, 28, 28))
    model = zoo.untrained_model("sign")
    e = doc["networks"]["mnist_sign"]["ulx3s"]
    prog = dpprog.compile_model(model, DpParams(**dpsynth.ULX3S_BUILD))
    cycles = sum(int(c.ideal_cycles) + 40 for c in prog.layers) + 225
    assert e["cycles_source"] == bench.DP_SOURCE and e["exact"] == {"checked": 3, "matched": 3}
    link = linktime.dp_link(prog, model, 3_000_000)
    assert e["link"] == link
    for n in ("1", "8"):
        r = e["batch"][n]
        assert r["cycles_per_image"] == cycles and r["exact"] == {"checked": 3, "matched": 3}
        assert r["fpga_bitstream_s_per_image"] == pytest.approx(cycles / 57.1429e6, rel=1e-12)
        assert r["fpga_s_per_image"] == pytest.approx(cycles / 66.8e6, rel=1e-12)
        assert r["link_s_per_image"] == link["link_s_per_image"]
        assert r["end_to_end_s_per_image"] == pytest.approx(link["link_s_per_image"] + cycles / 57.1429e6)
        c = doc["networks"]["mnist_sign"]["cpu"][n]
        assert r["cpu_best_s_per_image"] == c["best"]["s_per_image"] and r["cpu_best_runtime"] == c["best"]["runtime"]
        assert r["cpu_torch_s_per_image"] == c["torch_float"]["s_per_image"]
        assert r["cpu_packed_s_per_image"] == c["packed"]["s_per_image"]
        assert r["ratio_fpga_over_cpu_best"] == pytest.approx(r["fpga_bitstream_s_per_image"] / r["cpu_best_s_per_image"])
        assert r["utilisation"] == pytest.approx(sum(c.ideal_cycles for c in prog.layers) / cycles)
    with pytest.raises(dpprog.DpFitError) as why:
        dpprog.compile_model(zoo.untrained_model("mcn"), DpParams(**dpsynth.ULX3S_BUILD))
    m = doc["networks"]["mnist_mcn"]["ulx3s"]
    assert m["does_not_run"] == str(why.value) and m["batch"] == {} and "cycles_per_image" not in m
    assert doc["networks"]["mnist_mcn"]["icebreaker"]["batch"]["1"]["cycles_per_image"] > 0
    assert doc["networks"]["mnist_sign"]["icebreaker"]["cycles_source"] == bench.MODEL_SOURCE
    assert any("batch 64 is 64 RUNs and its cycles per image equal batch 1's" in note for note in doc["notes"])
    md = (tmp_path / "out" / "bench.md").read_text()
    assert f"| mnist_mcn | ulx3s | - | does not run: {why.value} |" in md
    assert f"| mnist_sign | ulx3s | 8 | {cycles} | dp sim |" in md
    assert "| ulx3s | accel+uart (pipelined) | 16x4x32 | 66.8 (150.0, no) | 57.1429 MHz (the build itself) |" in md
    # bench.json's board entry (no "board" field) names the command that measures it again
    note = bench.stale_note("ulx3s", {**b, "gateware_current": False})
    assert "`binaccel synth --board ulx3s --design dp --freq 57.1429 --update-boards`" in note
    assert md.count("| mnist_mcn | 1 |") == 1                       # its CPU figures, once


def test_bench_fails_loudly_on_a_dp_logit_mismatch(tmp_path, monkeypatch):
    monkeypatch.setattr(dpsynth, "plan_sha256_dp", lambda board, f, params=None: f"plan{f:g}")
    board = {**_dp_result(tmp_path, (57.1429, 66.8))["best"], "datapath": "pipelined", "source": "x"}
    _fake_run_model(monkeypatch, wrong=1)
    with pytest.raises(AssertionError, match="pipelined accelerator logits of 1 of 2 images differ from intref"):
        bench.run_bench(out_dir=tmp_path / "out", boards={"ulx3s": board}, model_files=_mnist_files(tmp_path),
                        networks=["mnist_sign"], batches=(1, 4), warmup=0, reps=1, train=False, accel_images=2,
                        plots=False, log=lambda *a: None)
    assert not (tmp_path / "out" / "bench.json").exists()


@pytest.mark.sim   # the ULX3S build's Verilator fast path (shared with tests/sim/test_dp_fastpath.py)
def test_bench_dp_cycles_are_the_simulation(tmp_path, monkeypatch):
    """The real simulation: the bench's cycles and exactness are binaccel.sim.dp's for the same images."""
    monkeypatch.setattr(dpsynth, "plan_sha256_dp", lambda board, f, params=None: f"plan{f:g}")
    board = {**_dp_result(tmp_path, (57.1429, 66.8))["best"], "datapath": "pipelined", "source": "x"}
    files = _mnist_files(tmp_path)
    res = bench.run_bench(out_dir=tmp_path / "out", boards={"ulx3s": board}, model_files=files,
                          networks=["mnist_sign"], batches=(1, 4), warmup=0, reps=1, train=False, accel_images=2,
                          plots=False, log=lambda *a: None)
    run = simdp.run_model(zoo.untrained_model("sign"), load_mnist().x_test[:2],
                          params=DpParams(**dpsynth.ULX3S_BUILD))
    e = res["networks"]["mnist_sign"]["ulx3s"]
    assert e["exact"] == {"checked": 2, "matched": 2} == run.record["exact"]
    assert e["batch"]["1"]["cycles_per_image"] == e["batch"]["4"]["cycles_per_image"] == run.cycles_per_image


# --- the record -----------------------------------------------------------------------------------

def _command_params(command):
    p = argparse.ArgumentParser()
    synth_cmd.register(p.add_subparsers(dest="cmd", required=True))
    words = command.split()
    assert words[:2] == ["binaccel", "synth"]
    args = p.parse_args(words[1:])
    assert args.design == "dp" and synth_cmd._dp_option_error(args) is None
    return sweepdp.dp_params(args.cols), args


def test_record_keeps_the_best_dp_build_and_the_bench_reads_it(tmp_path, build, use_record, monkeypatch, capsys):
    """`binaccel records --update` keeps the dp_boards best build (timing-met first, then the largest
    clock) with a command that rebuilds it, and its table; without a boards file the bench's board
    figures are the record's, as from the boards file."""
    monkeypatch.setattr(dpsynth, "plan_sha256_dp", lambda board, f, params=None: f"plan{f:g}")
    doc = records.boards_doc(_record_with_other_boards(tmp_path))
    # 62.5 MHz is the largest timing-met clock; 90 and 75 MHz miss
    path = sweep.write_boards_json(doc["boards"], tmp_path / "search.json", engine_results=doc["engine_boards"],
                                   link_results=doc["engine_link_boards"],
                                   dp_results={"ulx3s": _dp_result(tmp_path, (90, 63.0), (57.1429, 66.8),
                                                                   (62.5, 63.1), (75, 64.0))})
    out = tmp_path / "rec" / "measured.json"
    md = tmp_path / "results.md"
    assert main(["records", "--update", "--from", str(path), "--out", str(out), "--markdown", str(md)]) == 0
    record = records.load_record(out)
    e = record["dp_boards"]["ulx3s"]
    assert e["freq_mhz"] == 62.5 and e["bitstream_clock_mhz"] == 62.5 and e["fmax_mhz"] == 63.1
    assert e["plan_sha256"] == "plan62.5" and e["datapath"] == "pipelined" and e["luts"] == 41063
    assert e["command"] == "binaccel synth --board ulx3s --design dp --freq 62.5"
    params, args = _command_params(e["command"])
    assert params == e["params"] and args.freq == e["freq_mhz"] and args.seed == e["seed"]
    assert record["boards"]["ulx3s"]["accel+uart"]["array"]["cols"] == 6       # the other designs kept
    text = md.read_text()
    assert "| ulx3s | accel+uart, pipelined | 16x4x32 | yes | 41063/83640 | 39000 | 56 | 35/156 | 63.1 | 62.5 | 62.5 |" \
        in text and "`plan62.5`" in text
    # the record as the bench's board figures: the same as from the boards file
    use_record(record)
    from_file, from_record = bench.load_boards(path)["ulx3s"], bench.load_boards()["ulx3s"]
    assert from_record["source"] == records.RECORD_LABEL and from_record["datapath"] == "pipelined"
    drop = {"source", "description", "error"}
    assert {k: v for k, v in from_record.items() if k not in drop} == \
        {k: v for k, v in from_file.items() if k not in drop}
    assert bench.load_boards()["icebreaker"]["design"] == "engine+uart"
    # a dp entry without a field is refused naming it
    bad = json.loads(out.read_text())
    del bad["dp_boards"]["ulx3s"]["freq_mhz"]
    out.write_text(json.dumps(bad))
    with pytest.raises(ValueError, match=r"measured\.json: field 'dp_boards\.ulx3s\.freq_mhz' missing"):
        records.load_record(out)
    capsys.readouterr()
    assert main(["records", "--record", str(out)]) == 2
    assert "dp_boards.ulx3s.freq_mhz" in capsys.readouterr().err


def test_record_without_a_fitting_dp_build_lists_the_builds_tried(tmp_path):
    res = _dp_result(tmp_path, (90, 63.0))
    res["points"][0].update(fits=False, status="no_fit")
    record = records.record_from_boards({"boards": {}, "dp_boards": {"ulx3s": res}})
    e = record["dp_boards"]["ulx3s"]
    assert e["fits"] is False and e["tried"][0]["freq_mhz"] == 90.0 and e["tried"][0]["status"] == "no_fit"
    assert "none fits (tried 90 MHz (no_fit))" in records.render_markdown(record)
    assert records.boards_doc(record)["dp_boards"]["ulx3s"]["best"] is None


def test_record_says_which_parameters_its_command_does_not_rebuild(tmp_path):
    """A build made before the board build changed: its command builds this checkout's board build,
    and the record and its page name the parameters that differ."""
    now = sweepdp.dp_params()
    other = 1 if now["flu_positions"] != 1 else 2
    rep = _report(tmp_path / "dp-4c-60", mhz=60, fmax=61.0, plan="p")
    rep["params"] = {**now, "flu_positions": other}
    record = records.record_from_boards({"boards": {}, "dp_boards": {
        "ulx3s": sweepdp.dp_result("ulx3s", [sweepdp.dp_summary(rep)])}})
    e = record["dp_boards"]["ulx3s"]
    assert e["params_beyond_command"] == {"flu_positions": other} and e["params"]["flu_positions"] == other
    assert (f"the command builds this checkout's board build, which differs from the recorded one in "
            f"flu_positions (recorded {other}) (flu_positions {now['flu_positions']} now)") in records.render_markdown(record)
    assert "params_beyond_command" not in records.boards_doc(record)["dp_boards"]["ulx3s"]["best"]
    assert sweepdp.params_beyond_command(sweepdp.dp_summary(_report(tmp_path / "b", mhz=60, fmax=61.0, plan="p"))) == {}
