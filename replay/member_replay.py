"""A group's replay in one storage with a member dimension (README "Many seeds in one process").

Each member keeps its `ReplayBuffer` (its adds, its sampler and stream, its checkpoint), but the
fields of all their `TensorStorage`s are one tensor [M, capacity, ...] each, and every member's
fields are views `stacked[k]` of it (as agents/members.py does for parameters). A group update
then draws every member's batch at once: each member's sampler gives its slots (its own stream,
as in its single run), and one gather per field and one n-step computation
(replay/nstep.py over idx [M, B]) serve all members, a `Batch` with fields [M, B, ...] -- the
same values as M `sample_request` calls stacked (tested).

It applies to uniform transition replay of vector observations with the same request for
every member (batch size, n, gamma) and members in lockstep (the same write head); otherwise
(`sample` returns None) the group samples member by member: pixel frame storage, prioritized or
sequence replay (BBF), offline mixtures, members differing in n-step or gamma.
"""
from __future__ import annotations

import torch

from replay.buffer import Batch, ReplayBuffer
from replay.nstep import nstep_targets
from replay.sampler import UniformSampler
from replay.storage import TensorStorage


class MemberReplay:
    """The members' buffers with their storage fields stacked; `sample(requests)`: one batch."""

    def __init__(self, buffers: list):
        self.buffers = list(buffers)
        self.stacked = all(type(b) is ReplayBuffer and type(b.storage) is TensorStorage
                           and type(b.sampler) is UniformSampler for b in self.buffers)
        self.fields: dict[str, torch.Tensor] = {}
        if self.stacked:
            self._bind()

    @torch.no_grad()
    def _bind(self) -> None:
        storages = [b.storage for b in self.buffers]
        for name in storages[0].fields:
            stacked = torch.stack([s.fields[name] for s in storages])  # [M, capacity, ...]
            for k, s in enumerate(storages):
                s.fields[name] = stacked[k]  # adds and checkpoint loads write in place
            self.fields[name] = stacked

    @property
    def capacity(self) -> int:
        return self.buffers[0].storage.capacity

    def gather(self, name: str, idx: torch.Tensor) -> torch.Tensor:
        """Member k's `fields[name][idx[k]]` for every k: idx [M, ...] -> [M, ..., *field shape]."""
        rows = torch.arange(idx.shape[0], device=idx.device).view(-1, *([1] * (idx.dim() - 1)))
        return self.fields[name][rows, idx]

    def steps_ahead(self, idx: torch.Tensor) -> torch.Tensor:
        return self.buffers[0].storage.steps_ahead(idx)  # members in lockstep: one write head

    def sample(self, requests: list) -> Batch | None:
        """Every member's batch for its request, fields [M, B, ...]; None where this does not
        apply (see the module docstring), and nothing is drawn then."""
        first, storages = requests[0], [b.storage for b in self.buffers]
        targets = {(b.n_step if r.n_step is None else r.n_step, b.gamma if r.gamma is None else r.gamma)
                   for b, r in zip(self.buffers, requests)}  # one (n, gamma) for all, or no
        if not (self.stacked and not first.horizon and first.beta is None and len(targets) == 1
                and all(r.batch_size == first.batch_size for r in requests)
                and all((s.pos, s.size) == (storages[0].pos, storages[0].size) for s in storages)):
            return None
        idx = torch.stack([b.sampler.sample(b.storage, first.batch_size).idx for b in self.buffers])  # [M, B]
        (n, gamma), = targets
        reward, discount, last = nstep_targets(self, idx, n, gamma)
        return Batch(self.gather("obs", idx), self.gather("action", idx), reward, discount,
                     self.gather("next_obs", last), idx)
