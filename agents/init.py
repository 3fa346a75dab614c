"""Weight initialisation schemes (`agent.init`) and the layers that draw them.

Every layer here keeps its scheme and gain on itself and draws them in `reset_parameters`, so a
plasticity reset or shrink & perturb (plasticity/fresh.py deep-copies the module and calls
`reset_parameters`) draws a fresh value from the same initialiser the run started with.

Layer schemes (a layer's output rows may be split into blocks, each drawn on its own, as the
reference's separate Dense layers are, e.g. jaxrl's policy mean and log-std heads):
  torch           PyTorch's default (kaiming-uniform weight, a = sqrt(5); U(+-1/sqrt(fan_in)) bias)
  orthogonal      W orthogonal times `gain` (rows orthonormal when out <= in, else columns), zero
                  bias: flax `nn.initializers.orthogonal(gain)`, jaxrl's `default_init`; conv
                  kernels flattened to [out, in * kh * kw] (torch's `orthogonal_`)
  xavier_uniform  U(+-gain * sqrt(6 / (fan_in + fan_out))), zero bias: flax `xavier_uniform`
  lecun_normal    truncated normal (+-2 std) with variance 1 / fan_in, zero bias: flax's default
                  Dense kernel init (`variance_scaling(1, "fan_in", "truncated_normal")`)

Agent-level `init` values (the role of each layer picks its scheme and gain, `ROLES`):
  torch       every layer PyTorch's default
  orthogonal  jaxrl (evgenii-nikishin/rl_with_resets continuous_control/networks/common.py
              `default_init = orthogonal(sqrt 2)`; SR-SAC and IQL the same): every Dense gain
              sqrt(2) (critic and value outputs and the policy mean too), the policy log-std
              head gain 1 (policies.py `log_std_scale`), DrQ's conv layers gain sqrt(2) and its
              Dense(50) projection flax's default lecun_normal (drq/networks.py)
  xavier      RLPD (ikostrikov/rlpd rlpd/networks/mlp.py `default_init = xavier_uniform`): every Dense
  drq         Kostrikov et al.'s DrQ (denisyarats/drq utils.py `weight_init`): Linear orthogonal
              gain 1, Conv2d orthogonal gain calculate_gain("relu") = sqrt(2)
"""
from __future__ import annotations

import math

import torch
from torch import nn

RELU_GAIN = math.sqrt(2.0)  # jaxrl default_init(scale=jnp.sqrt(2)); nn.init.calculate_gain("relu")
TORCH = ("torch", 1.0)
# agent-level init -> layer role -> (scheme, gain)
ROLES = {
    "torch": {},
    "orthogonal": {"hidden": ("orthogonal", RELU_GAIN), "value_out": ("orthogonal", RELU_GAIN),
                   "mean_out": ("orthogonal", RELU_GAIN), "log_std_out": ("orthogonal", 1.0),
                   "projection": ("lecun_normal", 1.0), "conv": ("orthogonal", RELU_GAIN)},
    "xavier": {role: ("xavier_uniform", 1.0) for role in
               ("hidden", "value_out", "mean_out", "log_std_out", "projection", "conv")},
    "drq": {"hidden": ("orthogonal", 1.0), "value_out": ("orthogonal", 1.0),
            "mean_out": ("orthogonal", 1.0), "log_std_out": ("orthogonal", 1.0),
            "projection": ("orthogonal", 1.0), "conv": ("orthogonal", RELU_GAIN)},
}
AGENT_INITS = tuple(ROLES)


def role_init(init: str, role: str) -> tuple[str, float]:
    """(layer scheme, gain) of a layer with `role` under the agent-level `init`."""
    if init not in ROLES:
        raise ValueError(f"init = {init!r}: allowed: {list(AGENT_INITS)}")
    return ROLES[init].get(role, TORCH)


@torch.no_grad()
def _lecun_normal_(weight: torch.Tensor, gain: float) -> torch.Tensor:
    fan_in = weight[0].numel()  # [out, in, *kernel]: in * prod(kernel)
    std = gain * math.sqrt(1.0 / fan_in) / 0.87962566103423978  # flax: std of the truncated draw = target
    return nn.init.trunc_normal_(weight, std=std, a=-2 * std, b=2 * std)


LAYER_SCHEMES = {
    "orthogonal": lambda w, g: nn.init.orthogonal_(w, gain=g),
    "xavier_uniform": lambda w, g: nn.init.xavier_uniform_(w, gain=g),
    "lecun_normal": _lecun_normal_,
}


@torch.no_grad()
def draw_(weight: torch.Tensor, scheme: str, gain: float) -> torch.Tensor:
    """`weight` [out, in, *kernel] <- a fresh draw of `scheme` (not "torch") in place."""
    if scheme not in LAYER_SCHEMES:
        raise ValueError(f"init scheme '{scheme}': allowed: {['torch', *LAYER_SCHEMES]}")
    return LAYER_SCHEMES[scheme](weight, gain)


class _Scheme:
    """Mixin for nn.Linear / nn.Conv2d: `reset_parameters` draws `init_blocks`, a tuple of
    (rows, scheme, gain) over the output rows (one block: the whole layer). The class default
    is PyTorch's, which the parent's __init__ draws first; another scheme is then drawn once
    more (so the RNG stream of a default layer is unchanged)."""

    init_blocks: tuple = ()

    def _set_blocks(self, blocks) -> None:
        blocks = tuple((int(rows), scheme, float(gain)) for rows, scheme, gain in blocks)
        if sum(rows for rows, _, _ in blocks) != self.weight.shape[0]:
            raise ValueError(f"init blocks {blocks} do not cover the {self.weight.shape[0]} output rows")
        if all(scheme == "torch" for _, scheme, _ in blocks):
            return
        if any(scheme == "torch" for _, scheme, _ in blocks):
            raise ValueError(f"init blocks {blocks}: 'torch' cannot be mixed with other schemes")
        self.init_blocks = blocks
        self.reset_parameters()

    def reset_parameters(self):
        if not self.init_blocks:
            return super().reset_parameters()
        row = 0
        for rows, scheme, gain in self.init_blocks:
            block = torch.empty_like(self.weight[row:row + rows])
            self.weight.data[row:row + rows] = draw_(block, scheme, gain)
            row += rows
        if self.bias is not None:
            nn.init.zeros_(self.bias)

    def extra_repr(self):
        blocks = ", ".join(f"{rows}x {scheme}({gain:.4g})" for rows, scheme, gain in self.init_blocks)
        return super().extra_repr() + (f", init=[{blocks}]" if blocks else "")


class Linear(_Scheme, nn.Linear):
    """nn.Linear drawn from `scheme` with `gain`, or from `blocks` [(rows, scheme, gain), ...]."""

    def __init__(self, in_features: int, out_features: int, scheme: str = "torch", gain: float = 1.0,
                 blocks=None):
        super().__init__(in_features, out_features)
        self._set_blocks(blocks or [(out_features, scheme, gain)])


class Conv2d(_Scheme, nn.Conv2d):
    """nn.Conv2d drawn from `scheme` with `gain`."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size, stride=1, padding=0,
                 scheme: str = "torch", gain: float = 1.0):
        super().__init__(in_channels, out_channels, kernel_size, stride, padding)
        self._set_blocks([(out_channels, scheme, gain)])


def agent_init(value) -> str:
    """Check an agent-level `init` value."""
    if value not in ROLES:
        raise ValueError(f"init = {value!r}: allowed: {list(AGENT_INITS)}")
    return value
