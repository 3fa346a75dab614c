"""`env.sequence` (continual RL), the rules that fire at its switches and the trainability
probe, checked before anything is built (README "Continual RL")."""
from __future__ import annotations

from runner.validate_common import Errors, brief, finite, int_ge, is_bool

SEQUENCE_KEYS = ("every", "tasks", "perturb", "replay", "eval_all")


def validate_continual(e: Errors, cfg: dict) -> None:
    from envs.sequence import PERTURBATIONS, PHYSICS
    from runner.continual import REPLAY_AT_SWITCH

    env, diag = cfg["env"], cfg.get("diagnostics", {})
    seq = env.get("sequence")
    e.checked.add("env.sequence")
    _check_probe(e, cfg, diag)
    rules = (cfg.get("plasticity") or {}).get("rules") or []
    at_switches = [i for i, r in enumerate(rules) if isinstance(r, dict) and r.get("unit") == "task_switch"]
    if seq is None:
        for i in at_switches:
            e.add(f"plasticity.rules[{i}].unit", f"plasticity.rules[{i}].unit = 'task_switch': needs a "
                                                  "continual run (env.sequence), and env.sequence is null")
        if diag.get("probe_steps"):
            e.add("diagnostics.probe_steps", f"diagnostics.probe_steps = {diag['probe_steps']}: the probe runs "
                                             "at task switches and needs env.sequence")
        return
    if not isinstance(seq, dict):
        e.bad("env.sequence", seq, "null or a mapping {every, tasks, perturb, replay, eval_all}")
        return
    unknown = sorted(set(seq) - set(SEQUENCE_KEYS), key=str)
    if unknown:
        e.add("env.sequence.<unknown>", f"env.sequence: unknown keys {unknown}; allowed: {list(SEQUENCE_KEYS)}")
    if not int_ge(1)(seq.get("every")):
        e.bad("env.sequence.every", seq.get("every"), "an integer >= 1 (env steps per task)")
    if not int_ge(2)(seq.get("tasks")):
        e.bad("env.sequence.tasks", seq.get("tasks"), "an integer >= 2 (tasks in the sequence, cycled)")
    perturb = seq.get("perturb")
    if not (isinstance(perturb, list) and perturb and all(p in PERTURBATIONS for p in perturb)):
        e.bad("env.sequence.perturb", perturb, f"a non-empty list of {list(PERTURBATIONS)}")
        perturb = []
    if seq.get("replay", "keep") not in REPLAY_AT_SWITCH:
        e.bad("env.sequence.replay", seq.get("replay"), f"one of {list(REPLAY_AT_SWITCH)}")
    if not is_bool(seq.get("eval_all", False)):
        e.bad("env.sequence.eval_all", seq.get("eval_all"), "true or false (evaluate every task)")
    _check_fit(e, cfg, perturb, PHYSICS)


def _check_fit(e: Errors, cfg: dict, perturb: list, physics: dict) -> None:
    env, agent = cfg["env"], cfg.get("agent", {})
    env_id = env.get("id") if isinstance(env.get("id"), str) else ""
    pixels = env.get("pixels") is True or env_id.startswith("atari:")
    if "permute_obs" in perturb and pixels:
        e.add("env.sequence.perturb", "env.sequence.perturb: permute_obs needs vector observations, "
                                      f"and {env_id} gives pixels")
    if {"permute_actions", "negate_actions"} & set(perturb) and env_id.startswith("atari:"):
        e.add("env.sequence.perturb", "env.sequence.perturb: action perturbations need Box actions; "
                                      "Atari's are discrete")
    if set(physics) & set(perturb) and not env_id.startswith("dmc:"):
        e.add("env.sequence.perturb", f"env.sequence.perturb: {sorted(set(physics) & set(perturb))} "
                                      f"change a DMC physics model; {brief(env_id)} is not a dmc: id")
    if env["sequence"].get("replay") == "clear" and (pixels or agent.get("prioritized")):
        e.add("env.sequence.replay", "env.sequence.replay = 'clear': supported for vector "
                                     "observations with uniform replay only")


def _check_probe(e: Errors, cfg: dict, diag: dict) -> None:
    steps = diag.get("probe_steps", 0)
    e.checked.update({"diagnostics.probe_steps", "diagnostics.probe_lr", "diagnostics.probe_module"})
    if not int_ge(0)(steps):
        e.bad("diagnostics.probe_steps", steps, "an integer >= 0 (0: no probe)")
    lr = diag.get("probe_lr", 1e-3)
    if not (finite(lr) and lr > 0):
        e.bad("diagnostics.probe_lr", lr, "a finite number > 0")
    module = diag.get("probe_module", "critic")
    if not (isinstance(module, str) and module):
        e.bad("diagnostics.probe_module", module, "the name of an agent module (e.g. critic)")
