"""Tests of the simulation infrastructure: runner (build cache, cocotb runs, failures), stream
driver/monitor under random idle and backpressure, payload packing, Verilog lint."""
import os
import random
import subprocess
from pathlib import Path

import pytest
from amaranth import Module, signed, unsigned
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out

from binaccel.sim import runner
from binaccel.sim.lint import LintError, lint_component, lint_verilog
from binaccel.sim.runner import BuildError, CocotbFailure, build_component, run_cocotb
from binaccel.sim.streams import pack_fields, unpack_fields
from tests.sim.infra_designs import INFRA_LAYOUT, InfraAdder, InfraFIFO

TB = "tests.sim.tb_infra_fifo"


@pytest.fixture(scope="module")
def fifo_build():
    return build_component(InfraFIFO, name="infra_fifo", params={"depth": 4})


# ------------------------------------------------------------------ environment


def test_verilator_env():
    env = runner.verilator_env()
    root = Path(env["VERILATOR_ROOT"])
    assert (root / "bin" / "verilator").is_file()
    assert env["PATH"].split(os.pathsep)[0] == str(root / "bin")
    env2 = runner.verilator_env(env)  # idempotent: the folder is not prepended twice
    assert env2["PATH"].split(os.pathsep).count(str(root / "bin")) == 1
    out = subprocess.run(["verilator", "--getenv", "VERILATOR_ROOT"], env=env, capture_output=True,
                         text=True, check=True)
    assert Path(out.stdout.strip()) == root


# ------------------------------------------------------------------ packing


def test_pack_unpack_roundtrip_and_offsets():
    w = pack_fields(INFRA_LAYOUT, a=0xA5, b=-1, last=1)
    assert w == 0xA5 | (0xF << 8) | (1 << 12)
    assert unpack_fields(INFRA_LAYOUT, w) == {"a": 0xA5, "b": -1, "last": 1}
    rng = random.Random(5)
    for _ in range(200):
        f = {"a": rng.randrange(256), "b": rng.randrange(-8, 8), "last": rng.randrange(2)}
        assert unpack_fields(INFRA_LAYOUT, pack_fields(INFRA_LAYOUT, **f)) == f


def test_pack_nested_and_array():
    inner = data.StructLayout({"x": signed(3), "y": unsigned(2)})
    outer = data.StructLayout({"p": inner, "v": data.ArrayLayout(signed(4), 3), "z": unsigned(1)})
    w = pack_fields(outer, p={"x": -4, "y": 3}, v=[-8, 7, -1], z=1)
    assert w == (0b100 | (0b11 << 3)) | ((0x8 | (0x7 << 4) | (0xF << 8)) << 5) | (1 << 17)
    assert unpack_fields(outer, w) == {"p": {"x": -4, "y": 3}, "v": {0: -8, 1: 7, 2: -1}, "z": 1}


def test_pack_errors():
    with pytest.raises(ValueError, match=r"pack_fields\.b.*out of range"):
        pack_fields(INFRA_LAYOUT, a=0, b=8, last=0)
    with pytest.raises(ValueError, match=r"pack_fields\.a.*out of range"):
        pack_fields(INFRA_LAYOUT, a=-1, b=0, last=0)
    with pytest.raises(ValueError, match="missing.*last"):
        pack_fields(INFRA_LAYOUT, a=0, b=0)
    with pytest.raises(ValueError, match="unknown.*'c'"):
        pack_fields(INFRA_LAYOUT, a=0, b=0, last=0, c=1)
    with pytest.raises(ValueError):
        unpack_fields(INFRA_LAYOUT, 1 << 13)


# ------------------------------------------------------------------ runner


def test_default_build_dirs_differ_per_params(tmp_path):
    d1 = runner.default_build_dir("x", {"depth": 4})
    d2 = runner.default_build_dir("x", {"depth": 8})
    d3 = runner.default_build_dir("x", {"depth": 4}, waves=True)
    assert len({d1, d2, d3}) == 3
    assert d1 == runner.default_build_dir("x", {"depth": 4})
    assert d1.parent == runner.sim_build_dir()


def test_build_is_cached(fifo_build):
    again = build_component(InfraFIFO, name="infra_fifo", params={"depth": 4})
    assert again.rebuilt is False
    assert again.build_dir == fifo_build.build_dir
    assert again.executable.is_file()
    assert "module infra_fifo(" in fifo_build.verilog.read_text()


def test_build_errors(tmp_path):
    with pytest.raises(ValueError, match="name"):
        build_component(InfraFIFO, name="not a name", build_dir=tmp_path)
    with pytest.raises(TypeError, match="Component"):
        build_component(lambda: 3, name="x", build_dir=tmp_path)
    with pytest.raises(TypeError):
        build_component(42, name="x", build_dir=tmp_path)


@pytest.mark.parametrize("seed,idle,bp", [(1, 0.0, 0.0), (2, 0.3, 0.3), (3, 0.6, 0.1), (4, 0.1, 0.7)])
def test_fifo_roundtrip(fifo_build, seed, idle, bp):
    xml = run_cocotb(fifo_build, test_module=TB, seed=seed, testcase="fifo_roundtrip",
                     tb_params={"n": 300, "idle": idle, "backpressure": bp})
    assert xml.is_file()
    assert "fifo_roundtrip" in xml.read_text()


def test_all_tests_of_module_and_file_path(fifo_build, tmp_path):
    path = Path(__file__).with_name("tb_infra_fifo.py")  # imported by its file name, folder on sys.path
    xml = run_cocotb(fifo_build, test_module=str(path), seed=7, test_dir=tmp_path / "run",
                     tb_params={"n": 50})
    text = xml.read_text()
    assert xml.parent == tmp_path / "run"
    assert "fifo_roundtrip" in text and "fifo_reset_idle" in text


def test_test_module_by_file_path_inside_and_outside_the_package():
    """A testbench file of binaccel.sim is imported by its package name; one elsewhere (the test
    benches under tests/sim/) by its file name, with its folder on sys.path."""
    inside = Path(runner.__file__).resolve().with_name("tb_engine.py")
    assert runner._resolve_test_module(str(inside)) == ("binaccel.sim.tb_engine", None)
    outside = Path(__file__).resolve().with_name("tb_infra_fifo.py")
    assert runner._resolve_test_module(str(outside)) == ("tb_infra_fifo", outside.parent)
    assert runner._resolve_test_module(TB) == (TB, None)


def test_monitor_protocol_check(fifo_build):
    # the two violation tests pass only if the monitor raises StreamProtocolError (expect_error)
    run_cocotb(fifo_build, test_module=TB, seed=1,
               testcase=["monitor_detects_payload_change", "monitor_detects_valid_drop",
                         "monitor_accepts_held_offer"])


def test_wrong_expectation_fails(fifo_build):
    with pytest.raises(CocotbFailure) as e:
        run_cocotb(fifo_build, test_module=TB, seed=1, testcase="fifo_roundtrip",
                   tb_params={"n": 20, "expect_offset": 1})
    assert e.value.failed == ["tests.sim.tb_infra_fifo.fifo_roundtrip"]
    assert "fifo_roundtrip" in str(e.value) and "FIFO output differs" in str(e.value)


def test_no_test_ran_fails(fifo_build):
    with pytest.raises(CocotbFailure, match="no cocotb test ran"):
        run_cocotb(fifo_build, test_module=TB, seed=1, testcase="no_such_test")


def test_missing_module_fails(fifo_build):
    with pytest.raises(ModuleNotFoundError):
        run_cocotb(fifo_build, test_module="binaccel.sim.tb_does_not_exist", seed=1)


def test_verilator_error_raises(tmp_path):
    # a design Verilator rejects: build errors come back as BuildError with the log
    bad = InfraAdder(width=4)
    d = tmp_path / "b"
    d.mkdir()
    with pytest.raises(BuildError, match="failed"):
        build_component(bad, name="bad_adder", build_dir=d, build_args=["--no-such-verilator-option"])


# ------------------------------------------------------------------ lint


def test_lint_amaranth_designs_clean():
    lint_component(InfraFIFO(depth=4), name="infra_fifo")
    lint_component(InfraAdder(width=8), name="infra_adder")


class _UnusedPort(wiring.Component):
    a: In(8)
    b: In(8)
    y: Out(8)

    def elaborate(self, platform):
        m = Module()
        m.d.comb += self.y.eq(self.a)
        return m


def test_lint_component_still_reports_unused_ports(tmp_path):
    with pytest.raises(LintError) as e:
        lint_component(_UnusedPort(), name="unused_port", out_dir=tmp_path)
    assert e.value.codes == {"UNUSEDSIGNAL"}
    assert len(e.value.warnings) == 1 and "'b'" in e.value.warnings[0]
    lint_component(_UnusedPort(), name="unused_port", out_dir=tmp_path,
                   extra_waivers={"UNUSEDSIGNAL:'b'": "test: port b unused on purpose"})


BAD_VERILOG = """\
module bad(input clk, input [7:0] a, output [3:0] y);
  wire [7:0] unused_wire;
  assign y = a;
endmodule
"""


def test_lint_bad_snippet_raises(tmp_path):
    p = tmp_path / "bad.v"
    p.write_text(BAD_VERILOG)
    with pytest.raises(LintError) as e:
        lint_verilog(p)
    msg = str(e.value)
    assert "WIDTHTRUNC" in msg and "UNUSED" in msg
    assert e.value.codes >= {"WIDTHTRUNC"}


def test_lint_waivers(tmp_path):
    p = tmp_path / "bad.v"
    p.write_text(BAD_VERILOG)
    with pytest.raises(LintError) as e:  # waiving only one rule leaves the others
        lint_verilog(p, waivers={"WIDTHTRUNC": "test: truncation on purpose"})
    assert "WIDTHTRUNC" not in e.value.codes
    lint_verilog(p, waivers={"WIDTHTRUNC": "test: truncation on purpose",
                             "UNUSED*": "test: unused inputs on purpose"})
    with pytest.raises(ValueError, match="reason"):
        lint_verilog(p, waivers={"WIDTHTRUNC": "  "})
    with pytest.raises(ValueError, match="waiver"):
        lint_verilog(p, waivers={"NOT A CODE": "x"})


def test_lint_syntax_error(tmp_path):
    p = tmp_path / "broken.v"
    p.write_text("module broken(input a; endmodule\n")
    with pytest.raises(LintError, match="broken.v"):
        lint_verilog(p)
    with pytest.raises(FileNotFoundError):
        lint_verilog(tmp_path / "missing.v")
