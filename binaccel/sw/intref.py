"""Plain numpy integer reference: executes an :class:`~binaccel.sw.intmodel.IntModel`.

Every function here works on whole integer tensors (``int64`` unless stated) and is the definition the
Brevitas golden models and the hardware are checked against, element for element. The arithmetic is
documented in :mod:`binaccel.sw.intmodel`.

Two implementations of the accumulator exist on purpose: :func:`accumulate` (im2col and an integer
matrix product, the readable definition) and :func:`accumulate_packed` (bit-packed XNOR/AND and
``np.bitwise_count``, what the hardware and a fast CPU do); tests check they agree.
"""

from __future__ import annotations

import numpy as np

from .intmodel import IntModel, Layer

__all__ = [
    "input_values", "im2col", "tap_partials", "accumulate", "accumulate_packed", "postprocess",
    "maxpool2", "run_layer", "run_model", "predict",
]


def input_values(layer: Layer, x: np.ndarray) -> np.ndarray:
    """The signed values a layer multiplies: ``2*b - 1`` for binary inputs, ``x`` otherwise (int64)."""
    x = np.asarray(x, dtype=np.int64)
    return 2 * x - 1 if layer.in_bits == 1 else x


def im2col(values: np.ndarray, kernel: int, stride: int, padding: int) -> np.ndarray:
    """``(N, C, H, W)`` -> ``(N, C, k, k, Ho, Wo)`` with zero padding (padded taps are 0)."""
    n, c, h, w = values.shape
    v = np.pad(values, ((0, 0), (0, 0), (padding, padding), (padding, padding)))
    ho = (h + 2 * padding - kernel) // stride + 1
    wo = (w + 2 * padding - kernel) // stride + 1
    out = np.empty((n, c, kernel, kernel, ho, wo), dtype=np.int64)
    for ky in range(kernel):
        for kx in range(kernel):
            out[:, :, ky, kx] = v[:, :, ky:ky + stride * ho:stride, kx:kx + stride * wo:stride]
    return out


def tap_partials(layer: Layer, x: np.ndarray) -> np.ndarray:
    """Per-tap partial sums ``P[n, g, ky, kx, y, x]`` of a conv layer (summed over input channels)."""
    cols = im2col(input_values(layer, x), layer.kernel, layer.stride, layer.padding)
    w = np.asarray(layer.weights, dtype=np.int64)
    return np.einsum("gcij,ncijyx->ngijyx", w, cols, optimize=True)


def accumulate(layer: Layer, x: np.ndarray) -> np.ndarray:
    """The accumulator ``acc[n, o, y, x]`` (int64) of ``layer`` for inputs ``x[n, c, h, w]``."""
    x = np.asarray(x)
    n = x.shape[0]
    if layer.kind == "fc":
        flat = input_values(layer, x).reshape(n, -1)
        return (flat @ np.asarray(layer.weights, dtype=np.int64).T).reshape(n, layer.out_ch, 1, 1)
    if layer.mode == "plain":
        cols = im2col(input_values(layer, x), layer.kernel, layer.stride, layer.padding)
        w = np.asarray(layer.weights, dtype=np.int64)
        return np.einsum("ocij,ncijyx->noyx", w, cols, optimize=True)
    p = tap_partials(layer, x)  # (n, G, k, k, Ho, Wo)
    m = np.asarray(layer.mfilter, dtype=np.int64)
    if layer.mode == "mcn":
        acc = np.einsum("jab,ngabyx->ngjyx", m, p, optimize=True)
    else:  # mcn1
        acc = np.einsum("j,ngyx->ngjyx", m, p.sum(axis=(2, 3)))
    return acc.reshape(n, layer.out_ch, layer.conv_h, layer.conv_w)


def _bitplanes(layer: Layer, x: np.ndarray):
    """(weight, bit planes) of the layer input as {0,1} uint8 arrays, with their integer weights."""
    if layer.in_bits == 1:
        return [(1, np.asarray(x, dtype=np.uint8))]
    x = np.asarray(x, dtype=np.int64)
    return [(1 << b, ((x >> b) & 1).astype(np.uint8)) for b in range(layer.in_bits)]


def accumulate_packed(layer: Layer, x: np.ndarray) -> np.ndarray:
    """Same result as :func:`accumulate` for binary-weight layers, computed with packed bits.

    Binary inputs: ``dot = 2*popcount(XNOR(a, w) & valid) - popcount(valid)``. Multi-bit inputs, bit
    plane by bit plane: ``sum w*x_b = 2*popcount(w & x_b) - popcount(x_b)``, then shift and add.
    Bits are packed with ``np.packbits(..., bitorder="little")`` along the fan-in axis.
    """
    if layer.w_bits != 1:
        raise ValueError(f"layer {layer.name}: accumulate_packed needs binary weights (w_bits=1)")
    x = np.asarray(x)
    n = x.shape[0]
    if layer.kind == "fc":
        # One "tap" covering the whole input; every tap valid.
        taps = x.reshape(n, 1, -1, 1)  # (n, taps=1, fan_in, L=1)
        valid = np.ones_like(taps, dtype=np.uint8)
        wbits = (np.asarray(layer.weights) > 0).astype(np.uint8).reshape(layer.out_ch, 1, -1)
        out_hw = (1, 1)
    else:
        k = layer.kernel
        ones = np.ones((n, layer.in_ch, layer.in_h, layer.in_w), dtype=np.int64)
        valid = im2col(ones, k, layer.stride, layer.padding)  # 1 where the tap is inside the image
        vals = im2col(np.asarray(x, dtype=np.int64), k, layer.stride, layer.padding)
        # (n, c, ky, kx, y, x) -> (n, ky*kx, c, L): one packed vector per tap position
        def arrange(a):
            return a.transpose(0, 2, 3, 1, 4, 5).reshape(n, k * k, layer.in_ch, -1)
        taps, valid = arrange(vals), arrange(valid).astype(np.uint8)
        wbits = (np.asarray(layer.weights) > 0).astype(np.uint8)
        wbits = wbits.transpose(0, 2, 3, 1).reshape(layer.groups, k * k, layer.in_ch)
        out_hw = (layer.conv_h, layer.conv_w)
    pk = lambda a, axis: np.packbits(a, axis=axis, bitorder="little")  # noqa: E731
    wp = pk(wbits, 2)  # (G, T, bytes)
    vp = pk(valid, 2)  # (n, T, bytes, L)
    part = np.zeros((n, wp.shape[0], wp.shape[1], taps.shape[-1]), dtype=np.int64)  # (n, G, T, L)
    if layer.in_bits == 1:
        ap = pk(taps.astype(np.uint8), 2)
        xnor = ~(ap[:, None] ^ wp[None, :, :, :, None]) & vp[:, None]
        part += 2 * np.bitwise_count(xnor).sum(axis=3, dtype=np.int64)
        part -= np.bitwise_count(vp).sum(axis=2, dtype=np.int64)[:, None]
    else:
        for b in range(layer.in_bits):
            xb = pk(((taps >> b) & 1).astype(np.uint8), 2)
            both = np.bitwise_count(xb[:, None] & wp[None, :, :, :, None]).sum(axis=3, dtype=np.int64)
            ones = np.bitwise_count(xb).sum(axis=2, dtype=np.int64)[:, None]
            part += (2 * both - ones) << b
    g = part.shape[1]
    if layer.kind == "fc" or layer.mode == "plain":
        return part.sum(axis=2).reshape(n, g, *out_hw)
    k = layer.kernel
    m = np.asarray(layer.mfilter, dtype=np.int64)
    if layer.mode == "mcn":
        acc = np.einsum("jt,ngtl->ngjl", m.reshape(layer.planes, k * k), part)
    else:
        acc = np.einsum("j,ngl->ngjl", m, part.sum(axis=2))
    return acc.reshape(n, layer.out_ch, *out_hw)


def postprocess(layer: Layer, acc: np.ndarray) -> np.ndarray:
    """Scale/threshold unit: accumulator -> layer output values (before pooling)."""
    acc = np.asarray(acc, dtype=np.int64)
    shape = (1, -1, 1, 1)
    if layer.out_kind == "sign":
        t = np.asarray(layer.thresh, dtype=np.int64).reshape(shape)
        f = np.asarray(layer.flip, dtype=bool).reshape(shape)
        return np.where(f, acc <= t, acc >= t).astype(np.uint8)
    y = acc * np.asarray(layer.mul, dtype=np.int64).reshape(shape) + np.asarray(layer.add, dtype=np.int64).reshape(shape)
    if layer.out_kind == "logits":
        return y
    return np.clip(y >> layer.shift, 0, (1 << layer.out_bits) - 1)


def maxpool2(y: np.ndarray) -> np.ndarray:
    """2x2 max-pool, stride 2, floor."""
    n, c, h, w = y.shape
    h2, w2 = h // 2, w // 2
    return y[:, :, :2 * h2, :2 * w2].reshape(n, c, h2, 2, w2, 2).max(axis=(3, 5))


def run_layer(layer: Layer, x: np.ndarray, *, packed: bool = False) -> np.ndarray:
    """Accumulate, post-process and pool one layer."""
    acc = (accumulate_packed if packed else accumulate)(layer, x)
    y = postprocess(layer, acc)
    return maxpool2(y) if layer.pool == 2 else y


def model_input(model: IntModel, images: np.ndarray) -> np.ndarray:
    """uint8 images ``(N, C, H, W)`` (or ``(N, H, W)`` for C=1) -> first layer input."""
    x = np.asarray(images)
    if x.ndim == 3:
        x = x[:, None]
    if tuple(x.shape[1:]) != tuple(model.input_shape):
        raise ValueError(f"model {model.name}: expected images of shape {tuple(model.input_shape)}, got {tuple(x.shape[1:])}")
    if x.dtype != np.uint8:
        if x.min() < 0 or x.max() > 255 or np.any(x != np.round(x)):
            raise ValueError(f"model {model.name}: expected uint8 pixel values 0..255")
    x = x.astype(np.int64)
    return np.repeat(x, model.input_repeat, axis=1) if model.input_repeat > 1 else x


def run_model(model: IntModel, images: np.ndarray, *, packed: bool = False, batch: int = 100) -> list:
    """All layer outputs (list of int64 arrays, one per layer) for a batch of uint8 images."""
    x = model_input(model, images)
    outs = [[] for _ in model.layers]
    for s in range(0, len(x), batch):
        y = x[s:s + batch]
        for i, layer in enumerate(model.layers):
            y = run_layer(layer, y, packed=packed and layer.w_bits == 1)
            outs[i].append(y.astype(np.int64))
    return [np.concatenate(o) for o in outs]


def predict(model: IntModel, images: np.ndarray, **kw) -> np.ndarray:
    """Integer logits ``(N, classes)`` of the last layer."""
    return run_model(model, images, **kw)[-1].reshape(len(images), -1)
