"""The replay buffer every agent shares: storage + sampler + sample-time n-step."""
from __future__ import annotations

from typing import NamedTuple

import torch

from replay.frames import FrameStorage
from replay.nstep import nstep_targets
from replay.request import ReplayRequest
from replay.sampler import UniformSampler
from replay.sequence import SequenceBatch, sequence_at
from replay.storage import TensorStorage, transition_specs


class Batch(NamedTuple):
    """A training batch; the TD target is `reward + discount * V(next_obs)`."""
    obs: torch.Tensor  # [B, *obs_shape]
    action: torch.Tensor  # [B, *action_shape]
    reward: torch.Tensor  # [B] n-step discounted return
    discount: torch.Tensor  # [B] gamma^m, 0 where the episode terminated
    next_obs: torch.Tensor  # [B, *obs_shape] the state m steps later
    idx: torch.Tensor  # [B] storage slots (for priorities, diagnostics)
    weights: torch.Tensor | None = None  # [B] importance weights (prioritized replay, if asked)


class ReplayBuffer:
    """Uniform replay with n-step returns computed when sampling.

    `n_step` and `gamma` are defaults that `sample` can override per call.
    """

    def __init__(self, storage: TensorStorage | FrameStorage, sampler=None, n_step: int = 1,
                 gamma: float = 0.99):
        self.storage = storage
        self.sampler = sampler or UniformSampler(storage.device)
        self.n_step, self.gamma = n_step, gamma

    @classmethod
    def for_spaces(cls, capacity: int, obs_shape, action_shape, device="cpu", seed: int = 0,
                   n_step: int = 1, gamma: float = 0.99, action_dtype=torch.float32):
        storage = TensorStorage(capacity, transition_specs(obs_shape, action_shape,
                                                           action_dtype=action_dtype), device)
        return cls(storage, UniformSampler(device, seed), n_step, gamma)

    @classmethod
    def for_pixels(cls, capacity: int, frame_shape, stack: int, action_shape=(),
                   action_dtype=torch.int64, device="cpu", seed: int = 0, n_step: int = 1,
                   gamma: float = 0.99, padding: str = "repeat"):
        """A buffer of uint8 frame stacks `[stack * C, H, W]` (newest frame last) storing each
        frame once (`FrameStorage`); `capacity` counts frame slots (an episode of L steps
        takes L + 1)."""
        storage = FrameStorage(capacity, frame_shape, stack, action_shape, action_dtype, device,
                               padding)
        return cls(storage, UniformSampler(device, seed), n_step, gamma)

    @property
    def device(self) -> torch.device:
        return self.storage.device

    def __len__(self) -> int:
        return len(self.storage)

    def add(self, obs, action, reward, next_obs, terminated, truncated) -> None:
        self.storage.add(obs=obs, action=action, reward=reward, next_obs=next_obs,
                         terminated=terminated, truncated=truncated)

    def add_batch(self, obs, action, reward, next_obs, terminated, truncated) -> None:
        """Consecutive transitions of one stream, leading dimension = time."""
        self.storage.add_batch(obs=obs, action=action, reward=reward, next_obs=next_obs,
                               terminated=terminated, truncated=truncated)

    def sample(self, batch_size: int, n_step: int | None = None, gamma: float | None = None) -> Batch:
        return self.batch_at(self.sampler.sample(self.storage, batch_size).idx, n_step, gamma)

    def sample_with(self, sampler, request: ReplayRequest) -> Batch | SequenceBatch:
        """`request` served by another sampler (a probe's own seeded one): this buffer's
        sampling stream stays as it was."""
        own, self.sampler = self.sampler, sampler
        try:
            return self.sample_request(request)
        finally:
            self.sampler = own

    def sample_request(self, request: ReplayRequest) -> Batch | SequenceBatch:
        """What an agent asked for (replay/request.py): transitions or sequences, its n and
        gamma, and importance weights when it gives `beta` and the sampler is prioritized."""
        draw = self.sampler.sample(self.storage, request.batch_size, request.beta)
        if request.horizon:
            batch = self.sequences_at(draw.idx, request.horizon, request.n_step, request.gamma)
        else:
            batch = self.batch_at(draw.idx, request.n_step, request.gamma)
        return batch._replace(weights=draw.weights)

    def batch_at(self, idx: torch.Tensor, n_step: int | None = None, gamma: float | None = None) -> Batch:
        n = self.n_step if n_step is None else n_step
        g = self.gamma if gamma is None else gamma
        reward, discount, last = nstep_targets(self.storage, idx, n, g)
        return Batch(self.storage.gather("obs", idx), self.storage.gather("action", idx),
                     reward, discount, self.storage.gather("next_obs", last), idx)

    def sample_sequences(self, batch_size: int, horizon: int, n_step: int | None = None,
                         gamma: float | None = None) -> SequenceBatch:
        """Start slots from the sampler, each with its n-step target and the `horizon` steps
        after it (actions, future observations, validity mask): see `replay.sequence`."""
        idx = self.sampler.sample(self.storage, batch_size).idx
        return self.sequences_at(idx, horizon, n_step, gamma)

    def sequences_at(self, idx: torch.Tensor, horizon: int, n_step: int | None = None,
                     gamma: float | None = None) -> SequenceBatch:
        """`batch_at(idx, n_step, gamma)` plus `horizon` future steps of every slot in `idx`."""
        return SequenceBatch(*self.batch_at(idx, n_step, gamma)[:6],
                             *sequence_at(self.storage, idx, horizon))

    def update_priorities(self, idx: torch.Tensor, priorities: torch.Tensor) -> None:
        """Give slots `idx` new sampling priorities (e.g. sqrt of their loss, as BBF does);
        a no-op for samplers without priorities (uniform)."""
        self.sampler.update_priorities(idx, priorities)

    def with_offline(self, offline, offline_fraction: float, seed: int = 0):
        """A `MixedReplayBuffer` with this buffer as its online part and `offline` (an
        `OfflineData` from `replay.load_offline`, or a `TensorStorage`) as its offline part."""
        from replay.mixed import MixedReplayBuffer  # mixed builds on this module

        return MixedReplayBuffer.build(self, offline, offline_fraction, seed)

    def state_dict(self) -> dict:
        return {"storage": self.storage.state_dict(), "sampler": self.sampler.state_dict()}

    def load_state_dict(self, state: dict) -> None:
        self.storage.load_state_dict(state["storage"])
        self.sampler.load_state_dict(state["sampler"])
