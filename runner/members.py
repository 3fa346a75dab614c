"""The `members` config section: many seeds and settings trained in one process (README "Many
seeds in one process"; the loop is runner/group.py, the vectorized update agents/members.py).

    members.seeds=[0,1,2,3,4] members.vary={plasticity.every:[20000,40000]}   -> 10 members

Members are the product of the seeds and every `vary` value. Member k's config is exactly what
`python train.py <the same overrides> seed=<s> <key>=<value> ...` composes, so a member is the run
of its seed with its settings. Members may differ only where no tensor shape changes: the seed,
anything under `plasticity` (a preset swapped too, as long as it leaves the agent alone), and the
agent's `MAY_DIFFER` keys (members with different replay ratios form cohorts, runner/group.py).
"""
from __future__ import annotations

import itertools
import json

from runner.checkpoint import flatten
from runner.validate_common import Errors, brief, is_int

MAY_DIFFER = ("lr", "tau", "gamma", "n_step", "init_temperature", "replay_ratio")  # agent keys members may vary
# agent.name values with a vectorized update (RLPD and SimBa are name sac; drq_kostrikov is drq)
AGENTS = ("sac", "drq", "drq_atari", "bbf")
# agent settings whose update has no vectorized form yet: key -> (refused when, allowed)
NOT_WITH_MEMBERS = {
    "channels_last": (lambda v: v is True, "false (vmap keeps no channels-last layout)"),
}
GROUP_CHOICES = ("plasticity",)  # config groups a member may swap (`plasticity=head_reset`)
OFF = ("members.seeds=null", "members.vary=null")  # a member's own config has no members


def wanted(cfg: dict) -> bool:
    """True when the config asks for members."""
    members = cfg.get("members") or {}
    return isinstance(members, dict) and members.get("seeds") is not None


def validate_members(e: Errors, cfg: dict) -> None:
    """Report a malformed `members` section (before anything is built)."""
    members = cfg.get("members")
    if members is None:
        return
    if not isinstance(members, dict):
        return e.bad("members", members, "a mapping {seeds: [...], vary: {...}}")
    seeds, vary = members.get("seeds"), members.get("vary") or {}
    if seeds is None:
        if vary:
            e.add("members.vary", "members.vary is set but members.seeds is null: give the seeds, "
                  "e.g. members.seeds=[0,1,2]")
        return
    if not (isinstance(seeds, list) and seeds and all(is_int(s) for s in seeds)
            and len(set(seeds)) == len(seeds)):
        e.bad("members.seeds", seeds, "a non-empty list of distinct integers")
    if not isinstance(vary, dict):
        return e.bad("members.vary", vary, "a mapping {dotted key: [values]}")
    for key, values in vary.items():
        if not isinstance(values, list) or not values:
            e.bad(f"members.vary.{key}", values, "a non-empty list of values")
        elif not _may_vary(key):
            e.add(f"members.vary.{key}", f"members.vary.{key}: {key} may not differ between members; "
                  f"allowed: plasticity, plasticity.*, "
                  + ", ".join(f"agent.{k}" for k in MAY_DIFFER))
    if not isinstance(members.get("async_envs", False), bool):
        e.bad("members.async_envs", members.get("async_envs"), "true or false")
    elif members.get("async_envs") and (cfg.get("env") or {}).get("sequence"):
        e.add("members.async_envs", "members.async_envs = true with env.sequence (continual RL): a task "
              "switch changes the env in this process; allowed with a task sequence: false")
    agent = cfg.get("agent") or {}
    name = agent.get("name")
    if name not in AGENTS:
        e.add("members.seeds", f"members.seeds: agent.name = {brief(name)} has no vectorized update; "
              f"members support: {', '.join(AGENTS)} (agent=sac, rlpd, simba, drq, drq_kostrikov, drq_atari, bbf)")
    for key, (refused, allowed) in NOT_WITH_MEMBERS.items():
        if key in agent and refused(agent[key]):
            e.add(f"agent.{key}", f"agent.{key} = {brief(agent[key])} is not supported with members; "
                  f"allowed with members: {allowed}")


def _may_vary(key: str) -> bool:
    return key in GROUP_CHOICES or key.startswith("plasticity.") or \
        key in tuple(f"agent.{k}" for k in MAY_DIFFER)


def _value_text(value) -> str:
    """A value as Hydra's override grammar reads it."""
    if isinstance(value, (list, dict)):
        return json.dumps(value).replace('"', "")
    if value is None:
        return "null"
    return str(value).lower() if isinstance(value, bool) else str(value)


def member_specs(members: dict) -> list[tuple[str, list[str]]]:
    """[(member name, its overrides)], seeds outermost: `3_seed-1_plasticity.every-40000`."""
    vary = members.get("vary") or {}
    keys = list(vary)
    out = []
    for seed, values in itertools.product(members["seeds"], itertools.product(*vary.values())):
        name = f"{len(out)}_seed-{seed}" + "".join(f"_{k}-{_value_text(v)}" for k, v in zip(keys, values))
        overrides = [f"seed={seed}"] + [
            f"{k}={_value_text(v)}" if k in GROUP_CHOICES else f"++{k}={_value_text(v)}"
            for k, v in zip(keys, values)]
        out.append((name.replace("/", "-"), overrides))
    return out


def member_configs(compose, overrides: list[str], members: dict) -> list[tuple[str, dict]]:
    """[(name, resolved config)] of every member: `compose(overrides)` is the resolved config
    `python train.py <overrides>` runs with. Refused (ValueError naming the key) if members
    differ where they may not (e.g. a preset that changes the agent's activation)."""
    base = [o for o in overrides if not o.lstrip("+~").startswith("members")]
    out = [(name, compose([*base, *extra, *OFF])) for name, extra in member_specs(members)]
    first_name, first = out[0]
    for name, cfg in out[1:]:
        for key in _differences(first, cfg):
            raise MembersError(f"members: {key} differs between members ({first_name}: "
                             f"{brief(flatten(first).get(key))}, {name}: {brief(flatten(cfg).get(key))}); members "
                             "may differ in seed, plasticity.* and "
                             + ", ".join(f"agent.{k}" for k in MAY_DIFFER))
    return out


def _differences(a: dict, b: dict) -> list[str]:
    fa, fb = flatten(a), flatten(b)
    allowed = {"seed"} | {f"agent.{k}" for k in MAY_DIFFER}
    return [k for k in sorted(set(fa) | set(fb))
            if fa.get(k) != fb.get(k) and k not in allowed and not k.startswith("plasticity.")]


class MembersError(ValueError):
    """Members that may not be trained together, or a group directory that cannot be resumed."""
