"""SimBa networks for SAC (agents/simba.py, configs/agent/simba.yaml; issue: more plasticity
methods). Parameter counts by hand, the observation normaliser's running statistics against the
reference formula, resets that keep the normaliser, SimBa's update order, AdamW, and every preset
from the trainer."""
import copy

import numpy as np
import pytest
import torch

from agents.members import MemberStack
from agents.sac import SAC
from plasticity.scheduler import build_scheduler
from replay.buffer import Batch
from runner.trainer import Trainer
from tests.conftest import TINY, make_config

SIMBA = dict(network="simba", normalize_observations=True, weight_decay=0.01,
             update_order="actor_first", num_critics=1, lr=1e-4, init_temperature=0.01)


def test_parameter_counts_by_hand():
    agent = SAC(5, 2, **SIMBA)  # obs 5, action 2, widths 512 (critic, 2 blocks) and 128 (actor, 1)
    block = lambda h: 2 * h + (h * 4 * h + 4 * h) + (4 * h * h + h)  # noqa: E731  LN, up, down
    critic = (7 * 512 + 512) + 2 * block(512) + 2 * 512 + (512 + 1)
    actor = (5 * 128 + 128) + block(128) + 2 * 128 + (128 * 4 + 4)
    assert critic == 4_207_105 and actor == 133_508
    assert sum(p.numel() for p in agent.critic.parameters()) == critic
    assert sum(p.numel() for p in agent.actor.parameters()) == actor
    two = SAC(5, 2, **{**SIMBA, "num_critics": 2})
    assert sum(p.numel() for p in two.critic.parameters()) == 2 * critic
    names = {n for n, _ in agent.named_parameters()}
    assert {"critic.head.weight", "critic.blocks.1.up.weight", "critic.input.weight",
            "actor.trunk.blocks.0.down.weight", "actor.head.weight"} <= names


def _reference_rms(observations):
    """gymnasium's RunningMeanStd as SimBa uses it: one observation per update."""
    mean, var, count = np.zeros(3), np.ones(3), 1e-4
    for x in observations:
        delta, total = x - mean, count + 1
        m2 = var * count + 0.0 + delta ** 2 * count * 1 / total
        mean, var, count = mean + delta / total, m2 / total, total
    return mean, var, count


def test_observation_statistics_follow_the_reference_and_only_while_training():
    torch.manual_seed(0)
    agent = SAC(3, 1, hidden_dims=(8,), **{**SIMBA, "critic_hidden_dim": 8, "actor_hidden_dim": 8})
    rng = np.random.default_rng(0)
    observations = rng.normal(2.0, 3.0, size=(50, 3)).astype(np.float32)
    for x in observations:
        agent.act(x)
    agent.act(observations[0], deterministic=True)  # evaluation: no update
    agent.predict(observations[1])  # predict: no update
    mean, var, count = _reference_rms(observations.astype(np.float64))
    norm = agent.obs_norm
    np.testing.assert_allclose(norm.mean.numpy(), mean, rtol=1e-12)
    np.testing.assert_allclose(norm.var.numpy(), var, rtol=1e-12)
    assert float(norm.count) == pytest.approx(count, rel=1e-15)
    obs = torch.as_tensor(observations[:4])
    expected = ((obs.double() - torch.as_tensor(mean)) / torch.sqrt(torch.as_tensor(var) + 1e-8)).float()
    torch.testing.assert_close(norm(obs), expected)
    # the critic sees normalised observations in the update
    batch = Batch(obs, torch.zeros(4, 1), torch.zeros(4), torch.zeros(4), obs, torch.arange(4))
    q = agent.critic(expected, batch.action)
    torch.manual_seed(1)
    loss, _ = agent.critic_loss(batch)
    torch.testing.assert_close(loss, (q ** 2).mean(dim=1).sum())  # discount 0, reward 0: target 0


def test_resets_keep_the_normalizer():
    agent = SAC(3, 1, **{**SIMBA, "critic_hidden_dim": 16, "actor_hidden_dim": 8})
    for x in np.random.default_rng(1).normal(size=(20, 3)).astype(np.float32):
        agent.act(x)
    stats = {k: v.clone() for k, v in agent.obs_norm.state_dict().items()}
    head = agent.critic.head.weight.detach().clone()
    rules = [{"intervention": "reset", "groups": ["*"], "unit": "updates", "every": 1,
              "optimizer": "reset", "target": "copy_online"}]
    scheduler = build_scheduler(agent, rules)
    assert scheduler.after_update(1, 1)  # a full reset fired
    assert not torch.equal(agent.critic.head.weight, head)
    for key, value in agent.obs_norm.state_dict().items():
        assert torch.equal(value, stats[key]), key


def _batch():
    g = torch.Generator().manual_seed(3)
    return Batch(torch.randn(8, 3, generator=g), torch.rand(8, 1, generator=g) * 2 - 1,
                 torch.randn(8, generator=g), torch.full((8,), 0.99), torch.randn(8, 3, generator=g),
                 torch.arange(8))


def test_update_order_actor_then_critic_and_adamw():
    torch.manual_seed(0)
    agent = SAC(3, 1, **{**SIMBA, "critic_hidden_dim": 16, "actor_hidden_dim": 8})
    assert type(agent.optimizers["critic"]) is torch.optim.AdamW
    assert agent.optimizers["actor"].param_groups[0]["weight_decay"] == 0.01
    assert type(agent.optimizers["log_alpha"]) is torch.optim.Adam
    by_hand, batch = copy.deepcopy(agent), _batch()
    torch.manual_seed(5)
    agent.update(batch)
    torch.manual_seed(5)
    by_hand.update_actor(batch.obs)  # SimBa: actor and temperature first, the critic with them
    by_hand.update_critic(batch)
    by_hand.update_target()
    for name, p in agent.state_dict().items():
        assert torch.equal(p, by_hand.state_dict()[name]), name


def test_simba_members_vectorize():
    torch.manual_seed(0)
    agents = [SAC(3, 1, **{**SIMBA, "critic_hidden_dim": 16, "actor_hidden_dim": 8}) for _ in range(2)]
    for k, agent in enumerate(agents):
        agent.act(np.full(3, k, dtype=np.float32))  # different statistics per member
    stack = MemberStack(agents)
    assert stack.tensors["obs_norm.mean"].shape == (2, 3)
    stack.update([_batch(), _batch()])
    assert not torch.equal(agents[0].critic.head.weight, agents[1].critic.head.weight)


@pytest.mark.parametrize("preset", ["head_reset", "shrink_perturb", "hare_tortoise", "full_reset", "redo"])
def test_every_preset_runs_on_simba(tmp_path, preset):
    cfg = make_config(*TINY, "agent=simba", "agent.critic_hidden_dim=32", "agent.actor_hidden_dim=16",
                      "agent.replay_ratio=2", "train.total_steps=500", f"plasticity={preset}",
                      "++plasticity.unit=updates", "++plasticity.every=200")
    trainer = Trainer(cfg, tmp_path)
    summary = trainer.train()
    assert len(summary["plasticity_events"]) >= 2
    assert float(trainer.agent.obs_norm.count) == pytest.approx(300 + 1e-4)  # steps 201..500 acted on
