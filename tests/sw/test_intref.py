"""The numpy integer reference: im2col path == bit-packed popcount path == brute force."""

import numpy as np
import pytest

from binaccel.sw import intref
from binaccel.sw.randmodel import random_input, random_layer, random_model

CASES = [
    dict(),
    dict(in_bits=8),
    dict(in_bits=4, stride=2),
    dict(kernel=1, padding=0),
    dict(kernel=1, padding=0, stride=2),
    dict(in_ch=33, out_ch=5),
    dict(in_ch=5, padding=0, stride=2),
    dict(mode="mcn", planes=4, out_ch=8),
    dict(mode="mcn", planes=4, out_ch=8, in_bits=8, in_ch=4),
    dict(mode="mcn1", planes=4, out_ch=12, in_bits=4),
    dict(mode="mcn", planes=2, out_ch=6, in_ch=5, stride=2, padding=0),
    dict(kind="fc", out_kind="logits"),
    dict(kind="fc", in_bits=8, out_kind="requant"),
    dict(pool=2, out_kind="requant"),
    dict(pool=2),
]


def brute_force(layer, x):
    """Direct loops over the definition in binaccel.sw.intmodel."""
    v = intref.input_values(layer, x)
    n = len(x)
    if layer.kind == "fc":
        return (v.reshape(n, -1) @ layer.weights.astype(np.int64).T).reshape(n, -1, 1, 1)
    p, s, k = layer.padding, layer.stride, layer.kernel
    out = np.zeros((n, layer.out_ch, layer.conv_h, layer.conv_w), dtype=np.int64)
    for g in range(layer.groups):
        for y in range(layer.conv_h):
            for xx in range(layer.conv_w):
                part = np.zeros((n, k, k), dtype=np.int64)
                for ky in range(k):
                    for kx in range(k):
                        iy, ix = y * s + ky - p, xx * s + kx - p
                        if 0 <= iy < layer.in_h and 0 <= ix < layer.in_w:
                            part[:, ky, kx] = v[:, :, iy, ix] @ layer.weights[g, :, ky, kx].astype(np.int64)
                if layer.mode == "plain":
                    out[:, g, y, xx] = part.sum(axis=(1, 2))
                elif layer.mode == "mcn":
                    for j in range(layer.planes):
                        out[:, g * layer.planes + j, y, xx] = (part * layer.mfilter[j]).sum(axis=(1, 2))
                else:
                    for j in range(layer.planes):
                        out[:, g * layer.planes + j, y, xx] = part.sum(axis=(1, 2)) * layer.mfilter[j]
    return out


@pytest.mark.parametrize("case", CASES, ids=[str(c) for c in CASES])
def test_accumulate_paths_agree(case):
    rng = np.random.default_rng(hash(str(case)) % 2**32)
    layer = random_layer(rng, **case)
    x = random_input(rng, layer, 3)
    a = intref.accumulate(layer, x)
    assert np.array_equal(a, intref.accumulate_packed(layer, x))
    assert np.array_equal(a, brute_force(layer, x))


def test_extremes_all_agree_all_disagree():
    rng = np.random.default_rng(0)
    layer = random_layer(rng, in_ch=40, out_ch=2, padding=1)
    layer.weights[:] = 1
    layer.weights[1] = -1
    x = np.ones((1, 40, 6, 6), dtype=np.int64)
    acc = intref.accumulate(layer, x)
    # interior: all 360 taps agree (+360) or all disagree (-360); corners see only 4 valid taps
    assert acc[0, 0, 2, 2] == 360 and acc[0, 1, 2, 2] == -360
    assert acc[0, 0, 0, 0] == 160 and acc[0, 1, 0, 0] == -160
    assert np.array_equal(acc, intref.accumulate_packed(layer, x))
    assert abs(acc).max() <= layer.acc_bound()


def test_postprocess_sign_flip_requant_logits():
    rng = np.random.default_rng(1)
    layer = random_layer(rng, out_ch=2)
    layer.thresh = np.array([3, 3])
    layer.flip = np.array([0, 1], dtype=np.uint8)
    acc = np.array([2, 3, 4]).reshape(1, 1, 1, 3).repeat(2, axis=1)
    y = intref.postprocess(layer, acc)
    assert y[0, 0, 0].tolist() == [0, 1, 1] and y[0, 1, 0].tolist() == [1, 1, 0]
    req = random_layer(rng, out_ch=1, out_kind="requant", out_bits=4)
    req.mul, req.add, req.shift = np.array([3]), np.array([-5]), 2
    acc = np.array([-10, 0, 1, 2, 3, 30]).reshape(1, 1, 1, 6)
    # (3*acc - 5) >> 2 = floor: -35>>2=-9 -> 0, -5>>2=-2 -> 0, -2>>2=-1 -> 0, 1>>2=0, 4>>2=1, 85>>2=21 -> 15
    assert intref.postprocess(req, acc)[0, 0, 0].tolist() == [0, 0, 0, 0, 1, 15]


def test_maxpool_floor_and_or_on_bits():
    y = np.array([[[[0, 0, 1, 0, 1], [0, 0, 0, 0, 1], [1, 1, 1, 1, 1]]]])
    assert intref.maxpool2(y).tolist() == [[[[0, 1]]]]


@pytest.mark.parametrize("mode,planes", [("plain", 1), ("mcn", 4), ("mcn1", 4), ("mcn", 2)])
def test_run_model_packed_equals_plain(mode, planes):
    rng = np.random.default_rng(7)
    model = random_model(rng, mode=mode, planes=planes)
    imgs = rng.integers(0, 256, size=(6, 1, 12, 12)).astype(np.uint8)
    a = intref.run_model(model, imgs, batch=4)
    b = intref.run_model(model, imgs, packed=True)
    assert all(np.array_equal(x, y) for x, y in zip(a, b))
    assert intref.predict(model, imgs).shape == (6, 10)


def test_bad_images_rejected():
    model = random_model(np.random.default_rng(0))
    with pytest.raises(ValueError, match="expected images of shape"):
        intref.run_model(model, np.zeros((2, 1, 10, 10), dtype=np.uint8))
    with pytest.raises(ValueError, match="uint8 pixel values"):
        intref.run_model(model, np.full((2, 1, 12, 12), 300))
