"""How an agent's update runs: `compile = none | compile | cudagraphs`.

    none        eager PyTorch.
    compile     torch.compile: SAC-family agents run the whole update as one graph
                (agents/compile.py); the pixel Q-learning agents compile their loss (forward and
                AOT backward) and keep the fused optimizer step eager.
    cudagraphs  the `compile` step, captured once per update variant in a CUDA graph and
                replayed (CUDA only). The batch is copied into the graph's static input tensors,
                the metrics are cloned out of its static outputs.

An agent splits `update(batch)` into a Python part (counters, and the hashable `key` of the
decisions they imply, e.g. "actor update due", "target in sync") and a tensor-only
`_update_step(key, batch)`; a graph is captured per (key, batch layout). Everything the
graph reads or writes keeps its storage: parameters, optimizer states and targets are edited in
place by the plasticity interventions (so a replay after a reset sees the reset weights), and
learning rates are device tensors under `cudagraphs` (`group["lr"].fill_(x)` is seen by the
graph; assigning a float is not). Replacing a state tensor (`load_state_dict` of an optimizer)
needs `reset()`: the agent's `load_training_state` calls it. Schedules that change between
updates (BBF's n and gamma) enter the graph only through the batch (n-step returns and
discounts are computed when sampling), so they need no recapture.

Graphs are kept per signature in a `GraphCache` of at most `MAX_GRAPHS` entries, least recently
used evicted first (an evicted signature compiles or captures again when it comes back). Updates
inside `Agent.eager_updates()` (the diagnostics' updates: forward hooks and `.grad` need eager
autograd) run eagerly in every mode, from the same parameters and optimizer states.
"""
from __future__ import annotations

import copy
import warnings
from collections import OrderedDict

import torch
from torch.utils._pytree import tree_flatten, tree_map

COMPILE_MODES = ("none", "compile", "cudagraphs")
MAX_GRAPHS = 8  # graphs kept per agent (GraphCache); SAC-family updates use 1-4 signatures


def compile_mode(value, device) -> str:
    """Normalise the `compile` setting (booleans are the old spelling: false = none, true =
    compile) and refuse `cudagraphs` off CUDA, naming the allowed values."""
    mode = value if isinstance(value, str) else {False: "none", None: "none", True: "compile"}.get(
        value if isinstance(value, (bool, type(None))) else "?", value)
    if mode not in COMPILE_MODES:
        raise ValueError(f"compile = {value!r}: allowed values are {list(COMPILE_MODES)}")
    if mode == "cudagraphs" and torch.device(device).type != "cuda":
        raise ValueError(f"compile = 'cudagraphs' needs a CUDA device, not {device!r}: "
                         f"use compile = 'compile' or 'none' on {torch.device(device).type}")
    return mode


def compile_loss(fn):
    """torch.compile for a loss function (forward and AOT backward): static shapes, and random
    draws through eager's generator in eager's order (`fallback_random`), so a compiled run
    draws the same augmentation and noise as an eager one with the same seed."""
    return torch.compile(fn, dynamic=False, options={"fallback_random": True})


def learning_rate(lr: float, mode: str, device):
    """A float for eager/compiled updates; a device tensor under `cudagraphs` (so a captured
    optimizer step reads the current value)."""
    return torch.tensor(float(lr), device=device) if mode == "cudagraphs" else lr


def optimizer_options(mode: str) -> dict:
    """Adam/AdamW options for `mode`: fused always (one kernel per step, CPU and CUDA);
    capturable under `cudagraphs` (the step count stays on the device)."""
    return {"fused": True, **({"capturable": True} if mode == "cudagraphs" else {})}


class GraphCache:
    """Graphs by signature, at most `size`: `get(key, build)` returns the cached graph or builds
    one, evicting the least recently used when full (it is built again if its key comes back).
    `builds` and `evictions` count; the first eviction warns, as repeated ones mean a setting
    that changes from update to update (a float learning rate set every update: use a tensor)."""

    def __init__(self, size: int = MAX_GRAPHS, name: str = "graph"):
        if size < 1:
            raise ValueError(f"GraphCache size {size}: must be >= 1")
        self.size, self.name = size, name
        self._entries: OrderedDict = OrderedDict()
        self.builds = self.evictions = 0

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, key) -> bool:
        return key in self._entries

    def clear(self) -> None:
        self._entries.clear()

    def get(self, key, build):
        entry = self._entries.get(key)
        if entry is not None:
            self._entries.move_to_end(key)
            return entry
        entry = self._entries[key] = build()
        self.builds += 1
        if len(self._entries) > self.size:
            self._entries.popitem(last=False)
            self.evictions += 1
            if self.evictions == 1:
                warnings.warn(f"{self.name}: more than {self.size} signatures in use, the least "
                              "recently used graph was evicted and will be rebuilt if needed; a "
                              "setting changing every update (e.g. a float learning rate) recompiles "
                              "each time", RuntimeWarning, stacklevel=3)
        return entry


class CudaGraph:
    """A CUDA graph: `capture(fn)` records fn's kernels (returning its outputs, which become the
    graph's static outputs); `replay()` runs them again."""

    def __init__(self):
        self.graph = torch.cuda.CUDAGraph()

    def capture(self, fn):
        with torch.cuda.graph(self.graph):
            return fn()

    def replay(self) -> None:
        self.graph.replay()


def _layout(batch) -> tuple:
    """What a captured graph is specific to: the batch's structure, shapes, dtypes, devices."""
    leaves, spec = tree_flatten(batch)
    return str(spec), tuple((t.shape, t.dtype, t.device) if torch.is_tensor(t) else t for t in leaves)


class CapturedUpdate:
    """Runs `step(key, batch) -> dict of tensors` as a replayed graph, one per (key, layout).

    The first `warmup` calls of each key run eagerly (on a side stream on CUDA, as capture
    requires: they allocate optimizer states and settle the compiled code); the next captures.
    At most `max_graphs` graphs are kept (`GraphCache`); an evicted key warms up and captures
    again. `graph_factory` builds the graph object (`CudaGraph`; tests pass a CPU stand-in)."""

    def __init__(self, step, warmup: int = 3, graph_factory=CudaGraph, max_graphs: int = MAX_GRAPHS):
        self.step, self.warmup, self.graph_factory = step, warmup, graph_factory
        # (key, layout) -> (graph, static batch, static outputs)
        self._graphs = GraphCache(max_graphs, "captured update")
        self._calls: dict = {}  # (key, layout) -> eager calls so far, until captured

    def __deepcopy__(self, memo):
        """A copy of the agent gets its own graphs (none yet), over its own tensors."""
        return CapturedUpdate(copy.deepcopy(self.step, memo), self.warmup, self.graph_factory,
                              self._graphs.size)

    def reset(self) -> None:
        """Forget every graph (after a tensor they read was replaced, e.g. optimizer state)."""
        self._graphs.clear()
        self._calls.clear()

    @property
    def num_graphs(self) -> int:
        return len(self._graphs)

    def __call__(self, key, batch) -> dict:
        slot = (key, _layout(batch))
        if slot not in self._graphs:
            calls = self._calls.get(slot, 0)
            if calls < self.warmup:
                self._calls[slot] = calls + 1
                return self._eager(key, batch)
            self._calls.pop(slot, None)  # an evicted graph warms up again
        graph, static_batch, static_out = self._graphs.get(slot, lambda: self._capture(key, batch))
        for dst, src in zip(tree_flatten(static_batch)[0], tree_flatten(batch)[0]):
            if torch.is_tensor(dst):
                dst.copy_(src, non_blocking=True)
        graph.replay()
        return {k: v.clone() for k, v in static_out.items()}  # the next replay overwrites them

    def _eager(self, key, batch) -> dict:
        if not torch.cuda.is_available() or not _on_cuda(batch):
            return self.step(key, batch)
        side = torch.cuda.Stream()
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side):
            out = self.step(key, batch)
        torch.cuda.current_stream().wait_stream(side)
        return out

    def _capture(self, key, batch):
        static_batch = tree_map(lambda t: t.clone() if torch.is_tensor(t) else t, batch)
        graph = self.graph_factory()
        static_out = graph.capture(lambda: self.step(key, static_batch))
        return graph, static_batch, static_out


def _on_cuda(batch) -> bool:
    return any(torch.is_tensor(t) and t.is_cuda for t in tree_flatten(batch)[0])
