"""Networks of BBF (Schwarzer et al. 2023, "Bigger, Better, Faster: Human-level Atari with
human-level efficiency"), built on SPR (Schwarzer et al. 2021, "Data-Efficient Reinforcement
Learning with Self-Predictive Representations"), and the SPR loss. The agent is `agents/bbf.py`.

    obs [B, C, 84, 84] --encoder--> latent z [B, 32w, 11, 11] --renormalize-->
      Q head:   flatten -> projection Linear(D, 2048) -> relu -> head (dueling C51) -> [B, A, 51]
      SPR:      z_{t+k} = transition_model(z_{t+k-1}, a_{t+k-1}), k = 1..K (K = 5)
                y_k     = predictor(projection(flatten(z_{t+k})))                 online, [B, K, 2048]
                y'_k    = projection'(flatten(renormalize(encoder'(obs_{t+k}))))  EMA target, no predictor
                L_SPR   = (1/K) sum_k m_k || y_k/|y_k| - y'_k/|y'_k| ||^2 = (1/K) sum_k m_k 2 (1 - cos(y_k, y'_k))

Encoder: the Impala CNN (Espeholt et al. 2018, "IMPALA") with each stage's channels times
`width_scale` (BBF: 4): per stage, conv3x3 -> maxpool 3x3 stride 2 ('SAME') -> `num_blocks`
residual blocks x + conv(relu(conv(relu(x)))); a final relu. 84 -> 42 -> 21 -> 11.

Matched to the public BBF JAX code (bigger_better_faster/bbf/spr_networks.py, BBF.gin):
  * Xavier-uniform weights and zero biases everywhere (flax Conv/Dense with BBF's xavier init);
    every layer draws its init in `reset_parameters`, so plasticity resets re-draw the same init.
  * 'SAME' padding: convs pad 1 (3x3, stride 1); the max pool pads with -inf as flax does (bottom/
    right first: 84 -> (0, 1), 42 -> (0, 1), 21 -> (1, 1)), not PyTorch's symmetric padding.
  * `renormalize=True` (BBF.gin): the latent after the encoder and after every transition step is
    min-max scaled per sample over all of C, H, W: (z - min) / (max - min + 1e-5) (MuZero).
  * Transition model (SPR/BBF `ConvTMCell`): concat one-hot action planes, conv3x3 -> relu ->
    conv3x3 -> relu -> renormalize; the same weights at every step.
  * Projection = the Q head's hidden layer; no relu or normalisation between projection and
    predictor, nor on the targets (targets use the target network's encoder + projection).
  * Dueling: logits = value + adv - mean_a(adv) per atom, with separate `value` and `advantage`
    layers (each with its own Xavier fan-out).
Differences: channels-first layout, so the flattened latent is ordered (C, H, W) rather than
flax's (H, W, C) -- a fixed permutation of the projection's input rows, identical in distribution
under Xavier init. Pixels (uint8, or float in [0, 255] after augmentation) are divided by 255 inside
`ImpalaEncoder` (BBF does it before augmenting; the intensity augmentation is multiplicative, so the
order does not matter). `activation` other than relu (e.g. "crelu", which doubles the channels the
next layer sees) is an extension; BBF only uses relu.

Module names (plasticity groups address these): `encoder` (`encoder.stages.{i}.conv`,
`encoder.stages.{i}.blocks.{j}.conv1/conv2`), `transition_model` (`conv1`, `conv2`), `projection`,
`predictor`, `head` (`head.value`, `head.advantage`). BBF's reset: `head`, `projection`,
`predictor` re-initialised; `encoder` and `transition_model` shrink-and-perturbed 0.5/0.5.
"""
from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import functional as F

from agents.distributional import c51_support, expected_value
from agents.drq_atari import XavierLinear
from agents.networks import make_activation, width_after


class XavierConv2d(nn.Conv2d):
    """3x3 stride-1 convolution with 'SAME' padding (1 on each side), Xavier-uniform weights
    (fan_in = C_in * 9, fan_out = C_out * 9, as flax's xavier_uniform on a conv kernel) and zero bias."""

    def __init__(self, in_channels: int, out_channels: int):
        super().__init__(in_channels, out_channels, kernel_size=3, stride=1, padding=1)

    def reset_parameters(self):
        nn.init.xavier_uniform_(self.weight)
        nn.init.zeros_(self.bias)


def max_pool_same(x: torch.Tensor, kernel: int = 3, stride: int = 2) -> torch.Tensor:
    """TF/flax max_pool(padding='SAME'): out = ceil(in / stride), padded with -inf (the odd pixel
    of padding on the bottom/right). [B, C, H, W] -> [B, C, ceil(H/s), ceil(W/s)]."""
    pads = []
    for size in (x.shape[-1], x.shape[-2]):  # F.pad order: last dim first; Python ints, no sync
        total = max((math.ceil(size / stride) - 1) * stride + kernel - size, 0)
        pads += [total // 2, total - total // 2]
    return F.max_pool2d(F.pad(x, pads, value=float("-inf")), kernel, stride)


def renormalize(x: torch.Tensor, eps: float = 1e-5) -> torch.Tensor:
    """Per-sample min-max scaling over all non-batch axes (SPR/BBF, after MuZero):
    (x - min) / (max - min + eps), so every sample's latent spans [0, ~1]. Keeps x's memory
    format (channels_last stays channels_last)."""
    dims = tuple(range(1, x.dim()))
    lo, hi = x.amin(dim=dims, keepdim=True), x.amax(dim=dims, keepdim=True)  # [B, 1, ..., 1]
    return (x - lo) / (hi - lo + eps)


def impala_out_size(size: int, num_stages: int = 3) -> int:
    """Spatial size after `num_stages` stride-2 'SAME' pools: 84 -> 42 -> 21 -> 11."""
    for _ in range(num_stages):
        size = math.ceil(size / 2)
    return size


class ResidualBlock(nn.Module):
    """x + conv2(act(conv1(act(x)))), channels preserved (Espeholt et al. 2018)."""

    def __init__(self, channels: int, activation: str = "relu"):
        super().__init__()
        inner = width_after(activation, channels)
        self.act1 = make_activation(activation, channel_dim=1)
        self.conv1 = XavierConv2d(inner, channels)
        self.act2 = make_activation(activation, channel_dim=1)
        self.conv2 = XavierConv2d(inner, channels)

    def forward(self, x):
        return x + self.conv2(self.act2(self.conv1(self.act1(x))))


class ImpalaStage(nn.Module):
    """conv3x3 (in -> channels) -> max pool 3x3 stride 2 'SAME' -> `num_blocks` residual blocks."""

    def __init__(self, in_channels: int, channels: int, num_blocks: int = 2, activation: str = "relu"):
        super().__init__()
        self.conv = XavierConv2d(in_channels, channels)
        self.blocks = nn.ModuleList(ResidualBlock(channels, activation) for _ in range(num_blocks))

    def forward(self, x):
        x = max_pool_same(self.conv(x))  # [B, C, H, W] -> [B, C, ceil(H/2), ceil(W/2)]
        for block in self.blocks:
            x = block(x)
        return x


class ImpalaEncoder(nn.Module):
    """Impala CNN: pixels [B, C_in, H, W] (uint8, or float in [0, 255]) -> feature map
    [B, out_channels, ceil(H/8), ceil(W/8)] ([B, 32w, 11, 11] at 84x84), after a final activation.
    Stage i has stages[i] * width_scale channels; out_channels = width_after(activation, that)."""

    def __init__(self, in_channels: int, width_scale: int = 4, stages=(16, 32, 32), num_blocks: int = 2,
                 activation: str = "relu"):
        super().__init__()
        widths = [int(s * width_scale) for s in stages]
        self.stages = nn.ModuleList(
            ImpalaStage(c_in, c, num_blocks, activation)
            for c_in, c in zip([in_channels] + widths[:-1], widths))
        self.final_act = make_activation(activation, channel_dim=1)
        self.out_channels = width_after(activation, widths[-1])

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        x = pixels.float() / 255.0  # [B, C_in, H, W] in [0, 1]
        for stage in self.stages:
            x = stage(x)
        return self.final_act(x)


class TransitionModel(nn.Module):
    """SPR's convolutional transition model (BBF `ConvTMCell`) on the latent map:

        z_{k+1} = renorm(act(conv2(act(conv1([z_k ; onehot(a_k) broadcast to H x W])))))

    `channels` is the latent's channel count C; conv1: C + A -> C, conv2: C -> C (with CReLU each
    conv emits C / 2 channels, which the activation doubles back to C)."""

    def __init__(self, channels: int, num_actions: int, activation: str = "relu", renormalize: bool = True):
        super().__init__()
        conv_out = channels // 2 if activation == "crelu" else channels
        if width_after(activation, conv_out) != channels:
            raise ValueError(f"latent channels {channels} cannot be produced with activation '{activation}'")
        self.channels, self.num_actions, self.renormalize = channels, num_actions, renormalize
        self.conv1 = XavierConv2d(channels + num_actions, conv_out)
        self.act1 = make_activation(activation, channel_dim=1)
        self.conv2 = XavierConv2d(channels, conv_out)
        self.act2 = make_activation(activation, channel_dim=1)

    def step(self, latent: torch.Tensor, action: torch.Tensor) -> torch.Tensor:
        """One step: latent [B, C, H, W], action [B] (int) -> next latent [B, C, H, W]."""
        b, _, h, w = latent.shape
        # one-hot by comparison: F.one_hot reads the largest action on the host (a sync, and no vmap)
        actions = torch.arange(self.num_actions, device=action.device)
        planes = (action.long()[:, None] == actions).to(latent.dtype)  # [B, A]
        planes = planes[:, :, None, None].expand(b, self.num_actions, h, w)  # [B, A, H, W]
        if latent.is_contiguous(memory_format=torch.channels_last) and not latent.is_contiguous():
            planes = planes.contiguous(memory_format=torch.channels_last)  # so the cat stays NHWC
        x = torch.cat([latent, planes], dim=1)  # [B, C + A, H, W]
        x = self.act2(self.conv2(self.act1(self.conv1(x))))
        return renormalize(x) if self.renormalize else x

    def rollout(self, latent: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
        """latent z_t [B, C, H, W], actions a_t..a_{t+K-1} [B, K] -> z_{t+1}..z_{t+K} [B, K, C, H, W].
        Step k (0-based) sees only actions[:, :k+1]."""
        out = []
        for k in range(actions.shape[1]):
            latent = self.step(latent, actions[:, k])
            out.append(latent)
        return torch.stack(out, dim=1)

    forward = rollout


class C51Head(nn.Module):
    """Dueling C51 output layers (Wang et al. 2016; Bellemare et al. 2017): features [B, F] ->
    logits [B, A, N] = value [B, 1, N] + adv [B, A, N] - mean_a adv. Without dueling, only
    `advantage` exists and its output is the logits."""

    def __init__(self, in_features: int, num_actions: int, num_atoms: int = 51, dueling: bool = True):
        super().__init__()
        self.num_actions, self.num_atoms, self.dueling = num_actions, num_atoms, dueling
        self.advantage = XavierLinear(in_features, num_actions * num_atoms)
        self.value = XavierLinear(in_features, num_atoms) if dueling else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        adv = self.advantage(x).view(-1, self.num_actions, self.num_atoms)  # [B, A*N] -> [B, A, N]
        if not self.dueling:
            return adv
        value = self.value(x).unsqueeze(1)  # [B, N] -> [B, 1, N]
        return value + adv - adv.mean(dim=1, keepdim=True)


class BBFNetwork(nn.Module):
    """Encoder, transition model, projection, predictor and dueling C51 head of BBF (see the module
    docstring). obs_shape = (C, H, W) of the stacked frames, e.g. (4, 84, 84)."""

    def __init__(self, obs_shape, num_actions: int, width_scale: int = 4, hidden: int = 2048,
                 num_atoms: int = 51, v_min: float = -10.0, v_max: float = 10.0, dueling: bool = True,
                 activation: str = "relu", stages=(16, 32, 32), num_blocks: int = 2,
                 renormalize: bool = True):
        super().__init__()
        c, h, w = (int(d) for d in obs_shape)
        self.obs_shape, self.num_actions, self.num_atoms = (c, h, w), int(num_actions), int(num_atoms)
        self.renormalize = renormalize
        self.encoder = ImpalaEncoder(c, width_scale, stages, num_blocks, activation)
        channels = self.encoder.out_channels
        self.latent_shape = (channels, impala_out_size(h, len(stages)), impala_out_size(w, len(stages)))
        self.latent_dim = math.prod(self.latent_shape)  # D
        self.transition_model = TransitionModel(channels, self.num_actions, activation, renormalize)
        self.projection = XavierLinear(self.latent_dim, hidden)
        self.predictor = XavierLinear(hidden, hidden)
        self.head_act = make_activation(activation)
        self.head = C51Head(width_after(activation, hidden), self.num_actions, self.num_atoms, dueling)
        self.register_buffer("support", c51_support(v_min, v_max, self.num_atoms), persistent=False)

    # ----------------------------------------------------------------- encoder
    def encode(self, obs: torch.Tensor) -> torch.Tensor:
        """Pixels [B, C, H, W] -> latent map [B, C', H', W'] (renormalized when `renormalize`)."""
        latent = self.encoder(obs)
        return renormalize(latent) if self.renormalize else latent

    def encode_sequence(self, obs_seq: torch.Tensor) -> torch.Tensor:
        """Pixels [B, K, C, H, W] -> latents [B, K, C', H', W'] (one encoder call on B*K images)."""
        b, k = obs_seq.shape[:2]
        latent = self.encode(obs_seq.flatten(0, 1))  # [B*K, C', H', W']
        return latent.view(b, k, *latent.shape[1:])

    # ------------------------------------------------------------------ Q head
    def q_logits(self, latent: torch.Tensor) -> torch.Tensor:
        """Latent [B, C', H', W'] -> C51 logits [B, A, N]."""
        return self.head(self.head_act(self.projection(latent.flatten(1))))  # [B, D] -> [B, hidden]

    def q_values(self, latent: torch.Tensor) -> torch.Tensor:
        """Latent -> Q [B, A] = sum_i z_i softmax(logits)_i."""
        return expected_value(self.q_logits(latent), self.support)

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        """Pixels [B, C, H, W] -> C51 logits [B, A, N]."""
        return self.q_logits(self.encode(obs))

    # --------------------------------------------------------------------- SPR
    def spr_predictions(self, latent: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
        """Latent z_t [B, C', H', W'], actions a_t..a_{t+K-1} [B, K] -> predictions
        predictor(projection(flatten(z_{t+k}))) for k = 1..K: [B, K, hidden]."""
        rolled = self.transition_model.rollout(latent, actions)  # [B, K, C', H', W']
        return self.predictor(self.projection(rolled.flatten(2)))  # [B, K, D] -> [B, K, hidden]

    def spr_targets(self, latent_seq: torch.Tensor) -> torch.Tensor:
        """Latents of obs_{t+1..t+K} [B, K, C', H', W'] -> projection(flatten(.)) [B, K, hidden].
        Call on the TARGET network (no predictor, no activation), under no_grad."""
        return self.projection(latent_seq.flatten(2))  # [B, K, D] -> [B, K, hidden]


def spr_loss(predictions: torch.Tensor, targets: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """SPR's self-predictive loss per sample (Schwarzer et al. 2021; BBF's form):

        L = (1/K) sum_k m_k || p_k/|p_k| - t_k/|t_k| ||^2 = (1/K) sum_k m_k * 2 (1 - cos(p_k, t_k))

    predictions [B, K, D], targets [B, K, D] (detached here: a stop-gradient target), mask [B, K]
    (bool or float; 0 where step k leaves the episode) -> [B]. Exactly 0 for identical predictions
    and targets; masked steps contribute 0 but still count in the 1/K, as in BBF (its
    `(loss * mask).mean(0)` over the K steps). It is 2x SPR's -cos plus a constant, so its
    gradient is twice SPR's. BBF weights it by 5 (`spr_weight`) in the total loss."""
    p = F.normalize(predictions, dim=-1)
    t = F.normalize(targets.detach(), dim=-1)
    per_step = (p - t).pow(2).sum(dim=-1)  # [B, K]
    return (per_step * mask.to(per_step.dtype)).mean(dim=-1)
