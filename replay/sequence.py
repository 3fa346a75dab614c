"""Sequence sampling for self-predictive losses (SPR/BBF): a start slot and the K steps after it.

For a start slot i (a stored transition s_i, a_i, r_i, s'_i) and horizon K, step j = 0..K-1 is

    actions[:, j]    = a_{i+j}                   the action taken at slot i + j
    future_obs[:, j] = s'_{i+j} = s_{i+j+1}      the observation that action led to
    mask[:, j]       = True iff slot i + j is stored (j < storage.steps_ahead(i), i.e. not
                       past the newest transition) AND no episode ended (terminated or
                       truncated) at any of the slots i .. i+j-1.

So the transition model's rollout predicts future_obs[:, j] from obs and actions[:, :j+1].
An end AT slot i + j does not invalidate step j: s'_{i+j} is that episode's final observation,
a real observation. mask[:, 0] is always True and each row of mask is a prefix (True then
False). Where mask is False, actions and future_obs repeat the last valid step of the row
(never data of another episode or an overwritten slot), so a loss that forgets the mask still
reads nothing that could be mistaken for data.

The TD part (reward, discount, next_obs) is the n-step target of slot i exactly as
`ReplayBuffer.batch_at` computes it (`replay.nstep`), with n and gamma chosen per call, so an
annealed n applies at once. With n = 1, next_obs is s'_i (never s_i).

Works on any storage with `gather` (index of any shape), `steps_ahead` and `capacity`:
`TensorStorage` and `FrameStorage` (whose "next_obs" of slot s is the stack of slot s + 1).
Everything is tensor ops on the storage's device: no host syncs.
"""
from __future__ import annotations

from typing import NamedTuple

import torch


class SequenceBatch(NamedTuple):
    """A `Batch` (the first six fields, same order) plus K future steps of each start slot."""
    obs: torch.Tensor  # [B, *obs_shape] s_i
    action: torch.Tensor  # [B, *action_shape] a_i
    reward: torch.Tensor  # [B] n-step discounted return
    discount: torch.Tensor  # [B] gamma^m, 0 where the episode terminated
    next_obs: torch.Tensor  # [B, *obs_shape] the n-step bootstrap state
    idx: torch.Tensor  # [B] start slots
    actions: torch.Tensor  # [B, K, *action_shape] a_i .. a_{i+K-1}
    future_obs: torch.Tensor  # [B, K, *obs_shape] s_{i+1} .. s_{i+K}
    mask: torch.Tensor  # [B, K] bool, step j is in the episode of s_i and stored
    weights: torch.Tensor | None = None  # [B] importance weights (prioritized replay, if asked)

    def as_batch(self):
        """The plain `Batch` (TD fields only)."""
        from replay.buffer import Batch  # buffer imports this module

        return Batch(*self[:6], weights=self.weights)


def sequence_at(storage, idx: torch.Tensor, horizon: int):
    """(actions [B, K, ...], future_obs [B, K, ...], mask [B, K]) for start slots `idx` [B]
    (or with leading dimensions, [M, B]: every member's slots in a member-stacked storage,
    replay/member_replay.py; the outputs then have them too)."""
    if horizon < 0:
        raise ValueError(f"sequence horizon must be >= 0, got {horizon}")
    offsets = torch.arange(horizon, device=idx.device)  # [K]
    slots = (idx[..., None] + offsets) % storage.capacity  # [B, K] slots i .. i+K-1
    ended = (storage.gather("terminated", slots) | storage.gather("truncated", slots)).int()  # [B, K]
    ended_before = torch.cumsum(ended, dim=-1) - ended  # [B, K] episode ends at slots i .. i+j-1
    stored = offsets < storage.steps_ahead(idx)[..., None]  # [B, K] slot i+j not past the newest
    mask = stored & (ended_before == 0)  # [B, K], a prefix of each row
    last = mask.sum(dim=-1, keepdim=True) - 1  # [B, 1] last valid step (0 unless K == 0)
    safe = (idx[..., None] + torch.minimum(offsets, last)) % storage.capacity  # [B, K] repeat last
    actions = storage.gather("action", safe)  # [B, K, *action_shape]
    future_obs = storage.gather("next_obs", safe)  # [B, K, *obs_shape]
    return actions, future_obs, mask
