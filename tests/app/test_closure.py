"""Timing closure (`binaccel synth --close-timing`): the clock a build is rebuilt at, the retries, and
how the closure is recorded and shown. No tools run: synth_point is replaced by a fake."""

import argparse
import json

import pytest

from binaccel.cli import main
from binaccel.commands import synth as synth_cmd
from binaccel.hw import sweep
from binaccel.hw.boards import BOARDS, ecp5_pll_params, ice40_pll_params
from binaccel.sw import paths


@pytest.mark.parametrize("board", ["icebreaker", "ulx3s"])
@pytest.mark.parametrize("fmax", [17.0, 19.524, 34.955, 47.3, 75.0, 149.9])
def test_closure_clock_is_the_fastest_clock_below_the_margin(board, fmax):
    """The clock is one the board makes (the PLL within 1 % of the request, as BoardTop checks, or
    the oscillator), at or below 0.97 x fmax, and no PLL setting lies between it and that limit."""
    clock = sweep.closure_clock(board, fmax)
    limit = sweep.CLOSURE_MARGIN * fmax
    assert clock <= limit
    b = BOARDS[board]
    if clock == b.osc_hz / 1e6:
        return
    pll = ice40_pll_params if b.family == "ice40" else ecp5_pll_params
    assert abs(pll(b.osc_hz, clock * 1e6)["fout_hz"] / 1e6 - clock) < 1e-3
    # nothing faster that is still at or below the limit: any request in (clock, limit] gives an
    # output above the limit or off its request by more than 1 %
    for k in range(1, 40):
        want = clock + (limit - clock) * k / 40
        try:
            fout = pll(b.osc_hz, want * 1e6)["fout_hz"] / 1e6
        except ValueError:
            continue
        assert fout > limit or fout <= clock + 1e-3 or abs(fout - want) > 0.01 * want



def _build_dir(tmp_path, monkeypatch):
    """``tmp_path`` as the build folder: the synth command's boards file is its bench/boards.json."""
    monkeypatch.setattr(paths, "_chosen", None)
    monkeypatch.setenv(paths.ENV_VAR, str(tmp_path))

def test_closure_clock_exact_values_and_errors():
    assert sweep.closure_clock("ulx3s", 34.955) == 33.3333      # 25 MHz x 4 / 3
    assert sweep.closure_clock("icebreaker", 19.524) == 18.75
    assert sweep.closure_clock("icebreaker", 14.0) == 12.0      # below the PLL's 16 MHz: the oscillator
    with pytest.raises(ValueError, match=r"icebreaker: no clock at or below 4\.850 MHz"):
        sweep.closure_clock("icebreaker", 5.0)
    for bad in (0, -3.0, None, True):
        with pytest.raises(ValueError, match="fmax_mhz must be a positive number"):
            sweep.closure_clock("ulx3s", bad)
    with pytest.raises(ValueError, match="margin"):
        sweep.closure_clock("ulx3s", 40.0, margin=1.5)


def _report(clock, fmax, *, fits=True, out_dir="/r/target", board="ulx3s", sources=None, plan="p" * 64):
    return {"board": board, "inputs_sha256": sources or sweep.inputs_hash(), "plan_sha256": plan, "design": "LinkedAccelerator", "device": "LFE5U-85F", "package": "CABGA381",
            "status": "ok" if fits else "no_fit", "fits": fits, "seed": 1,
            "params": {**sweep.full_params({**sweep.base_params(board), "rows": 5, "cols": 6, "word": 32})},
            "utilization": {"LUT": {"used": 64780, "total": 83640, "resource": "TRELLIS_COMB"}},
            "accel_clock": None if fmax is None else {"net": "bridge.clk", "fmax_mhz": fmax,
                                                      "target_mhz": clock, "met": fmax >= clock},
            "clk_hz": clock * 1e6, "out_dir": out_dir,
            "files": {"bitstream": f"{out_dir}/top.bit"}}


def _fake_point(fmax_at, calls, **report_kw):
    """synth_point whose build at clock f has fmax fmax_at(f)."""
    def fake(board, params, *, design="accel", seed=1, freq_mhz=None, timeout=None, reuse=False, log=print, **kw):
        calls.append(freq_mhz)
        f = sweep.TARGET_MHZ[board] if freq_mhz is None else freq_mhz
        rep = _report(f, fmax_at(f), out_dir=f"/r/f{freq_mhz}", board=board, **report_kw)
        return rep, sweep.board_summary(rep)
    return fake


def test_close_timing_rebuilds_lower_until_met(monkeypatch):
    """Target build 34.955 MHz of 150 -> rebuilt at 33.33 MHz; that placement reaches only 33.0 (a
    miss), so once more at the clock below 0.97 x 33.0; that one meets it."""
    calls = []
    monkeypatch.setattr(sweep, "synth_point", _fake_point(lambda f: 33.0 if f > 33 else 32.9, calls))
    target = _report(150.0, 34.955)
    c = sweep.close_timing("ulx3s", target["params"], target, log=lambda *a: None)
    assert calls == [33.3333, sweep.closure_clock("ulx3s", 33.0)] and calls[1] < 32.01
    assert c["met"] is True and c["clock_mhz"] == calls[1] and c["fmax_mhz"] == 32.9
    assert c["bitstream"] == f"/r/f{calls[1]}/top.bit" and c["report"] == f"/r/f{calls[1]}/report.json"
    assert [(a["clock_mhz"], a["met"]) for a in c["attempts"]] == [(150.0, False), (33.3333, False), (calls[1], True)]


def test_close_timing_gives_up_after_tries_and_needs_no_rebuild_when_met(monkeypatch):
    calls = []
    monkeypatch.setattr(sweep, "synth_point", _fake_point(lambda f: f * 0.9, calls))   # never meets
    target = _report(150.0, 34.955)
    c = sweep.close_timing("ulx3s", target["params"], target, tries=2, log=lambda *a: None)
    assert len(calls) == 2 and c["met"] is False and c["bitstream"] is None and len(c["attempts"]) == 3
    calls.clear()
    ok = _report(30.0, 31.2)
    c = sweep.close_timing("ulx3s", ok["params"], ok, log=lambda *a: None)
    assert calls == [] and c["met"] and c["clock_mhz"] == 30.0 and c["bitstream"] == "/r/target/top.bit"


def test_close_timing_steps_below_a_rebuild_that_does_not_finish_routing(monkeypatch):
    """The rebuild at 33.33 MHz runs out of time in the router (status timeout, with only a
    placement estimate of 35 MHz): it counts as a miss at 33.33 MHz, the next build is below
    0.97 x 33.33 MHz (not below the estimate), and that one meets its clock."""
    calls = []

    def fake(board, params, *, design="accel", seed=1, freq_mhz=None, timeout=None, reuse=False, log=print, **kw):
        calls.append(freq_mhz)
        if len(calls) == 1:
            rep = {**_report(freq_mhz, 35.0, out_dir="/r/slow"), "status": "timeout", "fits": False}
            rep["files"] = {}
        else:
            rep = _report(freq_mhz, 32.5, out_dir="/r/ok")
        return rep, sweep.board_summary(rep)

    monkeypatch.setattr(sweep, "synth_point", fake)
    target = _report(150.0, 34.955)
    c = sweep.close_timing("ulx3s", target["params"], target, log=lambda *a: None)
    assert calls == [33.3333, sweep.closure_clock("ulx3s", 33.3333)] and calls[1] < 32.34
    assert [a["status"] for a in c["attempts"]] == ["ok", "timeout", "ok"]
    assert c["met"] is True and c["bitstream"] == "/r/ok/top.bit"
    # a lower margin asks for a lower clock straight away
    calls.clear()
    sweep.close_timing("ulx3s", target["params"], target, margin=0.9, log=lambda *a: None)
    assert calls[0] == sweep.closure_clock("ulx3s", 34.955, margin=0.9) and calls[0] <= 0.9 * 34.955


def test_synth_cli_rejects_a_bad_closure_margin(capsys):
    with pytest.raises(SystemExit) as e:  # a usage error of the parser, before anything runs
        main(["synth", "--board", "ulx3s", "--close-timing", "--closure-margin", "1.2"])
    assert e.value.code == 2
    assert "argument --closure-margin: expected a number in (0, 1], got '1.2'" in capsys.readouterr().err


def test_close_timing_refuses_a_point_without_timing():
    nofit = _report(150.0, None, fits=False)
    with pytest.raises(ValueError, match=r"/r/target: field 'fits'"):
        sweep.close_timing("ulx3s", nofit["params"], nofit)
    nofmax = _report(150.0, None)
    with pytest.raises(ValueError, match=r"field 'accel_clock\.fmax_mhz' missing"):
        sweep.close_timing("ulx3s", nofmax["params"], nofmax)


def test_point_dir_separates_other_clocks():
    full = sweep.full_params({**sweep.base_params("ulx3s"), "rows": 5, "cols": 6, "word": 32})
    target = sweep._point_dir("ulx3s", full, 1, design="accel", freq_mhz=150.0)
    assert target == sweep._point_dir("ulx3s", full, 1, design="accel")
    assert target.name.endswith("_s1")
    assert sweep._point_dir("ulx3s", full, 1, design="accel", freq_mhz=33.3333).name == target.name + "_f33.33"


def test_synth_cli_close_timing_records_and_keeps_the_closure(tmp_path, monkeypatch):
    """`binaccel synth ... --close-timing --update-boards`: the closure goes with the point into
    boards.json and the tables; a later --update-boards of the same point without --close-timing
    (same gateware) keeps it; a build for another clock is another point."""
    _build_dir(tmp_path, monkeypatch)
    calls = []
    monkeypatch.setattr(sweep, "synth_point", _fake_point(lambda f: 34.955 if f == 150.0 else 33.9, calls))
    p = argparse.ArgumentParser()
    synth_cmd.register(p.add_subparsers(dest="cmd"))
    argv = ["synth", "--board", "ulx3s", "--rows", "5", "--cols", "6", "--word", "32", "--update-boards"]
    args = p.parse_args(argv + ["--close-timing"])
    assert args.func(args) == 0
    assert calls == [None, 33.3333]
    point = sweep.load_boards_json()["boards"]["ulx3s"]["points"][0]
    assert point["clock_mhz"] == 150.0 and point["timing_met"] is False
    assert point["closure"]["clock_mhz"] == 33.3333 and point["closure"]["met"]
    assert point["closure"]["fmax_mhz"] == 33.9 and point["closure"]["bitstream"] == "/r/f33.3333/top.bit"
    assert "| 33.3333 MHz (fmax 33.9) |" in (tmp_path / "bench" / "boards.md").read_text()
    assert sweep.closure_cell(point) == "33.3333 MHz (fmax 33.9)"

    args = p.parse_args(argv)                     # the same point again, no closure asked for
    assert args.func(args) == 0
    doc = sweep.load_boards_json()
    assert len(doc["boards"]["ulx3s"]["points"]) == 1
    assert doc["boards"]["ulx3s"]["points"][0]["closure"]["clock_mhz"] == 33.3333
    # ... made from other sources but the same build plan: the closure is still this netlist's
    monkeypatch.setattr(sweep, "synth_point", _fake_point(lambda f: 34.955, calls, sources="s" * 64))
    assert args.func(args) == 0
    assert sweep.load_boards_json()["boards"]["ulx3s"]["points"][0]["closure"]["clock_mhz"] == 33.3333
    # ... from another plan: the old closure is of another netlist and is dropped
    monkeypatch.setattr(sweep, "synth_point", _fake_point(lambda f: 34.955, calls, sources="t" * 64, plan="q" * 64))
    assert args.func(args) == 0
    assert "closure" not in sweep.load_boards_json()["boards"]["ulx3s"]["points"][0]
    monkeypatch.setattr(sweep, "synth_point", _fake_point(lambda f: 34.955 if f == 150.0 else 33.9, calls))

    args = p.parse_args(argv + ["--freq", "33.3333"])   # a build for another clock: its own point
    assert args.func(args) == 0
    pts = sweep.load_boards_json()["boards"]["ulx3s"]["points"]
    assert sorted(pt["clock_mhz"] for pt in pts) == [33.3333, 150.0]
    json.dumps(pts)


def test_closure_cell_texts():
    assert sweep.closure_cell({"timing_met": True, "clock_mhz": 48.0}) == "48 MHz (the build itself)"
    assert sweep.closure_cell({"timing_met": True}) == "the build itself"   # a record without its clock
    assert sweep.closure_cell({}).startswith("not built")
    missed = {"closure": {"met": False, "attempts": [{"clock_mhz": 150.0}, {"clock_mhz": 33.3333}]}}
    assert sweep.closure_cell(missed) == "none met (150, 33.3333 MHz tried)"


def test_search_close_timing_closes_the_largest_array_and_keeps_earlier_closures(tmp_path, monkeypatch):
    """`binaccel synth --search --close-timing`: the best point of the search gets its closure; a
    later search without --close-timing (same gateware) keeps it in boards.json."""
    _build_dir(tmp_path, monkeypatch)
    target = _report(150.0, 34.955, out_dir=str(tmp_path / "pt"))
    (tmp_path / "pt").mkdir()
    (tmp_path / "pt" / "report.json").write_text(json.dumps(target))
    best = sweep.board_summary(target)

    def fake_search(board, **kw):
        b = dict(best)
        return {"board": board, "design": "accel+uart", "best": b, "points": [b], "target_mhz": 150.0, "met": False}

    calls = []
    monkeypatch.setattr(sweep, "largest_array", fake_search)
    monkeypatch.setattr(sweep, "synth_point", _fake_point(lambda f: 33.9, calls))
    p = argparse.ArgumentParser()
    synth_cmd.register(p.add_subparsers(dest="cmd"))
    args = p.parse_args(["synth", "--search", "--board", "ulx3s", "--close-timing"])
    assert args.func(args) == 0
    assert calls == [33.3333]
    res = sweep.load_boards_json()["boards"]["ulx3s"]
    assert res["best"]["closure"]["clock_mhz"] == 33.3333 and res["points"][0]["closure"]["met"]

    args = p.parse_args(["synth", "--search", "--board", "ulx3s"])
    assert args.func(args) == 0 and calls == [33.3333]     # nothing rebuilt
    res = sweep.load_boards_json()["boards"]["ulx3s"]
    assert res["best"]["closure"]["clock_mhz"] == 33.3333
