"""Regen (L2 Init): the gradient it adds equals autograd's gradient of coef*||theta - theta_0||^2,
it pulls parameters back toward theta_0, and its state survives a checkpoint."""
import pytest
import torch
from torch import nn

from agents import SAC
from agents.base import Agent
from plasticity.groups import resolve_group
from plasticity.regen import Regen
from plasticity.scheduler import build_scheduler
from runner.validate import ConfigError, validate_config
from tests.conftest import make_config
from tests.test_sac import random_buffer


class TwoLayers(Agent):
    """A minimal agent: named networks and an optimizers dict (the contract of agents/base.py)."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.body, self.head, self.unused = nn.Linear(3, 4), nn.Linear(4, 1), nn.Linear(2, 2)
        params = list(self.body.parameters()) + list(self.head.parameters()) + list(self.unused.parameters())
        self.optimizers = {"all": torch.optim.SGD(params, lr=0.0)}  # lr 0: step only runs the hooks

    def loss(self, x):
        return self.head(torch.relu(self.body(x))).pow(2).mean()

    def act(self, obs, deterministic=False):
        raise NotImplementedError  # never acts here

    def update(self, batch):
        raise NotImplementedError


def test_regen_gradient_equals_autograd_of_the_penalty():
    net, coef = TwoLayers(), 0.3
    regen = Regen(coef)
    regen.bind(net, resolve_group(net, ["body", "unused"]))
    with torch.no_grad():  # move away from theta_0 so the penalty is not zero
        for p in net.parameters():
            p.add_(torch.randn_like(p))
    x = torch.randn(8, 3)

    # reference: autograd of L = task loss + coef * ||theta - theta_0||^2 over the group
    reference = {n: p.detach().clone().requires_grad_(True) for n, p in net.named_parameters()}
    body_w, body_b = reference["body.weight"], reference["body.bias"]
    head_w, head_b = reference["head.weight"], reference["head.bias"]
    task = (torch.relu(x @ body_w.T + body_b) @ head_w.T + head_b).pow(2).mean()
    penalty = sum((reference[n] - regen.initial[n]).pow(2).sum() for n in regen.initial)
    (task + coef * penalty).backward()

    net.optimizers["all"].zero_grad(set_to_none=True)
    net.loss(x).backward()
    assert net.unused.weight.grad is None  # the loss does not reach it; the penalty still must
    net.optimizers["all"].step()
    for name, p in net.named_parameters():
        torch.testing.assert_close(p.grad, reference[name].grad, rtol=1e-6, atol=1e-7, msg=name)
    torch.testing.assert_close(regen.penalty(), coef * penalty.detach())


def test_regen_pulls_parameters_back_to_their_initial_values():
    penalties = {}
    for coef in (0.0, 100.0):
        torch.manual_seed(0)
        agent = SAC(5, 2, hidden_dims=(16, 16))
        regen = build_scheduler(agent, [], [dict(kind="regen", groups=["critic"], coef=coef)]).regularizers[0]
        with torch.no_grad():
            for p in agent.critic.parameters():
                p.add_(0.1)  # theta - theta_0 = 0.1 everywhere
        buf = random_buffer()
        for _ in range(50):
            agent.update(buf.sample(32))
        with torch.no_grad():  # ||theta - theta_0||^2
            penalties[coef] = sum(((p - regen.initial[n]) ** 2).sum() for n, p in regen.group.params.items())
    start = 0.01 * sum(p.numel() for p in agent.critic.parameters())
    # Adam moves each weight by at most ~lr per step: 50 steps of 3e-4 toward theta_0 bring
    # 0.1 down to ~0.085 (penalty ~0.72x); without Regen it shrinks far less.
    assert penalties[100.0] < 0.8 * start  # measured: 0.73x with Regen, 0.93x without
    assert penalties[100.0] < 0.85 * penalties[0.0]


def test_regen_without_coef_changes_nothing():
    torch.manual_seed(0)
    plain = SAC(5, 2, hidden_dims=(16, 16))
    torch.manual_seed(0)
    regular = SAC(5, 2, hidden_dims=(16, 16))
    build_scheduler(regular, [], [dict(kind="regen", groups=["actor", "critic"], coef=0.0)])
    buf_a, buf_b = random_buffer(), random_buffer()
    for _ in range(3):
        torch.manual_seed(1)
        plain.update(buf_a.sample(32))
        torch.manual_seed(1)
        regular.update(buf_b.sample(32))
    for (name, a), b in zip(plain.state_dict().items(), regular.state_dict().values()):
        assert torch.equal(a, b), name


def test_regen_state_round_trips_through_the_scheduler():
    torch.manual_seed(0)
    agent = SAC(5, 2, hidden_dims=(16, 16))
    sched = build_scheduler(agent, [], [dict(kind="regen", groups=["critic"], coef=1e-3)])
    state = {k: {n: v.clone() for n, v in d.items()}
             for k, d in sched.state_dict()["regularizers"][0].items()}
    torch.manual_seed(5)
    other = build_scheduler(SAC(5, 2, hidden_dims=(16, 16)), [], [dict(kind="regen", groups=["critic"], coef=1e-3)])
    other.load_state_dict(sched.state_dict())
    for name, value in state["initial"].items():
        assert torch.equal(other.regularizers[0].initial[name], value)


@pytest.mark.parametrize("overrides, message", [
    (["plasticity=regen", "plasticity.coef=-1"], "plasticity.regularizers[0].coef = -1: must be a number >= 0"),
    (["plasticity=regen", "plasticity.regularizers.0.kind=l1"], "plasticity.regularizers[0].kind = 'l1'"),
    (["diagnostics.every=-5"], "diagnostics.every = -5: must be an integer >= 0"),
    (["diagnostics.srank_delta=1.5"], "diagnostics.srank_delta = 1.5"),
    (["diagnostics.groups=[3]"], "diagnostics.groups = [3]"),
    (["train.priming_updates=-1"], "train.priming_updates = -1: must be an integer >= 0"),
])
def test_new_keys_are_validated(overrides, message):
    with pytest.raises(ConfigError) as err:
        validate_config(make_config(*overrides))
    assert message in str(err.value)
