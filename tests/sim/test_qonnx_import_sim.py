"""An imported QONNX model on the simulated accelerator: Brevitas's tfc_1w1a (random weights and BN
statistics), compiled by binaccel.sw.qonnx_import, runs on the fast path of the default accelerator
build (the Verilator build shared with the other default-parameter tests: ~30 s cold, seconds warm)
and its logits and every dumped layer equal intref, which equals the QONNX graph (tests/sw)."""

import numpy as np

from binaccel.hw.seq import AccelParams
from binaccel.sim import top
from binaccel.sw import intref
from binaccel.sw.data import load_mnist
from binaccel.sw.qonnx_import import import_qonnx
from tests.sw.test_qonnx_import import brevitas_onnx


def test_imported_tfc_on_the_accelerator(tmp_path):
    im = import_qonnx(brevitas_onnx("tfc_1w1a", tmp_path / "tfc_1w1a.onnx"))
    assert im.layers[0].name == "input_quant" and im.layers[0].w_bits == 1  # binary-weight engine
    images = load_mnist().x_test[:50]
    r = top.run_model(im, images, transport="fast", params=AccelParams(), dump=True, check=True)
    assert np.array_equal(r.logits, intref.predict(im, images))
