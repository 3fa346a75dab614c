"""Diagnostics on hand-built activations with known answers, and through a real training run."""
import math

import torch
from torch import nn

from agents import SAC
from plasticity.diagnostics import Diagnostics, dormant_counts, srank, unit_scores
from tests.test_sac import random_buffer


class Probe(nn.Module):
    """Linear(4 -> 8) + ReLU + Linear(8 -> 1); units 0, 1, 2 are dead (zero weights, bias -1)."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.trunk = nn.Sequential(nn.Linear(4, 8), nn.ReLU())
        self.head = nn.Linear(8, 1)
        with torch.no_grad():
            w, b = self.trunk[0].weight, self.trunk[0].bias
            w.uniform_(-0.1, 0.1)
            b.fill_(1.0)  # live units: 1 + small, all about the same size
            w[:3].zero_()
            b[:3].fill_(-1.0)  # dead: relu(-1) = 0 for every input

    def forward(self, x):
        return self.head(self.trunk(x))


def test_three_dead_units_of_eight_give_0375():
    net = Probe()
    diag = Diagnostics(net, groups=["trunk", "head"], every=1)
    with diag.capture():
        net(torch.rand(64, 4))
    values = diag.measure()
    assert values["trunk/dormant_ratio"].item() == 0.375
    assert "head/dormant_ratio" not in values  # the output layer has no activation: excluded
    assert values["trunk/srank"].item() <= 5  # 3 zero columns cannot add rank


def test_redo_score_is_relative_to_the_layer_mean():
    h = torch.tensor([[1.0, 1.0, 0.05, 2.0], [1.0, 1.0, 0.05, 2.0]])  # E|h| = 1, 1, .05, 2; mean 1.0125
    scores = unit_scores(h)
    torch.testing.assert_close(scores, torch.tensor([1, 1, 0.05, 2]) / 1.0125)
    assert dormant_counts(h, 0.1)[0].item() == 1
    assert dormant_counts(h, 0.025)[0].item() == 0


def test_ensemble_members_are_normalised_separately():
    torch.manual_seed(0)
    h = torch.rand(2, 32, 6) + 0.5  # [N, B, U]
    h[1] *= 1000.0  # one member at a far larger scale: pooled, member 0 would look all dormant
    count, total = dormant_counts(h, 0.1)
    assert (count.item(), total) == (0, 12)


def test_conv_maps_score_channels():
    h = torch.ones(4, 3, 5, 5)
    h[:, 1] = 0.0  # one dead channel of three
    count, total = dormant_counts(h, 0.1)
    assert (count.item(), total) == (1, 3)


def singular_matrix(values, rows=16):
    """A [rows, len(values)] matrix with exactly these singular values."""
    torch.manual_seed(0)
    u, _ = torch.linalg.qr(torch.randn(rows, len(values), dtype=torch.float64))
    v, _ = torch.linalg.qr(torch.randn(len(values), len(values), dtype=torch.float64))
    return u @ torch.diag(torch.tensor(values, dtype=torch.float64)) @ v.T


def test_srank_counts_singular_values_up_to_one_minus_delta():
    phi = singular_matrix([10.0, 5.0, 1.0, 0.05, 0.0, 0.0, 0.0, 0.0])
    # cumulative share: 10/16.05 = .62, 15/16.05 = .93, 16/16.05 = .997 >= .99 -> 3
    assert srank(phi, delta=0.01).item() == 3
    assert srank(phi, delta=0.0).item() == 4
    assert srank(torch.stack([phi, singular_matrix([1.0] * 8)]), 0.01).item() == (3 + 8) / 2


def test_norms_and_distance_from_init_are_exact():
    net = Probe()
    diag = Diagnostics(net, groups=["head"], every=1)
    with torch.no_grad():
        expected_w = math.sqrt(sum(float((p ** 2).sum()) for p in net.head.parameters()))
        for p in net.head.parameters():
            p.grad = torch.full_like(p, 2.0)
    values = diag.measure()
    assert math.isclose(values["head/weight_norm"].item(), expected_w, rel_tol=1e-6)
    assert math.isclose(values["head/grad_norm"].item(), 2.0 * 3.0, rel_tol=1e-6)  # 9 entries of 2
    assert values["head/init_distance"].item() == 0.0
    with torch.no_grad():
        for p in net.head.parameters():
            p.add_(0.5)
    assert math.isclose(diag.measure()["head/init_distance"].item(), 0.5 * 3.0, rel_tol=1e-6)


def test_sac_groups_default_to_each_network_and_hooks_are_removed():
    torch.manual_seed(0)
    agent = SAC(5, 2, hidden_dims=(16, 16))
    diag = Diagnostics(agent, groups=None, every=2)
    assert [p.name for p in diag.probes] == ["actor", "critic"]
    assert [diag.due(u) for u in (1, 2, 3, 4)] == [False, True, False, True]
    buf = random_buffer()
    with diag.capture():
        agent.update(buf.sample(32))
    values = diag.measure()
    for group in ("actor", "critic"):
        assert 0.0 <= values[f"{group}/dormant_ratio"].item() <= 1.0
        assert 1 <= values[f"{group}/srank"].item() <= 16
        assert values[f"{group}/grad_norm"].item() > 0
    assert all(not m._forward_hooks for p in diag.probes for m in p.activations)
    with diag.capture(enabled=False):
        agent.update(buf.sample(32))
    assert "critic/dormant_ratio" not in diag.measure()  # nothing captured: only norms
