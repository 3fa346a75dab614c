"""Offline + online replay: each batch takes an exact share of rows from a fixed dataset.

Per batch of B rows, k = floor(offline_fraction * B + 0.5) (round half up) rows come from the
offline storage and B - k from the online one; each part is drawn by its own seeded sampler
and its n-step targets are computed within its own storage, so a return never runs from
offline data into online data. Batch rows [:k] are offline, [k:] online; `Batch.idx` is the
slot in the offline storage for offline rows and `offline capacity + slot` for online rows.
While the online part is empty every row is offline (k = B), so updates may start on the
dataset alone; with `offline_fraction = 0` an empty online part raises like an empty buffer.

Checkpoints hold the online part, both samplers and the fraction, but not the dataset: the
trainer reloads the dataset and `load_state_dict` checks its SHA-256 fingerprint (every
stored field, after the reward transform) against the checkpoint's, refusing a different one.
Agents see an ordinary `Batch` and know nothing of the two parts.
"""
from __future__ import annotations

import hashlib
import math

import numpy as np
import torch

from replay.buffer import Batch, ReplayBuffer
from replay.request import ReplayRequest
from replay.sequence import SequenceBatch
from replay.sampler import UniformSampler

OFFLINE_STREAM = 1  # the offline sampler's seed is derived from (seed, OFFLINE_STREAM)


def storage_fingerprint(storage) -> str:
    """SHA-256 of the filled part of every field (name, dtype, shape and bytes)."""
    h = hashlib.sha256()
    for name in sorted(storage.fields):
        value = storage.fields[name][: len(storage)].detach().cpu().contiguous()
        h.update(f"{name}:{value.dtype}:{tuple(value.shape)};".encode())
        h.update(np.ascontiguousarray(value.numpy()).data)
    return h.hexdigest()


def join_parts(offline, online, dim: int = 0):
    """A mixed batch from its offline and online parts (either may be None), rows offline first
    along the batch dimension `dim` (1 for a group's [M, B, ...] batches, replay/member_replay.py)."""
    if offline is None or online is None:
        return online if offline is None else offline
    return type(offline)(*(None if fields[0] is None else torch.cat(fields, dim=dim)
                           for fields in zip(offline, online)))


def offline_seed(seed: int) -> int:
    return int(np.random.SeedSequence([int(seed), OFFLINE_STREAM]).generate_state(1)[0])


def check_fraction(fraction) -> float:
    if isinstance(fraction, bool) or not isinstance(fraction, (int, float)) or not (
            0.0 <= fraction <= 1.0):
        raise ValueError(f"offline_fraction must be a number in [0, 1], got {fraction!r}")
    return float(fraction)


class MixedReplayBuffer:
    """The `ReplayBuffer` API over an online buffer (written by `add`) and an offline one."""

    def __init__(self, online: ReplayBuffer, offline: ReplayBuffer, offline_fraction: float,
                 source: str = "offline dataset"):
        if online.storage.device != offline.storage.device:
            raise ValueError(f"offline storage is on {offline.storage.device}, the buffer on "
                             f"{online.storage.device}: load the dataset with device=buffer.device")
        if online.storage.specs != offline.storage.specs:
            raise ValueError(f"offline fields {offline.storage.specs} differ from the online "
                             f"buffer's {online.storage.specs}")
        if len(offline.storage) == 0:
            raise ValueError("the offline storage is empty")
        self.online, self.offline = online, offline
        self.offline_fraction = check_fraction(offline_fraction)
        self.source = source
        self.fingerprint = storage_fingerprint(offline.storage)  # the dataset is never written

    @classmethod
    def build(cls, online: ReplayBuffer, offline, offline_fraction: float, seed: int = 0):
        """`offline`: an `OfflineData` (from `load_offline`) or a `TensorStorage`."""
        storage = getattr(offline, "storage", offline)
        sampler = UniformSampler(storage.device, offline_seed(seed))
        part = ReplayBuffer(storage, sampler, online.n_step, online.gamma)
        return cls(online, part, offline_fraction, getattr(offline, "name", "offline dataset"))

    # the ReplayBuffer API; `storage` is the online storage (the trainer marks its episode ends)
    @property
    def storage(self):
        return self.online.storage

    @property
    def device(self) -> torch.device:
        return self.online.device

    @property
    def n_step(self) -> int:
        return self.online.n_step

    @property
    def gamma(self) -> float:
        return self.online.gamma

    def __len__(self) -> int:
        return len(self.online) + len(self.offline)

    def add(self, obs, action, reward, next_obs, terminated, truncated) -> None:
        self.online.add(obs, action, reward, next_obs, terminated, truncated)

    def add_batch(self, obs, action, reward, next_obs, terminated, truncated) -> None:
        self.online.add_batch(obs, action, reward, next_obs, terminated, truncated)

    def split(self, batch_size: int) -> int:
        """How many of `batch_size` rows come from the offline part (host arithmetic only)."""
        if len(self.online) == 0:
            if self.offline_fraction == 0.0:
                raise RuntimeError("cannot sample: the online part is empty and offline_fraction is 0")
            return batch_size
        return int(math.floor(self.offline_fraction * batch_size + 0.5))

    def sample(self, batch_size: int, n_step: int | None = None, gamma: float | None = None) -> Batch:
        return self.sample_request(ReplayRequest(batch_size, n_step, gamma))

    def sample_sequences(self, batch_size: int, horizon: int, n_step: int | None = None,
                         gamma: float | None = None) -> SequenceBatch:
        return self.sample_request(ReplayRequest(batch_size, n_step, gamma, horizon))

    def sample_request(self, request: ReplayRequest) -> Batch | SequenceBatch:
        """Transitions or sequences (replay/request.py), each part from its own storage: a
        sequence never runs from offline into online data. No importance weights: both parts
        sample uniformly (prioritized replay with a dataset is refused by validation)."""
        k = self.split(request.batch_size)
        offline = self._part(self.offline, k, request, 0) if k else None
        online = (self._part(self.online, request.batch_size - k, request, self.offline.storage.capacity)
                  if request.batch_size - k else None)
        return join_parts(offline, online)

    def _part(self, buffer: ReplayBuffer, size: int, request: ReplayRequest, offset: int):
        if buffer.sampler.prioritized:
            raise ValueError("prioritized replay with an offline dataset is not supported "
                             "(validation refuses agent.prioritized=true with offline.dataset)")
        idx = buffer.sampler.sample(buffer.storage, size).idx
        n = self.n_step if request.n_step is None else request.n_step
        g = self.gamma if request.gamma is None else request.gamma
        batch = (buffer.sequences_at(idx, request.horizon, n, g) if request.horizon
                 else buffer.batch_at(idx, n, g))
        return batch._replace(idx=batch.idx + offset)

    def sample_with(self, sampler, request: ReplayRequest) -> Batch | SequenceBatch:
        """`request` served from the online part by another sampler (see ReplayBuffer)."""
        return self.online.sample_with(sampler, request)

    def update_priorities(self, idx: torch.Tensor, priorities: torch.Tensor) -> None:
        """Both parts sample uniformly: nothing to do (as `ReplayBuffer` with a uniform sampler)."""

    def state_dict(self) -> dict:
        return {"online": self.online.state_dict(),
                "offline": {"sampler": self.offline.sampler.state_dict(), "source": self.source,
                            "fingerprint": self.fingerprint, "size": len(self.offline.storage)},
                "offline_fraction": self.offline_fraction}

    def load_state_dict(self, state: dict) -> None:
        if "offline" not in state:
            raise ValueError("the checkpoint's replay has no offline part: it was not written by "
                             "a mixed offline/online buffer")
        saved = state["offline"]
        if saved["fingerprint"] != self.fingerprint:
            raise ValueError(
                f"offline data differ from the checkpoint's: it used '{saved['source']}' "
                f"({saved['size']} transitions, fingerprint {saved['fingerprint'][:12]}), this "
                f"buffer holds '{self.source}' ({len(self.offline.storage)} transitions, "
                f"{self.fingerprint[:12]}). Resume with the same dataset file and reward transform.")
        self.online.load_state_dict(state["online"])
        self.offline.sampler.load_state_dict(saved["sampler"])
        self.offline_fraction = check_fraction(state["offline_fraction"])
