"""IQL against ikostrikov/implicit_q_learning @ 09d7002: the actor's cosine lr decay (learner.py
`opt_decay_schedule="cosine"`, over train_offline.py's offline updates), its persistence across
save/load and resume, its horizon from the config, and the new keys' validation messages."""
import math

import pytest
import torch

from agents import IQL, make_agent
from agents.iql import actor_lr_factor
from runner.validate import ConfigError, validate_config
from tests.conftest import TINY, make_config
from tests.test_sac import random_buffer

LR = 3e-4


def expected_lr(t, T):
    """optax.cosine_decay_schedule(lr, T) at count t (the first update has count 0); from T on,
    the constant lr of the online phase (train_finetune.py)."""
    return LR * 0.5 * (1 + math.cos(math.pi * t / T)) if t < T else LR


def lrs(agent):
    return {name: opt.param_groups[0]["lr"] for name, opt in agent.optimizers.items()}


def test_actor_lr_is_the_reference_cosine_and_critic_value_stay_constant():
    T = 8
    agent = IQL(5, 2, hidden_dims=(8, 8), actor_lr_decay_steps=T)
    buf = random_buffer()
    seen = []
    for t in range(T + 3):
        seen.append(lrs(agent))
        agent.update(buf.sample(16))
    assert [s["actor"] for s in seen] == [expected_lr(t, T) for t in range(T + 3)]
    assert seen[0]["actor"] == LR and seen[T // 2]["actor"] == LR / 2  # cos(pi / 2) rounds to 0 in 1 + cos
    assert 0 < seen[T - 1]["actor"] < 2e-5 and seen[T]["actor"] == LR  # back to lr after the horizon
    assert all(s["critic"] == s["value"] == LR for s in seen)
    assert agent.actor_lr_scheduler.last_epoch == T + 3


def test_the_scheduled_lr_is_the_one_adam_steps_with():
    """The same agent stepped with the lr set by hand before each actor update: bitwise equal."""
    T, buf = 5, random_buffer()
    torch.manual_seed(0)
    scheduled = IQL(5, 2, hidden_dims=(8, 8), actor_lr_decay_steps=T)
    torch.manual_seed(0)
    by_hand = IQL(5, 2, hidden_dims=(8, 8), actor_lr_schedule="constant", actor_lr_decay_steps=T)
    for t in range(T + 1):
        batch = buf.batch_at(torch.arange(t, t + 32))
        scheduled.update(batch)
        by_hand.optimizers["actor"].param_groups[0]["lr"] = expected_lr(t, T)
        by_hand.update(batch)
    for (name, p), q in zip(scheduled.named_parameters(), by_hand.parameters()):
        assert torch.equal(p, q), name


@pytest.mark.parametrize("kw", [dict(actor_lr_schedule="constant", actor_lr_decay_steps=8),
                                dict(actor_lr_decay_steps=0), dict(actor_lr_decay_steps=None), {}])
def test_constant_actor_lr(kw):
    agent = IQL(5, 2, hidden_dims=(8,), **kw)
    buf = random_buffer()
    for _ in range(4):
        agent.update(buf.sample(16))
        assert lrs(agent) == {"actor": LR, "critic": LR, "value": LR}
    assert [actor_lr_factor("cosine", None, t) for t in range(3)] == [1.0] * 3


def test_schedule_survives_save_load_and_a_resume_continues_it_bitwise(tmp_path):
    T, buf = 10, random_buffer()
    torch.manual_seed(0)
    agent = IQL(5, 2, hidden_dims=(8, 8), actor_lr_decay_steps=T)
    for _ in range(4):
        agent.update(buf.sample(16))
    agent.save(tmp_path / "agent.pt")
    assert agent.training_state()["actor_lr_schedule"]["last_epoch"] == 4
    loaded = IQL.load(tmp_path / "agent.pt")
    resumed = IQL(5, 2, hidden_dims=(8, 8), actor_lr_decay_steps=T)  # the trainer's path
    resumed.load_training_state(torch.load(tmp_path / "agent.pt", weights_only=False))
    for a in (loaded, resumed):
        assert lrs(a) == lrs(agent) and lrs(a)["actor"] == expected_lr(4, T)
    for t in range(4, 13):
        batch = buf.batch_at(torch.arange(t, t + 32))
        for a in (agent, loaded, resumed):
            assert lrs(a)["actor"] == expected_lr(t, T)
            a.update(batch)
    for a in (loaded, resumed):
        for (name, p), q in zip(agent.named_parameters(), a.parameters()):
            assert torch.equal(p, q), name


def test_a_state_saved_before_the_schedule_keeps_its_lr_and_starts_the_count():
    old = IQL(5, 2, hidden_dims=(8,))
    state = old.training_state()
    del state["actor_lr_schedule"]
    state["optimizers"]["actor"]["param_groups"][0]["lr"] = 1e-4
    agent = IQL(5, 2, hidden_dims=(8,), actor_lr_decay_steps=4)
    agent.load_training_state(state)
    assert agent.actor_lr_scheduler.last_epoch == 0 and lrs(agent)["actor"] == 1e-4
    agent.update(random_buffer().sample(16))
    assert lrs(agent)["actor"] == 1e-4 * actor_lr_factor("cosine", 4, 1)


def test_config_decays_over_the_offline_pretraining():
    a = make_config("agent=iql", "offline.pretrain_updates=1000000")["agent"]
    assert a["actor_lr_schedule"] == "cosine"       # learner.py opt_decay_schedule="cosine"
    assert a["actor_lr_decay_steps"] == 1_000_000   # train_offline.py max_steps, the offline updates
    assert make_config("agent=iql")["agent"]["actor_lr_decay_steps"] == 0  # online only: constant
    cfg = make_config("agent=iql", "agent.hidden_dims=[8]", "offline.pretrain_updates=50")
    from gymnasium import spaces
    agent = make_agent(cfg["agent"], spaces.Box(-1, 1, (3,)), spaces.Box(-1, 1, (1,)))
    assert agent.hparams["actor_lr_decay_steps"] == 50


def test_trainer_pretrains_on_the_cosine_then_fine_tunes_at_lr(tmp_path):
    from runner.trainer import Trainer
    from tests.test_offline_data import reward_dataset
    path = reward_dataset(tmp_path, "hand/pendulum-v0", [[0.0, -1.0, -2.0], [-1.0, -1.0]], obs_dim=3)
    cfg = make_config(*TINY, "agent=iql", f"offline.dataset={path}", "offline.pretrain_updates=6",
                      "train.total_steps=8", "train.learning_starts=4", "train.eval_every=0")
    trainer = Trainer(cfg, tmp_path / "run")
    seen = []
    trainer.agent.optimizers["actor"].register_step_pre_hook(
        lambda opt, args, kwargs: seen.append(opt.param_groups[0]["lr"]))
    summary = trainer.train()
    assert summary["updates"] == len(seen) == 6 + 2 * 5  # online updates from env step 4 to 8
    assert seen == [expected_lr(t, 6) for t in range(16)]
    assert seen[6:] == [LR] * 10


@pytest.mark.parametrize("overrides, message", [
    (("offline.reward_normalization=abc",),
     r"offline.reward_normalization = 'abc': must be one of \['none', 'returns_range'\]"),
    (("offline.reward_normalization=returns_range",),
     "offline.reward_normalization = 'returns_range': needs offline.dataset"),
    (("offline.reward_scale=inf",), "offline.reward_scale = inf: must be a finite number"),
    (("agent=iql", "agent.actor_lr_schedule=linear"),
     r"agent.actor_lr_schedule = 'linear': must be one of \['cosine', 'constant'\]"),
    (("agent=iql", "agent.actor_lr_decay_steps=-3"),
     "agent.actor_lr_decay_steps = -3: must be null or an integer >= 0"),
    (("agent=iql", "agent.actor_lr_decay_steps=1.5"),
     "agent.actor_lr_decay_steps = 1.5: must be null or an integer >= 0"),
])
def test_bad_values_are_refused_naming_the_key(overrides, message):
    with pytest.raises(ConfigError, match=message):
        validate_config(make_config(*overrides))


def test_constructor_refuses_bad_schedules():
    with pytest.raises(ValueError, match=r"actor_lr_schedule = 'linear': must be one of \['cosine', 'constant'\]"):
        IQL(3, 1, actor_lr_schedule="linear")
    with pytest.raises(ValueError, match="actor_lr_decay_steps = -1: must be null or an integer >= 0"):
        IQL(3, 1, actor_lr_decay_steps=-1)
