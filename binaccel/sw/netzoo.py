"""Paper-scale network shapes (CIFAR-10, 3x32x32 input) as random-weight integer models (:class:`IntModel`).

These are the shapes of the networks the SiMaN and MCN papers report on, cut to what the engine
runs (binary weights; kernel 1 or 3; stride 1 or 2; 2x2 max-pool; a chain of layers, no residual
adds). Every cut is listed in ``model.meta["cuts"]`` (and printed by ``binaccel bench``): the
cycle counts are those of the cut network, not of the paper's.

=================  ==============================================================================
name               shape
=================  ==============================================================================
resnet20_siman     SiMaN ResNet-20 (Bi-Real style double skip connections: a shortcut around
                   every 3x3 conv): conv1 3->16, 3 stages x 6 convs (16, 32, 64 channels; stride 2
                   entering stages 2 and 3), FC 10
vgg_small          VGG-small 1W1A (LQ-Nets/SiMaN): 128-128(pool)-256-256(pool)-512-512(pool),
                   FC ``512*4*4`` -> 10; each conv -> maxpool -> BN -> sign
mcn_wrn22          MCN, WRN-22 shape with K=4 planes: MCconv 3x3 everywhere, 16-16-32-64 learned
                   filters per stage (64-64-128-256 output channels), 3 blocks (6 MCconvs) per
                   stage, FC 10
=================  ==============================================================================

Weights, M-Filters and thresholds are drawn by :func:`binaccel.sw.randmodel.random_layer` from a
seeded generator; the networks are for timing, not accuracy.

:func:`torch_model` builds, for any IntModel, an equivalent PyTorch model of the same shapes:
``kind="float"`` (float convolutions, BatchNorm, ReLU, max-pool, linear: what a float network of
this shape costs on the CPU) or ``kind="brevitas"`` (Brevitas binary-weight convolutions with sign
activations, MCN layers as :class:`binaccel.sw.models.MCConv2d`).
"""

from __future__ import annotations

import numpy as np
import torch
from brevitas.nn import QuantConv2d, QuantIdentity, QuantLinear
from torch import nn

from .intmodel import IntModel
from .models import MCConv2d
from .quant import SignActQuant, SignWeightQuant
from .randmodel import random_layer

__all__ = ["NETWORKS", "build", "names", "torch_model"]

CIFAR_SHAPE = (3, 32, 32)


def _chain(rng, specs, *, in_shape, input_repeat=1, mode="plain", planes=1, classes=10,
           pos_pool_flip=False):
    """Layers from ``(name, out_ch, stride, pool)`` conv specs (3x3, pad 1) plus an FC logits layer."""
    c, h, w = in_shape
    c *= input_repeat
    bits = 8
    layers = []
    for name, out_ch, stride, pool in specs:
        layer = random_layer(rng, name=name, mode=mode, planes=planes, in_ch=c, in_h=h, in_w=w,
                             out_ch=out_ch, kernel=3, stride=stride, padding=1, in_bits=bits, pool=pool)
        if pos_pool_flip and pool == 2:
            layer.flip[:] = 0  # positive BN scale: threshold-then-pool == pool-then-threshold
        layers.append(layer)
        c, h, w, bits = layer.out_ch, layer.out_h, layer.out_w, 1
    layers.append(random_layer(rng, name="fc", kind="fc", in_ch=c, in_h=h, in_w=w, out_ch=classes,
                               out_kind="logits", in_bits=bits))
    return layers


def _resnet20_siman(rng):
    specs = [("conv1", 16, 1, 1)]
    for s, width in enumerate((16, 32, 64)):
        for i in range(6):
            specs.append((f"s{s + 1}c{i + 1}", width, 2 if (s > 0 and i == 0) else 1, 1))
    layers = _chain(rng, specs, in_shape=CIFAR_SHAPE)
    cuts = [
        "18 residual adds (one shortcut around every binarized 3x3 conv, Bi-Real/SiMaN double skip) "
        "cut: the integer format is a chain",
        "2 downsampling shortcuts (stride-2 entries of stages 2 and 3) cut",
        "conv1: the paper keeps it real-valued; here binary weights on the 8-bit pixels",
        "global 8x8 average pool cut: the FC layer takes the flattened 64x8x8 features (fan-in 4096)",
        "FC: the paper keeps it real-valued; here binary weights with per-class integer scale (logits)",
        "BN + sign folded to per-channel thresholds (no real-valued activations between layers)",
    ]
    return layers, CIFAR_SHAPE, 1, cuts, "SiMaN (Lin et al.) ResNet-20, CIFAR-10"


def _vgg_small(rng):
    specs = [("conv0", 128, 1, 1), ("conv1", 128, 1, 2), ("conv2", 256, 1, 1), ("conv3", 256, 1, 2),
             ("conv4", 512, 1, 1), ("conv5", 512, 1, 2)]
    layers = _chain(rng, specs, in_shape=CIFAR_SHAPE, pos_pool_flip=True)
    cuts = [
        "conv0 (first layer): the paper keeps it real-valued; here binary weights on the 8-bit pixels",
        "conv -> maxpool -> BN -> sign runs as conv -> BN+sign threshold -> maxpool (engine order; the "
        "same result for a positive BN scale, which the pooled layers here have: flip = 0)",
        "FC 8192 -> 10: the paper keeps it real-valued; here binary weights, integer logits; needs a "
        "build with max_fan_in >= 8192",
    ]
    return layers, CIFAR_SHAPE, 1, cuts, "VGG-small 1W1A (LQ-Nets / SiMaN), CIFAR-10"


def _mcn_wrn22(rng, planes=4):
    specs = [("conv1", 16 * planes, 1, 1)]
    for s, g in enumerate((16, 32, 64)):
        for i in range(6):
            last = s == 2 and i == 5
            specs.append((f"s{s + 1}c{i + 1}", g * planes, 2 if (s > 0 and i == 0) else 1, 2 if last else 1))
    layers = _chain(rng, specs, in_shape=CIFAR_SHAPE, input_repeat=planes, mode="mcn", planes=planes)
    cuts = [
        "9 residual adds (WRN basic blocks) and 2 downsampling shortcuts cut",
        "activations 1-bit (the project's MCN); the MCN paper's MCNs keep real-valued activations",
        "global 8x8 average pool replaced by a 2x2 max-pool on the last MCconv; FC over 256x4x4 (fan-in 4096)",
        "FC: binary weights, integer logits (the paper keeps it real-valued)",
        "input channels repeated K=4 times (the project's MCN input layout)",
    ]
    return layers, CIFAR_SHAPE, planes, cuts, "MCN (Wang et al.) WRN-22 shape, K=4, CIFAR-10"


NETWORKS = {
    "resnet20_siman": _resnet20_siman,
    "vgg_small": _vgg_small,
    "mcn_wrn22": _mcn_wrn22,
}


def names() -> tuple:
    return tuple(NETWORKS)


def build(name: str, *, seed: int = 0) -> IntModel:
    """The random-weight IntModel of network ``name`` (seeded); ``meta`` holds ``cuts`` and ``paper``."""
    if name not in NETWORKS:
        raise ValueError(f"unknown network {name!r}: expected one of {', '.join(NETWORKS)}")
    rng = np.random.default_rng(seed)
    layers, shape, repeat, cuts, paper = NETWORKS[name](rng)
    model = IntModel(name=name, input_shape=shape, layers=layers, input_repeat=repeat, classes=10,
                     meta={"cuts": cuts, "paper": paper, "seed": seed, "weights": "random"})
    model.validate()
    return model


def torch_model(model: IntModel, *, kind: str = "float"):
    """An ``nn.Module`` with the layer shapes of ``model`` taking float images ``(N, C, H, W)``
    (channels already repeated for MCN): ``kind="float"`` or ``"brevitas"`` (module docstring).
    Weights are random; in eval mode."""
    if kind not in ("float", "brevitas"):
        raise ValueError(f"kind: expected 'float' or 'brevitas', got {kind!r}")
    mods = []
    for layer in model.layers:
        if layer.kind == "fc":
            mods.append(nn.Flatten())
            if kind == "float":
                mods.append(nn.Linear(layer.fan_in, layer.out_ch))
            else:
                mods.append(QuantLinear(layer.fan_in, layer.out_ch, bias=True, weight_quant=SignWeightQuant))
            mods.append(nn.BatchNorm1d(layer.out_ch))
            continue
        k, s, p = layer.kernel, layer.stride, layer.padding
        if kind == "float":
            mods.append(nn.Conv2d(layer.in_ch, layer.out_ch, k, stride=s, padding=p, bias=False))
        elif layer.mode in ("mcn", "mcn1"):
            mods.append(MCConv2d(layer.in_ch, layer.groups, k, planes=layer.planes, stride=s, padding=p,
                                 mcn1=layer.mode == "mcn1"))
        else:
            mods.append(QuantConv2d(layer.in_ch, layer.out_ch, k, stride=s, padding=p, bias=False,
                                    weight_quant=SignWeightQuant))
        mods.append(nn.BatchNorm2d(layer.out_ch))
        if kind == "float":
            mods.append(nn.ReLU())
        else:
            mods.append(QuantIdentity(act_quant=SignActQuant, return_quant_tensor=False))
        if layer.pool == 2:
            mods.append(nn.MaxPool2d(2))
    net = nn.Sequential(*mods)
    net.eval()
    with torch.no_grad():  # one call fixes the Brevitas weight bits (eval mode caches them)
        c = model.input_shape[0] * model.input_repeat
        net(torch.zeros(1, c, *model.input_shape[1:]))
    return net
