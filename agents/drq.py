"""DrQ (Kostrikov, Yarats & Fergus 2020): SAC from pixels with random-shift augmentation.

A conv `encoder` maps the uint8 frame stack (scaled to [0, 1]) to features f(s); actor and
critic each start with their own projection `proj` (Linear -> LayerNorm -> tanh to
`feature_dim` 50) followed by SAC's MLPs. With aug(.) a random shift (pad 4, edge padding, drawn
independently per image), M = `q_views` augmented views of s and K = `target_views` of s':

    critic:  L_Q = sum_m sum_j E[(Q_j(f(aug_m s), a) - y)^2],
             y = R + d * mean_k (min_j Q'_j(f'(aug_k s'), a'_k) - alpha log pi(a'_k|sg f(aug_k s'))),
    actor:   L_pi = E[alpha log pi(a|sg f(aug_1 s)) - min_j Q_j(sg f(aug_1 s), a)]   (sg: stop-gradient)
    target:  (f', Q') <- (1 - tau) (f', Q') + tau (f, Q)   (every `target_update_every`-th update)

so the critic loss alone trains the encoder, and the actor encodes the first view with the
encoder as the critic step left it (both references re-encode after the critic update).

Two configs (configs/agent/): `drq` is the DrQ of Nikishin et al. 2022 (evgenii-nikishin/
rl_with_resets configs/drq.py: encoder 32-64-128-256, stride 2, SAME padding, 64x64 grayscale,
K = M = 1, MLP 256x256, lr 3e-4, tau 0.005, batch 512, alpha_0 0.1, jaxrl's orthogonal init);
`drq_kostrikov` the original (denisyarats/drq config.yaml: 4 x 32 filters, first stride 2,
84x84 RGB, K = M = 2, MLP 1024x1024, lr 1e-3, tau 0.01, actor and target every 2nd update,
orthogonal init gain 1 / conv sqrt 2).

Names for plasticity groups: `encoder` (trained by the critic optimizer), `critic.proj`,
`critic.trunk`, `critic.head`, `actor.*`, `log_alpha`, targets `encoder_target` and
`critic_target`. Nikishin's DrQ reset (everything but the encoder, the encoder's optimizer
state kept) is the `reset_but_encoder` preset. Nothing here resets anything.

PLASTIC's options (Lee et al. 2023; the `plastic` preset): `conv_layer_norm` (a channel LayerNorm
after each conv), `conv_activation` (the encoder's own activation; null: `activation`, so CReLU can
be in the MLPs only) and `optimizer="sam"` (agents/sam.py: the critic loss at w and at w + e on
the same augmented views and target, `sam_rho`, `sam_head`; the actor and temperature use Adam).

Speed options (agents/encoders.py `ConvPrecision`): `precision="bf16"` runs the encoder, actor and
critic forward passes of the losses and of acting under bfloat16 autocast; the actor's and the
critic's outputs are cast to fp32, so the tanh-Gaussian sampling (its noise draws the same as in
fp32), log pi, the targets and the loss reductions are fp32, as are parameters and Adam states.
`channels_last=True` keeps the conv weights and the augmented image batches in NHWC order.
"""
from __future__ import annotations

import copy
import functools

import numpy as np
import torch
from torch import nn

from agents.acceleration import compile_loss
from agents.augment import random_shift
from agents.encoders import ConvPrecision, PixelEncoder
from agents.init import Linear, role_init
from agents.networks import EnsembleCritic, TanhGaussianActor
from agents.sam import Sam, in_module, sam_gradients
from agents.sac import SAC, SAC_DEFAULTS, SIMBA_KEYS

DRQ_DEFAULTS = dict(
    {k: v for k, v in SAC_DEFAULTS.items() if k not in SIMBA_KEYS},  # SimBa is for states
    init_temperature=0.1, target_entropy_per_action=-1.0, feature_dim=50,
    channels=(32, 64, 128, 256), strides=(2, 2, 2, 2), conv_padding="same",
    augment_pad=4, q_views=1, target_views=1, precision="fp32", channels_last=False,
    # PLASTIC's options (configs/plasticity/plastic.yaml; dojeon-ai/PLASTIC dmc/train_pixels.py)
    optimizer="adam", sam_rho=0.01, sam_head="clean", conv_layer_norm=False, conv_activation=None,
)


def projection(in_dim: int, feature_dim: int, init: str = "torch") -> nn.Sequential:
    """Linear -> LayerNorm -> tanh: conv features [B, D] -> [B, feature_dim]."""
    return nn.Sequential(Linear(in_dim, feature_dim, *role_init(init, "projection")),
                         nn.LayerNorm(feature_dim), nn.Tanh())


class ProjectedActor(TanhGaussianActor):
    """The SAC actor on `proj(features)`."""

    def __init__(self, in_dim: int, feature_dim: int, action_dim: int, **net):
        super().__init__(feature_dim, action_dim, **net)
        self.proj = projection(in_dim, feature_dim, net.get("init", "torch"))

    def _dist_params(self, features):
        mean, log_std = super()._dist_params(self.proj(features))
        return mean.float(), log_std.float()  # fp32 sampling under autocast (a no-op in fp32)


class ProjectedCritic(EnsembleCritic):
    """The SAC critic ensemble on one shared `proj(features)`."""

    def __init__(self, in_dim: int, feature_dim: int, action_dim: int, **net):
        super().__init__(feature_dim, action_dim, **net)
        self.proj = projection(in_dim, feature_dim, net.get("init", "torch"))

    def forward(self, features, action):
        return super().forward(self.proj(features), action).float()  # [N, B], fp32 under autocast


class DrQ(ConvPrecision, SAC):
    """DrQ for continuous actions in [-1, 1] from uint8 [C, H, W] frame stacks."""

    defaults = DRQ_DEFAULTS
    observation_kind = "pixels"
    target_networks = {"critic": "critic_target", "encoder": "encoder_target"}

    def _build_networks(self, obs_shape, action_dim: int, h: dict) -> None:
        if not isinstance(obs_shape, (tuple, list)) or len(obs_shape) != 3:
            raise ValueError(f"DrQ needs image observations [C, H, W], got {obs_shape!r}")
        self.hparams["channels"], self.hparams["strides"] = tuple(h["channels"]), tuple(h["strides"])
        self.augment_pad = int(h["augment_pad"])
        self.q_views, self.target_views = h["q_views"], h["target_views"]
        self._set_precision(h)
        self._sam = (float(h["sam_rho"]), h["sam_head"]) if h["optimizer"] == "sam" else None
        self._critic_td_fn = self.critic_td  # compiled in the `compile` mode
        self.encoder = PixelEncoder(obs_shape, activation=h["conv_activation"] or h["activation"],
                                    channels=tuple(h["channels"]), strides=tuple(h["strides"]),
                                    padding=h["conv_padding"], init=h["init"],
                                    layer_norm=h["conv_layer_norm"])
        in_dim = self.encoder.out_dim()
        net = dict(hidden_dims=h["hidden_dims"], activation=h["activation"], init=h["init"])
        self.actor = ProjectedActor(in_dim, h["feature_dim"], action_dim, layer_norm=h["actor_layer_norm"],
                                    **self._policy_options(h), **net)
        self.critic = ProjectedCritic(in_dim, h["feature_dim"], action_dim, num_critics=h["num_critics"],
                                      layer_norm=h["layer_norm"], **net)
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
        self._critic_td_fn = compile_loss(self.critic_td)  # optimizer=sam: the loss evaluated twice
        self._actor_loss_fn = compile_loss(self.actor_loss)
        return None

    def _update_step(self, due: tuple[bool, bool], batch) -> dict[str, torch.Tensor]:
        """Critic (and encoder) step on augmented pixels, the actor step on the first augmented
        view encoded by the updated encoder (detached), then the target EMA."""
        actor_due, target_due = due
        metrics, obs = self.update_critic(batch)
        if actor_due:
            with torch.no_grad(), self._autocast():
                features = self.encoder(obs)  # [B, D]
            metrics.update(self.update_actor(features))
        if target_due:
            self.update_target()
        return metrics

    # ------------------------------------------------------------- members
    @property
    def member_body(self):
        """DrQ's update over stacked members (agents/members.py)."""
        return self._member_body

    def _member_body(self, key, batch, ops) -> dict[str, torch.Tensor]:
        """`_update_step` against `ops` (agents/members.py `MemberOps`), key (actor due, target
        due, tau) from SAC's `member_update_key`. With SAM, as `_sam_critic_step`: every member's
        views and target drawn once (`critic_inputs`), the loss taken at w and at w + e on them."""
        actor_due, target_due, tau = key
        if self._sam is None:
            metrics = dict(ops.step("critic_loss_and_view", ("critic",), batch))
            view = metrics.pop("view")  # the first augmented view of s, [B, C, H, W] per member
        else:
            obs, action, target = ops.call("critic_inputs", batch)  # [M, views * B, ...], [M, B]
            sharp = [p for p, s in zip(self._critic_params, self._sam_sharp) if s]
            metrics = dict(ops.step("critic_td", ("critic",), obs, action, target,
                                    sam=Sam(*self._sam, sharp)))
            view = obs[:, :batch.obs.shape[1]]  # [M, B, C, H, W] the first view
        if actor_due:  # on the features of the encoder the critic step just updated
            metrics.update(ops.step("actor_loss", ("actor", "log_alpha"), ops.call("encode", view)))
        if target_due:
            ops.ema_(self._target_params, self._critic_params, tau)
        return metrics

    def critic_loss_and_view(self, batch) -> tuple[torch.Tensor, dict]:
        """`critic_loss` with the augmented view among the (gradient-free) outputs."""
        loss, metrics, obs = self.critic_loss(batch)
        return loss, {**metrics, "view": obs.detach()}

    def encode(self, obs: torch.Tensor) -> torch.Tensor:
        """Features f(obs) [B, D] of augmented pixels."""
        with self._autocast():
            return self.encoder(obs)

    def _views(self, pixels: torch.Tensor, n: int) -> torch.Tensor:
        """n independent augmentations of a batch, stacked view-major: [n * B, C, H, W]."""
        return self._layout(self._augment(pixels if n == 1 else pixels.repeat(n, 1, 1, 1)))

    def critic_inputs(self, batch) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """What the critic loss fits, drawn and computed once per update (SAM's second pass reuses
        them, as PLASTIC's DMC code does): the M augmented views of s [M*B, C, H, W], their
        actions [M*B, A] and the TD target y [B]."""
        b, m, k = batch.obs.shape[0], self.q_views, self.target_views
        obs, next_obs = self._views(batch.obs, m), self._views(batch.next_obs, k)  # [M*B], [K*B]
        with torch.no_grad():
            with self._autocast():
                next_action, next_log_prob = self.actor(self.encoder(next_obs))
                q_next = self.critic_target(self.encoder_target(next_obs), next_action)  # [N, K*B] fp32
            v_next = self._target_q(q_next)  # [K*B]
            if self.backup_entropy:
                v_next = v_next - self.log_alpha.exp() * next_log_prob
            v_next = v_next.view(k, b).mean(dim=0)  # [B], the mean over the K target views
            target = batch.reward + batch.discount * v_next  # [B]
        return obs, batch.action.repeat(m, 1), target

    def critic_td(self, obs, action, target) -> tuple[torch.Tensor, dict]:
        """sum over critics and views of the mean squared TD error on `critic_inputs`."""
        b = target.shape[0]
        m = obs.shape[0] // b
        with self._autocast():
            q = self.critic(self.encoder(obs), action)  # [N, M*B] fp32
        # the mean over the batch, summed over critics and views
        loss = (q - target.repeat(m)).pow(2).view(q.shape[0], m, b).mean(dim=2).sum()
        return loss, {"critic_loss": loss.detach(), "q": q.detach().mean()}

    def critic_loss(self, batch) -> tuple[torch.Tensor, dict, torch.Tensor]:
        """Critic loss, its metrics and the first augmented view of obs [B, C, H, W] (the
        actor step's input)."""
        obs, action, target = self.critic_inputs(batch)
        loss, metrics = self.critic_td(obs, action, target)
        return loss, metrics, obs[:batch.obs.shape[0]]

    def actor_loss(self, features) -> tuple[torch.Tensor, dict]:
        """SAC's actor + temperature loss on encoded observations; the actor and critic run under
        the autocast context and return fp32, so the loss arithmetic is fp32."""
        with self._autocast():
            return super().actor_loss(features)

    def update_critic(self, batch) -> tuple[dict, torch.Tensor]:
        if self._sam is not None:
            return self._sam_critic_step(batch)
        loss, metrics, obs = (self.critic_loss if self._eager else self._critic_loss_fn)(batch)
        self._step(loss, self._critic_params, ("critic",))
        return metrics, obs

    @functools.cached_property
    def _sam_sharp(self) -> list[bool]:
        """Which critic-optimizer parameters are the encoder's (they take SAM's perturbed gradient)."""
        return in_module(self.encoder, self._critic_params)

    def _sam_critic_step(self, batch) -> tuple[dict, torch.Tensor]:
        """optimizer=sam (agents/sam.py): the critic's gradient at w and at w + e on the same
        views and target; the encoder steps with the second, the critic by `sam_head`."""
        obs, action, target = self.critic_inputs(batch)
        td = self.critic_td if self._eager else self._critic_td_fn
        opt = self.optimizers["critic"]
        opt.zero_grad(set_to_none=True)
        (metrics,) = sam_gradients(lambda: td(obs, action, target), self._critic_params,
                                   self._sam_sharp, *self._sam)
        opt.step()
        return metrics, obs[:batch.obs.shape[0]]
