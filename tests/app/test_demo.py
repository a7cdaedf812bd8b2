"""``binaccel demo`` end to end on a small scale: two models, one epoch, a few accelerator images,
every transport. Checks the machine-readable summary the issues name (summary.json) and the report.
The full-length demo is the README's first command (its figures are in the issues' closing notes)."""

import json

import pytest

from binaccel.demo import run_demo

# trains two models and builds the accelerator for every transport (cocotb, fast, uart: ~3 min
# cold), beyond the default tier's one build per design
pytestmark = pytest.mark.sim


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    out = tmp_path_factory.mktemp("demo")
    run_demo(out_dir=str(out), epochs=1, models=("siman", "mcn1"), progress=False, accel_images=4, bench=False,
             log=lambda *a: None)
    return out, json.loads((out / "summary.json").read_text())


def test_summary_models(demo):
    _, s = demo
    for name in ("siman", "mcn1"):
        m = s["models"][name]
        assert 0.0 <= m["test_accuracy"] <= 1.0 and m["weight_bits"] > 0
        assert m["export_exact"] == {"checked": 1000, "matched": 1000}
        a = m["accelerator"]
        assert a["checked"] == 4 and a["matched"] == 4
        assert 0.0 <= a["test_accuracy"] <= 1.0 and a["cycles_per_image"] > 0 and 0.0 < a["utilisation"] <= 1.0


def test_summary_sim_speed_every_transport(demo):
    _, s = demo
    assert set(s["sim_speed"]) == {"fast", "cocotb", "uart"}
    for t, v in s["sim_speed"].items():
        assert v["cycles_per_s"] > 0 and v["images_per_s"] > 0, t
    for t, r in s["accelerator_transports"].items():
        assert r["matched"] == r["checked"] > 0, t


def test_report(demo):
    out, _ = demo
    text = (out / "report.md").read_text()
    assert "| siman |" in text and "| mcn1 |" in text and "| uart |" in text
