"""SAC: the batched ensemble equals separate critics, the tanh-Gaussian log-density, the
random-subset target, finite losses, the exact target EMA, save/load, and that the compiled
update (`compile=True`) equals the eager one."""
import copy

import numpy as np
import pytest
import torch
from torch import nn

from agents import SAC
from agents.networks import EnsembleCritic, TanhGaussianActor
from replay import ReplayBuffer


def random_buffer(obs_dim=5, action_dim=2, size=300, seed=0):
    g = torch.Generator().manual_seed(seed)
    buf = ReplayBuffer.for_spaces(size, (obs_dim,), (action_dim,), seed=seed)
    buf.add_batch(torch.randn(size, obs_dim, generator=g), torch.rand(size, action_dim, generator=g) * 2 - 1,
                  torch.randn(size, generator=g), torch.randn(size, obs_dim, generator=g),
                  torch.rand(size, generator=g) < 0.05, torch.zeros(size, dtype=torch.bool))
    return buf


def assert_same_next_update(agent, loaded, buf):
    """The same update from the same RNG state leaves both agents with equal parameters."""
    for a in (agent, loaded):
        torch.manual_seed(9)
        a.update(buf.batch_at(torch.arange(32)))
    for p, q in zip(agent.parameters(), loaded.parameters()):
        assert torch.equal(p, q)


@pytest.mark.parametrize("layer_norm", [False, True])
def test_ensemble_critic_equals_separate_critics(layer_norm):
    torch.manual_seed(0)
    ens = EnsembleCritic(5, 2, hidden_dims=(16, 8), num_critics=3, layer_norm=layer_norm)
    with torch.no_grad():  # non-trivial LayerNorm affines so they are checked too
        for p in ens.parameters():
            p.add_(0.1 * torch.randn_like(p))
    obs, act = torch.randn(7, 5), torch.randn(7, 2)
    out = ens(obs, act)
    assert out.shape == (3, 7)
    for j in range(3):
        layers, lin = [], [m for m in ens.trunk if hasattr(m, "in_features")] + [ens.head]
        norms = [m for m in ens.trunk if type(m).__name__ == "EnsembleLayerNorm"]
        for k, m in enumerate(lin):
            linear = nn.Linear(m.in_features, m.out_features)
            linear.weight.data.copy_(m.weight[j].T)
            linear.bias.data.copy_(m.bias[j, 0])
            layers.append(linear)
            if k < len(lin) - 1:
                if layer_norm:
                    ln = nn.LayerNorm(m.out_features)
                    ln.weight.data.copy_(norms[k].weight[j, 0])
                    ln.bias.data.copy_(norms[k].bias[j, 0])
                    layers.append(ln)
                layers.append(nn.ReLU())
        single = nn.Sequential(*layers)(torch.cat([obs, act], -1)).squeeze(-1)
        torch.testing.assert_close(out[j], single, rtol=1e-5, atol=1e-6)


def test_actor_log_prob_matches_change_of_variables():
    torch.manual_seed(1)
    actor = TanhGaussianActor(4, 3, hidden_dims=(16,))
    obs = torch.randn(64, 4)
    torch.manual_seed(2)
    action, log_prob = actor(obs)
    mean, log_std = actor._dist_params(obs)
    torch.manual_seed(2)
    pre_tanh = (mean + log_std.exp() * torch.randn(64, 3)).double()
    # log pi(a) = log N(u; mu, sigma) - sum log(1 - tanh(u)^2), in float64 as the reference
    normal = torch.distributions.Normal(mean.double(), log_std.exp().double())
    expected = (normal.log_prob(pre_tanh) - torch.log1p(-torch.tanh(pre_tanh) ** 2)).sum(-1)
    torch.testing.assert_close(log_prob.double(), expected, rtol=1e-4, atol=1e-3)
    torch.testing.assert_close(action.double(), torch.tanh(pre_tanh), rtol=0, atol=1e-6)
    assert actor(obs, deterministic=True)[0].shape == (64, 3)


def test_target_is_min_over_a_random_subset():
    torch.manual_seed(0)
    agent = SAC(3, 1, num_critics=10, num_target_critics=2, hidden_dims=(8,))
    q = torch.arange(10.0)[:, None].expand(10, 4)  # member j predicts j everywhere
    draws = torch.stack([agent._target_q(q) for _ in range(2000)])  # [2000, 4]
    assert (draws == draws[:, :1]).all()  # one subset per batch, not per sample
    values = draws[:, 0]
    assert values.max() <= 8  # min of 2 distinct members is never the largest
    # P(min of a random pair = 0) = 9/45 = 0.2
    assert abs((values == 0).float().mean().item() - 0.2) < 0.04
    full = SAC(3, 1, num_critics=10, hidden_dims=(8,))
    assert (full._target_q(q) == 0).all()


def test_update_losses_finite_and_target_ema_exact():
    torch.manual_seed(0)
    agent = SAC(5, 2, hidden_dims=(32, 32), tau=0.01)
    buf = random_buffer()
    before = [p.detach().clone() for p in agent.critic_target.parameters()]
    metrics = agent.update(buf.sample(64))
    assert set(metrics) >= {"critic_loss", "actor_loss", "alpha", "entropy", "q"}
    assert all(torch.isfinite(v) for v in metrics.values())
    for t0, t1, online in zip(before, agent.critic_target.parameters(), agent.critic.parameters()):
        torch.testing.assert_close(t1, 0.99 * t0 + 0.01 * online, rtol=0, atol=1e-7)
    for _ in range(50):
        metrics = agent.update(buf.sample(64))
    assert all(torch.isfinite(v) for v in metrics.values())
    assert not any(p.requires_grad for p in agent.critic_target.parameters())


def test_actor_step_leaves_critic_untouched():
    torch.manual_seed(0)
    agent = SAC(5, 2, hidden_dims=(16,))
    critic = [p.detach().clone() for p in agent.critic.parameters()]
    agent.update_actor(random_buffer().sample(32).obs)
    assert all(torch.equal(a, b) for a, b in zip(critic, agent.critic.parameters()))
    assert all(p.grad is None for p in agent.critic.parameters())


def test_temperature_moves_toward_target_entropy():
    torch.manual_seed(0)
    agent = SAC(5, 2, hidden_dims=(16,), target_entropy=-100.0)  # entropy is far above target
    alpha0 = agent.log_alpha.exp().item()
    buf = random_buffer()
    for _ in range(20):
        agent.update(buf.sample(32))
    assert agent.log_alpha.exp().item() < alpha0


def test_save_load_round_trip_gives_identical_actions(tmp_path):
    torch.manual_seed(0)
    agent = SAC(5, 2, hidden_dims=(16, 16), layer_norm=True)
    buf = random_buffer()
    for _ in range(5):
        agent.update(buf.sample(32))
    agent.save(tmp_path / "agent.pt")
    loaded = SAC.load(tmp_path / "agent.pt")
    obs = np.random.default_rng(0).normal(size=(10, 5)).astype(np.float32)
    np.testing.assert_array_equal(agent.act(obs, deterministic=True), loaded.act(obs, deterministic=True))
    torch.manual_seed(5)
    a = agent.act(obs)
    torch.manual_seed(5)
    np.testing.assert_array_equal(a, loaded.act(obs))
    assert loaded.predict(obs[0])[0].shape == (2,)
    assert_same_next_update(agent, loaded, buf)  # optimizer state came along


def test_unknown_argument_is_refused():
    with pytest.raises(ValueError, match="hidden_dims"):
        SAC(3, 1, hiden_dims=(8,))


def test_stable_parameter_names():
    names = dict(SAC(3, 1, hidden_dims=(8, 8)).named_parameters())
    assert {"log_alpha", "critic.head.weight", "critic.trunk.0.weight", "actor.head.weight",
            "critic_target.head.weight"} <= set(names)


def test_crelu_doubles_width_and_trains():
    from agents.networks import CReLU
    h = torch.tensor([[1.0, -2.0, 0.0]])
    assert CReLU()(h).tolist() == [[1.0, 0.0, 0.0, 0.0, 2.0, 0.0]]
    torch.manual_seed(0)
    agent = SAC(5, 2, hidden_dims=(16, 8), activation="crelu")
    assert agent.critic.head.weight.shape == (2, 16, 1)  # fed 2 x 8 features
    assert agent.actor.head.in_features == 16
    metrics = agent.update(random_buffer().sample(32))
    assert all(torch.isfinite(v) for v in metrics.values())


# ------------------------------------------------- compiled update (SAC(compile="compile"))
# Compiling takes 20-40 s on the 2-core CPU, so these are slow; one compiled agent serves all.

def _twin_agents(**kw):
    torch.manual_seed(0)
    eager = SAC(5, 2, hidden_dims=(32, 32), **kw)
    torch.manual_seed(0)
    compiled = SAC(5, 2, hidden_dims=(32, 32), compile="compile", **kw)
    return eager, compiled


def _same_updates(agents, buf, steps, seed):
    for k in range(steps):
        idx = torch.randint(0, len(buf), (64,), generator=torch.Generator().manual_seed(seed + k))
        metrics = []
        for agent in agents:
            torch.manual_seed(seed + k)  # the same policy noise for both
            metrics.append(agent.update(buf.batch_at(idx)))
    return metrics


def _assert_same_state(eager, compiled, atol=1e-5):
    for (name, p), q in zip(eager.named_parameters(), compiled.parameters()):
        torch.testing.assert_close(q, p, rtol=1e-4, atol=atol, msg=lambda m, name=name: f"{name}: {m}")
    for name, opt in eager.optimizers.items():
        for p, q in zip(opt.param_groups[0]["params"], compiled.optimizers[name].param_groups[0]["params"]):
            for field, value in opt.state[p].items():
                torch.testing.assert_close(compiled.optimizers[name].state[q][field], value,
                                           rtol=1e-4, atol=atol, msg=lambda m, name=name, field=field: f"{name} {field}: {m}")


def test_compiled_update_matches_eager_and_sees_in_place_changes():
    """In the default run (~40 s of compiling on 2 cores): the CPU graph is built with
    inductor's C++ wrapper, which needs the machine's compiler and Python headers."""
    eager, compiled = _twin_agents()
    buf = random_buffer()
    storage = [t.data_ptr() for t in compiled.parameters()]
    m_eager, m_compiled = _same_updates([eager, compiled], buf, 3, seed=10)
    _assert_same_state(eager, compiled)
    assert compiled._compiled.supported()  # the compiled path ran, not the eager fallback
    for key, value in m_eager.items():
        torch.testing.assert_close(m_compiled[key], value, rtol=1e-4, atol=1e-5)
    # plasticity-style in-place edits of parameters and Adam state are seen by the next call
    for agent in (eager, compiled):
        with torch.no_grad():
            agent.critic.head.weight.mul_(0)
            agent.actor.trunk[0].weight.mul_(0.5)
        agent.optimizers["critic"].state[agent.critic.head.weight]["exp_avg"].zero_()
        agent.optimizers["critic"].state[agent.critic.head.weight]["step"].zero_()
    _same_updates([eager, compiled], buf, 2, seed=20)
    _assert_same_state(eager, compiled)
    assert [t.data_ptr() for t in compiled.parameters()] == storage
    # a loaded optimizer state (new tensors) is used too
    state = copy.deepcopy(eager.training_state())  # loaded state tensors are not copied: one each
    eager.load_training_state(copy.deepcopy(state))
    compiled.load_training_state(state)
    _same_updates([eager, compiled], buf, 2, seed=30)
    _assert_same_state(eager, compiled)
    # an optimizer step pre-hook forces the eager path, so the hook runs
    calls = []
    handle = compiled.optimizers["critic"].register_step_pre_hook(lambda opt, args, kwargs: calls.append(1))
    assert not compiled._compiled.supported()
    compiled.update(buf.sample(64))
    assert calls == [1]
    handle.remove()
    assert compiled._compiled.supported()
    # a changed setting (a new signature: traced and compiled again) is seen: lr and tau
    eager.load_training_state(copy.deepcopy(compiled.training_state()))
    for agent in (eager, compiled):
        for opt in agent.optimizers.values():
            opt.param_groups[0]["lr"] = 1e-2
        agent.tau = 0.5
    _same_updates([eager, compiled], buf, 2, seed=40)
    _assert_same_state(eager, compiled)
    with torch.profiler.profile() as prof:  # no scalar read on the host inside the graph
        compiled._compiled((True, True, compiled.tau), buf.sample(64))
    ops = {e.name for e in prof.events()}
    assert "aten::_local_scalar_dense" not in ops and "aten::item" not in ops
    assert any("CompiledFxGraph" in name for name in ops)  # the profile saw the compiled graph run


def test_compiled_update_reads_learning_rate_tensors_at_every_call():
    """Under `cudagraphs` the learning rates are tensors (inputs of the graph, not constants):
    the same path on the CPU, and an in-place change of the value needs no new graph."""
    eager, compiled = _twin_agents()
    buf = random_buffer()
    for agent in (eager, compiled):
        for opt in agent.optimizers.values():
            opt.param_groups[0]["lr"] = torch.tensor(1e-2)
    _same_updates([eager, compiled], buf, 2, seed=10)
    _assert_same_state(eager, compiled)
    for agent in (eager, compiled):
        for opt in agent.optimizers.values():
            opt.param_groups[0]["lr"].fill_(3e-3)
    _same_updates([eager, compiled], buf, 2, seed=20)
    _assert_same_state(eager, compiled)
    assert len(compiled._compiled._graphs) == 1


def test_compile_modes_are_checked_and_booleans_are_the_old_spelling():
    agent = SAC(3, 1, hidden_dims=(8,))
    assert agent.hparams["compile"] == "none" and agent._compiled is None
    assert SAC(3, 1, hidden_dims=(8,), compile=False).speed_mode == "none"  # old checkpoints
    assert SAC(3, 1, hidden_dims=(8,), compile=True).speed_mode == "compile"
    with pytest.raises(ValueError, match=r"compile = 'fast': allowed values are \['none', 'compile', 'cudagraphs'\]"):
        SAC(3, 1, hidden_dims=(8,), compile="fast")
    with pytest.raises(ValueError, match="'cudagraphs' needs a CUDA device"):
        SAC(3, 1, hidden_dims=(8,), compile="cudagraphs", device="cpu")


def test_actor_updates_once_per_k_critic_updates_and_the_count_is_saved():
    torch.manual_seed(0)
    agent = SAC(5, 2, hidden_dims=(16, 16), actor_update_every=3)
    buf = random_buffer()
    changed = []
    for _ in range(6):
        actor = [p.detach().clone() for p in agent.actor.parameters()]
        critic = [p.detach().clone() for p in agent.critic.parameters()]
        metrics = agent.update(buf.sample(32))
        changed.append((not all(torch.equal(a, p) for a, p in zip(actor, agent.actor.parameters())),
                        not all(torch.equal(c, p) for c, p in zip(critic, agent.critic.parameters())),
                        "actor_loss" in metrics))
    assert changed == [(False, True, False), (False, True, False), (True, True, True)] * 2
    agent.update(buf.sample(32))  # call 7: the next actor update is call 9
    other = SAC(5, 2, hidden_dims=(16, 16), actor_update_every=3)
    other.load_training_state(agent.training_state())
    assert [("actor_loss" in other.update(buf.sample(32))) for _ in range(3)] == [False, True, False]


def test_crelu_conv_encoder_doubles_channels_and_reports_dormant_channels():
    from agents.encoders import PixelEncoder
    from plasticity.diagnostics import Diagnostics
    torch.manual_seed(0)
    relu = PixelEncoder((3, 20, 20), channels=(8, 8), strides=(2, 1))
    crelu = PixelEncoder((3, 20, 20), channels=(8, 8), strides=(2, 1), activation="crelu")
    assert relu.trunk[2].in_channels == 8 and crelu.trunk[2].in_channels == 16
    pixels = torch.randint(0, 256, (4, 3, 20, 20), dtype=torch.uint8)
    assert crelu(pixels).shape == (4, 16 * 7 * 7) and crelu.out_dim() == 16 * 7 * 7
    diag = Diagnostics(crelu, groups=["trunk"], every=1)
    with diag.capture():
        crelu(pixels)
    # a CReLU pair [relu(h), relu(-h)] is never dead together: at most half the channels dormant
    assert diag.measure()["trunk/dormant_ratio"].item() <= 0.5
