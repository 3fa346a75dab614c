"""What the modules of an agent compute in one update, recorded on a copy.

`record_calls(agent, batch, names)` deep-copies the agent, registers forward hooks on the named
modules of the copy and runs one `update(batch)` of the copy eagerly (`Agent.eager_updates`: a
compiled graph calls no hook) inside a forked RNG: the agent, its optimizers and every random
stream are left exactly as they were. Each call is recorded in order with its (detached) inputs,
keyword inputs and output; the tensors are kept, so their storage is never reused while the
record lives, and "this input is that output" can be told by storage (`same_tensor`).
The trainability probe (plasticity/probe.py) reads a module's inputs from it, ReDo
(plasticity/redo.py) the activations and which layer feeds which.
"""
from __future__ import annotations

import copy
from dataclasses import dataclass

import torch


@dataclass(eq=False)  # compared by identity: tensor fields have no truth value
class Call:
    name: str  # the module's name in the agent
    args: tuple
    kwargs: dict
    output: object


def _detach(value):
    return value.detach() if torch.is_tensor(value) else value


def record_calls(agent, batch, names) -> list[Call]:
    """Every call of the modules `names` (of `agent`) in one update on `batch`, in order."""
    clone = copy.deepcopy(agent)
    calls: list[Call] = []
    names = set(names)

    def recorder(name):
        def record(module, args, kwargs, output):
            calls.append(Call(name, tuple(_detach(a) for a in args),
                              {k: _detach(v) for k, v in kwargs.items()}, _detach(output)))
        return record
    handles = [m.register_forward_hook(recorder(n), with_kwargs=True)
               for n, m in clone.named_modules() if n in names]
    devices = [torch.cuda.current_device()] if torch.cuda.is_available() else []
    try:
        with torch.random.fork_rng(devices=devices), clone.eager_updates(), torch.enable_grad():
            clone.update(batch)
    finally:
        for handle in handles:
            handle.remove()
    return calls


def same_tensor(a, b) -> bool:
    """Whether `a` is `b` or a reshaped view of it (same storage and start, same size)."""
    return (torch.is_tensor(a) and torch.is_tensor(b) and a.numel() == b.numel()
            and a.untyped_storage().data_ptr() == b.untyped_storage().data_ptr()
            and a.storage_offset() == b.storage_offset())
