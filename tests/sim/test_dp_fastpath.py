"""The pipelined accelerator on Verilator (fast path): every MNIST test image's logits equal the
integer reference, and the hardware's cycle counters are what the record reports."""

import json

from binaccel.sim import dp
from binaccel.sw import zoo
from binaccel.sw.data import load_mnist


def test_siman_mnist_exact_on_verilator(tmp_path):
    model = zoo.untrained_model("siman")
    images = load_mnist().x_test[:64]
    run = dp.run_model(model, images, chunk=32)
    assert run.matched == len(images)
    rec = run.record
    assert rec["exact"] == {"checked": 64, "matched": 64}
    assert len(rec["layers"]) == 4 and all(x["cycles"] > x["ideal_cycles"] > 0 for x in rec["layers"])
    # one image's count covers its layers (and the image load and reply)
    assert rec["cycles_per_image"] >= sum(x["cycles"] for x in rec["layers"])


def test_command_writes_record(tmp_path, capsys):
    out = tmp_path / "rec.json"
    assert dp.main(["--zoo", "sign", "--images", "8", "--out", str(out)]) == 0
    rec = json.loads(out.read_text())
    assert rec["model"].startswith("sign") and rec["exact"]["matched"] == 8


def test_command_refuses_bad_input(capsys):
    assert dp.main(["--zoo", "mcn", "--images", "1"]) == 2
    err = capsys.readouterr().err
    assert "mode 'mcn'" in err and "\n" == err[-1] and err.count("\n") == 1
