"""Verilator coverage builds and their report (``binaccel.sim.coverage``).

The default test builds one tiny design (``tests/sim/coverage_designs.py: CovCounter``) with
coverage, runs its testbench twice (two files merged) and checks the report: sane fractions, the
arm the testbench never reaches listed as uncovered, the reached arms not. The quick coverage run
over the cocotb suite is ``slow``.
"""
import json

import pytest

from binaccel.sim import coverage, runner
from binaccel.sim.runner import BUILD_ARGS, build_component, run_cocotb
from tests.sim.coverage_designs import CovCounter

TB = "tests/sim/tb_coverage.py"


@pytest.fixture(scope="module")
def cov_build():
    return build_component(CovCounter, name="cov_counter", build_args=BUILD_ARGS, coverage=True)


def _line_of(verilog_text: str, needle: str) -> int:
    return next(i for i, t in enumerate(verilog_text.splitlines(), 1) if needle in t)


def test_coverage_build_has_its_own_folder(cov_build):
    assert cov_build.coverage and cov_build.build_dir.name.endswith("-cov")
    assert runner.cov_dir(cov_build.build_dir) == cov_build.build_dir
    plain = runner.default_build_dir("cov_counter", {})
    assert runner.cov_dir(plain).name == plain.name + "-cov"
    stamp = json.loads((cov_build.build_dir / "binaccel_build.json").read_text())
    assert stamp["coverage"] is True and "--coverage-line" in stamp["build_args"]
    with pytest.raises(ValueError, match="verilator"):
        build_component(CovCounter, name="cov_counter", coverage=True, sim="icarus")


def test_runs_are_merged_and_the_unreached_arm_is_uncovered(cov_build, tmp_path, monkeypatch):
    runs = tmp_path / "runs"
    monkeypatch.setenv(runner.COVERAGE_ENV, str(runs))
    for seed, n in ((0, 10), (1, 30)):
        run_cocotb(cov_build, test_module=TB, seed=seed, tb_params={"n": n}, test_dir=tmp_path / f"run{seed}")
    files = sorted(runs.glob("*.dat"))
    assert len(files) == 2 and all(f.name.startswith(cov_build.build_dir.name) for f in files)

    doc = coverage.collect(runs, tmp_path / "out")
    assert (tmp_path / "out" / "merged.dat").is_file()
    assert json.loads((tmp_path / "out" / "coverage.json").read_text())["line"] == doc["line"]
    # merged: the clock's count is the sum of the two runs'
    one = coverage.read_dat(files[0])
    merged = coverage.read_dat(tmp_path / "out" / "merged.dat")
    clk = next(k for k in merged if coverage.parse_key(k).get("o") == "clk:0->1")
    assert merged[clk] == one[clk] + coverage.read_dat(files[1])[clk]

    for key in ("line", "toggle"):
        assert 0.0 < doc[key] < 1.0
        assert 0.0 < doc["modules"]["cov_counter"][key] < 1.0
    assert doc["excluded_points"] > 0  # Yosys's time-zero `if`
    text = cov_build.verilog.read_text()
    magic_if = _line_of(text, "if (\\$1 ) begin")   # code == MAGIC, never driven
    en_arm = _line_of(text, "else if (en)")
    uncovered = {(u["module"], u["line"]) for u in doc["uncovered"]["line"]}
    assert ("cov_counter", magic_if) in uncovered
    assert ("cov_counter", en_arm) not in uncovered
    assert all(u["file"].endswith("cov_counter.v") for u in doc["uncovered"]["line"])
    # flag never rises: its toggles are uncovered; count[0] toggles
    signals = {u["signal"] for u in doc["uncovered"]["toggle"]}
    assert "flag" in signals and not any("verilog_backend" in s for s in signals)
    ann = list((tmp_path / "out" / "annotated").iterdir())
    assert len(ann) == 1
    assert ann[0].read_text().splitlines()[magic_if - 1].startswith("%000000")


def test_without_the_variable_runs_write_into_the_test_folder(cov_build, tmp_path, monkeypatch):
    monkeypatch.delenv(runner.COVERAGE_ENV, raising=False)
    run_cocotb(cov_build, test_module=TB, seed=2, test_dir=tmp_path)
    assert coverage.read_dat(tmp_path / "coverage.dat")


def test_environment_switches_builds_to_coverage(monkeypatch):
    monkeypatch.setenv(runner.COVERAGE_ENV, "1")
    assert runner.coverage_enabled()
    monkeypatch.setenv(runner.COVERAGE_ENV, "0")
    assert not runner.coverage_enabled()


def test_cli_reports_errors_in_one_line(tmp_path, capsys):
    assert coverage.main(["--out", str(tmp_path), "--report-only"]) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("coverage: error: no coverage files") and "\n" not in err


@pytest.mark.slow
def test_quick_coverage_run(tmp_path):
    assert coverage.main(["--out", str(tmp_path), "--quick"]) == 0
    doc = json.loads((tmp_path / "coverage.json").read_text())
    assert doc["runs"] >= 2 and 0.5 < doc["line"] <= 1.0 and 0.0 < doc["toggle"] <= 1.0
    assert any(name.startswith("dpaccel") for name in doc["modules"])
