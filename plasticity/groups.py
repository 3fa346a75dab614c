"""Named parameter groups: fnmatch patterns over an agent's `named_parameters()`.

A pattern matches a parameter if it matches its full name (`critic.*`) or names a module that
owns it (`critic.head` matches `critic.head.weight`). A pattern ending in `?` is optional: it may
match nothing (presets name `actor.head?` so that they also apply to agents without an actor).
A pattern starting with `!` removes what it matches from the group (`["*", "!encoder"]`: every
online parameter but the encoder's); it may match nothing. Target networks are never matched
directly; each online parameter's counterpart comes from `agent.target_networks`
({"critic": "critic_target"}).

Aliases (`agent.group_aliases`, {"encoder": "critic.encoder"} on BBF, whose whole network is
`critic`) rename a pattern's leading module before matching, so a preset naming `encoder` means
the conv encoder on every pixel agent.
"""
from __future__ import annotations

import fnmatch
from dataclasses import dataclass, field

from torch import nn

from agents.base import Agent


class GroupError(ValueError):
    """A pattern matched nothing, or a group cannot be resolved on this agent."""


def _matches(name: str, pattern: str) -> bool:
    return fnmatch.fnmatchcase(name, pattern) or name.startswith(pattern + ".")


@dataclass
class ParameterGroup:
    """The resolved parameters (and buffers) of one group, with what goes with them."""
    name: str
    patterns: tuple[str, ...]
    params: dict[str, nn.Parameter]  # online, by full name
    buffers: dict[str, object] = field(default_factory=dict)  # online buffers (e.g. norm stats)
    target_params: dict[str, nn.Parameter] = field(default_factory=dict)  # online name -> target param
    optimizers: list = field(default_factory=list)  # optimizers holding any of `params`
    excluded: tuple[str, ...] = ()  # the `!` patterns, aliases expanded

    def covers(self, name: str) -> bool:
        """Whether a parameter, buffer or module name falls in this group."""
        return (any(_matches(name, p) for p in self.patterns)
                and not any(_matches(name, p) for p in self.excluded))


def _contract(module: nn.Module) -> tuple[dict, dict, dict]:
    """(target_networks, group_aliases, optimizers) of an `agents.base.Agent`; a plain module
    (diagnostics of any network) has none of them."""
    if isinstance(module, Agent):
        return dict(module.target_networks), dict(module.group_aliases), dict(module.optimizers)
    return {}, {}, {}


def _target_prefixes(agent) -> dict[str, str]:
    return _contract(agent)[0]


def _is_target(name: str, targets: dict[str, str]) -> bool:
    return any(name == t or name.startswith(t + ".") for t in targets.values())


def target_name(name: str, targets: dict[str, str]) -> str | None:
    for online, target in targets.items():
        if name.startswith(online + "."):
            return target + name[len(online):]
    return None


def expand_alias(pattern: str, aliases: dict[str, str]) -> str:
    """`pattern` with a leading alias (`encoder`, `encoder.*`) replaced by what it stands for."""
    for alias, full in aliases.items():
        if pattern == alias or pattern.startswith(alias + "."):
            return full + pattern[len(alias):]
    return pattern


def resolve_group(agent: nn.Module, patterns, name: str | None = None) -> ParameterGroup:
    """Resolve `patterns` on `agent`; every pattern not ending in `?` (nor starting with `!`)
    must match a parameter."""
    patterns = (patterns,) if isinstance(patterns, str) else tuple(patterns)
    label = name or "+".join(p.rstrip("?") for p in patterns)
    aliases = _contract(agent)[1]
    excluded = tuple(expand_alias(p[1:].rstrip("?"), aliases) for p in patterns if p.startswith("!"))
    patterns = tuple(p for p in patterns if not p.startswith("!"))
    targets = _target_prefixes(agent)
    all_params = dict(agent.named_parameters())
    online = {n: p for n, p in all_params.items() if not _is_target(n, targets)}
    matched: dict[str, nn.Parameter] = {}
    optional = {expand_alias(p.rstrip("?"), aliases) for p in patterns if p.endswith("?")}
    patterns = tuple(expand_alias(p.rstrip("?"), aliases) for p in patterns)
    if not patterns:
        raise GroupError(f"group {label!r} has only `!` patterns; name what it includes first")
    for pattern in patterns:
        hits = {n: p for n, p in online.items() if _matches(n, pattern)}
        if not hits and pattern not in optional:
            raise GroupError(f"parameter pattern '{pattern}' matches nothing; parameters of "
                             f"{type(agent).__name__}: {', '.join(online)}")
        matched.update(hits)
    matched = {n: p for n, p in matched.items() if not any(_matches(n, x) for x in excluded)}
    if not matched:
        raise GroupError(f"group {label!r} matches no parameter of {type(agent).__name__} "
                         f"(optional patterns {sorted(optional)}, excluded {list(excluded)}); "
                         f"its parameters: {', '.join(online)}")
    buffers = {n: b for n, b in agent.named_buffers()
               if not _is_target(n, targets) and any(_matches(n, p) for p in patterns)
               and not any(_matches(n, x) for x in excluded)}
    target_params = {}
    for n in matched:
        t = target_name(n, targets)
        if t is not None and t in all_params:
            target_params[n] = all_params[t]
    ids = {id(p) for p in matched.values()}
    optimizers = [opt for opt in _contract(agent)[2].values()
                  if any(id(p) in ids for g in opt.param_groups for p in g["params"])]
    return ParameterGroup(label, patterns, matched, buffers, target_params, optimizers, excluded)


def last_layers(agent: nn.Module, prefix: str, depth: int) -> list[str]:
    """Module names of the last `depth` layers under `prefix` (a layer = a linear or conv module
    plus the parameterised modules, e.g. LayerNorm, that follow it). Used for head resets."""
    layers: list[list[str]] = []
    for name, module in agent.named_modules():
        if not (name == prefix or name.startswith(prefix + ".")):
            continue
        own = list(module.parameters(recurse=False))
        if not own:
            continue
        if hasattr(module, "in_features") or hasattr(module, "in_channels") or not layers:
            layers.append([name])
        else:
            layers[-1].append(name)
    if depth < 1 or depth > len(layers):
        raise GroupError(f"head depth {depth} for '{prefix}': must be in [1, {len(layers)}]")
    return [n for layer in layers[-depth:] for n in layer]
