"""Continual RL (README "Continual RL"): task sequences with their perturbations applied exactly,
switches at exact env steps (episodes truncated there, the task_switch rules firing, every task
evaluated), a bitwise resume across a switch, and the trainability probe."""
import gymnasium
import numpy as np
import pytest
import torch

from envs import make_env
from envs.sequence import TaskSequence, draw_tasks
from plasticity.probe import trainability_probe
from runner.trainer import Trainer
from runner.validate import ConfigError, validate_config
from tests.conftest import TINY, make_config
from tests.test_resume import final_state


class Recorder(gymnasium.Env):
    """Echoes its step: observation [0, 1, 2, 3] + 10 t, reward 1, records the actions."""
    observation_space = gymnasium.spaces.Box(-1e6, 1e6, (4,), np.float32)
    action_space = gymnasium.spaces.Box(-1, 1, (3,), np.float32)

    def __init__(self):
        self.actions, self.t = [], 0

    def reset(self, *, seed=None, options=None):
        self.t = 0
        return np.arange(4, dtype=np.float32), {}

    def step(self, action):
        self.actions.append(np.array(action))
        self.t += 1
        return np.arange(4, dtype=np.float32) + 10 * self.t, 1.0, False, False, {}


def test_tasks_are_drawn_per_index_and_task_zero_is_the_env():
    tasks = draw_tasks(["permute_obs", "negate_actions", "scale_reward"], 4, 4, 3, seed=7)
    assert tasks[0].obs_perm is None and tasks[0].action_sign is None and tasks[0].reward_scale == 1.0
    for task in tasks[1:]:
        assert sorted(task.obs_perm) == [0, 1, 2, 3] and task.obs_perm != (0, 1, 2, 3)
        assert -1.0 in task.action_sign and 0.25 <= task.reward_scale <= 4.0
    assert draw_tasks(["permute_obs"], 4, 4, 3, seed=7)[2].obs_perm == tasks[2].obs_perm  # per (seed, index)
    assert draw_tasks(["permute_obs"], 4, 4, 3, seed=8)[2].obs_perm != tasks[2].obs_perm


def test_perturbations_reach_the_env_exactly():
    env = TaskSequence(Recorder(), ["permute_obs", "permute_actions", "negate_actions", "scale_reward"], 3, seed=1)
    obs, info = env.reset()
    assert obs.tolist() == [0, 1, 2, 3] and info["task"] == 0  # task 0: unchanged
    env.set_task(2)
    task = env.task
    obs, _ = env.reset()
    assert obs.tolist() == [float(i) for i in task.obs_perm]  # o' = o[perm]
    action = np.array([0.1, -0.2, 0.3], np.float32)
    obs, reward, *_ = env.step(action)
    assert obs.tolist() == [float(i) + 10 for i in task.obs_perm] and reward == pytest.approx(task.reward_scale)
    sent = env.env.actions[-1]
    signed = action * np.array(task.action_sign, np.float32)
    assert [sent[task.action_perm[j]] for j in range(3)] == pytest.approx(signed.tolist())
    env.set_task(5)  # cycles: 5 mod 3
    assert env.task_index == 2


def test_physics_perturbations_scale_the_model_from_its_built_values():
    env = TaskSequence(make_env("dmc:cartpole-swingup", seed=0), ["friction", "mass", "gravity"], 3, seed=3)
    model = env.unwrapped.physics.model
    friction, mass, gravity = model.geom_friction.copy(), model.body_mass.copy(), model.opt.gravity.copy()
    env.set_task(1)
    factors = dict(env.task.physics)
    assert np.allclose(model.geom_friction, friction * factors["friction"])
    assert np.allclose(model.body_mass, mass * factors["mass"])
    assert np.allclose(model.opt.gravity, gravity * factors["gravity"])
    env.set_task(2)
    env.set_task(0)  # back to the model as built, not a product of factors
    assert np.array_equal(model.body_mass, mass) and np.array_equal(model.opt.gravity, gravity)


SEQ = "env.sequence={every:150,tasks:3,perturb:[permute_obs,negate_actions],eval_all:true}"


def test_switches_happen_at_exact_steps_truncate_episodes_and_fire_task_switch_rules(tmp_path):
    cfg = make_config(*TINY, SEQ, "train.total_steps=600", "train.eval_every=300",
                      "plasticity=head_reset", "plasticity.unit=task_switch", "plasticity.every=1",
                      "diagnostics.probe_steps=20")
    trainer = Trainer(cfg, tmp_path)
    summary = trainer.train()
    events = summary["plasticity_events"]
    assert [e["env_steps"] for e in events] == [150, 300, 450]  # not at 600, the run's end
    assert trainer.counters["switches"] == 3 and trainer.env.task_index == 0  # 1, 2, then 3 mod 3
    truncated = trainer.buffer.storage.fields["truncated"][:600].nonzero().flatten().tolist()
    # every 150 steps a switch ends the episode, before Pendulum's own 200-step limit comes
    assert truncated == [149, 299, 449]  # slots of steps 150, 300, 450; 600 ends mid-episode
    evals = summary["eval"]
    assert [(e["env_steps"], e["task"]) for e in evals] == [(300, 1), (600, 0)]  # 300: before its switch
    assert all(len(e["per_task"]) == 3 for e in evals)
    assert evals[0]["per_task"][1] == evals[0]["return_mean"]  # the current task, evaluated twice alike


def test_a_continual_run_resumes_bitwise_across_a_switch(tmp_path):
    cfg = make_config(*TINY, SEQ, "train.total_steps=800", "plasticity=shrink_perturb",
                      "plasticity.unit=task_switch", "plasticity.every=1")
    full = Trainer(cfg, tmp_path / "full")
    full.train()
    cut = Trainer(cfg, tmp_path / "cut")
    cut.train(stop_at=250)  # the switch at 300 ends an episode: checkpointed there, after it
    resumed = Trainer(cfg, tmp_path / "cut")
    resumed.restore()
    assert resumed.counters["env_steps"] == 300 and resumed.env.task_index == 2
    resumed.train()
    a, b = final_state(full), final_state(resumed)
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert full.scheduler.events == resumed.scheduler.events
    assert [e["per_task"] for e in full.eval_history] == [e["per_task"] for e in resumed.eval_history]


def test_the_probe_fits_random_targets_and_changes_nothing(tmp_path):
    trainer = Trainer(make_config(*TINY, "train.total_steps=300"), tmp_path)
    trainer.train()
    agent = trainer.agent
    before = {k: v.clone() for k, v in agent.state_dict().items()}
    rng = torch.get_rng_state()
    batch = trainer.buffer.sample(32)
    out = trainability_probe(agent, "critic", batch, steps=200, lr=1e-2, seed=0)
    assert out["fit_loss_end"] < out["fit_loss_start"] and out["fit_ratio"] < 0.5  # a small net fits
    assert trainability_probe(agent, "critic", batch, steps=200, lr=1e-2, seed=0) == out  # seeded
    assert torch.equal(torch.get_rng_state(), rng)
    assert all(torch.equal(before[k], v) for k, v in agent.state_dict().items())


@pytest.mark.parametrize("overrides, message", [
    (["plasticity=head_reset", "plasticity.unit=task_switch"], "needs a continual run (env.sequence)"),
    (["diagnostics.probe_steps=10"], "the probe runs at task switches and needs env.sequence"),
    (["env.sequence={every:100,tasks:3,perturb:[mass]}"], "change a DMC physics model"),
    (["env=atari/pong", "agent=drq_atari", "env.sequence={every:100,tasks:2,perturb:[permute_obs]}"],
     "permute_obs needs vector observations"),
    (["env.sequence={every:100,tasks:2,perturb:[permute_obs],often:1}"], "env.sequence: unknown keys ['often']"),
])
def test_continual_settings_are_validated(overrides, message):
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)")
                       .replace("[", r"\[").replace("]", r"\]")):
        validate_config(make_config(*overrides))
