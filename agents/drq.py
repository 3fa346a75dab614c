"""DrQ (Kostrikov, Yarats & Fergus 2020): SAC from pixels with random-shift augmentation.

A conv `encoder` (4 x 32 filters, first stride 2) maps the uint8 frame stack to features
f(s); actor and critic each start with their own projection `proj` (Linear -> LayerNorm ->
tanh to `feature_dim` 50) followed by SAC's MLPs. With aug(.) a random shift (pad 4, edge
padding, drawn independently per image and for s and s'):

    critic:  L_Q = sum_j E[(Q_j(f(aug s), a) - y)^2],
             y = R + d * (min_j Q'_j(f'(aug s'), a') - alpha log pi(a'|sg f(aug s'))),  a' ~ pi
    actor:   L_pi = E[alpha log pi(a|sg f(aug s)) - min_j Q_j(sg f(aug s), a)]    (sg: stop-gradient)
    target:  (f', Q') <- (1 - tau) (f', Q') + tau (f, Q)

so the critic loss alone trains the encoder and the actor sees a detached encoding. Settings
follow jaxrl's DrQ (the code Nikishin et al. 2022 build on): MLP 256x256, lr 3e-4, tau 0.005,
initial temperature 0.1; batch 512 comes from the agent config. A single augmented view is
used (DrQ's K = M = 1).

Names for plasticity groups: `encoder` (trained by the critic optimizer), `critic.proj`,
`critic.trunk`, `critic.head`, `actor.*`, `log_alpha`, targets `encoder_target` and
`critic_target`. Nikishin's DrQ reset (everything but the encoder, the encoder's optimizer
state kept) is the `reset_but_encoder` preset. Nothing here resets anything.

Speed options (agents/encoders.py `ConvPrecision`): `precision="bf16"` runs the encoder, actor and
critic forward passes of the losses and of acting under bfloat16 autocast; the actor's and the
critic's outputs are cast to fp32, so the tanh-Gaussian sampling (its noise draws the same as in
fp32), log pi, the targets and the loss reductions are fp32, as are parameters and Adam states.
`channels_last=True` keeps the conv weights and the augmented image batches in NHWC order.
"""
from __future__ import annotations

import copy

import numpy as np
import torch
from torch import nn

from agents.acceleration import compile_loss
from agents.augment import random_shift
from agents.encoders import ConvPrecision, PixelEncoder
from agents.networks import EnsembleCritic, TanhGaussianActor
from agents.sac import SAC, SAC_DEFAULTS

DRQ_DEFAULTS = dict(
    SAC_DEFAULTS,
    init_temperature=0.1, feature_dim=50, channels=(32, 32, 32, 32), strides=(2, 1, 1, 1),
    augment_pad=4, precision="fp32", channels_last=False,
)


def projection(in_dim: int, feature_dim: int) -> nn.Sequential:
    """Linear -> LayerNorm -> tanh: conv features [B, D] -> [B, feature_dim]."""
    return nn.Sequential(nn.Linear(in_dim, feature_dim), nn.LayerNorm(feature_dim), nn.Tanh())


class ProjectedActor(TanhGaussianActor):
    """The SAC actor on `proj(features)`."""

    def __init__(self, in_dim: int, feature_dim: int, action_dim: int, **net):
        super().__init__(feature_dim, action_dim, **net)
        self.proj = projection(in_dim, feature_dim)

    def _dist_params(self, features):
        mean, log_std = super()._dist_params(self.proj(features))
        return mean.float(), log_std.float()  # fp32 sampling under autocast (a no-op in fp32)


class ProjectedCritic(EnsembleCritic):
    """The SAC critic ensemble on one shared `proj(features)`."""

    def __init__(self, in_dim: int, feature_dim: int, action_dim: int, **net):
        super().__init__(feature_dim, action_dim, **net)
        self.proj = projection(in_dim, feature_dim)

    def forward(self, features, action):
        return super().forward(self.proj(features), action).float()  # [N, B], fp32 under autocast


class DrQ(ConvPrecision, SAC):
    """DrQ for continuous actions in [-1, 1] from uint8 [C, H, W] frame stacks."""

    defaults = DRQ_DEFAULTS
    target_networks = {"critic": "critic_target", "encoder": "encoder_target"}

    def _build_networks(self, obs_shape, action_dim: int, h: dict) -> None:
        if not isinstance(obs_shape, (tuple, list)) or len(obs_shape) != 3:
            raise ValueError(f"DrQ needs image observations [C, H, W], got {obs_shape!r}")
        self.hparams["channels"], self.hparams["strides"] = tuple(h["channels"]), tuple(h["strides"])
        self.augment_pad = int(h["augment_pad"])
        self._set_precision(h)
        self.encoder = PixelEncoder(obs_shape, activation=h["activation"],
                                    channels=tuple(h["channels"]), strides=tuple(h["strides"]))
        in_dim = self.encoder.out_dim()
        net = dict(hidden_dims=h["hidden_dims"], layer_norm=h["layer_norm"], activation=h["activation"])
        self.actor = ProjectedActor(in_dim, h["feature_dim"], action_dim, **net)
        self.critic = ProjectedCritic(in_dim, h["feature_dim"], action_dim,
                                      num_critics=h["num_critics"], **net)
        self.encoder_target = copy.deepcopy(self.encoder).requires_grad_(False)
        self.critic_target = copy.deepcopy(self.critic).requires_grad_(False)
        self._convs_channels_last()

    def _online_and_target_params(self) -> tuple[list, list]:
        online = list(self.encoder.parameters()) + list(self.critic.parameters())
        target = list(self.encoder_target.parameters()) + list(self.critic_target.parameters())
        return online, target

    def _augment(self, pixels: torch.Tensor) -> torch.Tensor:
        return random_shift(pixels, self.augment_pad) if self.augment_pad else pixels

    # ------------------------------------------------------------------ acting
    @torch.no_grad()
    def act(self, obs, deterministic: bool = False) -> np.ndarray:
        """Action(s) in [-1, 1] for one uint8 observation [C, H, W] or a batch [B, C, H, W]."""
        obs_t = torch.as_tensor(np.asarray(obs), device=self.device)
        single = obs_t.dim() == 3
        with self._autocast():
            action, _ = self.actor(self.encoder(self._layout(obs_t.unsqueeze(0) if single else obs_t)),
                                   deterministic)
        action = action.cpu().numpy()
        return action[0] if single else action

    # ---------------------------------------------------------------- learning
    def _compile_update(self):
        """The `compile` mode for DrQ: the critic and actor losses (forward and AOT backward)
        as compiled graphs; the fused Adam steps and the target EMA stay eager."""
        self._critic_loss_fn = compile_loss(self.critic_loss)
        self._actor_loss_fn = compile_loss(self.actor_loss)
        return None

    def _update_step(self, actor_due: bool, batch) -> dict[str, torch.Tensor]:
        """Critic (and encoder) step on augmented pixels, the actor step on the same
        augmented observations encoded and detached, then the target EMA."""
        metrics, features = self.update_critic(batch)
        if actor_due:
            metrics.update(self.update_actor(features.detach()))
        self.update_target()
        return metrics

    def critic_loss(self, batch) -> tuple[torch.Tensor, dict, torch.Tensor]:
        """Critic loss, its metrics and the encoded augmented obs f(aug s) [B, D] (bf16 under
        `precision="bf16"`) that the actor step reuses, detached."""
        obs, next_obs = self._layout(self._augment(batch.obs)), self._layout(self._augment(batch.next_obs))
        with torch.no_grad():
            with self._autocast():
                next_action, next_log_prob = self.actor(self.encoder(next_obs))
                q_next = self.critic_target(self.encoder_target(next_obs), next_action)  # [N, B] fp32
            v_next = self._target_q(q_next)  # [B]
            if self.backup_entropy:
                v_next = v_next - self.log_alpha.exp() * next_log_prob
            target = batch.reward + batch.discount * v_next  # [B]
        with self._autocast():
            features = self.encoder(obs)  # [B, D]
            q = self.critic(features, batch.action)  # [N, B] fp32
        loss = (q - target).pow(2).mean(dim=1).sum()
        return loss, {"critic_loss": loss.detach(), "q": q.detach().mean()}, features

    def actor_loss(self, features) -> tuple[torch.Tensor, dict]:
        """SAC's actor + temperature loss on encoded observations; the actor and critic run under
        the autocast context and return fp32, so the loss arithmetic is fp32."""
        with self._autocast():
            return super().actor_loss(features)

    def update_critic(self, batch) -> tuple[dict, torch.Tensor]:
        loss, metrics, features = self._critic_loss_fn(batch)
        self._step(loss, self._critic_params, ("critic",))
        return metrics, features
