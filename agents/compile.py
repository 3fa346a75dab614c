"""A whole SAC update as one inductor graph (opt-in: `SAC(compile="compile")`).

Critic loss, its gradient (torch.func.grad, so the backward is traced and fused with the
forward), the Adam step, actor + temperature loss, gradient and Adam step, and the target
EMA are traced once (`make_fx`, fake tensors) into one aten graph whose inputs are an explicit
flat list of tensors: every parameter (critic, target, actor, log alpha), every Adam state
(step, exp_avg, exp_avg_sq) and the batch. `torch._inductor.compile` turns it into one
callable, and each update calls it with that list: no host sync inside the graph (tested),
no dynamo frame evaluation or guard check per call (~0.3-0.5 ms of a ~5 ms update on the
2-core CPU; BENCHMARKS.md).
Parameters, Adam moments and step counts are updated in place, so their storage never changes
and in-place edits from outside (plasticity interventions, `load_state_dict`) are seen by the
next call; the optimizer state tensors are read from the optimizers at every call, so
replacing them is seen too. Parameters themselves must be edited, never replaced (the
parameter list is read once). Random draws use eager's generator in eager's order
(`fallback_random`), so a compiled run consumes the same random stream as an eager one.

One graph per signature: optimizer settings (lr, betas, eps; a learning-rate tensor under
cudagraphs is an input instead), tau, and the batch's shapes, dtypes and devices. A new
signature traces and compiles again. Limits: Adam without weight decay, amsgrad or maximize,
and no optimizer step hooks; otherwise (checked on every call) the update falls back to the
eager path, which runs the hooks.

On the CPU the graph's kernels are called from a generated C++ wrapper (inductor's
`cpp_wrapper`) instead of Python: 8-13% less time per update on the 2-core CPU (interleaved
A/B in one process; BENCHMARKS.md), for a longer first compile.
"""
from __future__ import annotations

import torch
from torch.func import functional_call, grad
from torch.fx.experimental.proxy_tensor import make_fx
from torch.optim.optimizer import _global_optimizer_post_hooks, _global_optimizer_pre_hooks

OPTIMIZERS = ("critic", "actor", "log_alpha")
PARAMETER_GROUPS = ("critic", "critic_target", "actor", "log_alpha")  # the graph's first inputs


def _adam_(params, grads, states, lr, beta1, beta2, eps) -> None:
    """torch.optim.Adam's update (no weight decay), in place on params and states.
    The step-dependent bias corrections 1 - beta^t are computed once for all parameters of
    the optimizer (one small stacked tensor), not inside every parameter's elementwise loop."""
    steps = [step for step, _, _ in states]
    torch._foreach_add_(steps, 1)
    step = torch.stack(steps)  # [P]
    bias1 = 1 - beta1 ** step  # [P]
    bias2_sqrt = (1 - beta2 ** step).sqrt()  # [P]
    for i, (p, g, (_, m, v)) in enumerate(zip(params, grads, states)):
        m.lerp_(g, 1 - beta1)
        v.mul_(beta2).addcmul_(g, g, value=1 - beta2)
        denom = (v.sqrt() / bias2_sqrt[i]).add_(eps)
        p.sub_(m / denom * (lr / bias1[i]))  # tensor arithmetic: addcdiv's value= would read a scalar on the host


class CompiledUpdate:
    """`agent.update` as one compiled graph; see the module docstring."""

    def __init__(self, agent):
        self.agent = agent  # a plain attribute of a plain object: no submodule is registered
        self.options = {"fallback_random": True}
        if agent.device.type == "cpu":  # kernels called from generated C++, not Python: ~10% per update
            self.options["cpp_wrapper"] = True
        self._graphs: dict = {}  # signature -> (compiled callable, metric names)
        self._params = None  # {group: {name: tensor}}, read on the first call

    def supported(self) -> bool:
        """False when the compiled path would not do what the eager update does."""
        if _global_optimizer_pre_hooks or _global_optimizer_post_hooks:
            return False
        for opt in self.agent.optimizers.values():
            if opt._optimizer_step_pre_hooks or opt._optimizer_step_post_hooks or len(opt.param_groups) != 1:
                return False
            g = opt.param_groups[0]
            if g["weight_decay"] or g["amsgrad"] or g["maximize"]:
                return False
        return True

    def _states(self, name: str) -> list:
        """(step, exp_avg, exp_avg_sq) per parameter, created as Adam(fused=True) creates them."""
        opt = self.agent.optimizers[name]
        out = []
        for p in opt.param_groups[0]["params"]:
            s = opt.state[p]
            if not s:
                s["step"] = torch.tensor(0.0, dtype=torch.float32, device=p.device)
                s["exp_avg"] = torch.zeros_like(p, memory_format=torch.preserve_format)
                s["exp_avg_sq"] = torch.zeros_like(p, memory_format=torch.preserve_format)
            out.append((s["step"], s["exp_avg"], s["exp_avg_sq"]))
        return out

    def __call__(self, batch) -> dict[str, torch.Tensor]:
        if self._params is None:
            self._params = {group: _named(self.agent, group) for group in PARAMETER_GROUPS}
        hyper = {}
        for name in OPTIMIZERS:
            g = self.agent.optimizers[name].param_groups[0]
            hyper[name] = (g["lr"], *g["betas"], g["eps"])
        states = {name: self._states(name) for name in OPTIMIZERS}
        signature = (tuple(_hashable(h) for h in hyper.values()), self.agent.tau, _batch_signature(batch))
        inputs = [t for group in self._params.values() for t in group.values()]
        inputs += [t for name in OPTIMIZERS for state in states[name] for t in state]
        inputs += [t for t in batch if t is not None]
        inputs += [h[0] for h in hyper.values() if torch.is_tensor(h[0])]  # learning-rate tensors
        entry = self._graphs.get(signature)
        if entry is None:
            entry = self._graphs[signature] = self._compile(inputs, states, hyper, batch)
        fn, names = entry
        with torch.no_grad():  # an inference graph: the gradients are inside it
            out = fn(*inputs)
        return dict(zip(names, out))

    def _compile(self, inputs, states, hyper, batch):
        """Trace `_sac_update` over the flat `inputs` (same order as `__call__` builds them)
        and compile it; returns the callable and the names of the metrics it returns."""
        given = {id(t) for t in inputs}
        missing = [n for n, t in [*self.agent.named_parameters(), *self.agent.named_buffers()] if id(t) not in given]
        if missing:  # it would be traced as a constant and never see an update
            raise RuntimeError(f"compiled SAC update: tensors not passed to the graph: {missing}")
        layout = {group: list(params) for group, params in self._params.items()}
        state_counts = {name: len(states[name]) for name in OPTIMIZERS}
        present = [t is not None for t in batch]
        names: list = []

        def flat_update(*flat):
            it = iter(flat)
            params = {group: {k: next(it) for k in keys} for group, keys in layout.items()}
            adam = {name: [(next(it), next(it), next(it)) for _ in range(n)] for name, n in state_counts.items()}
            b = type(batch)(*[next(it) if has else None for has in present])
            settings = {name: ((next(it),) if torch.is_tensor(h[0]) else h[:1]) + h[1:] for name, h in hyper.items()}
            metrics = _sac_update(self.agent, params, b, adam, settings)
            names[:] = list(metrics)
            return tuple(metrics.values())

        graph = make_fx(flat_update, tracing_mode="fake")(*inputs)
        with torch.no_grad():
            fn = torch._inductor.compile(graph, inputs, options=self.options)
        return fn, list(names)


def _hashable(values: tuple) -> tuple:
    """Settings as a dict key: tensors (learning rates under cudagraphs) by identity, without
    ever comparing their values (a host sync)."""
    return tuple(("tensor", id(v)) if torch.is_tensor(v) else v for v in values)


def _batch_signature(batch) -> tuple:
    """Shape, dtype and device of every tensor field of a batch (None fields as None)."""
    return tuple(None if t is None else (t.shape, t.dtype, t.device) for t in batch)


def _named(agent, prefix: str) -> dict:
    if prefix == "log_alpha":
        return {"log_alpha": agent.log_alpha}
    return {f"{prefix}.{n}": p for n, p in getattr(agent, prefix).named_parameters()}


def _sac_update(agent, params, batch, states, hyper) -> dict:
    """One SAC update on explicit tensors: `params` {group: {name: tensor}} (PARAMETER_GROUPS),
    `states` {optimizer: [(step, exp_avg, exp_avg_sq)]}, `hyper` {optimizer: (lr, b1, b2, eps)}.
    Everything the losses read is passed in, so nothing is captured as a constant."""
    critic, target, actor, alpha = (params[g] for g in PARAMETER_GROUPS)

    def loss(trained, fixed, kind, *args):
        return functional_call(agent, {**fixed, **trained}, (kind, *args))

    grads, metrics = grad(loss, has_aux=True)(critic, {**target, **actor, **alpha}, "critic_loss", batch)
    with torch.no_grad():
        _adam_(list(critic.values()), [grads[k] for k in critic], states["critic"], *hyper["critic"])

    # the actor loss reads the critic just updated (in place above)
    grads, actor_metrics = grad(loss, has_aux=True)({**actor, **alpha}, {**critic, **target}, "actor_loss",
                                                    batch.obs)
    with torch.no_grad():
        _adam_(list(actor.values()), [grads[k] for k in actor], states["actor"], *hyper["actor"])
        _adam_(list(alpha.values()), [grads[k] for k in alpha], states["log_alpha"], *hyper["log_alpha"])
        torch._foreach_lerp_(list(target.values()), list(critic.values()), agent.tau)
    return {**metrics, **actor_metrics}
