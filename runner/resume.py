"""`python train.py resume=runs/<dir> [train.total_steps=...]`: the saved config plus the
command line's overrides, refused if an override changes the agent, the env or the seed."""
from __future__ import annotations

import copy

from runner.checkpoint import CHECKPOINT_NAME, MAY_CHANGE, CheckpointError, config_differences
from runner.resume_checks import (check_run_dir, checkpoint_env_steps, read_saved_config,
                                  refuse_nothing_to_train)

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
    (defaults + overrides, already parsed); only the keys the user overrode are taken from it.
    Refused (CheckpointError, nothing touched) unless `run_dir` holds a readable run, or if the
    command would train nothing and only rewrite a finished run's files."""
    run_dir = check_run_dir(run_dir)
    saved = read_saved_config(run_dir)
    env_steps = checkpoint_env_steps(run_dir / CHECKPOINT_NAME, f"resume={run_dir}")
    return merge_resume(run_dir, saved, composed, overrides, env_steps)


def merge_resume(run_dir, saved: dict, composed: dict, overrides: list[str], env_steps: int) -> dict:
    """`saved` (a run's config) with the keys `overrides` set taken from `composed`; refused if
    that changes what the checkpoint (at `env_steps`) was trained with, or trains nothing."""
    saved = _with_missing_keys(saved, composed)
    merged = copy.deepcopy(saved)
    for override in overrides:
        key = override.split("=", 1)[0].lstrip("+~")
        if key == "resume" or key.startswith("hydra"):
            continue
        if key in GROUPS:  # a config group swapped: take the whole composed section
            merged[key] = copy.deepcopy(composed[key])
        else:
            try:
                _set(merged, key, copy.deepcopy(_get(composed, key)))
            except (KeyError, TypeError):  # `~key` removed it: nothing to take
                continue
    merged["resume"] = str(run_dir)
    diffs = config_differences(saved, merged)
    if diffs:
        raise CheckpointError(f"resume={run_dir}: the overrides change what the checkpoint was "
                              "trained with:\n  " + "\n  ".join(diffs)
                              + "\n" + MAY_CHANGE)
    refuse_nothing_to_train(run_dir, saved, merged, env_steps)
    return merged
