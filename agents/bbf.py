"""BBF, "Bigger, Better, Faster" (Schwarzer et al. 2023): a scaled SPR agent for Atari-100k.

Networks (agents/bbf_networks.py): Impala CNN x `width_scale` (4) -> 2048 projection -> dueling
C51 head (51 atoms on [-10, 10]); SPR's transition model, projection and predictor. With aug(.)
a random shift (pad 4, edge padding, shifts -4..+3) and intensity jitter 1 + 0.05 clip(N(0,1), -2, 2), online
network theta and target theta' (an EMA: theta' <- (1 - tau) theta' + tau theta, tau 0.005, after
every update):

    a*      = argmax_a Q_theta(aug s'_n, a)                                double DQN
    y       = Phi(R^(n) + gamma^n z, p_theta'(aug s'_n, a*))                C51 projection
    L_C51   = -sum_i y_i log p_theta(aug s_t, a_t)_i
    L_SPR   = (1/K) sum_k m_k || q_k/|q_k| - t_k/|t_k| ||^2 ,  K = 5
              q_k = predictor(projection(T^k(z_t, a_t..a_{t+k-1}))),  t_k = projection'(encoder'(aug s_{t+k}))
    L       = mean_B w (L_C51 + 5 L_SPR),   priority <- sqrt(L_C51)

AdamW (lr 1e-4, eps 1.5e-4, weight decay 0.1 on every tensor with more than one dimension).
n and gamma are annealed exponentially over the first 10k updates after every reset, n from 10
to 3 and 1 - gamma from 0.03 to 0.003:  x(t) = x0 (x1 / x0)^min(t / 10k, 1), n rounded; the
buffer computes n-step targets when sampling, so a new n applies at once. Acting: epsilon-greedy
with the TARGET network, epsilon 1 -> 0 over 2001 steps after learning_starts (BBF.gin as we
read it), evaluation epsilon 0.001.

Resets are the scheduler's (`plasticity=bbf`); the agent only exposes `on_reset`, which restarts
the annealing. Names: the whole network is `critic` (`critic.encoder`, `critic.transition_model`,
`critic.projection`, `critic.predictor`, `critic.head`) and its EMA `critic_target`, so the shared
presets apply as to the other agents (head_reset: the C51 head; hare_tortoise: the whole net).

Speed options (agents/encoders.py `ConvPrecision`): `precision="bf16"` runs the network forward
passes (online, target, SPR rollout; and acting) under bfloat16 autocast and casts their outputs
(C51 logits, SPR predictions and targets) to fp32, so softmaxes, the C51 projection and
cross-entropy, the SPR cosine loss, the weighted mean and the priorities are fp32, as are
parameters and AdamW states; `channels_last=True` keeps the conv weights, the augmented image
batches and the latent maps in NHWC order.
"""
from __future__ import annotations

import copy

import numpy as np
import torch

from agents.acceleration import compile_loss, learning_rate, optimizer_options
from agents.augment import random_intensity, random_shift
from agents.base import Agent, UpdateResult
from agents.bbf_networks import BBFNetwork, spr_loss
from agents.distributional import c51_loss, expected_value, project_distribution
from agents.encoders import ConvPrecision
from agents.exploration import epsilon_greedy, linear_epsilon
from replay import ReplayRequest

BBF_DEFAULTS = dict(
    width_scale=4, hidden_dims=(2048,), num_atoms=51, v_min=-10.0, v_max=10.0, dueling=True,
    activation="relu", renormalize=True,
    lr=1e-4, adam_eps=1.5e-4, weight_decay=0.1, tau=0.005,
    spr_weight=5.0, spr_horizon=5,
    n_step_start=10, n_step_end=3, gamma_start=0.97, gamma_end=0.997, anneal_updates=10000,
    augment_pad=4, intensity_scale=0.05,
    epsilon_train=0.0, epsilon_eval=0.001, epsilon_decay_steps=2001,
    precision="fp32", channels_last=False, compile="none",
)


def exponential_anneal(t: int, start: float, end: float, duration: int) -> float:
    """start * (end / start)^min(t / duration, 1): start at t = 0, end from t = duration on."""
    return start * (end / start) ** min(max(t, 0) / duration, 1.0)


class BBF(ConvPrecision, Agent):
    """BBF for discrete actions from uint8 [C, H, W] frame stacks; see the module docstring."""

    observation_kind, action_kind, gives_priorities = "pixels", "discrete", True
    target_networks = {"critic": "critic_target"}
    group_aliases = {"encoder": "critic.encoder"}  # presets name `encoder` on every pixel agent

    def __init__(self, obs_shape, num_actions: int, device="cpu", **hparams):
        super().__init__()
        obs_shape, num_actions, h = self._set_discrete_pixel_hparams(
            BBF_DEFAULTS, obs_shape, num_actions, device, hparams)
        if len(h["hidden_dims"]) != 1:
            raise ValueError(f"hidden_dims = {list(h['hidden_dims'])}: BBF has one hidden layer, e.g. [2048]")
        self._set_precision(h)
        self.obs_shape, self.num_actions, self.h = obs_shape, num_actions, h
        self.critic = BBFNetwork(obs_shape, num_actions, h["width_scale"], h["hidden_dims"][0],
                                 h["num_atoms"], h["v_min"], h["v_max"], h["dueling"],
                                 h["activation"], renormalize=h["renormalize"])
        self.critic_target = copy.deepcopy(self.critic).requires_grad_(False)
        self.to(self.device)
        self._convs_channels_last()
        self._online = list(self.critic.parameters())
        self._target = list(self.critic_target.parameters())
        decay = [p for p in self._online if p.dim() > 1]
        no_decay = [p for p in self._online if p.dim() <= 1]  # biases (BBF: no decay on 1-D)
        mode = self._set_update_mode(h["compile"])
        self.optimizers = {"critic": torch.optim.AdamW(
            [{"params": decay, "weight_decay": h["weight_decay"]},
             {"params": no_decay, "weight_decay": 0.0}],
            lr=learning_rate(h["lr"], mode, self.device), eps=h["adam_eps"], **optimizer_options(mode))}
        # `compile`: the C51 + SPR loss (forward and AOT backward) as a compiled graph
        self._losses_fn = self.weighted_loss if mode == "none" else compile_loss(self.weighted_loss)
        self._act_steps, self._cycle_updates = 0, 0

    # ------------------------------------------------------------- schedules
    @property
    def n_step(self) -> int:
        """The annealed n-step horizon of the next update."""
        h = self.h
        return int(round(exponential_anneal(self._cycle_updates, h["n_step_start"], h["n_step_end"],
                                            h["anneal_updates"])))

    @property
    def gamma(self) -> float:
        """The annealed discount: 1 - gamma goes exponentially from 1 - gamma_start to 1 - gamma_end."""
        h = self.h
        return 1.0 - exponential_anneal(self._cycle_updates, 1.0 - h["gamma_start"],
                                        1.0 - h["gamma_end"], h["anneal_updates"])

    def on_reset(self, event: dict) -> None:
        """Called by the reset scheduler after an intervention: restart the annealing when the
        rule says so (resets and S&P: spr_agent.py reset_weights sets cycle_grad_steps = 0)."""
        if event.get("restart_schedules", True):
            self._cycle_updates = 0

    @property
    def epsilon(self) -> float:
        return linear_epsilon(self._act_steps, self.h["epsilon_decay_steps"], self.h["epsilon_train"])

    # ------------------------------------------------------------------ acting
    def act(self, obs, deterministic: bool = False):
        """Epsilon-greedy on the target network: an int for one observation, int64 [B] for a batch."""
        action = self._predict_action(obs, deterministic)
        if not deterministic:
            self._act_steps += 1 if np.ndim(action) == 0 else len(action)
        return action

    def _predict_action(self, obs, deterministic: bool):
        """Epsilon-greedy at the current epsilon (epsilon_eval if deterministic); counts no step."""
        eps = self.h["epsilon_eval"] if deterministic else self.epsilon
        return epsilon_greedy(self._target_q_values, obs, self.num_actions, eps, self.device)

    def _target_q_values(self, obs: torch.Tensor) -> torch.Tensor:
        """Q [B, A] (fp32) of the target network, which acts, for pixels [B, C, H, W]."""
        net = self.critic_target
        with self._autocast():
            logits = net(self._layout(obs)).float()  # [B, A, N]
        return expected_value(logits, net.support)

    # ---------------------------------------------------------------- learning
    def replay_request(self, batch_size: int) -> ReplayRequest:
        """Sequences of K + 1 steps with the current annealed n and gamma, with prioritized
        replay's importance weights (P(i) + 1e-10)^-0.5 / max (as BBF's code; none if uniform)."""
        return ReplayRequest(batch_size, self.n_step, self.gamma, self.h["spr_horizon"], beta=0.5)

    def augment(self, pixels: torch.Tensor) -> torch.Tensor:
        """[B, C, H, W] uint8 -> float in [0, 255] scale, shifted and intensity-jittered per image."""
        # shifts -pad..pad-1 (BBF spr_networks.py drq_image_aug: crop offset randint(0, 2 * pad))
        return random_intensity(random_shift(pixels, self.h["augment_pad"], high_inclusive=False),
                                self.h["intensity_scale"])

    def losses(self, batch) -> tuple[torch.Tensor, torch.Tensor, dict]:
        """Per-sample C51 and SPR losses [B], [B] of a `SequenceBatch`."""
        b, k = batch.future_obs.shape[:2]
        obs, next_obs = self._layout(self.augment(batch.obs)), self._layout(self.augment(batch.next_obs))
        future = self._layout(self.augment(batch.future_obs.flatten(0, 1))).view(
            batch.future_obs.shape)  # [B, K, C, H, W]
        with self._autocast():  # network outputs cast to fp32 (no-ops in fp32) before any loss arithmetic
            latent = self.critic.encode(obs)  # [B, C', H', W']
            logits = self.critic.q_logits(latent).float()  # [B, A, N]
            predictions = self.critic.spr_predictions(latent, batch.actions[:, :k]).float()  # [B, K, hidden]
        chosen = logits[torch.arange(b, device=logits.device), batch.action.long()]  # [B, N]
        with torch.no_grad():
            with self._autocast():
                next_logits = self.critic(next_obs).float()  # [B, A, N]
                target_next = self.critic_target(next_obs).float()  # [B, A, N]
                spr_targets = self.critic_target.spr_targets(
                    self.critic_target.encode_sequence(future)).float()  # [B, K, hidden]
            best = expected_value(next_logits, self.critic.support).argmax(dim=1)  # [B]
            target_logits = target_next[torch.arange(b, device=best.device), best]
            target = project_distribution(target_logits.softmax(dim=-1), batch.reward,
                                          batch.discount, self.critic.support)  # [B, N]
        td = c51_loss(chosen, target)  # [B]
        spr = spr_loss(predictions, spr_targets, batch.mask)  # [B]
        q = (chosen.softmax(-1) * self.critic.support).sum(-1)
        return td, spr, {"q": q.detach().mean()}

    def update(self, batch) -> UpdateResult:
        """One AdamW step on mean(w (L_C51 + spr_weight L_SPR)) of a `SequenceBatch` (w: its
        importance weights, 1 if none), the target EMA, and the new priorities sqrt(L_C51)
        (`UpdateResult.priorities`; the trainer hands them to the buffer)."""
        metrics = self._run_update(None, batch)
        self._cycle_updates += 1
        priorities = metrics.pop("priority")
        return UpdateResult(metrics, priorities)

    def _update_step(self, key, batch) -> dict[str, torch.Tensor]:
        loss, metrics = (self.weighted_loss if self._eager else self._losses_fn)(batch)
        opt = self.optimizers["critic"]
        opt.zero_grad(set_to_none=True)
        loss.backward(inputs=self._online)
        opt.step()
        self.update_target()
        return metrics

    @torch.no_grad()
    def update_target(self) -> None:
        torch._foreach_lerp_(self._target, self._online, self.h["tau"])

    # ------------------------------------------------------------- members
    def forward(self, loss: str, *args):
        """A loss by name ('weighted_loss'), for torch.func.functional_call (members)."""
        return getattr(self, loss)(*args)

    @property
    def member_body(self):
        """The update over stacked members (agents/members.py)."""
        return self._member_body

    member_key_values = (0,)  # tau may differ between members

    def member_update_key(self) -> tuple:
        """Count an update (the annealing's clock, as `update` does); the key: (tau,)."""
        self._cycle_updates += 1
        return (self.h["tau"],)

    def weighted_loss(self, batch) -> tuple[torch.Tensor, dict]:
        """mean(w (L_C51 + spr_weight L_SPR)), with `_update_step`'s metrics and the priorities."""
        td, spr, metrics = self.losses(batch)
        per_sample = td + self.h["spr_weight"] * spr
        loss = (per_sample * batch.weights).mean() if batch.weights is not None else per_sample.mean()
        return loss, {"loss": loss.detach(), "td_loss": td.detach().mean(), "spr_loss": spr.detach().mean(),
                      **metrics, "priority": (td.detach() + 1e-10).sqrt()}

    def _member_body(self, key, batch, ops) -> dict[str, torch.Tensor]:
        """`_update_step` against `ops` (agents/members.py `MemberOps`): one AdamW step, the EMA."""
        metrics = ops.step("weighted_loss", ("critic",), batch)
        ops.ema_(self._target, self._online, key[0])
        return metrics

    # ----------------------------------------------------------- persistence
    def training_state(self) -> dict:
        return {**super().training_state(), "act_steps": self._act_steps,
                "cycle_updates": self._cycle_updates}

    def load_training_state(self, state: dict) -> None:
        super().load_training_state(state)
        self._act_steps = state.get("act_steps", 0)
        self._cycle_updates = state.get("cycle_updates", 0)


def projected_wall_time(updates_per_s: float, env_steps: int = 100_000, replay_ratio: int = 2) -> float:
    """Seconds of gradient updates for one Atari-100k game (env time not included)."""
    return env_steps * replay_ratio / max(updates_per_s, 1e-12)


__all__ = ["BBF", "BBF_DEFAULTS", "exponential_anneal", "projected_wall_time"]
