"""Importer stages of activations: the input quantizer, sign and requant outputs."""


from __future__ import annotations


import numpy as np


from ..intmodel import Layer
from ..intref import postprocess
from .common import _EVAL_CELLS, _VERIFY_CELLS, _attrs, _pow2, graph_input
from .fit import _fit_points, _search



class _ActivationStages:
    """Activation stages of :class:`~binaccel.sw.qonnx_import.importer._Importer`."""

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
