"""MLP building blocks: a plain MLP trunk, an ensemble of MLPs evaluated in one batched
call, the tanh-Gaussian actor (SAC), a state-value net and a Gaussian actor (IQL). Every
network splits into a `trunk` and a `head` so plasticity groups can address "the last layer"
by name (e.g. `critic.head`)."""
from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import functional as F

from agents.init import Linear, draw_, role_init


class CReLU(nn.Module):
    """[relu(h), relu(-h)] (Shang et al. 2016; Abbas et al. 2023): doubles the width along
    `dim` (features, -1, for MLPs; channels, 1, for conv maps [B, C, H, W])."""

    def __init__(self, dim: int = -1):
        super().__init__()
        self.dim = dim

    def forward(self, x):
        return torch.cat([F.relu(x), F.relu(-x)], dim=self.dim)


ACTIVATIONS = {"relu": nn.ReLU, "elu": nn.ELU, "tanh": nn.Tanh, "gelu": nn.GELU, "crelu": CReLU}


def make_activation(name: str, channel_dim: int = -1) -> nn.Module:
    """An activation module by name; `channel_dim` is where CReLU concatenates."""
    if name not in ACTIVATIONS:
        raise ValueError(f"unknown activation '{name}', allowed: {sorted(ACTIVATIONS)}")
    return CReLU(channel_dim) if name == "crelu" else ACTIVATIONS[name]()


def width_after(activation: str, width: int) -> int:
    """Features (or channels) the next layer receives from `width` units."""
    return 2 * width if activation == "crelu" else width


def mlp_trunk(in_dim: int, hidden_dims, layer_norm=False, activation="relu",
              dropout: float | None = None, init: str = "torch") -> nn.Sequential:
    """Linear -> [LayerNorm] -> activation [-> Dropout], for each hidden width; the Linear
    layers drawn from the agent-level `init` (agents/init.py)."""
    scheme, gain = role_init(init, "hidden")
    layers, dim = [], in_dim
    for width in hidden_dims:
        layers.append(Linear(dim, width, scheme, gain))
        if layer_norm:
            layers.append(nn.LayerNorm(width))
        layers.append(make_activation(activation))
        if dropout:
            layers.append(nn.Dropout(dropout))
        dim = width_after(activation, width)
    return nn.Sequential(*layers)


def _trunk_width(in_dim: int, hidden_dims, activation: str) -> int:
    """Feature width a trunk hands to its head."""
    return width_after(activation, hidden_dims[-1]) if hidden_dims else in_dim


class EnsembleLinear(nn.Module):
    """N independent linear layers applied in one batched matmul.

    x: [N, B, in] -> [N, B, out]. Each member is initialised like `nn.Linear` (scheme "torch"),
    or gets its own draw of `scheme` (agents/init.py) as an [out, in] matrix, and a zero bias.
    """

    def __init__(self, num_members: int, in_features: int, out_features: int,
                 scheme: str = "torch", gain: float = 1.0):
        super().__init__()
        self.num_members, self.in_features, self.out_features = num_members, in_features, out_features
        self.init_scheme, self.init_gain = scheme, float(gain)
        self.weight = nn.Parameter(torch.empty(num_members, in_features, out_features))
        self.bias = nn.Parameter(torch.empty(num_members, 1, out_features))
        self.reset_parameters()

    @torch.no_grad()
    def reset_parameters(self):
        if self.init_scheme != "torch":
            for member in self.weight:  # [in, out] each; nn.Linear's layout is [out, in]
                member.copy_(draw_(torch.empty_like(member.T), self.init_scheme, self.init_gain).T)
            nn.init.zeros_(self.bias)
            return
        # nn.Linear's default: U(-1/sqrt(in), 1/sqrt(in)) for weight and bias.
        bound = 1.0 / math.sqrt(self.in_features)
        nn.init.uniform_(self.weight, -bound, bound)
        nn.init.uniform_(self.bias, -bound, bound)

    def forward(self, x):
        if self.out_features == 1:  # a Q head: a multiply-sum runs ~2x faster than a thin bmm on CPU
            return (x * self.weight.transpose(1, 2)).sum(-1, keepdim=True) + self.bias  # [N, B, 1]
        return torch.baddbmm(self.bias, x, self.weight)

    def extra_repr(self):
        return (f"members={self.num_members}, in={self.in_features}, out={self.out_features}"
                + ("" if self.init_scheme == "torch" else f", init={self.init_scheme}({self.init_gain:.4g})"))


class EnsembleLayerNorm(nn.Module):
    """LayerNorm with a separate affine per member; x: [N, B, D]."""

    def __init__(self, num_members: int, dim: int, eps: float = 1e-5):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(num_members, 1, dim))
        self.bias = nn.Parameter(torch.zeros(num_members, 1, dim))
        self.dim, self.eps = dim, eps

    def reset_parameters(self):
        nn.init.ones_(self.weight)
        nn.init.zeros_(self.bias)

    def forward(self, x):
        return F.layer_norm(x, (self.dim,), eps=self.eps) * self.weight + self.bias


class EnsembleCritic(nn.Module):
    """N Q-functions Q_j(s, a), computed together: returns [N, B]."""

    def __init__(self, obs_dim, action_dim, hidden_dims=(256, 256), num_critics=2,
                 layer_norm=False, activation="relu", init="torch"):
        super().__init__()
        self.num_critics = num_critics
        scheme, gain = role_init(init, "hidden")
        layers, dim = [], obs_dim + action_dim
        for width in hidden_dims:
            layers.append(EnsembleLinear(num_critics, dim, width, scheme, gain))
            if layer_norm:
                layers.append(EnsembleLayerNorm(num_critics, width))
            layers.append(make_activation(activation))
            dim = width_after(activation, width)
        self.trunk = nn.Sequential(*layers)
        self.head = EnsembleLinear(num_critics, dim, 1, *role_init(init, "value_out"))

    def forward(self, obs, action):
        x = torch.cat([obs, action], dim=-1)  # [B, obs+act]
        x = x.unsqueeze(0).expand(self.num_critics, *x.shape)  # [N, B, obs+act]
        return self.head(self.trunk(x)).squeeze(-1)  # [N, B]


LOG_STD_FORMS = ("tanh", "clip")


class TanhGaussianActor(nn.Module):
    """pi(a|s) = tanh(N(mu(s), sigma(s))), log sigma bounded to [log_std_min, log_std_max] by
    `log_std_form`: "tanh", min + (max - min) (tanh(h) + 1) / 2 (jaxrl policies.py and
    denisyarats/drq; the default) or "clip", clamp(h, min, max) (RLPD's TanhNormal). The head's
    mean and log-std rows are drawn as two layers (`init`'s "mean_out" and "log_std_out")."""

    def __init__(self, obs_dim, action_dim, hidden_dims=(256, 256), layer_norm=False,
                 activation="relu", log_std_bounds=(-10.0, 2.0), log_std_form="tanh", init="torch"):
        super().__init__()
        if log_std_form not in LOG_STD_FORMS:
            raise ValueError(f"log_std_form = {log_std_form!r}: allowed: {list(LOG_STD_FORMS)}")
        self.trunk = mlp_trunk(obs_dim, hidden_dims, layer_norm, activation, init=init)
        width = width_after(activation, hidden_dims[-1]) if hidden_dims else obs_dim
        self.head = Linear(width, 2 * action_dim, blocks=[(action_dim, *role_init(init, "mean_out")),
                                                          (action_dim, *role_init(init, "log_std_out"))])
        self.log_std_min, self.log_std_max = (float(b) for b in log_std_bounds)
        if not self.log_std_min < self.log_std_max:
            raise ValueError(f"log_std_bounds = {tuple(log_std_bounds)}: need min < max")
        self.log_std_form = log_std_form

    def _dist_params(self, obs):
        mean, log_std = self.head(self.trunk(obs)).chunk(2, dim=-1)
        if self.log_std_form == "clip":
            return mean, log_std.clamp(self.log_std_min, self.log_std_max)
        log_std = torch.tanh(log_std)
        log_std = self.log_std_min + 0.5 * (self.log_std_max - self.log_std_min) * (log_std + 1)
        return mean, log_std

    def forward(self, obs, deterministic: bool = False):
        """Returns (action in [-1, 1], log pi(action|obs) [B])."""
        mean, log_std = self._dist_params(obs)
        if deterministic:
            return torch.tanh(mean), None
        std = log_std.exp()
        pre_tanh = mean + std * torch.randn_like(mean)
        action = torch.tanh(pre_tanh)
        # Gaussian log-density minus the tanh Jacobian, log(1 - tanh(u)^2) computed stably.
        log_prob = (-0.5 * ((pre_tanh - mean) / std) ** 2 - log_std - 0.5 * math.log(2 * math.pi))
        log_prob = log_prob - 2.0 * (math.log(2.0) - pre_tanh - F.softplus(-2.0 * pre_tanh))
        return action, log_prob.sum(dim=-1)


class StateValue(nn.Module):
    """V(s): an MLP trunk and a linear head; obs [B, obs_dim] -> [B]."""

    def __init__(self, obs_dim, hidden_dims=(256, 256), layer_norm=False, activation="relu", init="torch"):
        super().__init__()
        self.trunk = mlp_trunk(obs_dim, hidden_dims, layer_norm, activation, init=init)
        self.head = Linear(_trunk_width(obs_dim, hidden_dims, activation), 1, *role_init(init, "value_out"))

    def forward(self, obs):
        return self.head(self.trunk(obs)).squeeze(-1)  # [B, 1] -> [B]


class GaussianHead(Linear):
    """The mean layer of a Gaussian policy plus its state-independent log-std (one per action
    dimension, zero at init). One module, so a head reset re-initialises both."""

    def __init__(self, in_features: int, action_dim: int, scheme: str = "torch", gain: float = 1.0):
        super().__init__(in_features, action_dim, scheme, gain)
        self.log_std = nn.Parameter(torch.zeros(action_dim))

    def reset_parameters(self):
        super().reset_parameters()
        if hasattr(self, "log_std"):  # nn.Linear.__init__ calls this before log_std exists
            nn.init.zeros_(self.log_std)


class GaussianActor(nn.Module):
    """pi(a|s) = N(tanh(mu(s)), diag(sigma^2)), sigma = exp(log_std) state-independent, log_std
    clamped to `log_std_bounds` (IQL's policy). Not squashed: log pi is finite for any action."""

    def __init__(self, obs_dim, action_dim, hidden_dims=(256, 256), layer_norm=False,
                 activation="relu", dropout=None, log_std_bounds=(-5.0, 2.0), init="torch"):
        super().__init__()
        self.trunk = mlp_trunk(obs_dim, hidden_dims, layer_norm, activation, dropout, init=init)
        self.head = GaussianHead(_trunk_width(obs_dim, hidden_dims, activation), action_dim,
                                 *role_init(init, "mean_out"))
        self.log_std_min, self.log_std_max = log_std_bounds

    def dist_params(self, obs):
        """(mean [B, A] in (-1, 1), log_std [A])."""
        mean = torch.tanh(self.head(self.trunk(obs)))
        return mean, self.head.log_std.clamp(self.log_std_min, self.log_std_max)

    def log_prob(self, obs, action):
        """log pi(action|obs) [B], a diagonal Gaussian's log-density summed over dimensions."""
        mean, log_std = self.dist_params(obs)
        z = (action - mean) * torch.exp(-log_std)
        return (-0.5 * z.pow(2) - log_std - 0.5 * math.log(2 * math.pi)).sum(dim=-1)

    def forward(self, obs, deterministic: bool = False):
        """An action [B, A] in [-1, 1]: the mean, or a sample clipped to the action bounds."""
        mean, log_std = self.dist_params(obs)
        if deterministic:
            return mean
        return (mean + log_std.exp() * torch.randn_like(mean)).clamp(-1.0, 1.0)
