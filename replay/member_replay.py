"""A group's replay in one storage with a member dimension (README "Many seeds in one process").

Each member keeps its `ReplayBuffer` (its adds, its sampler and stream, its checkpoint), but the
fields of all their storages are one tensor [M, capacity, ...] each, and every member's fields
are views `stacked[k]` of it (as agents/members.py does for parameters). A group update then
draws every member's batch at once: each member's sampler gives its slots (its own stream and,
for prioritized replay, its own priorities and importance weights, as in its single run), and
one gather per field, one n-step computation (replay/nstep.py over idx [M, B]) and, for
sequence requests (BBF), one sequence gather (replay/sequence.py) serve all members: a `Batch`
or `SequenceBatch` with fields [M, B, ...], the same values as M `sample_request` calls stacked
(tested).

Storages: `TensorStorage` (vector observations) and `FrameStorage` (pixels: each member's frames
stored once, its stacks rebuilt from the stacked frames in the same gather). Members need not be
in lockstep: each has its own write head (pixel episodes take L + 1 slots, so heads drift apart
with episode lengths), and the n-step and sequence look-ahead stop at each member's own newest
transition. Members may differ in n-step and gamma (each member's targets use its own).

Offline mixtures (`MixedReplayBuffer`, RLPD with a dataset): the members' online parts are
stacked as above, and since every member loaded the same dataset (checked: one fingerprint) one
copy of it serves all (the others are released); each member's two samplers draw its offline
and online rows, which come in one call as its own buffer gives them (rows [:k] offline).
Where one call does not apply (`sample` returns None and the group samples member by member):
members whose requests differ in batch size, horizon or beta, or whose datasets differ.

Memory: the stack is allocated while the members' own storages exist, and each member's fields
are copied in and its own released in turn. On the CPU the stack's pages are committed as they
are written, so the peak is about one member's storage more; on a GPU the stack is allocated at
once, so building it needs twice the group's replay memory for a moment (at the start).
"""
from __future__ import annotations

import torch

from replay.buffer import Batch, ReplayBuffer
from replay.mixed import MixedReplayBuffer, join_parts
from replay.frames import FrameStorage
from replay.nstep import MemberValues, nstep_targets
from replay.sequence import SequenceBatch, sequence_at
from replay.storage import TensorStorage

STORAGES = (TensorStorage, FrameStorage)


class MemberReplay:
    """The members' buffers with their storage fields stacked; `sample(requests)`: one batch."""

    def __init__(self, buffers: list):
        self.buffers = list(buffers)
        # offline mixtures (RLPD): the online parts are stacked, the one dataset is shared
        self.mixed = all(type(b) is MixedReplayBuffer for b in self.buffers) and len(
            {(b.fingerprint, b.offline_fraction) for b in self.buffers}) == 1
        parts = [b.online for b in self.buffers] if self.mixed else self.buffers
        self.storages = [b.storage for b in parts]
        kind = type(self.storages[0])
        self.stacked = kind in STORAGES and all(
            type(b) is ReplayBuffer and type(b.storage) is kind for b in parts)
        self.fields: dict[str, torch.Tensor] = {}
        self.offline = None
        if self.stacked:
            self._bind()
            self._rows = torch.arange(len(self.storages), device=self.storages[0].device)  # [M] member k's row
            if self.mixed:  # the same data (fingerprint): one copy serves every member's sampler
                self.offline = self.buffers[0].offline.storage
                for b in self.buffers[1:]:
                    b.offline.storage = self.offline
        device = self.storages[0].device
        self._newest, self._n_steps = DeviceRow(torch.int64, device), DeviceRow(torch.int64, device)
        self._gammas = DeviceRow(torch.float32, device)

    @torch.no_grad()
    def _bind(self) -> None:
        for name, first in self.storages[0].fields.items():
            stacked = torch.empty((len(self.storages), *first.shape), dtype=first.dtype,
                                  device=first.device)  # [M, capacity, ...]
            for k, s in enumerate(self.storages):
                stacked[k].copy_(s.fields[name])
                s.fields[name] = stacked[k]  # adds and checkpoint loads write in place
            self.fields[name] = stacked
        for s in self.storages:
            if isinstance(s, FrameStorage):
                s.valid = s.fields["valid"]  # what its sampler draws among: the stack's row

    @property
    def capacity(self) -> int:
        return self.storages[0].capacity

    def _read(self, name: str, idx: torch.Tensor) -> torch.Tensor:
        """Member k's stored `fields[name][idx[k]]` for every k: idx [M, ...] -> [M, ..., *field]."""
        return self.fields[name][self._rows.view(-1, *([1] * (idx.dim() - 1))), idx]

    def gather(self, name: str, idx: torch.Tensor) -> torch.Tensor:
        """Field `name` (the logical transition fields, as the storages' `gather`) of member k at
        slots idx[k] for every k: [M, ..., *field shape]."""
        first = self.storages[0]
        if isinstance(first, FrameStorage) and name in ("obs", "next_obs"):  # stacks of frames
            return first.stacks(idx if name == "obs" else (idx + 1) % self.capacity, self._read)
        return self._read(name, idx)

    def steps_ahead(self, idx: torch.Tensor) -> torch.Tensor:
        """Each member's `steps_ahead` at its slots idx [M, ...]: up to its own newest transition."""
        newest = self._newest([(s.pos - 1) if isinstance(s, TensorStorage) else (s.head - 1)
                               for s in self.storages]).tensor.view(-1, *([1] * (idx.dim() - 1)))  # [M, 1..]
        return (newest - idx) % self.capacity + 1

    def sample(self, requests: list) -> Batch | SequenceBatch | None:
        """Every member's batch for its request, fields [M, B, ...]; None where this does not
        apply (see the module docstring), and nothing is drawn then."""
        first = requests[0]
        if not (self.stacked and all((r.batch_size, r.horizon, r.beta) == (first.batch_size, first.horizon, first.beta)
                                     for r in requests)):
            return None
        ns = [b.n_step if r.n_step is None else r.n_step for b, r in zip(self.buffers, requests)]
        gammas = [b.gamma if r.gamma is None else r.gamma for b, r in zip(self.buffers, requests)]
        n = ns[0] if len(set(ns)) == 1 else self._n_steps(ns)  # one for all, or each member's own
        gamma = gammas[0] if len(set(gammas)) == 1 else self._gammas(gammas)
        size, horizon = first.batch_size, first.horizon
        if not self.mixed:
            draws = [b.sampler.sample(b.storage, size, first.beta) for b in self.buffers]
            idx = torch.stack([d.idx for d in draws])  # [M, B], each member's own stream
            weights = None if draws[0].weights is None else torch.stack([d.weights for d in draws])  # [M, B]
            return self._batch(self, idx, n, gamma, horizon, weights)
        splits = {b.split(size) for b in self.buffers}  # offline rows: the same for every member
        if len(splits) != 1:
            return None
        k, = splits
        offline = online = None  # as MixedReplayBuffer.sample_request: rows [:k] offline, [k:] online
        if k:
            idx = torch.stack([b.offline.sampler.sample(self.offline, k).idx for b in self.buffers])  # [M, k]
            offline = self._batch(self.offline, idx, n, gamma, horizon, None)
        if size - k:
            idx = torch.stack([b.online.sampler.sample(b.online.storage, size - k).idx for b in self.buffers])
            online = self._batch(self, idx, n, gamma, horizon, None)
            online = online._replace(idx=online.idx + self.offline.capacity)
        return join_parts(offline, online, dim=1)

    @staticmethod
    def _batch(storage, idx: torch.Tensor, n, gamma, horizon: int, weights) -> Batch | SequenceBatch:
        """The batch at slots idx [M, B] of `storage` (this member-stacked one, or the shared
        dataset, whose every member reads the same rows), n-step targets and sequences included."""
        reward, discount, last = nstep_targets(storage, idx, n, gamma)
        batch = Batch(storage.gather("obs", idx), storage.gather("action", idx), reward, discount,
                      storage.gather("next_obs", last), idx, weights)
        if horizon:
            return SequenceBatch(*batch[:6], *sequence_at(storage, idx, horizon), weights)
        return batch


class DeviceRow:
    """M host values mirrored in one device tensor [M]: `row(values)` rewrites only the entries
    that changed, each with `fill_` (a kernel taking the value as its argument). Making a new
    device tensor from a list instead would copy from pageable host memory, which waits for the
    device (a host sync on every draw)."""

    def __init__(self, dtype: torch.dtype, device):
        self.dtype, self.device = dtype, torch.device(device)
        self.host: list | None = None
        self.tensor: torch.Tensor | None = None

    def __call__(self, values: list) -> MemberValues:
        if self.tensor is None or len(values) != len(self.host):
            self.tensor = torch.empty(len(values), dtype=self.dtype, device=self.device)
            self.host = [None] * len(values)
        for k, (old, new) in enumerate(zip(self.host, values)):
            if old != new:
                self.tensor[k].fill_(new)
        self.host = list(values)
        return MemberValues(tuple(values), self.tensor)
