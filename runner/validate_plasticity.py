"""`plasticity.*`: the preset's own keys, and every rule and regularizer with the parameters its
intervention (plasticity/interventions.py) or regularizer (plasticity/regen.py) takes, checked
before an agent or a scheduler is built."""
from __future__ import annotations

import inspect
from functools import lru_cache

from plasticity.interventions import OPTIMIZER_OPTIONS, SOURCE_OPTIONS, TARGET_OPTIONS
from plasticity.registry import INTERVENTIONS
from plasticity.regen import REGULARIZERS
from plasticity.scheduler import UNITS
from runner.validate_common import Errors, brief, int_ge, is_bool, is_int, num_in, passes
from runner.validate_keys import CONFIG_DIR, check_types, check_unknown, raw_yaml, type_rule

SCHEMA_KEYS = ("name", "rules", "regularizers")  # what the trainer reads; a preset's other keys
# (every, shrink, ...) are the values its rules interpolate
TRIGGER_KEYS = ("unit", "every", "start", "stop_after", "max_count", "stop_after_env_steps", "horizon")
RULE_KEYS = ("intervention", "name", "groups", "restart_schedules", "no_reset_within", *TRIGGER_KEYS)
# keys `plasticity=none` accepts (and ignores) so that one sweep sets them for every preset, the
# no-intervention baseline included: `-m plasticity=none,head_reset ++plasticity.every=200`
SWEEP_KEYS = ("unit", "every", "stop_after", "groups", "no_reset_within")
# the constructor parameters of interventions and regularizers: (test, what is allowed)
PARAMETERS = {
    "optimizer": (lambda v: v in OPTIMIZER_OPTIONS,
                  f"one of {list(OPTIMIZER_OPTIONS)} (reset: zero the touched parameters' optimizer state)"),
    "target": (lambda v: v in TARGET_OPTIONS, f"one of {list(TARGET_OPTIONS)}"),
    "shrink": (num_in(0, 1), "a number in [0, 1] (theta <- shrink * theta + perturb * phi)"),
    "perturb": (num_in(0, 1), "a number in [0, 1] (theta <- shrink * theta + perturb * phi)"),
    "source": (lambda v: v in SOURCE_OPTIONS, f"one of {list(SOURCE_OPTIONS)} (phi: a fresh init or theta_0)"),
    "tortoise_ema": (num_in(0, 1), "a number in [0, 1] (the tortoise's EMA weight on its old value)"),
    "coef": (num_in(0, float("inf")), "a number >= 0"),
    "tau": (num_in(0, 1), "a number in [0, 1] (ReDo: a unit is dormant when its normalised score <= tau)"),
    "batch_size": (lambda v: isinstance(v, int) and not isinstance(v, bool) and v >= 1,
                   "an integer >= 1 (ReDo: replay states scored per firing)"),
}


def parameters(cls) -> dict:
    """{name: default or inspect.Parameter.empty} of `cls`'s constructor, its bases' included
    where it passes **options on."""
    found = {}
    for klass in cls.__mro__:
        init = klass.__dict__.get("__init__")
        if init is None:
            continue
        params = list(inspect.signature(init).parameters.values())[1:]
        for p in params:
            if p.kind not in (p.VAR_KEYWORD, p.VAR_POSITIONAL):
                found.setdefault(p.name, p.default)
        if not any(p.kind == p.VAR_KEYWORD for p in params):
            break
    return found


@lru_cache(maxsize=None)
def preset_defaults(name) -> dict | None:
    """The keys of configs/plasticity/<name>.yaml (its `plasticity:` part for a global package)."""
    path = CONFIG_DIR / "plasticity" / f"{name}.yaml"
    if not isinstance(name, str) or not path.is_file():
        return None
    data = raw_yaml(path)
    return data["plasticity"] if isinstance(data.get("plasticity"), dict) else data


def _all_preset_keys() -> set[str]:
    keys = set()
    for path in (CONFIG_DIR / "plasticity").glob("*.yaml"):
        keys |= set(preset_defaults(path.stem) or {})
    return keys


def validate_plasticity(e: Errors, plasticity) -> None:
    if not isinstance(plasticity, dict) or not isinstance(plasticity.get("rules"), list):
        e.add("plasticity.rules", "plasticity.rules: missing (expected a list of rules; plasticity=none has [])")
        return
    defaults = preset_defaults(plasticity.get("name"))
    allowed = set(SCHEMA_KEYS) | (set(defaults) if defaults is not None else _all_preset_keys())
    if plasticity.get("name") == "none":
        allowed |= set(SWEEP_KEYS)
    check_unknown(e, "plasticity", plasticity, allowed,
                  f" for preset '{plasticity['name']}'" if defaults is not None else "")
    e.checked.update({"plasticity.rules", "plasticity.regularizers"})
    if not isinstance(plasticity.get("name"), str):
        e.bad("plasticity.name", plasticity.get("name"), "a string (the preset's name)")
    for i, rule in enumerate(plasticity["rules"]):
        _validate_rule(e, f"plasticity.rules[{i}]", rule, plasticity)
    regularizers = plasticity.get("regularizers", [])
    if not isinstance(regularizers, list):
        e.bad("plasticity.regularizers", regularizers, "a list (or absent)")
    else:
        for i, reg in enumerate(regularizers):
            _validate_regularizer(e, f"plasticity.regularizers[{i}]", reg, plasticity)
    check_types(e, "plasticity", plasticity, defaults or {})


def _bad(e: Errors, key: str, name: str, value, allowed: str, plasticity: dict) -> None:
    """Report a rule's value; where it came from the preset's key of that name, say so."""
    source = plasticity.get(name)
    origin = (f" (its value comes from plasticity.{name})"
              if name not in SCHEMA_KEYS and source is not None and source == value else "")
    e.add(key, f"{key} = {brief(value)}: must be {allowed}{origin}")


def _validate_rule(e: Errors, key: str, rule, plasticity: dict) -> None:
    if not isinstance(rule, dict):
        e.bad(key, rule, "a mapping (intervention, groups, unit, every, ...)")
        return
    kind = rule.get("intervention")
    if kind not in INTERVENTIONS:
        e.bad(f"{key}.intervention", kind, f"one of {sorted(INTERVENTIONS)}")
    if rule.get("unit") not in UNITS:
        _bad(e, f"{key}.unit", "unit", rule.get("unit"), f"one of {list(UNITS)}", plasticity)
    if not int_ge(1)(rule.get("every")):
        _bad(e, f"{key}.every", "every", rule.get("every"), "an integer >= 1", plasticity)
    _check_groups(e, key, rule.get("groups"))
    for opt in TRIGGER_KEYS[2:]:
        v = rule.get(opt)
        if v is not None and not (is_int(v) and v >= 0):
            _bad(e, f"{key}.{opt}", opt, v, "null or an integer >= 0", plasticity)
    within = rule.get("no_reset_within")
    if within is not None and not num_in(0, float("inf"))(within):
        _bad(e, f"{key}.no_reset_within", "no_reset_within", within,
             "null or a number >= 0 (the share of an interval that must remain; 0: off)", plasticity)
    if not (rule.get("name") is None or isinstance(rule.get("name"), str)):
        e.bad(f"{key}.name", rule["name"], "null or a string")
    if "restart_schedules" in rule and not is_bool(rule["restart_schedules"]):
        e.bad(f"{key}.restart_schedules", rule["restart_schedules"], "true or false")
    if kind in INTERVENTIONS:
        params = parameters(INTERVENTIONS[kind])
        check_unknown(e, key, rule, set(RULE_KEYS) | set(params), f" for intervention '{kind}'")
        _check_parameters(e, key, rule, params, plasticity)


def _validate_regularizer(e: Errors, key: str, reg, plasticity: dict) -> None:
    if not isinstance(reg, dict):
        e.bad(key, reg, "a mapping (kind, groups, coef)")
        return
    kind = reg.get("kind")
    if kind not in REGULARIZERS:
        e.bad(f"{key}.kind", kind, f"one of {sorted(REGULARIZERS)}")
    _check_groups(e, key, reg.get("groups"))
    if kind in REGULARIZERS:
        params = parameters(REGULARIZERS[kind])
        check_unknown(e, key, reg, {"kind", "groups"} | set(params), f" for regularizer '{kind}'")
        _check_parameters(e, key, reg, params, plasticity)


def _check_parameters(e: Errors, key: str, spec: dict, params: dict, plasticity: dict) -> None:
    for name, default in params.items():
        if name not in spec:
            if default is inspect.Parameter.empty:
                e.add(f"{key}.{name}", f"{key}.{name}: missing (expected "
                                       f"{PARAMETERS.get(name, (None, 'a value'))[1]})")
            continue
        rule = PARAMETERS.get(name) or type_rule(None if default is inspect.Parameter.empty else default)
        if rule is None:  # neither a rule here nor a typed default: anything goes
            continue
        ok, allowed = rule
        if not passes(ok, spec[name]):
            _bad(e, f"{key}.{name}", name, spec[name], allowed, plasticity)


def _check_groups(e: Errors, key: str, groups) -> None:
    if not (isinstance(groups, list) and groups and all(isinstance(g, str) for g in groups)):
        e.bad(f"{key}.groups", groups, "a non-empty list of parameter-name patterns")
