"""n-step targets computed at sample time.

For a sampled slot i and horizon n, the return is

    R = sum_{k<m} gamma^k r_{i+k},    discount = gamma^m * (1 - terminated_{i+m-1}),
    next_obs = s'_{i+m-1},

where m <= n stops at the first episode end (terminated: no bootstrap; truncated:
bootstrap from s') and at the newest stored slot, so two episodes never mix and the
wrap-around of the ring is respected. Because nothing is precomputed, n and gamma may
change between calls (BBF anneals both).
"""
from __future__ import annotations

from typing import NamedTuple

import torch


class MemberValues(NamedTuple):
    """One value per member of a member-stacked storage (replay/member_replay.py): the host
    values and the same on the device, [M]."""
    values: tuple
    tensor: torch.Tensor


def nstep_targets(storage, idx: torch.Tensor, n, gamma):
    """Returns (reward [B], discount [B], last [B]) where `last` is the slot of s'. `idx` may
    have leading dimensions ([M, B]: every member's slots in a member-stacked storage,
    replay/member_replay.py); the outputs have its shape. There `n` and `gamma` may also be one
    per member (`MemberValues`): member k's targets use its own."""
    if not isinstance(n, MemberValues) and not isinstance(gamma, MemberValues) and n == 1:
        reward = storage.gather("reward", idx)  # fast path: one step, no look-ahead needed
        discount = gamma * (~storage.gather("terminated", idx)).float()
        return reward, discount, idx
    horizon = max(n.values) if isinstance(n, MemberValues) else n
    offsets = torch.arange(horizon, device=idx.device)
    slots = (idx[..., None] + offsets) % storage.capacity  # [B, n]
    rewards = storage.gather("reward", slots)  # [B, n]
    terminated = storage.gather("terminated", slots)  # [B, n]
    ended = terminated | storage.gather("truncated", slots)  # [B, n]
    in_buffer = offsets < storage.steps_ahead(idx)[..., None]  # [B, n]
    if isinstance(n, MemberValues):  # [M, B, n]: member k's steps beyond its n are not used
        in_buffer &= offsets < n.tensor.view(-1, *([1] * idx.dim()))  # [M, 1, 1]
    # step k is used iff it is stored and no episode ended at a step < k
    ended_before = torch.cumsum(ended.int(), dim=-1) - ended.int()
    used = in_buffer & (ended_before == 0)  # [B, n], used[:, 0] is always True
    if isinstance(gamma, MemberValues):
        gamma = gamma.tensor.view(-1, *([1] * (idx.dim() - 1)))  # [M, 1]
        powers = gamma[..., None] ** offsets.to(rewards.dtype)  # [M, 1, n]
    else:
        powers = gamma ** offsets.to(rewards.dtype)  # [n]
    reward = (rewards * powers * used).sum(dim=-1)
    steps = used.sum(dim=-1)  # m in [1, n]
    last = (idx + steps - 1) % storage.capacity
    discount = gamma ** steps.to(rewards.dtype) * (~storage.gather("terminated", last)).float()
    return reward, discount, last
