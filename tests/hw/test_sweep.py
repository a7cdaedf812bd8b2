"""hw/sweep.py: the largest-array search (with a stand-in for the flow), FlatPorts, report reuse, the
accelerator design factory and parameters, boards.json sections, and real syntheses on the iCEBreaker (a
small engine and the engine + UART board design in the default run; the accelerator + UART board
design, slow)."""

import json
from pathlib import Path

import pytest
from amaranth.hdl import Fragment
from amaranth.lib import wiring
from amaranth.sim import Simulator

from binaccel.hw import sweep
from binaccel.hw.engine import Engine
from binaccel.hw.params import EngineParams


def _fake_synth(fits_fn, calls, designs=None):
    def fake(board, params, **kw):
        if designs is not None:
            designs.append(kw.get("design"))
        calls.append((params["rows"], params["cols"], params["word"]))
        ok = fits_fn(params["rows"], params["cols"], params["word"])
        report = {"board": board, "status": "ok" if ok else "no_fit", "fits": ok, "seed": 1, "params": params,
                  "utilization": {"LUT": {"used": params["rows"] * params["cols"] * params["word"], "total": 10000,
                                          "resource": "LC"}},
                  "accel_clock": {"fmax_mhz": 50.0} if ok else None, "out_dir": f"/x/{len(calls)}"}
        return report, sweep.board_summary(report)
    return fake


def test_largest_array_search_order(monkeypatch):
    """Squares double until one fails, one midpoint, then columns, then words; the largest fitting point
    (most MACs per cycle) wins."""
    calls = []
    # DSP-like limit on rows (<= 2), area limit on rows*cols*word (<= 1024)
    fits = lambda r, c, w: r <= 2 and r * c * w <= 1024  # noqa: E731
    designs = []
    monkeypatch.setattr(sweep, "synth_point", _fake_synth(fits, calls, designs))
    res = sweep.largest_array("icebreaker", design="engine", start=(1, 16), max_points=20, log=lambda *a: None)
    assert set(designs) == {"engine"} and res["design"] == "engine"
    assert calls == [(1, 1, 16), (2, 2, 16), (4, 4, 16), (3, 3, 16), (2, 4, 16), (2, 8, 16), (2, 16, 16),
                     (2, 32, 16), (2, 64, 16), (2, 32, 32)]
    assert res["best"]["array"] == {"rows": 2, "cols": 32, "word": 16}
    assert [p["fits"] for p in res["points"]] == [fits(*c) for c in calls]
    assert res["met"] is True  # 50 MHz >= 48


def test_largest_array_point_budget_and_no_fit(monkeypatch):
    calls = []
    monkeypatch.setattr(sweep, "synth_point", _fake_synth(lambda r, c, w: False, calls))
    res = sweep.largest_array("ulx3s", start=(4, 32), max_points=3, log=lambda *a: None)
    assert calls == [(4, 4, 32), (4, 4, 16), (4, 4, 8)]
    assert res["best"] is None and res["met"] is False
    calls.clear()
    monkeypatch.setattr(sweep, "synth_point", _fake_synth(lambda r, c, w: True, calls))
    saved = []
    res = sweep.largest_array("ulx3s", start=(4, 32), max_points=2, log=lambda *a: None, on_point=saved.append)
    assert len(calls) == 2 and res["best"]["array"] == {"rows": 8, "cols": 8, "word": 32}
    assert [len(r["points"]) for r in saved] == [1, 2] and saved[-1]["best"] == res["best"]


def test_flat_ports_keeps_widths_and_wiring():
    core = Engine(rows=1, cols=1, word=8, max_fan_in=16, max_in_bits=1, max_planes=1, max_taps=1, m_bits=1,
                  mul_bits=4, add_bits=8, count_bits=4)
    flat = sweep.FlatPorts(core)
    widths = {"_".join(map(str, path)): len(v.as_value()) if hasattr(v, "as_value") else len(v)
              for path, _, v in core.signature.flatten(core)}
    members = flat.signature.members
    assert set(members) == set(widths)
    for name, w in widths.items():
        assert members[name].shape.width == w
    assert members["i_stream_payload"].flow == wiring.In and members["o_stream_payload"].flow == wiring.Out
    Fragment.get(flat, None)  # elaborates
    p = EngineParams(rows=1, cols=1, word=8, max_fan_in=16, max_in_bits=1, max_planes=1, max_taps=1, m_bits=1,
                     mul_bits=4, add_bits=8, count_bits=4)
    assert members["i_stream_payload"].shape.width == p.in_layout.size
    assert members["o_stream_payload"].shape.width == p.out_layout.size

    # the flat input reaches the core: an idle engine is ready, and busy stays low
    sim = Simulator(flat)
    sim.add_clock(1e-6)

    async def tb(ctx):
        await ctx.tick().repeat(3)
        assert ctx.get(flat.i_stream_ready) == 1
        assert ctx.get(flat.busy) == 0

    sim.add_testbench(tb)
    sim.run()
    with pytest.raises(TypeError):
        sweep.FlatPorts(object())


def test_reuse_matches_pll_rounded_target(tmp_path, monkeypatch):
    """A report whose target is the PLL's achieved clock (within 1 %) is reused, not re-synthesized."""
    params = {**sweep.MNIST_PLAIN_PARAMS, "rows": 1, "cols": 1, "word": 8}
    full = EngineParams(**params).as_dict()
    report = {"board": "icebreaker", "status": "ok", "fits": True, "seed": 1, "params": full,
              "factory": "engine_design", "utilization": {"LUT": {"used": 10, "total": 5280, "resource": "LC"}},
              "accel_clock": {"fmax_mhz": 30.0, "target_mhz": 48.001}, "out_dir": str(tmp_path),
              "inputs_sha256": sweep.inputs_hash()}
    (tmp_path / "report.json").write_text(json.dumps(report))
    import binaccel.hw.synth as synth
    monkeypatch.setattr(synth, "synthesize", lambda *a, **k: pytest.fail("must reuse"))
    r, s = sweep.synth_engine("icebreaker", params, out_dir=tmp_path, reuse=True, log=lambda *a: None)
    assert s["fmax_mhz"] == 30.0 and s["array"] == {"rows": 1, "cols": 1, "word": 8}


def test_report_of_other_sources_is_not_reused(tmp_path, monkeypatch):
    """A report made from other gateware sources or tools (inputs_sha256) is synthesized again."""
    params = {**sweep.MNIST_PLAIN_PARAMS, "rows": 1, "cols": 1, "word": 8}
    full = EngineParams(**params).as_dict()
    report = {"board": "icebreaker", "status": "ok", "fits": True, "seed": 1, "params": full,
              "factory": "engine_design", "accel_clock": {"fmax_mhz": 30.0, "target_mhz": 48.0},
              "inputs_sha256": "0" * 64}
    (tmp_path / "report.json").write_text(json.dumps(report))
    import binaccel.hw.synth as synth

    class Ran(Exception):
        pass

    def fake(design, **k):
        Fragment.get(design, None)  # (the flow would elaborate it: no UnusedElaboratable warning)
        raise Ran()

    monkeypatch.setattr(synth, "synthesize", fake)
    msgs = []
    with pytest.raises(Ran):
        sweep.synth_engine("icebreaker", params, out_dir=tmp_path, reuse=True, log=msgs.append)
    assert any("changed" in m for m in msgs)


@pytest.mark.synth   # beyond the default tier's one small synthesis (tests/hw/test_synth.py)
def test_synthesize_small_engine_icebreaker(tmp_path):
    """One real yosys/nextpnr run of a small binary-only engine on the iCE40 (about 25 s on an idle
    machine; the default suite already runs the flow in tests/test_synth.py)."""
    params = {**sweep.MNIST_PLAIN_PARAMS, "rows": 1, "cols": 1, "word": 8, "max_in_bits": 1}
    report, s = sweep.synth_engine("icebreaker", params, out_dir=tmp_path / "e", log=lambda *a: None)
    assert report["status"] == "ok" and s["fits"]
    assert 0 < s["luts"] <= s["luts_total"] == 5280
    assert s["fmax_mhz"] and s["fmax_mhz"] > 5
    assert s["array"] == {"rows": 1, "cols": 1, "word": 8}
    assert json.loads((tmp_path / "e" / "report.json").read_text())["factory"] == "engine_design"
    assert report["tools"]["yosys"].startswith("Yosys")


@pytest.mark.synth   # beyond the default tier's one small synthesis (tests/hw/test_synth.py)
def test_synthesize_engine_link_icebreaker_fits_with_bitstream(tmp_path):
    """The iCEBreaker's board design (the engine behind the frame link, LinkedEngine in BoardTop) at
    the search's starting point, 1x1x16 with the board's widths: it fits the iCE40UP5K and the flow
    writes its bitstream (about 25 s; the 2x2x32 build is measured in docs/synthesis.md)."""
    params = {**sweep.base_params("icebreaker", "engine-link"), "rows": 1, "cols": 1, "word": 16}
    report, s = sweep.synth_point("icebreaker", params, design="engine-link", out_dir=tmp_path / "l",
                                  log=lambda *a: None)
    assert report["status"] == "ok" and s["fits"] and s["design"] == "engine+uart"
    assert 0 < s["luts"] <= s["luts_total"] == 5280 and s["params"]["pe_stages"] == 2
    assert report["design"] == "LinkedEngine" and report["wrapping"] == "byte-stream design"
    assert report["factory"] == "linked_engine_design" and report["pll"] is not None
    bit = Path(report["files"]["bitstream"])
    assert bit.exists() and bit.stat().st_size > 100_000      # an iCE40UP5K image is about 104 kB
    assert report["plan_sha256"] == sweep.plan_hash("icebreaker", params, design="engine-link")


def test_accel_search_stops_at_invalid_word(monkeypatch):
    """The accelerator search on the iCEBreaker: nothing fits, the word halves until the build is invalid
    (8-bit inputs need word >= 8), which is not synthesized; the result says which design."""
    calls, designs = [], []
    monkeypatch.setattr(sweep, "synth_point", _fake_synth(lambda r, c, w: False, calls, designs))
    msgs = []
    res = sweep.largest_array("icebreaker", max_points=8, log=msgs.append)
    assert calls == [(1, 1, 16), (1, 1, 8)] and set(designs) == {"accel"}
    assert res["best"] is None and res["design"] == "accel+uart"
    assert res["base_params"]["fm_depth"] == sweep.ACCEL_BASE["icebreaker"]["fm_depth"]
    assert any("not a valid build" in m for m in msgs)


def test_accel_design_factory_and_params():
    from binaccel.hw.linked import LinkedAccelerator
    from binaccel.hw.seq import AccelParams

    p = {**sweep.base_params("icebreaker"), "rows": 1, "cols": 1, "word": 16}
    full = sweep.full_params(p)
    assert full == AccelParams(**p).as_dict() and full["fm_depth"] == 1024 and full["pair_reads"] == 0
    d = sweep.accel_design(**full)
    assert isinstance(d, LinkedAccelerator) and d.params.as_dict() == full
    from binaccel.hw.synth import _is_byte_stream_design
    assert _is_byte_stream_design(d)  # the flow puts it in a BoardTop (PLL, reset, UART)
    Fragment.get(d, None)  # elaborates
    assert sweep.full_params({**sweep.base_params("icebreaker", "engine"), "rows": 1, "cols": 1,
                              "word": 8}, "engine")["rows"] == 1
    with pytest.raises(ValueError, match="word must be at least 8"):
        sweep.full_params({**p, "word": 4})
    with pytest.raises(ValueError, match="design must be one of"):
        sweep.full_params(p, "other")


def test_boards_json_sections(tmp_path):
    """Accelerator results go to boards, engine results to engine_boards; an older file with engine
    results under boards keeps them (moved to engine_boards) when an accelerator result arrives."""
    def summary(kind, fits, rows=1):
        report = {"board": "icebreaker", "status": "ok" if fits else "no_fit", "fits": fits, "seed": 1,
                  "params": {"rows": rows, "cols": rows, "word": 16}, "design_kind": kind,
                  "utilization": {"LUT": {"used": 100, "total": 5280, "resource": "LC"}},
                  "accel_clock": {"fmax_mhz": 20.0} if fits else None, "out_dir": f"/x/{kind}{rows}"}
        return sweep.board_summary(report)

    eng = summary("engine", True, 2)
    path = tmp_path / "boards.json"
    # an older file: the engine result under "boards", no design field
    old = {"format": "binaccel-boards", "version": 1,
           "boards": {"icebreaker": {"board": "icebreaker", "best": eng, "points": [eng], "target_mhz": 48.0}}}
    old["boards"]["icebreaker"]["points"][0]["design"] = "Engine"
    old["boards"]["icebreaker"]["points"][0]["wrapping"] = "core in PortHarness"
    path.write_text(json.dumps(old))
    acc = summary("accel+uart", False)
    sweep.update_boards_json("icebreaker", {"board": "icebreaker", "design": "accel+uart", "best": None,
                                            "points": [acc], "target_mhz": 48.0}, path)
    doc = sweep.load_boards_json(path)
    assert doc["boards"]["icebreaker"]["best"] is None
    assert doc["engine_boards"]["icebreaker"]["best"]["array"]["rows"] == 2
    md = (tmp_path / "boards.md").read_text()
    assert "no array fits" in md and "Engine only" in md
    from binaccel import bench
    boards = bench.load_boards(path)
    assert boards["icebreaker"]["design"] == "engine" and "no accelerator build fits" in boards["icebreaker"]["fallback"]
    assert bench.load_boards(path, fallback=False) == {}


@pytest.mark.slow
def test_synthesize_accel_icebreaker_records_no_fit(tmp_path):
    """The real board design (LinkedAccelerator in BoardTop) at the smallest MNIST-capable array on the
    iCE40UP5K: yosys maps it, nextpnr cannot place it (about 7,800 logic cells for 5,280); the report
    says what was synthesized and how much it needed (about 60 s)."""
    params = {**sweep.base_params("icebreaker"), "rows": 1, "cols": 1, "word": 16}
    report, s = sweep.synth_point("icebreaker", params, out_dir=tmp_path / "a", log=lambda *a: None)
    assert report["status"] == "no_fit" and not s["fits"] and s["design"] == "accel+uart"
    assert s["luts"] > s["luts_total"] == 5280
    assert "UART" in report["description"] and report["design"] == "LinkedAccelerator"
    assert report["wrapping"] == "byte-stream design" and report["pll"] is not None
    assert report["params"]["fm_depth"] == sweep.base_params("icebreaker")["fm_depth"] == 1024
    md = (tmp_path / "a" / "report.md").read_text()
    assert "accelerator + UART link + PLL" in md and "no_fit" in md
    assert report["plan_sha256"] == s["plan_sha256"] == sweep.plan_hash("icebreaker", params)


def test_search_records_a_failed_tool_run(monkeypatch):
    """A point whose synthesis fails (a tool crash: status error) is recorded with its error and ends
    that direction like a point that does not fit."""
    from binaccel.hw.synth import SynthesisError

    calls = []
    fake = _fake_synth(lambda r, c, w: r <= 4, calls)

    def flaky(board, params, **kw):
        if params["rows"] == 8:
            calls.append((8, 8, params["word"]))
            report = {"board": board, "status": "error", "fits": False, "seed": 1, "params": params,
                      "utilization": {}, "accel_clock": None, "out_dir": "/x/err",
                      "error": "yosys exit 1: thrown Wasm exception"}
            raise SynthesisError("synthesis failed: yosys exit 1", report)
        return fake(board, params, **kw)

    monkeypatch.setattr(sweep, "synth_point", flaky)
    res = sweep.largest_array("ulx3s", start=(4, 32), max_points=2, log=lambda *a: None)
    assert calls == [(4, 4, 32), (8, 8, 32)]
    assert res["best"]["array"] == {"rows": 4, "cols": 4, "word": 32}
    assert res["points"][1]["status"] == "error" and "Wasm" in res["points"][1]["error"]
    assert "no (error): yosys exit 1" in sweep.boards_markdown({"ulx3s": res})


def test_engine_link_results_have_their_section_and_come_before_the_bare_engine(tmp_path):
    """An engine+uart result (the engine behind the link) goes to engine_link_boards, keeps the
    other sections, shows in boards.md, and is the bench's board design for a board the
    accelerator does not fit, before the engine-only figures; its stale note names its design."""
    def summary(kind, fits, rows=1):
        report = {"board": "icebreaker", "status": "ok" if fits else "no_fit", "fits": fits, "seed": 1,
                  "params": {"rows": rows, "cols": rows, "word": 16}, "design_kind": kind,
                  "utilization": {"LUT": {"used": 100 * rows, "total": 5280, "resource": "LC"}},
                  "accel_clock": {"fmax_mhz": 20.0 + rows} if fits else None, "out_dir": f"/x/{kind}{rows}"}
        return sweep.board_summary(report)

    path = tmp_path / "boards.json"
    for kind, fits, rows in (("accel+uart", False, 1), ("engine", True, 3), ("engine+uart", True, 2)):
        s = summary(kind, fits, rows)
        sweep.update_boards_json("icebreaker", {"board": "icebreaker", "design": kind, "best": s if fits else None,
                                                "points": [s], "target_mhz": 48.0}, path)
    doc = sweep.load_boards_json(path)
    assert doc["boards"]["icebreaker"]["best"] is None
    assert doc["engine_link_boards"]["icebreaker"]["best"]["array"]["rows"] == 2
    assert doc["engine_boards"]["icebreaker"]["best"]["array"]["rows"] == 3
    assert "Engine + UART link" in (tmp_path / "boards.md").read_text()
    from binaccel import bench
    b = bench.load_boards(path)["icebreaker"]
    assert b["design"] == "engine+uart" and b["array"]["rows"] == 2 and b["fmax_mhz"] == 22.0
    assert "no accelerator build fits the board" in b["fallback"] and "host does im2col" in b["fallback"]
    note = bench.stale_note("icebreaker", {**b, "gateware_current": False, "source": "boards.json"})
    assert "--design engine-link" in note and "--update-boards" in note
    # without an engine+uart result the bare engine's figures are the fallback
    doc["engine_link_boards"] = {}
    path.write_text(json.dumps(doc))
    assert bench.load_boards(path)["icebreaker"]["design"] == "engine"
