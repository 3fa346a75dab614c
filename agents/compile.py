"""A whole SAC update as one torch.compile graph (opt-in: `SAC(compile="compile")`).

Critic loss, its gradient (torch.func.grad, so the backward is traced and fused with the
forward), the Adam step, actor + temperature loss, gradient and Adam step, and the target
EMA run as one compiled function without graph breaks or host syncs. Parameters, Adam
moments and step counts are updated in place, so their storage never changes and in-place
edits from outside (plasticity interventions, `load_state_dict`) are seen by the next call;
the optimizer state tensors are passed as arguments, so replacing them is seen too.
Random draws use eager's generator in eager's order (`fallback_random`), so a compiled run
consumes the same random stream as an eager one. Limits: Adam without weight decay, amsgrad
or maximize, and no optimizer step hooks; otherwise (checked on every call) the update
falls back to the eager path, which runs the hooks.

On the CPU the graph's kernels are called from a generated C++ wrapper (inductor's
`cpp_wrapper`) instead of Python: 8-13% less time per update on the 2-core CPU (interleaved
A/B in one process; BENCHMARKS.md), for a longer first compile.

Guard cost: dynamo checks ~hundreds of guards (every parameter, optimizer state and module
attribute) before each call, ~0.3 ms of a ~5 ms update on the 2-core CPU. Once a call has run
with guards for a given signature (optimizer settings, tau, batch shapes/dtypes/devices), the
next calls with the same signature skip guard evaluation (`skip_guard_eval_unsafe`); what the
guards would catch beyond that signature (a parameter or module replaced rather than edited in
place, hooks) is either impossible here or checked by `supported()`.
"""
from __future__ import annotations

import torch
from torch.func import functional_call, grad
from torch.optim.optimizer import _global_optimizer_post_hooks, _global_optimizer_pre_hooks

OPTIMIZERS = ("critic", "actor", "log_alpha")


def _adam_(params, grads, states, lr, beta1, beta2, eps) -> None:
    """torch.optim.Adam's update (no weight decay), in place on params and states."""
    for p, g, (step, m, v) in zip(params, grads, states):
        step.add_(1)
        m.lerp_(g, 1 - beta1)
        v.mul_(beta2).addcmul_(g, g, value=1 - beta2)
        bias1 = 1 - beta1 ** step
        bias2_sqrt = (1 - beta2 ** step).sqrt()
        if torch.is_tensor(lr):  # a learning-rate tensor (cudagraphs): read at every call
            p.sub_(m / (v.sqrt() / bias2_sqrt).add_(eps) * (lr / bias1))
        else:
            p.addcdiv_(m, (v.sqrt() / bias2_sqrt).add_(eps), value=-lr / bias1)


class CompiledUpdate:
    """`agent.update` as one compiled graph; see the module docstring."""

    def __init__(self, agent):
        self.agent = agent  # a plain attribute of a plain object: no submodule is registered
        options = {"fallback_random": True}
        if agent.device.type == "cpu":  # kernels called from generated C++, not Python: ~10% per update
            options["cpp_wrapper"] = True
        self._fn = torch.compile(self._update, fullgraph=True, dynamic=False, options=options)
        self._checked = set()  # signatures that have run once with dynamo's guards

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
        hyper = {}
        for name in OPTIMIZERS:
            g = self.agent.optimizers[name].param_groups[0]
            hyper[name] = (g["lr"], *g["betas"], g["eps"])
        states = {name: self._states(name) for name in OPTIMIZERS}
        signature = (tuple(_hashable(h) for h in hyper.values()), self.agent.tau, _batch_signature(batch))
        if signature in self._checked:
            with torch.compiler.set_stance("default", skip_guard_eval_unsafe=True):
                return self._fn(batch, states, hyper)
        out = self._fn(batch, states, hyper)  # guards run (and recompile if anything changed)
        self._checked.add(signature)
        return out

    def _update(self, batch, states, hyper):
        return _sac_update(self.agent, batch, states, hyper)


def _hashable(values: tuple) -> tuple:
    """Settings as a set key: tensors (learning rates under cudagraphs) by identity, without
    ever comparing their values (a host sync)."""
    return tuple(("tensor", id(v)) if torch.is_tensor(v) else v for v in values)


def _batch_signature(batch) -> tuple:
    """Shape, dtype and device of every tensor field of a batch (None fields as None)."""
    return tuple(None if t is None else (t.shape, t.dtype, t.device) for t in batch)


def _named(agent, prefix: str) -> dict:
    if prefix == "log_alpha":
        return {"log_alpha": agent.log_alpha}
    return {f"{prefix}.{n}": p for n, p in getattr(agent, prefix).named_parameters()}


def _sac_update(agent, batch, states, hyper):
    def loss(params, kind, *args):
        return functional_call(agent, params, (kind, *args), strict=False)

    critic = _named(agent, "critic")
    grads, metrics = grad(loss, has_aux=True)(critic, "critic_loss", batch)
    with torch.no_grad():
        _adam_(list(critic.values()), [grads[k] for k in critic], states["critic"], *hyper["critic"])

    actor, alpha = _named(agent, "actor"), _named(agent, "log_alpha")
    grads, actor_metrics = grad(loss, has_aux=True)({**actor, **alpha}, "actor_loss", batch.obs)
    with torch.no_grad():
        _adam_(list(actor.values()), [grads[k] for k in actor], states["actor"], *hyper["actor"])
        _adam_([agent.log_alpha], [grads["log_alpha"]], states["log_alpha"], *hyper["log_alpha"])
        torch._foreach_lerp_(list(agent.critic_target.parameters()), list(agent.critic.parameters()),
                             agent.tau)
    return {**metrics, **actor_metrics}
