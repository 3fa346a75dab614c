"""IQL: the expectile loss and AWR weights by hand, finite losses with every parameter moving,
the target EMA, save/load, V learning a known expectile, plasticity groups, an end-to-end run."""
import math

import numpy as np
import pytest
import torch

from agents import AGENTS, IQL
from agents.iql import IQL_DEFAULTS, awr_weights, expectile_loss
from agents.networks import GaussianActor
from plasticity.groups import resolve_group
from plasticity.interventions import Reset
from replay import ReplayBuffer
from tests.conftest import TINY, make_config
from tests.test_sac import assert_same_next_update, random_buffer


def test_expectile_loss_by_hand():
    u = torch.tensor([-2.0, 1.0, 3.0])
    # weights |0.9 - 1(u < 0)| = 0.1, 0.9, 0.9; times u^2 = 4, 1, 9
    torch.testing.assert_close(expectile_loss(u, 0.9), torch.tensor([0.4, 0.9, 8.1]))
    assert expectile_loss(u, 0.9).mean().item() == pytest.approx((0.4 + 0.9 + 8.1) / 3)
    torch.testing.assert_close(expectile_loss(u, 0.5), 0.5 * u ** 2)  # tau 0.5: half the MSE


def test_awr_weights_clipped():
    adv = torch.tensor([-1.0, 0.0, 0.2, 0.5, 1000.0])
    w = awr_weights(adv, temperature=10.0, max_weight=100.0)
    expected = [math.exp(-10.0), 1.0, math.exp(2.0), 100.0, 100.0]  # exp(5) = 148 > 100; exp(1e4) = inf
    torch.testing.assert_close(w, torch.tensor(expected))
    assert torch.isfinite(w).all()


def test_gaussian_log_prob_finite_on_bounds_and_matches_normal():
    torch.manual_seed(0)
    actor = GaussianActor(4, 2, hidden_dims=(16,))
    obs = torch.randn(6, 4)
    action = torch.tensor([[-1.0, 1.0], [1.0, 1.0], [0.0, -1.0], [0.3, 0.2], [-1.0, -1.0], [0.9, -0.5]])
    mean, log_std = actor.dist_params(obs)
    expected = torch.distributions.Normal(mean, log_std.exp()).log_prob(action).sum(-1)
    torch.testing.assert_close(actor.log_prob(obs, action), expected)
    assert torch.isfinite(actor.log_prob(obs, action)).all()
    torch.testing.assert_close(actor(obs, deterministic=True), mean)  # deterministic = the mean
    sample = actor(obs)
    assert sample.shape == (6, 2) and sample.abs().max() <= 1.0


def test_update_losses_finite_every_parameter_moves_and_target_ema_exact():
    torch.manual_seed(0)
    agent = IQL(5, 2, hidden_dims=(32, 32), tau=0.01)
    buf = random_buffer()
    before = {n: p.detach().clone() for n, p in agent.named_parameters()}
    target0 = [p.detach().clone() for p in agent.critic_target.parameters()]
    metrics = agent.update(buf.sample(64))
    assert set(metrics) >= {"value_loss", "v", "critic_loss", "q", "actor_loss", "advantage", "awr_weight"}
    assert all(torch.isfinite(v) and not v.requires_grad for v in metrics.values())
    for t0, t1, online in zip(target0, agent.critic_target.parameters(), agent.critic.parameters()):
        torch.testing.assert_close(t1, 0.99 * t0 + 0.01 * online, rtol=0, atol=1e-7)
    for _ in range(5):
        metrics = agent.update(buf.sample(64))
    assert all(torch.isfinite(v) for v in metrics.values())
    unchanged = [n for n, p in agent.named_parameters() if torch.equal(p, before[n])]
    assert not unchanged
    assert not any(p.requires_grad for p in agent.critic_target.parameters())


def test_value_learns_the_expectile_of_a_known_distribution():
    """One state, four dataset actions with rewards r(a) = 0, 1, 2, 5 and gamma 0.1:
    Q(a) = r(a) + gamma V and V = E_tau[Q] over the actions, so V = e_tau(r) / (1 - gamma)."""
    acts, rews, gamma, size, tau = [-0.75, -0.25, 0.25, 0.75], np.array([0.0, 1.0, 2.0, 5.0]), 0.1, 400, 0.9
    e = rews.mean()
    for _ in range(100):  # fixed point of sum_i |tau - 1(r_i < e)| (r_i - e) = 0
        w = np.where(rews < e, 1 - tau, tau)
        e = (w * rews).sum() / w.sum()
    assert e == pytest.approx(4.0)  # (0.1 * (0 + 1 + 2) + 0.9 * 5) / (0.3 + 0.9)
    torch.manual_seed(0)
    k = torch.arange(size) % 4
    buf = ReplayBuffer.for_spaces(size, (1,), (1,), seed=0, gamma=gamma)
    no = torch.zeros(size, dtype=torch.bool)
    reward = torch.tensor(rews, dtype=torch.float32)[k]  # r(a) of each stored action
    buf.add_batch(torch.ones(size, 1), torch.tensor(acts)[k, None], reward, torch.ones(size, 1), no, no)
    agent = IQL(1, 1, hidden_dims=(32, 32), lr=3e-3, tau=0.05, expectile=tau)
    v = [agent.update(buf.sample(128))["v"] for _ in range(800)]
    assert torch.stack(v[-300:]).mean().item() == pytest.approx(e / (1 - gamma), abs=0.15)


def test_save_load_round_trip_gives_identical_actions(tmp_path):
    torch.manual_seed(0)
    agent = IQL(5, 2, hidden_dims=(16, 16), layer_norm=True, dropout=0.1, temperature=3.0)
    buf = random_buffer()
    for _ in range(5):
        agent.update(buf.sample(32))
    agent.save(tmp_path / "agent.pt")
    loaded = IQL.load(tmp_path / "agent.pt")
    assert loaded.hparams == agent.hparams
    obs = np.random.default_rng(0).normal(size=(10, 5)).astype(np.float32)
    a = agent.act(obs, deterministic=True)
    np.testing.assert_array_equal(a, loaded.act(obs, deterministic=True))
    np.testing.assert_array_equal(a, agent.act(obs, deterministic=True))  # dropout is off when acting
    torch.manual_seed(5)
    a = agent.act(obs)
    torch.manual_seed(5)
    np.testing.assert_array_equal(a, loaded.act(obs))
    assert loaded.predict(obs[0])[0].shape == (2,) and agent.actor.training
    assert_same_next_update(agent, loaded, buf)
    from agents import SAC
    SAC(5, 2, hidden_dims=(8,)).save(tmp_path / "sac.pt")
    with pytest.raises(ValueError, match="not IQL"):
        IQL.load(tmp_path / "sac.pt")


def test_unknown_argument_is_refused_and_registered():
    with pytest.raises(ValueError, match="expectile"):
        IQL(3, 1, expectle=0.7)
    assert AGENTS["iql"] == (IQL, IQL_DEFAULTS)
    assert IQL_DEFAULTS["expectile"] == 0.9 and IQL_DEFAULTS["temperature"] == 10.0


def test_plasticity_groups_and_head_reset_in_place():
    torch.manual_seed(0)
    agent = IQL(5, 2, hidden_dims=(16, 16))
    buf = random_buffer()
    for _ in range(3):
        agent.update(buf.sample(32))
    group = resolve_group(agent, ["critic.head", "value.head", "actor"])
    names = {"critic.head.weight", "value.head.bias", "actor.head.log_std", "actor.trunk.0.weight"}
    assert names <= set(group.params)
    assert set(group.target_params) == {"critic.head.weight", "critic.head.bias"}
    assert {id(o) for o in group.optimizers} == {id(o) for o in agent.optimizers.values()}
    heads = resolve_group(agent, ["critic.head", "value.head", "actor.head"])
    old = {n: p.detach().clone() for n, p in agent.named_parameters()}
    ptrs = {n: p.data_ptr() for n, p in agent.named_parameters()}
    intervention = Reset(optimizer="reset", target="copy_online")
    intervention.bind(agent, heads)
    intervention.apply()
    for n, p in agent.named_parameters():
        assert p.data_ptr() == ptrs[n]
        touched = n in heads.params or n.startswith("critic_target.head")
        assert torch.equal(p, old[n]) != touched, n
    assert torch.equal(agent.actor.head.log_std, torch.zeros(2))  # its init value
    assert torch.equal(agent.critic_target.head.weight, agent.critic.head.weight)
    assert all(torch.isfinite(v) for v in agent.update(buf.sample(32)).values())


def test_config_end_to_end(tmp_path):
    from runner.trainer import Trainer
    cfg = make_config(*TINY, "agent=iql", "train.total_steps=600",  # 3 Pendulum episodes
                      "diagnostics.every=400", "plasticity=head_reset", "plasticity.every=300")
    assert cfg["agent"]["name"] == "iql" and cfg["agent"]["hidden_dims"] == [32, 32]
    trainer = Trainer(cfg, tmp_path)
    summary = trainer.train()
    assert summary["env_steps"] == 600 and summary["updates"] == 2 * 401  # from env step 200 on
    assert math.isfinite(summary["final_eval_return"])
    assert [e["env_steps"] for e in summary["plasticity_events"]] == [300]  # not 600: the last step
    metrics = trainer.agent.update(trainer.buffer.sample(32))
    assert all(torch.isfinite(v) for v in metrics.values())
    assert isinstance(IQL.load(tmp_path / "agent.pt"), IQL)
