"""Fresh draws of a group's parameters from each module's own initialiser (global torch RNG)."""
from __future__ import annotations

import copy

import torch
from torch import nn


def _owner(agent: nn.Module, name: str) -> tuple[nn.Module, str]:
    module_name, _, leaf = name.rpartition(".")
    return (agent.get_submodule(module_name) if module_name else agent), leaf


@torch.no_grad()
def fresh_values(agent: nn.Module, names) -> dict[str, torch.Tensor]:
    """New initial values for the parameters `names` (of `agent` or of any of its modules).

    Each owning module is deep-copied and re-initialised with its `reset_parameters`; a bare
    parameter of the agent itself (e.g. SAC's `log_alpha`) comes from `agent.initial_value(name)`.
    """
    out, done = {}, {}
    for name in names:
        module, leaf = _owner(agent, name)
        if module is agent:  # agents.base.Agent.initial_value (a TypeError where none is defined)
            out[name] = agent.initial_value(name)
            continue
        if id(module) not in done:
            if not hasattr(module, "reset_parameters"):
                raise TypeError(f"module owning '{name}' ({type(module).__name__}) has no reset_parameters()")
            clone = copy.deepcopy(module)
            clone.reset_parameters()
            done[id(module)] = dict(clone.named_parameters(recurse=False))
        out[name] = done[id(module)][leaf].detach()
    return out
