# amaranth: UnusedElaboratable=no
"""Synthesis flow (binaccel.hw.synth), boards and PLLs (binaccel.hw.boards), constraints/."""

import json
import random
import re
import subprocess
from fractions import Fraction
from pathlib import Path

import pytest
from amaranth.hdl import Module
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out
from amaranth.sim import Simulator

from binaccel.hw.boards import (BOARDS, BoardTop, ByteRegister, make_platform,
                                ice40_pll_params, ecp5_pll_params)
from binaccel.hw.synth import (synthesize, sweep, parse_nextpnr_report, parse_nextpnr_log,
                               report_markdown, PortHarness, SynthesisError, tool_path, build_plan,
                               plan_digest)
from binaccel.hw.uart import UARTEcho
from tests import PROJECT_ROOT

ROOT = PROJECT_ROOT

# BoardTops built only to check their parameters are never elaborated
pytestmark = pytest.mark.filterwarnings("ignore::amaranth.hdl._ir.UnusedElaboratable")


# --- toy designs ------------------------------------------------------------------------------

class ParallelPopcount(wiring.Component):
    """n independent registered popcounts of `width`-bit words (sweep toy)."""

    def __init__(self, *, n, width=16):
        self.n, self.width = n, width
        self.cw = width.bit_length()
        super().__init__({"i_bits": In(n * width), "o_counts": Out(n * self.cw)})

    def elaborate(self, platform):
        m = Module()
        w, cw = self.width, self.cw
        for i in range(self.n):
            word = self.i_bits[i * w:(i + 1) * w]
            m.d.sync += self.o_counts[i * cw:(i + 1) * cw].eq(sum(word[j] for j in range(w)))
        return m


class _Adder(wiring.Component):
    a: In(12)
    b: In(5)
    s: Out(13)

    def elaborate(self, platform):
        m = Module()
        m.d.comb += self.s.eq(self.a + self.b)
        return m


# --- report parsing on hand-written data (fast) -----------------------------------------------

ICE40_REPORT = {
    "fmax": {"clk": {"achieved": 55.76, "constraint": 48.0},
             "other": {"achieved": 200.0, "constraint": 12.0}},
    "utilization": {
        "ICESTORM_LC": {"available": 5280, "used": 228},
        "ICESTORM_RAM": {"available": 30, "used": 1},
        "ICESTORM_DSP": {"available": 8, "used": 2},
        "SB_IO": {"available": 39, "used": 6},
        "ICESTORM_PLL": {"available": 1, "used": 1},
        "SB_WARMBOOT": {"available": 1, "used": 0},
    },
    "critical_paths": [{
        "from": "posedge clk", "to": "posedge clk",
        "path": [
            {"type": "clk-to-q", "delay": 1.39, "from": {"cell": "a"}, "to": {"cell": "a"}},
            {"type": "routing", "delay": 1.76, "from": {"cell": "a"}, "to": {"cell": "l1"}},
            {"type": "logic", "delay": 1.21, "from": {"cell": "l1"}, "to": {"cell": "l1"}},
            {"type": "routing", "delay": 2.45, "from": {"cell": "l1"}, "to": {"cell": "b"}},
            {"type": "setup", "delay": 0.1, "from": {"cell": "b"}, "to": {"cell": "b"}},
        ]}],
}

ECP5_REPORT = {
    "fmax": {"$glbnet$design.clk": {"achieved": 132.77, "constraint": 150.0}},
    "utilization": {
        "TRELLIS_COMB": {"available": 83640, "used": 267},
        "TRELLIS_FF": {"available": 83640, "used": 133},
        "DP16KD": {"available": 208, "used": 1},
        "MULT18X18D": {"available": 156, "used": 0},
        "EHXPLLL": {"available": 4, "used": 1},
    },
}


def test_parse_ice40_report():
    cells = {"SB_LUT4": 168, "SB_DFF": 19, "SB_DFFESR": 90, "SB_CARRY": 49}
    s = parse_nextpnr_report(ICE40_REPORT, family="ice40", accel_names={"clk", "design.clk"},
                             yosys_cells=cells)
    u = s["utilization"]
    assert u["LUT"] == {"used": 228, "total": 5280, "resource": "ICESTORM_LC"}
    assert u["FF"]["used"] == 109 and u["FF"]["total"] == 5280
    assert u["BRAM"]["used"] == 1 and u["BRAM"]["total"] == 30
    assert u["DSP"] == {"used": 2, "total": 8, "resource": "ICESTORM_DSP"}
    assert s["accel_clock"] == {"net": "clk", "fmax_mhz": 55.76, "target_mhz": 48.0,
                                "met": True}
    assert set(s["clocks"]) == {"clk", "other"}
    assert s["critical_paths"] == [{"from": "posedge clk", "to": "posedge clk",
                                    "delay_ns": 6.91, "start": "a", "end": "b",
                                    "logic_levels": 1}]


def test_parse_ecp5_report_glbnet_and_timing_failure():
    s = parse_nextpnr_report(ECP5_REPORT, family="ecp5", accel_names={"design.clk"})
    assert s["utilization"]["LUT"]["used"] == 267
    assert s["utilization"]["FF"] == {"used": 133, "total": 83640, "resource": "TRELLIS_FF"}
    assert s["utilization"]["DSP"]["total"] == 156
    assert s["accel_clock"]["net"] == "$glbnet$design.clk"
    assert s["accel_clock"]["met"] is False
    # no marked clock: a single clock is taken as the accelerator clock, several are not
    assert parse_nextpnr_report(ECP5_REPORT, family="ecp5")["accel_clock"]["fmax_mhz"] == 132.77
    assert parse_nextpnr_report(ICE40_REPORT, family="ice40")["accel_clock"] is None


def test_parse_report_slow_nets_from_detailed_timing():
    def net(name, driver, delays):
        return {"net": name, "driver": driver, "port": "Q", "event": "posedge clk",
                "endpoints": [{"cell": f"s{i}", "port": "D", "event": "posedge clk", "delay": [d * 0.9, d]}
                              for i, d in enumerate(delays)]}
    nets = [net("fast", "a", [0.5, 0.7]), net("$glbnet$clk", "pll", [9.0]), net("slow", "b", [1.0, 7.25, 3.0]),
            net("mid", "c", [2.0]), {"net": "dangling", "driver": "d", "endpoints": []}]
    s = parse_nextpnr_report({**ECP5_REPORT, "detailed_net_timings": nets}, family="ecp5")
    assert s["slow_nets"] == [
        {"net": "slow", "driver": "b", "fanout": 3, "delay_ns": 7.25, "sink": "s1.D"},
        {"net": "mid", "driver": "c", "fanout": 1, "delay_ns": 2.0, "sink": "s0.D"},
        {"net": "fast", "driver": "a", "fanout": 2, "delay_ns": 0.7, "sink": "s1.D"}]
    assert "slow_nets" not in parse_nextpnr_report(ECP5_REPORT, family="ecp5")
    md = report_markdown({"design": "x", "board": "ulx3s", "device": "LFE5U-85F", "package": "CABGA381", "seed": 1,
                          "status": "ok", **s})
    assert "| `slow` | `b` | 3 | 7.25 | `s1.D` |" in md


def test_parse_report_rejects_bad_input():
    with pytest.raises(ValueError, match="utilization"):
        parse_nextpnr_report({"fmax": {}}, family="ice40")
    with pytest.raises(ValueError, match="family"):
        parse_nextpnr_report(ICE40_REPORT, family="xc7")


def test_parse_log_fallback():
    log = """Info: Device utilisation:
Info: 	         ICESTORM_LC:    6000/   5280   113%
Info: 	        ICESTORM_RAM:       1/     30     3%
Info: 	        ICESTORM_DSP:       9/      8   112%

Info: Max frequency for clock 'clk': 60.54 MHz (PASS at 48.00 MHz)
Info: Device utilisation:
Info: 	         ICESTORM_LC:     228/   5280     4%
Info: 	        ICESTORM_RAM:       1/     30     3%

Warning: Max frequency for clock 'clk': 45.10 MHz (FAIL at 48.00 MHz)
ERROR: Unable to place cell 'x'
"""
    d = parse_nextpnr_log(log)
    assert d["utilization"] == {"ICESTORM_LC": {"used": 228, "available": 5280},
                                "ICESTORM_RAM": {"used": 1, "available": 30}}
    assert d["fmax"] == {"clk": {"achieved": 45.10, "constraint": 48.00}}
    s = parse_nextpnr_report(d, family="ice40", accel_names={"clk"})
    assert s["accel_clock"]["met"] is False


def test_markdown_report_renders_key_figures():
    s = parse_nextpnr_report(ICE40_REPORT, family="ice40", accel_names={"clk"})
    report = {"design": "X", "board": "icebreaker", "device": "iCE40UP5K", "package": "SG48",
              "status": "ok", "error": None, "seed": 3, "params": {"n": 2}, "pll": None,
              "runtime_s": {"yosys": 1.0}, "tools": {"yosys": "Yosys 0.70"}, "files": {}, **s}
    md = report_markdown(report)
    assert "fmax **55.76 MHz**" in md and "| LUT | 228 | 5280 | 4.3 | ICESTORM_LC |" in md
    assert "seed: 3" in md and "{'n': 2}" in md
    assert "| posedge clk -> posedge clk | 6.91 | 1 | `a` | `b` |" in md
    report.update(description="accelerator + UART link + PLL: LinkedAccelerator in BoardTop",
                  clk_hz=48e6, pll={"DIVR": 0})
    md = report_markdown(report)
    assert "- design: accelerator + UART link + PLL: LinkedAccelerator in BoardTop" in md
    assert "- clock asked for: 48.000 MHz (PLL)" in md


# --- PLLs -------------------------------------------------------------------------------------

@pytest.mark.parametrize("mhz", [20, 24, 30, 36, 42, 48, 50, 60, 72, 100])
def test_ice40_pll_matches_icepll(mhz):
    p = ice40_pll_params(12e6, mhz * 1e6)
    assert p["fout_hz"] == pytest.approx(12e6 * (p["DIVF"] + 1) / (p["DIVR"] + 1)
                                         / 2 ** p["DIVQ"])
    assert 533e6 <= p["fvco_hz"] <= 1066e6
    out = subprocess.run([tool_path("icepll"), "-i", "12", "-o", str(mhz)],
                         capture_output=True, text=True, check=True).stdout
    tool = {k: int(v) for k, v in re.findall(r"^(DIVR|DIVF|DIVQ|FILTER_RANGE):\s+(\d+)", out,
                                             re.M)}
    assert tool == {k: p[k] for k in ("DIVR", "DIVF", "DIVQ", "FILTER_RANGE")}


@pytest.mark.parametrize("mhz", [50, 75, 100, 120, 125, 150, 200])
def test_ecp5_pll_matches_ecppll(mhz):
    p = ecp5_pll_params(25e6, mhz * 1e6)
    assert p["fout_hz"] == pytest.approx(25e6 * p["CLKFB_DIV"] / p["CLKI_DIV"])
    assert p["fvco_hz"] == pytest.approx(p["fout_hz"] * p["CLKOP_DIV"])
    assert 400e6 <= p["fvco_hz"] <= 800e6
    assert 0 <= p["CLKOP_CPHASE"] < p["CLKOP_DIV"]
    out = subprocess.run([tool_path("ecppll"), "-i", "25", "-o", str(mhz)],
                         capture_output=True, text=True, check=True).stdout
    tool = dict(re.findall(r"^(Refclk|Feedback|clkout0) divisor: (\d+)", out, re.M))
    assert (int(tool["Refclk"]), int(tool["Feedback"]), int(tool["clkout0"])) == \
        (p["CLKI_DIV"], p["CLKFB_DIV"], p["CLKOP_DIV"])


def test_pll_out_of_range():
    with pytest.raises(ValueError, match="out of range"):
        ice40_pll_params(12e6, 5e6)
    with pytest.raises(ValueError, match="out of range"):
        ecp5_pll_params(25e6, 500e6)


# --- board top and constraints (elaboration only, fast) ---------------------------------------

def _render(board, **kw):
    top = BoardTop(UARTEcho, board=board, **kw)
    plan = make_platform(board).build(top, name="top", do_build=False, debug_verilog=False)
    return top, plan.files


def _pin_lines(text, family):
    keep = ("set_io",) if family == "ice40" else ("LOCATE", "IOBUF", "BLOCK")
    return sorted(" ".join(line.split()) for line in text.splitlines()
                  if line.strip().startswith(keep))


@pytest.mark.parametrize("board,cfile", [("icebreaker", "icebreaker.pcf"),
                                         ("ulx3s", "ulx3s.lpf")])
def test_checked_in_constraints_match_platform(board, cfile):
    top, files = _render(board)
    family = BOARDS[board].family
    generated = files["top.pcf" if family == "ice40" else "top.lpf"]
    if not isinstance(generated, str):
        generated = generated.decode()
    checked_in = (ROOT / "constraints" / cfile).read_text()
    assert _pin_lines(checked_in, family) == _pin_lines(generated, family)
    # the oscillator constraint and the default accelerator clock target are stated
    mhz = top.clk_hz / 1e6
    if family == "ice40":
        assert "set_frequency clk12_0__io 12.0" in generated
        assert "set_frequency clk12_0__io 12.0" in checked_in
        assert re.search(rf"^set_frequency \S+ {mhz:.1f}$", checked_in, re.M)
    else:
        assert 'FREQUENCY PORT "clk25_0__io" 25000000.0 HZ;' in generated
        assert 'FREQUENCY PORT "clk25_0__io" 25000000.0 HZ;' in checked_in
        assert re.search(rf'^FREQUENCY NET "\S+" {top.clk_hz:.1f} HZ;$', checked_in, re.M)


def test_board_top_clocks_and_checks():
    ice = BoardTop(UARTEcho, board="icebreaker")
    assert ice.clk_hz == 48e6 and ice.pll["DIVF"] == 63 and ice.baud == 3_000_000 and ice.divisor == 16
    assert BoardTop(UARTEcho, board="icebreaker", baud=115_200).divisor == Fraction(1250, 3)
    assert BoardTop(UARTEcho, board="ulx3s", clk_mhz=25).divisor == Fraction(25, 3)
    with pytest.raises(ValueError, match="baud: expected a positive int"):
        BoardTop(UARTEcho, board="icebreaker", baud=3e6)
    assert ice.rx_fifo_depth == 256
    ulx = BoardTop(UARTEcho, board="ulx3s", clk_mhz=125, baud=1_000_000)
    assert ulx.clk_hz == 125e6 and ulx.divisor == 125
    assert BoardTop(UARTEcho, board="icebreaker", clk_mhz=12).pll is None
    with pytest.raises(ValueError, match="board must be one of"):
        BoardTop(UARTEcho, board="arty")
    assert BoardTop(UARTEcho, board="icebreaker", clk_mhz=47.3).clk_hz == 47.25e6
    with pytest.raises(ValueError, match="out of range 16-275 MHz"):
        BoardTop(UARTEcho, board="icebreaker", clk_mhz=300)
    with pytest.raises(TypeError, match="i_stream"):
        BoardTop(_Adder, board="icebreaker")
    with pytest.raises(ValueError, match="too fast"):
        BoardTop(UARTEcho, board="icebreaker", baud=20_000_000)


def test_byte_register_random_handshakes():
    dut = ByteRegister()
    rng = random.Random(11)
    payload = [rng.randrange(256) for _ in range(80)]
    received, errors = [], []

    async def producer(ctx):
        for byte in payload:
            for _ in range(rng.choice([0, 0, 1, 4])):
                await ctx.tick()
            ctx.set(dut.i_stream.payload, byte)
            ctx.set(dut.i_stream.valid, 1)
            await ctx.tick().until(dut.i_stream.ready)
            ctx.set(dut.i_stream.valid, 0)

    async def consumer(ctx):
        held = None
        while len(received) < len(payload):
            ready = rng.random() < 0.4
            ctx.set(dut.o_stream.ready, ready)
            _, _, valid, data = await ctx.tick().sample(dut.o_stream.valid,
                                                         dut.o_stream.payload)
            if held is not None and (not valid or data != held):
                errors.append((held, valid, data))
            held = None
            if valid and ready:
                received.append(data)
            elif valid:
                held = data

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(producer)
    sim.add_testbench(consumer)
    sim.run()
    assert errors == [] and received == payload


# --- PortHarness in simulation ----------------------------------------------------------------

def test_port_harness_drives_inputs_and_folds_outputs():
    core = _Adder()
    dut = PortHarness(core)
    rng = random.Random(3)
    sent, seen = [], []

    async def bench(ctx):
        ctx.set(dut.o_stream.ready, 1)
        for _ in range(12):
            byte = rng.randrange(256)
            ctx.set(dut.i_stream.payload, byte)
            ctx.set(dut.i_stream.valid, 1)
            await ctx.tick()
            sent.append(byte)
            ctx.set(dut.i_stream.valid, 0)
            await ctx.tick().repeat(3)        # let the output register and fold settle
            seen.append(ctx.get(dut.o_stream.payload))
            assert ctx.get(dut.o_stream.valid) == 1

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(bench)
    sim.run()
    for k in range(len(sent)):
        sr = 0
        for byte in sent[:k + 1]:
            sr = ((sr << 8) | byte) & (2 ** 17 - 1)     # 17 input bits, newest byte lowest
        a, b = sr & 0xFFF, sr >> 12
        s = a + b
        assert seen[k] == (s & 0xFF) ^ (s >> 8), k


# --- real synthesis ---------------------------------------------------------------------------

@pytest.fixture(scope="module")
def echo_icebreaker(tmp_path_factory):
    out = tmp_path_factory.mktemp("echo_icebreaker")
    return synthesize(UARTEcho(), board="icebreaker", out_dir=out, seed=1), out


def test_echo_icebreaker_report(echo_icebreaker):
    report, out = echo_icebreaker
    assert report["status"] == "ok" and report["fits"]
    bitstream = Path(report["files"]["bitstream"])
    assert bitstream.stat().st_size == 104090          # iCE40UP5K .bin size
    assert report["wrapping"] == "byte-stream design" and report["seed"] == 1
    u = report["utilization"]
    assert 50 < u["LUT"]["used"] < 1000 and u["LUT"]["total"] == 5280
    assert u["FF"]["used"] > 50 and u["BRAM"]["used"] == 1 and u["PLL"]["used"] == 1
    accel = report["accel_clock"]
    assert accel["net"] in report["accel_clock_names"]
    assert accel["target_mhz"] == pytest.approx(48.0, abs=0.01)
    assert accel["fmax_mhz"] > 30
    assert "Yosys 0.70" in report["tools"]["yosys"]
    assert "nextpnr" in report["tools"]["nextpnr-ice40"]
    assert json.loads((out / "report.json").read_text()) == report
    assert "fmax" in (out / "report.md").read_text()
    # the digest of the plan the tools ran, the same as the plan the flow makes without running them
    assert report["plan_sha256"] == plan_digest(build_plan(UARTEcho(), board="icebreaker").files)
    assert report["plan_sha256"] != plan_digest(build_plan(UARTEcho(), board="icebreaker", freq_mhz=24).files)
    same_clock = [cp for cp in report["critical_paths"] if cp["from"] == cp["to"]]
    assert same_clock and same_clock[0]["delay_ns"] == pytest.approx(1000 / accel["fmax_mhz"],
                                                                     rel=0.02)


def test_sample_report_parsers_agree(echo_icebreaker):
    """nextpnr's JSON report of a real run, and the log fallback on the same run, agree."""
    report, out = echo_icebreaker
    data = json.loads(Path(report["files"]["nextpnr_report"]).read_text())
    from_json = parse_nextpnr_report(data, family="ice40",
                                     accel_names=report["accel_clock_names"],
                                     yosys_cells=report["yosys_cells"])
    assert from_json["utilization"] == report["utilization"]
    log = Path(report["files"]["nextpnr_log"]).read_text()
    from_log = parse_nextpnr_report(parse_nextpnr_log(log), family="ice40",
                                    accel_names=report["accel_clock_names"],
                                    yosys_cells=report["yosys_cells"])
    assert {k: v["used"] for k, v in from_log["utilization"].items()} == \
        {k: v["used"] for k, v in report["utilization"].items()}
    assert from_log["accel_clock"]["fmax_mhz"] == pytest.approx(
        report["accel_clock"]["fmax_mhz"], abs=0.01)


def test_synthesize_argument_checks(tmp_path):
    with pytest.raises(ValueError, match="board must be one of"):
        synthesize(UARTEcho(), board="arty", out_dir=tmp_path)
    with pytest.raises(ValueError, match="seed"):
        synthesize(UARTEcho(), board="icebreaker", out_dir=tmp_path, seed=-1)
    with pytest.raises(TypeError, match="Elaboratable"):
        synthesize(object(), board="icebreaker", out_dir=tmp_path)


def test_tool_timeout_is_reported_as_error(tmp_path):
    report = synthesize(UARTEcho(), board="icebreaker", out_dir=tmp_path, timeout=0.01,
                        check=False)
    assert report["status"] == "error" and not report["fits"]
    assert "yosys timed out" in report["error"]
    assert json.loads((tmp_path / "report.json").read_text())["status"] == "error"
    with pytest.raises(SynthesisError, match="timed out"):
        synthesize(UARTEcho(), board="icebreaker", out_dir=tmp_path, timeout=0.01)


@pytest.mark.synth   # two more syntheses; the default tier's one is the UARTEcho fixture above
def test_sweep_toy_popcount(tmp_path):
    reports = sweep(ParallelPopcount, [{"n": 1}, {"n": 4}], board="icebreaker",
                    out_dir=tmp_path, freq_mhz=36)
    assert [r["params"] for r in reports] == [{"n": 1}, {"n": 4}]
    assert all(r["fits"] and r["status"] == "ok" for r in reports)
    assert all(r["wrapping"] == "core in PortHarness" for r in reports)
    assert reports[0]["utilization"]["LUT"]["used"] < reports[1]["utilization"]["LUT"]["used"]
    assert all(r["accel_clock"]["target_mhz"] == pytest.approx(36, abs=0.01) for r in reports)
    assert all(r["accel_clock"]["fmax_mhz"] > 10 for r in reports)
    summary = json.loads((tmp_path / "sweep.json").read_text())
    assert [p["fits"] for p in summary["points"]] == [True, True]
    assert summary["points"][1]["fmax_mhz"] == reports[1]["accel_clock"]["fmax_mhz"]


class _Multipliers(wiring.Component):
    """n registered 16x16 multipliers: SB_MAC16 each with -dsp (the UP5K has 8)."""

    def __init__(self, *, n):
        self.n = n
        super().__init__({"a": In(16 * n), "b": In(16 * n), "p": Out(32 * n)})

    def elaborate(self, platform):
        m = Module()
        for i in range(self.n):
            m.d.sync += self.p[32 * i:32 * i + 32].eq(self.a[16 * i:16 * i + 16] *
                                                      self.b[16 * i:16 * i + 16])
        return m


@pytest.mark.slow
def test_sweep_records_point_that_does_not_fit(tmp_path):
    reports = sweep(_Multipliers, [{"n": 2}, {"n": 9}], board="icebreaker", out_dir=tmp_path)
    assert [r["fits"] for r in reports] == [True, False]
    assert reports[1]["status"] == "no_fit"
    assert "ICESTORM_DSP" in reports[1]["error"]
    assert reports[1]["utilization"]["DSP"] == {"used": 9, "total": 8,
                                                 "resource": "ICESTORM_DSP"}
    assert reports[0]["utilization"]["DSP"]["used"] == 2
    with pytest.raises(SynthesisError, match="no_fit"):
        synthesize(_Multipliers(n=9), board="icebreaker", out_dir=tmp_path / "raise")


@pytest.mark.slow
def test_echo_ulx3s(tmp_path):
    report = synthesize(UARTEcho(), board="ulx3s", out_dir=tmp_path, freq_mhz=125)
    assert report["status"] == "ok"
    assert Path(report["files"]["bitstream"]).stat().st_size > 100_000
    assert report["pll"]["CLKOP_DIV"] == 5 and report["clk_hz"] == 125e6
    assert report["accel_clock"]["target_mhz"] == pytest.approx(125)
    assert report["utilization"]["LUT"]["total"] == 83640
    assert report["accel_clock"]["met"]         # the board glue is not the limit at 125 MHz
    assert report["utilization"]["FF"]["used"] > 50


def test_error_text_from_the_yosys_log_file(tmp_path):
    """A yosys failure whose stdout is empty is explained by the ERROR line of its log (<name>.rpt)."""
    from binaccel.hw.synth import _errors

    (tmp_path / "yosys.log").write_text("")
    (tmp_path / "top.rpt").write_text("2.46.20.7. Executing ABC_OPS_REINTEGRATE pass\n"
                                      "ERROR: Assert `GetSize(conn.first) == GetSize(conn.second)' failed\n")
    assert _errors(tmp_path / "yosys.log") == ""
    assert _errors(tmp_path / "top.rpt").startswith("ERROR: Assert")
