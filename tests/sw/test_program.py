"""Host compiler of the accelerator (binaccel.sw.program): layouts, fit checks, image words, decoding."""

from __future__ import annotations

import numpy as np
import pytest

from binaccel.hw.seq import AccelParams
from binaccel.sw import program
from binaccel.sw.intmodel import IntModel
from binaccel.sw.randmodel import random_layer, random_model


def mnist_like(rng, *, mode="plain", planes=1, c1=16, c2=32, c3=64, in_bits=(8, 1, 1, 1), requant=False):
    """The MNIST topology of the zoo models with random weights (conv1..conv3, fc)."""
    k = planes if mode != "plain" else 1
    ok = "requant" if requant else "sign"
    layers = [
        random_layer(rng, name="conv1", mode=mode, planes=planes, in_ch=k, in_h=28, in_w=28, out_ch=c1,
                     in_bits=in_bits[0], pool=2, out_kind=ok, out_bits=8),
        random_layer(rng, name="conv2", mode=mode, planes=planes, in_ch=c1, in_h=14, in_w=14, out_ch=c2,
                     in_bits=in_bits[1], pool=2, out_kind=ok, out_bits=8),
        random_layer(rng, name="conv3", mode=mode, planes=planes, in_ch=c2, in_h=7, in_w=7, out_ch=c3,
                     in_bits=in_bits[2], stride=2, out_kind=ok, out_bits=8),
        random_layer(rng, name="fc", kind="fc", in_ch=c3, in_h=4, in_w=4, out_ch=10, out_kind="logits",
                     in_bits=in_bits[3]),
    ]
    m = IntModel(name=f"mnist-{mode}", input_shape=(1, 28, 28), layers=layers, input_repeat=k)
    m.validate()
    return m


@pytest.mark.parametrize("multibit", [False, True])
@pytest.mark.parametrize("word", [8, 16, 32, 64])
def test_map_roundtrip(word, multibit):
    p = AccelParams(word=word)
    rng = np.random.default_rng(word)
    for c in (1, 3, 8, 17, 40):
        x = rng.integers(0, 256 if multibit else 2, size=(c, 3, 5))
        words = program.encode_map(p, x, multibit)
        assert len(words) == 15 * program.map_words(p, c, multibit)
        assert all(0 <= w < (1 << word) for w in words)
        assert np.array_equal(program.decode_map(p, words, x.shape, multibit), x)


def test_map_layout_is_pixel_major():
    p = AccelParams(word=8)
    x = np.zeros((10, 2, 2), dtype=np.int64)
    x[9, 1, 0] = 1                     # pixel 2, channel 9 -> word 2*2 + 1, bit 1
    assert program.encode_map(p, x, False) == [0, 0, 0, 0, 0, 2, 0, 0]
    x = np.zeros((2, 1, 2), dtype=np.int64)
    x[1, 0, 1] = 200                   # multi-bit, word 8: one channel per word
    assert program.encode_map(p, x, True) == [0, 0, 0, 200]


@pytest.mark.parametrize("mode,planes", [("plain", 1), ("mcn", 4), ("mcn1", 4)])
def test_mnist_models_fit_default_build(mode, planes):
    m = mnist_like(np.random.default_rng(0), mode=mode, planes=planes)
    pr = program.compile_model(m)
    u = pr.usage
    assert u["feature_map_words"] <= u["fm_depth"] and u["weight_entries"] <= u["w_depth"]
    assert pr.n_layers == 4 and pr.logits_per_image == 10
    # RUN header, layer count, streamed entries, ring base and size, one word per pixel (1..4 channels x 8 bits)
    assert len(pr.image_words(np.zeros((28, 28), dtype=np.uint8))) == 5 + 784
    assert u["streamed_layers"] == [] and pr.stream_words == []


def test_mcn_a8_fits_default_build():
    m = mnist_like(np.random.default_rng(1), mode="mcn", planes=4, in_bits=(8, 8, 8, 8), requant=True)
    pr = program.compile_model(m, dump=True)
    # conv1 output: 16 channels x 14 x 14 bytes = 4 words per pixel
    assert pr.layers[0].out_words == 14 * 14 * 4


def test_fit_error_feature_map():
    m = mnist_like(np.random.default_rng(0))
    p = AccelParams(fm_depth=128)
    with pytest.raises(program.FitError) as ei:
        program.compile_model(m, p)
    msg = str(ei.value)
    assert "layer conv1" in msg and "input feature map 1x28x28 x8 bit" in msg
    assert "4096-bit feature-map buffer" in msg and "784 words" in msg


def test_fit_error_output_map_names_layer():
    m = mnist_like(np.random.default_rng(0), c2=1024, c3=16)
    with pytest.raises(program.FitError, match=r"layer conv2: output feature map 1024x7x7 x1 bit = 50176 bits "
                                               r"\(32 word\(s\) of 32 bits per pixel: 1568 words = 50176 bits\) "
                                               r"exceeds the 25600-bit feature-map buffer"):
        program.compile_model(m, AccelParams(fm_depth=800, max_fan_in=9216))
    program.compile_model(m, AccelParams(fm_depth=1600, max_fan_in=9216, w_depth=4096, t_depth=2048))


def test_fit_error_weights_and_tables_and_layers():
    m = mnist_like(np.random.default_rng(0))
    with pytest.raises(program.FitError, match=r"layer conv3: resident weights need 284 entries of 4x32 bits "
                                               r"\(36352 bits\), the weight buffer holds 64"):
        program.compile_model(m, AccelParams(w_depth=64), stream=False)
    with pytest.raises(program.FitError, match=r"layer fc: one group tile of streamed weights needs 32 entries "
                                               r"of 4x32 bits, the weight buffer has 16 of 16 left"):
        program.compile_model(m, AccelParams(w_depth=16))
    with pytest.raises(program.FitError, match=r"table entries .* the table buffer holds 32"):
        program.compile_model(m, AccelParams(t_depth=32))
    with pytest.raises(program.FitError, match=r"4 layers exceed the build's program buffer of max_layers=2"):
        program.compile_model(m, AccelParams(max_layers=2))
    with pytest.raises(program.FitError, match=r"layer conv1: input height 28 exceeds the build's max_dim=16"):
        program.compile_model(m, AccelParams(max_dim=16))


def test_fit_error_engine_limits():
    rng = np.random.default_rng(0)
    m = mnist_like(rng)
    with pytest.raises(program.FitError, match=r"layer fc: the engine cannot run it: .*fan-in 1024 exceeds"):
        program.compile_model(m, AccelParams(max_fan_in=512))
    m8 = random_model(rng)
    m8.layers[1] = random_layer(rng, name="conv2", in_ch=4, in_h=6, in_w=6, out_ch=8, stride=2, w_bits=8)
    with pytest.raises(program.FitError, match=r"layer conv2: the engine cannot run it: .*w_bits"):
        program.compile_model(m8)


def test_images_words_and_decode_errors():
    m = random_model(np.random.default_rng(0))
    pr = program.compile_model(m)
    with pytest.raises(ValueError, match=r"expected images of shape \(1, 12, 12\)"):
        pr.images_words(np.zeros((1, 1, 10, 12), dtype=np.uint8))
    with pytest.raises(ValueError, match="uint8 pixel values"):
        pr.images_words(np.full((1, 1, 12, 12), 300))
    w = pr.images_words(np.zeros((3, 1, 12, 12), dtype=np.uint8))
    assert len(w) == 3 * (5 + 144)
    assert w[0] & 0xF == 2 and w[0] >> 8 == 144 and w[1:5] == [3, 0, 0, 0]
    with pytest.raises(ValueError, match="expected 2 x"):
        pr.decode([0] * 5, 2)
    with pytest.raises(ValueError, match="no layer named 'nope'"):
        program.compile_model(m, dump=["nope"])
    with pytest.raises(ValueError, match="not a non-final layer"):
        program.compile_model(m, dump=[2])


def test_decode_logits_sign_extension():
    m = random_model(np.random.default_rng(0))
    pr = program.compile_model(m, stats=False)
    p = pr.params
    assert p.logit_words == 2
    vals = list(range(-5, 5))
    words = []
    for v in vals:
        u = v & ((1 << 64) - 1)
        words += [u & 0xFFFFFFFF, u >> 32]
    dec = pr.decode(words, 1)
    assert dec["logits"].tolist() == [vals]


def test_descriptor_field_overflow_is_a_fit_error():
    p = AccelParams()
    lay = p.desc_layout
    with pytest.raises(program.FitError, match="descriptor field 'in_h'"):
        values = {name: 0 for name, _ in lay}
        values["eng"] = {name: 0 for name, _ in lay["eng"].shape}
        values["in_h"] = 1 << 20
        program._pack_struct(lay, values, "layer x")


def test_params_checked():
    with pytest.raises(TypeError, match="fm_depth must be an int"):
        AccelParams(fm_depth=1.5)
    with pytest.raises(ValueError, match="max_layers must be in 1..256"):
        AccelParams(max_layers=0)
    with pytest.raises(ValueError, match="word must be at least 8"):
        AccelParams(word=4)
    with pytest.raises(ValueError, match="engine parameter rows"):
        AccelParams(rows=0)
    AccelParams(word=4, max_in_bits=1)


def test_weight_streaming_choice():
    m = mnist_like(np.random.default_rng(0))
    sizes = [li.w_entries for li in program.compile_model(m).layers]
    assert sizes == [4, 40, 144, 96]
    # 284 entries do not fit 160: conv3 (144) is streamed, ring = 2 group tiles of 9 entries
    pr = program.compile_model(m, AccelParams(w_depth=160))
    assert pr.usage["streamed_layers"] == ["conv3"] and pr.ring == (140, 18)
    assert pr.usage["weight_entries"] == 140 and pr.usage["streamed_entries"] == 144
    assert len(pr.stream_words) == 144 * 4
    assert [li.desc["w_stream"] for li in pr.layers] == [0, 0, 1, 0]
    assert [li.desc["w_base"] for li in pr.layers] == [0, 4, 0, 44]
    w = pr.image_words(np.zeros((28, 28), dtype=np.uint8))
    assert w[1:5] == [4, 144, 140, 18] and len(w) == 5 + 784 + 144 * 4
    # everything streamed on request; by name
    pr = program.compile_model(m, stream=True)
    assert pr.usage["weight_entries"] == 0 and pr.ring == (0, 64)
    pr = program.compile_model(m, stream=["fc"])
    assert pr.usage["streamed_layers"] == ["fc"]
    with pytest.raises(ValueError, match="no layer named"):
        program.compile_model(m, stream=["fc9"])


@pytest.mark.parametrize("stream", [False, True])
def test_link_transfers_cover_the_words_exactly(stream):
    """Program.transfers (the uart transport's framing): PROGRAM, WEIGHTS, TABLES, then per image
    its RUN command and, with streamed weights, a WEIGHTS transfer; the lengths add up to the words
    sent, each transfer starting where the previous one ends."""
    from binaccel.sw.link import FrameKind

    m = mnist_like(np.random.default_rng(2))
    pr = program.compile_model(m, stream=stream)
    images = np.random.default_rng(3).integers(0, 256, size=(3, 1, 28, 28)).astype(np.uint8)
    words = pr.setup_words + pr.images_words(images)
    t = pr.transfers(3)
    setup = [FrameKind.PROGRAM, FrameKind.TABLES] if stream else [FrameKind.PROGRAM, FrameKind.WEIGHTS, FrameKind.TABLES]
    per_image = [FrameKind.IMAGE, FrameKind.WEIGHTS] if stream else [FrameKind.IMAGE]
    assert [k for k, _ in t] == setup + per_image * 3
    assert sum(n for _, n in t) == len(words)
    at = 0
    for i, (kind, n) in enumerate(t):
        if i < len(setup):
            assert words[at] & 0xF == 1          # a WRITE command opens each set-up transfer
        elif kind == FrameKind.IMAGE:
            assert words[at] & 0xF == 2          # a RUN command opens each image
        at += n
