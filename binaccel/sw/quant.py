"""Brevitas quantizers for SiMaN, the sign/XNOR baseline and MCN, as declarative injectors.

Each quantizer is an :class:`~brevitas.inject.ExtendedInjector` passed as ``weight_quant=`` to
``brevitas.nn.QuantConv2d`` / ``QuantLinear`` or as ``act_quant=`` to ``QuantIdentity``; the
``tensor_quant`` modules return Brevitas' ``(value, scale, zero_point, bit_width)`` tuple, so
``layer.quant_weight().int()`` gives the {-1, +1} integers that are exported.

* :class:`SiMaNWeightQuant`: per output channel, centred latent weights are encoded to {0, 1} by
  magnitude (bit 1 for the top half, i.e. magnitude strictly above the lower median; Eq. 22), mapped
  to {-1, +1} (inverse of Eq. 11), times a learned per-channel scale beta (Eq. 5) initialised to
  ``mean |w|``. Straight-through gradient to the latent weights (Eq. 9). ``half_half=False`` gives the
  ablation without the half-half rule: the top-k magnitudes with k maximising
  ``sum_{i<=k} |w|_(i) / sqrt(k)`` (the exact solution of Eq. 14, Corollary 1).
  The bits are recomputed in training only; evaluation uses the stored bits.
* :class:`SignWeightQuant`: the plain XNOR-Net style baseline, ``sign(w) * mean|w|`` per channel.
* :class:`MCNWeightQuant`: projection onto U=2 centres (Eq. 3.1). The centres are constrained
  symmetric, ``{-a, +a}`` with ``a = mean |w|`` over the layer (the 2-means optimum for a symmetric
  pair), so the projection is ``a * sign(w)`` and the hardware sees only sign bits; ``a`` is folded
  into the scale at export.
* :class:`SignActQuant`: ``sign`` activations (Eq. 6, ``sign(0) = +1``) with the piecewise-polynomial
  backward of Eq. 8; :class:`SteSignActQuant`: the same forward with the clipped straight-through
  (hardtanh) backward, for the baseline.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from brevitas.inject import ExtendedInjector
from brevitas.proxy import ActQuantProxyFromInjector, WeightQuantProxyFromInjector

__all__ = [
    "SignPolyGrad", "sign_poly", "sign_ste", "half_half_bits", "optimal_k_bits",
    "SiMaNWeightQuant", "SiMaNNoHalfHalfWeightQuant", "SignWeightQuant", "MCNWeightQuant",
    "SignActQuant", "SteSignActQuant",
]


class _SignFunction(torch.autograd.Function):
    """sign(x) with sign(0) = +1 (Eq. 6); subclasses define the backward."""

    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return torch.where(x >= 0, torch.ones_like(x), -torch.ones_like(x))


class SignPolyGrad(_SignFunction):
    """Bi-Real piecewise polynomial backward (SiMaN Eq. 8): 2 + 2x on [-1, 0), 2 - 2x on [0, 1), 0 elsewhere."""

    @staticmethod
    def backward(ctx, g):
        (x,) = ctx.saved_tensors
        d = torch.zeros_like(x)
        d = torch.where((x >= -1) & (x < 0), 2 + 2 * x, d)
        d = torch.where((x >= 0) & (x < 1), 2 - 2 * x, d)
        return g * d


class SignSteGrad(_SignFunction):
    """Clipped straight-through backward (1 on [-1, 1])."""

    @staticmethod
    def backward(ctx, g):
        (x,) = ctx.saved_tensors
        return g * (x.abs() <= 1).to(g.dtype)


def sign_poly(x: Tensor) -> Tensor:
    return SignPolyGrad.apply(x)


def sign_ste(x: Tensor) -> Tensor:
    return SignSteGrad.apply(x)


def half_half_bits(w: Tensor) -> Tensor:
    """SiMaN Eq. 22 per output channel (dim 0): 1 where ``|w - mean|`` is strictly above the lower
    median of the channel, else 0. With distinct magnitudes exactly half the bits are 1
    (``n // 2`` ones for odd ``n``)."""
    flat = w.detach().reshape(w.shape[0], -1)
    mag = (flat - flat.mean(dim=1, keepdim=True)).abs()
    n = mag.shape[1]
    # rank-based so that ties cannot break the half-half count: the n//2 largest get 1
    order = mag.argsort(dim=1, descending=True, stable=True)
    bits = torch.zeros_like(mag)
    bits.scatter_(1, order[:, : n // 2], 1.0)
    return bits.reshape(w.shape)


def optimal_k_bits(w: Tensor) -> Tensor:
    """SiMaN Eq. 14 solved exactly per channel (the ablation without half-half): the top-k
    magnitudes get 1, with k maximising ``sum_{i<=k} |w|_(i) / sqrt(k)``."""
    flat = w.detach().reshape(w.shape[0], -1)
    mag = (flat - flat.mean(dim=1, keepdim=True)).abs()
    srt, order = mag.sort(dim=1, descending=True, stable=True)
    ks = torch.arange(1, mag.shape[1] + 1, dtype=mag.dtype, device=mag.device)
    k = (srt.cumsum(dim=1) / ks.sqrt()).argmax(dim=1) + 1
    keep = (ks[None, :] <= k[:, None]).to(mag.dtype)
    bits = torch.zeros_like(mag)
    bits.scatter_(1, order, keep)
    return bits.reshape(w.shape)


class _BinaryWeightTensorQuant(nn.Module):
    """Common part: per-output-channel scale, stored bits, Brevitas return tuple."""

    learn_scale = True

    def __init__(self, tracked_parameter_list):
        super().__init__()
        w = tracked_parameter_list[0]
        shape = (w.shape[0],) + (1,) * (w.dim() - 1)
        init = w.detach().abs().reshape(w.shape[0], -1).mean(dim=1).reshape(shape).clamp_min(1e-4)
        if self.learn_scale:
            self.scale = nn.Parameter(init.clone())
        else:
            self.register_buffer("scale", init.clone())
        self.register_buffer("bits", torch.zeros_like(w.detach()))
        self.register_buffer("has_bits", torch.tensor(False))
        self.register_buffer("zero_point", torch.tensor(0.0))
        self.register_buffer("bit_width", torch.tensor(1.0))

    def encode(self, w: Tensor) -> Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def current_scale(self, w: Tensor, refresh: bool) -> Tensor:
        return self.scale

    def ste_source(self, w: Tensor) -> Tensor:
        """The tensor the straight-through gradient (Eq. 9) flows into: ``w`` for sign quantizers."""
        return w

    def forward(self, w: Tensor):
        refresh = self.training or not bool(self.has_bits)
        if refresh:
            with torch.no_grad():
                self.bits.copy_(self.encode(w))
                self.has_bits.fill_(True)
        pm1 = 2 * self.bits - 1
        scale = self.current_scale(w, refresh)
        src = self.ste_source(w)
        y = (src - src.detach() + pm1) * scale
        return y, scale, self.zero_point, self.bit_width


class SiMaNTensorQuant(_BinaryWeightTensorQuant):
    def __init__(self, tracked_parameter_list, half_half: bool = True):
        super().__init__(tracked_parameter_list)
        self.half_half = half_half

    def encode(self, w):
        return half_half_bits(w) if self.half_half else optimal_k_bits(w)

    def ste_source(self, w):
        """The bits encode the magnitude, so the gradient flows through ``|w - mean|`` (as in the
        authors' code): a weight whose bit should become +1 grows in magnitude."""
        return (w - w.mean(dim=tuple(range(1, w.dim())), keepdim=True)).abs()


class SignTensorQuant(_BinaryWeightTensorQuant):
    """XNOR-Net style: sign(w) (+1 at 0), scale ``mean|w|`` per channel, recomputed (not learned)."""

    learn_scale = False

    def encode(self, w):
        return (w.detach() >= 0).to(w.dtype)

    def current_scale(self, w, refresh):
        if not refresh:
            return self.scale
        s = w.detach().abs().reshape(w.shape[0], -1).mean(dim=1).reshape(self.scale.shape).clamp_min(1e-8)
        self.scale.copy_(s)
        return s


class MCNTensorQuant(_BinaryWeightTensorQuant):
    """Symmetric two-centre projection: ``a * sign(w)``, ``a = mean|w|`` over the layer (one scalar,
    broadcast per channel so that Brevitas sees a per-channel scale)."""

    learn_scale = False

    def encode(self, w):
        return (w.detach() >= 0).to(w.dtype)

    def current_scale(self, w, refresh):
        if not refresh:
            return self.scale
        s = w.detach().abs().mean().clamp_min(1e-8).expand_as(self.scale).clone()
        self.scale.copy_(s)
        return s


class _BinaryWeightInjector(ExtendedInjector):
    proxy_class = WeightQuantProxyFromInjector
    bit_width = 1
    signed = True
    narrow_range = True


class SiMaNWeightQuant(_BinaryWeightInjector):
    """SiMaN half-half magnitude binarization with a learned per-channel scale."""
    tensor_quant = SiMaNTensorQuant
    half_half = True


class SiMaNNoHalfHalfWeightQuant(SiMaNWeightQuant):
    """Ablation: magnitude encoding with the optimal k of Eq. 14 instead of half-half."""
    half_half = False


class SignWeightQuant(_BinaryWeightInjector):
    """Baseline: ``sign(w) * mean|w|`` per output channel."""
    tensor_quant = SignTensorQuant


class MCNWeightQuant(_BinaryWeightInjector):
    """MCN projection onto symmetric centres {-a, +a} (Eq. 3.1 with U = 2)."""
    tensor_quant = MCNTensorQuant


class _SignActTensorQuant(nn.Module):
    fn = staticmethod(sign_poly)

    def __init__(self):
        super().__init__()
        self.register_buffer("scale", torch.tensor(1.0))
        self.register_buffer("zero_point", torch.tensor(0.0))
        self.register_buffer("bit_width", torch.tensor(1.0))

    def forward(self, x):
        return self.fn(x), self.scale, self.zero_point, self.bit_width


class _SteSignActTensorQuant(_SignActTensorQuant):
    fn = staticmethod(sign_ste)


class SignActQuant(ExtendedInjector):
    """sign activations, piecewise-polynomial backward (SiMaN Eq. 6-8)."""
    proxy_class = ActQuantProxyFromInjector
    tensor_quant = _SignActTensorQuant
    act_impl = None
    bit_width = 1
    signed = True
    narrow_range = True


class SteSignActQuant(SignActQuant):
    """sign activations, clipped straight-through backward (baseline)."""
    tensor_quant = _SteSignActTensorQuant


def mfilter_fixed_point(m: Tensor, bits: int) -> tuple:
    """Unsigned fixed point for a non-negative M-Filter: ``(ints, frac)`` with
    ``m ~= ints * 2**-frac``, the largest ``frac`` whose maximum still fits ``bits`` bits."""
    m = m.detach().double().clamp_min(0)
    top = float(m.max())
    frac = 0 if top <= 0 else math.floor(math.log2(((1 << bits) - 1) / top))
    ints = torch.round(m * 2.0 ** frac).clamp(0, (1 << bits) - 1).to(torch.int64)
    return ints, frac
