"""From a trained Brevitas golden model to the integer model, and the model's own integer forward.

Folding (per layer, in float64 from the trained float parameters):

* weight integers come from the Brevitas quantizers (``quant_weight().int()``: {-1, +1} or int8);
  full-precision layers (the ``fp`` model) are quantized post-training to int8 per channel;
* MCN M-Filters (the per-plane means for MCNs-1) become unsigned fixed point with ``m_bits`` bits
  and a per-layer binary point (:func:`binaccel.sw.quant.mfilter_fixed_point`);
* per output channel, scale x BatchNorm is ``alpha * acc + beta`` with
  ``alpha = s_w * s_in * gamma / sqrt(var + eps)`` and ``beta = beta_bn - mean * gamma / sqrt(var + eps)``;
* sign outputs become an integer threshold (``acc >= ceil(-beta/alpha)``, the comparison flipped
  where ``alpha < 0``); multi-bit outputs become ``clamp((acc*mul + add) >> shift)`` reproducing
  ``round(y / s_out)`` (round half up) with ``mul`` kept to 16 signed bits; logits become
  ``acc*mul + add`` with ``shift`` fractional bits.

The *float* model (``model(x)``) and the *integer* model differ only by those fixed-point roundings:
the accuracy change is reported by :func:`accuracy_report`. :func:`int_forward` runs the Brevitas
model's own quantized weights through torch with the folded integer post-processing; it is the
"Brevitas model read as integers" that the numpy reference must equal for every layer and image.

The model file's ``meta`` records what the integers were folded from: ``arch``, ``act_bits``,
``planes``, ``first``, ``last`` of the network's configuration and ``weights_sha256``, the digest of
its weights (:func:`weights_sha256`), by which a checkpoint and a model file are matched
(:func:`binaccel.sw.pipeline.check_pair`).
"""

from __future__ import annotations

import hashlib
import math

import numpy as np
import torch
import torch.nn.functional as F
from brevitas.nn import QuantConv2d, QuantLinear, QuantReLU

from .intmodel import IntModel, Layer, ModelFormatError
from .models import BinNet, MCConv2d, _is_binary
from .quant import mfilter_fixed_point

__all__ = ["fold", "int_forward", "brevitas_int_weights", "weights_sha256", "MUL_BITS", "ADD_BITS"]

MUL_BITS = 16  # signed width of requant / logit multipliers
ADD_BITS = 32  # signed width of requant / logit offsets (the accelerator's default ``add_bits``)


def weights_sha256(model: BinNet) -> str:
    """SHA-256 of the network's state (every parameter and buffer: name, dtype, shape and bytes, in
    name order): equal for a model and the same model saved and loaded again. The binary weight
    quantizers store their bits at their first call in eval mode (:mod:`binaccel.sw.quant`), so
    :func:`fold` takes it before it runs them, as a checkpoint has it."""
    h = hashlib.sha256()
    for name, t in sorted(model.state_dict().items()):
        t = t.detach().cpu().contiguous()
        h.update(f"{name}\0{t.dtype}\0{tuple(t.shape)}\0".encode())
        h.update(t.numpy().tobytes())
    return h.hexdigest()


def _bn_affine(bn) -> tuple:
    g = bn.weight.detach().double() / torch.sqrt(bn.running_var.double() + bn.eps)
    b = bn.bias.detach().double() - bn.running_mean.double() * g
    return g, b


def _fixed_shift(ratio_max: float) -> int:
    """Largest shift such that ``round(ratio_max * 2**shift)`` fits MUL_BITS signed bits."""
    if ratio_max <= 0 or not math.isfinite(ratio_max):
        return 0
    shift = math.floor(math.log2(((1 << (MUL_BITS - 1)) - 1) / ratio_max))
    return int(min(max(shift, 0), 40))


def _requant_params(ratio, offset, shift, *, acc_bound=None, out_bits=None, round_add=False):
    """``mul = round(ratio * 2**shift)``, ``add = floor(offset * 2**shift)`` (``round`` with
    ``round_add``) with ``add`` fitting :data:`ADD_BITS` signed bits.

    For a clamped (requant) output, an offset so large that the output saturates for every
    reachable accumulator (``|acc| <= acc_bound``) is first replaced by the smallest offset with the
    same effect: exact for every input. If an offset still does not fit, the shift is lowered (fewer
    fractional bits for every channel of the layer) until it does."""
    lim = (1 << (ADD_BITS - 1)) - 1
    while True:
        mul = np.round(ratio * 2.0 ** shift).astype(np.int64)
        add = (np.round if round_add else np.floor)(offset * 2.0 ** shift)
        if acc_bound is not None:
            reach = np.abs(mul).astype(np.float64) * float(acc_bound)
            hi = reach + float((1 << out_bits) << shift)      # acc*mul + hi >= 2**out_bits << shift: top code
            lo = -reach - 1.0                                   # acc*mul + lo < 0: code 0
            add = np.clip(add, lo, hi)
        if np.abs(add).max(initial=0.0) <= lim or shift == 0:
            return mul, add.astype(np.int64), shift
        shift -= 1


def _ptq_int8(w: torch.Tensor) -> tuple:
    flat = w.detach().double().reshape(w.shape[0], -1)
    s = flat.abs().max(dim=1).values.clamp_min(1e-12) / 127.0
    ints = torch.round(flat / s[:, None]).clamp(-127, 127).reshape(w.shape).to(torch.int64)
    return ints, s


def brevitas_int_weights(model: BinNet) -> list:
    """Per layer ``(weight integers, per-output-weight-row scale)`` as the quantizers produce them."""
    out = []
    for m in list(model.convs) + [model.fc]:
        if isinstance(m, (QuantConv2d, QuantLinear)):
            qw = m.quant_weight()
            ints = qw.int().to(torch.int64)
            scale = qw.scale.detach().double().reshape(-1)
            if scale.numel() == 1:
                scale = scale.expand(ints.shape[0])
            out.append((ints, scale))
        else:
            out.append(_ptq_int8(m.weight))
    return out


@torch.no_grad()
def _calibrate_fp(model: BinNet, calib: np.ndarray) -> list:
    """Max ReLU output per conv stage of a float model on calibration images (for uint8 PTQ)."""
    x = model.prepare_input(torch.as_tensor(calib))
    tops = []
    for conv, bn, act, pool in zip(model.convs, model.bns, model.acts, model.pools):
        x = act(bn(conv(x)))
        tops.append(float(x.max()))
        if pool == 2:
            x = F.max_pool2d(x, 2)
    return tops


def _threshold(alpha, beta, bound):
    t = np.empty(len(alpha), dtype=np.int64)
    flip = np.zeros(len(alpha), dtype=np.uint8)
    for o, (a, b) in enumerate(zip(alpha.tolist(), beta.tolist())):
        if a > 0:
            v = math.ceil(-b / a)
        elif a < 0:
            v, flip[o] = math.floor(-b / a), 1
        else:
            v = -bound - 1 if b >= 0 else bound + 1
        t[o] = min(max(v, -bound - 1), bound + 1)
    return t, flip


@torch.no_grad()
def fold(model: BinNet, *, name: str | None = None, m_bits: int = 8, calib: np.ndarray | None = None) -> IntModel:
    """The :class:`IntModel` of a trained golden model (eval mode).

    ``calib``: uint8 images used only by the full-precision model to choose its uint8 activation scales.
    """
    model.eval()
    digest = weights_sha256(model)  # before the quantizers' first eval call stores their bits
    cfg = model.cfg
    if cfg.arch != "fp" and (cfg.first == "fp" or cfg.last == "fp"):
        raise ModelFormatError("layers[conv1]" if cfg.first == "fp" else "layers[fc]",
                               "full-precision first/last layers cannot be expressed in the integer format; "
                               "train with first/last 'binary' or 'int8'")
    fp_tops = None
    if cfg.arch == "fp":
        if calib is None:
            raise ValueError("fold: the full-precision model needs calibration images (calib=)")
        fp_tops = _calibrate_fp(model, calib)
    weights = brevitas_int_weights(model)
    c, h, w = cfg.input_shape
    c *= cfg.input_repeat
    in_bits, s_in = 8, 1.0 / 255.0
    layers = []
    for i, (conv, bn, act, pool) in enumerate(zip(model.convs, model.bns, model.acts, model.pools)):
        w_int, s_w = weights[i]
        k, stride, pad = conv.kernel_size[0], conv.stride[0], conv.padding[0]
        layer = Layer(name=f"conv{i + 1}", kind="conv", mode="plain", in_ch=c, in_h=h, in_w=w,
                      out_ch=cfg.widths[i], kernel=k, stride=stride, padding=pad, in_bits=in_bits,
                      w_bits=1 if _is_binary(conv) else 8,
                      weights=w_int.numpy().astype(np.int8), out_kind="sign", pool=pool)
        if isinstance(conv, MCConv2d):
            m_eff = conv.effective_m()
            if conv.mcn1:
                m_eff = m_eff[:, 0, 0]
            m_int, frac = mfilter_fixed_point(m_eff, m_bits)
            layer.mode = "mcn1" if conv.mcn1 else "mcn"
            layer.planes, layer.mfilter, layer.m_bits = conv.planes, m_int.numpy(), m_bits
            # every output channel g*K+j carries a * 2**-frac
            s_w = s_w.repeat_interleave(conv.planes) * 2.0 ** -frac
        g, b = _bn_affine(bn)
        alpha = (s_w * s_in * g).numpy()
        beta = b.numpy()
        if isinstance(act, QuantReLU) or cfg.arch == "fp":
            bits = 8 if cfg.arch == "fp" else int(act.act_quant.bit_width())
            s_out = (fp_tops[i] / 255.0 if cfg.arch == "fp" else float(act.act_quant.scale()))
            s_out = max(s_out, 1e-12)
            ratio = alpha / s_out
            shift = _fixed_shift(float(np.abs(ratio).max()))
            layer.mul, layer.add, shift = _requant_params(ratio, beta / s_out + 0.5, shift,
                                                          acc_bound=layer.acc_bound(), out_bits=bits)
            layer.out_kind, layer.out_bits, layer.shift = "requant", bits, shift
            in_bits, s_in = bits, s_out
        else:
            layer.thresh, layer.flip = _threshold(alpha, beta, layer.acc_bound())
            in_bits, s_in = 1, 1.0
        layers.append(layer)
        c, h, w = layer.out_ch, layer.out_h, layer.out_w
    # last layer: fc -> BN -> logits
    w_int, s_w = weights[-1]
    fcw = w_int.numpy()
    bias = model.fc.bias.detach().double() if model.fc.bias is not None else torch.zeros(cfg.classes, dtype=torch.float64)
    g, b = _bn_affine(model.fc_bn)
    alpha = (s_w * s_in * g).numpy()
    beta = (bias * g + b).numpy()
    shift = _fixed_shift(float(np.abs(alpha).max()))
    fc_mul, fc_add, shift = _requant_params(alpha, beta, shift, round_add=True)
    fc = Layer(name="fc", kind="fc", mode="plain", in_ch=c, in_h=h, in_w=w, out_ch=cfg.classes, kernel=1,
               stride=1, padding=0, in_bits=in_bits,
               w_bits=1 if _is_binary(model.fc) else 8,
               weights=fcw.astype(np.int8), out_kind="logits", shift=shift,
               mul=fc_mul, add=fc_add)
    layers.append(fc)
    meta = {"arch": cfg.arch, "act_bits": cfg.act_bits, "planes": cfg.planes, "first": cfg.first,
            "last": cfg.last, "logit_shift": shift, "weights_sha256": digest}
    im = IntModel(name=name or cfg.arch, input_shape=tuple(cfg.input_shape), layers=layers,
                  input_repeat=cfg.input_repeat, classes=cfg.classes, meta=meta)
    im.validate()
    return im


@torch.no_grad()
def int_forward(model: BinNet, intmodel: IntModel, images: np.ndarray, *, batch: int = 250) -> list:
    """Per-layer integer outputs of the Brevitas model: its quantizers' weight integers
    (:func:`brevitas_int_weights`), convolved by torch in float64 (exact for these ranges), then
    the folded integer post-processing in int64. Same output layout as ``intref.run_model``."""
    model.eval()
    weights = brevitas_int_weights(model)
    x_all = torch.as_tensor(np.asarray(images)).to(torch.int64)
    if x_all.dim() == 3:
        x_all = x_all[:, None]
    if intmodel.input_repeat > 1:
        x_all = x_all.repeat_interleave(intmodel.input_repeat, dim=1)
    outs = [[] for _ in intmodel.layers]
    for s in range(0, len(x_all), batch):
        x = x_all[s:s + batch]
        for li, (layer, (w_int, _)) in enumerate(zip(intmodel.layers, weights)):
            vals = (2 * x - 1 if layer.in_bits == 1 else x).double()
            wd = w_int.double()
            if layer.kind == "fc":
                acc = (vals.flatten(1) @ wd.reshape(layer.out_ch, -1).T)[:, :, None, None]
            elif layer.mode == "plain":
                acc = F.conv2d(vals, wd, stride=layer.stride, padding=layer.padding)
            else:
                m = torch.as_tensor(layer.mfilter).double()
                if layer.mode == "mcn1":
                    m = m[:, None, None].expand(layer.planes, layer.kernel, layer.kernel)
                q = (wd[:, None] * m[None, :, None]).reshape(layer.out_ch, layer.in_ch, layer.kernel, layer.kernel)
                acc = F.conv2d(vals, q, stride=layer.stride, padding=layer.padding)
            acc = acc.round().to(torch.int64)
            shape = (1, -1, 1, 1)
            if layer.out_kind == "sign":
                t = torch.as_tensor(layer.thresh).reshape(shape)
                f = torch.as_tensor(layer.flip.astype(bool)).reshape(shape)
                y = torch.where(f, acc <= t, acc >= t).to(torch.int64)
            else:
                y = acc * torch.as_tensor(layer.mul).reshape(shape) + torch.as_tensor(layer.add).reshape(shape)
                if layer.out_kind == "requant":
                    y = torch.clamp(torch.div(y, 1 << layer.shift, rounding_mode="floor"), 0, (1 << layer.out_bits) - 1)
            if layer.pool == 2:
                y = F.max_pool2d(y.double(), 2).to(torch.int64)
            outs[li].append(y.numpy())
            x = y
    return [np.concatenate(o) for o in outs]
