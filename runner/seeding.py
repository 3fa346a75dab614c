"""Deterministic seeds and RNG snapshots, so that a resumed run replays an uninterrupted one."""
from __future__ import annotations

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
