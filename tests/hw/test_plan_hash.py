"""A synthesis record stays current while this checkout builds the same plan (``plan_sha256``: the
RTLIL, scripts, constraints and tool versions, without source locations), even when the gateware
sources changed elsewhere; a record of another netlist, clock or design is stale."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from amaranth.hdl import Fragment

from binaccel.hw import sweep
from binaccel.hw.synth import plan_digest
from tests import PROJECT_ROOT

ROOT = PROJECT_ROOT
PARAMS = {**sweep.base_params("icebreaker"), "rows": 1, "cols": 1, "word": 8}


def test_plan_digest_leaves_out_source_locations_only():
    il = 'module \\top\n  attribute \\src "hw/fetch.py:12"\n  wire width 3 \\a\nend\n'
    v = '(* src = "hw/fetch.py:12" *)\nwire [2:0] a;\n'
    base = plan_digest({"top.il": il, "top.v": v, "top.ys": "read_rtlil top.il\n"})
    moved = {"top.il": il.replace("fetch.py:12", "top.py:7"), "top.v": v.replace("fetch.py:12", "top.py:7"),
             "top.ys": b"read_rtlil top.il\n"}
    assert plan_digest(moved) == base
    assert plan_digest({"top.il": il.replace("width 3", "width 4"), "top.v": v, "top.ys": "read_rtlil top.il\n"}) != base
    assert plan_digest({"top.il": il, "top.v": v.replace("[2:0]", "[3:0]"), "top.ys": "read_rtlil top.il\n"}) != base
    assert plan_digest({"top.il": il, "top.v": v, "top.ys": "read_rtlil top.il\nsynth\n"}) != base
    assert plan_digest({"top.il": il, "top.v": v, "other.ys": "read_rtlil top.il\n"}) != base
    # a source location inside a string of the design is logic, not a location
    assert plan_digest({"top.il": il + 'parameter \\INIT "attribute \\\\src"\n', "top.v": v,
                        "top.ys": "read_rtlil top.il\n"}) != base


def _plan_hash_from_copy(tmp_path, edit):
    """plan_hash of the 1x1x8 iCEBreaker point computed by a copy of the package with ``edit(hw_dir)``
    applied, in a fresh interpreter."""
    pkg = tmp_path / "pkg" / "binaccel"
    shutil.copytree(ROOT / "binaccel", pkg, ignore=shutil.ignore_patterns("__pycache__"))
    edit(pkg / "hw")
    code = ("import json, sys; from binaccel.hw import sweep; assert sweep.__file__.startswith(sys.argv[1]); "
            f"print(sweep.plan_hash('icebreaker', {PARAMS!r}))")
    out = subprocess.run([sys.executable, "-c", code, str(pkg)], cwd=tmp_path, capture_output=True, text=True,
                         env={**os.environ, "PYTHONPATH": str(tmp_path / "pkg")}, check=True)
    return out.stdout.strip()


def test_plan_hash_follows_the_netlist_not_the_source_text(tmp_path):
    here = sweep.plan_hash("icebreaker", PARAMS)

    def shift_lines(hw):     # a comment at the top of two gateware files: every line moves
        for name in ("fetch.py", "top.py"):
            f = hw / name
            f.write_text("# a comment that moves every line\n\n" + f.read_text())

    def other_timeout(hw):   # the link's idle limit: a constant of the netlist
        f = hw / "link" / "frames.py"
        text = f.read_text()
        assert "DEFAULT_TIMEOUT = 1 << 22" in text
        f.write_text(text.replace("DEFAULT_TIMEOUT = 1 << 22", "DEFAULT_TIMEOUT = 1 << 21"))

    assert _plan_hash_from_copy(tmp_path / "a", shift_lines) == here
    assert _plan_hash_from_copy(tmp_path / "b", other_timeout) != here


def _record(**kw):
    """A report of the 1x1x8 iCEBreaker accelerator point made from other gateware sources."""
    return {"board": "icebreaker", "status": "no_fit", "fits": False, "seed": 1,
            "params": sweep.full_params(PARAMS), "factory": "accel_design", "design_kind": "accel+uart",
            "target_mhz": 48.0, "inputs_sha256": "0" * 64, "accel_clock": None,
            "utilization": {"LUT": {"used": 6956, "total": 5280}}, **kw}


def test_gateware_current_by_sources_or_by_plan(monkeypatch):
    plan = sweep.plan_hash("icebreaker", PARAMS)
    report = _record(plan_sha256=plan)
    summary = sweep.board_summary(report)
    assert summary["plan_sha256"] == plan and summary["freq_mhz"] == 48.0
    assert sweep.gateware_current(report) and sweep.gateware_current(summary)
    for stale in (_record(plan_sha256="1" * 64), _record(), _record(plan_sha256=plan, factory="stand_in"),
                  _record(plan_sha256=plan, board="ulx3s", target_mhz=50.0), _record(plan_sha256=plan, target_mhz=24.0),
                  {**summary, "freq_mhz": 24.0}, {**summary, "params": {**summary["params"], "word": 16}}):
        assert not sweep.gateware_current(stale), stale
    # a build for another clock is compared with the plan for that clock
    at24 = _record(target_mhz=24.0, plan_sha256=sweep.plan_hash("icebreaker", PARAMS, freq_mhz=24.0))
    assert at24["plan_sha256"] != plan and sweep.gateware_current(at24)
    assert sweep.gateware_current(sweep.board_summary(at24))
    # records of the current sources need no elaboration
    monkeypatch.setattr(sweep, "plan_hash", lambda *a, **k: pytest.fail("elaborated"))
    assert sweep.gateware_current(_record(inputs_sha256=sweep.inputs_hash(), plan_sha256=None))
    assert not sweep.gateware_current(None) and not sweep.gateware_current({})


def test_synth_point_reuses_a_report_with_the_same_plan(tmp_path, monkeypatch):
    out = tmp_path / "pt"
    out.mkdir()
    report = _record(plan_sha256=sweep.plan_hash("icebreaker", PARAMS), out_dir=str(out))
    (out / "report.json").write_text(json.dumps(report))
    monkeypatch.setattr("binaccel.hw.synth.synthesize", lambda *a, **k: pytest.fail("must reuse"))
    got, s = sweep.synth_point("icebreaker", PARAMS, out_dir=out, reuse=True, log=lambda *a: None)
    assert got == report and s["luts"] == 6956
    # another plan: the tools run again
    (out / "report.json").write_text(json.dumps({**report, "plan_sha256": "1" * 64}))
    ran = []

    def tools(design, **kw):
        Fragment.get(design, None)      # what the flow does with it first
        ran.append(kw["out_dir"])
        raise RuntimeError("tools ran")

    monkeypatch.setattr("binaccel.hw.synth.synthesize", tools)
    with pytest.raises(RuntimeError, match="tools ran"):
        sweep.synth_point("icebreaker", PARAMS, out_dir=out, reuse=True, log=lambda *a: None)
    assert ran == [out]
