"""An agent's whole update as one inductor graph (the `compile` mode of SAC and its subclasses
that keep its update; `CompiledUpdate(agent, body)`).

The agent writes its update once more as `body(key, batch, ops)` against `FunctionalOps`:
`ops.step(loss, optimizer_names, *args)` differentiates `agent(loss, *args)` (its `forward`
dispatches losses by name) with respect to the parameters of those optimizers
(torch.func.grad, so the backward is traced and fused with the forward) and applies the
optimizers' own math (torch.optim.adam.adam, capturable: Adam and AdamW, every param group's
settings), in place; `ops.tensors(list)` maps the agent's tensors to the traced ones;
`ops.ema_(targets, onlines, tau)` is a target EMA on them; `ops.call(name, *args)` evaluates
`agent(name, *args)` without gradient. Nothing here names an agent's networks or optimizers: the
inputs are every parameter and buffer (`named_parameters`, `named_buffers`), every optimizer's
state tensors and the batch.

The body is traced once per signature (`make_fx`, fake tensors) into one aten graph over that
explicit flat list, and `torch._inductor.compile` turns it into one callable, called with the
list at each update: no host sync inside the graph (tested), no dynamo frame evaluation or guard
check per call (~0.3-0.5 ms of a ~5 ms update on the 2-core CPU; BENCHMARKS.md).
Parameters, optimizer moments and step counts are updated in place, so their storage never
changes and in-place edits from outside (plasticity interventions, `load_state_dict`) are seen
by the next call; the optimizer state tensors are read from the optimizers at every call, so
replacing them is seen too. Parameters themselves must be edited, never replaced (the list is
read once). State is created at the first call for every optimizer, as the fused Adam creates it
(an optimizer not stepped yet holds zeros, which its first step reads as a fresh state). Random
draws use eager's generator in eager's order (`fallback_random`), so a compiled run consumes
the same random stream as an eager one.

A signature is the body's `key` (the agent's Python-side decisions and the constants it reads,
e.g. SAC's (actor due, target due, tau)), every param group's settings (a learning-rate tensor
is an input instead, by identity) and the batch's shapes, dtypes and devices. At most
`max_graphs` graphs are kept (agents/acceleration.py `GraphCache`). `supported()` is False
(the agent then runs its eager update, which runs the hooks) for optimizers other than Adam or
AdamW, step hooks, or differentiable / complex settings.

On the CPU the graph's kernels are called from a generated C++ wrapper (inductor's
`cpp_wrapper`) instead of Python: 8-13% less time per update on the 2-core CPU (interleaved
A/B in one process; BENCHMARKS.md), for a longer first compile.
"""
from __future__ import annotations

import copy

import torch
from torch.compiler import _compile_session_context
from torch.func import functional_call, grad
from torch.fx.experimental.proxy_tensor import make_fx
from torch.optim.adam import adam
from torch.optim.optimizer import _global_optimizer_post_hooks, _global_optimizer_pre_hooks

from agents.acceleration import MAX_GRAPHS, GraphCache

SETTINGS = ("lr", "betas", "eps", "weight_decay", "amsgrad", "maximize", "decoupled_weight_decay")


class FunctionalOps:
    """What an update body calls while traced: `step` (a loss's gradient and the optimizers'
    step, on the traced tensors) and `tensors` (the traced counterparts of agent tensors)."""

    def __init__(self, agent, tensors: dict, names: dict, groups: dict):
        self.agent = agent
        self._tensors = tensors  # name -> traced tensor (every parameter and buffer)
        self._names = names  # id(agent tensor) -> name
        self._groups = groups  # optimizer -> [(settings, [param names], states)]

    def tensors(self, real) -> list[torch.Tensor]:
        """The traced tensors standing for the agent's tensors `real`."""
        return [self._tensors[self._names[id(t)]] for t in real]

    def step(self, loss: str, optimizer_names, *args) -> dict:
        """One gradient step of `agent(loss, *args) -> (loss, metrics)` on the parameters of
        `optimizer_names` (the others and the buffers held fixed); returns the metrics."""
        trained = {n: self._tensors[n] for name in optimizer_names
                   for _, names, _ in self._groups[name] for n in names}
        fixed = {n: t for n, t in self._tensors.items() if n not in trained}
        grads, metrics = grad(lambda p: functional_call(self.agent, {**fixed, **p}, (loss, *args)),
                              has_aux=True)(trained)
        with torch.no_grad():
            for name in optimizer_names:
                for settings, names, states in self._groups[name]:
                    _adam_step([trained[n] for n in names], [grads[n] for n in names], states, settings)
        return metrics


    @torch.no_grad()
    def ema_(self, targets, onlines, rate: float) -> None:
        """targets <- (1 - rate) targets + rate onlines (a target EMA), in place."""
        torch._foreach_lerp_(self.tensors(targets), self.tensors(onlines), rate)

    @torch.no_grad()
    def call(self, name: str, *args):
        """`agent(name, *args)` on the traced tensors, without gradient (e.g. an encoder pass)."""
        return functional_call(self.agent, self._tensors, (name, *args))


def _adam_step(params, grads, states, settings: dict) -> None:
    """torch's Adam/AdamW math (single-tensor, capturable: bias corrections from the step
    tensors, no host read), in place on `params` and `states` [(step, exp_avg, exp_avg_sq[,
    max_exp_avg_sq])]. The compile-session flag lets the capturable path trace on any device."""
    lr, (beta1, beta2) = settings["lr"], settings["betas"]
    with _compile_session_context():
        adam(params, grads, [s[1] for s in states], [s[2] for s in states],
             [s[3] for s in states] if settings["amsgrad"] else [], [s[0] for s in states],
             foreach=False, fused=False, capturable=True, differentiable=False, has_complex=False,
             amsgrad=settings["amsgrad"], beta1=beta1, beta2=beta2, lr=lr,
             weight_decay=settings["weight_decay"], eps=settings["eps"], maximize=settings["maximize"],
             decoupled_weight_decay=settings["decoupled_weight_decay"])


class CompiledUpdate:
    """`body(key, batch, ops)` as one compiled graph per signature; see the module docstring."""

    def __init__(self, agent, body, max_graphs: int = MAX_GRAPHS):
        self.agent, self.body = agent, body  # plain attributes of a plain object: no submodule
        self.options = {"fallback_random": True}
        if agent.device.type == "cpu":  # kernels called from generated C++, not Python: ~10% per update
            self.options["cpp_wrapper"] = True
        self._graphs = GraphCache(max_graphs, "compiled update")  # signature -> (callable, metric names)
        self._tensors = None  # {name: tensor}: every parameter and buffer, read on the first call

    def __deepcopy__(self, memo):
        """A copy of the agent gets its own compiled update (no graph yet), over its own tensors."""
        other = copy.copy(self)  # the agent copy is still being built: read none of its attributes
        other.agent, other.body = copy.deepcopy(self.agent, memo), copy.deepcopy(self.body, memo)
        other.options, other._tensors = dict(self.options), None
        other._graphs = GraphCache(self._graphs.size, self._graphs.name)
        return other

    def supported(self) -> bool:
        """False when the compiled path would not do what the eager update does."""
        if _global_optimizer_pre_hooks or _global_optimizer_post_hooks:
            return False
        for opt in self.agent.optimizers.values():
            if type(opt) not in (torch.optim.Adam, torch.optim.AdamW):
                return False
            if opt._optimizer_step_pre_hooks or opt._optimizer_step_post_hooks:
                return False
            for g in opt.param_groups:
                if g.get("differentiable") or any(torch.is_complex(p) for p in g["params"]) \
                        or any(torch.is_tensor(b) for b in g["betas"]):
                    return False
        return True

    def _layout(self) -> dict:
        """optimizer -> [(settings, [param names], states)] per param group, states created as
        the fused Adam creates them (step a float32 tensor on the parameter's device)."""
        names = {id(t): n for n, t in self._tensors.items()}
        layout = {}
        for opt_name, opt in self.agent.optimizers.items():
            layout[opt_name] = []
            for g in opt.param_groups:
                settings = {k: g.get(k, False) for k in SETTINGS}
                states = []
                for p in g["params"]:
                    s = adam_state(opt, p)
                    if settings["amsgrad"] and "max_exp_avg_sq" not in s:
                        s["max_exp_avg_sq"] = torch.zeros_like(p, memory_format=torch.preserve_format)
                    keys = ("step", "exp_avg", "exp_avg_sq") + (("max_exp_avg_sq",) if settings["amsgrad"] else ())
                    states.append(tuple(s[k] for k in keys))
                layout[opt_name].append((settings, [names[id(p)] for p in g["params"]], states))
        return layout

    def __call__(self, key, batch) -> dict[str, torch.Tensor]:
        if self._tensors is None:
            self._tensors = {**dict(self.agent.named_parameters()), **dict(self.agent.named_buffers())}
        layout = self._layout()
        settings = [s for groups in layout.values() for s, _, _ in groups]
        signature = (key, tuple(_hashable(s) for s in settings), _batch_signature(batch))
        inputs = list(self._tensors.values())
        inputs += [t for groups in layout.values() for _, _, states in groups for state in states for t in state]
        inputs += [t for t in batch if t is not None]
        inputs += [s["lr"] for s in settings if torch.is_tensor(s["lr"])]  # learning-rate tensors
        fn, names = self._graphs.get(signature, lambda: self._compile(key, inputs, layout, batch))
        with torch.no_grad():  # an inference graph: the gradients are inside it
            out = fn(*inputs)
        return dict(zip(names, out))

    def _compile(self, key, inputs, layout, batch):
        """Trace `body` over the flat `inputs` (in the order `__call__` builds them) and compile
        it; returns the callable and the names of the metrics it returns."""
        tensor_names = list(self._tensors)
        present = [t is not None for t in batch]

        def flat_update(*flat):
            it = iter(flat)
            tensors = {n: next(it) for n in tensor_names}
            groups = {opt: [(dict(s), params, [tuple(next(it) for _ in state) for state in states])
                            for s, params, states in g] for opt, g in layout.items()}
            b = type(batch)(*[next(it) if has else None for has in present])
            for g in groups.values():
                for s, _, _ in g:
                    if torch.is_tensor(s["lr"]):
                        s["lr"] = next(it)
            ops = FunctionalOps(self.agent, tensors, {id(t): n for n, t in self._tensors.items()}, groups)
            return self.body(key, b, ops)

        return compile_flat(flat_update, inputs, self.options)


def compile_flat(body, inputs: list, options: dict):
    """`body(*inputs) -> {metric name: tensor}` traced over `inputs` (make_fx, fake tensors) and
    compiled by inductor; returns (the callable, returning a tuple, and the metric names)."""
    names: list = []

    def flat(*flat_inputs):
        metrics = body(*flat_inputs)
        names[:] = list(metrics)
        return tuple(metrics.values())

    graph = make_fx(flat, tracing_mode="fake")(*inputs)
    with torch.no_grad():
        fn = torch._inductor.compile(graph, inputs, options=options)
    return fn, list(names)


def adam_state(opt, p) -> dict:
    """`opt.state[p]`, created as torch's Adam creates it at a first step where it is empty:
    step a float32 tensor on the parameter's device, zero moments."""
    s = opt.state[p]
    if not s:
        s["step"] = torch.tensor(0.0, dtype=torch.float32, device=p.device)
        s["exp_avg"] = torch.zeros_like(p, memory_format=torch.preserve_format)
        s["exp_avg_sq"] = torch.zeros_like(p, memory_format=torch.preserve_format)
    return s


def _hashable(settings: dict) -> tuple:
    """A param group's settings as a dict key: a tensor (a learning rate under cudagraphs) by
    identity, without ever comparing its value (a host sync)."""
    return tuple(("tensor", id(v)) if torch.is_tensor(v) else v for v in (settings[k] for k in SETTINGS))


def _batch_signature(batch) -> tuple:
    """Shape, dtype and device of every tensor field of a batch (None fields as None)."""
    return tuple(None if t is None else (t.shape, t.dtype, t.device) for t in batch)
