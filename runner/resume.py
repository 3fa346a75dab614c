"""`python train.py resume=runs/<dir> [train.total_steps=...]`: the saved config plus the
command line's overrides, refused if an override changes the agent, the env or the seed."""
from __future__ import annotations

import copy
from pathlib import Path

from omegaconf import OmegaConf

from runner.checkpoint import CHECKPOINT_NAME, MAY_CHANGE, CheckpointError, config_differences

GROUPS = ("agent", "env", "plasticity")


def _get(cfg: dict, dotted: str):
    node = cfg
    for part in dotted.split("."):
        node = node[part]
    return node


def _set(cfg: dict, dotted: str, value) -> None:
    *parents, leaf = dotted.split(".")
    node = cfg
    for part in parents:
        node = node.setdefault(part, {})
    node[leaf] = value


def _with_missing_keys(saved: dict, defaults: dict) -> dict:
    """Keys added to the configs after the run was saved take their current defaults."""
    for key, value in defaults.items():
        if key not in saved:
            saved[key] = copy.deepcopy(value)
        elif isinstance(value, dict) and isinstance(saved[key], dict):
            _with_missing_keys(saved[key], value)
    return saved


def resume_config(run_dir, composed: dict, overrides: list[str]) -> dict:
    """The config to continue `run_dir` with. `composed` is Hydra's config for this command
    (defaults + overrides, already parsed); only the keys the user overrode are taken from it."""
    run_dir = Path(run_dir)
    config_path, checkpoint_path = run_dir / "config.yaml", run_dir / CHECKPOINT_NAME
    for path in (config_path, checkpoint_path):
        if not path.is_file():
            raise CheckpointError(f"resume={run_dir}: {path.name} not found in {run_dir} "
                                  "(resume takes a run directory written by train.py)")
    saved = OmegaConf.to_container(OmegaConf.load(config_path), resolve=True)
    saved = _with_missing_keys(saved, composed)
    merged = copy.deepcopy(saved)
    for override in overrides:
        key = override.split("=", 1)[0].lstrip("+~")
        if key == "resume" or key.startswith("hydra"):
            continue
        if key in GROUPS:  # a config group swapped: take the whole composed section
            merged[key] = copy.deepcopy(composed[key])
        else:
            _set(merged, key, copy.deepcopy(_get(composed, key)))
    merged["resume"] = str(run_dir)
    diffs = config_differences(saved, merged)
    if diffs:
        raise CheckpointError(f"resume={run_dir}: the overrides change what the checkpoint was "
                              "trained with:\n  " + "\n  ".join(diffs)
                              + "\n" + MAY_CHANGE)
    return merged
