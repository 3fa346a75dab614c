"""The members' update (agents/members.py) as one inductor graph: the `compile` mode of a group.

As agents/compile.py does for one agent, the body is traced with `make_fx` (fake tensors) over an
explicit flat list of inputs, here the stacked tensors [M, ...], the stacked optimizer states,
the stacked batch and the members' learning-rate tensors [M], and `torch._inductor.compile`
turns it into one callable: the vmapped losses, their gradients, Adam and the target EMA fuse
into one graph, in place on the stacks. One graph per signature (the body's key and the batch's
shapes); learning rates are inputs, so changing one does not recompile. Random draws use
eager's generator (`fallback_random`), as in agents/compile.py.
"""
from __future__ import annotations

from types import SimpleNamespace

import torch
from agents.acceleration import MAX_GRAPHS, GraphCache
from agents.compile import compile_flat


class CompiledMembers:
    """`stack.body(key, batch, MemberOps)` compiled per signature; call with the stacked batch."""

    def __init__(self, stack, max_graphs: int = MAX_GRAPHS):
        from agents.members import MemberOps  # members imports this module

        self.stack, self._ops = stack, MemberOps
        self.options = {"fallback_random": True}
        if stack.template.device.type == "cpu":
            self.options["cpp_wrapper"] = True
        self._graphs = GraphCache(max_graphs, "compiled members update")

    def _inputs(self, batch) -> list[torch.Tensor]:
        """The flat inputs, in the order `_rebuild` reads them."""
        s = self.stack
        inputs = list(s.tensors.values())
        for groups in s.groups.values():
            for _, _, states, g_index in groups:
                inputs += [t for state in states for t in state]
        inputs += [t for t in batch if t is not None]
        inputs += [s._learning_rates(name, g) for name, groups in s.groups.items() for *_, g in groups]
        return inputs

    def __call__(self, key, batch) -> dict[str, torch.Tensor]:
        inputs = self._inputs(batch)
        signature = (key, tuple(None if t is None else (t.shape, t.dtype, t.device) for t in batch))
        fn, names = self._graphs.get(signature, lambda: self._compile(key, inputs, batch))
        with torch.no_grad():
            out = fn(*inputs)
        return dict(zip(names, out))

    def _compile(self, key, inputs, batch):
        s, present = self.stack, [t is not None for t in batch]

        def flat_update(*flat):
            it = iter(flat)
            tensors = {n: next(it) for n in s.tensors}
            groups = {opt: [(settings, params, [tuple(next(it) for _ in state) for state in states], g)
                            for settings, params, states, g in g_list] for opt, g_list in s.groups.items()}
            b = type(batch)(*[next(it) if has else None for has in present])
            lrs = {(opt, g): next(it) for opt, g_list in s.groups.items() for *_, g in g_list}
            traced = SimpleNamespace(tensors=tensors, names=s.names, groups=groups, template=s.template,
                                     _learning_rates=lambda opt, g: lrs[(opt, g)])
            return s.body(key, b, self._ops(traced))

        return compile_flat(flat_update, inputs, self.options)
