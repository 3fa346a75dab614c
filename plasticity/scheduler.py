"""The reset scheduler: rules (intervention, group, trigger), applied to any agent.

Triggers count gradient updates or env steps (the unit is explicit) and fire at
start, start + every, ... (start defaults to every), never after `stop_after` (in the same
unit), at most `max_count` times, and with a `horizon` (same unit) only where a whole interval
still fits before it: count + every < horizon (BBF's `no_resets_after`, bigger_better_faster
spr_agent.py `reset_weights`: at 20k env steps per interval and a 100k budget, resets at 20k, 40k
and 60k, none at 80k). `no_reset_within` (a share of the interval) skips a firing that would
leave less than that share of an interval before the end of the run's budget in the rule's unit
(the scheduler's `budgets`): with 1, a 200k-step reset in a 1M-step run fires at 200k ... 800k
but not at 1M, right before the final evaluation. The unit `switch` fires once, when the online phase
begins (after offline pre-training, or at the start of a run): warm start vs reset; the unit
`task_switch` counts the task changes of a continual run (env.sequence). The trainer calls `after_update` after every gradient
update and `after_env_step` after each env step's updates, so the firing steps are the same
at any replay ratio and, with the scheduler's state in the checkpoint, across a resume.
"""
from __future__ import annotations

from dataclasses import dataclass

from plasticity.groups import resolve_group
from plasticity.interventions import Intervention
from plasticity.registry import INTERVENTIONS
from plasticity.regen import REGULARIZERS

UNITS = ("updates", "env_steps", "switch", "task_switch")


@dataclass(frozen=True)
class Trigger:
    unit: str
    every: int
    start: int | None = None
    stop_after: int | None = None
    max_count: int | None = None
    stop_after_env_steps: int | None = None  # no firing after this many env steps, any unit
    horizon: int | None = None  # fire only if count + every < horizon (a whole interval follows)
    no_reset_within: float | None = None  # skip if budget - count < no_reset_within * every

    def __post_init__(self):
        if self.unit not in UNITS:
            raise ValueError(f"trigger unit '{self.unit}', allowed: {list(UNITS)}")
        if not isinstance(self.every, int) or self.every < 1:
            raise ValueError(f"trigger every={self.every!r}: must be an integer >= 1")

    def fires(self, count: int, fired: int, env_steps: int = 0, budget: int | None = None) -> bool:
        """Whether to fire at `count` (in `unit`); `budget`: the run's total in `unit`."""
        if self.unit == "switch":
            return fired == 0
        start = self.every if self.start is None else self.start
        return (count >= start and (count - start) % self.every == 0
                and (self.stop_after is None or count <= self.stop_after)
                and (self.stop_after_env_steps is None or env_steps <= self.stop_after_env_steps)
                and (self.horizon is None or count + self.every < self.horizon)
                and (not self.no_reset_within or budget is None
                     or budget - count >= self.no_reset_within * self.every)
                and (self.max_count is None or fired < self.max_count))


class Rule:
    """`restart_schedules`: whether a firing restarts the agent's training schedules (BBF's n-step
    and gamma annealing; agent `on_reset`): true for resets and S&P, false for H&T copies."""

    def __init__(self, name: str, intervention: Intervention, patterns, trigger: Trigger,
                 restart_schedules: bool = True):
        self.name, self.intervention, self.patterns, self.trigger = name, intervention, patterns, trigger
        self.restart_schedules = restart_schedules
        self.fired = 0


class ResetScheduler:
    """Applies rules to `agent` (an `agents.base.Agent`); records every event. The agent's
    `on_reset(event)` is called with the event of each firing (BBF restarts its annealing there
    when the event's `restart_schedules` is true); it never contains reset logic of its own.
    `regularizers` (e.g. Regen) act on every update through optimizer hooks; they are bound
    to their groups here so that their state travels with the scheduler's in checkpoints.
    `budgets`: the run's total env steps and updates ({"env_steps": T, "updates": U}) for the
    rules' `no_reset_within`; without them that option does nothing."""

    def __init__(self, agent, rules: list[Rule], regularizers: list[tuple] = (),
                 budgets: dict | None = None):
        self.agent, self.rules, self.events = agent, rules, []
        self.budgets = dict(budgets or {})
        for rule in rules:
            rule.intervention.bind(agent, resolve_group(agent, rule.patterns, rule.name))
        self.regularizers = [reg for reg, _ in regularizers]
        for reg, patterns in regularizers:
            reg.bind(agent, resolve_group(agent, patterns))

    def set_batch_source(self, source) -> None:
        """`source(batch_size)` -> a replay batch (or None while the replay is empty), for the
        interventions that read states when they fire (ReDo)."""
        for rule in self.rules:
            if rule.intervention.needs_batch:
                rule.intervention.batch_source = source

    def after_update(self, updates: int, env_steps: int) -> list[dict]:
        for rule in self.rules:
            rule.intervention.on_update()
        return self._fire("updates", updates, updates, env_steps)

    def after_env_step(self, env_steps: int, updates: int) -> list[dict]:
        return self._fire("env_steps", env_steps, updates, env_steps)

    def at_switch(self, updates: int, env_steps: int) -> list[dict]:
        """The offline -> online switch: rules with unit `switch` fire (once)."""
        return self._fire("switch", 0, updates, env_steps)

    def at_task_switch(self, switches: int, updates: int, env_steps: int) -> list[dict]:
        """The task of a continual run changed (`switches`-th time): rules with unit
        `task_switch` fire at switches every, 2 every, ... (runner/continual.py)."""
        return self._fire("task_switch", switches, updates, env_steps)

    def _fire(self, unit, count, updates, env_steps) -> list[dict]:
        fired = []
        for rule in self.rules:
            if rule.trigger.unit == unit and rule.trigger.fires(count, rule.fired, env_steps,
                                                                self.budgets.get(unit)):
                rule.intervention.apply()
                rule.fired += 1
                event = {"rule": rule.name, "intervention": type(rule.intervention).__name__,
                         "group": list(rule.patterns), "updates": updates, "env_steps": env_steps,
                         "restart_schedules": rule.restart_schedules, **rule.intervention.event_info()}
                self.agent.on_reset(event)
                self.events.append(event)
                fired.append(event)
        return fired

    def state_dict(self) -> dict:
        return {"fired": [r.fired for r in self.rules], "events": list(self.events),
                "interventions": [r.intervention.state_dict() for r in self.rules],
                "regularizers": [r.state_dict() for r in self.regularizers]}

    def load_state_dict(self, state: dict) -> None:
        if len(state["fired"]) != len(self.rules):
            raise ValueError(f"scheduler state has {len(state['fired'])} rules, this config {len(self.rules)}")
        for rule, fired, inner in zip(self.rules, state["fired"], state["interventions"]):
            rule.fired = fired
            rule.intervention.load_state_dict(inner)
        for reg, inner in zip(self.regularizers, state["regularizers"]):
            reg.load_state_dict(inner)
        self.events = list(state["events"])


def build_scheduler(agent, rules_cfg: list[dict], regularizers_cfg: list[dict] = (),
                    budgets: dict | None = None) -> ResetScheduler:
    """Rules from config dicts: {name?, intervention, groups, unit, every, start?, stop_after?,
    max_count?, stop_after_env_steps?, horizon?, no_reset_within?, and the intervention's own
    options (optimizer, target, shrink, ...)}; regularizers from {kind, groups, and the
    regularizer's options (coef)}; `budgets` as ResetScheduler's."""
    rules = []
    for i, spec in enumerate(rules_cfg or []):
        spec = dict(spec)
        kind = spec.pop("intervention", None)
        if kind not in INTERVENTIONS:
            raise ValueError(f"plasticity.rules[{i}].intervention = {kind!r}, allowed: {sorted(INTERVENTIONS)}")
        trigger = Trigger(spec.pop("unit", None), spec.pop("every", None), spec.pop("start", None),
                          spec.pop("stop_after", None), spec.pop("max_count", None),
                          spec.pop("stop_after_env_steps", None), spec.pop("horizon", None),
                          spec.pop("no_reset_within", None))
        patterns = spec.pop("groups")
        name = spec.pop("name", None) or f"{kind}:{'+'.join(patterns)}"
        restart = spec.pop("restart_schedules", kind != "hare_tortoise")
        if not isinstance(restart, bool):
            raise ValueError(f"plasticity.rules[{i}].restart_schedules = {restart!r}: must be true or false")
        rules.append(Rule(name, INTERVENTIONS[kind](**spec), patterns, trigger, restart))
    regularizers = []
    for i, spec in enumerate(regularizers_cfg or []):
        spec = dict(spec)
        kind = spec.pop("kind", None)
        if kind not in REGULARIZERS:
            raise ValueError(f"plasticity.regularizers[{i}].kind = {kind!r}, allowed: {sorted(REGULARIZERS)}")
        patterns = spec.pop("groups")
        regularizers.append((REGULARIZERS[kind](**spec), patterns))
    return ResetScheduler(agent, rules, regularizers, budgets)
