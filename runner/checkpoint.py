"""Run checkpoints: one file with everything a run needs to continue bit for bit
(agent, optimizers, replay contents, RNG states, counters, evaluation history)."""
from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

import torch

from agents.serialization import atomic_save

FORMAT = 1
CHECKPOINT_NAME = "checkpoint.pt"
# Config sections that must match for a checkpoint to be resumed; the rest may change.
COMPATIBLE_SECTIONS = ("agent", "env", "plasticity", "offline", "seed")
MAY_CHANGE = "only train.*, diagnostics.*, logger.*, device and threads may change on resume"


class CheckpointError(ValueError):
    """A checkpoint is missing, unreadable or was written by an incompatible config."""


def flatten(node, prefix="") -> dict:
    """{dotted key: value} of nested dicts."""
    if isinstance(node, dict):
        out = {}
        for key, value in node.items():
            out.update(flatten(value, f"{prefix}{key}."))
        return out
    return {prefix.rstrip("."): node}


def config_differences(saved: dict, current: dict, sections=COMPATIBLE_SECTIONS) -> list[str]:
    """Human-readable list of keys in `sections` whose values differ."""
    old = flatten({k: saved.get(k) for k in sections})
    new = flatten({k: current.get(k) for k in sections})
    return [f"{key}: {old.get(key, '<absent>')!r} in the checkpoint, {new.get(key, '<absent>')!r} now"
            for key in sorted(set(old) | set(new)) if old.get(key) != new.get(key)]


def save_checkpoint(state: dict, path, keep: int = 1, previous_steps: int | None = None) -> None:
    """Write `state` to `path` atomically. With `keep` K > 1 the checkpoint it replaces stays
    as `checkpoint.<env steps>.pt` (a hard link, else a copy) and the K - 1 newest such files
    are kept: `mv checkpoint.<N>.pt checkpoint.pt` rolls a run back to env step N."""
    path = Path(path)
    if keep > 1 and path.is_file() and previous_steps is not None:
        older = path.with_name(f"{path.stem}.{previous_steps}{path.suffix}")
        if not older.exists():
            try:
                os.link(path, older)
            except OSError:  # a file system without hard links
                shutil.copy2(path, older)
    atomic_save({"format": FORMAT, **state}, path)
    for stale in older_checkpoints(path)[:-(keep - 1) or None]:
        stale.unlink(missing_ok=True)


def older_checkpoints(path) -> list[Path]:
    """The kept `checkpoint.<env steps>.pt` files beside `path`, oldest first."""
    path = Path(path)
    pattern = re.compile(rf"{re.escape(path.stem)}\.(\d+){re.escape(path.suffix)}")
    found = [(int(m.group(1)), p) for p in path.parent.glob(f"{path.stem}.*{path.suffix}")
             if (m := pattern.fullmatch(p.name))]
    return [p for _, p in sorted(found)]


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
