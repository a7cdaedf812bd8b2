"""Importer stages of a layer: weights, the accumulator tail and the logits."""

from __future__ import annotations

import numpy as np

from ..intmodel import Layer
from .common import _EVAL_CELLS, _attrs, _pow2


class _LayerStages:
    """Layer stages of :class:`~binaccel.sw.qonnx_import.importer._Importer`."""

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
