"""ReDo: recycle dormant units (Sokar et al. 2023, "The Dormant Neuron Phenomenon in Deep RL").

When its rule fires, on a replay batch of `batch_size` states (its own seeded draw, given by the
trainer; plasticity/forward_calls.py runs one update of a copy of the agent to see the
activations):
  1. every activation module h = act(layer(x)) of the group scores its units
     s_i = E|h_i| / mean_j E|h_j| (E over the batch, and over positions for conv maps; per
     ensemble member: the diagnostics' `unit_scores`); unit i is dormant when s_i <= tau;
  2. a dormant unit's incoming weights (its row of the layer feeding the activation, its
     column of an ensemble layer, its output channel of a conv) are drawn again from that layer's
     own initialiser, its bias is set to 0, and a LayerNorm between layer and activation gets
     its initial gain and shift back for that unit;
  3. its outgoing weights (the columns of every layer that reads the activation's output; for a
     flattened conv map, the columns of all its positions) are set to 0, so the network computes
     the same function right after recycling (without LayerNorm in between);
  4. the Adam moments (exp_avg, exp_avg_sq, max_exp_avg_sq) of exactly those incoming and
     outgoing weights are zeroed in every optimizer holding them; step counts are kept.
Everything is changed in place through masks, so compiled or captured updates stay valid.

Against dopamine's official code (google/dopamine labs/redo/weight_recyclers.py
`NeuronRecycler`): the same score (it adds 1e-9 to the mean instead of our clamp), the same
`<=` test, zero outgoing weights (its default `init_method_outgoing='zero'`), zero bias, zeroed
Adam mu/nu with the count kept, and bias moments left alone, as here. Differences: incoming
weights come from the layer's own initialiser (dopamine: xavier_uniform whatever the layer's
init); which layer feeds which is read from the update's data flow, not from a list of layer
names, so only an activation whose input is one layer's output (or one LayerNorm's on it) is
recycled, as dopamine's resnet rule does for Impala blocks (the activation before a block's first
conv reads the residual stream: skipped); the statistics come from the copy's update, so pixel
batches are augmented (dopamine: a separate batch without augmentation). The output layer has no
activation after it, so it is never recycled (dopamine excludes it by name).
"""
from __future__ import annotations

import torch

from agents.networks import CReLU
from plasticity.diagnostics import ACTIVATION_TYPES, unit_scores
from plasticity.forward_calls import record_calls, same_tensor
from plasticity.fresh import fresh_values
from plasticity.groups import GroupError, _is_target, _target_prefixes
from plasticity.interventions import Intervention

MOMENTS = ("exp_avg", "exp_avg_sq", "max_exp_avg_sq")


def _weight(module):
    w = module._parameters.get("weight")
    return w if w is not None and w.dim() >= 2 else None


def _incoming_mask(w: torch.Tensor, dead: torch.Tensor):
    """Mask of the weights into the dead units: Linear [U, in], ensemble [N, in, U], conv [C, ...]."""
    if dead.dim() == 2 and w.dim() == 3 and w.shape[0] == dead.shape[0] and w.shape[2] == dead.shape[1]:
        return dead[:, None, :].expand_as(w)
    if dead.dim() == 1 and w.dim() in (2, 4) and w.shape[0] == dead.shape[0]:
        return dead.view(-1, *([1] * (w.dim() - 1))).expand_as(w)
    return None


def _bias_mask(b: torch.Tensor, dead: torch.Tensor):
    if b is None:
        return None
    if b.shape == dead.shape:  # [U]
        return dead
    if dead.dim() == 2 and b.dim() == 3 and b.shape == (dead.shape[0], 1, dead.shape[1]):  # [N, 1, U]
        return dead[:, None, :]
    return "bad"


def _outgoing_mask(w: torch.Tensor, dead: torch.Tensor, h: torch.Tensor):
    """Mask of the weights out of the dead units into a layer reading h (or a flattened view)."""
    if dead.dim() == 2 and w.dim() == 3 and w.shape[0] == dead.shape[0] and w.shape[1] == dead.shape[1]:
        return dead[:, :, None].expand_as(w)  # ensemble [N, U, out]
    if dead.dim() != 1:
        return None
    if w.dim() == 4 and w.shape[1] == dead.shape[0]:  # conv reading the map [out, C, k, k]
        return dead.view(1, -1, 1, 1).expand_as(w)
    per_position = h[0].numel() // dead.shape[0] if h.dim() == 4 else 1
    if w.dim() == 2 and w.shape[1] == dead.shape[0] * per_position:  # flattened [C*H*W], channel-major
        return dead.repeat_interleave(per_position)[None, :].expand_as(w)
    return None


class ReDo(Intervention):
    """Recycle dormant units of the group's activations (module docstring)."""

    needs_batch = True

    def __init__(self, tau: float = 0.1, batch_size: int = 256, target: str = "untouched"):
        super().__init__(optimizer="keep", target=target)  # moments: only the recycled weights'
        if not 0.0 <= float(tau) <= 1.0:
            raise ValueError(f"tau={tau}: must be in [0, 1]")
        if not (isinstance(batch_size, int) and batch_size >= 1):
            raise ValueError(f"batch_size={batch_size!r}: must be an integer >= 1")
        self.tau, self.batch_size = float(tau), batch_size
        self.recycled = 0  # units recycled at the last firing
        self.skipped: dict[str, str] = {}  # activation -> why it cannot be recycled

    def event_info(self) -> dict:
        return {"recycled": self.recycled}

    def bind(self, agent, group) -> None:
        super().bind(agent, group)
        targets = _target_prefixes(agent)
        modules = [(n, m) for n, m in agent.named_modules() if not _is_target(n, targets) and group.covers(n)]
        crelu = [n for n, m in modules if isinstance(m, CReLU)]
        if crelu:
            raise GroupError(f"redo on group {group.name!r}: CReLU ({', '.join(crelu)}) has two units "
                             "per pre-activation unit; ReDo is defined for elementwise activations")
        self.activations = [n for n, m in modules if isinstance(m, ACTIVATION_TYPES)]
        if not self.activations:
            raise GroupError(f"redo on group {group.name!r}: no activation module inside it")
        self.watched = set(self.activations) | {n for n, m in agent.named_modules()
                                                if not _is_target(n, targets) and m._parameters}

    def _apply_online(self) -> None:
        if self.batch_source is None:
            raise RuntimeError("ReDo needs a replay batch: ResetScheduler.set_batch_source (the trainer sets it)")
        batch = self.batch_source(self.batch_size)
        self.recycled = 0
        if batch is None:  # nothing stored yet
            return
        calls = record_calls(self.agent, batch, self.watched)
        plans = [plan for name in self.activations if (plan := self._plan(name, calls)) is not None]
        self.recycled = int(sum(int(dead.sum()) for dead, *_ in plans))  # one sync per firing
        for dead, incoming, norms, outgoing in plans:
            self._recycle(incoming, norms, outgoing)

    def _plan(self, name: str, calls):
        """(dead, incoming [(param name, mask)], norm [(param name, mask)], outgoing [...]) for
        one activation, or None (reason in `self.skipped`)."""
        index = next((i for i, c in enumerate(calls) if c.name == name), None)
        if index is None:
            self.skipped[name] = "not called in an update"
            return None
        first = calls[index]
        h = first.output
        dead = unit_scores(h) <= self.tau  # [U], [N, U] or [C]
        producer = _producer(calls[:index], first.args[0])
        norms = []
        if producer is not None and _is_norm(self.agent.get_submodule(producer.name)):
            norms = [producer.name]  # e.g. LayerNorm between the layer and the activation
            producer = _producer(calls[:calls.index(producer)], producer.args[0])
        if producer is None or _weight(self.agent.get_submodule(producer.name)) is None:
            self.skipped[name] = "its input is not one layer's output"
            return None
        layer = self.agent.get_submodule(producer.name)
        w_mask = _incoming_mask(_weight(layer), dead)
        b_mask = _bias_mask(layer._parameters.get("bias"), dead)
        outputs = [c.output for c in calls if c.name == name]
        readers = sorted({c.name for c in calls if c.args and _weight(self.agent.get_submodule(c.name)) is not None
                          and any(same_tensor(c.args[0], o) for o in outputs)})
        outgoing = [(f"{r}.weight", _outgoing_mask(_weight(self.agent.get_submodule(r)), dead, h)) for r in readers]
        if w_mask is None or isinstance(b_mask, str) or not readers or any(m is None for _, m in outgoing):
            self.skipped[name] = "its layers' shapes do not match its units" if readers else \
                "no layer reads its output directly"
            return None
        incoming = [(f"{producer.name}.weight", w_mask)] + ([(f"{producer.name}.bias", b_mask)] if b_mask is not None else [])
        norm_masks = [(f"{n}.{p}", dead) for n in norms for p, v in self.agent.get_submodule(n)._parameters.items()
                      if v is not None and v.shape == dead.shape]
        return dead, incoming, norm_masks, outgoing

    @torch.no_grad()
    def _recycle(self, incoming, norms, outgoing) -> None:
        params = dict(self.agent.named_parameters())
        fresh = fresh_values(self.agent, [n for n, _ in incoming if n.endswith(".weight")] + [n for n, _ in norms])
        for name, mask in incoming + norms:
            p = params[name]
            if name.endswith(".bias") and name not in fresh:
                p.masked_fill_(mask, 0.0)  # dopamine: the bias of a recycled unit is 0
            else:
                p.copy_(torch.where(mask, fresh[name], p))
        for name, mask in outgoing:
            params[name].masked_fill_(mask, 0.0)
        for name, mask in incoming[:1] + outgoing:  # weights only: bias moments are kept
            for opt in self.agent.optimizers.values():
                state = opt.state.get(params[name], {})
                for key in MOMENTS:
                    if key in state:
                        state[key].masked_fill_(mask, 0.0)


def _is_norm(module) -> bool:
    """A module with parameters, all of them 1-D (LayerNorm's gain and shift)."""
    params = [p for p in module._parameters.values() if p is not None]
    return bool(params) and all(p.dim() == 1 for p in params)


def _producer(calls, tensor):
    """The last call (of a module with parameters) whose output is `tensor`."""
    for call in reversed(calls):
        if same_tensor(call.output, tensor):
            return call
    return None
