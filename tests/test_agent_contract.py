"""The agent contract (agents/base.py, README "Writing an agent"): a small agent written here, in
the tests, plugs in with one `register_agent` call, trains from the trainer, resumes bitwise and
takes every preset that fits it, without a line of runner/ or plasticity/ knowing of it. Also:
what the contract refuses (an abstract agent, kinds, prioritized replay without priorities)."""
import numpy as np
import pytest
import torch
from torch import nn

from agents import AGENTS, register_agent
from agents.base import Agent, UpdateResult
from agents.init import Linear
from agents.networks import make_activation, width_after
from plasticity.groups import GroupError
from runner.trainer import Trainer
from runner.validate import ConfigError
from tests.conftest import make_config
from tests.test_resume import final_state

TINY_Q_DEFAULTS = dict(hidden_dims=(32,), lr=1e-3, activation="relu", tau=0.05, epsilon_train=0.1)


class QNet(nn.Module):
    def __init__(self, obs_dim, num_actions, hidden_dims, activation):
        super().__init__()
        layers, width = [], obs_dim
        for h in hidden_dims:
            layers += [Linear(width, h, "orthogonal"), make_activation(activation)]
            width = width_after(activation, h)
        self.trunk, self.head = nn.Sequential(*layers), Linear(width, num_actions, "orthogonal")

    def forward(self, obs):
        return self.head(self.trunk(obs))  # [B, A]


class TinyQ(Agent):
    """Q-learning on vector observations with discrete actions: a critic with a `head`, its
    target copy, one optimizer; epsilon-greedy acting."""
    action_kind = "discrete"
    target_networks = {"critic": "critic_target"}

    def __init__(self, obs_dim: int, num_actions: int, device="cpu", **hparams):
        super().__init__()
        h = self._set_hparams(TINY_Q_DEFAULTS, obs_dim, num_actions, device, hparams)
        self.h, self.num_actions = h, num_actions
        self.critic = QNet(obs_dim, num_actions, h["hidden_dims"], h["activation"])
        self.critic_target = QNet(obs_dim, num_actions, h["hidden_dims"], h["activation"])
        self.critic_target.load_state_dict(self.critic.state_dict())
        self.critic_target.requires_grad_(False)
        self.to(self.device)
        self.optimizers = {"critic": torch.optim.Adam(self.critic.parameters(), lr=h["lr"])}

    @torch.no_grad()
    def act(self, obs, deterministic: bool = False):
        q = self.critic(torch.as_tensor(np.asarray(obs), dtype=torch.float32, device=self.device))
        greedy = q.argmax(-1).cpu().numpy()
        if deterministic or torch.rand(()) >= self.h["epsilon_train"]:
            return greedy
        return np.asarray(torch.randint(self.num_actions, greedy.shape).numpy())

    def update(self, batch) -> UpdateResult:
        with torch.no_grad():
            target = batch.reward + batch.discount * self.critic_target(batch.next_obs).max(-1).values
        q = self.critic(batch.obs).gather(1, batch.action.long()[:, None]).squeeze(1)
        loss = (q - target).pow(2).mean()
        opt = self.optimizers["critic"]
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        with torch.no_grad():
            torch._foreach_lerp_(list(self.critic_target.parameters()), list(self.critic.parameters()),
                                 self.h["tau"])
        return UpdateResult({"critic_loss": loss.detach(), "q": q.detach().mean()})


register_agent("tiny_q", TinyQ, TINY_Q_DEFAULTS)
CARTPOLE = ("env.id=gym:CartPole-v1", "env.name=cartpole", "device=cpu", "train.total_steps=600",
            "train.learning_starts=100", "train.eval_every=300", "train.eval_episodes=2",
            "train.log_every=100", "train.checkpoint_every=0", "train.progress=false",
            "diagnostics.every=100")


def tiny_q_config(*overrides: str) -> dict:
    """A run of the tests' agent: the composed config with its own `agent` section."""
    cfg = make_config(*CARTPOLE, *overrides)
    cfg["agent"] = {"name": "tiny_q", "replay_ratio": 2, "batch_size": 32, "buffer_size": 2000,
                    "gamma": 0.99, "n_step": 3, **TINY_Q_DEFAULTS, "hidden_dims": [32]}
    if cfg["plasticity"]["name"] == "crelu":
        cfg["agent"]["activation"] = "crelu"
    return cfg


def test_a_new_agent_trains_and_resumes_bitwise_from_the_trainer(tmp_path):
    full = Trainer(tiny_q_config("plasticity=shrink_perturb", "plasticity.every=200"), tmp_path / "full")
    summary = full.train()
    assert summary["updates"] == 2 * (600 - 100 + 1) and summary["agent"] == "tiny_q"
    assert [e["updates"] for e in summary["plasticity_events"]] == [200, 400, 600, 800]
    cut = Trainer(tiny_q_config("plasticity=shrink_perturb", "plasticity.every=200"), tmp_path / "cut")
    cut.train(stop_at=250)
    resumed = Trainer(tiny_q_config("plasticity=shrink_perturb", "plasticity.every=200"), tmp_path / "cut")
    resumed.restore()
    resumed.train()
    a, b = final_state(full), final_state(resumed)
    assert all(torch.equal(a[k], b[k]) for k in a)


# every preset whose groups the agent has; BBF's name modules a plain Q-network does not have
FITS = ["none", "full_reset", "head_reset", "shrink_perturb", "hare_tortoise", "regen", "crelu",
        "reset_but_encoder"]


@pytest.mark.parametrize("preset", FITS)
def test_every_preset_applies_to_the_new_agent(tmp_path, preset):
    every = [] if preset in ("none", "regen", "crelu") else ["plasticity.unit=updates",
                                                            "plasticity.every=150"]
    trainer = Trainer(tiny_q_config(f"plasticity={preset}", "train.total_steps=300", *every), tmp_path)
    summary = trainer.train()
    fired = [e["updates"] for e in summary["plasticity_events"]]
    within = trainer.cfg["plasticity"].get("no_reset_within") or 0  # 402 updates in all
    assert fired == [k for k in (150, 300) if every and summary["updates"] - k >= 150 * within]
    assert fired[:1] == ([150] if every else [])
    if preset == "crelu":
        assert isinstance(trainer.agent.critic.trunk[1], nn.Module) and trainer.agent.critic.head.in_features == 64


@pytest.mark.parametrize("preset", ["bbf", "bbf_hare_tortoise"])
def test_presets_that_do_not_fit_are_refused_naming_the_parameters(tmp_path, preset):
    with pytest.raises(GroupError, match="critic.projection.* matches nothing; parameters of TinyQ: "
                                         "critic.trunk.0.weight"):
        Trainer(tiny_q_config(f"plasticity={preset}"), tmp_path)


def test_the_contract_refuses_what_does_not_fit(tmp_path):
    with pytest.raises(TypeError, match="abstract"):
        type("NoUpdate", (Agent,), {"act": lambda self, obs, deterministic=False: 0})()
    with pytest.raises(TypeError, match="not a subclass of agents.base.Agent"):
        register_agent("plain", nn.Linear, {})
    with pytest.raises(ValueError, match="observation_kind 'images' must be one of"):
        register_agent("odd", type("Odd", (TinyQ,), {"observation_kind": "images"}), TINY_Q_DEFAULTS)
    assert "odd" not in AGENTS and "plain" not in AGENTS
    cfg = tiny_q_config()
    cfg["agent"]["prioritized"] = True  # TinyQ gives no priorities
    with pytest.raises(ConfigError, match=r"agent.prioritized = true: TinyQ gives no priorities for "
                                          r"prioritized replay \(agents that do: \['bbf'\]\)"):
        Trainer(cfg, tmp_path)
    cfg = make_config(*CARTPOLE)  # SAC on CartPole's discrete actions
    with pytest.raises(ConfigError, match=r"agent 'sac' takes vector observations and continuous "
                                          r"actions, .* agents for this env: \['tiny_q'\]"):
        Trainer(cfg, tmp_path)
    with pytest.raises(ValueError, match=r"invalid TinyQ arguments: tau = 2: must be a number in \(0, 1\]"):
        TinyQ(4, 2, tau=2)  # the constructor checks with the rules validation uses
