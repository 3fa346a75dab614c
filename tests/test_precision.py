"""Mixed precision and memory layout of the conv agents (DrQ, DrQ(eps), BBF): `precision="bf16"`
(forward passes under bfloat16 autocast) and `channels_last=True` (NHWC convs) give the fp32 losses
within a stated tolerance, a bf16 update keeps fp32 parameters and optimizer states, both options
reach every convolution, and bad values are refused with the key and the allowed values.

Each comparison builds the agent twice with the same weights and computes the losses of the same
batch after the same `torch.manual_seed`, so the augmentations and the actor's noise are the same
draws and the only difference is the arithmetic. Tolerances (relative, on each loss):

  * bf16 (with or without channels_last): rtol 5e-2. bfloat16 keeps 8 significant bits (a relative
    rounding error of 2^-9 ~ 2e-3 per value, about 3 significant digits); a few layers of matmuls
    and convolutions in bf16 with fp32 accumulation stay well inside 5%: the measured differences
    are < 1e-3 of the losses here. Acting outputs (Q-values, actions) are compared with an absolute
    tolerance of 5e-2 times their largest magnitude, since a relative test is meaningless near 0
    (measured: up to 2e-2 for BBF's small Q-values, 7e-3 for the others).
  * channels_last alone (fp32): rtol 1e-5: the same arithmetic in fp32; only the summation order
    inside the conv kernels may change (measured: ~2e-7 relative, or bitwise equal).

Sizes are tiny (DrQ 9x16x16, DrQ(eps) 4x36x36 with 8-16 channels, BBF width 1 / hidden 32 at 84x84,
batch 4) to keep this file at a few seconds on a CPU.
"""
import numpy as np
import pytest
import torch
from torch import nn

from agents import AGENTS
from agents.bbf import BBF
from agents.drq import DrQ
from agents.drq_atari import DrQAtari
from runner.validate import ConfigError, validate_config
from tests.conftest import make_config
from tests.test_bbf import filled_buffer
from tests.test_drq import pixel_buffer as drq_buffer
from tests.test_drq_atari import pixel_buffer as atari_buffer

BF16_RTOL = 5e-2  # bf16 vs fp32 (see the module docstring)
LAYOUT_RTOL = 1e-5  # channels_last vs contiguous, both fp32

SETUPS = {  # agent -> (class, obs_shape, action arg, small hparams)
    "drq": (DrQ, (9, 16, 16), 2, dict(hidden_dims=(32, 32), feature_dim=8, channels=(8, 8, 8, 8))),
    "drq_atari": (DrQAtari, (4, 36, 36), 3, dict(channels=(8, 16, 16), hidden_dims=(32,))),
    "bbf": (BBF, (4, 84, 84), 6, dict(width_scale=1, hidden_dims=(32,), spr_horizon=3)),
}
VARIANTS = [(dict(channels_last=True), LAYOUT_RTOL), (dict(precision="bf16"), BF16_RTOL),
            (dict(precision="bf16", channels_last=True), BF16_RTOL)]


def build(name, reference=None, **options):
    cls, obs_shape, actions, small = SETUPS[name]
    torch.manual_seed(0)
    agent = cls(obs_shape, actions, **small, **options)
    if reference is not None:
        agent.load_state_dict(reference.state_dict())
    return agent


def batch_for(name, agent):
    if name == "drq":
        return drq_buffer().sample(4)
    if name == "drq_atari":
        return atari_buffer().sample(4)
    torch.manual_seed(5)
    return filled_buffer().sample_request(agent.replay_request(4))  # sequences with importance weights


def losses(name, agent, batch) -> dict[str, torch.Tensor]:
    """The losses of one update on `batch`, computed after the same seed."""
    torch.manual_seed(1)
    if name == "drq":
        critic, _, obs = agent.critic_loss(batch)  # obs: the first augmented view
        with torch.no_grad(), agent._autocast():
            features = agent.encoder(obs)
        actor, _ = agent.actor_loss(features)
        return {"critic_loss": critic, "actor_and_alpha_loss": actor}
    if name == "drq_atari":
        return {"td_loss": agent.td_loss(batch)[0]}
    td, spr, _ = agent.losses(batch)
    total = ((td + agent.h["spr_weight"] * spr) * batch.weights).mean()
    return {"c51_loss": td.mean(), "spr_loss": spr.mean(), "loss": total}


def outputs(name, agent, batch) -> torch.Tensor:
    """What acting reads: deterministic actions (DrQ) or Q-values (the others), fp32."""
    obs = batch.obs
    if name == "drq":
        return torch.as_tensor(agent.act(obs.numpy(), deterministic=True))
    with torch.no_grad():
        # BBF acts with its target network
        return agent.q_values(obs) if name == "drq_atari" else agent._target_q_values(obs)


@pytest.mark.parametrize("options, rtol", VARIANTS, ids=["channels_last", "bf16", "bf16+channels_last"])
@pytest.mark.parametrize("name", list(SETUPS))
def test_losses_match_fp32(name, options, rtol):
    """Losses within `rtol` of fp32 (bf16: 5e-2, ~3 significant digits; channels_last in fp32:
    1e-5, the same arithmetic up to summation order); acting outputs within rtol * their scale."""
    ref = build(name)
    agent = build(name, ref, **options)
    batch = batch_for(name, ref)
    expected, got = losses(name, ref, batch), losses(name, agent, batch)
    for key, value in got.items():
        assert value.dtype == torch.float32 and torch.isfinite(value), key
        torch.testing.assert_close(value, expected[key], rtol=rtol, atol=0.0, msg=lambda m: f"{key}: {m}")
    out_ref, out = outputs(name, ref, batch), outputs(name, agent, batch)
    assert out.dtype == torch.float32
    torch.testing.assert_close(out, out_ref, rtol=0.0, atol=rtol * float(out_ref.abs().max()))


@pytest.mark.parametrize("name", list(SETUPS))
def test_bf16_update_is_finite_and_keeps_fp32_state(name, tmp_path):
    """Two bf16 + channels_last updates: finite fp32 losses, trained fp32 parameters, fp32 optimizer
    states, conv weights still NHWC (optimizer states too); acting works; save/load keeps both."""
    agent = build(name, precision="bf16", channels_last=True)
    before = [p.detach().clone() for p in agent.parameters()]
    for _ in range(2):
        metrics = agent.update(batch_for(name, agent))
    assert all(v.dtype == torch.float32 and torch.isfinite(v).all() for v in metrics.values())
    assert any(not torch.equal(a, p) for a, p in zip(before, agent.parameters()))
    convs = [p for p in agent.parameters() if p.dim() == 4]
    assert convs and all(p.is_contiguous(memory_format=torch.channels_last) for p in convs)
    assert all(p.dtype == torch.float32 for p in agent.parameters())
    for opt in agent.optimizers.values():
        assert opt.state
        for p, state in opt.state.items():
            for value in state.values():
                assert value.dtype == torch.float32
                if value.dim() == 4:
                    assert value.is_contiguous(memory_format=torch.channels_last)
    obs = batch_for(name, agent).obs
    action = agent.act(obs[:2].numpy(), deterministic=True)
    assert isinstance(action, np.ndarray) and len(action) == 2

    agent.save(tmp_path / "agent.pt")
    loaded = type(agent).load(tmp_path / "agent.pt")
    assert loaded.precision == "bf16" and loaded.channels_last is True
    assert all(p.is_contiguous(memory_format=torch.channels_last)
               for p in loaded.parameters() if p.dim() == 4)
    assert all(torch.equal(a, b) for a, b in zip(agent.state_dict().values(), loaded.state_dict().values()))


@pytest.mark.parametrize("name", list(SETUPS))
@pytest.mark.parametrize("options", [dict(), dict(precision="bf16", channels_last=True)],
                         ids=["defaults", "bf16+channels_last"])
def test_options_reach_every_convolution(name, options):
    """Every conv of the loss (online, target, BBF's transition model) gets NHWC inputs and
    computes in bf16 with the options, and contiguous fp32 without them."""
    agent = build(name, **options)
    seen = []

    def record(module, args, out):
        x = args[0]
        seen.append((x.is_contiguous(memory_format=torch.channels_last) and
                     (x.shape[-1] * x.shape[-2] == 1 or not x.is_contiguous()), out.dtype))

    convs = [m for m in agent.modules() if isinstance(m, nn.Conv2d)]
    handles = [m.register_forward_hook(record) for m in convs]
    losses(name, agent, batch_for(name, agent))
    for h in handles:
        h.remove()
    assert len(seen) >= len(convs)
    nhwc, dtype = options.get("channels_last", False), torch.bfloat16 if options else torch.float32
    assert all(flag == nhwc for flag, _ in seen)
    assert all(d == dtype for _, d in seen)


@pytest.mark.parametrize("name", list(SETUPS))
def test_bad_values_name_key_and_allowed(name):
    cls, obs_shape, actions, small = SETUPS[name]
    assert AGENTS[name][1]["precision"] == "fp32" and AGENTS[name][1]["channels_last"] is False
    # the constructor checks with the rules config validation uses (agents/hparams.py)
    with pytest.raises(ValueError, match=r"precision = 'fp16': must be one of \['fp32', 'bf16'\]"):
        cls(obs_shape, actions, **small, precision="fp16")
    with pytest.raises(ValueError, match=r"channels_last = 'yes': must be true or false"):
        cls(obs_shape, actions, **small, channels_last="yes")


@pytest.mark.parametrize("name, env", [("drq", "dmc_pixels/cartpole_swingup"), ("drq_atari", "atari/pong"),
                                       ("bbf", "atari/pong")])
def test_config_keys_and_validation(name, env):
    cfg = make_config(f"agent={name}", f"env={env}")
    assert cfg["agent"]["precision"] == "fp32" and cfg["agent"]["channels_last"] is False
    validate_config(make_config(f"agent={name}", f"env={env}", "agent.precision=bf16",
                                "agent.channels_last=true"))
    with pytest.raises(ConfigError) as err:
        validate_config(make_config(f"agent={name}", f"env={env}", "agent.precision=fp16",
                                    "agent.channels_last=3"))
    assert "agent.precision = 'fp16': must be one of ['fp32', 'bf16']" in str(err.value)
    assert "agent.channels_last = 3: must be true or false" in str(err.value)
