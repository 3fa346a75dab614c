"""Categorical (C51) distributional RL helpers (Bellemare, Dabney & Munos 2017, "A Distributional
Perspective on Reinforcement Learning"), as used by Rainbow, SPR and BBF.

The return distribution of (s, a) is a categorical over a fixed support of N atoms

    z_i = v_min + i * dz,   dz = (v_max - v_min) / (N - 1),   i = 0..N-1,

with probabilities p_i(s, a) = softmax(logits(s, a))_i and Q(s, a) = sum_i z_i p_i(s, a). The
distributional Bellman target T z_j = r + d * z_j (d = gamma^n, 0 at termination) no longer lies on
the support, so it is projected back onto it (Bellemare et al. 2017, Algorithm 1):

    (Phi T p)_i = sum_j clip(1 - |clip(r + d z_j, v_min, v_max) - z_i| / dz, 0, 1) * p_j

i.e. each target atom's mass is split linearly between its two neighbouring support atoms (all of
it to one atom when it lands exactly on it, or when clipped to an end of the support). This is the
dense form used by Dopamine's `project_distribution` (and hence BBF): O(B N^2) work, no scatter, no
special case for l == u, no host syncs. The loss is the cross-entropy
-sum_i (Phi T p)_i log softmax(logits(s, a))_i per sample.
"""
from __future__ import annotations

import torch
from torch.nn import functional as F


def c51_support(v_min: float = -10.0, v_max: float = 10.0, num_atoms: int = 51,
                device=None, dtype=torch.float32) -> torch.Tensor:
    """The fixed support z [N]: `num_atoms` evenly spaced values from v_min to v_max inclusive."""
    if num_atoms < 2:
        raise ValueError(f"num_atoms = {num_atoms}: need at least 2 atoms")
    if not v_max > v_min:
        raise ValueError(f"v_min = {v_min}, v_max = {v_max}: need v_min < v_max")
    return torch.linspace(v_min, v_max, num_atoms, device=device, dtype=dtype)


def project_distribution(next_probs: torch.Tensor, rewards: torch.Tensor, discounts: torch.Tensor,
                         support: torch.Tensor) -> torch.Tensor:
    """Project the target distribution (r + d * z, next_probs) onto `support`.

    next_probs: [B, N] probabilities of the bootstrap action at s' (rows sum to 1).
    rewards:    [B] (n-step) returns r.
    discounts:  [B] d = gamma^n, already 0 at termination (then all mass goes to clip(r)).
    support:    [N] evenly spaced atoms (see `c51_support`).
    Returns [B, N] probabilities on `support` (rows sum to 1 up to rounding). No gradient flows
    through the result's use as a target unless the caller wants it (wrap in no_grad).
    """
    v_min, v_max = support[0], support[-1]
    delta = support[1] - support[0]  # 0-d tensor: no host sync
    target_atoms = rewards[:, None] + discounts[:, None] * support[None, :]  # [B, N_j]
    target_atoms = torch.maximum(torch.minimum(target_atoms, v_max), v_min)
    # weight[b, i, j] = share of target atom j's mass that goes to support atom i.
    distance = (target_atoms[:, None, :] - support[None, :, None]).abs()  # [B, N_i, N_j]
    weight = (1.0 - distance / delta).clamp(0.0, 1.0)
    return torch.bmm(weight, next_probs.unsqueeze(-1).to(weight.dtype)).squeeze(-1)  # [B, N_i]


def c51_loss(logits: torch.Tensor, target_probs: torch.Tensor) -> torch.Tensor:
    """Per-sample cross-entropy -sum_i target_i * log softmax(logits)_i: [B, N], [B, N] -> [B].

    `logits` are those of the taken action; `target_probs` (from `project_distribution`) is treated
    as a constant (detached). Equal to KL(target || p) plus the target's entropy, so its minimum
    over logits is the target's entropy, not 0 (BBF logs the KL as its "TD error")."""
    return -(target_probs.detach() * F.log_softmax(logits, dim=-1)).sum(dim=-1)


def expected_value(logits: torch.Tensor, support: torch.Tensor) -> torch.Tensor:
    """Q = sum_i z_i softmax(logits)_i over the last axis: [..., N] -> [...]."""
    return (F.softmax(logits, dim=-1) * support).sum(dim=-1)
