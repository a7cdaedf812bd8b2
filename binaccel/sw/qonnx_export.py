"""IntModel -> QONNX: an ONNX graph (standard ops plus qonnx's BipolarQuant, Quant, MultiThreshold)
that computes exactly what :mod:`binaccel.sw.intref` computes.

Graph contract
    * Input ``pixels``: the uint8 image values as float32, shape ``(N, C, H, W)``.
    * MCN's K-fold input repeat is inside the graph (a ``Gather`` on the channel axis: channel
      ``c*K + j`` is input channel ``c``).
    * Each layer ends in a tensor named ``<layer>_out`` (listed in :func:`layer_outputs`):
      ``sign`` layers give ``2*b - 1`` in {-1, +1} (the stored bit ``b`` is ``(t + 1) / 2``);
      ``requant`` layers give the unsigned integer itself; the last layer gives the integer
      logits ``acc * mul + add`` (``shift`` fractional bits), output ``logits``, int64, of shape
      ``(N, classes)`` (the scale multiply is done in int64: logits exceed float32's exact range).
    * Weights are float constants through ``BipolarQuant`` (binary, scale 1) or ``Quant``
      (8-bit signed, scale 1, zero point 0). MCN modulation: the binary weights ``(G, C, k, k)``
      times the M-Filter, both reshaped and broadcast with ``Mul``, reshaped to the
      ``(G*K, C, k, k)`` kernel of a standard ``Conv``.
    * Thresholds are ``MultiThreshold`` nodes on the accumulator (after a per-channel ``Mul`` by
      -1 where the comparison is reversed), requant is a ``MultiThreshold`` with ``2**bits - 1``
      integer thresholds per channel, logits are ``Mul`` and ``Add``, pooling is ``MaxPool``
      2x2 stride 2, fc layers are ``Flatten`` and ``Gemm``.

Every float32 value in the graph is an integer below 2**24 in magnitude, so float32 holds it
exactly; an fc accumulator that may exceed it (the int8 fp model's logits) is a float64 ``Gemm``;
a conv layer whose accumulator bound does not fit float32 is refused (:class:`QonnxExportError`).
"""

from __future__ import annotations

import os

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from qonnx.core.modelwrapper import ModelWrapper
from qonnx.core.onnx_exec import execute_onnx
from qonnx.transformation.infer_shapes import InferShapes

from .atomic import write_bytes_atomic
from .intmodel import IntModel, Layer

__all__ = ["QonnxExportError", "QONNX_DOMAIN", "FLOAT_EXACT", "to_qonnx", "save_qonnx", "is_binaccel_graph",
           "layer_outputs", "bits_of_output", "execute", "with_batch"]

QONNX_DOMAIN = "qonnx.custom_op.general"
FLOAT_EXACT = 1 << 24  # every integer of smaller magnitude is exact in float32
_SUPPORTED = "conv/fc layers, modes plain/mcn/mcn1, w_bits 1 or 8, out_kind sign/requant/logits, pool 1 or 2"


class QonnxExportError(ValueError):
    """A model the QONNX exporter cannot express exactly (names the layer and what is supported)."""


def layer_outputs(model: IntModel) -> list:
    """Names of the graph tensors holding each layer's output (in layer order)."""
    return [f"{layer.name}_out" for layer in model.layers[:-1]] + ["logits"]


def bits_of_output(layer: Layer, values: np.ndarray) -> np.ndarray:
    """A layer's graph output -> the intref values (``(t + 1) / 2`` for sign layers), int64."""
    v = np.asarray(values)
    if layer.out_kind == "sign":
        v = (v + 1) / 2
    return v.astype(np.int64)


class _Graph:
    def __init__(self):
        self.nodes, self.inits, self.n = [], [], 0

    def const(self, name, array, dtype=np.float32):
        self.inits.append(numpy_helper.from_array(np.asarray(array, dtype=dtype), name))
        return name

    def node(self, op, inputs, output=None, *, domain="", **attrs):
        self.n += 1
        out = output or f"t{self.n}_{op}"
        self.nodes.append(helper.make_node(op, inputs, [out], name=f"n{self.n}_{op}", domain=domain, **attrs))
        return out


def _refuse(layer: Layer, what: str):
    raise QonnxExportError(f"layer {layer.name}: {what} is not supported yet by the QONNX export "
                           f"(supported: {_SUPPORTED})")


def _weights(g: _Graph, layer: Layer) -> str:
    """The layer's conv/gemm kernel as a graph tensor (quantizer output, modulated for MCN)."""
    p = layer.name
    w = np.asarray(layer.weights)
    if layer.w_bits == 1:
        wq = g.node("BipolarQuant", [g.const(f"{p}_w", w), g.const(f"{p}_w_scale", 1.0)], domain=QONNX_DOMAIN)
    else:
        wq = g.node("Quant", [g.const(f"{p}_w", w), g.const(f"{p}_w_scale", 1.0), g.const(f"{p}_w_zeropt", 0.0),
                              g.const(f"{p}_w_bits", 8.0)], domain=QONNX_DOMAIN, signed=1, narrow=0,
                    rounding_mode="ROUND")
    if layer.mode == "plain":
        return wq
    gr, c, k, kk = layer.weight_shape
    m = np.asarray(layer.mfilter)
    m5 = m.reshape(1, layer.planes, 1, k, k) if layer.mode == "mcn" else m.reshape(1, layer.planes, 1, 1, 1)
    w5 = g.node("Reshape", [wq, g.const(f"{p}_w5", [gr, 1, c, k, kk], np.int64)])
    mod = g.node("Mul", [w5, g.const(f"{p}_mfilter", m5)])
    return g.node("Reshape", [mod, g.const(f"{p}_w4", [gr * layer.planes, c, k, kk], np.int64)])


def _requant_thresholds(layer: Layer) -> np.ndarray:
    """Thresholds ``(out_ch, 2**bits - 1)`` on ``acc`` (``-acc`` where ``mul < 0``) giving ``clamp((acc*mul+add) >> shift)``."""
    ks = np.arange(1, 1 << layer.out_bits, dtype=object)
    big = 2 * FLOAT_EXACT
    rows = []
    for mul, add in zip(layer.mul.tolist(), layer.add.tolist()):
        if mul == 0:  # constant output: thresholds below/above every accumulator
            level = min(max(add >> layer.shift, 0), (1 << layer.out_bits) - 1)
            rows.append([-big if k <= level else big for k in ks])
            continue
        # acc*mul >= k*2**shift - add
        rhs = [int(k) * (1 << layer.shift) - add for k in ks]
        if mul > 0:
            t = [-((-r) // mul) for r in rhs]  # acc >= ceil(r / mul)
        else:
            t = [-(r // mul) for r in rhs]  # acc <= floor(r / mul)  <=>  -acc >= -floor(r / mul)
        rows.append([min(max(v, -big), big) for v in t])
    return np.asarray(rows, dtype=np.float32)


def _post(g: _Graph, layer: Layer, acc: str, out: str) -> str:
    p, n = layer.name, layer.out_ch
    if layer.out_kind == "logits":  # integer arithmetic: logits may exceed float32's exact range
        if int(np.max(np.abs(layer.mul))) * layer.acc_bound() + int(np.max(np.abs(layer.add))) >= 1 << 62:
            _refuse(layer, "a logit range beyond int64")
        acc = g.node("Cast", [acc], to=TensorProto.INT64)
        y = g.node("Mul", [acc, g.const(f"{p}_mul", layer.mul.reshape(1, n), np.int64)])
        return g.node("Add", [y, g.const(f"{p}_add", layer.add.reshape(1, n), np.int64)], out)
    shape = (1, n) if layer.kind == "fc" else (1, n, 1, 1)
    if layer.out_kind == "sign":
        sign = np.where(np.asarray(layer.flip) == 1, -1, 1)
        thr = (sign * np.asarray(layer.thresh, dtype=np.int64)).reshape(n, 1)
        thr = np.clip(thr, -2 * FLOAT_EXACT, 2 * FLOAT_EXACT)
        attrs = dict(out_dtype="BIPOLAR", out_scale=2.0, out_bias=-1.0)
    else:
        sign = np.where(np.asarray(layer.mul) < 0, -1, 1)
        thr = _requant_thresholds(layer)
        attrs = dict(out_dtype=f"UINT{layer.out_bits}")
    if np.any(sign < 0):
        acc = g.node("Mul", [acc, g.const(f"{p}_dir", sign.reshape(shape))])
    pooled = layer.pool == 2
    y = g.node("MultiThreshold", [acc, g.const(f"{p}_thresh", thr)], None if pooled else out,
               domain=QONNX_DOMAIN, **attrs)
    if pooled:
        y = g.node("MaxPool", [y], out, kernel_shape=[2, 2], strides=[2, 2])
    return y


def _layer(g: _Graph, layer: Layer, x: str, out: str, last: bool) -> str:
    if layer.kind not in ("conv", "fc") or layer.mode not in ("plain", "mcn", "mcn1"):
        _refuse(layer, f"kind {layer.kind!r} mode {layer.mode!r}")
    if layer.w_bits not in (1, 8):
        _refuse(layer, f"w_bits {layer.w_bits}")
    if layer.out_kind not in ("sign", "requant", "logits") or layer.pool not in (1, 2):
        _refuse(layer, f"out_kind {layer.out_kind!r} pool {layer.pool}")
    wide = layer.acc_bound() >= FLOAT_EXACT
    if wide and (layer.kind != "fc" or layer.out_kind != "logits" or layer.acc_bound() >= 1 << 53):
        _refuse(layer, f"an accumulator bound of {layer.acc_bound()} (float32 is exact below 2**24; "
                       "only the fc logits layer is computed in float64)")
    w = _weights(g, layer)
    if layer.kind == "fc":
        flat = g.node("Flatten", [x], axis=1)
        if wide:  # float64 Gemm: exact below 2**53
            flat = g.node("Cast", [flat], to=TensorProto.DOUBLE)
            w = g.node("Cast", [w], to=TensorProto.DOUBLE)
        acc = g.node("Gemm", [flat, w], transB=1)
    else:
        pd = layer.padding
        acc = g.node("Conv", [x, w], kernel_shape=[layer.kernel, layer.kernel],
                     strides=[layer.stride, layer.stride], pads=[pd, pd, pd, pd])
    y = _post(g, layer, acc, out)
    if layer.kind == "fc" and not last:  # keep (N, C, 1, 1) between layers, as the IntModel does
        y = g.node("Reshape", [y, g.const(f"{layer.name}_nchw", [0, layer.out_ch, 1, 1], np.int64)])
    return y


def to_qonnx(model: IntModel, *, batch: int = 1, opset: int = 13) -> onnx.ModelProto:
    """The QONNX graph of ``model`` for ``batch`` images (see the module docstring for its contract).

    The batch size is fixed in the file (qonnx's tools expect fixed shapes); :func:`execute` runs
    the graph at any batch size.
    """
    model.validate()
    g = _Graph()
    c, h, w = model.input_shape
    x = "pixels"
    if model.input_repeat > 1:
        idx = np.repeat(np.arange(c), model.input_repeat)
        x = g.node("Gather", [x, g.const("repeat_index", idx, np.int64)], "repeated", axis=1)
    names = layer_outputs(model)
    for i, layer in enumerate(model.layers):
        last = i == len(model.layers) - 1
        y = _layer(g, layer, x, names[i] if (last or layer.kind != "fc") else f"{layer.name}_flat_out", last)
        if layer.kind == "fc" and not last:
            # the (N, C, 1, 1) reshape is the layer's output tensor
            g.nodes[-1].output[0] = names[i]
            y = names[i]
        x = y
    graph = helper.make_graph(
        g.nodes, model.name,
        [helper.make_tensor_value_info("pixels", TensorProto.FLOAT, [batch, c, h, w])],
        [helper.make_tensor_value_info("logits", TensorProto.INT64, [batch, model.classes])],
        g.inits)
    proto = helper.make_model(graph, producer_name="binaccel",
                              opset_imports=[helper.make_opsetid("", opset), helper.make_opsetid(QONNX_DOMAIN, 1)])
    meta = {"binaccel.input": "uint8 pixels as float32 (N, C, H, W)",
            "binaccel.input_repeat": str(model.input_repeat),
            "binaccel.logit_shift": str(model.logit_shift),
            "binaccel.layer_outputs": ",".join(names)}
    for k, v in meta.items():
        proto.metadata_props.add(key=k, value=v)
    onnx.checker.check_model(proto)
    return proto


def is_binaccel_graph(path) -> bool:
    """Whether ``path`` is an ONNX graph that binaccel wrote (producer ``binaccel``)."""
    try:
        return onnx.load(os.fspath(path), load_external_data=False).producer_name == "binaccel"
    except Exception:  # noqa: BLE001 - anything unreadable is not binaccel's graph
        return False


def save_qonnx(model: IntModel, path, *, batch: int = 1) -> None:
    """Write ``model``'s QONNX graph to ``path`` atomically."""
    write_bytes_atomic(path, to_qonnx(model, batch=batch).SerializeToString())


def with_batch(proto: onnx.ModelProto, batch: int) -> ModelWrapper:
    """A copy of a QONNX graph with its batch dimension set to ``batch`` and shapes inferred."""
    p = onnx.ModelProto()
    p.CopyFrom(proto)
    del p.graph.value_info[:]
    for v in list(p.graph.input) + list(p.graph.output):
        v.type.tensor_type.shape.dim[0].dim_value = batch
    return ModelWrapper(p).transform(InferShapes())


def execute(proto, images: np.ndarray, *, full: bool = True) -> dict:
    """Run a QONNX graph (a ModelProto or a path) with qonnx's ``execute_onnx`` on uint8 images.

    Returns every tensor of the execution by name (``full``) or only the graph outputs.
    """
    if not isinstance(proto, onnx.ModelProto):
        proto = onnx.load(str(proto))
    x = np.asarray(images)
    if x.ndim == 3:
        x = x[:, None]
    name = proto.graph.input[0].name
    w = with_batch(proto, len(x))
    return execute_onnx(w, {name: x.astype(np.float32)}, return_full_exec_context=full)
