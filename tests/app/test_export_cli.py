"""``binaccel export --format qonnx``: the QONNX graph of a model file or checkpoint, exact against intref."""

import numpy as np
import pytest

from binaccel.cli import main
from binaccel.sw import intref, modelfile
from binaccel.sw.qonnx_export import bits_of_output, execute, layer_outputs
from binaccel.sw.randmodel import random_model


@pytest.mark.parametrize("mode", ["plain", "mcn", "mcn1"])
def test_export_model_file_to_qonnx(tmp_path, capsys, mode):
    rng = np.random.default_rng(7)
    model = random_model(rng, mode=mode, planes=1 if mode == "plain" else 2)
    src = tmp_path / "m.bnm"
    modelfile.save(model, src)
    before = src.read_bytes()
    assert main(["export", "--model-file", str(src), "--format", "qonnx", "--batch", "3"]) is None
    out = tmp_path / "m.onnx"
    assert out.is_file() and src.read_bytes() == before
    assert f"wrote {out} (qonnx)" in capsys.readouterr().out
    images = rng.integers(0, 256, size=(5, *model.input_shape)).astype(np.uint8)
    ctx = execute(out, images)
    refs = intref.run_model(model, images)
    for layer, name, ref in zip(model.layers, layer_outputs(model), refs):
        got = bits_of_output(layer, ctx[name])
        assert got.shape == ref.reshape(got.shape).shape
        assert np.array_equal(got, ref.reshape(got.shape)), layer.name


def test_export_checkpoint_to_qonnx(tmp_path):
    out = tmp_path / "m"
    main(["train", "--model", "siman", "--data", "digits", "--epochs", "1", "--out", str(out), "--no-progress"])
    main(["export", "--checkpoint", str(out / "siman.pt"), "--data", "digits"])
    main(["export", "--checkpoint", str(out / "siman.pt"), "--data", "digits", "--format", "qonnx",
          "--out", str(out / "g.onnx")])
    model = modelfile.load(out / "siman.bnm")
    images = np.random.default_rng(0).integers(0, 256, size=(4, *model.input_shape)).astype(np.uint8)
    logits = execute(out / "g.onnx", images, full=False)["logits"]
    assert np.array_equal(np.asarray(logits).reshape(4, -1), intref.predict(model, images))


def test_export_refusals(tmp_path, capsys):
    src = tmp_path / "m.bnm"
    modelfile.save(random_model(np.random.default_rng(0)), src)
    before = src.read_bytes()
    assert main(["export", "--model-file", str(src)]) == 2
    assert capsys.readouterr().err == f"binaccel: error: {src}: a model file is already the bnm format; expected --format qonnx\n"
    assert main(["export", "--model-file", str(src), "--format", "qonnx", "--out", str(src)]) == 2
    assert capsys.readouterr().err == f"binaccel: error: {src}: the output would overwrite the input\n"
    capsys.readouterr()
    with pytest.raises(SystemExit) as e:
        main(["export", "--model-file", str(src), "--format", "qonnx", "--batch", "0"])
    assert e.value.code == 2
    assert "--batch: expected an integer of at least 1, got '0'" in capsys.readouterr().err
    assert src.read_bytes() == before
    assert main(["export", "--model-file", str(tmp_path / "none.bnm"), "--format", "qonnx"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"binaccel: error: {tmp_path / 'none.bnm'}: No such file or directory"]
    assert not (tmp_path / "none.onnx").exists()
