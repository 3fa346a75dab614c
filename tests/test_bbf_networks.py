"""BBF networks (agents/bbf_networks.py) and C51 helpers (agents/distributional.py): shapes,
parameter counts, init, the C51 projection on hand-computed examples, the SPR loss."""
from __future__ import annotations

import math

import pytest
import torch
from torch.nn import functional as F

from agents.bbf_networks import (BBFNetwork, C51Head, ImpalaEncoder, TransitionModel, max_pool_same,
                                 renormalize, spr_loss)
from agents.distributional import c51_loss, c51_support, expected_value, project_distribution
from plasticity.groups import resolve_group

OBS = (4, 84, 84)
A = 6


@pytest.fixture(scope="module")
def net1():
    torch.manual_seed(0)
    return BBFNetwork(OBS, A, width_scale=1)


def _obs(*batch):
    return torch.randint(0, 256, (*batch, *OBS), dtype=torch.uint8)


# ------------------------------------------------------------------------------------ shapes
def test_shapes_width_1(net1):
    obs = _obs(2)
    with torch.no_grad():
        latent = net1.encode(obs)
        assert latent.shape == (2, 32, 11, 11) and net1.latent_shape == (32, 11, 11)
        assert net1.q_logits(latent).shape == (2, A, 51)
        assert net1(obs).shape == (2, A, 51)
        assert net1.q_values(latent).shape == (2, A)
        actions = torch.randint(0, A, (2, 5))
        assert net1.spr_predictions(latent, actions).shape == (2, 5, 2048)
        latent_seq = net1.encode_sequence(_obs(2, 5))
        assert latent_seq.shape == (2, 5, 32, 11, 11)
        assert net1.spr_targets(latent_seq).shape == (2, 5, 2048)


def test_shapes_width_4():
    net = BBFNetwork(OBS, A)  # width_scale 4 by default
    with torch.no_grad():
        latent = net.encode(_obs(1))
        assert latent.shape == (1, 128, 11, 11) and net.latent_dim == 128 * 121
        assert net.q_logits(latent).shape == (1, A, 51)
        assert net.spr_predictions(latent, torch.zeros(1, 2, dtype=torch.long)).shape == (1, 2, 2048)


def test_encoder_stage_sizes():
    enc = ImpalaEncoder(4, width_scale=1)
    x = _obs(1)
    sizes = []
    with torch.no_grad():
        h = x.float() / 255.0
        for stage in enc.stages:
            h = stage(h)
            sizes.append(tuple(h.shape[1:]))
    assert sizes == [(16, 42, 42), (32, 21, 21), (32, 11, 11)]


# --------------------------------------------------------------------------- param counts
def _expected_params(w: int, num_actions: int, c_in=4, hidden=2048, atoms=51, blocks=2):
    """By hand from the layer shapes: conv3x3 i->o has 9*i*o + o parameters, Linear i->o has i*o + o."""
    conv = lambda i, o: 9 * i * o + o
    lin = lambda i, o: i * o + o
    c1, c2, c3 = 16 * w, 32 * w, 32 * w
    encoder = (conv(c_in, c1) + 2 * blocks * conv(c1, c1)
               + conv(c1, c2) + 2 * blocks * conv(c2, c2)
               + conv(c2, c3) + 2 * blocks * conv(c3, c3))
    transition = conv(c3 + num_actions, c3) + conv(c3, c3)
    d = c3 * 11 * 11
    return dict(encoder=encoder, transition_model=transition, projection=lin(d, hidden),
                predictor=lin(hidden, hidden), head=lin(hidden, atoms) + lin(hidden, num_actions * atoms))


@pytest.mark.parametrize("width, total", [(1, 12_977_717), (4, 38_503_589)])
def test_parameter_counts(width, total, net1):
    net = net1 if width == 1 else BBFNetwork(OBS, A, width_scale=4)
    expected = _expected_params(width, A)
    assert sum(expected.values()) == total
    for name, count in expected.items():
        assert sum(p.numel() for p in getattr(net, name).parameters()) == count, name
    assert sum(p.numel() for p in net.parameters()) == total


def test_parameter_names_for_resets(net1):
    names = dict(net1.named_parameters())
    for n in ("encoder.stages.0.conv.weight", "encoder.stages.2.blocks.1.conv2.bias",
              "transition_model.conv1.weight", "transition_model.conv2.weight", "projection.weight",
              "predictor.weight", "head.value.weight", "head.advantage.bias"):
        assert n in names, n
    group = resolve_group(net1, ("head", "projection", "predictor"))
    assert set(group.params) == {n for n in names if n.split(".")[0] in ("head", "projection", "predictor")}
    sp = resolve_group(net1, ("encoder", "transition_model"))
    assert len(sp.params) + len(group.params) == len(names)


def test_init_xavier_zero_bias_and_reset(net1):
    for name, p in net1.named_parameters():
        if name.endswith("bias"):
            assert torch.count_nonzero(p) == 0, name
    for layer in (net1.projection, net1.head.advantage, net1.encoder.stages[1].blocks[0].conv1):
        w = layer.weight
        receptive = w[0, 0].numel() if w.dim() == 4 else 1  # 9 for a 3x3 conv
        fan_in, fan_out = w.shape[1] * receptive, w.shape[0] * receptive
        bound = math.sqrt(6.0 / (fan_in + fan_out))
        assert w.abs().max() <= bound and w.abs().max() > 0.9 * bound
    conv = net1.transition_model.conv2
    before = conv.weight.detach().clone()
    with torch.no_grad():
        conv.bias.fill_(1.0)
    conv.reset_parameters()
    assert not torch.equal(before, conv.weight) and torch.count_nonzero(conv.bias) == 0


# ------------------------------------------------------------------------- building blocks
def test_max_pool_same_pads_with_minus_inf_bottom_right():
    x = -(torch.arange(16.0).view(1, 1, 4, 4) + 1)  # x[i, j] = -(4i + j) - 1, all negative
    out = max_pool_same(x)  # 4 -> 2, padding (0, 1): windows start at 0 and 2
    assert torch.equal(out, torch.tensor([[[[-1.0, -3.0], [-9.0, -11.0]]]]))
    assert max_pool_same(torch.zeros(1, 1, 84, 84)).shape[-1] == 42
    assert max_pool_same(torch.zeros(1, 1, 21, 21)).shape[-1] == 11


def test_renormalize_per_sample():
    x = torch.randn(3, 2, 4, 4) * torch.tensor([1.0, 10.0, 100.0])[:, None, None, None]
    y = renormalize(x)
    flat = y.flatten(1)
    assert torch.allclose(flat.amin(1), torch.zeros(3)) and torch.all(flat.amax(1) <= 1.0)
    assert torch.allclose(flat.amax(1), torch.ones(3), atol=1e-4)


def test_dueling_identity(net1):
    latent = net1.encode(_obs(3)).detach()
    with torch.no_grad():
        features = F.relu(net1.projection(latent.flatten(1)))
        logits = net1.q_logits(latent)
        value = net1.head.value(features)  # [B, N]
        adv = net1.head.advantage(features).view(3, A, 51)
    assert torch.allclose(logits.mean(dim=1), value, atol=1e-5)  # mean_a logits = value stream
    assert torch.allclose(logits - logits.mean(1, keepdim=True), adv - adv.mean(1, keepdim=True), atol=1e-5)
    plain = C51Head(8, 3, 5, dueling=False)
    x = torch.randn(2, 8)
    assert torch.equal(plain(x), plain.advantage(x).view(2, 3, 5)) and plain.value is None


def test_q_values_are_expectations(net1):
    latent = net1.encode(_obs(2)).detach()
    with torch.no_grad():
        logits = net1.q_logits(latent)
        q = net1.q_values(latent)
    support = torch.linspace(-10, 10, 51)
    assert torch.allclose(q, (logits.softmax(-1) * support).sum(-1), atol=1e-5)
    assert torch.allclose(expected_value(torch.zeros(2, 51), support), torch.zeros(2), atol=1e-6)


def test_transition_rollout_shape_and_causality():
    torch.manual_seed(1)
    tm = TransitionModel(8, num_actions=4)
    latent = renormalize(torch.rand(3, 8, 11, 11))
    actions = torch.randint(0, 4, (3, 5))
    with torch.no_grad():
        out = tm.rollout(latent, actions)
        assert out.shape == (3, 5, 8, 11, 11)
        assert out.min() >= 0 and out.max() <= 1  # renormalized every step
        z = latent
        for k in range(5):  # rollout == repeated steps
            z = tm.step(z, actions[:, k])
            assert torch.allclose(out[:, k], z)
        for j in range(5):
            changed = actions.clone()
            changed[:, j] = (changed[:, j] + 1) % 4
            out2 = tm.rollout(latent, changed)
            assert torch.equal(out2[:, :j], out[:, :j])  # steps before j do not see action j
            assert not torch.allclose(out2[:, j], out[:, j])


def test_gradients_reach_the_right_modules(net1):
    net1.zero_grad(set_to_none=True)
    latent = net1.encode(_obs(2))
    with torch.no_grad():
        targets = net1.spr_targets(net1.encode_sequence(_obs(2, 3)))
    loss = spr_loss(net1.spr_predictions(latent, torch.randint(0, A, (2, 3))), targets, torch.ones(2, 3)).sum()
    loss.backward()
    for name in ("encoder", "transition_model", "projection", "predictor"):
        assert all(p.grad is not None for p in getattr(net1, name).parameters()), name
    assert all(p.grad is None for p in net1.head.parameters())
    net1.zero_grad(set_to_none=True)


def test_crelu_variant_shapes():
    net = BBFNetwork(OBS, 3, width_scale=1, hidden=64, activation="crelu")
    with torch.no_grad():
        latent = net.encode(_obs(1))
        assert latent.shape == (1, 64, 11, 11)
        assert net.q_logits(latent).shape == (1, 3, 51)
        assert net.spr_predictions(latent, torch.zeros(1, 2, dtype=torch.long)).shape == (1, 2, 64)


# ---------------------------------------------------------------------------------- C51
SUPPORT5 = c51_support(-2.0, 2.0, 5)  # z = [-2, -1, 0, 1, 2], dz = 1


@pytest.mark.parametrize("probs, reward, discount, expected", [
    # all mass at z = 0; target atom 0.5 lies halfway between 0 and 1
    ([0, 0, 1, 0, 0], 0.5, 0.9, [0, 0, 0.5, 0.5, 0]),
    # r + 0.5 z = [0, 0.5, 1, 1.5, 2]: 0.2 each -> 0: 0.2 + 0.1; 1: 0.1 + 0.2 + 0.1; 2: 0.1 + 0.2
    ([0.2] * 5, 1.0, 0.5, [0, 0, 0.3, 0.4, 0.3]),
    # terminal (discount 0): everything at r = -0.25 -> 0.25 to z = -1, 0.75 to z = 0
    ([0.1, 0.2, 0.3, 0.25, 0.15], -0.25, 0.0, [0, 0.25, 0.75, 0, 0]),
    # r + z = [-0.5, 0.5, 1.5, 2.5, 3.5], the last two clipped to 2 at the top end
    ([0.1, 0.2, 0.3, 0.25, 0.15], 1.5, 1.0, [0, 0.05, 0.15, 0.25, 0.55]),
    # terminal below the support: all mass clipped to z = -2
    ([0.1, 0.2, 0.3, 0.25, 0.15], -3.0, 0.0, [1, 0, 0, 0, 0]),
    # landing exactly on atoms (l == u): identity shift by one atom, the top atom clipped
    ([0.1, 0.2, 0.3, 0.25, 0.15], 1.0, 1.0, [0, 0.1, 0.2, 0.3, 0.4]),
])
def test_project_distribution_hand_examples(probs, reward, discount, expected):
    as_tensor = lambda v: torch.tensor([v], dtype=torch.float32)
    out = project_distribution(as_tensor(probs), as_tensor(reward), as_tensor(discount), SUPPORT5)
    assert torch.allclose(out, as_tensor(expected), atol=1e-6)


def _reference_projection(probs, rewards, discounts, v_min, v_max, n):
    """Bellemare et al. 2017 Algorithm 1 with floor/ceil indices, one transition at a time."""
    dz = (v_max - v_min) / (n - 1)
    out = torch.zeros_like(probs, dtype=torch.float64)
    for b in range(probs.shape[0]):
        for j in range(n):
            tz = min(max(rewards[b].item() + discounts[b].item() * (v_min + j * dz), v_min), v_max)
            pos = (tz - v_min) / dz
            lo, hi = math.floor(pos), math.ceil(pos)
            p = probs[b, j].item()
            if lo == hi:
                out[b, lo] += p
            else:
                out[b, lo] += p * (hi - pos)
                out[b, hi] += p * (pos - lo)
    return out


def test_project_distribution_matches_algorithm_1_and_sums_to_one():
    torch.manual_seed(0)
    b, n = 16, 51
    support = c51_support(-10.0, 10.0, n, dtype=torch.float64)
    probs = torch.softmax(torch.randn(b, n, dtype=torch.float64) * 3, dim=-1)
    rewards = torch.empty(b, dtype=torch.float64).uniform_(-15, 15)
    discounts = torch.rand(b, dtype=torch.float64)
    discounts[:3] = 0.0
    out = project_distribution(probs, rewards, discounts, support)
    assert torch.allclose(out, _reference_projection(probs, rewards, discounts, -10.0, 10.0, n), atol=1e-12)
    assert torch.allclose(out.sum(-1), torch.ones(b, dtype=torch.float64), atol=1e-12)
    assert torch.all(out >= 0)
    out32 = project_distribution(probs.float(), rewards.float(), discounts.float(), support.float())
    assert torch.allclose(out32.sum(-1), torch.ones(b), atol=1e-5)


def test_c51_loss():
    torch.manual_seed(0)
    logits = torch.randn(4, 7, requires_grad=True)
    target = torch.softmax(torch.randn(4, 7), dim=-1)
    loss = c51_loss(logits, target)
    assert loss.shape == (4,)
    assert torch.allclose(loss, F.cross_entropy(logits, target, reduction="none"))
    entropy = -(target * target.log()).sum(-1)
    assert torch.allclose(c51_loss(target.log(), target), entropy, atol=1e-6)  # the minimum
    assert torch.all(loss >= entropy)


# ------------------------------------------------------------------------------------ SPR
def test_spr_loss_zero_for_identical_and_masking():
    torch.manual_seed(0)
    pred = torch.randn(4, 5, 32)
    mask = torch.ones(4, 5)
    assert torch.equal(spr_loss(pred, pred.clone(), mask), torch.zeros(4))
    assert torch.allclose(spr_loss(3.0 * pred, pred, mask), torch.zeros(4), atol=1e-6)  # scale-invariant
    target = torch.randn(4, 5, 32)
    loss = spr_loss(pred, target, mask)
    assert torch.all(loss > 0)
    cos = F.cosine_similarity(pred, target, dim=-1)  # [B, K]
    assert torch.allclose(loss, (2 * (1 - cos)).mean(-1), atol=1e-5)
    # masked steps contribute 0 (but still count in 1/K, as in BBF)
    mask = torch.tensor([[1, 1, 0, 0, 0]] * 4, dtype=torch.bool)
    changed = pred.clone()
    changed[:, 2:] = torch.randn(4, 3, 32)
    assert torch.allclose(spr_loss(pred, target, mask), spr_loss(changed, target, mask))
    assert torch.allclose(spr_loss(pred, target, mask), (2 * (1 - cos[:, :2])).sum(-1) / 5, atol=1e-5)
    assert torch.equal(spr_loss(pred, target, torch.zeros(4, 5)), torch.zeros(4))


def test_spr_loss_gradient_only_through_predictions():
    pred = torch.randn(2, 3, 8, requires_grad=True)
    target = torch.randn(2, 3, 8, requires_grad=True)
    spr_loss(pred, target, torch.ones(2, 3)).sum().backward()
    assert pred.grad is not None and target.grad is None
