"""Sharpness-aware minimisation (Foret et al. 2021, "Sharpness-Aware Minimization for Efficiently
Improving Generalization") as PLASTIC uses it (Lee et al., NeurIPS 2023), an optimizer option of
the pixel agents (`optimizer=sam`, `sam_rho`, `sam_head`):

    g   = grad L(w)                       the first gradient, at the current weights
    e   = rho * g / (||g||_2 + 1e-12)     ||g|| over every parameter of the loss jointly
    g~  = grad L(w + e)                   the second gradient, at the perturbed weights

and the base optimizer (Adam) steps from w (restored exactly: a saved copy, not w + e - e) with
g~ for the encoder's parameters and, for the rest of the loss's parameters ("head"), by
`sam_head`:

    clean      g     the head takes its unperturbed gradient (PLASTIC's DMC JAX code,
                     dojeon-ai/PLASTIC dmc/continuous_control/networks/common.py
                     `ModelDecoupleOpt.apply_gradient`, only_enc=True)
    sum        g + g~  what PLASTIC's Atari PyTorch code computes with sam_head=False
                     (atari/src/agents/base.py: the head's first gradient is put back before the
                     second backward, which adds to it)
    perturbed  g~    plain SAM: every parameter takes the perturbed gradient

The perturbation covers every parameter of the loss (encoder and head) in all three, as in both
references. The loss is a closure: it is evaluated twice, at w and at w + e; what it draws at
random (augmentations) and its targets are the caller's choice (README "PLASTIC"). Nothing here
reads a tensor on the host: the norm and the scale stay on the device, so the two-step update is
graph-capturable.
"""
from __future__ import annotations

from typing import NamedTuple

import torch

OPTIMIZERS = ("adam", "sam")
SAM_HEAD_GRADIENTS = ("clean", "sum", "perturbed")
SAM_EPS = 1e-12  # davda54/sam and PLASTIC's Atari code: rho / (||g|| + 1e-12)


class Sam(NamedTuple):
    """SAM for an update over stacked members (agents/members.py `MemberOps.step`)."""
    rho: float
    head: str  # one of SAM_HEAD_GRADIENTS
    sharp: list  # the (template agent's) parameters that take the perturbed gradient: the encoder's
    perturbed_args: tuple | None = None  # the loss's arguments at w + e; None: the same as at w


@torch.no_grad()
def sam_perturbation(grads: list[torch.Tensor], rho: float) -> list[torch.Tensor]:
    """e = rho * g / (||g|| + 1e-12), ||g|| the 2-norm of all of `grads` together."""
    norm = torch.linalg.vector_norm(torch.stack(torch._foreach_norm(grads)))
    return torch._foreach_mul(grads, rho / (norm + SAM_EPS))


def sam_gradients(loss_fn, params: list[torch.Tensor], sharp: list[bool], rho: float,
                  head: str = "clean", perturbed_loss_fn=None):
    """Set `.grad` of `params` to SAM's gradients (module docstring) and return what the first
    call of `loss_fn() -> (loss, *rest)` returned (its metrics, at the unperturbed weights).
    `sharp[i]`: params[i] takes the perturbed gradient (the encoder's); the others follow `head`.
    `perturbed_loss_fn`: the loss evaluated at w + e, when it must differ from `loss_fn` (DrQ(eps)
    reads its target network there, as the online one is no longer the target's copy)."""
    if head not in SAM_HEAD_GRADIENTS:
        raise ValueError(f"sam_head = {head!r}: allowed: {list(SAM_HEAD_GRADIENTS)}")
    first = loss_fn()
    g = list(torch.autograd.grad(first[0], params, allow_unused=True, materialize_grads=True))
    e = sam_perturbation(g, rho)
    with torch.no_grad():
        saved = [p.detach().clone() for p in params]
        torch._foreach_add_(params, e)  # w + e
    g_sharp = torch.autograd.grad((perturbed_loss_fn or loss_fn)()[0], params, allow_unused=True,
                                  materialize_grads=True)
    with torch.no_grad():
        torch._foreach_copy_(params, saved)  # back to w, bit for bit
    for p, s, g1, g2 in zip(params, sharp, g, g_sharp):
        p.grad = _laid_out_like(p, sam_choice(g1, g2, s, head))
    return first[1:]


def sam_choice(g: torch.Tensor, g_sharp: torch.Tensor, sharp: bool, head: str) -> torch.Tensor:
    """One parameter's SAM gradient: g~ for a `sharp` one (the encoder's) or with head
    "perturbed", else g + g~ (head "sum") or g (head "clean")."""
    if sharp or head == "perturbed":
        return g_sharp
    return g + g_sharp if head == "sum" else g


def in_module(module, params: list[torch.Tensor]) -> list[bool]:
    """Which of `params` are `module`'s (`sam_gradients`' `sharp` for an encoder)."""
    own = {id(p) for p in module.parameters()}
    return [id(p) in own for p in params]


def _laid_out_like(param: torch.Tensor, grad: torch.Tensor) -> torch.Tensor:
    """`grad` with `param`'s strides, as `backward` would have stored it: `autograd.grad` may give
    a conv weight's gradient in channels-last order, and the fused Adam step pairs the two tensors'
    memory element by element (tested: such a gradient gives another update)."""
    return grad if grad.stride() == param.stride() else torch.empty_like(param).copy_(grad)
