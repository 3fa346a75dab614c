"""DrQ (continuous control from pixels): update on tiny images, gradient routing, named groups,
Nikishin's reset through the scheduler, optional group patterns, save/load."""
import pytest
import torch

from agents import DrQ
from plasticity.groups import GroupError, resolve_group
from plasticity.scheduler import build_scheduler
from replay import ReplayBuffer
from replay.sampler import UniformSampler
from replay.storage import TensorStorage, transition_specs

OBS = (9, 16, 16)  # 3 stacked RGB frames; 16x16 -> 1x1x32 conv features


def pixel_buffer(steps=40, seed=0):
    g = torch.Generator().manual_seed(seed)
    buf = ReplayBuffer(TensorStorage(100, transition_specs(OBS, (2,), obs_dtype=torch.uint8)),
                       UniformSampler(seed=seed))
    for t in range(steps):
        obs = torch.randint(0, 256, OBS, generator=g, dtype=torch.uint8)
        nxt = torch.randint(0, 256, OBS, generator=g, dtype=torch.uint8)
        buf.add(obs, torch.rand(2, generator=g) * 2 - 1, float(t % 3), nxt, False, t % 10 == 9)
    return buf


def agent_and_batch(**kw):
    torch.manual_seed(0)
    agent = DrQ(OBS, 2, hidden_dims=(32, 32), feature_dim=8, **kw)
    return agent, pixel_buffer().sample(16)


def test_update_is_finite_and_trains_encoder_through_the_critic_only():
    agent, batch = agent_and_batch()
    enc = [p.detach().clone() for p in agent.encoder.parameters()]
    actor = [p.detach().clone() for p in agent.actor.parameters()]
    metrics = agent.update(batch)
    assert all(torch.isfinite(v).all() for v in metrics.values())
    assert {"critic_loss", "actor_loss", "alpha"} <= set(metrics)
    assert any(not torch.equal(a, b) for a, b in zip(enc, agent.encoder.parameters()))
    assert any(not torch.equal(a, b) for a, b in zip(actor, agent.actor.parameters()))
    # the encoder is in the critic optimizer only; the actor loss gives it no gradient
    critic_ids = {id(p) for g in agent.optimizers["critic"].param_groups for p in g["params"]}
    actor_ids = {id(p) for g in agent.optimizers["actor"].param_groups for p in g["params"]}
    assert all(id(p) in critic_ids and id(p) not in actor_ids for p in agent.encoder.parameters())
    agent.zero_grad(set_to_none=True)
    loss, _ = agent.actor_loss(agent.encoder(batch.obs).detach())
    loss.backward()
    assert all(p.grad is None for p in agent.encoder.parameters())


def test_target_tracks_encoder_and_critic_by_ema():
    agent, batch = agent_and_batch(tau=0.5)
    agent.update(batch)
    # after one update: target = 0.5 * old + 0.5 * new, and old target == old online (deep copy)
    torch.manual_seed(0)
    fresh = DrQ(OBS, 2, hidden_dims=(32, 32), feature_dim=8, tau=0.5)
    for (name, tgt), old in zip(agent.encoder_target.named_parameters(), fresh.encoder.parameters()):
        new = dict(agent.encoder.named_parameters())[name]
        assert torch.allclose(tgt, 0.5 * old + 0.5 * new, atol=1e-6), name


def test_act_single_and_batch_in_bounds():
    agent, batch = agent_and_batch()
    a = agent.act(batch.obs[0].numpy())
    assert a.shape == (2,) and (abs(a) <= 1).all()
    assert agent.act(batch.obs.numpy(), deterministic=True).shape == (16, 2)


def test_named_groups_and_optional_patterns():
    agent, _ = agent_and_batch()
    for group in ("encoder", "critic.head", "critic.proj", "actor", "log_alpha"):
        assert resolve_group(agent, [group]).params
    g = resolve_group(agent, ["critic.head", "policy.head?"])  # optional pattern may miss
    assert set(g.params) == {"critic.head.weight", "critic.head.bias"}
    with pytest.raises(GroupError, match="policy"):
        resolve_group(agent, ["policy?"])  # but not every pattern
    targets = resolve_group(agent, ["encoder"]).target_params
    assert targets["encoder.trunk.0.weight"] is agent.encoder_target.trunk[0].weight


def test_reset_but_encoder_keeps_encoder_and_its_adam_state():
    """Nikishin et al. 2022's DrQ reset through the shared scheduler."""
    agent, batch = agent_and_batch()
    for _ in range(3):
        agent.update(batch)
    rule = dict(intervention="reset", groups=["actor?", "critic", "log_alpha?"], unit="updates",
                every=3, optimizer="reset", target="copy_online")
    scheduler = build_scheduler(agent, [rule])
    enc = {n: p.detach().clone() for n, p in agent.encoder.named_parameters()}
    head = agent.critic.head.weight.detach().clone()
    adam = agent.optimizers["critic"]
    enc_moment = adam.state[agent.encoder.trunk[0].weight]["exp_avg"].clone()
    assert scheduler.after_update(3, 3)  # fires
    for n, p in agent.encoder.named_parameters():
        assert torch.equal(p, enc[n]), n
    assert torch.equal(adam.state[agent.encoder.trunk[0].weight]["exp_avg"], enc_moment)
    assert enc_moment.abs().sum() > 0
    assert not torch.equal(agent.critic.head.weight, head)
    assert torch.equal(adam.state[agent.critic.head.weight]["exp_avg"],
                       torch.zeros_like(agent.critic.head.weight))
    assert torch.equal(agent.critic_target.head.weight, agent.critic.head.weight)
    assert torch.isclose(agent.log_alpha.exp(), torch.tensor(0.1))


def test_save_load_round_trip(tmp_path):
    agent, batch = agent_and_batch()
    agent.update(batch)
    agent.save(tmp_path / "agent.pt")
    loaded = DrQ.load(tmp_path / "agent.pt")
    for (n, p), q in zip(agent.state_dict().items(), loaded.state_dict().values()):
        assert torch.equal(p, q), n
    torch.manual_seed(3)
    m1 = agent.update(batch)
    torch.manual_seed(3)
    m2 = loaded.update(batch)
    assert torch.equal(m1["critic_loss"], m2["critic_loss"])


def test_rejects_flat_observations():
    with pytest.raises(ValueError, match=r"\[C, H, W\]"):
        DrQ(10, 2)
