"""Plasticity injection (Nikishin et al., NeurIPS 2023, "Deep Reinforcement Learning with
Plasticity Injection"): at the trigger the head h is frozen and two heads with the same fresh
weights are added, h' trained and h'' frozen:

    f(x) = h(x) + g * (h'(x) - h''(x)),   g = 0 before the injection, 1 after

so the output is unchanged at the moment of injection (h' = h'') and the trainable capacity is
new. The heads are allocated when the agent is built (`agent.injection=true` wraps each `head`
in an `InjectableHead`), so no parameter is created during training; the injection redraws h'
from the head's own initialiser, copies it into h'' (buffers: no optimizer or group holds
them), sets the gate buffer g to 1 and zeroes the Adam state of h and h', all in place, so
compiled graphs and members stay valid. After it h gets exactly zero gradient
(`g * h(x).detach() + (1 - g) * h(x)`), and with its moments zeroed Adam leaves it bitwise
unchanged; before it h' gets exactly zero gradient and stays as drawn. Weight decay would still
move a frozen head, so injection refuses AdamW decay (agents/hparams.py cross rule).
"""
from __future__ import annotations

import copy

import torch
from torch import nn

from plasticity.fresh import fresh_values
from plasticity.groups import GroupError
from plasticity.interventions import Intervention, zero_state_of

HEADS = ("critic.head", "actor.head")  # the heads `agent.injection` wraps where the agent has them


def _as_buffers(module: nn.Module) -> nn.Module:
    """`module` with every parameter turned into a buffer of the same name and value."""
    for sub in module.modules():
        for name, p in list(sub.named_parameters(recurse=False)):
            delattr(sub, name)
            sub.register_buffer(name, p.detach().clone())
    return module


class InjectableHead(nn.Module):
    """h(x) + g (h'(x) - h''(x)); `base` h, `fresh` h' (trained after injection), `frozen` h''."""

    def __init__(self, base: nn.Module):
        super().__init__()
        self.base = base
        self.fresh = copy.deepcopy(base)
        for module in self.fresh.modules():  # a fresh draw of every layer (a dueling head's two)
            if hasattr(module, "reset_parameters") and any(True for _ in module.parameters(recurse=False)):
                module.reset_parameters()
        self.frozen = _as_buffers(copy.deepcopy(self.fresh))
        self.register_buffer("gate", torch.zeros(()))

    def forward(self, x):
        out, g = self.base(x), self.gate
        out = g * out.detach() + (1 - g) * out  # h frozen after the injection: zero gradient
        return out + g * (self.fresh(x) - self.frozen(x))


def make_injectable(agent: nn.Module, names=HEADS) -> list[str]:
    """Wrap each of `names` the agent has in an InjectableHead (before its optimizers and target
    copies are made); returns the names wrapped."""
    wrapped = []
    for name in names:
        parent_name, _, leaf = name.rpartition(".")
        try:
            parent = agent.get_submodule(parent_name)
        except AttributeError:
            continue
        if isinstance(getattr(parent, leaf, None), nn.Module):
            setattr(parent, leaf, InjectableHead(getattr(parent, leaf)))
            wrapped.append(name)
    return wrapped


class Inject(Intervention):
    """The injection on every InjectableHead in the group (and its target copy); once per head:
    a later firing leaves an injected head as it is."""

    def __init__(self, **options):
        super().__init__(**options)

    def bind(self, agent, group) -> None:
        super().bind(agent, group)
        self.heads = {name: m for name, m in agent.named_modules()
                      if isinstance(m, InjectableHead)
                      and any(group.covers(n) for n, _ in m.base.named_parameters(prefix=name + ".base"))
                      and not any(name.startswith(t + ".") for t in agent.target_networks.values())}
        if not self.heads:
            raise GroupError(f"injection on group '{group.name}': no injectable head in it; build "
                             "the agent with agent.injection=true (it wraps critic.head and actor.head)")
        self._injected = 0

    @torch.no_grad()
    def apply(self) -> None:
        agent, self._injected = self.agent, 0
        for name, head in self.heads.items():
            if bool(head.gate):  # read on the host: an injection is rare
                continue
            fresh = fresh_values(agent, [f"{name}.fresh.{n}" for n, _ in head.fresh.named_parameters()])
            for n, p in head.fresh.named_parameters():
                p.copy_(fresh[f"{name}.fresh.{n}"])
            for n, b in head.frozen.named_buffers():
                b.copy_(fresh[f"{name}.fresh.{n}"])
            head.gate.fill_(1.0)
            for target in self._targets(name):  # the target's new heads start as the online ones
                for (_, t), (_, p) in zip(target.fresh.named_parameters(), head.fresh.named_parameters()):
                    t.copy_(p)
                for (_, t), (_, b) in zip(target.frozen.named_buffers(), head.frozen.named_buffers()):
                    t.copy_(b)
                target.gate.fill_(1.0)
            # h frozen, h' trained from a fresh Adam state
            zero_state_of(agent.optimizers.values(), [*head.base.parameters(), *head.fresh.parameters()])
            self._injected += 1

    def _targets(self, name: str) -> list[nn.Module]:
        out = []
        for online, target in self.agent.target_networks.items():
            if name.startswith(online + "."):
                module = self.agent.get_submodule(target + name[len(online):])
                out.append(module)
        return out

    def event_info(self) -> dict:
        return {"injected_heads": self._injected}
