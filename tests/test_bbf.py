"""BBF: annealing schedules, a tiny-width update on 84x84 pixels, priorities, the BBF preset through
the shared scheduler (which restarts the annealing), save/load, and a trainer run on real Pong."""
import math

import pytest
import torch

from agents import BBF
from agents.bbf import exponential_anneal
from replay import ReplayRequest, SequenceBatch
from plasticity.scheduler import build_scheduler
from replay import PrioritizedSampler, ReplayBuffer
from runner.trainer import Trainer
from tests.conftest import make_config

OBS = (4, 84, 84)
TINY = dict(width_scale=1, hidden_dims=(64,), spr_horizon=3)


def filled_buffer(steps=60, prioritized=True):
    g = torch.Generator().manual_seed(0)
    buf = ReplayBuffer.for_pixels(200, (1, 84, 84), 4, seed=0)
    if prioritized:
        buf.sampler = PrioritizedSampler(seed=0)
    frame = torch.randint(0, 256, (1, 84, 84), generator=g, dtype=torch.uint8)
    obs = frame.repeat(4, 1, 1)
    for t in range(steps):
        frame = torch.randint(0, 256, (1, 84, 84), generator=g, dtype=torch.uint8)
        nxt = torch.cat([obs[1:], frame])
        end = t % 20 == 19
        buf.add(obs.numpy(), t % 6, float(t % 3 == 0), nxt.numpy(), end, False)
        obs = frame.repeat(4, 1, 1) if end else nxt
    return buf


def test_annealing_values_at_0_5k_10k():
    agent = BBF(OBS, 6, **TINY)
    expected = {0: (10, 0.97), 5000: (round(10 * 0.3 ** 0.5), 1 - 0.03 * 0.1 ** 0.5),
                10000: (3, 0.997), 20000: (3, 0.997)}
    for t, (n, gamma) in expected.items():
        agent._cycle_updates = t
        assert agent.n_step == n and agent.gamma == pytest.approx(gamma, abs=1e-12)
    assert agent.n_step == 3 and exponential_anneal(5000, 10, 3, 10000) == pytest.approx(5.4772, abs=1e-4)


def test_tiny_update_is_finite_and_sets_priorities():
    torch.manual_seed(0)
    agent, buf = BBF(OBS, 6, **TINY), filled_buffer()
    request = agent.replay_request(8)
    assert request == ReplayRequest(8, 10, 0.97, 3, beta=0.5)  # K = 3 here; n, gamma at their start
    batch = buf.sample_request(request)
    assert isinstance(batch, SequenceBatch) and batch.weights.shape == (8,)
    assert batch.future_obs.shape == (8, 3, 4, 84, 84) and batch.mask.shape == (8, 3)
    before = [p.detach().clone() for p in agent.critic.parameters()]
    target_before = [p.detach().clone() for p in agent.critic_target.parameters()]
    metrics = agent.update(batch)
    priority = metrics.priorities
    assert "priority" not in metrics  # a named field, not a metric
    assert all(torch.isfinite(v).all() for v in metrics.values())
    assert metrics["spr_loss"] > 0 and metrics["td_loss"] > 0
    assert priority.shape == (8,) and (priority > 0).all()
    assert any(not torch.equal(a, b) for a, b in zip(before, agent.critic.parameters()))
    # target EMA with tau 0.005: theta' = 0.995 theta'_old + 0.005 theta_new
    for t_old, t, p in zip(target_before, agent.critic_target.parameters(), agent.critic.parameters()):
        assert torch.allclose(t, 0.995 * t_old + 0.005 * p, atol=1e-6)
    buf.update_priorities(batch.idx, priority)
    probs = buf.sampler.probabilities(batch.idx)
    assert torch.isfinite(probs).all() and (probs > 0).all()
    assert agent._cycle_updates == 1


def test_weight_decay_only_on_matrices():
    agent = BBF(OBS, 6, **TINY)
    decay, no_decay = agent.optimizers["critic"].param_groups
    assert decay["weight_decay"] == 0.1 and no_decay["weight_decay"] == 0.0
    assert all(p.dim() > 1 for p in decay["params"]) and all(p.dim() == 1 for p in no_decay["params"])


def test_bbf_preset_through_the_scheduler_restarts_annealing():
    cfg = make_config("agent=bbf", "env=atari/pong", "plasticity=bbf", "plasticity.every=2",
                      "plasticity.horizon=7")
    torch.manual_seed(0)
    agent, buf = BBF(OBS, 6, **TINY), filled_buffer()
    scheduler = build_scheduler(agent, cfg["plasticity"]["rules"])
    encoder = {n: p.detach().clone() for n, p in agent.critic.encoder.named_parameters()}
    for step in (1, 2):
        agent.update(buf.sample_request(agent.replay_request(4)))
        head = agent.critic.head.value.weight.detach().clone()
        events = scheduler.after_env_step(step, updates=step)
    assert [e["intervention"] for e in events] == ["Reset", "ShrinkPerturb"]
    assert all(e["restart_schedules"] for e in events)
    assert agent._cycle_updates == 0 and agent.n_step == 10
    assert not torch.equal(agent.critic.head.value.weight, head)
    for n, p in agent.critic.encoder.named_parameters():  # 0.5 trained + 0.5 fresh: moved
        assert not torch.equal(p, encoder[n]), n
    # a reset fires only where a whole interval still fits before the horizon (BBF's
    # no_resets_after): at 4 (4 + 2 < 7), not at 6 (6 + 2 >= 7)
    fired = [step for step in range(3, 9) if scheduler.after_env_step(step, updates=step)]
    assert fired == [4]


def test_bbf_preset_fires_at_the_reference_steps():
    """BBF.gin at replay ratio 2: reset_every 20k env steps, no_resets_after 100k -> resets at
    20k, 40k, 60k env steps (bigger_better_faster spr_agent.py reset_weights), none at 80k."""
    cfg = make_config("agent=bbf", "env=atari/pong", "plasticity=bbf")
    scheduler = build_scheduler(BBF(OBS, 6, **TINY), cfg["plasticity"]["rules"])
    steps = sorted({e["env_steps"] for step in range(1, 100_001)
                    for e in scheduler.after_env_step(step, updates=2 * step)})
    assert steps == [20_000, 40_000, 60_000]


def test_hare_tortoise_copy_does_not_restart_bbf_annealing():
    cfg = make_config("agent=bbf", "env=atari/pong", "plasticity=bbf_hare_tortoise",
                      "plasticity.every=1000")
    torch.manual_seed(0)
    agent, buf = BBF(OBS, 6, **TINY), filled_buffer()
    rules = [r for r in cfg["plasticity"]["rules"] if r["intervention"] == "hare_tortoise"]
    assert rules and rules[0]["restart_schedules"] is False
    scheduler = build_scheduler(agent, rules)
    agent.update(buf.sample_request(agent.replay_request(4)))
    (event,) = scheduler.after_env_step(1000, updates=1)
    assert event["intervention"] == "HareTortoise" and agent._cycle_updates == 1


def test_save_load_round_trip(tmp_path):
    torch.manual_seed(0)
    agent, buf = BBF(OBS, 6, **TINY), filled_buffer(prioritized=False)
    agent.update(buf.sample_request(agent.replay_request(4)))
    agent.save(tmp_path / "bbf.pt")
    loaded = BBF.load(tmp_path / "bbf.pt")
    assert loaded._cycle_updates == 1
    obs = buf.sample(2).obs
    torch.manual_seed(1)
    a = agent.act(obs.numpy(), deterministic=True)
    torch.manual_seed(1)
    assert (loaded.act(obs.numpy(), deterministic=True) == a).all()


@pytest.mark.parametrize("preset, events", [("bbf", 2), ("bbf_hare_tortoise", 3)])
def test_bbf_trains_on_real_pong_with_its_resets(tmp_path, preset, events):
    # every 120 env steps (updates 1..21 run at env steps 100..120), horizon 241: one firing
    # (BBF's horizon decides here: no_reset_within, which would skip it 10 steps before the end, off)
    cfg = make_config("agent=bbf", "env=atari/pong", f"plasticity={preset}", "plasticity.every=120",
                      "plasticity.horizon=241", "plasticity.no_reset_within=0",
                      "agent.width_scale=1", "agent.hidden_dims=[64]", "agent.batch_size=4",
                      "agent.buffer_size=1000", "agent.replay_ratio=1", "train.total_steps=130",
                      "train.learning_starts=100", "train.eval_every=0", "train.eval_episodes=1",
                      "train.progress=false", "train.checkpoint_every=0", "diagnostics.every=0")
    trainer = Trainer(cfg, tmp_path)
    assert isinstance(trainer.buffer.sampler, PrioritizedSampler)
    summary = trainer.train()
    assert summary["updates"] == 31
    assert [e["updates"] for e in summary["plasticity_events"]] == [21] * events
    assert [e["env_steps"] for e in summary["plasticity_events"]] == [120] * events
    assert math.isfinite(summary["final_eval_human_normalized"])
