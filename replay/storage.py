"""Preallocated circular storage of transitions on one device.

Storage only stores; drawing indices is the sampler's job and turning indices into
training targets (n-step returns) is `replay.nstep`. The pixel storage (replay/frames.py,
each frame stored once) offers the same `add`/`gather` interface.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class FieldSpec:
    shape: tuple[int, ...]
    dtype: torch.dtype


def transition_specs(obs_shape, action_shape, obs_dtype=torch.float32,
                     action_dtype=torch.float32) -> dict[str, FieldSpec]:
    """The fields of one transition (s, a, r, s', terminated, truncated)."""
    return {
        "obs": FieldSpec(tuple(obs_shape), obs_dtype),
        "action": FieldSpec(tuple(action_shape), action_dtype),
        "reward": FieldSpec((), torch.float32),
        "next_obs": FieldSpec(tuple(obs_shape), obs_dtype),
        "terminated": FieldSpec((), torch.bool),
        "truncated": FieldSpec((), torch.bool),
    }


class TensorStorage:
    """A ring of `capacity` transitions, one preallocated tensor per field.

    Transitions must be added in time order of one stream: slot `i+1` follows slot `i`
    unless an episode ended at `i` (terminated or truncated) or `i` is the newest slot.
    """

    def __init__(self, capacity: int, specs: dict[str, FieldSpec], device="cpu"):
        if capacity < 1:
            raise ValueError(f"replay capacity must be >= 1, got {capacity}")
        self.capacity = int(capacity)
        self.device = torch.device(device)
        self.specs = dict(specs)
        self.fields = {
            name: torch.zeros((self.capacity, *spec.shape), dtype=spec.dtype, device=self.device)
            for name, spec in self.specs.items()
        }
        self.pos = 0  # next slot to write
        self.size = 0  # number of valid slots

    def __len__(self) -> int:
        return self.size

    def nbytes(self) -> int:
        """Bytes held by the preallocated tensors."""
        return sum(t.numel() * t.element_size() for t in self.fields.values())

    def add(self, **transition) -> None:
        """Write one transition (arrays, tensors or scalars) at the write head."""
        for name, value in transition.items():
            self.fields[name][self.pos].copy_(torch.as_tensor(value), non_blocking=True)
        self._advance(1)

    def add_batch(self, **transitions) -> None:
        """Write `B` consecutive transitions of one stream (leading dim B), wrapping as needed."""
        count = len(next(iter(transitions.values())))
        if count > self.capacity:  # only the newest `capacity` transitions survive anyway
            transitions = {k: v[-self.capacity:] for k, v in transitions.items()}
            self._advance(count - self.capacity)
            count = self.capacity
        first = min(count, self.capacity - self.pos)
        for name, value in transitions.items():
            value = torch.as_tensor(value).to(self.device, self.specs[name].dtype)
            self.fields[name][self.pos:self.pos + first].copy_(value[:first])
            self.fields[name][: count - first].copy_(value[first:])
        self._advance(count)

    def _advance(self, count: int) -> None:
        self.pos = (self.pos + count) % self.capacity
        self.size = min(self.size + count, self.capacity)

    def gather(self, name: str, idx: torch.Tensor) -> torch.Tensor:
        """`fields[name][idx]` for any index shape: [*idx.shape, *field shape]."""
        return self.fields[name][idx]

    def steps_ahead(self, idx: torch.Tensor) -> torch.Tensor:
        """How many time-consecutive slots start at `idx` (itself included, up to the newest)."""
        newest = (self.pos - 1) % self.capacity
        return (newest - idx) % self.capacity + 1

    def clear(self) -> None:
        """Forget every transition (a continual run's `replay: clear` at a task switch); the
        tensors stay allocated and are overwritten as new transitions come."""
        self.pos = self.size = 0

    def truncate_newest(self) -> None:
        """Mark the newest transition as the end of its episode (a run stopped mid-episode)."""
        if self.size and "truncated" in self.fields:
            self.fields["truncated"][(self.pos - 1) % self.capacity] = True

    def state_dict(self) -> dict:
        # Only the filled part is saved; when full the ring is saved as is (pos keeps the order).
        return {
            "capacity": self.capacity,
            "pos": self.pos,
            "size": self.size,
            "fields": {k: v[: self.size].cpu().clone() for k, v in self.fields.items()},
        }

    def load_state_dict(self, state: dict) -> None:
        if state["capacity"] != self.capacity:
            raise ValueError(
                f"replay capacity mismatch: checkpoint has {state['capacity']}, "
                f"this buffer has {self.capacity} (agent.buffer_size)")
        missing = set(self.fields) ^ set(state["fields"])
        if missing:
            raise ValueError(f"replay fields differ from the checkpoint's: {sorted(missing)}")
        for name, value in state["fields"].items():
            if value.shape[1:] != self.fields[name].shape[1:]:
                raise ValueError(
                    f"replay field '{name}' has shape {tuple(value.shape[1:])} in the checkpoint, "
                    f"{tuple(self.fields[name].shape[1:])} here")
            self.fields[name][: len(value)].copy_(value)
        self.pos, self.size = int(state["pos"]), int(state["size"])
