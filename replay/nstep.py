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

import torch


def nstep_targets(storage, idx: torch.Tensor, n: int, gamma: float):
    """Returns (reward [B], discount [B], last [B]) where `last` is the slot of s'. `idx` may
    have leading dimensions ([M, B]: every member's slots in a member-stacked storage,
    replay/member_replay.py); the outputs have its shape."""
    if n == 1:  # fast path: one step, no look-ahead needed
        reward = storage.gather("reward", idx)
        discount = gamma * (~storage.gather("terminated", idx)).float()
        return reward, discount, idx
    offsets = torch.arange(n, device=idx.device)
    slots = (idx[..., None] + offsets) % storage.capacity  # [B, n]
    rewards = storage.gather("reward", slots)  # [B, n]
    terminated = storage.gather("terminated", slots)  # [B, n]
    ended = terminated | storage.gather("truncated", slots)  # [B, n]
    in_buffer = offsets < storage.steps_ahead(idx)[..., None]  # [B, n]
    # step k is used iff it is stored and no episode ended at a step < k
    ended_before = torch.cumsum(ended.int(), dim=-1) - ended.int()
    used = in_buffer & (ended_before == 0)  # [B, n], used[:, 0] is always True
    powers = gamma ** offsets.to(rewards.dtype)  # [n]
    reward = (rewards * powers * used).sum(dim=-1)
    steps = used.sum(dim=-1)  # m in [1, n]
    last = (idx + steps - 1) % storage.capacity
    discount = gamma ** steps.to(rewards.dtype) * (~storage.gather("terminated", last)).float()
    return reward, discount, last
