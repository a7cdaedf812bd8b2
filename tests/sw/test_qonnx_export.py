"""IntModel -> QONNX: qonnx's execute_onnx on the exported graph equals intref, whole integer tensors,
every layer, on every model kind binaccel trains (randomised in the test) and on random IntModels."""

import numpy as np
import onnx
import pytest
import torch

from binaccel.sw import intref, randmodel
from binaccel.sw.data import load_mnist
from binaccel.sw.fold import fold
from binaccel.sw.models import build
from binaccel.sw.qonnx_export import (QonnxExportError, bits_of_output, execute, layer_outputs, save_qonnx,
                                      to_qonnx)
from binaccel.sw.zoo import MODELS, configs


def randomized(name, seed, input_shape):
    """An untrained model of a named kind with random BN statistics (some flipped thresholds)."""
    net, _ = configs(name, input_shape=input_shape)
    torch.manual_seed(seed)
    model = build(net)
    model.train()
    model(torch.rand(16, *net.input_shape).repeat_interleave(net.input_repeat, dim=1))
    g = torch.Generator().manual_seed(seed)
    for bn in list(model.bns) + [model.fc_bn]:
        n = bn.num_features
        bn.running_mean.copy_(torch.randn(n, generator=g) * 2)
        bn.running_var.copy_(torch.rand(n, generator=g) * 3 + 0.1)
        with torch.no_grad():
            bn.weight.copy_(torch.randn(n, generator=g))
            bn.bias.copy_(torch.randn(n, generator=g))
    model.eval()
    return model


def assert_graph_equals_intref(im, images, proto=None):
    ctx = execute(proto if proto is not None else to_qonnx(im), images)
    ref = intref.run_model(im, images)
    for layer, name, r in zip(im.layers, layer_outputs(im), ref):
        got = bits_of_output(layer, ctx[name])
        assert got.size == r.size, f"{im.name} {layer.name}: shape {got.shape} != {r.shape}"
        assert np.array_equal(got.reshape(r.shape), r), f"{im.name} {layer.name}: QONNX != intref"
        assert np.array_equal(ctx[name].astype(np.int64), ctx[name]), f"{layer.name}: non-integer value"


@pytest.fixture(scope="module")
def mnist():
    return load_mnist()


@pytest.mark.parametrize("name", list(MODELS))
def test_every_model_kind_exact_on_1000_test_images(name, mnist, tmp_path):
    images = mnist.x_test
    assert len(images) == 1000
    model = randomized(name, 0, mnist.input_shape)
    im = fold(model, name=name, calib=images[:100])
    path = tmp_path / f"{name}.onnx"
    save_qonnx(im, path)
    assert_graph_equals_intref(im, images, onnx.load(str(path)))


@pytest.mark.parametrize("mode,planes", [("plain", 1), ("mcn", 2), ("mcn1", 3)])
@pytest.mark.parametrize("seed", [0, 1])
def test_random_intmodels_with_requant_and_int8(mode, planes, seed):
    rng = np.random.default_rng(seed)
    k = planes
    layers = [
        randmodel.random_layer(rng, name="c1", mode=mode, planes=planes, in_ch=k, in_h=12, in_w=12, out_ch=4 * k,
                               in_bits=8, pool=2, out_kind="requant", out_bits=4),
        randmodel.random_layer(rng, name="c2", mode=mode, planes=planes, in_ch=4 * k, in_h=6, in_w=6, out_ch=4 * k,
                               in_bits=4, stride=2),
        randmodel.random_layer(rng, name="f1", kind="fc", in_ch=4 * k, in_h=3, in_w=3, out_ch=12),
        randmodel.random_layer(rng, name="f2", kind="fc", in_ch=12, in_h=1, in_w=1, out_ch=10, out_kind="logits"),
    ]
    if mode == "plain":  # int8 weights on the first layer (the fp model's path)
        layers[0] = randmodel.random_layer(rng, name="c1", in_ch=1, in_h=12, in_w=12, out_ch=4, in_bits=8, w_bits=8,
                                           pool=2, out_kind="requant", out_bits=4)
    layers[0].mul[0] = 0  # a constant channel
    layers[0].mul[1] = -abs(int(layers[0].mul[1])) - 1  # a decreasing one
    im = randmodel.IntModel(name=f"r-{mode}", input_shape=(1, 12, 12), layers=layers, input_repeat=k)
    im.validate()
    x = rng.integers(0, 256, size=(200, 1, 12, 12)).astype(np.uint8)
    assert_graph_equals_intref(im, x)


def test_graph_contract():
    im = randmodel.random_model(np.random.default_rng(3), mode="mcn", planes=4)
    proto = to_qonnx(im, batch=5)
    assert proto.graph.input[0].name == "pixels"
    dims = [d.dim_value for d in proto.graph.input[0].type.tensor_type.shape.dim]
    assert dims == [5, 1, 12, 12]
    assert [n.op_type for n in proto.graph.node][0] == "Gather"  # K-fold repeat inside the graph
    ops = {n.op_type for n in proto.graph.node}
    assert {"BipolarQuant", "MultiThreshold", "Conv", "Gemm", "MaxPool", "Mul"} <= ops
    meta = {p.key: p.value for p in proto.metadata_props}
    assert meta["binaccel.input_repeat"] == "4"


def test_refusals_name_the_layer():
    im = randmodel.random_model(np.random.default_rng(0))
    im.layers[1].mode = "residual"
    with pytest.raises(ValueError):  # an IntModel that does not validate
        to_qonnx(im)
    im = randmodel.random_model(np.random.default_rng(0), mode="mcn", planes=2)
    im.layers[0].mfilter[:] = 0
    im.layers[0].m_bits = 16
    im.layers[0].mfilter[0, 0, 0] = (1 << 16) - 1
    im.layers[0].in_ch = 2
    with pytest.raises(QonnxExportError, match="layer conv1: an accumulator bound .* not supported yet"):
        to_qonnx(im)
