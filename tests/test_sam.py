"""PLASTIC's parts (agents/sam.py, agents/encoders.py ChannelLayerNorm, the plastic presets): SAM's
perturbation and gradients against hand computations, the agents' SAM steps against a step built by
hand, the conv LayerNorm's normalisation, and the presets' values against dojeon-ai/PLASTIC."""
import copy
import math

import pytest
import torch

from agents.drq import DrQ
from agents.drq_atari import DrQAtari
from agents.encoders import ChannelLayerNorm
from agents.sam import sam_gradients, sam_perturbation
from replay.buffer import Batch


def test_perturbation_is_rho_times_the_jointly_normalised_gradient():
    g = [torch.tensor([3.0, 4.0]), torch.tensor([[12.0]])]  # ||g|| = sqrt(9 + 16 + 144) = 13
    e = sam_perturbation(g, 0.26)
    assert torch.allclose(e[0], torch.tensor([0.06, 0.08])) and torch.allclose(e[1], torch.tensor([[0.24]]))
    assert sam_perturbation([torch.zeros(3)], 0.1)[0].eq(0).all()  # no gradient: no step, no NaN


@pytest.mark.parametrize("head", ["clean", "sum", "perturbed"])
def test_sam_gradients_by_hand(head):
    """L(u, v) = c u^2 + v^3 summed: g = (2 c u, 3 v^2); e = rho g / ||g||; the encoder-like u takes
    2 c (u + e_u), v takes its `head` gradient; the weights come back bit for bit."""
    c, rho = 1.5, 0.2
    u = torch.nn.Parameter(torch.tensor([0.5, -1.0]))
    v = torch.nn.Parameter(torch.tensor([2.0]))
    before = (u.detach().clone(), v.detach().clone())
    calls = []

    def loss():
        calls.append(1)
        value = (c * u.pow(2)).sum() + v.pow(3).sum()
        return value, {"loss": value.detach()}

    (metrics,) = sam_gradients(loss, [u, v], [True, False], rho, head)
    gu, gv = 2 * c * before[0], 3 * before[1] ** 2
    norm = math.sqrt(float(gu.pow(2).sum() + gv.pow(2).sum()))
    eu, ev = rho * gu / norm, rho * gv / norm
    sharp_v = 3 * (before[1] + ev) ** 2
    assert len(calls) == 2 and metrics["loss"] == pytest.approx(c * 1.25 + 8.0)
    assert torch.allclose(u.grad, 2 * c * (before[0] + eu))
    assert torch.allclose(v.grad, {"clean": gv, "sum": gv + sharp_v, "perturbed": sharp_v}[head])
    assert torch.equal(u.detach(), before[0]) and torch.equal(v.detach(), before[1])


def test_channel_layer_norm_normalises_each_pixel_over_channels():
    x = torch.randn(2, 5, 3, 4)
    norm = ChannelLayerNorm(5)
    with torch.no_grad():
        norm.weight.copy_(torch.arange(1.0, 6.0))
        norm.bias.fill_(0.5)
    mean = x.mean(dim=1, keepdim=True)
    var = x.var(dim=1, unbiased=False, keepdim=True)
    expected = (x - mean) / torch.sqrt(var + 1e-6) * torch.arange(1.0, 6.0).view(1, 5, 1, 1) + 0.5
    assert torch.allclose(norm(x), expected, atol=1e-5)
    assert norm.eps == 1e-6 and sum(p.numel() for p in norm.parameters()) == 10


# ------------------------------------------------------------------ the agents' SAM steps
PIXELS = (3, 16, 16)


def drq_batch(b=6, seed=0):
    g = torch.Generator().manual_seed(seed)
    return Batch(torch.randint(0, 256, (b, *PIXELS), dtype=torch.uint8, generator=g),
                 torch.rand(b, 2, generator=g) * 2 - 1, torch.randn(b, generator=g),
                 torch.full((b,), 0.99), torch.randint(0, 256, (b, *PIXELS), dtype=torch.uint8, generator=g),
                 torch.arange(b))


def small_drq(**options):
    torch.manual_seed(0)
    return DrQ(PIXELS, 2, hidden_dims=(16,), channels=(4, 8), strides=(2, 2), feature_dim=8,
               conv_layer_norm=True, activation="crelu", conv_activation="relu", **options)


def test_drq_sam_clean_perturbs_only_the_encoders_gradient():
    """sam_head=clean: the critic's projection and MLP step with the unperturbed gradient, so after a
    critic step their gradients and values equal an Adam agent's bit for bit, while the encoder's
    gradient (taken at w + e) differs; rho = 0 gives Adam's step exactly."""
    adam, sam = small_drq(), small_drq(optimizer="sam", sam_rho=0.05)
    flat = small_drq(optimizer="sam", sam_rho=0.0)
    for agent in (adam, sam, flat):
        torch.manual_seed(1)
        agent.update_critic(drq_batch())
    for (name, p), q, r in zip(adam.named_parameters(), sam.parameters(), flat.parameters()):
        assert torch.equal(p, r) and (p.grad is None) == (r.grad is None), name
        if p.grad is None:
            continue
        assert torch.equal(p.grad, r.grad), name
        if name.startswith("critic."):
            assert torch.equal(p, q) and torch.equal(p.grad, q.grad), name
        else:
            assert name.startswith("encoder.") and not torch.equal(p.grad, q.grad), name
    assert sum(p.grad is not None for p in sam.encoder.parameters()) == 8  # 2 convs + 2 LayerNorms


def test_drq_atari_sam_step_matches_a_step_built_by_hand():
    """sam_head=sum (PLASTIC's Atari code): g at w on one augmentation, e = rho g/||g||, g~ at w + e
    on a second augmentation with the target network's Q'; Adam steps the encoder with g~ and the
    Q network with g + g~."""
    from tests.test_drq_atari import OBS, SMALL, pixel_buffer
    torch.manual_seed(0)
    agent = DrQAtari(OBS, 3, optimizer="sam", sam_rho=0.1, conv_layer_norm=True, **SMALL)
    ref = copy.deepcopy(agent)
    batch = pixel_buffer().sample(8)
    torch.manual_seed(5)
    agent.update(batch)

    torch.manual_seed(5)
    params = ref._online_params
    g1 = torch.autograd.grad(ref.td_loss(batch, True)[0], params)
    norm = torch.sqrt(sum((g ** 2).sum() for g in g1))
    saved = [p.detach().clone() for p in params]
    with torch.no_grad():
        for p, g in zip(params, g1):
            p.add_(0.1 * g / norm)
    g2 = torch.autograd.grad(ref.td_loss(batch, False)[0], params)
    n_encoder = len(list(ref.encoder.parameters()))
    with torch.no_grad():
        for i, (p, s) in enumerate(zip(params, saved)):
            p.copy_(s)
            p.grad = torch.empty_like(p).copy_(g2[i] if i < n_encoder else g1[i] + g2[i])  # p's strides
    ref.optimizers["critic"].step()
    ref.update_target()  # target_update_every = 1: the hard copy after the step
    for (name, p), q in zip(agent.named_parameters(), ref.parameters()):
        assert torch.allclose(p, q, atol=1e-6), name


def test_sam_options_are_checked():
    with pytest.raises(ValueError, match="sam_head"):
        small_drq(optimizer="sam", sam_head="both")
    with pytest.raises(ValueError, match="optimizer"):
        small_drq(optimizer="sgd")
    with pytest.raises(ValueError, match="conv_activation"):
        DrQ(PIXELS, 2, conv_activation="swish")


@pytest.mark.slow
def test_compiled_sam_steps_equal_eager_ones():
    """compile=compile: the loss evaluated twice through the compiled graph (~30 s on 2 cores)."""
    from tests.test_drq_atari import OBS, SMALL, pixel_buffer
    runs = {}
    for mode in ("none", "compile"):
        torch.manual_seed(0)
        atari = DrQAtari(OBS, 3, optimizer="sam", conv_layer_norm=True, compile=mode, **SMALL)
        torch.manual_seed(0)
        drq = DrQ(PIXELS, 2, hidden_dims=(16,), channels=(4, 8), strides=(2, 2), feature_dim=8,
                  optimizer="sam", conv_layer_norm=True, compile=mode)
        buf = pixel_buffer()
        torch.manual_seed(3)
        for step in range(3):
            atari.update(buf.sample(8))
            drq.update(drq_batch(seed=step))
        runs[mode] = [p.detach().clone() for p in (*atari.parameters(), *drq.parameters())]
    for p, q in zip(runs["none"], runs["compile"]):
        assert torch.allclose(p, q, atol=1e-6)
