"""Read the runs under a directory and group them into configurations.

A run is any directory holding `config.yaml` (written by train.py when it starts); it is finished
when it also holds a readable `summary.json` with a final evaluation. Runs are grouped by the
config keys whose values vary within an env (the env id is the task dimension): keys that only
change with the env (an env preset's run lengths) and bookkeeping keys (seed, device, threads,
...) never split configurations. A configuration is labelled by its values of those keys; a
sweep of a single configuration by its config-group choices ("agent=sac, plasticity=none").
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path

from omegaconf import OmegaConf

TASK_KEY = "env.id"
# Never a configuration dimension: the task itself, seeds, and keys that do not change results.
IGNORED = ("env.id", "env.name", "seed", "resume", "device", "threads", "train.progress",
           "train.log_every", "train.checkpoint_every", "logger.wandb", "logger.wandb_project",
           "logger.wandb_entity", "logger.wandb_group", "logger.wandb_mode")
MISSING = "<absent>"  # the value of a key a run's config does not have


class ReportError(ValueError):
    """The directory does not exist or holds no finished run."""


@dataclass
class Run:
    path: Path
    config: dict                   # flattened: dotted key -> value (scalars, or JSON for lists)
    summary: dict | None = None
    skipped: str | None = None     # why the run is left out, None when finished
    label: str = ""

    @property
    def task(self) -> str:
        return str(self.config.get(TASK_KEY, MISSING))


@dataclass
class Group:
    """One configuration: its label, key values and its finished runs."""
    label: str
    values: dict
    runs: list = field(default_factory=list)


def flatten(node, prefix: str = "") -> dict:
    """Dotted keys. Lists of mappings (plasticity rules) are indexed; other lists stay whole."""
    if isinstance(node, dict):
        items = node.items()
    elif isinstance(node, list) and any(isinstance(v, (dict, list)) for v in node):
        items = ((str(i), v) for i, v in enumerate(node))
    else:
        return {prefix: json.dumps(node) if isinstance(node, list) else node}
    out: dict = {}
    for key, value in items:
        out.update(flatten(value, f"{prefix}.{key}" if prefix else str(key)))
    return out


def _natural(path: Path) -> list:
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", str(path))]


def load_run(path: Path) -> Run:
    try:
        run = Run(path, flatten(OmegaConf.to_container(OmegaConf.load(path / "config.yaml"))))
    except Exception as err:  # noqa: BLE001 - any unparsable file: report it, keep going
        return Run(path, {}, skipped=f"config.yaml unreadable ({type(err).__name__}: {err})")
    summary_path = path / "summary.json"
    if not summary_path.is_file():
        run.skipped = "no summary.json (unfinished, interrupted or failed)"
        return run
    try:
        run.summary = json.loads(summary_path.read_text())
    except (OSError, ValueError) as err:
        run.skipped = f"summary.json unreadable ({err})"
        return run
    if not isinstance(run.summary.get("final_eval_return"), (int, float)):
        run.skipped = "summary.json has no final evaluation"
    return run


def _in_wandb_run(path: Path) -> bool:
    """A file W&B keeps for its run (<run dir>/wandb/run-<date>-<id>/files/config.yaml)."""
    parts = path.parts[:-1]
    return any(a == "wandb" and re.match(r"(offline-)?run-", b) for a, b in zip(parts, parts[1:]))


def find_runs(root) -> list[Run]:
    """Every run directory under `root` (recursively), in natural order (job 2 before job 10).
    The config.yaml W&B keeps in `<run dir>/wandb/` is not a run."""
    root = Path(root)
    if not root.exists():
        raise ReportError(f"{root}: no such directory")
    if not root.is_dir():
        raise ReportError(f"{root}: not a directory")
    found = (p for p in root.rglob("config.yaml") if not _in_wandb_run(p.relative_to(root)))
    runs = [load_run(p.parent) for p in sorted(found, key=_natural)]
    if not runs:
        raise ReportError(f"{root}: no runs found (a run directory holds the config.yaml and "
                          "summary.json that train.py writes)")
    return runs


def _preference(key: str, order: list[str]) -> tuple:
    # Group choices (plasticity.name) first, then shallow knobs (plasticity.every) before the
    # values they interpolate into (plasticity.rules.0.every), then config order.
    choice = key.count(".") == 1 and key.endswith(".name")
    return (not choice, key.count("."), order.index(key))


def config_keys(runs: list[Run]) -> list[str]:
    """The fewest keys, by preference, that separate the configurations within each task."""
    order = list(dict.fromkeys(k for run in runs for k in run.config))
    candidates = [k for k in order if k not in IGNORED
                  and len({json.dumps(r.config.get(k, MISSING)) for r in runs}) > 1]

    def count(keys):
        return len({(r.task, *(json.dumps(r.config.get(k, MISSING)) for k in keys)) for r in runs})

    kept: list[str] = []
    for key in sorted(candidates, key=lambda k: _preference(k, order)):
        if count(kept + [key]) > count(kept):
            kept.append(key)
    return sorted(kept, key=order.index)


def _show(key: str, value) -> str:
    name = key[:-len(".name")] if key.count(".") == 1 and key.endswith(".name") else key
    return f"{name}={'null' if value is None else str(value).lower() if isinstance(value, bool) else value}"


def fill_added_keys(runs: list[Run]) -> None:
    """A key that some runs lack and all others hold with one value was added to the configs
    between runs (a new option at its default): the older runs get that value, so a sweep
    extended after an upgrade still groups by what was actually varied."""
    for key in dict.fromkeys(k for run in runs for k in run.config):
        values = {json.dumps(r.config[key]) for r in runs if key in r.config}
        if len(values) == 1 and any(key not in r.config for r in runs):
            value = next(r.config[key] for r in runs if key in r.config)
            for run in runs:
                run.config.setdefault(key, value)


def choice_keys(runs: list[Run]) -> list[str]:
    """The config-group choices (agent.name, plasticity.name; env.name is the task) that every
    run holds with one value, in config order: what names a sweep of a single configuration."""
    order = dict.fromkeys(k for run in runs for k in run.config)
    return [k for k in order if k.count(".") == 1 and k.endswith(".name") and k not in IGNORED
            and len({json.dumps(r.config.get(k, MISSING)) for r in runs}) == 1]


def run_label(values: dict, fixed: dict) -> str:
    """`values`: the run's values of the keys that separate configurations. Keys the run lacks are
    left out, unless it lacks them all ("key=<absent>"); with no such keys (one configuration),
    the label is `fixed`, the group choices (e.g. "agent=sac, plasticity=none")."""
    present = {k: v for k, v in values.items() if v != MISSING}
    shown = present or values or {k: v for k, v in fixed.items() if v != MISSING}
    return ", ".join(_show(k, v) for k, v in shown.items()) or "one configuration"


def group_runs(runs: list[Run]) -> tuple[list[Group], list[str]]:
    """Configurations in order of first appearance, each with its finished runs; and the keys.
    Every run (skipped ones too) gets its `label`: the values of the keys that differ between
    configurations (see `run_label`)."""
    readable = [run for run in runs if run.config]  # not the runs whose config.yaml is unreadable
    fill_added_keys(readable)
    keys = config_keys(readable)
    fixed = choice_keys(readable) if not keys else []
    groups: dict[tuple, Group] = {}
    for run in runs:
        values = {k: run.config.get(k, MISSING) for k in keys}
        run.label = run_label(values, {k: run.config.get(k, MISSING) for k in fixed}) \
            if run.config else "configuration unknown"
        ident = tuple(json.dumps(v) for v in values.values())
        group = groups.setdefault(ident, Group(run.label, values))
        if run.skipped is None:
            group.runs.append(run)
    return [g for g in groups.values() if g.runs], keys
