"""pipeline.check_qonnx: the demo's QONNX check compares every layer image by image, and can fail."""

import numpy as np
import onnx
from onnx import numpy_helper

from binaccel.sw import pipeline
from binaccel.sw.randmodel import random_model


def test_check_qonnx_counts_exact_images(tmp_path):
    rng = np.random.default_rng(3)
    im = random_model(rng, mode="mcn", planes=2)
    images = rng.integers(0, 256, size=(60, *im.input_shape)).astype(np.uint8)
    r = pipeline.check_qonnx(im, str(tmp_path / "m.onnx"), images, batch=25)
    assert (r["checked"], r["matched"]) == (60, 60) and r["predictions_equal"]
    assert r["layers"] == {layer.name: 0 for layer in im.layers}
    assert (tmp_path / "m.onnx").is_file()


def test_check_qonnx_sees_a_wrong_graph(tmp_path, monkeypatch):
    """A graph whose first layer's thresholds are shifted must not be counted as exact."""
    rng = np.random.default_rng(4)
    im = random_model(rng)
    images = rng.integers(0, 256, size=(40, *im.input_shape)).astype(np.uint8)
    real_save = pipeline.save_qonnx

    def corrupt_save(model, path, **kw):
        real_save(model, path, **kw)
        proto = onnx.load(path)
        for init in proto.graph.initializer:
            if "thresh" in init.name:
                a = numpy_helper.to_array(init).copy()
                a += 7
                init.CopyFrom(numpy_helper.from_array(a, init.name))
                break
        else:
            raise AssertionError("no threshold initializer in the graph")
        onnx.save(proto, path)

    monkeypatch.setattr(pipeline, "save_qonnx", corrupt_save)
    r = pipeline.check_qonnx(im, str(tmp_path / "bad.onnx"), images)
    assert r["matched"] < r["checked"] and r["layers"][im.layers[0].name] > 0
