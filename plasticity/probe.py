"""A trainability probe (Lyle et al. 2022, "Understanding and Preventing Capacity Loss in RL"):
how well can the network still fit new targets? A copy of one module of the agent (default the
critic) is trained for `steps` Adam steps to regress fresh random targets, y ~ N(0, 1) of its
output's shape, on the inputs it receives in an update on replay data; the probe reports the
loss before and after and their ratio. A network that has lost plasticity fits less: its ratio
stays higher. The agent, its optimizers and every RNG stream are left as they were (the copy is
trained inside a forked, seeded RNG).
"""
from __future__ import annotations

import copy

import torch

from plasticity.forward_calls import record_calls


def module_inputs(agent, module_name: str, batch):
    """(args, kwargs) of the first call of `agent.<module_name>` in an update on `batch`,
    taken on a copy of the agent (plasticity/forward_calls.py; the agent is not updated)."""
    calls = record_calls(agent, batch, [module_name])
    if not calls:
        raise ValueError(f"the probe's module '{module_name}' is not called in an update of "
                         f"{type(agent).__name__}")
    return calls[0].args, calls[0].kwargs


def trainability_probe(agent, module_name: str, batch, steps: int, lr: float = 1e-3,
                       seed: int = 0) -> dict[str, float]:
    """{fit_loss_start, fit_loss_end, fit_ratio} of `agent.<module_name>` (see above)."""
    devices = [torch.cuda.current_device()] if torch.cuda.is_available() else []
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(seed)
        args, kwargs = module_inputs(agent, module_name, batch)
        net = copy.deepcopy(agent.get_submodule(module_name)).train().requires_grad_(True)
        with torch.no_grad():
            out = net(*args, **kwargs)
        if not torch.is_tensor(out):
            raise ValueError(f"the probe's module '{module_name}' returns {type(out).__name__}, "
                             "not a tensor")
        target = torch.randn_like(out)
        opt = torch.optim.Adam(net.parameters(), lr=lr)
        first = last = None
        for _ in range(steps):
            loss = (net(*args, **kwargs) - target).pow(2).mean()
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            first = loss.detach() if first is None else first
            last = loss.detach()
        with torch.no_grad():
            last = (net(*args, **kwargs) - target).pow(2).mean()
    start, end = float(first), float(last)
    return {"fit_loss_start": start, "fit_loss_end": end, "fit_ratio": end / max(start, 1e-12)}
