"""QONNX -> IntModel: the imported model's intref outputs equal qonnx's execute_onnx of the graph,
whole integer tensors, every layer: binaccel's own exported graphs (round trip) and Brevitas's
bnn_pynq examples (tfc/sfc/lfc/cnv 1w1a, random weights and random BatchNorm statistics)."""

import copy
import warnings

import numpy as np
import onnx
import pytest
import torch
from onnx import helper, numpy_helper

from qonnx.core.modelwrapper import ModelWrapper
from qonnx.core.onnx_exec import execute_onnx
from qonnx.transformation.change_batchsize import ChangeBatchSize
from qonnx.transformation.infer_shapes import InferShapes

from binaccel.cli import main
from binaccel.sw import intref, modelfile, randmodel
from binaccel.sw.data import load_mnist
from binaccel.sw.intmodel import IntModel
from binaccel.sw.fold import fold
from binaccel.sw.qonnx_export import save_qonnx, to_qonnx, with_batch
from binaccel.sw.zoo import MODELS
from tests.sw.test_qonnx_export import randomized
from binaccel.sw.qonnx_import import QonnxImportError, graph_input, import_qonnx

SHAPES = {"tfc_1w1a": (1, 28, 28), "sfc_1w1a": (1, 28, 28), "lfc_1w1a": (1, 28, 28), "cnv_1w1a": (3, 32, 32),
          "tfc_1w2a": (1, 28, 28)}


def brevitas_onnx(name, path, seed=0):
    """A bnn_pynq model with random weights and random BN/TensorNorm statistics, exported to QONNX."""
    from brevitas.export import export_qonnx
    from brevitas_examples.bnn_pynq.models import model_with_cfg

    torch.manual_seed(seed)
    model, _ = model_with_cfg(name, pretrained=False)
    g = torch.Generator().manual_seed(seed)
    fan = None
    with torch.no_grad():
        for mod in model.modules():
            if hasattr(mod, "weight") and isinstance(mod, (torch.nn.Linear, torch.nn.Conv2d)):
                fan = mod.weight[0].numel()
            if isinstance(mod, (torch.nn.BatchNorm1d, torch.nn.BatchNorm2d)):
                n, r = mod.num_features, float(np.sqrt(fan))
                mod.running_mean.copy_((torch.rand(n, generator=g) * 2 - 1) * r)
                mod.running_var.copy_(fan * (torch.rand(n, generator=g) + 0.5))
                mod.weight.copy_(torch.rand(n, generator=g) * 2 - 1)  # negative: flipped comparisons
                mod.bias.copy_((torch.rand(n, generator=g) - 0.5) * 0.5)
            if type(mod).__name__ == "TensorNorm":
                mod.running_mean.fill_(0.3)
                mod.running_var.fill_(2.0)
                mod.weight.fill_(0.7)
                mod.bias.fill_(0.1)
    model.eval()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        export_qonnx(model, torch.randn(1, *SHAPES[name]), str(path))
    return path


@pytest.fixture(scope="module")
def bnn(tmp_path_factory):
    cache = {}

    def get(name):
        if name not in cache:
            cache[name] = brevitas_onnx(name, tmp_path_factory.mktemp("bnn") / f"{name}.onnx")
        return cache[name]
    return get


def graph_context(path_or_proto, images, input_scale):
    """Every tensor of qonnx's execute_onnx of the graph (batch size changed to len(images))."""
    proto = path_or_proto if isinstance(path_or_proto, onnx.ModelProto) else onnx.load(str(path_or_proto))
    if any(m.key == "binaccel.input" for m in proto.metadata_props):
        w = with_batch(proto, len(images))  # its reshapes keep the batch (0); weight reshapes must stay
    else:
        w = ModelWrapper(copy.deepcopy(proto)).transform(ChangeBatchSize(len(images))).transform(InferShapes())
    name = [i.name for i in w.graph.input if w.get_initializer(i.name) is None][0]
    return execute_onnx(w, {name: graph_input(images, input_scale)}, return_full_exec_context=True)


def assert_layers_equal(im: IntModel, source, images, batch=250):
    """intref of the imported model == the graph's tensors (scale/bias of meta["qonnx.layer_tensors"])."""
    tensors = im.meta["qonnx.layer_tensors"]
    assert len(tensors) == len(im.layers)
    every = [[] for _ in im.layers]
    for s in range(0, len(images), batch):
        x = images[s:s + batch]
        ctx = graph_context(source, x, im.meta["qonnx.input_scale"])
        ours = intref.run_model(im, x)
        for layer, (name, scale, bias), o in zip(im.layers, tensors, ours):
            g = (ctx[name].astype(np.float64) - bias) / scale
            assert g.size == o.size, layer.name
            assert np.array_equal(g.reshape(o.shape), o), f"layer {layer.name} (tensor {name})"
        for e, o in zip(every, ours):
            e.append(o)
    return [np.concatenate(e) for e in every]


# -- binaccel's own graphs: round trip -----------------------------------------------------------------

@pytest.mark.parametrize("mode,planes", [("plain", 1), ("mcn", 2), ("mcn1", 3)])
def test_roundtrip_own_export(mode, planes, tmp_path):
    rng = np.random.default_rng(planes)
    model = randmodel.random_model(rng, mode=mode, planes=planes)
    path = tmp_path / "m.onnx"
    onnx.save(to_qonnx(model), str(path))
    im = import_qonnx(path)
    assert im.input_repeat == model.input_repeat and im.input_shape == model.input_shape
    assert [(l.kind, l.mode, l.w_bits, l.in_bits, l.pool, l.out_kind) for l in im.layers] == \
           [(l.kind, l.mode, l.w_bits, l.in_bits, l.pool, l.out_kind) for l in model.layers]
    for a, b in zip(im.layers, model.layers):
        assert np.array_equal(a.weights, b.weights)
        if a.mode != "plain":
            assert np.array_equal(a.mfilter, b.mfilter)
    assert im.layers[-1].shift == model.layers[-1].shift
    images = rng.integers(0, 256, size=(200, 1, 12, 12)).astype(np.uint8)
    ref = intref.run_model(model, images)
    ours = assert_layers_equal(im, path, images)
    assert all(np.array_equal(a, b) for a, b in zip(ref, ours))
    # thresholds exactly at the boundaries: adversarial inputs for conv2 / fc straight from bits
    for i in (1, 2):
        x = randmodel.random_input(rng, model.layers[i], 500)
        assert np.array_equal(intref.run_layer(im.layers[i], x), intref.run_layer(model.layers[i], x))
    # the file survives modelfile (meta is JSON-safe)
    modelfile.save(im, tmp_path / "m.bnm")
    back = modelfile.load(tmp_path / "m.bnm")
    assert all(np.array_equal(a, b) for a, b in zip(intref.run_model(back, images), ref))


@pytest.mark.parametrize("name", list(MODELS))
def test_roundtrip_every_model_kind(name, tmp_path):
    """Every model kind binaccel trains (random BN statistics), folded and exported to QONNX, imports to
    a model equal layer for layer on 200 MNIST test images (int8 weights, requant, MCN, float64 fc)."""
    images = load_mnist().x_test[:200]
    model = fold(randomized(name, 0, (1, 28, 28)), name=name, calib=images[:100])
    path = tmp_path / f"{name}.onnx"
    save_qonnx(model, path)
    im = import_qonnx(path)
    assert [(l.kind, l.mode, l.w_bits, l.in_bits, l.out_kind, l.pool) for l in im.layers] == \
           [(l.kind, l.mode, l.w_bits, l.in_bits, l.out_kind, l.pool) for l in model.layers]
    ours = assert_layers_equal(im, path, images)
    assert all(np.array_equal(a, b) for a, b in zip(ours, intref.run_model(model, images)))


# -- Brevitas bnn_pynq ----------------------------------------------------------------------------------

@pytest.mark.parametrize("name", ["tfc_1w1a", "sfc_1w1a", "lfc_1w1a"])
def test_brevitas_fc_random_images(bnn, name):
    path = bnn(name)
    im = import_qonnx(path)
    assert [l.name for l in im.layers] == ["input_quant", "fc1", "fc2", "fc3", "fc4"]
    q = im.layers[0]
    assert (q.out_kind, int(q.thresh[0]), int(q.flip[0])) == ("sign", 128, 0)  # 2*p/255 - 1 >= 0
    assert any(l.flip.any() for l in im.layers[1:4])  # negative BN scales: reversed comparisons
    images = np.random.default_rng(1).integers(0, 256, size=(200, 1, 28, 28)).astype(np.uint8)
    assert_layers_equal(im, path, images)


def test_brevitas_cnv_random_images(bnn):
    path = bnn("cnv_1w1a")
    im = import_qonnx(path)
    q = im.layers[0]
    # the 8-bit Q1.7 input quantizer as a requant layer: its code + 128 for every pixel value
    assert (q.out_kind, q.out_bits) == ("requant", 8)
    assert [l.pool for l in im.layers] == [1, 1, 2, 1, 2, 1, 1, 1, 1, 1]
    images = np.random.default_rng(2).integers(0, 256, size=(200, 3, 32, 32)).astype(np.uint8)
    assert_layers_equal(im, path, images, batch=100)


def test_brevitas_after_qonnx_cleanup_and_matmul(bnn, tmp_path):
    """qonnx's own cleanup passes (cleanup_model, BatchNormToAffine, FoldConstants, GiveUniqueNodeNames)
    and Gemm rewritten as Transpose + MatMul: the same integer model, equal to the new graph."""
    from qonnx.transformation.batchnorm_to_affine import BatchNormToAffine
    from qonnx.transformation.fold_constants import FoldConstants
    from qonnx.transformation.general import GiveUniqueNodeNames
    from qonnx.util.cleanup import cleanup_model

    path = bnn("tfc_1w1a")
    w = cleanup_model(ModelWrapper(str(path)))
    for t in (BatchNormToAffine(), FoldConstants(), GiveUniqueNodeNames(), InferShapes()):
        w = w.transform(t)
    proto = w.model
    assert "BatchNormalization" not in [n.op_type for n in proto.graph.node]
    for k, n in enumerate([n for n in proto.graph.node if n.op_type == "Gemm"]):
        wt = f"w_t{k}"
        proto.graph.node.insert(list(proto.graph.node).index(n),
                                helper.make_node("Transpose", [n.input[1]], [wt], name=f"transpose{k}", perm=[1, 0]))
        mm = helper.make_node("MatMul", [n.input[0], wt], list(n.output), name=f"matmul{k}")
        proto.graph.node.insert(list(proto.graph.node).index(n), mm)
        proto.graph.node.remove(n)
    assert [n.op_type for n in proto.graph.node].count("MatMul") == 4
    clean = tmp_path / "tfc_clean.onnx"
    onnx.save(proto, str(clean))
    im = import_qonnx(clean)
    ref = import_qonnx(path)
    images = np.random.default_rng(5).integers(0, 256, size=(200, 1, 28, 28)).astype(np.uint8)
    ours = assert_layers_equal(im, clean, images)
    assert all(np.array_equal(a, b) for a, b in zip(ours, intref.run_model(ref, images)))


def test_tfc_mnist_and_near_threshold(bnn):
    path = bnn("tfc_1w1a")
    im = import_qonnx(path)
    x = load_mnist().x_test[:1000]
    assert len(x) == 1000
    assert_layers_equal(im, path, x)
    logits = intref.predict(im, x[:200])
    graph_out = graph_context(path, x[:200], im.meta["qonnx.input_scale"])[im.meta["qonnx.output"]]
    scale, bias = im.meta["qonnx.logit_affine"]
    # the graph's output is the recorded affine of the integer logits (float32 rounding only)
    np.testing.assert_allclose(graph_out, scale * logits + bias, rtol=1e-5, atol=1e-5)
    assert np.array_equal(graph_out.argmax(1), logits.argmax(1))
    # pixels at the binarisation threshold of the input (127 / 128) mixed with extremes
    rng = np.random.default_rng(3)
    near = rng.choice(np.array([0, 126, 127, 128, 129, 255], dtype=np.uint8), size=(1000, 1, 28, 28))
    assert_layers_equal(im, path, near)


@pytest.mark.parametrize("name", ["tfc_1w1a", "sfc_1w1a"])
def test_hidden_layers_at_their_thresholds(bnn, name):
    """Layer inputs built so that one channel's accumulator is its threshold +-3: the graph (executed from
    the layer's input tensor to its output tensor) and intref agree for 2,000 such inputs."""
    path = bnn(name)
    im = import_qonnx(path)
    rng = np.random.default_rng(4)
    base = onnx.load(str(path))
    tensors = im.meta["qonnx.layer_tensors"]
    for li in (1, 2, 3):
        layer = im.layers[li]
        n, fan = 700 if li < 3 else 600, layer.fan_in
        w = np.asarray(layer.weights, dtype=np.int64)
        xs = []
        for _ in range(n):
            o = rng.integers(layer.out_ch)
            target = int(layer.thresh[o]) + int(rng.integers(-3, 4))
            if (fan - target) % 2:
                target += 1
            flips = min(max((fan - target) // 2, 0), fan)
            bits = (w[o] > 0).astype(np.int64)
            idx = rng.choice(fan, size=flips, replace=False)
            bits[idx] ^= 1
            xs.append(bits)
        x = np.stack(xs)
        acc = intref.accumulate(layer, x.reshape(n, layer.in_ch, layer.in_h, layer.in_w))
        assert np.sum(np.abs(acc[:, :, 0, 0] - layer.thresh[None]) <= 3) >= n
        src, s_in, b_in = tensors[li - 1]
        dst, s_out, b_out = tensors[li]
        feed = (s_in * x + b_in).astype(np.float32)
        got = (subgraph_run(base, src, dst, feed).astype(np.float64) - b_out) / s_out
        ref = intref.run_layer(layer, x.reshape(n, layer.in_ch, layer.in_h, layer.in_w))
        assert np.array_equal(got.reshape(ref.shape), ref), layer.name


def subgraph_run(proto, src, dst, feed):
    """execute_onnx of the part of the graph from tensor ``src`` (fed) to tensor ``dst``."""
    nodes = list(proto.graph.node)
    producer = {o: nd for nd in nodes for o in nd.output}

    def ancestors(t, stop):
        seen, todo = set(), [t]
        while todo:
            nd = producer.get(todo.pop())
            if nd is None or id(nd) in seen or (stop is not None and src in nd.output):
                continue
            seen.add(id(nd))
            todo.extend(nd.input)
        return seen
    keep = ancestors(dst, src) - ancestors(src, None)
    inits = {i.name for i in proto.graph.initializer}
    sub = helper.make_graph([nd for nd in nodes if id(nd) in keep], "sub",
                            [helper.make_tensor_value_info(src, onnx.TensorProto.FLOAT, list(feed.shape))],
                            [helper.make_tensor_value_info(dst, onnx.TensorProto.FLOAT, None)],
                            [i for i in proto.graph.initializer if i.name in inits])
    w = ModelWrapper(helper.make_model(sub, opset_imports=proto.opset_import)).transform(InferShapes())
    return execute_onnx(w, {src: feed})[dst]


# -- refusals -------------------------------------------------------------------------------------------

def _own_graph(tmp_path, mutate, name="bad.onnx"):
    model = randmodel.random_model(np.random.default_rng(0))
    proto = to_qonnx(model)
    mutate(proto)
    path = tmp_path / name
    onnx.save(proto, str(path))
    return path


def _node(proto, op, k=0):
    return [n for n in proto.graph.node if n.op_type == op][k]


def _refused(path, *parts):
    with pytest.raises(QonnxImportError) as e:
        import_qonnx(path)
    msg = str(e.value)
    assert msg.startswith(f"{path}: ") and "supported:" in msg, msg
    for p in parts:
        assert p in msg, msg
    return msg


def test_identity_nodes_pass_through(tmp_path):
    def m(p):
        c = _node(p, "Conv")
        out = c.output[0]
        c.output[0] = "pre_identity"
        p.graph.node.insert(list(p.graph.node).index(c) + 1, helper.make_node("Identity", ["pre_identity"], [out],
                                                                              name="ident"))
    path = _own_graph(tmp_path, m, "ident.onnx")
    im = import_qonnx(path)
    ref = randmodel.random_model(np.random.default_rng(0))
    images = np.random.default_rng(7).integers(0, 256, size=(100, 1, 12, 12)).astype(np.uint8)
    ours = assert_layers_equal(im, path, images)
    assert all(np.array_equal(a, b) for a, b in zip(ours, intref.run_model(ref, images)))


def test_refuses_unsupported_op(tmp_path):
    def m(p):
        _node(p, "Conv").op_type = "ConvTranspose"
    _refused(_own_graph(tmp_path, m), "(ConvTranspose)", "unsupported op")


def test_refuses_grouped_conv(tmp_path):
    def m(p):
        c = _node(p, "Conv", 1)
        c.attribute.append(helper.make_attribute("group", 2))
    _refused(_own_graph(tmp_path, m), "(Conv)", "group 1")


def test_refuses_bias(tmp_path):
    def m(p):
        c = _node(p, "Conv")
        p.graph.initializer.append(numpy_helper.from_array(np.zeros(4, dtype=np.float32), "bias0"))
        c.input.append("bias0")
    _refused(_own_graph(tmp_path, m), "(Conv)", "bias")


def test_refuses_branches(tmp_path):
    def m(p):
        c = _node(p, "Conv")
        p.graph.node.append(helper.make_node("Identity", [c.output[0]], ["side"], name="side"))
    _refused(_own_graph(tmp_path, m), "(Conv)", "used by 2 nodes")


def test_refuses_bad_maxpool(tmp_path):
    def m(p):
        n = _node(p, "MaxPool")
        del n.attribute[:]
        n.attribute.extend([helper.make_attribute("kernel_shape", [3, 3]), helper.make_attribute("strides", [2, 2])])
    _refused(_own_graph(tmp_path, m), "(MaxPool)", "2x2")


@pytest.mark.parametrize("bits", [2, 4, 8])
def test_roundtrip_requant_layers(bits, tmp_path):
    """Multi-bit activations (MultiThreshold with 2**bits - 1 thresholds) become requant layers again."""
    rng = np.random.default_rng(bits)
    l1 = randmodel.random_layer(rng, name="conv1", in_ch=1, in_h=8, in_w=8, out_ch=4, in_bits=8,
                                out_kind="requant", out_bits=bits, pool=2)
    l2 = randmodel.random_layer(rng, name="conv2", in_ch=4, in_h=4, in_w=4, out_ch=6, in_bits=bits,
                                out_kind="requant", out_bits=3)
    l3 = randmodel.random_layer(rng, name="fc", kind="fc", in_ch=6, in_h=4, in_w=4, out_ch=10, in_bits=3,
                                out_kind="logits")
    model = IntModel(name="mb", input_shape=(1, 8, 8), layers=[l1, l2, l3])
    path = tmp_path / "mb.onnx"
    onnx.save(to_qonnx(model), str(path))
    im = import_qonnx(path)
    assert [(l.out_kind, l.out_bits, l.in_bits) for l in im.layers[:2]] == \
           [(l.out_kind, l.out_bits, l.in_bits) for l in model.layers[:2]]
    images = rng.integers(0, 256, size=(300, 1, 8, 8)).astype(np.uint8)
    ours = assert_layers_equal(im, path, images)
    assert all(np.array_equal(a, b) for a, b in zip(ours, intref.run_model(model, images)))
    x = randmodel.random_input(rng, model.layers[1], 1000)  # every input code, not only reachable ones
    assert np.array_equal(intref.run_layer(im.layers[1], x), intref.run_layer(model.layers[1], x))


def test_refuses_brevitas_2bit_activations(bnn):
    # narrow-range 2-bit activations: 3 levels, which no 2-bit requant clamp (4 levels) reproduces
    _refused(bnn("tfc_1w2a"), "(Quant)", "3 activation levels cannot be expressed")


def test_refuses_per_class_float_logits(bnn, tmp_path):
    proto = onnx.load(str(bnn("tfc_1w1a")))
    out = proto.graph.output[0].name
    proto.graph.initializer.append(numpy_helper.from_array(np.linspace(0.5, 2, 10).astype(np.float32), "per_class"))
    proto.graph.node.append(helper.make_node("Mul", [out, "per_class"], ["scaled"], name="per_class_mul"))
    proto.graph.output[0].name = "scaled"
    path = tmp_path / "pc.onnx"
    onnx.save(proto, str(path))
    _refused(path, "per-class float affine")


def test_refuses_not_onnx(tmp_path):
    p = tmp_path / "junk.onnx"
    p.write_bytes(b"not a model")
    with pytest.raises(QonnxImportError, match="junk.onnx: not an ONNX model"):
        import_qonnx(p)


def test_input_scale_contract(bnn):
    """The input scale is part of the contract: with pixels fed unscaled (scale 1), 2*x - 1 >= 0 at x >= 1."""
    path = bnn("tfc_1w1a")
    assert int(import_qonnx(path).layers[0].thresh[0]) == 128
    im = import_qonnx(path, input_scale=1.0)
    assert int(im.layers[0].thresh[0]) == 1 and im.meta["qonnx.input_scale"] == 1.0
    images = np.random.default_rng(6).integers(0, 3, size=(100, 1, 28, 28)).astype(np.uint8)
    assert_layers_equal(im, path, images)


# -- the command ----------------------------------------------------------------------------------------

def test_cli_import(bnn, tmp_path, capsys):
    out = tmp_path / "tfc.bnm"
    assert main(["import", "--qonnx", str(bnn("tfc_1w1a")), "--out", str(out)]) is None
    assert "wrote" in capsys.readouterr().out
    im = modelfile.load(out)
    ref = import_qonnx(bnn("tfc_1w1a"))
    x = load_mnist().x_test[:50]
    assert all(np.array_equal(a, b) for a, b in zip(intref.run_model(im, x), intref.run_model(ref, x)))


def test_cli_import_errors(tmp_path, capsys):
    bad = _own_graph(tmp_path, lambda p: setattr(_node(p, "Conv"), "op_type", "ConvTranspose"))
    out = tmp_path / "bad.bnm"
    assert main(["import", "--qonnx", str(bad), "--out", str(out)]) == 2
    msg = capsys.readouterr().err
    assert msg.startswith(f"binaccel: error: {bad}: node ") and msg.count("\n") == 1
    assert "ConvTranspose" in msg and msg.count(str(bad)) == 1
    assert not out.exists()
    with pytest.raises(SystemExit) as e:
        main(["import", "--qonnx", str(bad), "--input-scale", "zero"])
    assert e.value.code == 2 and "--input-scale: expected a number such as 1 or 1/255" in capsys.readouterr().err
    assert main(["import", "--qonnx", str(tmp_path / "missing.onnx")]) == 2
    assert "missing.onnx" in capsys.readouterr().err
