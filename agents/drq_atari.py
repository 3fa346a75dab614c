"""DrQ(epsilon) for Atari-100k: DQN with data augmentation (Kostrikov et al. 2020, "Image
Augmentation Is All You Need"), tuned as in Agarwal et al. 2021 ("Deep RL at the Edge of the
Statistical Precipice": DrQ(eps) = DrQ with the eval/train epsilons below).

With aug(.) a random shift of -augment_pad..augment_pad-1 pixels (edge padding, one shift per image,
drawn independently for s and s') followed by the per-image intensity jitter, and Q' the target:

    Q(s, .)  = V(s) + A(s, .) - mean_a A(s, a)                 dueling (Wang et al. 2016)
    a*       = argmax_a Q(aug(s'), a)                          double DQN (van Hasselt et al. 2016)
    y        = R + d * Q'(aug(s'), a*)                         (Q' picks a* itself without `double`)
    L_TD     = E[Huber_1(Q(aug(s), a) - y)]                    Huber with delta 1, batch mean
    target:  theta' <- theta (hard copy) every `target_update_every` updates (1: every update)

R and d come from the replay buffer: the n-step return (n = 10 in the reference) and gamma^m,
0 at termination; gamma and n are trainer settings, as is the replay ratio (1 in the reference,
2 in the lecture's table). The TD loss trains the encoder and the Q head with one Adam (lr 1e-4,
eps 1.5e-4). Exploration is epsilon-greedy on the online network: epsilon decays linearly from
1 to `epsilon_train` over the first `epsilon_decay_steps` observations acted on with
deterministic=False (the trainer's uniform random warm-up is not counted, which reproduces
Dopamine's linearly_decaying_epsilon with warm-up = min_replay_history); deterministic=True acts
with `epsilon_eval` (the Atari-100k evaluation protocol is not greedy).

Matched to Dopamine's DrQ_eps.gin / FullRainbowNetwork: Nature DQN convs (32 8x8 s4, 64 4x4 s2,
64 3x3 s1) with 'SAME' padding (flax's default; `conv_padding="valid"` gives the original
Nature DQN), pixels / 255 into [0, 1], one 512 hidden layer, Xavier-uniform weights and zero
biases (also what plasticity resets re-draw: the layers' `reset_parameters`), Huber loss, no
gradient clipping (`max_grad_norm` None), intensity jitter 0.05. One difference: shifts cover
{-pad, ..., pad} as in DrQ's PyTorch code (Dopamine's crop offsets stop at pad - 1).
Submodule names: `encoder` (the conv trunk, `encoder.trunk`), `critic` (`critic.trunk` hidden
layers, `critic.head` the dueling layer: one Linear whose first output is V and the rest A),
`encoder_target`, `critic_target`. The update makes no host syncs; nothing here resets anything.
While the target equals the online network (right after a hard copy: always with
`target_update_every` 1, unless a plasticity intervention (`on_reset`) or a step came since),
Q'(aug s') is taken from the online forward on aug(s') instead of a second, identical forward.

PLASTIC's options (Lee et al. 2023; the `plastic_atari` preset): `conv_layer_norm` (a channel
LayerNorm after each conv), `conv_activation` (the encoder's own activation; null: `activation`)
and `optimizer="sam"` (agents/sam.py): the TD loss at w and at w + e, each with its own draw of the
augmentation and, at w + e, the target network's Q' (PLASTIC's Atari code calls its forward again).

Speed options (agents/encoders.py `ConvPrecision`): `precision="bf16"` runs every Q-network
forward pass (the loss's and acting's) under bfloat16 autocast and casts the Q-values to fp32, so
the argmax, the target, the Huber loss and its batch mean are fp32, as are parameters and Adam
states; `channels_last=True` keeps the conv weights and the augmented image batches in NHWC order.
"""
from __future__ import annotations

import copy
import math

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from agents.acceleration import compile_loss, learning_rate, optimizer_options
from agents.augment import random_intensity, random_shift
from agents.base import Agent, UpdateResult
from agents.encoders import ChannelLayerNorm, ConvPrecision
from agents.exploration import epsilon_greedy, linear_epsilon
from agents.networks import make_activation, width_after
from agents.sam import Sam, in_module, sam_gradients
from plasticity.injection import make_injectable

# Constructor arguments, with the reference defaults (google/dopamine labs/atari_100k/configs/DrQ_eps.gin).
DRQ_ATARI_DEFAULTS = dict(
    channels=(32, 64, 64), kernel_sizes=(8, 4, 3), strides=(4, 2, 1), conv_padding="same",
    hidden_dims=(512,), activation="relu", dueling=True, double=True,
    lr=1e-4, adam_eps=1.5e-4, max_grad_norm=None, huber_delta=1.0, target_update_every=1,
    augment_pad=4, intensity_scale=0.05,
    epsilon_train=0.01, epsilon_eval=0.001, epsilon_decay_steps=5000,
    precision="fp32", channels_last=False, compile="none", injection=False,
    # PLASTIC's options (configs/plasticity/plastic_atari.yaml; dojeon-ai/PLASTIC
    # atari/scripts/NeurIPS2023/drq_plastic_rr2.sh)
    optimizer="adam", sam_rho=0.1, sam_head="sum", conv_layer_norm=False, conv_activation=None,
)


class XavierLinear(nn.Linear):
    """nn.Linear initialised like flax Dense in Dopamine: Xavier-uniform weight, zero bias."""

    def reset_parameters(self):
        nn.init.xavier_uniform_(self.weight)
        nn.init.zeros_(self.bias)


class DQNConv2d(nn.Conv2d):
    """Conv2d with Xavier-uniform weights, zero bias and TF/flax padding: 'same' pads (zeros)
    so that out = ceil(in / stride), the extra pixel on the bottom/right; 'valid' pads nothing."""

    def __init__(self, in_channels, out_channels, kernel_size: int, stride: int, padding: str = "same"):
        super().__init__(in_channels, out_channels, kernel_size, stride)
        if padding not in ("same", "valid"):
            raise ValueError(f"conv_padding '{padding}', allowed: ['same', 'valid']")
        self.same = padding == "same"

    def reset_parameters(self):
        nn.init.xavier_uniform_(self.weight)
        nn.init.zeros_(self.bias)

    def _same_pad(self, size: int, k: int, s: int) -> tuple[int, int]:
        total = max((math.ceil(size / s) - 1) * s + k - size, 0)
        return total // 2, total - total // 2

    def forward(self, x):
        if self.same:  # shapes are Python ints: no sync
            top, bottom = self._same_pad(x.shape[-2], self.kernel_size[0], self.stride[0])
            left, right = self._same_pad(x.shape[-1], self.kernel_size[1], self.stride[1])
            x = F.pad(x, (left, right, top, bottom))
        return super().forward(x)


class AtariEncoder(nn.Module):
    """Pixels [B, C, H, W] (uint8, or float in [0, 255] after augmentation) -> [B, D] features.
    `trunk` = (DQNConv2d -> [ChannelLayerNorm] -> activation) per entry of `channels`; CReLU
    doubles the channels."""

    def __init__(self, obs_shape, channels, kernel_sizes, strides, padding="same", activation="relu",
                 layer_norm: bool = False):
        super().__init__()
        if not len(channels) == len(kernel_sizes) == len(strides):
            raise ValueError(f"channels {tuple(channels)}, kernel_sizes {tuple(kernel_sizes)} and "
                             f"strides {tuple(strides)} differ in length")
        layers, dim = [], obs_shape[0]
        for width, k, s in zip(channels, kernel_sizes, strides):
            norm = [ChannelLayerNorm(width)] if layer_norm else []
            layers += [DQNConv2d(dim, width, k, s, padding), *norm,
                       make_activation(activation, channel_dim=1)]
            dim = width_after(activation, width)
        self.trunk = nn.Sequential(*layers)
        with torch.no_grad():
            self.out_dim = self(torch.zeros(1, *obs_shape)).shape[1]

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        h = self.trunk(pixels.float() / 255.0)  # [B, C', H', W']
        return h.flatten(1)  # [B, C' * H' * W']


class DuelingHead(XavierLinear):
    """One Linear(in, 1 + A): output 0 is V(s), outputs 1..A are A(s, .);
    forward gives Q = V + A - mean(A) [B, A]. Each stream is initialised as its own layer."""

    def __init__(self, in_features: int, num_actions: int):
        super().__init__(in_features, 1 + num_actions)

    def reset_parameters(self):
        nn.init.zeros_(self.bias)
        nn.init.xavier_uniform_(self.weight[:1])  # value stream: fan_out 1
        nn.init.xavier_uniform_(self.weight[1:])  # advantage stream: fan_out A

    def value_and_advantage(self, x):
        out = super().forward(x)  # [B, 1 + A]
        return out[:, 0], out[:, 1:]  # [B], [B, A]

    def forward(self, x):
        value, adv = self.value_and_advantage(x)
        return value[:, None] + adv - adv.mean(dim=1, keepdim=True)  # [B, A]


class QNetwork(nn.Module):
    """Features [B, D] -> Q-values [B, A]: `trunk` (Linear -> activation per hidden width) and
    `head` (a DuelingHead, or a plain Linear without dueling)."""

    def __init__(self, in_dim, num_actions, hidden_dims=(512,), activation="relu", dueling=True):
        super().__init__()
        layers, dim = [], in_dim
        for width in hidden_dims:
            layers += [XavierLinear(dim, width), make_activation(activation)]
            dim = width_after(activation, width)
        self.trunk = nn.Sequential(*layers)
        self.head = DuelingHead(dim, num_actions) if dueling else XavierLinear(dim, num_actions)

    def forward(self, features):
        return self.head(self.trunk(features))


class DrQAtari(ConvPrecision, Agent):
    """DrQ(epsilon) with a discrete action space. See the module docstring for the loss."""

    observation_kind, action_kind = "pixels", "discrete"
    target_networks = {"encoder": "encoder_target", "critic": "critic_target"}

    def __init__(self, obs_shape, num_actions: int, device="cpu", **hparams):
        super().__init__()
        obs_shape, num_actions, h = self._set_discrete_pixel_hparams(
            DRQ_ATARI_DEFAULTS, obs_shape, num_actions, device, hparams)
        self._set_precision(h)
        self.obs_shape, self.num_actions = obs_shape, num_actions
        self.double, self.huber_delta = bool(h["double"]), float(h["huber_delta"])
        self.max_grad_norm = h["max_grad_norm"]
        self.target_update_every = h["target_update_every"]
        self.augment_pad, self.intensity_scale = h["augment_pad"], float(h["intensity_scale"])
        self.epsilon_train, self.epsilon_eval = float(h["epsilon_train"]), float(h["epsilon_eval"])
        self.epsilon_decay_steps = int(h["epsilon_decay_steps"])

        self._sam = (float(h["sam_rho"]), h["sam_head"]) if h["optimizer"] == "sam" else None
        self.encoder = AtariEncoder(obs_shape, tuple(h["channels"]), tuple(h["kernel_sizes"]),
                                    tuple(h["strides"]), h["conv_padding"],
                                    h["conv_activation"] or h["activation"], h["conv_layer_norm"])
        self.critic = QNetwork(self.encoder.out_dim, num_actions, h["hidden_dims"], h["activation"],
                               h["dueling"])
        if h["injection"]:  # plasticity injection's spare head (plasticity/injection.py)
            make_injectable(self, ("critic.head",))
        self.encoder_target = copy.deepcopy(self.encoder).requires_grad_(False)
        self.critic_target = copy.deepcopy(self.critic).requires_grad_(False)
        self.to(self.device)
        self._convs_channels_last()

        self._online_params = list(self.encoder.parameters()) + list(self.critic.parameters())
        self._sam_sharp = in_module(self.encoder, self._online_params)  # SAM: the encoder's take g~
        self._target_params = (list(self.encoder_target.parameters())
                               + list(self.critic_target.parameters()))
        mode = self._set_update_mode(h["compile"])
        self.optimizers = {"critic": torch.optim.Adam(self._online_params, eps=h["adam_eps"],
                                                      lr=learning_rate(h["lr"], mode, self.device),
                                                      **optimizer_options(mode))}
        # `compile`: the TD loss (forward and AOT backward) as a compiled graph
        self._td_loss_fn = self.td_loss if mode == "none" else compile_loss(self.td_loss)
        self._act_steps, self._update_calls = 0, 0
        # True while the target's weights equal the online ones (a hard copy and no step or
        # intervention since): Q'(s') is then Q(s'), and the target forward is skipped
        self._target_synced = True

    # ------------------------------------------------------------------ acting
    def q_values(self, obs: torch.Tensor, target: bool = False) -> torch.Tensor:
        """Q(s, .) [B, A] (fp32) for pixels [B, C, H, W] (uint8, or float in [0, 255])."""
        encoder, critic = ((self.encoder_target, self.critic_target) if target
                           else (self.encoder, self.critic))
        with self._autocast():
            return critic(encoder(self._layout(obs))).float()

    @property
    def epsilon(self) -> float:
        """The exploration epsilon the next act(deterministic=False) uses."""
        return linear_epsilon(self._act_steps, self.epsilon_decay_steps, self.epsilon_train)

    def act(self, obs, deterministic: bool = False):
        """Epsilon-greedy action: an int for one observation [C, H, W], an int64 array [B] for a
        batch. Exploration counts one step per observation; draws use the global torch RNG."""
        action = self._predict_action(obs, deterministic)
        if not deterministic:
            self._act_steps += 1 if np.ndim(action) == 0 else len(action)
        return action

    def _predict_action(self, obs, deterministic: bool):
        """Epsilon-greedy at the current epsilon (epsilon_eval if deterministic); counts no step."""
        eps = self.epsilon_eval if deterministic else self.epsilon
        return epsilon_greedy(self.q_values, obs, self.num_actions, eps, self.device, len(self.obs_shape))

    # ---------------------------------------------------------------- learning
    def augment(self, pixels: torch.Tensor) -> torch.Tensor:
        """Random shift then intensity jitter, per image; float [B, C, H, W] in [0, 255] scale."""
        # shifts -pad..pad-1 (dopamine atari_100k_rainbow_agent.py: crop offset randint(0, 2 * pad))
        x = random_shift(pixels, self.augment_pad, high_inclusive=False)
        return random_intensity(x, self.intensity_scale)

    def td_loss(self, batch, synced: bool | None = None) -> tuple[torch.Tensor, dict]:
        """Huber TD loss on augmented pixels; `synced`: the target equals the online network
        (default: the agent's own flag), so Q'(aug s') is the online forward's."""
        synced = self._target_synced if synced is None else synced
        obs, next_obs = self.augment(batch.obs), self.augment(batch.next_obs)  # independent draws
        obs, next_obs = self._layout(obs), self._layout(next_obs)
        action = batch.action.reshape(-1).long()  # [B]
        with torch.no_grad():
            q_next = self.q_values(next_obs) if self.double or synced else None  # [B, A]
            q_next_target = q_next if synced else self.q_values(next_obs, target=True)  # [B, A]
            q_select = q_next if self.double else q_next_target
            best = q_select.argmax(dim=1, keepdim=True)  # [B, 1]
            target = batch.reward + batch.discount * q_next_target.gather(1, best).squeeze(1)  # [B]
        q = self.q_values(obs).gather(1, action[:, None]).squeeze(1)  # [B, A] -> [B]
        loss = F.huber_loss(q, target, delta=self.huber_delta)
        return loss, {"td_loss": loss.detach(), "q": q.detach().mean(), "target_q": target.mean()}

    def update(self, batch) -> UpdateResult:
        """One Adam step on the TD loss (encoder + Q network), then the target copy when due."""
        # target_update_every=1: always synced, unless an intervention came since the last copy
        synced = self._target_synced
        return UpdateResult(self._run_update((synced, self._count_update()), batch))

    def _count_update(self) -> bool:
        """Count an update; whether the target copy is due after it (then the target is synced)."""
        self._update_calls += 1
        self._target_synced = self._update_calls % self.target_update_every == 0
        return self._target_synced

    # ------------------------------------------------------------- members
    def forward(self, loss: str, *args):
        """A loss by name ('td_loss'), for torch.func.functional_call (members)."""
        return getattr(self, loss)(*args)

    @property
    def member_body(self):
        """The update over stacked members (agents/members.py)."""
        return self._member_body

    member_key_values = (0,)  # synced differs between members after a reset in one of them

    def member_update_key(self) -> tuple[bool, bool]:
        """Count an update; the members' key (synced, copy due), as `update`'s."""
        synced = self._target_synced
        return synced, self._count_update()

    def _member_body(self, key, batch, ops) -> dict[str, torch.Tensor]:
        """`_update_step` against `ops` (agents/members.py `MemberOps`). The target forward is
        skipped only when every member's target is a fresh copy (a reset in one member makes
        the key's synced a per-member tuple: then every member reads its target network, which
        right after a copy gives the online one's values)."""
        synced, copy_due = key
        sam = None if self._sam is None else Sam(  # at w + e the target is the target network's
            *self._sam, [p for p, s in zip(self._online_params, self._sam_sharp) if s], (batch, False))
        metrics = ops.step("td_loss", ("critic",), batch, synced is True, sam=sam,
                           max_grad_norm=self.max_grad_norm)
        if copy_due:
            with torch.no_grad():
                torch._foreach_copy_(ops.tensors(self._target_params), ops.tensors(self._online_params))
        return metrics

    def _update_step(self, key: tuple[bool, bool], batch) -> dict[str, torch.Tensor]:
        synced, copy_due = key
        td_loss = self.td_loss if self._eager else self._td_loss_fn
        opt = self.optimizers["critic"]
        opt.zero_grad(set_to_none=True)
        if self._sam is None:
            loss, metrics = td_loss(batch, synced)
            loss.backward(inputs=self._online_params)
        else:  # agents/sam.py; at w + e the target is the target network's, not the perturbed online one's
            (metrics,) = sam_gradients(lambda: td_loss(batch, synced), self._online_params,
                                       self._sam_sharp, *self._sam,
                                       perturbed_loss_fn=lambda: td_loss(batch, False))
        if self.max_grad_norm is not None:
            metrics["grad_norm"] = nn.utils.clip_grad_norm_(self._online_params, self.max_grad_norm,
                                                            foreach=True)
        opt.step()
        if copy_due:
            self._copy_to_target()
        return metrics

    @torch.no_grad()
    def _copy_to_target(self) -> None:
        torch._foreach_copy_(self._target_params, self._online_params)

    def update_target(self) -> None:
        """Hard copy online -> target, in place (the target tensors stay the same objects)."""
        self._copy_to_target()
        self._target_synced = True

    def on_reset(self, event) -> None:
        """The scheduler changed weights in place (`event`: what fired): the target may differ
        from the online net."""
        self._target_synced = False

    # ----------------------------------------------------------- persistence
    def training_state(self) -> dict:
        return {**super().training_state(), "act_steps": self._act_steps,
                "update_calls": self._update_calls, "target_synced": self._target_synced}

    def load_training_state(self, state: dict) -> None:
        super().load_training_state(state)
        self._target_synced = state.get("target_synced", False)  # saved with its weights
        self._act_steps = state.get("act_steps", 0)
        self._update_calls = state.get("update_calls", 0)
