"""QONNX -> IntModel: compile a binarized QONNX graph to binaccel's integer model.

The inverse of :mod:`binaccel.sw.qonnx_export`, and an importer for Brevitas's own binarized
examples (``brevitas_examples.bnn_pynq``: tfc/sfc/lfc/cnv ``_1w1a`` exported with
``brevitas.export.export_qonnx``).

Input contract
    The graph's (single, non-initializer) input is ``pixels * input_scale`` for uint8 pixels
    ``(N, C, H, W)``, computed as :func:`graph_input` does (float64 product rounded to float32).
    ``input_scale`` is 1 for binaccel's own graphs (metadata ``binaccel.input``) and 1/255 otherwise
    (the ``ToTensor`` scaling the bnn_pynq models are trained with), unless given.

What is compiled (the graph must be one chain of these, every other node a constant)
    * input: ``Reshape``/``Flatten`` (a flatten), ``Gather`` on axis 1 repeating each channel K times
      (MCN ``input_repeat``), scalar/per-channel ``Mul``/``Add``/``Sub``/``Div``; then either a
      quantizer or directly a ``Conv``/``Gemm`` (only with an input scale that is a power of two).
      A quantizer on the input becomes an extra 1x1 conv layer ``input_quant`` on the pixels:
      ``BipolarQuant`` / one-threshold ``MultiThreshold`` -> a sign layer (thresholds on the pixel),
      ``Quant`` (2..8 bits, zero point 0) -> a requant layer reproducing the quantizer's code table
      (the code minus its minimum: ``q + 128`` for signed 8 bit) for all 256 pixel values.
    * per layer: ``Conv`` (group 1, square kernel, equal strides, symmetric pads, no bias) or
      ``Gemm`` (alpha = beta = 1, no bias) / ``MatMul``, optionally after a ``Cast`` to float64
      (binaccel's wide fc layer); the weight is found by the node's weight input
      name: ``BipolarQuant`` (-> w_bits 1), ``Quant`` signed <= 8 bits zero point 0 (-> w_bits 8),
      binaccel's MCN pattern ``Reshape(Mul(Reshape(BipolarQuant(W)), M))`` (-> mode mcn / mcn1), or a
      constant of integers; scales must be powers of two (then the float Conv/Gemm is exact).
      Then any chain of ``BatchNormalization``, ``Mul``, ``Add``, ``Sub``, ``Div``, ``Cast`` with
      constants, ended by ``BipolarQuant`` or a one-threshold ``MultiThreshold``: a sign layer with
      integer thresholds; or by an activation ``Quant`` (2..8 bits, zero point 0) or a
      ``MultiThreshold`` with several thresholds: a requant layer
      ``clamp((acc*mul + add) >> shift, 0, 2**bits - 1)``. The level boundaries of every channel are
      found by bisection over the accumulator range ``[-acc_bound, acc_bound]``, running the graph's
      own chain with qonnx's ``execute_onnx`` (the accepted ops are monotone per channel; ``Div`` by
      the data is refused); the requant is fitted exactly on the boundary points (integer ternary
      search on ``mul``, the smallest common ``shift``). Then, wherever range x channels <= 2**24
      (every binarized layer here), *every* accumulator value is run through the chain and compared
      with intref's post-processing of the layer: any difference is refused. No requant clamp
      exists e.g. for Brevitas's narrow-range 2-bit activations (3 levels saturating inside the range,
      the clamp has 4): refused.
      Then optionally ``MaxPool`` 2x2 stride 2 (layer ``pool = 2``) and ``Reshape``/``Flatten``.
    * last layer (chain ends at the graph output): logits. An integer chain (``Cast`` to int64,
      integer ``Mul``/``Add``: binaccel's own graphs) is kept exactly (``mul``, ``add``, the
      ``binaccel.logit_shift`` metadata as ``shift``). A float chain that is the same positive affine
      for every class (Brevitas's ``TensorNorm``) is not applied: the logits are the integer
      accumulator (``mul = 1``), the affine is recorded in ``meta`` (``qonnx.logit_affine``);
      a per-class float affine is refused.

Exactness: ``meta["qonnx.layer_tensors"]`` lists for every layer a graph tensor and ``(scale, bias)``
with ``graph_tensor == scale * intref_output + bias`` (whole tensors, reshaped to the intref shape).

Not supported (refused with :class:`QonnxImportError` naming the file, node, op and the supported set):
activation levels no requant clamp reproduces (narrow-range ``Quant``, e.g. bnn_pynq ``*_1w2a`` /
``*_2w2a``), biases, grouped/dilated convolutions, pooling other than 2x2/2, residual or branching graphs, an input
offset on a padded convolution, per-class float logit affines.
"""

from __future__ import annotations

import math
import os

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from qonnx.core.modelwrapper import ModelWrapper
from qonnx.core.onnx_exec import execute_onnx
from qonnx.custom_op.registry import getCustomOp
from qonnx.transformation.infer_shapes import InferShapes

from .intmodel import IntModel, Layer, ModelFormatError
from .intref import postprocess

__all__ = ["QonnxImportError", "SUPPORTED", "import_qonnx", "graph_input", "DEFAULT_INPUT_SCALE"]

DEFAULT_INPUT_SCALE = 1.0 / 255.0
SUPPORTED = ("Identity, Reshape, Flatten, Gather (input channel repeat), Mul, Add, Sub, Div, Cast, BatchNormalization, "
             "BipolarQuant, Quant (weights <= 8 bits; activations 2..8 bits), MultiThreshold (1..255 thresholds), "
             "Conv, Gemm, MatMul, MaxPool 2x2/2; one chain, binary or requant activations")
_ELEMENTWISE = ("Mul", "Add", "Sub", "Div", "BatchNormalization", "Cast")
_LAYOUT = ("Reshape", "Flatten")
_EVAL_CELLS = 1 << 22  # rows * channels per execute_onnx call of a threshold search
_VERIFY_CELLS = 1 << 24  # accumulator values x channels checked exhaustively per layer


class QonnxImportError(ValueError):
    """A QONNX graph binaccel cannot compile exactly (names the file, node, op and what is supported).

    ``path`` is the file (None for an in-memory model) and ``reason`` the message without it."""

    def __init__(self, reason: str, path=None):
        self.path, self.reason = (None if path is None else str(path)), reason
        super().__init__(reason if path is None else f"{path}: {reason}")


def graph_input(images: np.ndarray, input_scale: float = DEFAULT_INPUT_SCALE) -> np.ndarray:
    """The graph input for uint8 ``images`` ``(N, C, H, W)`` (or ``(N, H, W)``): float32 of ``pixels * input_scale``."""
    x = np.asarray(images)
    if x.ndim == 3:
        x = x[:, None]
    return (x.astype(np.float64) * float(input_scale)).astype(np.float32)


def _pow2(values) -> bool:
    v = np.abs(np.asarray(values, dtype=np.float64)).reshape(-1)
    if v.size == 0 or np.any(v == 0) or not np.all(np.isfinite(v)):
        return False
    m, _ = np.frexp(v)
    return bool(np.all(m == 0.5))


def _attrs(node) -> dict:
    return {a.name: helper.get_attribute_value(a) for a in node.attribute}


class _Importer:
    def __init__(self, proto: onnx.ModelProto, path: str, input_scale):
        self.proto, self.path = proto, path
        g = proto.graph
        self.opsets = list(proto.opset_import)
        self.consts = {i.name: numpy_helper.to_array(i) for i in g.initializer}
        for n in g.node:  # Constant nodes are constants too
            if n.op_type == "Constant":
                self.consts[n.output[0]] = numpy_helper.to_array(_attrs(n)["value"])
        self.meta = {p.key: p.value for p in proto.metadata_props}
        inputs = [i for i in g.input if i.name not in self.consts]
        if len(inputs) != 1:
            self.fail(None, f"expected one graph input, got {[i.name for i in inputs]}")
        self.input = inputs[0]
        if len(g.output) != 1:
            self.fail(None, f"expected one graph output, got {[o.name for o in g.output]}")
        self.output = g.output[0].name
        if input_scale is None:
            input_scale = 1.0 if "binaccel.input" in self.meta else DEFAULT_INPUT_SCALE
        self.input_scale = float(input_scale)
        if not (self.input_scale > 0 and math.isfinite(self.input_scale)):
            self.fail(None, f"expected a positive input scale, got {input_scale}")
        self.producer = {o: n for n in g.node for o in n.output}
        # constant tensors: initializers and outputs of nodes whose inputs are all constant
        self.const_names = set(self.consts)
        for n in g.node:  # graph nodes are topologically sorted (ONNX requirement)
            if all((i == "" or i in self.const_names) for i in n.input):
                self.const_names.update(n.output)
        self.consumers = {}
        for n in g.node:
            for i in n.input:
                self.consumers.setdefault(i, []).append(n)

    # -- errors and constants --------------------------------------------------------------------
    def fail(self, node, what):
        if node is None:
            where = "graph"
        else:
            name = node.name or f"#{list(self.proto.graph.node).index(node)} (unnamed)"
            where = f"node {name} ({node.op_type})"
        raise QonnxImportError(f"{where}: {what} (supported: {SUPPORTED})")

    def const(self, name, node=None):
        if name in self.consts:
            return self.consts[name]
        if name not in self.const_names:
            self.fail(node, f"expected a constant for input {name!r}")
        n = self.producer[name]
        ins = [self.const(i, n) if i else None for i in n.input]
        if n.domain and n.domain != "ai.onnx":
            ctx = {i: v for i, v in zip(n.input, ins) if i}
            ctx.update({o: None for o in n.output})
            getCustomOp(n).execute_node(ctx, self.proto.graph)
            outs = [ctx[o] for o in n.output]
        else:
            from onnx.reference import ReferenceEvaluator
            sub = helper.make_graph([n], "c", [], [helper.make_tensor_value_info(o, TensorProto.UNDEFINED, None)
                                                   for o in n.output],
                                    [numpy_helper.from_array(np.asarray(v), i) for i, v in zip(n.input, ins) if i])
            m = helper.make_model(sub, opset_imports=[o for o in self.opsets if o.domain in ("", "ai.onnx")])
            outs = ReferenceEvaluator(m).run(None, {})
        for o, v in zip(n.output, outs):
            self.consts[o] = np.asarray(v)
        return self.consts[name]

    # -- running a chain of graph nodes with execute_onnx ---------------------------------------
    def run_chain(self, nodes, x_name, x: np.ndarray) -> np.ndarray:
        """Execute ``nodes`` (a chain from tensor ``x_name``) on ``x`` with qonnx's execute_onnx."""
        copies, prev = [], x_name
        for n in nodes:  # rewire: each node's data input is the previous node's output (layout nodes skipped)
            c = onnx.NodeProto()
            c.CopyFrom(n)
            for j, i in enumerate(c.input):
                if i and i not in self.const_names:
                    c.input[j] = prev
            del c.output[1:]
            copies.append(c)
            prev = c.output[0]
        nodes = copies
        out = nodes[-1].output[0]
        dtype = helper.np_dtype_to_tensor_dtype(x.dtype)
        for n in nodes:
            if n.op_type == "Cast":
                dtype = _attrs(n)["to"]
            elif n.domain and n.domain != "ai.onnx":
                dtype = TensorProto.FLOAT
        inits = []
        for n in nodes:
            for i in n.input:
                if i and i in self.const_names and i != x_name:
                    inits.append(numpy_helper.from_array(np.asarray(self.const(i, n)), i))
        g = helper.make_graph(list(nodes), "chain",
                              [helper.make_tensor_value_info(x_name, helper.np_dtype_to_tensor_dtype(x.dtype), list(x.shape))],
                              [helper.make_tensor_value_info(out, dtype, None)], inits)
        m = ModelWrapper(helper.make_model(g, opset_imports=self.opsets))
        m = m.transform(InferShapes())
        return np.asarray(execute_onnx(m, {x_name: x})[out])

    # -- the walk -----------------------------------------------------------------------------
    def chain(self):
        """The non-constant nodes from the input to the output, checked to be a single chain."""
        nodes, t = [], self.input.name
        while t != self.output:
            users = self.consumers.get(t, [])
            if len(users) != 1:
                n = self.producer.get(t)
                self.fail(n, f"tensor {t!r} is used by {len(users)} nodes; expected a single chain "
                             "(branches and residual connections are not supported)")
            n = users[0]
            data = [i for i in n.input if i and i not in self.const_names]
            if data != [t]:
                self.fail(n, f"expected one non-constant input, got {data}")
            if len(n.output) != 1 and n.op_type != "BatchNormalization":
                self.fail(n, "expected a single output")
            if n.op_type == "Div" and n.input[0] != t:
                self.fail(n, "a division by the data (not monotone) is not supported")
            nodes.append(n)
            t = n.output[0]
        return nodes

    def run(self) -> IntModel:
        shape = [d.dim_value for d in self.input.type.tensor_type.shape.dim]
        if len(shape) != 4 or min(shape[1:]) < 1:
            self.fail(None, f"expected the input {self.input.name!r} of shape (N, C, H, W), got {shape}")
        c0, h0, w0 = shape[1:]
        self.layers, self.tensors = [], []
        self.repeat = 1
        self.cur = (c0, h0, w0)
        self.flat = False
        self.wide = False  # float64 accumulator (a Cast to DOUBLE before the Conv/Gemm)
        self.act = None  # (scale, offset, in_bits): graph value = scale * (v - offset)
        pre, tail, pending = [], [], None
        phase = "input"
        self.logit_info = {}
        nodes = self.chain()
        for node in nodes:
            op = node.op_type
            if op == "Identity":
                continue
            if op in _LAYOUT:
                self.check_flatten(node)
                if phase == "input":
                    continue
                if phase == "acc":
                    self.fail(node, "a reshape between a Conv/Gemm and its activation is not supported")
                continue
            if phase == "input":
                if op == "Gather":
                    self.gather(node, pre)
                elif op in _ELEMENTWISE:
                    pre.append(node)
                elif op in ("BipolarQuant", "MultiThreshold", "Quant"):
                    self.input_quant(node, pre)
                    phase = "act"
                elif op in ("Conv", "Gemm", "MatMul"):
                    if pre or not _pow2(self.input_scale):
                        self.fail(node, "the input reaches a Conv/Gemm without a quantizer and with "
                                        f"float operations or a non-power-of-two input scale ({self.input_scale}); "
                                        "expected a quantizer (BipolarQuant/Quant/MultiThreshold) on the input")
                    self.act = (self.input_scale, 0, 8)
                    self.act_tensor = node.input[0]
                    pending, tail, phase = self.start_layer(node), [], "acc"
                else:
                    self.fail(node, "unsupported op on the input")
            elif phase == "act":
                if op == "Cast" and _attrs(node).get("to") in (TensorProto.FLOAT, TensorProto.DOUBLE):
                    self.wide = _attrs(node)["to"] == TensorProto.DOUBLE  # exact integers either way
                elif op == "MaxPool":
                    self.maxpool(node)
                elif op in ("Conv", "Gemm", "MatMul"):
                    pending, tail, phase = self.start_layer(node), [], "acc"
                elif op == "Quant" or op == "MultiThreshold":
                    self.fail(node, "a quantizer directly after an activation is not supported")
                else:
                    self.fail(node, "unsupported op after an activation")
            else:  # acc
                if op in _ELEMENTWISE:
                    tail.append(node)
                elif op in ("BipolarQuant", "MultiThreshold", "Quant"):
                    self.finish_stage(pending, tail, node)
                    phase = "act"
                elif op == "MaxPool":
                    self.fail(node, "max-pooling before the activation is not supported; "
                                    "expected MaxPool after BipolarQuant/MultiThreshold")
                else:
                    self.fail(node, "unsupported op after a Conv/Gemm")
        if phase != "acc":
            self.fail(nodes[-1] if nodes else None, "expected the graph to end in a Gemm/MatMul/Conv "
                                                    "and its (affine) output scaling: the logits")
        self.finish_logits(pending, tail, nodes[-1])
        name = (self.proto.graph.name if self.path == "<model>" else
                os.path.splitext(os.path.basename(self.path))[0]) or "qonnx"
        meta = {"source": "qonnx", "qonnx.file": os.path.basename(self.path), "qonnx.input": self.input.name,
                "qonnx.input_scale": self.input_scale,
                "qonnx.layer_tensors": [[t, float(s), float(b)] for t, s, b in self.tensors]}
        meta.update(self.logit_info)
        last = self.layers[-1]
        model = IntModel(name=name, input_shape=(c0, h0, w0), layers=self.layers, input_repeat=self.repeat,
                         classes=last.out_ch, meta=meta)
        try:
            model.validate()
        except ModelFormatError as exc:
            self.fail(None, f"the compiled model is not valid: {exc}")
        return model

    # -- pieces of the walk -------------------------------------------------------------------------
    def check_flatten(self, node):
        c, h, w = self.cur
        if node.op_type == "Flatten":
            if _attrs(node).get("axis", 1) != 1:
                self.fail(node, "expected Flatten with axis 1")
        else:
            s = [int(v) for v in np.asarray(self.const(node.input[1], node)).reshape(-1)]
            if len(s) == 4 and s[1:] == [c, h, w]:
                self.flat = False
                return  # (N, C, H, W): no change (binaccel's (N, C, 1, 1) after an fc layer)
            if len(s) != 2 or s[1] not in (-1, c * h * w):
                self.fail(node, f"expected a flatten of the (C, H, W) = {self.cur} tensor to (N, {c * h * w}), "
                                f"got shape {s}")
        self.flat = True

    def gather(self, node, pre):
        a = _attrs(node)
        idx = np.asarray(self.const(node.input[1], node)).reshape(-1)
        c = self.cur[0]
        if self.layers or pre or self.flat or a.get("axis", 0) != 1 or len(idx) % c:
            self.fail(node, "expected Gather only on the input channels (axis 1), before anything else")
        k = len(idx) // c
        if not np.array_equal(idx, np.repeat(np.arange(c), k)):
            self.fail(node, "expected the MCN input repeat: channel c*K + j is input channel c")
        self.repeat = k
        self.cur = (c * k, self.cur[1], self.cur[2])

    def channel_rows(self, values, c):
        """A (rows, c[, 1, 1]) tensor from per-row values (the accumulator / pixel value per row)."""
        v = np.repeat(np.asarray(values)[:, None], c, axis=1)
        return v if self.flat else v[:, :, None, None]

    def input_quant(self, node, pre):
        """A quantizer on the pixels: an extra 1x1 conv layer ``input_quant`` (acc = the pixel)."""
        c, h, w = self.cur
        layer = Layer(name="input_quant", kind="conv", mode="plain", in_ch=c, in_h=h, in_w=w, out_ch=c, kernel=1,
                      stride=1, padding=0, in_bits=8, w_bits=1 if c == 1 else 8,  # one channel: weight +1
                      weights=np.eye(c, dtype=np.int8).reshape(c, c, 1, 1), out_kind="sign")
        shape = (-1, c) if self.flat else (-1, c, 1, 1)

        def to_x(acc):
            return graph_input(acc.reshape(shape), self.input_scale)
        if node.op_type == "Quant":  # 8-bit codes that are the pixels themselves: no layer needed
            s_q, bits, cands = self.quant_params(node)
            r = self.evaluator(pre + [node], node, to_x, lambda y: y / s_q, c)(
                np.repeat(np.arange(256, dtype=np.int64)[:, None], c, axis=1))
            if bits == 8 and np.array_equal(r - cands[0], np.repeat(np.arange(256)[:, None], c, axis=1)):
                self.act = (s_q, -cands[0], 8)
                self.act_tensor = node.output[0]
                return
        self.finish_activation(layer, pre + [node], node, to_x, 0, 255)

    def multilevel(self, node) -> bool:
        """Whether a quantizer gives more than two levels (Quant, MultiThreshold with several thresholds)."""
        if node.op_type == "Quant":
            return True
        if node.op_type == "MultiThreshold":
            t = np.asarray(self.const(node.input[1], node))
            return t.ndim == 2 and t.shape[1] > 1
        return False

    def quant_params(self, node):
        """(scale, bits, code minimum candidates) of an activation Quant or multi-threshold MultiThreshold;
        the output is ``scale * r`` for the integer level r."""
        a = _attrs(node)
        if node.op_type == "MultiThreshold":
            t = np.asarray(self.const(node.input[1], node))
            os_, ob = float(a.get("out_scale", 1.0)), float(a.get("out_bias", 0.0))
            bits = max(2, int(t.shape[1]).bit_length())
            if not os_ > 0 or ob / os_ != round(ob / os_) or bits > 8 or not _pow2(os_):
                self.fail(node, "expected a MultiThreshold with at most 255 thresholds, a power-of-two out_scale "
                                "and an out_bias that is an integer multiple of it")
            return os_, bits, [int(round(ob / os_))]
        scale = np.asarray(self.const(node.input[1], node), dtype=np.float64).reshape(-1)
        zp = np.asarray(self.const(node.input[2], node)).reshape(-1)
        bits = float(np.asarray(self.const(node.input[3], node)).reshape(-1)[0])
        if scale.size != 1 or np.any(zp != 0) or bits != int(bits) or not 2 <= bits <= 8:
            self.fail(node, "expected an activation Quant with one scale, zero point 0 and 2..8 bits")
        bits, s = int(bits), float(scale[0])
        if not _pow2(s):
            self.fail(node, f"expected a power-of-two activation quantizer scale, got {s}")
        if a.get("signed", 1):
            qmin = -(1 << (bits - 1)) + int(a.get("narrow", 0))
            cands = [qmin, qmin - 1] if a.get("narrow", 0) else [qmin]
        else:
            cands = [0]
        return s, bits, cands

    def evaluator(self, chain, node, to_x, to_r, c):
        """``ev(acc)``: the integer level of the chain's output for accumulator values ``acc`` (rows, c),
        each channel its own value, computed by execute_onnx."""
        def ev(acc):
            acc = np.asarray(acc, dtype=np.int64).reshape(-1, c)
            out, rows = [], max(_EVAL_CELLS // c, 1)
            for s in range(0, len(acc), rows):
                part = acc[s:s + rows]
                y = self.run_chain(chain, "chain_input", to_x(part)).reshape(len(part), c).astype(np.float64)
                r = to_r(y)
                if not np.all(np.isfinite(r)) or np.any(r != np.round(r)):
                    self.fail(node, "the quantizer output is not an integer level of its scale")
                out.append(np.round(r).astype(np.int64))
            return np.concatenate(out)
        return ev

    def finish_activation(self, layer, chain, node, to_x, a_lo, a_hi):
        """The layer's output stage from the chain (accumulator -> quantizer ``node``), exactly:

        per channel the level boundaries are found by bisection over ``a_lo..a_hi`` (the chain is
        monotone per channel: affine float ops and quantizers), then thresholds (sign) or a requant
        fitted on the boundary points; when the range is small enough every accumulator value is
        checked against intref's post-processing (refused on any difference)."""
        c = layer.out_ch
        if self.multilevel(node):
            s, bits, cands = self.quant_params(node)
            to_r = (lambda y: y / s)
        else:
            s_out, z = self.sign_output(node)
            to_r = (lambda y: (y - z) / s_out)
        ev = self.evaluator(chain, node, to_x, to_r, c)
        S, R, low, high, d = _search(ev, a_lo, a_hi, c)
        if self.multilevel(node):
            top = (1 << bits) - 1
            for m in cands:
                u = R - m
                if u.min() < 0 or u.max() > top:
                    continue
                fit = _fit_points(S, u, bits)
                if fit is not None:
                    break
            else:
                self.fail(node, f"the {int((high - low).max()) + 1} activation levels cannot be expressed as "
                                f"clamp((acc*mul + add) >> shift, 0, {top}) (e.g. a narrow-range quantizer with "
                                "2**bits - 1 levels saturating inside the accumulator range)")
            mul, add, shift = fit
            reach = max(abs(a_lo), abs(a_hi))
            if max(abs(v) for v in mul) * reach + max(abs(v) for v in add) >= 1 << 62:
                self.fail(node, "the fitted requant multipliers exceed int64")
            layer.out_kind, layer.out_bits, layer.shift = "requant", bits, shift
            layer.mul, layer.add = np.array(mul, dtype=np.int64), np.array(add, dtype=np.int64)
            layer.thresh = layer.flip = None
            offset = m
            mapping, act = (s, s * m), (s, -m, bits)  # graph value = s * (u + m)
        else:
            if R.min() < 0 or R.max() > 1:
                self.fail(node, "expected a two-level output")
            const = low == high
            t_first = S[2] if len(S) > 2 else S[0]
            layer.thresh = np.where(const, np.where(R[0] == 1, a_lo, a_hi + 1), t_first).astype(np.int64)
            layer.flip = ((d < 0) & ~const).astype(np.uint8)
            offset = 0
            mapping, act = (s_out, z), (s_out / 2, -1 - 2 * z / s_out, 1)
        if (a_hi - a_lo + 1) * c <= _VERIFY_CELLS:
            acc = np.repeat(np.arange(a_lo, a_hi + 1, dtype=np.int64)[:, None], c, axis=1)
            want = postprocess(layer, acc[:, :, None, None]).reshape(acc.shape)
            got = ev(acc) - offset
            if not np.array_equal(got, want):
                o = int(np.nonzero(np.any(got != want, axis=0))[0][0])
                self.fail(node, f"channel {o}: the activation is not a monotone step function of the accumulator "
                                "that binaccel's thresholds/requant reproduce")
        if hasattr(layer, "_alpha"):
            self._finish(layer)
        else:
            self.layers.append(layer)
        self.tensors.append((node.output[0],) + mapping)
        self.act = act
        self.act_tensor = node.output[0]
        self.cur = (layer.out_ch, layer.out_h, layer.out_w)
        if layer.kind == "fc":
            self.flat = True

    def sign_output(self, node):
        """(s, z) with the quantizer output ``s * b + z`` for the bit b."""
        if node.op_type == "BipolarQuant":
            s = np.asarray(self.const(node.input[1], node), dtype=np.float64).reshape(-1)
            if s.size != 1 or not s[0] > 0:
                self.fail(node, "expected one positive scale for an activation BipolarQuant")
            return 2 * float(s[0]), -float(s[0])
        a = _attrs(node)
        t = np.asarray(self.const(node.input[1], node))
        if t.ndim != 2 or t.shape[1] != 1:
            self.fail(node, f"expected one threshold per channel (binary activations), got thresholds of "
                            f"shape {t.shape}")
        if a.get("data_layout", "NCHW") not in ("NCHW", "NC"):
            self.fail(node, "expected the NCHW data layout")
        s, z = float(a.get("out_scale", 1.0)), float(a.get("out_bias", 0.0))
        if not s > 0:
            self.fail(node, "expected a positive out_scale")
        return s, z

    def maxpool(self, node):
        a = _attrs(node)
        ok = (list(a.get("kernel_shape", [])) == [2, 2] and list(a.get("strides", [1, 1])) == [2, 2]
              and not any(a.get("pads", [0])) and not a.get("ceil_mode", 0)
              and list(a.get("dilations", [1, 1])) == [1, 1] and a.get("auto_pad", b"NOTSET") in (b"NOTSET", "NOTSET"))
        last = self.layers[-1] if self.layers else None
        if not ok or last is None or last.kind != "conv" or last.pool != 1 or self.flat:
            self.fail(node, "expected MaxPool 2x2, stride 2, no padding, once after a conv layer's activation")
        last.pool = 2
        self.cur = (last.out_ch, last.out_h, last.out_w)
        t, s, b = self.tensors[-1]
        self.tensors[-1] = (node.output[0], s, b)
        self.act_tensor = node.output[0]

    def weights(self, node):
        """(integer weights in the node's layout, per-row scale, mcn info) of a Conv/Gemm/MatMul weight input."""
        name = node.input[1]
        if name not in self.const_names:
            self.fail(node, f"expected a constant weight input, got {name!r}")
        mcn = None
        q = self.producer.get(name)
        if q is not None and q.op_type == "Reshape":  # binaccel's MCN modulation
            mul = self.producer.get(q.input[0])
            r5 = self.producer.get(mul.input[0]) if mul is not None and mul.op_type == "Mul" else None
            if r5 is not None and r5.op_type == "Reshape":
                mcn = np.asarray(self.const(mul.input[1], mul), dtype=np.float64)
                q = self.producer.get(r5.input[0])
                base = r5.input[0]
            else:
                base = name
        else:
            base = name
        wq = np.asarray(self.const(base, node), dtype=np.float64)
        if q is not None and q.op_type in ("BipolarQuant", "Quant"):
            scale = np.asarray(self.const(q.input[1], q), dtype=np.float64)
            if q.op_type == "Quant":
                a = _attrs(q)
                zp = np.asarray(self.const(q.input[2], q))
                bits = float(np.asarray(self.const(q.input[3], q)).reshape(-1)[0])
                if np.any(zp != 0) or not a.get("signed", 1) or bits > 8:
                    self.fail(q, "expected a signed weight Quant with zero point 0 and at most 8 bits")
            ints = wq / scale
        else:
            scale, ints = np.ones(1), wq
        if np.any(ints != np.round(ints)):
            self.fail(node, "the weights are not integer multiples of their quantizer scale")
        if not _pow2(scale):
            self.fail(q or node, "expected power-of-two weight scales (the float Conv/Gemm is exact only then)")
        return ints.astype(np.int64), scale, mcn

    def start_layer(self, node):
        op, a = node.op_type, _attrs(node)
        if len([i for i in node.input if i]) > 2:
            self.fail(node, "a bias input is not supported")
        ints, scale, mcn = self.weights(node)
        sa, off, in_bits = self.act
        if not _pow2(sa):
            self.fail(node, f"expected a power-of-two activation scale, got {sa}")
        c, h, w = self.cur
        idx = len([l for l in self.layers if l.name != "input_quant"]) + 1
        if op == "Conv":
            k = list(a.get("kernel_shape", ints.shape[2:]))
            st = list(a.get("strides", [1, 1]))
            pads = list(a.get("pads", [0, 0, 0, 0]))
            if (self.flat or a.get("group", 1) != 1 or len(k) != 2 or k[0] != k[1] or st[0] != st[1]
                    or len(set(pads)) != 1 or list(a.get("dilations", [1, 1])) != [1, 1]
                    or a.get("auto_pad", b"NOTSET") not in (b"NOTSET", "NOTSET")):
                self.fail(node, "expected a 2-D Conv with group 1, a square kernel, equal strides, "
                                "symmetric explicit pads, no dilation")
            if ints.shape[1] != c:
                self.fail(node, f"expected {c} input channels, got weights of shape {ints.shape}")
            if off != 0 and pads[0] != 0:
                self.fail(node, "an input with an offset (not zero-centred) into a padded Conv is not supported")
            layer = Layer(name=f"conv{idx}", kind="conv", mode="plain", in_ch=c, in_h=h, in_w=w,
                          out_ch=ints.shape[0], kernel=k[0], stride=st[0], padding=pads[0], in_bits=in_bits,
                          w_bits=1, weights=ints, out_kind="sign")
            s_rows = np.broadcast_to(scale.reshape(-1), (ints.shape[0],)) if scale.size in (1, ints.shape[0]) else None
            if mcn is not None:
                gr = ints.shape[0]
                planes = mcn.shape[1]
                m = mcn.reshape(planes, -1)
                if m.shape[1] == 1:
                    mode, mf = "mcn1", m[:, 0]
                else:
                    mode, mf = "mcn", m.reshape(planes, k[0], k[0])
                if np.any(mf != np.round(mf)) or mf.min() < 0:
                    self.fail(node, "expected an unsigned integer M-Filter")
                mf = mf.astype(np.int64)
                layer.mode, layer.planes, layer.mfilter = mode, planes, mf
                layer.m_bits = max(int(mf.max()).bit_length(), 1)
                layer.out_ch = gr * planes
                if off != 0:
                    self.fail(node, "an input offset into an MCN layer is not supported")
                s_rows = np.repeat(s_rows, planes) if s_rows is not None else None
            wsum = ints.sum(axis=(1, 2, 3))
        else:
            if not self.flat:
                self.fail(node, f"expected a flattened input (Flatten/Reshape) before {op}")
            if op == "Gemm":
                if a.get("alpha", 1.0) != 1.0 or a.get("transA", 0):
                    self.fail(node, "expected Gemm with alpha 1 and transA 0")
                if not a.get("transB", 0):
                    ints, scale = ints.T, scale.T
            else:
                ints, scale = ints.T, scale.T
            if ints.ndim != 2 or ints.shape[1] != c * h * w:
                self.fail(node, f"expected weights of shape (out, {c * h * w}), got {ints.shape}")
            layer = Layer(name=f"fc{idx}", kind="fc", mode="plain", in_ch=c, in_h=h, in_w=w, out_ch=ints.shape[0],
                          kernel=1, stride=1, padding=0, in_bits=in_bits, w_bits=1, weights=ints, out_kind="sign")
            s_rows = np.broadcast_to(scale.reshape(-1), (ints.shape[0],)) if scale.size in (1, ints.shape[0]) else None
            wsum = ints.sum(axis=1)
        if s_rows is None:
            self.fail(node, f"expected a weight scale per output channel or per tensor, got shape {scale.shape}")
        binary = np.all((ints == 1) | (ints == -1))
        if not binary and (ints.min() < -128 or ints.max() > 127):
            self.fail(node, "expected binary or 8-bit signed integer weights")
        if layer.mode != "plain" and not binary:
            self.fail(node, "expected binary weights in an MCN layer")
        layer.w_bits = 1 if binary else 8
        layer.weights = ints.astype(np.int8)
        # graph accumulator = alpha * (acc - K): acc the intref accumulator
        k_off = off * wsum
        if layer.mode != "plain":
            k_off = np.zeros(layer.out_ch, dtype=np.int64)
        layer._alpha = sa * np.asarray(s_rows, dtype=np.float64)
        layer._koff = np.asarray(k_off, dtype=np.int64)
        layer._node = node
        limit = 1 << (53 if self.wide else 24)
        if layer.acc_bound() + int(np.abs(layer._koff).max(initial=0)) >= limit:
            self.fail(node, f"an accumulator bound of {layer.acc_bound()} is beyond the exact range of "
                            f"{'float64' if self.wide else 'float32'}")
        layer._dtype = np.float64 if self.wide else np.float32
        return layer

    def acc_rows(self, layer, acc):
        dtype = layer._dtype
        x = self.channel_rows(acc, layer.out_ch).astype(np.float64)
        x = x - layer._koff.reshape((1, -1) + ((1, 1) if x.ndim == 4 else ()))
        x = x * layer._alpha.reshape((1, -1) + ((1, 1) if x.ndim == 4 else ()))
        return x.astype(dtype)

    def eval_tail(self, layer, tail, acc):
        """Run the graph's post-accumulator chain on accumulator values ``acc`` (rows), all channels."""
        if not tail:
            return self.acc_rows(layer, acc).reshape(len(acc), layer.out_ch).astype(np.float64)
        rows = max(_EVAL_CELLS // layer.out_ch, 1)
        out = []
        for s in range(0, len(acc), rows):
            x = self.acc_rows(layer, acc[s:s + rows])
            out.append(self.run_chain(tail, "chain_input", x).reshape(len(x), layer.out_ch))
        return np.concatenate(out)

    def finish_stage(self, layer, tail, node):
        bound = layer.acc_bound()
        four = not self.flat

        def to_x(acc):
            x = (acc.astype(np.float64) - layer._koff[None]) * layer._alpha[None]
            return (x[:, :, None, None] if four else x).astype(layer._dtype)
        self.finish_activation(layer, tail + [node], node, to_x, -bound, bound)

    def _finish(self, layer):
        for a in ("_alpha", "_koff", "_node", "_dtype"):
            delattr(layer, a)
        self.layers.append(layer)

    def finish_logits(self, layer, tail, last):
        bound = layer.acc_bound()
        alpha, koff, acc_tensor = layer._alpha, layer._koff, layer._node.output[0]
        probe = np.unique(np.array([-bound, -bound + 1, -1, 0, 1, 2, 3, bound - 1, bound], dtype=np.int64))
        probe = np.unique(np.concatenate([probe, np.random.default_rng(0).integers(-bound, bound + 1, 64)]))
        y = self.eval_tail(layer, tail, probe)
        n = layer.out_ch
        layer.out_kind, layer.thresh, layer.flip = "logits", None, None
        if np.issubdtype(y.dtype, np.integer):
            y = y.astype(np.int64)
            i0 = int(np.searchsorted(probe, 0))
            add, mul = y[i0], y[i0 + 1] - y[i0]
            if not np.array_equal(y, probe[:, None] * mul[None] + add[None]):
                self.fail(last, "expected an integer affine chain (Mul/Add) on the logits")
            layer.mul, layer.add = mul.astype(np.int64), add.astype(np.int64)
            layer.shift = int(self.meta.get("binaccel.logit_shift", "0") or 0)
            self.tensors.append((self.output, 1.0, 0.0))
            self.logit_info = {"qonnx.logits": "exact"}
        else:
            # float affine of the graph accumulator g = acc - koff: y ~ A*g + B
            g = (probe[:, None] - koff[None]).astype(np.float64) * alpha[None]
            A = (y[-1] - y[0]) / (g[-1] - g[0]) if len(probe) > 1 else np.ones(n)
            B = y[np.searchsorted(probe, 0)] - A * g[np.searchsorted(probe, 0)]
            if not (np.allclose(A, A[0], rtol=1e-6, atol=0) and np.allclose(B, B[0], rtol=1e-6, atol=1e-6) and A[0] != 0):
                self.fail(last, "a per-class float affine on the logits is not supported "
                                "(expected the same non-zero scale and offset for every class)")
            if np.any(koff != koff[0]):
                self.fail(last, "a per-class accumulator offset on float logits is not supported")
            sign = 1 if A[0] > 0 else -1  # logits = sign * graph accumulator: the graph's ranking
            layer.mul = np.full(n, sign, dtype=np.int64)
            layer.add = -sign * koff.astype(np.int64)
            layer.shift = 0
            self.tensors.append((acc_tensor, float(sign * alpha[0]), 0.0))
            self.logit_info = {"qonnx.logits": "integer accumulator; graph output = scale * logits + bias",
                               "qonnx.logit_affine": [float(sign * A[0] * alpha[0]), float(B[0])],
                               "qonnx.output": self.output}
            if np.any(alpha != alpha[0]):
                self.fail(last, "per-class weight scales on float logits are not supported")
        self._finish(layer)


def _search(ev, a_lo: int, a_hi: int, c: int):
    """Level boundaries of a per-channel monotone integer function ``ev`` on ``a_lo..a_hi``.

    Returns ``(S, R, low, high, d)``: points ``S`` (P, c) (row 0: ``a_lo``, row 1: ``a_hi``, then the first
    accumulator of each level above the lowest, then the last one below it), the levels ``R = ev(S)``,
    the lowest/highest level and the direction ``d`` (+1 non-decreasing, -1 non-increasing) per channel."""
    ends = ev(np.array([[a_lo] * c, [a_hi] * c], dtype=np.int64))
    r_lo, r_hi = ends[0], ends[1]
    d = np.where(r_hi >= r_lo, 1, -1)
    low, high = np.minimum(r_lo, r_hi), np.maximum(r_lo, r_hi)
    n_lv = int((high - low).max())
    pts = [np.full(c, a_lo, dtype=np.int64), np.full(c, a_hi, dtype=np.int64)]
    if n_lv:
        v = low[None] + 1 + np.arange(n_lv)[:, None]
        valid = v <= high[None]
        # in the coordinate a' = d * acc the function is non-decreasing: first a' with level >= v
        lo = np.broadcast_to(np.where(d > 0, a_lo, -a_hi), (n_lv, c)).astype(np.int64)
        hi = np.broadcast_to(np.where(d > 0, a_hi, -a_lo), (n_lv, c)).astype(np.int64)
        while True:
            active = (hi - lo > 1) & valid
            if not active.any():
                break
            mid = np.where(active, (lo + hi) // 2, hi)
            ge = ev(d[None] * mid).reshape(n_lv, c) >= v
            hi = np.where(active & ge, mid, hi)
            lo = np.where(active & ~ge, mid, lo)
        pts += [np.where(valid[k], d * hi[k], a_lo) for k in range(n_lv)]
        pts += [np.where(valid[k], d * (hi[k] - 1), a_lo) for k in range(n_lv)]
    S = np.stack(pts).astype(np.int64)
    return S, ev(S), low, high, d


def _channel_fit(col, acc, top: int, shift: int):
    """Integer (mul, add) with ``clamp((acc*mul + add) >> shift, 0, top) == col`` at every point, or None
    (Python integers: exact at any shift).

    For a fixed ``mul`` the feasible ``add`` form an interval ``[L(mul), R(mul)]``; ``R - L`` is concave
    in ``mul`` (a minimum of linear functions minus a maximum of linear functions), so an integer
    ternary search finds the best ``mul``."""
    big = 1 << 400
    lo_pts = [(a, u << shift) for a, u in zip(acc, col) if u > 0]
    hi_pts = [(a, ((u + 1) << shift) - 1) for a, u in zip(acc, col) if u < top]

    def interval(m):
        lo = max((v - a * m for a, v in lo_pts), default=-big)
        hi = min((v - a * m for a, v in hi_pts), default=big)
        return lo, hi

    def gap(m):
        lo, hi = interval(m)
        return hi - lo

    lo_m, hi_m = -((top + 1) << shift), (top + 1) << shift
    while hi_m - lo_m > 2:
        m1 = lo_m + (hi_m - lo_m) // 3
        m2 = hi_m - (hi_m - lo_m) // 3
        if gap(m1) < gap(m2):
            lo_m = m1 + 1
        else:
            hi_m = m2
    best = max(range(lo_m, hi_m + 1), key=gap)
    lo, hi = interval(best)
    if lo > hi:
        return None
    return best, (lo if lo > -big else (hi if hi < big else 0))


def _fit_points(S: np.ndarray, u: np.ndarray, bits: int, max_shift: int = 62):
    """(mul, add, shift): per channel ``clamp((S*mul + add) >> shift, 0, 2**bits-1) == u`` at the points
    ``S`` (P, c), the smallest common shift; or None."""
    top = (1 << bits) - 1
    fits, shift = [], 0
    for ch in range(S.shape[1]):
        acc, col = [int(v) for v in S[:, ch]], [int(v) for v in u[:, ch]]
        while True:  # feasibility only grows with the shift: start at the shift reached so far
            f = _channel_fit(col, acc, top, shift)
            if f is not None:
                break
            if shift >= max_shift:
                return None
            shift += 1
        fits.append((f, shift))
    mul = [m << (shift - s) for (m, _), s in fits]
    add = [a << (shift - s) for (_, a), s in fits]
    for ch in range(S.shape[1]):
        for a, want in zip(S[:, ch], u[:, ch]):
            if min(max((int(a) * mul[ch] + add[ch]) >> shift, 0), top) != int(want):
                return None
    return mul, add, shift


def import_qonnx(path, *, input_scale: float | None = None) -> IntModel:
    """Compile the QONNX graph in ``path`` (or a ModelProto) to an :class:`IntModel`.

    Raises :class:`QonnxImportError` (a ValueError naming the file, node, op and the supported set)
    for graphs outside the supported subset (see the module docstring).
    """
    if isinstance(path, onnx.ModelProto):
        proto, where = path, "<model>"
    else:
        where = str(path)
        try:
            proto = onnx.load(where)
        except OSError:
            raise
        except Exception as exc:  # noqa: BLE001 - protobuf errors have no common base
            raise QonnxImportError(f"not an ONNX model ({type(exc).__name__}: {exc})", where) from None
    try:
        return _Importer(proto, where, input_scale).run()
    except QonnxImportError as exc:
        raise QonnxImportError(exc.reason, None if where == "<model>" else where) from None
