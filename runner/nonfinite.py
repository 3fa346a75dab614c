"""The non-finite guard: NaN or inf in a loss or a parameter stops a run (or warns) before a
checkpoint could save it (README "Preemption and faults").

Every update adds its metrics into per-metric accumulators on the training device
(`torch._foreach_add_`: one kernel launch, no host sync); a NaN or an inf stays in the sum, so a
read at the logging interval sees whether any update since the last read produced one. The
parameters are checked at the same reads. Reads happen when the loop syncs anyway: when logging,
before diagnostics, before every checkpoint write.
"""
from __future__ import annotations

import sys

import torch

ON_NONFINITE = ("stop", "warn")


class NonFiniteError(RuntimeError):
    """Training produced NaN or inf; nothing non-finite was written."""


class NonFiniteGuard:
    def __init__(self, module: torch.nn.Module, device):
        self.module, self.device = module, torch.device(device)
        self._sums: dict[str, torch.Tensor] = {}
        self._since_update = 0  # updates before this one were found finite

    def observe(self, metrics: dict) -> None:
        """Accumulate one update's tensor metrics (scalars, or summed)."""
        keys, values = [], []
        for key, value in metrics.items():
            if isinstance(value, torch.Tensor) and value.is_floating_point():
                keys.append(key)
                values.append((value if value.dim() == 0 else value.sum()).detach().float())
        if not keys:
            return
        missing = [k for k in keys if k not in self._sums]
        for key in missing:
            self._sums[key] = torch.zeros((), device=values[0].device)
        torch._foreach_add_([self._sums[k] for k in keys], values)

    def bad_losses(self) -> list[str]:
        """Metrics that were NaN or inf in some update since the last `clear` (host sync)."""
        if not self._sums:
            return []
        keys = list(self._sums)
        finite = torch.isfinite(torch.stack([self._sums[k] for k in keys])).tolist()
        return [k for k, ok in zip(keys, finite) if not ok]

    def bad_parameters(self) -> list[str]:
        """Names of parameters (and buffers) holding NaN or inf (host sync)."""
        named = [(n, t) for n, t in list(self.module.named_parameters()) + list(self.module.named_buffers())
                 if t.is_floating_point() and t.numel()]
        if not named:
            return []
        finite = torch.stack([torch.isfinite(t).all() for _, t in named]).tolist()
        return [n for (n, _), ok in zip(named, finite) if not ok]

    def clear(self, updates: int) -> None:
        for value in self._sums.values():
            value.zero_()
        self._since_update = updates

    def check(self, env_steps: int, updates: int, kept: str, on_nonfinite: str = "stop",
              checkpoint: bool = False) -> bool:
        """Read the accumulators and the parameters (a host sync). True when all is finite.
        Otherwise `on_nonfinite` "stop" raises NonFiniteError naming where (and `kept`, what
        became of the last checkpoint); "warn" prints it and goes on, and returns False when a
        checkpoint (`checkpoint`) would hold non-finite parameters: it must not be written."""
        losses, params = self.bad_losses(), self.bad_parameters()
        if not losses and not params:
            self.clear(updates)
            return True
        message = self.describe(losses, params, env_steps, updates)
        if on_nonfinite == "stop":
            raise NonFiniteError(f"{message}; {kept} (train.on_nonfinite=warn goes on instead)")
        self.clear(updates)
        skip = checkpoint and bool(params)
        print(f"warning: {message}" + (f"; checkpoint not written, {kept}" if skip else ""),
              file=sys.stderr)
        return not skip

    def describe(self, losses: list[str], params: list[str], env_steps: int, updates: int) -> str:
        """One message naming where: env step, update count, the first losses and parameters."""
        parts = []
        if losses:
            parts.append(f"loss {losses[0]}" + (f" (and {', '.join(losses[1:4])})" if losses[1:] else ""))
        if params:
            groups = sorted({p.split(".")[0] for p in params})
            parts.append(f"parameters of {', '.join(groups)} ({len(params)} tensors)")
        return (f"non-finite values (NaN or inf) at env step {env_steps}, update {updates} "
                f"(all finite up to update {self._since_update}): " + "; ".join(parts))
