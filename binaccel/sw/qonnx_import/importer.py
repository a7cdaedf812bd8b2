"""The QONNX importer: walks the graph's chain and builds the IntModel's layers."""

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

from ..intmodel import IntModel, ModelFormatError
from .activations import _ActivationStages
from .common import _ELEMENTWISE, _LAYOUT, DEFAULT_INPUT_SCALE, SUPPORTED, QonnxImportError, _attrs, _pow2
from .layers import _LayerStages


class _Importer(_ActivationStages, _LayerStages):
    """One QONNX graph being compiled to an IntModel (its chain of nodes, constants and layers)."""

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
