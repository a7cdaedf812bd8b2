"""The named models of binaccel's results table (what ``binaccel train --model NAME`` builds).

================  =============================================================================
name              what
================  =============================================================================
fp                full-precision CNN (float; exported after post-training int8 quantization)
sign              plain sign/XNOR baseline: sign(w) * mean|w|, sign activations, clipped STE
siman             SiMaN: half-half magnitude encoding, learned beta, Eq. 8 backward, no L2 on
                  binarized weights and their scales
siman_l2_nohh     SiMaN_1 of the paper's Table 1: L2 on, half-half off (optimal k of Eq. 14)
siman_nohh        SiMaN_2: L2 off, half-half off
siman_l2_hh       SiMaN_3: L2 on, half-half on
mcn               MCN, K=4 planes, full M-Filters, 1-bit activations
mcn_a4, mcn_a8    MCN with 4-bit / 8-bit unsigned activations (the paper's MCN keeps real ones)
mcn1              MCNs-1 (one scalar per plane), 1-bit activations
================  =============================================================================
"""

from __future__ import annotations

import torch

from .fold import fold
from .intmodel import IntModel
from .models import NetConfig, build
from .train import TrainConfig

__all__ = ["MODELS", "ABLATION", "configs", "SUMMARY_NAMES", "untrained_model"]

L2 = 5e-4

MODELS = {
    "fp": (dict(arch="fp"), dict(binary_weight_decay=L2)),
    "sign": (dict(arch="sign"), dict(binary_weight_decay=L2)),
    "siman": (dict(arch="siman"), dict(binary_weight_decay=0.0)),
    "siman_l2_nohh": (dict(arch="siman", half_half=False), dict(binary_weight_decay=L2)),
    "siman_nohh": (dict(arch="siman", half_half=False), dict(binary_weight_decay=0.0)),
    "siman_l2_hh": (dict(arch="siman"), dict(binary_weight_decay=L2)),
    "mcn": (dict(arch="mcn"), dict(binary_weight_decay=L2)),
    "mcn_a4": (dict(arch="mcn", act_bits=4), dict(binary_weight_decay=L2)),
    "mcn_a8": (dict(arch="mcn", act_bits=8), dict(binary_weight_decay=L2)),
    "mcn1": (dict(arch="mcn1"), dict(binary_weight_decay=L2)),
}

# SiMaN Table 1 rows: (name, L2 on binarized weights, half-half)
ABLATION = [
    ("siman_l2_nohh", True, False),
    ("siman_nohh", False, False),
    ("siman_l2_hh", True, True),
    ("siman", False, True),
]

SUMMARY_NAMES = ("fp", "sign", "siman", "mcn", "mcn_a8", "mcn1")


def configs(name: str, *, input_shape=None, classes=None, **train_overrides) -> tuple:
    """``(NetConfig, TrainConfig)`` of a named model."""
    if name not in MODELS:
        raise ValueError(f"unknown model {name!r}: expected one of {', '.join(MODELS)}")
    net, tr = MODELS[name]
    net = dict(net)
    if input_shape is not None:
        net["input_shape"] = tuple(input_shape)
    if classes is not None:
        net["classes"] = classes
    tr = {**tr, **{k: v for k, v in train_overrides.items() if v is not None}}
    return NetConfig(**net), TrainConfig(**tr)


def untrained_model(name: str, *, seed: int = 0) -> IntModel:
    """IntModel of a named architecture with freshly initialised (untrained) weights: a network of the
    right shapes for simulations and cycle counts (torch seeded with ``seed``)."""
    net, _ = configs(name)
    torch.manual_seed(seed)
    m = build(net)
    m.eval()
    return fold(m, name=f"{name}-untrained")
