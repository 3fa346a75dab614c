"""Plasticity diagnostics of parameter groups, measured every K updates.

For each group (patterns over `named_parameters()`, as for resets):
  dormant_ratio  ReDo (Sokar et al. 2023): unit i of a layer scores s_i = E|h_i| / mean_j E|h_j|,
                 h the output of the layer's activation on a replay batch, E over the batch (and
                 over positions for conv maps); i is dormant when s_i <= tau (0.1). The ratio is
                 dormant units / all units over every activation inside the group. The output layer
                 has no activation, so it is excluded. An ensemble layer [N, B, U] is normalised
                 per member. CReLU's two halves count as separate units.
  srank          effective rank of the group's features (Kumar et al. 2021): the output Phi [B, D]
                 of the group's last activation, singular values s_1 >= s_2 >= ...;
                 srank = min k with sum_{i<=k} s_i >= (1 - delta) sum_i s_i, delta = 0.01.
                 Mean over ensemble members.
  weight_norm    ||theta||_2 over the group's parameters
  grad_norm      ||g||_2 of the gradients the last update applied (regularisers included)
  init_distance  ||theta - theta_0||_2, theta_0 the parameters when the run started

Activations are captured by forward hooks during the agent's own update on a diagnostics
step, so an agent needs no diagnostics code and the other updates pay nothing. Everything
stays on the device; values are read (one sync) only when they are logged.
"""
from __future__ import annotations

import contextlib

import torch
from torch import nn

from agents.base import Agent
from agents.networks import ACTIVATIONS
from plasticity.groups import _is_target, _target_prefixes, resolve_group

ACTIVATION_TYPES = tuple(ACTIVATIONS.values()) + (nn.LeakyReLU, nn.SiLU, nn.Mish, nn.Sigmoid)


def unit_scores(h: torch.Tensor) -> torch.Tensor:
    """ReDo scores s_i = E|h_i| / mean_j E|h_j|. h: [B, U] -> [U]; [N, B, U] -> [N, U];
    conv maps [B, C, H, W] -> [C]."""
    if h.dim() == 4:
        mean_abs = h.abs().mean(dim=(0, 2, 3))  # [C]
    else:
        mean_abs = h.abs().mean(dim=-2)  # [..., U]
    return mean_abs / mean_abs.mean(dim=-1, keepdim=True).clamp_min(1e-12)


def dormant_counts(h: torch.Tensor, tau: float) -> tuple[torch.Tensor, int]:
    """(number of units with score <= tau, number of units) of one activation output."""
    scores = unit_scores(h)
    return (scores <= tau).sum(), scores.numel()


def srank(features: torch.Tensor, delta: float = 0.01) -> torch.Tensor:
    """Effective rank of [B, D] features, the mean over members of [N, B, D]; conv maps
    [B, C, H, W] are flattened to [B, C*H*W]."""
    if features.dim() == 4:
        features = features.flatten(1)  # [B, C*H*W]
    s = torch.linalg.svdvals(features.float())  # [..., min(B, D)], descending
    cumulative = s.cumsum(dim=-1) / s.sum(dim=-1, keepdim=True).clamp_min(1e-12)
    rank = (cumulative < 1.0 - delta).sum(dim=-1) + 1  # first k reaching 1 - delta
    return rank.float().mean()


def _norm(tensors) -> torch.Tensor:
    tensors = list(tensors)
    if not tensors:
        return torch.zeros(())
    return torch.linalg.vector_norm(torch.stack(torch._foreach_norm(tensors)))


class _GroupProbe:
    """One group's parameters, initial values and the activation modules inside it."""

    def __init__(self, agent: nn.Module, name: str, patterns):
        self.name = name
        self.group = resolve_group(agent, patterns, name)
        self.initial = [p.detach().clone() for p in self.group.params.values()]
        targets = _target_prefixes(agent)
        self.activations = [m for n, m in agent.named_modules()
                            if isinstance(m, ACTIVATION_TYPES) and not _is_target(n, targets)
                            and self.group.covers(n)]


class Diagnostics:
    """Measures the groups every `every` updates. Use around the update that `due` names:

        with diagnostics.capture(diagnostics.due(updates + 1)):
            agent.update(batch)
        values = diagnostics.measure()  # {"critic/dormant_ratio": tensor, ...}
    """

    def __init__(self, agent: nn.Module, groups=None, every: int = 1000, tau: float = 0.1,
                 delta: float = 0.01):
        if not (isinstance(every, int) and every >= 0):
            raise ValueError(f"diagnostics every={every!r}: must be an integer >= 0 (0 = off)")
        self.agent, self.every, self.tau, self.delta = agent, every, tau, delta
        if groups is None:  # every top-level network of the agent (actor, critic, encoder, ...)
            targets = _target_prefixes(agent)
            groups = [n for n, m in agent.named_children()
                      if not _is_target(n, targets) and any(True for _ in m.parameters())]
        self.probes = []
        for entry in groups:
            patterns = [entry] if isinstance(entry, str) else list(entry)
            self.probes.append(_GroupProbe(agent, "+".join(patterns), patterns))
        self._captured: dict[int, torch.Tensor] = {}

    def due(self, updates: int) -> bool:
        return self.every > 0 and bool(self.probes) and updates % self.every == 0

    @contextlib.contextmanager
    def capture(self, enabled: bool = True):
        """Record the first output of every activation module in the groups while active. The
        update inside runs eagerly whatever the agent's speed mode (`Agent.eager_updates`: a
        compiled graph fires no forward hook and sets no `.grad`), from the same parameters,
        optimizer states and random streams; the updates between measurements stay compiled."""
        self._captured.clear()
        if not enabled:
            yield
            return
        handles = [m.register_forward_hook(self._record)
                   for probe in self.probes for m in probe.activations]
        eager = self.agent.eager_updates() if isinstance(self.agent, Agent) else contextlib.nullcontext()
        try:
            with eager:
                yield
        finally:
            for handle in handles:
                handle.remove()

    def _record(self, module, inputs, output) -> None:
        self._captured.setdefault(id(module), output.detach())

    @torch.no_grad()
    def measure(self) -> dict[str, torch.Tensor]:
        out = {}
        for probe in self.probes:
            params = list(probe.group.params.values())
            out[f"{probe.name}/weight_norm"] = _norm(params)
            out[f"{probe.name}/grad_norm"] = _norm(p.grad for p in params if p.grad is not None)
            out[f"{probe.name}/init_distance"] = _norm(torch._foreach_sub(params, probe.initial))
            outputs = [self._captured[id(m)] for m in probe.activations if id(m) in self._captured]
            if outputs:
                counts = [dormant_counts(h, self.tau) for h in outputs]
                dormant = torch.stack([c for c, _ in counts]).sum()
                out[f"{probe.name}/dormant_ratio"] = dormant / sum(n for _, n in counts)
                out[f"{probe.name}/srank"] = srank(outputs[-1], self.delta)
        return out
