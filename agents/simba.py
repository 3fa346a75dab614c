"""SimBa networks (Lee et al., ICLR 2025, "SimBa: Simplicity Bias for Scaling Up Parameters in
Deep RL"), for SAC and RLPD with `agent.network=simba` (configs/agent/simba.yaml).

Following SonyResearch/simba @ 4e83770 (scale_rl/networks/layers.py, agents/sac/sac_network.py,
agents/wrappers/normalization.py, agents/wrappers/utils.py):

    x -> Dense(h, orthogonal(1)) -> B x [x + Dense(h, he)(relu(Dense(4h, he)(LayerNorm(x))))] -> LayerNorm
      -> head (critic: Dense(1, orthogonal(1)); actor: mean and log-std Dense(|A|, orthogonal(1)))

he = he_normal (truncated normal, variance 2 / fan_in), biases zero, LayerNorm epsilon 1e-6
(flax's). Observations are normalised by running statistics, `ObservationNormalizer`, updated
with each observation the agent acts on while training (never while evaluating) and applied to
the batch's observations at every update with the current statistics.

Module names are the plasticity handles: `critic.input`, `critic.blocks.<i>`, `critic.norm`,
`critic.head` (the same under `actor`); the normaliser `obs_norm` holds buffers, not
parameters, so no intervention touches it (SimBa's code has no resets; we keep the statistics
through every reset, as a reset agent still sees the same observation distribution).
"""
from __future__ import annotations

import math

import torch
from torch import nn

from agents.init import Linear
from agents.networks import EnsembleLayerNorm, EnsembleLinear, TanhGaussianActor

HE = ("lecun_normal", math.sqrt(2.0))  # flax he_normal = variance_scaling(2, fan_in, truncated normal)
LN_EPS = 1e-6  # flax nn.LayerNorm's default epsilon


class ObservationNormalizer(nn.Module):
    """(x - mean) / sqrt(var + 1e-8) with running mean, var and count (the parallel-variance
    update of gymnasium's RunningMeanStd, count starting at 1e-4, mean 0, var 1). Float64
    statistics; `update(x)` with a batch [B, D] or one observation [D]."""

    def __init__(self, dim: int, epsilon: float = 1e-8):
        super().__init__()
        self.epsilon = epsilon
        self.register_buffer("mean", torch.zeros(dim, dtype=torch.float64))
        self.register_buffer("var", torch.ones(dim, dtype=torch.float64))
        self.register_buffer("count", torch.tensor(1e-4, dtype=torch.float64))

    @torch.no_grad()
    def update(self, x: torch.Tensor) -> None:
        x = x.reshape(-1, self.mean.shape[0]).to(torch.float64)  # [B, D]
        batch_mean, batch_var, n = x.mean(0), x.var(0, unbiased=False), x.shape[0]
        delta, total = batch_mean - self.mean, self.count + n
        m2 = self.var * self.count + batch_var * n + delta.square() * self.count * n / total
        self.mean.add_(delta * n / total)
        self.var.copy_(m2 / total)
        self.count.copy_(total)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return ((x - self.mean) / torch.sqrt(self.var + self.epsilon)).to(x.dtype)


class ResidualBlock(nn.Module):
    """x + down(relu(up(LayerNorm(x)))), up to 4h and back, for N members at once: [N, B, h]."""

    def __init__(self, num_members: int, width: int):
        super().__init__()
        self.norm = EnsembleLayerNorm(num_members, width, LN_EPS)
        self.up = EnsembleLinear(num_members, width, 4 * width, *HE)
        self.act = nn.ReLU()  # a module: the diagnostics and ReDo find units through it
        self.down = EnsembleLinear(num_members, 4 * width, width, *HE)

    def forward(self, x):
        return x + self.down(self.act(self.up(self.norm(x))))


def _add_encoder(module: nn.Module, num_members: int, in_dim: int, width: int, num_blocks: int) -> None:
    """Give `module` SimBa's encoder for N members: `input`, `blocks`, `norm`."""
    module.input = EnsembleLinear(num_members, in_dim, width, "orthogonal", 1.0)
    module.blocks = nn.ModuleList(ResidualBlock(num_members, width) for _ in range(num_blocks))
    module.norm = EnsembleLayerNorm(num_members, width, LN_EPS)


def _encode(module: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """[N, B, in] -> [N, B, width] through `module`'s encoder."""
    x = module.input(x)
    for block in module.blocks:
        x = block(x)
    return module.norm(x)


class SimbaCritic(nn.Module):
    """N SimBa Q-functions computed together: (obs [B, D], action [B, A]) -> [N, B]."""

    def __init__(self, obs_dim: int, action_dim: int, width: int = 512, num_blocks: int = 2,
                 num_critics: int = 1):
        super().__init__()
        self.num_critics = num_critics
        _add_encoder(self, num_critics, obs_dim + action_dim, width, num_blocks)
        self.head = EnsembleLinear(num_critics, width, 1, "orthogonal", 1.0)

    def forward(self, obs, action):
        x = torch.cat([obs, action], dim=-1)  # [B, D + A]
        x = x.unsqueeze(0).expand(self.num_critics, *x.shape)  # [N, B, D + A]
        return self.head(_encode(self, x)).squeeze(-1)  # [N, B, 1] -> [N, B]


class SimbaTrunk(nn.Module):
    """The actor's SimBa encoder (one member): [B, D] -> [B, width]."""

    def __init__(self, in_dim: int, width: int, num_blocks: int):
        super().__init__()
        _add_encoder(self, 1, in_dim, width, num_blocks)

    def forward(self, x):
        return _encode(self, x.unsqueeze(0)).squeeze(0)  # [1, B, width] -> [B, width]


class SimbaActor(TanhGaussianActor):
    """tanh(N(mu, sigma)) on a SimBa encoder; mean and log-std heads orthogonal(1), the log-std
    squashed into [log_std_min, log_std_max] as in scale_rl/networks/policies.py."""

    def __init__(self, obs_dim: int, action_dim: int, width: int = 128, num_blocks: int = 1,
                 log_std_bounds=(-10.0, 2.0), log_std_form: str = "tanh"):
        super().__init__(obs_dim, action_dim, hidden_dims=(), log_std_bounds=log_std_bounds,
                         log_std_form=log_std_form)
        self.trunk = SimbaTrunk(obs_dim, width, num_blocks)
        self.head = Linear(width, 2 * action_dim, blocks=[(action_dim, "orthogonal", 1.0),
                                                          (action_dim, "orthogonal", 1.0)])
