"""M agents trained as one vectorized computation ("members": many seeds and settings in one
process; README "Many seeds in one process").

Every parameter, buffer and optimizer state tensor of the M agents is stored once, stacked with a
leading member dimension [M, ...]; each agent's own tensors become views `stacked[k]` of it
(`MemberStack.bind`). So each member stays an ordinary agent: the trainer acts with it, the reset
scheduler edits its parameters and Adam moments in place (which edits slice k of the stack and
nothing else), checkpoints save it. An update is the agent's update body (the one its `compile`
mode traces, e.g. SAC `_compiled_body`) run once over the stack by `MemberOps`: each loss is
`torch.func.vmap` of `functional_call(template, member tensors, loss)` with its gradient from
`torch.func.grad`, and Adam is applied to the stacked tensors with a per-member step count and
learning rate. No Python loop over members runs in the update.

Random draws in the update (the policy's noise, a target-critic subset) come from the process's
generator, M at a time (`vmap(randomness="different")`): member k's update noise is not the noise
its single run would draw. Its env, exploration and replay-sampling streams are its own (the
trainer's, tested in tests/test_members.py).
"""
from __future__ import annotations

import torch
from torch.func import functional_call, grad, vmap

from agents.acceleration import COMPILE_MODES, CapturedUpdate, CudaGraph
from agents.compile import adam_state
from agents.sam import SAM_EPS, Sam, sam_choice

SHARED_SETTINGS = ("betas", "eps", "weight_decay", "amsgrad", "maximize", "decoupled_weight_decay")


class MemberError(ValueError):
    """Agents that cannot be stacked (different structure, optimizer or settings)."""


class MemberStack:
    """The M agents' tensors stacked; `update(batches)` is one update of every member."""

    def __init__(self, agents: list, mode: str = "none", graph_factory=None):
        if not agents:
            raise MemberError("no members")
        self.agents, self.template = list(agents), agents[0]
        body = getattr(self.template, "member_body", None)
        if body is None:
            raise MemberError(f"{type(self.template).__name__} has no vectorized update body "
                              "(members support SAC, RLPD, DrQ, DrQ(eps) and BBF)")
        self.body, self._constants = body, {}  # [M] tensors of per-member settings (lr, tau), made once each
        self._check_alike()
        self.bind()
        if mode not in COMPILE_MODES:
            raise MemberError(f"members speed mode '{mode}': allowed: {', '.join(COMPILE_MODES)}")
        from agents.members_compile import CompiledMembers
        self._compiled = CompiledMembers(self) if mode != "none" else None
        # cudagraphs: the compiled update captured once per key and replayed (agents/acceleration.py)
        self._graphed = None if mode != "cudagraphs" else CapturedUpdate(
            self._compiled, graph_factory=graph_factory or CudaGraph)

    def _check_alike(self) -> None:
        first = self._shapes(self.template)
        for k, agent in enumerate(self.agents[1:], 1):
            if type(agent) is not type(self.template) or self._shapes(agent) != first:
                raise MemberError(f"member {k} differs in structure from member 0 (members may "
                                  "differ in values only, never in tensor shapes)")
            for name, opt in agent.optimizers.items():
                for g, g0 in zip(opt.param_groups, self.template.optimizers[name].param_groups):
                    for key in SHARED_SETTINGS:
                        if g.get(key) != g0.get(key):
                            raise MemberError(f"member {k}: optimizer '{name}' {key} = "
                                              f"{g.get(key)}, member 0 has {g0.get(key)}")

    @staticmethod
    def _shapes(agent) -> list:
        tensors = {**dict(agent.named_parameters()), **dict(agent.named_buffers())}
        return [(n, tuple(t.shape), t.dtype) for n, t in tensors.items()] + \
            [(name, [len(g["params"]) for g in opt.param_groups]) for name, opt in agent.optimizers.items()]

    # ------------------------------------------------------------- storage
    @torch.no_grad()
    def bind(self) -> None:
        """Stack every member's tensors and make each member's tensors views of the stack.
        Called at construction and after members load a checkpoint (which replaces optimizer
        state tensors)."""
        self.tensors: dict[str, torch.Tensor] = {}  # name -> [M, ...]
        per_member = [{**dict(a.named_parameters()), **dict(a.named_buffers())} for a in self.agents]
        for name in per_member[0]:
            stacked = torch.stack([m[name].detach() for m in per_member])
            for k, m in enumerate(per_member):
                m[name].data = stacked[k]
            self.tensors[name] = stacked
        self.names = {id(t): n for n, t in per_member[0].items()}  # template tensor -> name
        self.adam_views: dict = {}  # eager fused Adam's per-member views of the stacks (`_fused_adam`)
        if getattr(self, "_graphed", None) is not None:  # the graphs read the replaced tensors
            self._graphed.reset()
        self.groups = {}  # optimizer -> [(settings, [param names], [(step, exp_avg, exp_avg_sq)])]
        for opt_name, opt0 in self.template.optimizers.items():
            self.groups[opt_name] = []
            for g_index, g0 in enumerate(opt0.param_groups):
                states = []
                for p_index, p0 in enumerate(g0["params"]):
                    members = [a.optimizers[opt_name] for a in self.agents]
                    params = [o.param_groups[g_index]["params"][p_index] for o in members]
                    states.append(self._stack_state(members, params))
                settings = {k: g0.get(k, False) for k in SHARED_SETTINGS}
                self.groups[opt_name].append((settings, [self.names[id(p)] for p in g0["params"]],
                                              states, g_index))

    @staticmethod
    def _stack_state(optimizers, params) -> tuple:
        """(step [M], exp_avg [M, ...], exp_avg_sq [M, ...]) of one parameter across members,
        created as torch's Adam creates them where a member has not stepped yet."""
        keys = ("step", "exp_avg", "exp_avg_sq")
        for opt, p in zip(optimizers, params):
            adam_state(opt, p)
        out = []
        for key in keys:
            stacked = torch.stack([opt.state[p][key].detach().to(p.device) for opt, p in zip(optimizers, params)])
            for k, (opt, p) in enumerate(zip(optimizers, params)):
                opt.state[p][key] = stacked[k]
            out.append(stacked)
        return tuple(out)

    def _merged_key(self, keys: list[tuple]) -> tuple:
        """The group's key: the members' keys, which must agree except at the agent's
        `member_key_values` positions (values such as tau, or DrQ(eps)'s synced flag), which
        become the tuple of the members' values there when they differ (`PerMember`: `ops.ema_`
        reads it as per-member rates; DrQ(eps) as "not all synced")."""
        per_member = set(getattr(self.template, "member_key_values", ()))
        merged = []
        for i, values in enumerate(zip(*keys)):
            if all(v == values[0] for v in values):
                merged.append(values[0])
            elif i in per_member:
                merged.append(PerMember(values))
            else:
                raise MemberError(f"members disagree on the update's key: {keys}")
        return tuple(merged)

    @property
    def lr_tensors(self) -> bool:
        """Whether learning rates are device tensors (cudagraphs, agents/acceleration.py)."""
        return torch.is_tensor(next(iter(self.template.optimizers.values())).param_groups[0]["lr"])

    def host_learning_rates(self, opt_name: str, g_index: int) -> tuple[float, ...]:
        """The members' learning rates of one param group, as numbers."""
        return tuple(float(a.optimizers[opt_name].param_groups[g_index]["lr"]) for a in self.agents)

    def _learning_rates(self, opt_name: str, g_index: int) -> torch.Tensor:
        """[M] the members' learning rates of one param group (they may differ). Under cudagraphs
        each is a device tensor (agents/acceleration.py): stacked on the device, never read here."""
        if self.lr_tensors:
            return torch.stack([a.optimizers[opt_name].param_groups[g_index]["lr"] for a in self.agents]).float()
        lrs = self.host_learning_rates(opt_name, g_index)
        key = (opt_name, g_index, lrs)
        if key not in self._constants:  # a tensor made once per setting, not per update
            self._constants[key] = torch.tensor(lrs, dtype=torch.float32, device=self.template.device)
        return self._constants[key]

    # -------------------------------------------------------------- update
    def update(self, batches: list | None, stacked=None) -> list[dict]:
        """One update of every member on its own batch (`batches`, one per member, or `stacked`:
        their fields already [M, B, ...], replay/member_replay.py); each member's metrics."""
        key = self._merged_key([a.member_update_key() for a in self.agents])
        batch = stacked if stacked is not None else type(batches[0])(
            *[None if f is None else torch.stack(list(fs)) for f, fs in zip(batches[0], zip(*batches))])
        if self._graphed is not None:  # replayed from a CUDA graph (static batch copied in)
            metrics = self._graphed(key, batch)
        elif self._compiled is not None:  # one inductor graph (agents/members_compile.py)
            metrics = self._compiled(key, batch)
        else:  # eager: Adam as the members' own fused kernel (`_fused_adam`)
            metrics = self.body(key, batch, MemberOps(self, fused=True))
        return [{name: value[k] for name, value in metrics.items()} for k in range(len(self.agents))]


class MemberOps:
    """`FunctionalOps` (agents/compile.py) over the stacked tensors: `step` vmaps a loss and its
    gradient over members and applies Adam to the stack; `tensors` maps agent tensors to stacks."""

    def __init__(self, stack: MemberStack, fused: bool = False):
        self.stack, self.fused = stack, fused  # fused: eager, not traced (agents/members_compile.py)

    def tensors(self, real) -> list[torch.Tensor]:
        return [self.stack.tensors[self.stack.names[id(t)]] for t in real]

    def step(self, loss: str, optimizer_names, *args, sam: Sam | None = None,
             max_grad_norm: float | None = None) -> dict:
        """Every member's gradient of `agent(loss, *args)` (one vmap), then Adam on the stacks.
        `sam`: SAM's gradients instead (agents/sam.py), the loss taken again at each member's
        w + e with `sam.perturbed_args` (None: the same args); `max_grad_norm`: each member's
        gradients clipped by their own total norm, as `clip_grad_norm_` (metric `grad_norm`)."""
        stack = self.stack
        trained = {n for name in optimizer_names for _, names, _, _ in stack.groups[name] for n in names}
        params = {n: stack.tensors[n] for n in trained}
        fixed = {n: t for n, t in stack.tensors.items() if n not in trained}
        template = stack.template
        sharp = set() if sam is None else {stack.names[id(t)] for t in sam.sharp}
        first = len(args)

        def member_loss(p, f, *member_args):
            return functional_call(template, {**f, **p}, (loss, *member_args))

        def member_grads(p, f, *member_args):  # one member's gradients and metrics
            g, metrics = grad(member_loss, has_aux=True)(p, f, *member_args[:first])
            if sam is not None:
                g = _sam_gradients(member_loss, p, f, g, sharp, sam, member_args[first:] or member_args[:first])
            if max_grad_norm is not None:
                g, metrics["grad_norm"] = _clipped(g, max_grad_norm)
            return g, metrics

        extra = () if sam is None or sam.perturbed_args is None else tuple(sam.perturbed_args)
        dims = tuple(_in_dims(a) for a in (*args, *extra))  # a batch's None fields are not mapped
        grads, metrics = vmap(member_grads, in_dims=(0, 0, *dims), randomness="different")(
            params, fixed, *args, *extra)
        with torch.no_grad():
            for name in optimizer_names:
                for settings, names, states, g_index in stack.groups[name]:
                    if self.fused and not stack.lr_tensors:
                        _fused_adam([stack.tensors[n] for n in names], [grads[n] for n in names], states,
                                    stack.host_learning_rates(name, g_index), settings,
                                    stack.adam_views.setdefault((name, g_index), {}))
                        continue
                    lr = stack._learning_rates(name, g_index)
                    for n, state in zip(names, states):
                        _adam(stack.tensors[n], grads[n], state, lr, settings)
        return metrics

    @torch.no_grad()
    def ema_(self, targets, onlines, rate) -> None:
        """targets <- (1 - rate) targets + rate onlines, in place on the stacks; `rate` is one
        number for every member or a `PerMember` tuple (each member's own tau)."""
        targets, onlines = self.tensors(targets), self.tensors(onlines)
        if not isinstance(rate, PerMember):
            torch._foreach_lerp_(targets, onlines, rate)
            return
        cache = getattr(self.stack, "_constants", {})  # eager: made once (a copy to the device is a sync)
        key = ("rate", tuple(rate), targets[0].dtype)
        if key not in cache:  # (traced by CompiledMembers: a constant of the graph, whose key holds it)
            cache[key] = torch.tensor(rate, dtype=targets[0].dtype, device=targets[0].device)  # [M]
        weights = cache[key]
        for t, o in zip(targets, onlines):
            t.lerp_(o, weights.view((-1,) + (1,) * (t.dim() - 1)))  # member k's slice by its own rate

    @torch.no_grad()
    def call(self, name: str, *args):
        """`agent(name, *args)` of every member on its own tensors, without gradient: [M, ...]."""
        stack = self.stack
        dims = tuple(_in_dims(a) for a in args)
        return vmap(lambda t, *member_args: functional_call(stack.template, t, (name, *member_args)),
                    in_dims=(0, *dims), randomness="different")(stack.tensors, *args)


def _sam_gradients(member_loss, p, f, g, sharp: set, sam: Sam, perturbed_args) -> dict:
    """agents/sam.py `sam_gradients` for one member, functionally: e = rho g / (||g|| + 1e-12)
    over all of its trained parameters, g~ at w + e (w itself is never changed), and each
    parameter's gradient g~ (named in `sharp`, or every one with head "perturbed"), g + g~
    (head "sum") or g (head "clean")."""
    scale = sam.rho / (_total_norm(g) + SAM_EPS)
    g_sharp, _ = grad(member_loss, has_aux=True)({n: x + g[n] * scale for n, x in p.items()}, f,
                                                 *perturbed_args)
    return {n: sam_choice(g[n], g_sharp[n], n in sharp, sam.head) for n in g}


def _clipped(g: dict, max_norm: float) -> tuple[dict, torch.Tensor]:
    """`torch.nn.utils.clip_grad_norm_`'s math on one member's gradients: scaled by
    min(1, max_norm / (total norm + 1e-6)); returns them and the total norm."""
    total = _total_norm(g)
    coef = torch.clamp(max_norm / (total + 1e-6), max=1.0)
    return {n: x * coef for n, x in g.items()}, total


def _total_norm(g: dict) -> torch.Tensor:
    """The 2-norm of one member's gradients together (as `clip_grad_norm_` and SAM take it)."""
    return torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(x) for x in g.values()]))


class PerMember(tuple):
    """The members' values at a key position where they may differ (e.g. each member's tau)."""


def _in_dims(arg):
    """vmap's in_dims for one argument: 0 for a tensor, per field of a batch (None where a field
    is None), None for anything else (a Python flag the loss takes, shared by every member)."""
    if isinstance(arg, tuple) and hasattr(arg, "_fields"):
        return type(arg)(*[None if f is None else 0 for f in arg])
    return 0 if torch.is_tensor(arg) else None


def _fused_adam(params: list, grads: list, states: list, lrs: tuple, settings: dict,
                views: dict | None = None) -> None:
    """torch.optim.Adam(fused=True)'s own step (`torch._fused_adam_` / `_fused_adamw_`, one kernel)
    on the stacked parameters [M, ...] of one param group, fed each member's slices as tensors of
    their own with its own step count: member k's step is its single agent's fused step (given
    the same gradients). One call per distinct learning rate. `views`: where the parameters' and
    states' per-member views are kept between updates (they stay valid until the next bind)."""
    if settings["amsgrad"] or settings["maximize"]:
        raise MemberError("members support Adam / AdamW without amsgrad or maximize")
    members: dict[float, list[int]] = {}
    for k, lr in enumerate(lrs):
        members.setdefault(lr, []).append(k)
    step = torch._fused_adamw_ if settings["decoupled_weight_decay"] else torch._fused_adam_
    beta1, beta2 = settings["betas"]
    views = {} if views is None else views
    for lr, ks in members.items():
        key = tuple(ks)
        if key not in views:  # steps (0-dim views of each [M] count), params, exp_avgs, exp_avg_sqs
            views[key] = ([state[0][k] for state in states for k in ks], [p[k] for p in params for k in ks],
                          [state[1][k] for state in states for k in ks],
                          [state[2][k] for state in states for k in ks])
        steps, member_params, exp_avgs, exp_avg_sqs = views[key]
        torch._foreach_add_(steps, 1)
        step(member_params, [g[k] for g in grads for k in ks], exp_avgs, exp_avg_sqs, [], steps,
             lr=lr, beta1=beta1, beta2=beta2, weight_decay=settings["weight_decay"],
             eps=settings["eps"], amsgrad=False, maximize=False)


def _adam(param, grad_, state, lr, settings: dict) -> None:
    """torch.optim.Adam / AdamW's math on a stacked parameter [M, ...] with per-member step
    counts [M] and learning rates [M] (the bias corrections of member k use its own step)."""
    step, exp_avg, exp_avg_sq = state
    if settings["amsgrad"] or settings["maximize"]:
        raise MemberError("members support Adam / AdamW without amsgrad or maximize")
    beta1, beta2 = settings["betas"]
    shape = (-1,) + (1,) * (param.dim() - 1)  # [M] -> [M, 1, ...] broadcast over a member's tensor
    step += 1
    t, lr = step.view(shape), lr.view(shape)
    wd = settings["weight_decay"]
    if wd:
        if settings["decoupled_weight_decay"]:
            param.mul_(1 - lr * wd)
        else:
            grad_ = grad_.add(param, alpha=wd)
    exp_avg.lerp_(grad_, 1 - beta1)
    exp_avg_sq.mul_(beta2).addcmul_(grad_, grad_, value=1 - beta2)
    bias1, bias2 = 1 - beta1 ** t, 1 - beta2 ** t
    denom = (exp_avg_sq.sqrt() / bias2.sqrt()).add_(settings["eps"])
    param.sub_(lr / bias1 * exp_avg / denom)
