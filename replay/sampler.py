"""Index samplers: which stored transitions go into a batch.

A sampler draws indices on the storage's device with its own `torch.Generator`, so sampling
never syncs with the host and its stream is part of a checkpoint. As in TorchRL, storage and
sampling are apart: `sample(storage, batch_size, beta)` returns a `Draw`, the slots and their
importance weights (None where every slot is equally likely, or no weights were asked for).
"""
from __future__ import annotations

from typing import NamedTuple

import torch


class Draw(NamedTuple):
    idx: torch.Tensor  # [B] int64 storage slots
    weights: torch.Tensor | None = None  # [B] float32 importance weights, or None


class UniformSampler:
    """Uniform sampling with replacement over the filled slots.

    A storage with a `valid` mask (bool [capacity], e.g. `FrameStorage`, whose `len` is the
    number of valid slots) is sampled uniformly among its valid slots: a uniform rank among
    them is mapped to its slot through a cumulative count, without reading the device.
    """

    def __init__(self, device="cpu", seed: int = 0):
        self.generator = torch.Generator(device=torch.device(device))
        self.generator.manual_seed(seed)

    prioritized = False

    def sample(self, storage, batch_size: int, beta: float | None = None) -> Draw:
        """`batch_size` slots; uniform sampling has no importance weights (`beta` is ignored)."""
        if len(storage) == 0:
            raise RuntimeError("cannot sample from an empty replay buffer")
        rank = torch.randint(0, len(storage), (batch_size,), generator=self.generator,
                             device=storage.device)  # [B]
        valid = getattr(storage, "valid", None)
        if valid is None:  # every slot below len(storage) is a transition
            return Draw(rank)
        counts = torch.cumsum(valid, 0, dtype=torch.int32)  # [capacity] valid slots up to each slot
        # the first slot whose running count reaches rank + 1 is the rank-th valid slot
        return Draw(torch.searchsorted(counts, rank.to(torch.int32) + 1))  # [B] int64

    def update_priorities(self, idx: torch.Tensor, priorities: torch.Tensor) -> None:
        """Uniform sampling has no priorities: nothing to do."""

    def state_dict(self) -> dict:
        return {"generator": self.generator.get_state()}

    def load_state_dict(self, state: dict) -> None:
        self.generator.set_state(state["generator"].cpu())  # a CPU ByteTensor, on any device
