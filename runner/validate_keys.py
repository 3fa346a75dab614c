"""Checks that need no knowledge of a key's meaning: unknown keys (a typo, or a key added with
`+` that nothing reads), values of another type than the key's default, and values that can never
be finite. The allowed keys and their defaults come from the shipped configs (configs/train.yaml,
every env file) and from each agent's constructor defaults."""
from __future__ import annotations

import math
from functools import lru_cache
from pathlib import Path

from omegaconf import OmegaConf

from runner.validate_common import Errors, brief, is_bool, is_int, is_num, suggest

CONFIG_DIR = Path(__file__).resolve().parents[1] / "configs"
GROUPS = ("agent", "env", "plasticity")  # config groups; their keys come from the chosen file
_KINDS = {bool: (is_bool, "true or false"), int: (is_int, "an integer"), float: (is_num, "a number"),
          str: (lambda v: isinstance(v, str), "a string"),
          list: (lambda v: isinstance(v, list), "a list"), dict: (lambda v: isinstance(v, dict), "a mapping")}


@lru_cache(maxsize=None)
def raw_yaml(path: Path) -> dict:
    """A config file as plain data, interpolations left unresolved."""
    data = OmegaConf.to_container(OmegaConf.load(path), resolve=False)
    return data if isinstance(data, dict) else {}


def reference(value):
    """A default that fixes the type of its key: None for null and for interpolations."""
    if isinstance(value, str) and "${" in value:
        return None
    return list(value) if isinstance(value, tuple) else value


@lru_cache(maxsize=1)
def base_defaults() -> dict:
    """{section: {key: default}} of configs/train.yaml and the env files (global packages that
    set env.* and train.*), with '' for the top-level keys. env.* defaults differ per file and
    carry no type here (each has its own check)."""
    train = {k: v for k, v in raw_yaml(CONFIG_DIR / "train.yaml").items() if k not in ("defaults", "hydra")}
    sections = {"": {k: reference(v) for k, v in train.items() if not isinstance(v, dict)}}
    for name, values in train.items():
        if isinstance(values, dict):
            sections[name] = {k: reference(v) for k, v in values.items()}
    sections.setdefault("env", {})
    for path in sorted((CONFIG_DIR / "env").rglob("*.yaml")):
        for name, values in raw_yaml(path).items():
            if not isinstance(values, dict):
                continue
            target = sections.setdefault(name, {})
            for key, value in values.items():
                target.setdefault(key, None if name == "env" else reference(value))
    return sections


def allowed_top_level() -> set[str]:
    return {k for k in base_defaults() if k} | set(base_defaults()[""]) | set(GROUPS)


def check_unknown(e: Errors, section: str, values: dict, allowed, context: str = "") -> None:
    """Report the keys of `values` (the dotted `section`, '' at the top level) not in `allowed`,
    with the closest allowed key as a hint; `context` follows the list ("for agent 'sac'")."""
    unknown = sorted((k for k in values if k not in allowed), key=str)
    if not unknown:
        return
    hints = [(k, suggest(k, allowed)) for k in unknown]
    hints = [(k, s) for k, s in hints if s]
    hint = ""
    if len(hints) == 1 and len(unknown) == 1:
        hint = f" (did you mean '{hints[0][1]}'?)"
    elif hints:
        hint = " (did you mean " + ", ".join(f"'{s}' for '{k}'" for k, s in hints) + "?)"
    e.add(f"{section}.<unknown>", f"{section or 'top level'}: unknown keys {unknown}{context}{hint}; "
                                  f"allowed: {sorted(allowed, key=str)}")


def type_rule(default):
    """(test, what is allowed) for a value of the default's type; None if the default fixes none."""
    ref = reference(default)
    return None if ref is None else _KINDS.get(type(ref))


def check_types(e: Errors, section: str, values: dict, defaults: dict) -> None:
    """Each key no specific rule checked must have its default's type (bool: true or false)."""
    for key, value in values.items():
        dotted = f"{section}.{key}" if section else str(key)
        rule = type_rule(defaults.get(key))
        if dotted in e.checked or dotted in e or rule is None:
            continue
        ok, allowed = rule
        if not ok(value):
            e.bad(dotted, value, f"{allowed} (the default is {brief(reference(defaults[key]))})")


def check_finite(e: Errors, node, key: str = "") -> None:
    """Report every inf or nan anywhere in the config: no key can take one."""
    if isinstance(node, float) and not math.isfinite(node):
        e.add(key, f"{key} = {node!r}: must be a finite number (inf and nan are never valid "
                   "config values)")
    elif isinstance(node, dict):
        for k, v in node.items():
            check_finite(e, v, f"{key}.{k}" if key else str(k))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            check_finite(e, v, f"{key}[{i}]")
