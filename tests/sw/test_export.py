"""Fold -> export file -> numpy reference equals the Brevitas model's integer forward, every layer,
element for element; on random models of every kind and on a trained one."""

import os

import numpy as np
import pytest
import torch

from binaccel.sw import intref, modelfile, pipeline
from binaccel.sw.data import load_digits
from binaccel.sw.fold import fold, int_forward
from binaccel.sw.intmodel import ModelFormatError
from binaccel.sw.models import NetConfig, build
from binaccel.sw.train import evaluate, load_checkpoint, save_checkpoint
from binaccel.sw.zoo import MODELS, configs


def randomized(name, seed, input_shape=(1, 8, 8)):
    """An untrained model with random BN statistics and a few training steps' worth of state."""
    net, _ = configs(name, input_shape=input_shape)
    torch.manual_seed(seed)
    model = build(net)
    model.train()
    x = torch.rand(16, *net.input_shape).repeat_interleave(net.input_repeat, dim=1)
    model(x)  # fixes the quantizers' stored bits/scales and the activation-scale statistics
    g = torch.Generator().manual_seed(seed)
    for bn in list(model.bns) + [model.fc_bn]:
        n = bn.num_features
        bn.running_mean.copy_(torch.randn(n, generator=g) * 2)
        bn.running_var.copy_(torch.rand(n, generator=g) * 3 + 0.1)
        with torch.no_grad():
            bn.weight.copy_(torch.randn(n, generator=g))  # some negative slopes: flipped thresholds
            bn.bias.copy_(torch.randn(n, generator=g))
    model.eval()
    return model


def images(n=40, seed=0, shape=(1, 8, 8)):
    return np.random.default_rng(seed).integers(0, 256, size=(n, *shape)).astype(np.uint8)


@pytest.mark.parametrize("name", list(MODELS))
@pytest.mark.parametrize("seed", [0, 1])
def test_reference_equals_brevitas_random(name, seed, tmp_path):
    model = randomized(name, seed)
    x = images(seed=seed)
    im = fold(model, calib=x)
    path = tmp_path / f"{name}.bnm"
    modelfile.save(im, path)
    loaded = modelfile.load(path)
    ref = intref.run_model(loaded, x)
    ref_packed = intref.run_model(loaded, x, packed=True)
    brev = int_forward(model, loaded, x)
    for layer, a, b, c in zip(loaded.layers, ref, brev, ref_packed):
        assert a.shape == b.shape, layer.name
        assert np.array_equal(a, b), f"{name} layer {layer.name}: reference != Brevitas"
        assert np.array_equal(a, c), f"{name} layer {layer.name}: im2col != packed"
    # flipped thresholds really occur with these random BN slopes (so the flip path is exercised)
    if MODELS[name][0]["arch"] != "fp" and MODELS[name][0].get("act_bits", 1) == 1:
        assert any(l.flip is not None and l.flip.any() for l in loaded.layers)


def test_brevitas_weights_are_the_exported_bits(tmp_path):
    model = randomized("siman", 3)
    im = fold(model)
    for layer, conv in zip(im.layers, list(model.convs) + [model.fc]):
        ints = conv.quant_weight().int().numpy()
        assert np.array_equal(layer.weights.reshape(ints.shape[0], -1), ints.reshape(ints.shape[0], -1))


def test_fold_matches_float_model_signs():
    """For SiMaN the folded thresholds reproduce the float model's predictions (no fixed-point loss
    except logits rounding)."""
    model = randomized("siman", 4)
    x = images(200, 4)
    im = fold(model)
    with torch.no_grad():
        float_pred = model(model.prepare_input(torch.as_tensor(x))).argmax(1).numpy()
    int_pred = intref.predict(im, x).argmax(1)
    assert (float_pred == int_pred).mean() >= 0.98


def test_full_precision_layers_refused():
    model = build(NetConfig(arch="siman", first="fp", input_shape=(1, 8, 8)))
    model.eval()
    with pytest.raises(ModelFormatError, match=r"layers\[conv1\].*full-precision"):
        fold(model)


@pytest.fixture(scope="module")
def trained_digits(tmp_path_factory):
    data = load_digits()
    out = tmp_path_factory.mktemp("digits")
    r = pipeline.train_named("siman", data, out_dir=str(out), epochs=5, progress=False)
    return data, r, out


def test_trained_model_export_exact(trained_digits):
    data, r, out = trained_digits
    model = r["model"]
    assert r["test_accuracy"] > 0.5  # it learned something: the exactness check is on a real model
    path = os.path.join(out, "siman.bnm")
    pipeline.export_model(model, path, name="siman")
    chk = pipeline.check_export(model, path, data.x_test, data.y_test)
    assert chk["checked"] == len(data.x_test)
    assert chk["matched"] == chk["checked"], chk["layers"]
    assert chk["predictions_equal"]


def test_checkpoint_round_trip(trained_digits, tmp_path):
    data, r, _ = trained_digits
    model = r["model"]
    path = tmp_path / "m.pt"
    save_checkpoint(model, path)
    again = load_checkpoint(path)
    a = fold(model)
    b = fold(again)
    for la, lb in zip(a.layers, b.layers):
        assert np.array_equal(la.weights, lb.weights)
        assert np.array_equal(la.thresh if la.thresh is not None else la.mul, lb.thresh if lb.thresh is not None else lb.mul)
    assert evaluate(model, data.x_test, data.y_test)[0] == evaluate(again, data.x_test, data.y_test)[0]


def test_bad_checkpoint(tmp_path):
    from binaccel.sw.train import CheckpointError

    p = tmp_path / "bad.pt"
    p.write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match="bad.pt"):
        load_checkpoint(p)
    torch.save({"format": "binaccel-checkpoint", "version": 9}, p)
    with pytest.raises(CheckpointError, match="field 'version': expected 1, got 9"):
        load_checkpoint(p)
    with pytest.raises(CheckpointError, match="not found"):
        load_checkpoint(tmp_path / "missing.pt")


def test_requant_offsets_saturate_exactly_and_fit_the_add_width():
    """An offset so large that a channel's output saturates for every reachable accumulator is
    replaced by the smallest one with the same effect (exact for every |acc| <= bound); offsets
    that still do not fit lower the shift. Every add then fits fold.ADD_BITS signed bits."""
    from binaccel.sw.fold import ADD_BITS, _requant_params

    rng = np.random.default_rng(0)
    bound, bits = 300, 8
    ratio = rng.uniform(-0.05, 0.05, size=16)
    offset = np.concatenate([rng.uniform(-300, 300, size=8), [1e9, -1e9, 5e7, -5e7, 40.0, -3.0, 1e12, -1e12]])
    shift = 20     # (2**8 - 1) << 20 and 0.05 * 2**20 * 300 leave room in 32 bits
    mul, add, s = _requant_params(ratio, offset, shift, acc_bound=bound, out_bits=bits)
    assert s == shift and np.abs(add).max() < 2 ** (ADD_BITS - 1)
    acc = np.arange(-bound, bound + 1)
    for c in range(16):
        exact_add = int(np.floor(offset[c] * 2.0 ** shift))     # python int: no overflow
        want = [min(max((int(a) * int(mul[c]) + exact_add) >> shift, 0), (1 << bits) - 1) for a in acc]
        got = [min(max((int(a) * int(mul[c]) + int(add[c])) >> shift, 0), (1 << bits) - 1) for a in acc]
        assert got == want, c
    # logits (no clamp): a large offset lowers the shift instead
    mul, add, s = _requant_params(np.array([0.001, 0.002]), np.array([3e6, -1.0]), 30, round_add=True)
    assert s < 30 and np.abs(add).max() < 2 ** (ADD_BITS - 1)
    assert add[0] == round(3e6 * 2.0 ** s) and mul[1] == round(0.002 * 2.0 ** s)
