"""Config-group choices on the command line (`agent=`, `env=`, `plasticity=`) checked before
Hydra composes: Hydra lists the options of a flat group (`plasticity=nope`) but not of a nested
one, so `env=dmc/cheetah` got "Could not find 'env/dmc/cheetah'" and nothing else. Here a missing
choice gets the close matches and the options of its folder."""
from __future__ import annotations

import difflib
from pathlib import Path

CONFIG_DIR = Path(__file__).resolve().parents[1] / "configs"
GROUPS = ("agent", "env", "plasticity")


def group_options(group: str, root: Path = CONFIG_DIR) -> list[str]:
    """Every choice of `group`: its yaml files, nested folders as `dmc/cheetah_run`."""
    base = root / group
    return sorted(str(p.relative_to(base).with_suffix("")) for p in base.rglob("*.yaml"))


def _choices(value: str) -> list[str] | None:
    """The choices of a plain value or a comma-separated sweep; None for Hydra's other sweep
    forms (glob(...), choice(...), ...), which Hydra checks itself."""
    if any(c in value for c in "()[]{}$\"'"):
        return None
    return [v.strip() for v in value.split(",")]


def check_group_choices(overrides: list[str], root: Path = CONFIG_DIR) -> str | None:
    """A message for the first group choice that names no config file, or None."""
    for override in overrides:
        key, eq, value = override.lstrip("+~").partition("=")
        if not eq or key not in GROUPS or override.startswith("~"):
            continue
        options = group_options(key, root)
        for choice in _choices(value) or []:
            if choice in options:
                continue
            close = difflib.get_close_matches(choice, options, n=3, cutoff=0.6)
            folder = choice.rsplit("/", 1)[0] + "/" if "/" in choice else ""
            shown = [o for o in options if folder and o.startswith(folder)] or options
            hint = f" Did you mean {' or '.join(close)}?" if close else ""
            return (f"{key}={choice}: no such {key} config (configs/{key}/{choice}.yaml).{hint} "
                    f"Options{f' under {folder}' if folder and shown != options else ''}: "
                    f"{', '.join(shown)}")
    return None
