"""Quantizers: SiMaN half-half encoding, Eq. 8 gradients, straight-through paths, weight-decay groups,
MCN reconstruction on hand-computed cases."""

import itertools
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from brevitas.nn import QuantConv2d, QuantIdentity

from binaccel.sw import quant as Q
from binaccel.sw.models import MCConv2d, NetConfig, build
from binaccel.sw.train import TrainConfig, make_optimizer
from binaccel.sw.zoo import configs


@pytest.mark.parametrize("shape", [(8, 3, 3, 3), (5, 16, 3, 3), (4, 1, 3, 3), (10, 1024), (3, 7)])
def test_half_half_exactly_half_ones_per_channel(shape):
    torch.manual_seed(0)
    w = torch.randn(shape)
    bits = Q.half_half_bits(w)
    n = int(np.prod(shape[1:]))
    assert set(bits.unique().tolist()) <= {0.0, 1.0}
    assert bits.reshape(shape[0], -1).sum(dim=1).tolist() == [n // 2] * shape[0]


def test_half_half_selects_top_magnitudes_after_centring():
    w = torch.tensor([[0.0, 1.0, 2.0, 3.0, 10.0, 11.0]])  # mean 4.5: |w-mean| = 4.5 3.5 2.5 1.5 5.5 6.5
    assert Q.half_half_bits(w).tolist() == [[1.0, 0.0, 0.0, 0.0, 1.0, 1.0]]


def test_half_half_with_ties_still_half():
    w = torch.ones(4, 10)  # every magnitude equal
    assert Q.half_half_bits(w).sum(dim=1).tolist() == [5.0] * 4


def test_half_half_ignores_sign():
    torch.manual_seed(1)
    w = torch.randn(6, 20)
    w = w - w.mean(dim=1, keepdim=True)
    assert torch.equal(Q.half_half_bits(w), Q.half_half_bits(-w))


def test_optimal_k_matches_brute_force():
    rng = np.random.default_rng(3)
    for _ in range(20):
        w = torch.tensor(rng.laplace(size=(1, 12)))
        bits = Q.optimal_k_bits(w)[0].numpy()
        mag = np.abs(w[0].numpy() - w[0].numpy().mean())
        best, best_v = None, -1
        for k in range(1, 13):
            for sel in itertools.combinations(range(12), k):
                v = mag[list(sel)].sum() / math.sqrt(k)
                if v > best_v + 1e-12:
                    best_v, best = v, set(sel)
        assert set(np.flatnonzero(bits)) == best


def test_sign_poly_gradient_eq8():
    x = torch.tensor([-1.5, -1.0, -0.75, -0.25, 0.0, 0.25, 0.75, 0.999, 1.0, 2.0], requires_grad=True)
    y = Q.sign_poly(x)
    assert y.tolist() == [-1, -1, -1, -1, 1, 1, 1, 1, 1, 1]
    y.sum().backward()
    expect = [0.0, 0.0, 0.5, 1.5, 2.0, 1.5, 0.5, 2 - 2 * 0.999, 0.0, 0.0]
    assert torch.allclose(x.grad, torch.tensor(expect), atol=1e-6)


def test_sign_act_quant_through_brevitas_uses_eq8():
    act = QuantIdentity(act_quant=Q.SignActQuant, return_quant_tensor=False)
    x = torch.tensor([-0.5, 0.0, 0.5, 3.0], requires_grad=True)
    out = act(x)
    assert out.tolist() == [-1.0, 1.0, 1.0, 1.0]
    out.sum().backward()
    assert x.grad.tolist() == [1.0, 2.0, 1.0, 0.0]


def test_ste_sign_act_clipped():
    x = torch.tensor([-2.0, -0.5, 0.5, 1.0, 1.5], requires_grad=True)
    Q.sign_ste(x).sum().backward()
    assert x.grad.tolist() == [0.0, 1.0, 1.0, 1.0, 0.0]


def test_siman_conv_quant_weight_and_straight_through_via_magnitude():
    torch.manual_seed(0)
    conv = QuantConv2d(3, 4, 3, bias=False, weight_quant=Q.SiMaNWeightQuant)
    qw = conv.quant_weight()
    ints = qw.int()
    assert set(ints.unique().tolist()) == {-1, 1}
    assert ((ints > 0).reshape(4, -1).sum(dim=1) == 27 // 2).all()
    # scale is the learned beta, initialised to mean |w| per output channel
    beta = conv.weight_quant.tensor_quant.scale
    assert torch.allclose(beta.flatten(), conv.weight.detach().abs().reshape(4, -1).mean(1))
    # gradient to the latent weight: d/dw of beta*(|w - mean| - detach) = beta * sign(w - mean) (mean term sums to 0)
    g = torch.randn_like(conv.weight)
    conv.weight.grad = None
    (conv.quant_weight().value * g).sum().backward()
    w = conv.weight.detach()
    centred = w - w.mean(dim=(1, 2, 3), keepdim=True)
    expect = torch.sign(centred) * g * beta.detach() - (torch.sign(centred) * g * beta.detach()).mean(dim=(1, 2, 3), keepdim=True)
    assert torch.allclose(conv.weight.grad, expect, atol=1e-6)


def test_eval_uses_stored_bits():
    torch.manual_seed(0)
    conv = QuantConv2d(2, 3, 3, bias=False, weight_quant=Q.SiMaNWeightQuant)
    conv.train()
    bits_train = conv.quant_weight().int().clone()
    conv.eval()
    with torch.no_grad():
        conv.weight.mul_(-3.0).add_(torch.randn_like(conv.weight))  # would change the encoding
    assert torch.equal(conv.quant_weight().int(), bits_train)
    conv.train()
    assert not torch.equal(conv.quant_weight().int(), bits_train)


def test_weight_decay_groups_siman_and_ablation():
    net, tc = configs("siman")
    model = build(net)
    opt = make_optimizer(model, tc)
    groups = {g["name"]: g for g in opt.param_groups}
    binary_ids = {id(p) for p in groups["binary"]["params"]}
    assert groups["binary"]["weight_decay"] == 0.0
    assert groups["other"]["weight_decay"] == 5e-4
    for conv in model.convs:
        assert id(conv.weight) in binary_ids
        assert id(conv.weight_quant.tensor_quant.scale) in binary_ids  # beta: no decay either
    for bn in model.bns:
        assert id(bn.weight) not in binary_ids
    # every trainable parameter is in exactly one group
    all_ids = [id(p) for g in opt.param_groups for p in g["params"]]
    assert sorted(all_ids) == sorted(id(p) for p in model.parameters() if p.requires_grad)
    net, tc = configs("siman_l2_hh")
    opt = make_optimizer(build(net), tc)
    assert {g["name"]: g["weight_decay"] for g in opt.param_groups}["binary"] == 5e-4


def _mcconv(weight, m, *, mcn1=False, stride=1, padding=0):
    g, c, k, _ = weight.shape
    conv = MCConv2d(c, g, k, planes=m.shape[0], stride=stride, padding=padding, mcn1=mcn1)
    with torch.no_grad():
        conv.weight.copy_(weight)
        conv.mfilter.copy_(m)
    conv.train()
    conv.quant_weight()  # training forward: project the new weights (eval reuses the stored projection)
    conv.eval()
    return conv


def test_mcn_reconstruction_hand_computed():
    # one group, one input channel, 2x2 kernel, K = 2 planes
    w = torch.tensor([[[[0.5, -0.2], [-0.1, 0.4]]]])  # mean |w| = 0.3 -> C_hat = 0.3 * sign
    m = torch.tensor([[[1.0, 2.0], [3.0, 4.0]], [[0.5, 0.0], [1.0, 2.0]]])
    conv = _mcconv(w, m)
    q = conv.reconstructed()
    expect = 0.3 * torch.tensor([[[[1.0, -2.0], [-3.0, 4.0]]], [[[0.5, -0.0], [-1.0, 2.0]]]])
    assert torch.allclose(q, expect, atol=1e-6)
    x = torch.tensor([[[[1.0, 2.0], [3.0, 4.0]]]])
    y = conv(x)  # output planes (Eq. 3.14): plane j = sum over taps of x * C_hat * M_j
    assert torch.allclose(y.flatten(), torch.tensor([0.3 * (1 - 4 - 9 + 16), 0.3 * (0.5 - 0 - 3 + 8)]), atol=1e-6)


def test_mcn_channels_interleaved_and_mcn1_mean():
    torch.manual_seed(0)
    w = torch.randn(3, 2, 3, 3)
    m = torch.rand(4, 3, 3) + 0.1
    conv = _mcconv(w, m)
    q = conv.reconstructed()
    chat = conv.quant_weight().value
    for g in range(3):
        for j in range(4):
            assert torch.allclose(q[g * 4 + j], chat[g] * m[j][None])
    conv1 = _mcconv(w, m, mcn1=True)
    q1 = conv1.reconstructed()
    for j in range(4):
        assert torch.allclose(q1[j], chat[0] * m[j].mean())


def test_mcn_update_keeps_m_nonnegative_and_losses():
    torch.manual_seed(0)
    conv = _mcconv(torch.randn(2, 1, 3, 3), torch.rand(4, 3, 3))
    conv.train()
    with torch.no_grad():
        conv.mfilter.sub_(1.0)  # some entries negative, as after a gradient step
    conv.project_m()
    assert (conv.mfilter >= 0).all()
    # filter loss: sum_j ||C - C_hat * M_j||^2
    chat = conv.quant_weight().value
    expect = sum(((conv.weight - chat * conv.mfilter[j][None]) ** 2).sum() for j in range(4))
    assert torch.allclose(conv.filter_loss(), expect)


def test_center_loss_updates_centres():
    model = build(NetConfig(arch="mcn", input_shape=(1, 8, 8)))
    model.train()
    x = torch.rand(6, 1, 8, 8).repeat_interleave(4, dim=1)
    y = torch.tensor([0, 0, 1, 1, 2, 2])
    model(x)
    feats = model._features.detach()
    loss = model.center_loss(y)
    assert torch.allclose(loss, (feats ** 2).sum(dim=1).mean())  # centres start at 0
    assert torch.allclose(model.centers[0], 0.5 * feats[:2].mean(dim=0))


def test_mfilter_fixed_point():
    ints, frac = Q.mfilter_fixed_point(torch.tensor([0.0, 0.5, 1.3]), 8)
    assert frac == 7 and ints.tolist() == [0, 64, 166]
    assert int(ints.max()) <= 255
