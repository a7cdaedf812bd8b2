"""The pipelined accelerator's compiler: its programs, run with the unit references
(:func:`binaccel.sw.dpprog.execute`), equal the integer reference on every layer's whole output."""

import numpy as np
import pytest

from binaccel.sw import dpprog, intref, zoo
from binaccel.sw.hwif.dp import DpParams
from binaccel.sw.intmodel import IntModel
from binaccel.sw.randmodel import random_layer


def _model(rng, specs, *, in_shape, name="rand"):
    """A chain of random layers from ``(kind, out_ch, kernel, stride, padding, pool, out_kind, out_bits)``."""
    c, h, w = in_shape
    bits = 8
    layers = []
    for i, (kind, out_ch, k, s, p, pool, out_kind, ob) in enumerate(specs):
        layer = random_layer(rng, name=f"l{i}", kind=kind, in_ch=c, in_h=h, in_w=w, out_ch=out_ch, kernel=k,
                             stride=s, padding=p, in_bits=bits, pool=pool, out_kind=out_kind, out_bits=ob)
        layers.append(layer)
        c, h, w = layer.out_ch, layer.out_h, layer.out_w
        bits = 1 if out_kind == "sign" else ob
    model = IntModel(name=name, input_shape=in_shape, layers=layers, classes=layers[-1].out_ch)
    model.validate()
    return model


NETS = {
    # a pooled first layer, binary hidden layers (LINEAR, QUAD, stride 2, 1x1), FC
    "binary": ([("conv", 20, 3, 1, 1, 2, "sign", 1), ("conv", 24, 3, 1, 1, 1, "sign", 1),
                ("conv", 40, 3, 2, 1, 2, "sign", 1), ("conv", 18, 1, 1, 0, 1, "sign", 1),
                ("fc", 12, 1, 1, 0, 1, "logits", 1)], (1, 12, 10)),
    # an unpooled first layer on three channels, multi-bit activations through the array
    "multibit": ([("conv", 16, 3, 1, 1, 1, "requant", 4), ("conv", 17, 3, 1, 0, 1, "requant", 3),
                  ("conv", 33, 3, 2, 1, 1, "sign", 1), ("fc", 10, 1, 1, 0, 1, "logits", 1)], (3, 8, 8)),
    # requantized outputs pooled in quads, an 8-bit hidden map, FC over bit planes
    "requant_pool": ([("conv", 16, 3, 1, 0, 2, "requant", 8), ("conv", 32, 3, 1, 1, 2, "requant", 2),
                      ("fc", 7, 1, 1, 0, 1, "logits", 1)], (2, 10, 10)),
}


@pytest.mark.parametrize("net", sorted(NETS))
def test_program_equals_intref(net):
    rng = np.random.default_rng(sorted(NETS).index(net))
    specs, shape = NETS[net]
    model = _model(rng, specs, in_shape=shape, name=net)
    prog = dpprog.compile_model(model, DpParams(max_dim=32, fm_depth=4096))
    images = rng.integers(0, 256, (3, *shape)).astype(np.uint8)
    ref = intref.run_model(model, images)
    for i in range(len(images)):
        logits, outs = dpprog.execute(prog, images[i])
        for layer, got, want in zip(model.layers, outs, ref):
            assert np.array_equal(got.reshape(want[i].shape), want[i]), layer.name
        assert np.array_equal(logits, ref[-1][i].reshape(-1))


@pytest.mark.parametrize("name", ["siman", "sign", "mcn1"])
def test_zoo_program_equals_intref(name):
    model = zoo.untrained_model(name)
    prog = dpprog.compile_model(model)
    rng = np.random.default_rng(1)
    images = rng.integers(0, 256, (2, 1, 28, 28)).astype(np.uint8)
    ref = intref.run_model(model, images)
    for i in range(2):
        logits, outs = dpprog.execute(prog, images[i])
        for got, want in zip(outs, ref):
            assert np.array_equal(got.reshape(want[i].shape), want[i])


def _mcn1_variant(seed):
    """The zoo's MCNs-1 network with random scalars (0 included) and random sign thresholds of both
    directions, so that every case of the plain rewrite occurs."""
    rng = np.random.default_rng(seed)
    model = zoo.untrained_model("mcn1")
    for layer in model.layers:
        if layer.mode == "mcn1":
            layer.mfilter = rng.integers(0, 6, layer.mfilter.shape)
            layer.mfilter[rng.integers(0, len(layer.mfilter))] = 0
            if layer.out_kind == "sign":
                layer.thresh = rng.integers(-60, 60, layer.out_ch)
                layer.flip = rng.integers(0, 2, layer.out_ch)
    return model


@pytest.mark.parametrize("seed", range(4))
def test_mcn1_plain_equivalent_equals_intref(seed):
    """An MCNs-1 layer runs as a plain layer with each group's filter once per plane and the
    plane's scalar folded into the output function: every layer's whole output equal."""
    model = _mcn1_variant(seed)
    plain = dpprog.plain_equivalent(model)
    assert [l.mode for l in plain.layers] == ["plain"] * len(model.layers)
    images = np.random.default_rng(seed).integers(0, 256, (20, 1, 28, 28)).astype(np.uint8)
    for got, want in zip(intref.run_model(plain, images), intref.run_model(model, images)):
        assert np.array_equal(got, want)
    prog = dpprog.compile_model(model)
    logits, _ = dpprog.execute(prog, images[0])
    assert np.array_equal(logits, intref.run_model(model, images[:1])[-1][0].reshape(-1))
    # the ideal cycles count the MCNs-1 layers' own MACs, not the plain rewrite's K times as many
    first = prog.layers[0]
    assert first.ideal_cycles == model.layers[0].binary_macs / (16 * DpParams().flu_positions * 9)


def test_refusals_name_the_layer():
    with pytest.raises(dpprog.DpFitError, match="layer 'conv1'.*mode 'mcn'"):
        dpprog.compile_model(zoo.untrained_model("mcn"))
    rgb = zoo.untrained_model("mcn1")
    rgb.input_shape, rgb.input_repeat = (2, 28, 28), 2   # two image channels, each twice
    with pytest.raises(dpprog.DpFitError, match="layer 'conv1'.*2 image channels each repeated 2 times"):
        dpprog.compile_model(rgb)
    with pytest.raises(dpprog.DpFitError, match="max_dim"):
        dpprog.compile_model(zoo.untrained_model("siman"), DpParams(max_dim=16))
    with pytest.raises(dpprog.DpFitError, match="fm_depth"):
        dpprog.compile_model(zoo.untrained_model("siman"), DpParams(fm_depth=256))
    rng = np.random.default_rng(0)
    wide = _model(rng, [("conv", 16, 3, 1, 1, 1, "sign", 1), ("fc", 10, 1, 1, 0, 1, "logits", 1)], in_shape=(6, 8, 8),
                  name="wide")
    with pytest.raises(dpprog.DpFitError, match="layer 'l0'.*6 input channels.*at most 4"):
        dpprog.compile_model(wide, DpParams())


def test_image_words_pack_tiles():
    model = zoo.untrained_model("siman")
    img = np.arange(28 * 28, dtype=np.int64).reshape(1, 28, 28) % 256
    words = dpprog.image_words(model, img.astype(np.uint8), pad=1)
    assert len(words) == 15 * 15
    # tile (0, 0) of the padded image: pixels (0,0) (0,1) (1,0) (1,1) = pad, pad, pad, img[0,0]
    assert words[0] == int(img[0, 0, 0]) << 24
    assert words[16] == int(img[0, 1, 1]) | int(img[0, 1, 2]) << 8 | int(img[0, 2, 1]) << 16 | int(img[0, 2, 2]) << 24
    with pytest.raises(ValueError, match="expected an image of shape"):
        dpprog.image_words(model, np.zeros((28, 27), dtype=np.uint8), pad=1)
