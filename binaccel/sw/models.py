"""Golden models: full-precision CNN, sign/XNOR baseline, SiMaN and MCN (MCNs, MCNs-1), in Brevitas.

All models share one topology (chosen for 28x28 MNIST, parametric in the input shape):

=====  ======================================================  ======================
name   layer                                                   output
=====  ======================================================  ======================
conv1  3x3 conv, pad 1, 8-bit pixels in -> BN -> act -> pool2  C1 x H/2 x W/2
conv2  3x3 conv, pad 1 -> BN -> act -> pool2                   C2 x H/4 x W/4
conv3  3x3 conv, pad 1, stride 2 -> BN -> act                  C3 x H/8 x W/8 (ceil)
fc     linear -> BN (per-class scale + bias)                   10 logits
=====  ======================================================  ======================

``act`` is ``sign`` (1-bit), an unsigned ``b``-bit QuantReLU (MCN multi-bit), or ReLU (fp).
The first and last layers can be binary (default: the accelerator runs them), 8-bit or
full-precision (``first=``/``last=``; full precision cannot be exported to the integer format).

MCN layers (``MCConv2d``) hold latent weights ``(G, C_in, k, k)`` and one non-negative M-Filter
``(K, k, k)`` per layer; the reconstructed filter of output channel ``g*K + j`` is
``C_hat[g] * M[j]`` (Eq. 3.10-3.12, channels interleaved) and the output planes follow Eq. 3.14-3.15.
MCNs-1 uses the per-plane average of M in the forward pass (Section III-E) while M keeps its full
shape for the update rule.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from brevitas.nn import QuantConv2d, QuantIdentity, QuantLinear, QuantReLU
from brevitas.quant import Int8WeightPerChannelFloat, Uint8ActPerTensorFloat

from . import quant as Q

__all__ = ["NetConfig", "MCConv2d", "BinNet", "build", "ARCHS"]

ARCHS = ("fp", "sign", "siman", "mcn", "mcn1")


@dataclass
class NetConfig:
    """What to build. ``widths`` are output channels per conv (for MCN: G*K, so G = width // K)."""

    arch: str = "siman"
    widths: tuple = (16, 32, 64)
    planes: int = 4
    act_bits: int = 1
    first: str = "binary"
    last: str = "binary"
    half_half: bool = True
    input_shape: tuple = (1, 28, 28)
    classes: int = 10
    extra: dict = field(default_factory=dict)

    def __post_init__(self):
        self.widths = tuple(int(w) for w in self.widths)
        self.input_shape = tuple(int(s) for s in self.input_shape)
        if self.arch not in ARCHS:
            raise ValueError(f"NetConfig.arch: expected one of {ARCHS}, got {self.arch!r}")
        for name in ("first", "last"):
            if getattr(self, name) not in ("binary", "int8", "fp"):
                raise ValueError(f"NetConfig.{name}: expected 'binary', 'int8' or 'fp', got {getattr(self, name)!r}")
        if self.arch in ("mcn", "mcn1"):
            if self.planes < 1 or any(w % self.planes for w in self.widths):
                raise ValueError(f"NetConfig.widths: every width must be a multiple of planes={self.planes}, got {self.widths}")
        if self.arch == "fp":
            self.first = self.last = "fp"
        if self.arch != "fp" and self.act_bits != 1 and not (self.is_mcn and 2 <= self.act_bits <= 8):
            raise ValueError(f"NetConfig.act_bits: expected 1, or 2..8 for MCN models, got {self.act_bits}")

    def to_dict(self):
        return asdict(self)

    @property
    def is_mcn(self):
        return self.arch in ("mcn", "mcn1")

    @property
    def input_repeat(self):
        return self.planes if self.is_mcn else 1


class MCConv2d(QuantConv2d):
    """Modulated convolution (MCconv): binarized latent filters modulated by a shared M-Filter.

    ``weight``: latent filters ``(G, C_in, k, k)``; ``mfilter``: ``(K, k, k)``, kept >= 0 by the
    update rule ``M <- |M - eta*grad|`` (Eq. 3.21, see :meth:`project_m`). Output: ``G*K`` channels.
    """

    def __init__(self, in_channels, groups_out, kernel_size, *, planes=4, stride=1, padding=0, mcn1=False):
        super().__init__(in_channels, groups_out, kernel_size, stride=stride, padding=padding, bias=False,
                         weight_quant=Q.MCNWeightQuant)
        self.planes = planes
        self.mcn1 = mcn1
        k = self.kernel_size[0]
        g = torch.Generator().manual_seed(1234 + in_channels * 31 + groups_out)
        self.mfilter = nn.Parameter(1.0 + 0.1 * torch.rand(planes, k, k, generator=g))

    @property
    def out_planes(self):
        return self.out_channels * self.planes

    def effective_m(self) -> torch.Tensor:
        m = self.mfilter.abs()
        if self.mcn1:
            m = m.mean(dim=(1, 2), keepdim=True).expand_as(m)
        return m

    def reconstructed(self) -> torch.Tensor:
        """Q: ``(G*K, C_in, k, k)`` with ``Q[g*K + j] = C_hat[g] * M[j]``."""
        c_hat = self.quant_weight().value  # a * sign(w)
        q = c_hat[:, None] * self.effective_m()[None, :, None]
        return q.reshape(-1, *c_hat.shape[1:])

    def forward(self, x):
        return F.conv2d(x, self.reconstructed(), None, self.stride, self.padding)

    def filter_loss(self) -> torch.Tensor:
        """sum_j ||C - C_hat o M_j||^2 (the first term of Eq. 3.8, without theta/2)."""
        c_hat = self.quant_weight().value
        diff = self.weight[:, None] - c_hat[:, None] * self.mfilter.abs()[None, :, None]
        return (diff ** 2).sum()

    def proximal_loss(self) -> torch.Tensor:
        """||C_hat - C||^2 with C_hat fixed (the quantization term of Eq. 3.9)."""
        return ((self.quant_weight().value.detach() - self.weight) ** 2).sum()

    @torch.no_grad()
    def project_m(self):
        self.mfilter.abs_()


def _weight_quant(cfg: NetConfig):
    if cfg.arch == "siman":
        return Q.SiMaNWeightQuant if cfg.half_half else Q.SiMaNNoHalfHalfWeightQuant
    return Q.SignWeightQuant


def _act(cfg: NetConfig):
    if cfg.arch == "fp":
        return nn.ReLU()
    if cfg.act_bits > 1:
        return QuantReLU(act_quant=Uint8ActPerTensorFloat, bit_width=cfg.act_bits, return_quant_tensor=False)
    grad = Q.SteSignActQuant if cfg.arch == "sign" else Q.SignActQuant
    return QuantIdentity(act_quant=grad, return_quant_tensor=False)


class BinNet(nn.Module):
    """The golden model. ``forward`` takes float images ``pixel / 255`` of shape (N, C, H, W)."""

    def __init__(self, cfg: NetConfig):
        super().__init__()
        self.cfg = cfg
        c_in, h, w = cfg.input_shape
        c_in *= cfg.input_repeat
        self.convs, self.bns, self.acts, self.pools = nn.ModuleList(), nn.ModuleList(), nn.ModuleList(), []
        specs = [(3, 1, 1, 2), (3, 1, 1, 2), (3, 2, 1, 1)]  # kernel, stride, padding, pool
        for i, (width, (k, s, p, pool)) in enumerate(zip(cfg.widths, specs)):
            kind = cfg.first if i == 0 else ("fp" if cfg.arch == "fp" else "binary")
            if cfg.is_mcn:
                conv = MCConv2d(c_in, width // cfg.planes, k, planes=cfg.planes, stride=s, padding=p,
                                mcn1=cfg.arch == "mcn1")
            elif kind == "fp":
                conv = nn.Conv2d(c_in, width, k, stride=s, padding=p, bias=False)
            elif kind == "int8":
                conv = QuantConv2d(c_in, width, k, stride=s, padding=p, bias=False, weight_quant=Int8WeightPerChannelFloat)
            else:
                conv = QuantConv2d(c_in, width, k, stride=s, padding=p, bias=False, weight_quant=_weight_quant(cfg))
            self.convs.append(conv)
            self.bns.append(nn.BatchNorm2d(width))
            self.acts.append(_act(cfg))
            self.pools.append(pool)
            h = (h + 2 * p - k) // s + 1
            w = (w + 2 * p - k) // s + 1
            h, w = h // pool, w // pool
            c_in = width
        self.feature_shape = (c_in, h, w)
        n_feat = c_in * h * w
        if cfg.last == "fp":
            self.fc = nn.Linear(n_feat, cfg.classes, bias=True)
        elif cfg.last == "int8":
            self.fc = QuantLinear(n_feat, cfg.classes, bias=True, weight_quant=Int8WeightPerChannelFloat)
        else:
            wq = Q.SignWeightQuant if cfg.is_mcn else _weight_quant(cfg)
            self.fc = QuantLinear(n_feat, cfg.classes, bias=True, weight_quant=wq)
        # BatchNorm on the logits keeps a binary last layer (fan-in ~1000) well scaled; folded at export.
        self.fc_bn = nn.BatchNorm1d(cfg.classes)
        # center loss state (MCN, Eq. 3.8 second term)
        self.register_buffer("centers", torch.zeros(cfg.classes, n_feat))
        self._features = None

    def prepare_input(self, images_uint8: torch.Tensor) -> torch.Tensor:
        x = images_uint8.to(torch.float32) / 255.0
        if self.cfg.input_repeat > 1:
            x = x.repeat_interleave(self.cfg.input_repeat, dim=1)
        return x

    def forward(self, x):
        for conv, bn, act, pool in zip(self.convs, self.bns, self.acts, self.pools):
            x = act(bn(conv(x)))
            if pool == 2:
                x = F.max_pool2d(x, 2)
        feat = x.flatten(1)
        self._features = feat
        return self.fc_bn(self.fc(feat))

    # -- MCN losses -------------------------------------------------------------------------------
    def mcn_layers(self):
        return [c for c in self.convs if isinstance(c, MCConv2d)]

    def center_loss(self, labels: torch.Tensor, *, alpha: float = 0.5) -> torch.Tensor:
        """sum_m ||f_m - c_{y_m}||^2 / batch, with the centres updated as a running average."""
        f = self._features
        loss = ((f - self.centers[labels]) ** 2).sum(dim=1).mean()
        if self.training:
            with torch.no_grad():
                for y in labels.unique():
                    sel = f[labels == y].detach()
                    self.centers[y] += alpha * (sel.mean(dim=0) - self.centers[y])
        return loss

    # -- bookkeeping ------------------------------------------------------------------------------
    def binarized_parameters(self):
        """Binarized latent weights and their scales (SiMaN: no weight decay on these)."""
        out = []
        for m in list(self.convs) + [self.fc]:
            if isinstance(m, (QuantConv2d, QuantLinear)) and _is_binary(m):
                out.append(m.weight)
                out.extend(p for n, p in m.named_parameters() if n.startswith("weight_quant"))
        return out

    def weight_bits(self, m_bits: int = 8) -> int:
        """Storage of the weights as deployed: 1 bit per binary weight, 8 per int8 weight, 32 per
        float weight, plus the M-Filters at ``m_bits`` (MCN: K*k*k values, MCNs-1: K values)."""
        total = 0
        for m in list(self.convs) + [self.fc]:
            n = m.weight.numel()
            if isinstance(m, (QuantConv2d, QuantLinear)):
                total += n * (1 if _is_binary(m) else 8)
            else:
                total += 32 * n
            if isinstance(m, MCConv2d):
                total += m_bits * (m.planes if m.mcn1 else m.mfilter.numel())
        return total

    def binary_fraction(self) -> float:
        """Fraction of +1 among the binarized conv weights (SiMaN Fig. 4 p_{+1})."""
        ones = total = 0
        for m in self.convs:
            if isinstance(m, QuantConv2d) and _is_binary(m) and not isinstance(m, MCConv2d):
                b = m.quant_weight().int()
                ones += int((b > 0).sum())
                total += b.numel()
        return ones / total if total else float("nan")


def _is_binary(m) -> bool:
    """True for a Brevitas layer whose weight quantizer is one of binaccel's binary quantizers."""
    if not isinstance(m, (QuantConv2d, QuantLinear)):
        return False
    tq = getattr(m.weight_quant, "tensor_quant", None)
    return isinstance(tq, Q._BinaryWeightTensorQuant)


def build(cfg: NetConfig | dict) -> BinNet:
    if isinstance(cfg, dict):
        cfg = NetConfig(**cfg)
    return BinNet(cfg)
