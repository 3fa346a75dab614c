"""Regenerative regularisation, "Regen" / L2 Init (Kumar et al. 2023, "Maintaining plasticity in
continual learning via regenerative regularization"):

    L(theta) = L_train(theta) + coef * ||theta - theta_0||^2,   dL/dtheta += 2 * coef * (theta - theta_0)

theta_0 is the group's value when the run starts (it is not moved by later resets). The penalty
is added as its gradient, in place, to `.grad` of the group's parameters by an optimizer
step pre-hook, so every agent gets it without a line of regularisation code, the gradient then
passes through the optimizer exactly as a loss term's would (Adam normalises it), and the
update makes no host sync.
"""
from __future__ import annotations

import torch

from plasticity.groups import ParameterGroup


class Regen:
    """L2 toward the initial parameters of a group, with strength `coef` (lambda)."""

    def __init__(self, coef: float):
        if not (isinstance(coef, (int, float)) and coef >= 0):
            raise ValueError(f"regen coef={coef!r}: must be a number >= 0")
        self.coef = float(coef)
        self._hooks = []

    def bind(self, agent, group: ParameterGroup) -> None:
        self.group = group
        self.initial = {n: p.detach().clone() for n, p in group.params.items()}
        for opt in group.optimizers:
            held = {id(p) for g in opt.param_groups for p in g["params"]}
            names = [n for n, p in group.params.items() if id(p) in held]
            self._hooks.append(opt.register_step_pre_hook(self._hook_for(names)))

    def _hook_for(self, names: list[str]):
        params = [self.group.params[n] for n in names]
        initial = [self.initial[n] for n in names]

        @torch.no_grad()
        def add_penalty_gradient(optimizer, args, kwargs):
            for p in params:  # a parameter the loss did not reach still feels the penalty
                if p.grad is None:
                    p.grad = torch.zeros_like(p)
            grads = [p.grad for p in params]
            torch._foreach_add_(grads, params, alpha=2.0 * self.coef)
            torch._foreach_add_(grads, initial, alpha=-2.0 * self.coef)

        return add_penalty_gradient

    @torch.no_grad()
    def penalty(self) -> torch.Tensor:
        """coef * ||theta - theta_0||^2 (for logging and tests)."""
        total = sum(((p - self.initial[n]) ** 2).sum() for n, p in self.group.params.items())
        return self.coef * total

    def remove(self) -> None:
        for handle in self._hooks:
            handle.remove()
        self._hooks.clear()

    def state_dict(self) -> dict:
        return {"initial": self.initial}

    def load_state_dict(self, state: dict) -> None:
        for name, value in state["initial"].items():
            self.initial[name].copy_(value)


REGULARIZERS = {"regen": Regen}
