"""Host-side fold/pack: refusals name the layer and the field; fold order and round trips."""

import numpy as np
import pytest

from binaccel.hw.params import EngineParams
from binaccel.sw import intref, pack
from binaccel.sw.randmodel import random_input, random_layer

P = EngineParams(rows=2, cols=3, word=8, max_fan_in=100, max_in_bits=4, max_planes=2, max_taps=4, m_bits=4,
                 mul_bits=8, add_bits=12)


@pytest.mark.parametrize("kw,field", [
    (dict(w_bits=8), "w_bits"),
    (dict(in_ch=12, kernel=3), "fan_in"),
    (dict(in_bits=8), "in_bits"),
    (dict(mode="mcn", planes=4, out_ch=8, m_bits=4, kernel=1, padding=0), "planes"),
    (dict(mode="mcn1", planes=2, out_ch=4, m_bits=6), "m_bits"),
    (dict(mode="mcn", planes=2, out_ch=4, m_bits=4, kernel=3), "kernel"),
    (dict(out_kind="requant"), "mul"),
])
def test_check_layer_refuses(kw, field):
    rng = np.random.default_rng(0)
    base = dict(name="bad-layer", in_ch=4, in_h=4, in_w=4, out_ch=4, kernel=3, padding=1)
    layer = random_layer(rng, **{**base, **kw})
    if field == "mul":
        layer.add[:] = 0
        layer.mul[0] = 200  # beyond 8-bit signed
    with pytest.raises(ValueError, match=rf"layer 'bad-layer': field '{field}'"):
        pack.check_layer(layer, P)


def test_fold_matches_reference_accumulator():
    """The folded operands reproduce intref.accumulate with a plain numpy popcount (no hardware)."""
    rng = np.random.default_rng(1)
    for kw in (dict(in_ch=5, kernel=3, padding=1, stride=2), dict(in_ch=3, kernel=3, padding=1, in_bits=4),
               dict(kind="fc", in_ch=3, in_h=2, in_w=2)):
        layer = random_layer(rng, out_ch=3, in_h=kw.pop("in_h", 5), in_w=kw.pop("in_w", 5), **kw)
        x = random_input(rng, layer, 2)
        vals, valid, wbits = pack.fold_layer(layer, x, P.word)
        w = 2 * wbits.astype(np.int64) - 1
        if layer.in_bits == 1:
            acc = ((2 * vals - 1) * valid) @ w.T
        else:
            acc = vals @ w.T
        ref = intref.accumulate(layer, x).transpose(0, 2, 3, 1).reshape(-1, layer.out_ch)
        assert np.array_equal(acc, ref)


def test_bits_round_trip():
    rng = np.random.default_rng(2)
    bits = rng.integers(0, 2, size=(7, 77)).astype(np.uint8)
    assert np.array_equal(pack.ints_to_bits(pack.beats_to_ints(bits), 77), bits)


def test_unpack_wrong_beat_count():
    rng = np.random.default_rng(3)
    layer = random_layer(rng, name="l", in_ch=2, out_ch=2)
    pk = pack.pack_layer(layer, random_input(rng, layer, 1), P)
    with pytest.raises(ValueError, match="output beats"):
        pack.unpack_outputs(pk, [0])
