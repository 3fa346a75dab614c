"""Deterministic seeds and RNG snapshots, so that a resumed run replays an uninterrupted one."""
from __future__ import annotations

import contextlib

import numpy as np
import torch


def derived_seed(*keys: int) -> int:
    """A 31-bit seed that depends only on `keys` (e.g. (seed, episode) for env resets)."""
    return int(np.random.SeedSequence([int(k) for k in keys]).generate_state(1)[0] & 0x7FFFFFFF)


def seed_everything(seed: int) -> None:
    torch.manual_seed(seed)
    np.random.seed(seed % 2**32)


def rng_state() -> dict:
    """The global torch, numpy (and CUDA) RNG states, for a checkpoint."""
    state = {"torch": torch.get_rng_state(), "numpy": np.random.get_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict) -> None:
    """Continue the streams of `rng_state()`. Torch takes RNG states as CPU ByteTensors only, and a
    checkpoint loaded with map_location="cuda" holds them on the GPU: each goes back to the CPU.
    Per-GPU states are restored for the GPUs this process sees (a resume may see fewer)."""
    torch.set_rng_state(state["torch"].cpu())
    np.random.set_state(state["numpy"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all([s.cpu() for s in state["cuda"][:torch.cuda.device_count()]])


class RngStream:
    """A torch random stream of its own, entered around the draws that use it (`with
    stream.active():`): inside, torch's global generators (CPU, and `device` if CUDA) continue
    this stream; outside, they are as they were. The trainer acts inside one (the exploration
    stream), so the draws a policy makes while collecting do not depend on the draws of the
    updates, and member k of a group (runner/group.py) explores as the single run of its seed."""

    def __init__(self, seed: int, device="cpu"):
        self.seed, self.device = int(seed), torch.device(device)
        self._state: dict | None = None  # None: not used yet (seeded from `seed` when entered)

    def _devices(self) -> list[int]:
        if self.device.type != "cuda":
            return []
        return [self.device.index if self.device.index is not None else torch.cuda.current_device()]

    @contextlib.contextmanager
    def active(self):
        devices = self._devices()
        with torch.random.fork_rng(devices=devices):
            if self._state is None:  # only the generators the fork restores
                torch.default_generator.manual_seed(self.seed)
                for d in devices:
                    torch.cuda.default_generators[d].manual_seed(self.seed)
            else:
                self.load_state_dict(self._state, now=True)
            try:
                yield
            finally:
                self._state = {"torch": torch.get_rng_state(),
                               "cuda": [torch.cuda.get_rng_state(d) for d in devices]}

    def state_dict(self) -> dict:
        return {"seed": self.seed, "state": self._state}

    def load_state_dict(self, state: dict, now: bool = False) -> None:
        """Continue a saved stream; `now`: set the global generators to it (inside `active`)."""
        if not now:
            self.seed, self._state = int(state["seed"]), state["state"]
            return
        torch.set_rng_state(state["torch"].cpu())
        for d, s in zip(self._devices(), state["cuda"]):
            torch.cuda.set_rng_state(s.cpu(), d)
