"""Random integer layers and models, for tests and benchmarks (seeded, reproducible)."""

from __future__ import annotations

import numpy as np

from .intmodel import IntModel, Layer

__all__ = ["random_layer", "random_input", "random_model"]


def random_layer(rng: np.random.Generator, *, kind="conv", mode="plain", in_ch=8, in_h=6, in_w=6,
                 out_ch=8, kernel=3, stride=1, padding=1, in_bits=1, w_bits=1, planes=1, m_bits=8,
                 out_kind="sign", out_bits=4, pool=1, name="rand") -> Layer:
    """A valid random layer; thresholds and requant factors are drawn around the accumulator's range."""
    if kind == "fc":
        kernel, stride, padding, pool, mode, planes = 1, 1, 0, 1, "plain", 1
    layer = Layer(name=name, kind=kind, mode=mode, in_ch=in_ch, in_h=in_h, in_w=in_w, out_ch=out_ch,
                  kernel=kernel, stride=stride, padding=padding, in_bits=in_bits, w_bits=w_bits,
                  weights=np.zeros((1,)), out_kind=out_kind, planes=planes, pool=pool,
                  out_bits=1 if out_kind == "sign" else out_bits)
    shape = layer.weight_shape
    if w_bits == 1:
        layer.weights = rng.choice(np.array([-1, 1], dtype=np.int8), size=shape)
    else:
        layer.weights = rng.integers(-128, 128, size=shape, dtype=np.int64).astype(np.int8)
    if mode != "plain":
        layer.m_bits = m_bits
        mshape = (planes, kernel, kernel) if mode == "mcn" else (planes,)
        layer.mfilter = rng.integers(0, 1 << m_bits, size=mshape, dtype=np.int64)
    bound = max(layer.acc_bound(), 1)
    spread = max(int(np.sqrt(bound)), 1)
    n = out_ch
    if out_kind == "sign":
        layer.thresh = rng.integers(-spread, spread + 1, size=n, dtype=np.int64)
        layer.flip = rng.integers(0, 2, size=n, dtype=np.int64).astype(np.uint8)
    else:
        layer.shift = 8 if out_kind == "requant" else 4
        layer.mul = rng.integers(-(1 << 8), 1 << 8, size=n, dtype=np.int64)
        layer.add = rng.integers(-(1 << 12), 1 << 12, size=n, dtype=np.int64)
    layer.validate()
    return layer


def random_input(rng: np.random.Generator, layer: Layer, n: int = 1) -> np.ndarray:
    """Random layer input ``(n, C, H, W)`` of the layer's input width (int64)."""
    hi = 2 if layer.in_bits == 1 else 1 << layer.in_bits
    return rng.integers(0, hi, size=(n, layer.in_ch, layer.in_h, layer.in_w), dtype=np.int64)


def random_model(rng: np.random.Generator, *, mode="plain", planes=1, classes=10) -> IntModel:
    """A small random network of the MNIST shape: 8-bit input, binary hidden layers, fc logits."""
    k = planes if mode != "plain" else 1
    c1, c2 = 4 * k, 8 * k
    layers = [
        random_layer(rng, name="conv1", mode=mode, planes=planes, in_ch=k, in_h=12, in_w=12, out_ch=c1,
                     in_bits=8, pool=2),
        random_layer(rng, name="conv2", mode=mode, planes=planes, in_ch=c1, in_h=6, in_w=6, out_ch=c2,
                     stride=2),
        random_layer(rng, name="fc", kind="fc", in_ch=c2, in_h=3, in_w=3, out_ch=classes, out_kind="logits"),
    ]
    model = IntModel(name=f"random-{mode}", input_shape=(1, 12, 12), layers=layers, input_repeat=k,
                     classes=classes)
    model.validate()
    return model
