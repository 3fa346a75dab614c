"""Implicit Q-Learning (Kostrikov, Nair & Levine 2021, "Offline RL with Implicit Q-Learning").

Every loss uses only the batch's own actions (no actions sampled from pi), so IQL trains from
offline data, online data or both in one replay buffer. With u = Q'(s,a) - V(s):

    value:   L_V = E[L2_tau(min_j Q'_j(s,a) - V(s))],  L2_tau(u) = |tau - 1(u < 0)| u^2
    critic:  L_Q = sum_j E[(Q_j(s,a) - (R + d * V(s')))^2]
    actor:   L_pi = -E[min(exp(beta * (min_j Q'_j(s,a) - V(s))), w_max) * log pi(a|s)]   (AWR)
    target:  theta' <- (1 - tau_ema) theta' + tau_ema theta

Q' is the target critic; R and d come from the replay buffer (n-step return and gamma^m, 0 at
termination). Each setting against ikostrikov/implicit_q_learning @ 09d7002, file by file:
- order per update V, pi (with the new V), Q (bootstrapping from the new V), target EMA:
  learner.py `_update_jit`; tau_ema = `tau` 0.005, Adam lr 3e-4 each: configs/*.py.
- tau = `expectile`, beta = `temperature` (inverse temperature): 0.9 / 10 for AntMaze (the
  default; configs/antmaze_config.py, antmaze_finetune_config.py), 0.7 / 3 for MuJoCo locomotion
  (configs/mujoco_config.py). V tends to the tau-expectile of Q' over the data's actions.
- w_max = `max_weight` = 100: actor.py `jnp.minimum(exp_a, 100.0)`.
- pi(a|s) = N(tanh(mu(s)), sigma^2), state-independent log sigma in [-5, 2] (`actor.head.log_std`):
  learner.py `NormalTanhPolicy(log_std_min=-5.0, state_dependent_std=False,
  tanh_squash_distribution=False)`, policy.py LOG_STD_MAX. The deterministic action is the mean; a
  sampled one is clipped to [-1, 1] (learner.py `sample_actions`).
- `dropout` on the actor's trunk only, off when acting: configs/kitchen_config.py dropout_rate 0.1.
- `init` (agents/init.py): orthogonal with gain sqrt(2) on every Dense, the policy mean included:
  common.py `default_init`.
- Actor lr (`actor_lr_schedule`): learner.py `opt_decay_schedule="cosine"`:
  `scale_by_adam` then `scale_by_schedule(cosine_decay_schedule(-actor_lr, max_steps))`, the actor
  only. Actor update t (0-based; optax's count starts at 0) uses lr * 0.5 * (1 + cos(pi t / T)),
  T = `actor_lr_decay_steps` = max_steps, the offline updates (train_offline.py, 1M); the config
  sets T = `offline.pretrain_updates`. From update T on the lr is `lr` again: the online phase
  follows train_finetune.py, whose configs/antmaze_finetune_config.py keeps every lr constant
  (`opt_decay_schedule = None`; ours: `actor_lr_schedule=constant`). T null or 0: constant.
  The schedule is torch's LambdaLR, stepped once per actor update and saved with the optimizers.
- Reward normalization (MuJoCo 1000 / return range, AntMaze r - 1): train_offline.py, applied by
  the replay loader (`offline.reward_normalization`, replay/datasets.py), not here.
Submodule names (`actor`, `critic`, `critic_target`, `value`, each split into `trunk` and `head`) are
the plasticity groups' handles; nothing here resets anything (an optimizer reset leaves the lr
schedule's count alone). The update makes no host syncs.
"""
from __future__ import annotations

import copy
import math

import numpy as np
import torch

from agents.base import Agent, UpdateResult
from agents.init import agent_init
from agents.networks import EnsembleCritic, GaussianActor, StateValue

# Constructor arguments. expectile / temperature: the paper's AntMaze values (0.7 / 3 for locomotion).
# actor_lr_decay_steps None: no horizon, a constant lr (configs/agent/iql.yaml sets the pre-training's).
IQL_DEFAULTS = dict(
    hidden_dims=(256, 256), num_critics=2, layer_norm=False, activation="relu", dropout=None,
    lr=3e-4, tau=0.005, expectile=0.9, temperature=10.0, max_weight=100.0, init="orthogonal",
    actor_lr_schedule="cosine", actor_lr_decay_steps=None,
)
ACTOR_LR_SCHEDULES = ("cosine", "constant")


def actor_lr_factor(schedule: str, decay_steps: int | None, t: int) -> float:
    """The actor lr multiplier of actor update t (0-based): 0.5 * (1 + cos(pi t / T)) for t < T
    under `cosine` (learner.py, optax.cosine_decay_schedule), else 1."""
    if schedule == "constant" or not decay_steps or t >= decay_steps:
        return 1.0
    return 0.5 * (1.0 + math.cos(math.pi * t / decay_steps))


def expectile_loss(u: torch.Tensor, expectile: float) -> torch.Tensor:
    """L2_tau(u) = |tau - 1(u < 0)| u^2, elementwise."""
    weight = torch.where(u < 0, 1.0 - expectile, expectile)
    return weight * u.pow(2)


def awr_weights(advantage: torch.Tensor, temperature: float, max_weight: float) -> torch.Tensor:
    """min(exp(beta * A), w_max), elementwise (exp overflows to inf, which the clamp catches)."""
    return torch.exp(temperature * advantage).clamp(max=max_weight)


class IQL(Agent):
    """IQL for continuous actions in [-1, 1]. See the module docstring for the losses."""

    target_networks = {"critic": "critic_target"}  # online prefix -> its target, for plasticity groups
    hparam_rules = {  # beside agents/hparams.py RULES (expectile, temperature, ...)
        "actor_lr_schedule": (lambda v: v in ACTOR_LR_SCHEDULES,
                              f"one of {list(ACTOR_LR_SCHEDULES)} (cosine: decay over agent.actor_lr_decay_steps)"),
        "actor_lr_decay_steps": (lambda v: v is None or (isinstance(v, int) and not isinstance(v, bool) and v >= 0),
                                 "null or an integer >= 0 (actor updates of the cosine decay; null or 0: constant lr)"),
    }

    def __init__(self, obs_dim: int, action_dim: int, device="cpu", **hparams):
        super().__init__()
        h = self._set_hparams(IQL_DEFAULTS, obs_dim, action_dim, device, hparams)
        schedule, decay_steps = h["actor_lr_schedule"], h["actor_lr_decay_steps"]
        self.expectile, self.temperature = float(h["expectile"]), float(h["temperature"])
        self.max_weight, self.tau, self.dropout = float(h["max_weight"]), h["tau"], h["dropout"]

        net = dict(hidden_dims=h["hidden_dims"], layer_norm=h["layer_norm"], activation=h["activation"],
                   init=agent_init(h["init"]))
        self.actor = GaussianActor(obs_dim, action_dim, dropout=h["dropout"], **net)
        self.critic = EnsembleCritic(obs_dim, action_dim, num_critics=h["num_critics"], **net)
        self.critic_target = copy.deepcopy(self.critic).requires_grad_(False)
        self.value = StateValue(obs_dim, **net)
        self.to(self.device)

        adam = dict(lr=h["lr"], fused=True)  # one fused kernel per step, CPU and CUDA
        self.optimizers = {
            "actor": torch.optim.Adam(self.actor.parameters(), **adam),
            "critic": torch.optim.Adam(self.critic.parameters(), **adam),
            "value": torch.optim.Adam(self.value.parameters(), **adam),
        }
        self._params = {name: list(getattr(self, name).parameters()) for name in self.optimizers}
        self._target_params = list(self.critic_target.parameters())
        # a plain function: LambdaLR saves none of it, so a load keeps this config's schedule
        self.actor_lr_scheduler = torch.optim.lr_scheduler.LambdaLR(
            self.optimizers["actor"], lambda t: actor_lr_factor(schedule, decay_steps, t))

    # ------------------------------------------------------------------ acting
    @torch.no_grad()
    def act(self, obs, deterministic: bool = False) -> np.ndarray:
        """Action(s) in [-1, 1] for one observation [obs_dim] or a batch [B, obs_dim]."""
        obs_t = torch.as_tensor(obs, dtype=torch.float32, device=self.device)
        single = obs_t.dim() == 1
        training = self.actor.training
        if self.dropout:
            self.actor.eval()
        try:
            action = self.actor(obs_t.unsqueeze(0) if single else obs_t, deterministic).cpu().numpy()
        finally:
            self.actor.train(training)
        return action[0] if single else action

    # ---------------------------------------------------------------- learning
    def update(self, batch) -> UpdateResult:
        """One gradient step on V, pi and Q (in the paper's order), then the target EMA."""
        with torch.no_grad():
            q_target = self.critic_target(batch.obs, batch.action).min(dim=0).values  # [N, B] -> [B]
        loss, metrics = self.value_loss(batch.obs, q_target)
        self._step("value", loss)
        loss, actor_metrics = self.actor_loss(batch.obs, batch.action, q_target)
        self._step("actor", loss)
        self.actor_lr_scheduler.step()  # the lr of the next actor update
        loss, critic_metrics = self.critic_loss(batch)
        self._step("critic", loss)
        self.update_target()
        return UpdateResult({**metrics, **actor_metrics, **critic_metrics})

    def value_loss(self, obs, q_target) -> tuple[torch.Tensor, dict]:
        v = self.value(obs)  # [B]
        loss = expectile_loss(q_target - v, self.expectile).mean()
        return loss, {"value_loss": loss.detach(), "v": v.detach().mean()}

    def actor_loss(self, obs, action, q_target) -> tuple[torch.Tensor, dict]:
        with torch.no_grad():
            advantage = q_target - self.value(obs)  # [B]
            weight = awr_weights(advantage, self.temperature, self.max_weight)
        log_prob = self.actor.log_prob(obs, action)  # [B]
        loss = -(weight * log_prob).mean()
        return loss, {"actor_loss": loss.detach(), "advantage": advantage.mean(),
                      "awr_weight": weight.mean(), "log_prob": log_prob.detach().mean()}

    def critic_loss(self, batch) -> tuple[torch.Tensor, dict]:
        with torch.no_grad():
            target = batch.reward + batch.discount * self.value(batch.next_obs)  # [B]
        q = self.critic(batch.obs, batch.action)  # [N, B]
        loss = (q - target).pow(2).mean(dim=1).sum()
        return loss, {"critic_loss": loss.detach(), "q": q.detach().mean()}

    def _step(self, name: str, loss: torch.Tensor) -> None:
        self.optimizers[name].zero_grad(set_to_none=True)
        loss.backward(inputs=self._params[name])
        self.optimizers[name].step()

    @torch.no_grad()
    def update_target(self) -> None:
        torch._foreach_lerp_(self._target_params, self._params["critic"], self.tau)

    # ----------------------------------------------------------- persistence
    def training_state(self) -> dict:
        """The base state plus the actor lr schedule (its count and base lr)."""
        return {**super().training_state(), "actor_lr_schedule": self.actor_lr_scheduler.state_dict()}

    def load_training_state(self, state: dict) -> None:
        """Restore weights, optimizers and the schedule's count; the actor lr is then recomputed
        from the stored base lr and count with this agent's schedule. A state saved before the
        schedule existed keeps its lr as the base, with the count at 0."""
        super().load_training_state(state)
        scheduler, group = self.actor_lr_scheduler, self.optimizers["actor"].param_groups[0]
        if "actor_lr_schedule" in state:
            scheduler.load_state_dict(state["actor_lr_schedule"])
        else:
            scheduler.base_lrs, scheduler.last_epoch = [float(group["lr"])], 0
        group["lr"] = scheduler.base_lrs[0] * scheduler.lr_lambdas[0](scheduler.last_epoch)
        scheduler._last_lr = [group["lr"]]
