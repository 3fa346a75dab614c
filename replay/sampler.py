"""Index samplers: which stored transitions go into a batch.

A sampler draws indices on the storage's device with its own `torch.Generator`,
so sampling never syncs with the host and its stream is part of a checkpoint.
"""
from __future__ import annotations

import torch


class UniformSampler:
    """Uniform sampling with replacement over the filled slots."""

    def __init__(self, device="cpu", seed: int = 0):
        self.generator = torch.Generator(device=torch.device(device))
        self.generator.manual_seed(seed)

    def sample(self, storage, batch_size: int) -> torch.Tensor:
        if len(storage) == 0:
            raise RuntimeError("cannot sample from an empty replay buffer")
        return torch.randint(0, len(storage), (batch_size,), generator=self.generator,
                             device=storage.device)

    def state_dict(self) -> dict:
        return {"generator": self.generator.get_state()}

    def load_state_dict(self, state: dict) -> None:
        self.generator.set_state(state["generator"])
