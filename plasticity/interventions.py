"""Interventions on a parameter group. All act in place (`copy_`, `mul_`, `add_`, `zero_`), so
parameter and optimizer-state storage never changes and compiled or captured updates stay valid.

Options shared by all (conventions differ between papers; presets state theirs):
  optimizer: "reset"  zero the Adam moments AND step count of the touched parameters
             "keep"   leave optimizer state alone
  target:    "copy_online"  target <- online after the intervention (Nikishin, SR-SAC)
             "fresh"        the target undergoes the intervention with its own independent
                            fresh draw (BBF): a reset target is a new init, a shrunk target
                            is perturbed toward its own new init
             "untouched"    leave the target (ReDo)
"""
from __future__ import annotations

import torch

from plasticity.fresh import fresh_values
from plasticity.groups import ParameterGroup

OPTIMIZER_OPTIONS = ("reset", "keep")
TARGET_OPTIONS = ("copy_online", "fresh", "untouched")
SOURCE_OPTIONS = ("fresh", "initial")  # ShrinkPerturb's phi: a fresh init or theta_0


@torch.no_grad()
def zero_state_of(optimizers, params) -> None:
    """Zero, in place, every state tensor (exp_avg, exp_avg_sq, step, ...) that `optimizers`
    hold for `params`."""
    for opt in optimizers:
        for p in params:
            for value in opt.state.get(p, {}).values():
                if torch.is_tensor(value):
                    value.zero_()


def zero_optimizer_state(group: ParameterGroup) -> None:
    """Zero the optimizer state of the group's parameters."""
    zero_state_of(group.optimizers, group.params.values())


class Intervention:
    """Base: subclasses implement `_apply_online`; `apply` adds the shared options. One that
    `needs_batch` (ReDo) reads replay states through `batch_source(batch_size)`, which the
    scheduler hands it (`ResetScheduler.set_batch_source`)."""

    needs_batch = False
    batch_source = None

    def __init__(self, optimizer: str = "reset", target: str = "copy_online"):
        if optimizer not in OPTIMIZER_OPTIONS:
            raise ValueError(f"optimizer='{optimizer}', allowed: {list(OPTIMIZER_OPTIONS)}")
        if target not in TARGET_OPTIONS:
            raise ValueError(f"target='{target}', allowed: {list(TARGET_OPTIONS)}")
        self.optimizer, self.target = optimizer, target

    def bind(self, agent, group: ParameterGroup) -> None:
        """Called once when the scheduler is built (snapshots, tortoise copies)."""
        self.agent, self.group = agent, group

    def on_update(self) -> None:
        """Called after every gradient update."""

    @torch.no_grad()
    def apply(self) -> None:
        self._apply_online()
        g = self.group
        if self.target == "copy_online":
            for name, t in g.target_params.items():
                t.copy_(g.params[name])
        elif self.target == "fresh" and g.target_params:
            target_names = {n: _param_name(self.agent, t) for n, t in g.target_params.items()}
            fresh = fresh_values(self.agent, target_names.values())
            self._apply_target({n: (t, fresh[target_names[n]]) for n, t in g.target_params.items()})
        if self.optimizer == "reset":
            zero_optimizer_state(g)

    def _apply_online(self) -> None:
        raise NotImplementedError

    def _apply_target(self, pairs: dict) -> None:
        """target="fresh": online name -> (target tensor, its own fresh init); default: a reset."""
        for target, fresh in pairs.values():
            target.copy_(fresh)

    def event_info(self) -> dict:
        """What the last firing did, added to its event (ReDo: units recycled)."""
        return {}

    def state_dict(self) -> dict:
        return {}

    def load_state_dict(self, state: dict) -> None:
        pass


def _param_name(agent, param) -> str:
    for name, p in agent.named_parameters():
        if p is param:
            return name
    raise KeyError("parameter not in agent")


class Reset(Intervention):
    """Re-initialise the group with each module's own initialiser: theta <- phi, phi ~ init.
    Nikishin et al. 2022 (primacy bias): full reset = every group; head reset = last layer(s)."""

    def _apply_online(self) -> None:
        fresh = fresh_values(self.agent, self.group.params)
        for name, p in self.group.params.items():
            p.copy_(fresh[name])


class ShrinkPerturb(Intervention):
    """theta <- shrink * theta + perturb * phi (Ash & Adams 2020). phi is a fresh init
    (source="fresh") or the group's initial parameters theta_0 (source="initial").
    BBF: 0.5/0.5 on the encoder; SR-SPR: 0.8/0.2; the lecture: lambda / (1 - lambda)."""

    def __init__(self, shrink: float, perturb: float, source: str = "fresh", **options):
        super().__init__(**options)
        if source not in SOURCE_OPTIONS:
            raise ValueError(f"source='{source}', allowed: {list(SOURCE_OPTIONS)}")
        self.shrink, self.perturb, self.source = float(shrink), float(perturb), source

    def bind(self, agent, group) -> None:
        super().bind(agent, group)
        self.initial = ({n: p.detach().clone() for n, p in group.params.items()}
                        if self.source == "initial" else {})

    def _apply_online(self) -> None:
        phi = self.initial if self.source == "initial" else fresh_values(self.agent, self.group.params)
        for name, p in self.group.params.items():
            p.mul_(self.shrink).add_(phi[name], alpha=self.perturb)

    def _apply_target(self, pairs: dict) -> None:
        for name, (target, fresh) in pairs.items():
            phi = self.initial[name] if self.source == "initial" else fresh
            target.mul_(self.shrink).add_(phi, alpha=self.perturb)

    def state_dict(self) -> dict:
        return {"initial": self.initial}

    def load_state_dict(self, state: dict) -> None:
        for name, value in state["initial"].items():
            self.initial[name].copy_(value)


class HareTortoise(Intervention):
    """Hare & Tortoise (Lee et al., ICML 2024). The hare is the trained group; the tortoise an
    EMA of it after every update, tortoise <- m * tortoise + (1 - m) * hare (m = tortoise_ema,
    parameters and buffers); at each trigger hare <- tortoise, by copy (never shared storage).
    The reference keeps the optimizer state: optimizer="keep" is this class's default."""

    def __init__(self, tortoise_ema: float = 0.999, optimizer: str = "keep", target: str = "untouched"):
        super().__init__(optimizer=optimizer, target=target)
        if not 0.0 <= tortoise_ema <= 1.0:
            raise ValueError(f"tortoise_ema={tortoise_ema}: must be in [0, 1]")
        self.m = float(tortoise_ema)

    def bind(self, agent, group) -> None:
        super().bind(agent, group)
        self._hare = list(group.params.values()) + [b for b in group.buffers.values()
                                                    if torch.is_floating_point(b)]
        self._hare_data = [h.detach() for h in self._hare]  # views, made once: no per-update allocation
        self.tortoise = [t.detach().clone() for t in self._hare]

    @torch.no_grad()
    def on_update(self) -> None:
        torch._foreach_lerp_(self.tortoise, self._hare_data, 1.0 - self.m)

    def _apply_online(self) -> None:
        torch._foreach_copy_(self._hare_data, self.tortoise)

    def state_dict(self) -> dict:
        return {"tortoise": [t.clone() for t in self.tortoise]}

    def load_state_dict(self, state: dict) -> None:
        torch._foreach_copy_(self.tortoise, [t.to(self.tortoise[0].device) for t in state["tortoise"]])


# every intervention by config name: plasticity/registry.py (ReDo lives in plasticity/redo.py)
class ResetOptimizer(Intervention):
    """Zero the group's optimizer state (moments and step count), weights and target untouched:
    with a reset of other groups, a rebuilt optimizer (PLASTIC's Atari code,
    dojeon-ai/PLASTIC atari/src/agents/base.py, rebuilds the whole Adam at each head reset)."""

    def __init__(self, optimizer: str = "reset", target: str = "untouched"):
        if optimizer != "reset" or target != "untouched":
            raise ValueError(f"reset_optimizer: optimizer='{optimizer}', target='{target}'; allowed: "
                             "optimizer='reset', target='untouched' (it only zeroes optimizer state)")
        super().__init__(optimizer=optimizer, target=target)

    def _apply_online(self) -> None:
        pass  # `apply` zeroes the state (optimizer="reset")


BASIC = {"reset": Reset, "shrink_perturb": ShrinkPerturb, "hare_tortoise": HareTortoise,
         "reset_optimizer": ResetOptimizer}
