"""Run checkpoints: one file with everything a run needs to continue bit for bit
(agent, optimizers, replay contents, RNG states, counters, evaluation history)."""
from __future__ import annotations

from pathlib import Path

import torch

from agents.serialization import atomic_save

FORMAT = 1
CHECKPOINT_NAME = "checkpoint.pt"
# Config sections that must match for a checkpoint to be resumed; the rest may change.
COMPATIBLE_SECTIONS = ("agent", "env", "plasticity", "offline", "seed")
MAY_CHANGE = "only train.*, diagnostics.*, device and threads may change on resume"


class CheckpointError(ValueError):
    """A checkpoint is missing, unreadable or was written by an incompatible config."""


def _flatten(node, prefix=""):
    if isinstance(node, dict):
        out = {}
        for key, value in node.items():
            out.update(_flatten(value, f"{prefix}{key}."))
        return out
    return {prefix.rstrip("."): node}


def config_differences(saved: dict, current: dict, sections=COMPATIBLE_SECTIONS) -> list[str]:
    """Human-readable list of keys in `sections` whose values differ."""
    old = _flatten({k: saved.get(k) for k in sections})
    new = _flatten({k: current.get(k) for k in sections})
    return [f"{key}: {old.get(key, '<absent>')!r} in the checkpoint, {new.get(key, '<absent>')!r} now"
            for key in sorted(set(old) | set(new)) if old.get(key) != new.get(key)]


def save_checkpoint(state: dict, path) -> None:
    atomic_save({"format": FORMAT, **state}, path)


def load_checkpoint(path, config: dict, device="cpu") -> dict:
    """Load a run checkpoint and refuse it if its config is incompatible with `config`."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"no checkpoint at {path}: a run directory holds {CHECKPOINT_NAME} "
                              "once its first checkpoint (train.checkpoint_every) was written")
    try:
        state = torch.load(path, map_location=device, weights_only=False)
    except Exception as exc:  # noqa: BLE001 - any unpickling failure means the same to the user
        raise CheckpointError(f"{path} is not a readable checkpoint ({type(exc).__name__}: {exc})") from None
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        found = state.get("format") if isinstance(state, dict) else type(state).__name__
        raise CheckpointError(f"{path} has checkpoint format {found!r}; this version reads format {FORMAT}")
    diffs = config_differences(state["config"], config)
    if diffs:
        raise CheckpointError(f"{path} was written by an incompatible config; differing keys:\n  "
                              + "\n  ".join(diffs)
                              + "\n" + MAY_CHANGE)
    return state
