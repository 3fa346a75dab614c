"""DrQ(epsilon): finite losses from a real n-step replay buffer, the hard target copy, the
double-DQN target and Huber loss by hand, the dueling combination, 'same' padding sizes, the
epsilon schedule, save/load (same next update), and the plasticity group names."""
import numpy as np
import pytest
import torch

from agents.drq_atari import DRQ_ATARI_DEFAULTS, DrQAtari, DuelingHead
from agents.exploration import linear_epsilon
from plasticity.groups import last_layers, resolve_group
from replay import ReplayBuffer
from replay.sampler import UniformSampler
from replay.storage import TensorStorage, transition_specs

OBS = (4, 36, 36)  # 'same' padding: 36 -> 9 -> 5 -> 5
SMALL = dict(channels=(8, 16, 16), hidden_dims=(32,))


def pixel_buffer(size=200, num_actions=3, seed=0, n_step=10):
    g = torch.Generator().manual_seed(seed)
    storage = TensorStorage(size, transition_specs(OBS, (), obs_dtype=torch.uint8, action_dtype=torch.int64))
    buf = ReplayBuffer(storage, UniformSampler("cpu", seed), n_step=n_step, gamma=0.99)
    pixels = torch.randint(0, 256, (size + 1, *OBS), dtype=torch.uint8, generator=g)
    buf.add_batch(pixels[:-1], torch.randint(0, num_actions, (size,), generator=g),
                  torch.randn(size, generator=g).sign(), pixels[1:],
                  torch.rand(size, generator=g) < 0.05, torch.zeros(size, dtype=torch.bool))
    return buf


def params_equal(a, b):
    return all(torch.equal(p, q) for p, q in zip(a, b))


@pytest.mark.parametrize("activation,padding", [("relu", "same"), ("crelu", "valid")])
def test_update_finite_params_change_and_target_copied(activation, padding):
    torch.manual_seed(0)
    agent = DrQAtari(OBS, 3, activation=activation, conv_padding=padding, **SMALL)
    buf = pixel_buffer()
    batch = buf.sample(8)
    assert batch.obs.dtype == torch.uint8 and batch.action.shape == (8,)
    before = [p.detach().clone() for p in agent._online_params]
    metrics = agent.update(batch)
    assert set(metrics) >= {"td_loss", "q", "target_q"}
    assert all(isinstance(v, torch.Tensor) and not v.requires_grad and torch.isfinite(v)
               for v in metrics.values())
    assert all(not torch.equal(b, p) for b, p in zip(before, agent.encoder.parameters()))
    assert not params_equal(before, agent._online_params)
    for online, target in (("encoder", "encoder_target"), ("critic", "critic_target")):
        assert params_equal(getattr(agent, online).parameters(), getattr(agent, target).parameters())
    for _ in range(5):
        metrics = agent.update(buf.sample(8))
    assert all(torch.isfinite(v) for v in metrics.values())
    assert not any(p.requires_grad for p in agent.critic_target.parameters())


def test_target_update_period_and_grad_clipping():
    torch.manual_seed(0)
    agent = DrQAtari(OBS, 3, target_update_every=2, max_grad_norm=0.5, **SMALL)
    buf = pixel_buffer()
    target_objects = [id(p) for p in agent._target_params]
    initial = [p.detach().clone() for p in agent._target_params]
    metrics = agent.update(buf.sample(8))
    assert "grad_norm" in metrics and params_equal(initial, agent._target_params)  # not due yet
    agent.update(buf.sample(8))
    assert params_equal(agent._online_params, agent._target_params)
    assert [id(p) for p in agent._target_params] == target_objects  # copied in place


def test_double_dqn_target_and_huber_loss_by_hand():
    torch.manual_seed(0)
    agent = DrQAtari(OBS, 4, augment_pad=0, intensity_scale=0.0, **SMALL)
    with torch.no_grad():  # a target that disagrees with the online net
        for p in agent._target_params:
            p.add_(0.3 * torch.randn_like(p))
    agent.on_reset({"rule": "edited by hand"})  # weights changed in place, as after an intervention
    batch = pixel_buffer(num_actions=4).sample(16)
    loss, metrics = agent.td_loss(batch)
    with torch.no_grad():
        q_online_next = agent.critic(agent.encoder(batch.next_obs))  # [B, A]
        q_target_next = agent.critic_target(agent.encoder_target(batch.next_obs))  # [B, A]
        q = agent.critic(agent.encoder(batch.obs))
    b = torch.arange(16)
    a_star = q_online_next.argmax(1)
    y = batch.reward + batch.discount * q_target_next[b, a_star]
    q_taken = q[b, batch.action]
    expected = torch.where((q_taken - y).abs() <= 1, 0.5 * (q_taken - y) ** 2, (q_taken - y).abs() - 0.5).mean()
    torch.testing.assert_close(loss.detach(), expected)
    torch.testing.assert_close(metrics["target_q"], y.mean())
    # without double Q the target network also picks the action
    agent.double = False
    y_dqn = batch.reward + batch.discount * q_target_next.max(1).values
    torch.testing.assert_close(agent.td_loss(batch)[1]["target_q"], y_dqn.mean())
    assert not torch.allclose(y, y_dqn)


def test_dueling_head_is_value_plus_centred_advantage():
    torch.manual_seed(0)
    head = DuelingHead(6, 5)
    x = torch.randn(7, 6)
    value = x @ head.weight[0] + head.bias[0]  # [B]
    adv = x @ head.weight[1:].T + head.bias[1:]  # [B, A]
    torch.testing.assert_close(head(x), value[:, None] + adv - adv.mean(1, keepdim=True))
    v, a = head.value_and_advantage(x)
    torch.testing.assert_close(head(x).mean(1), v)  # mean over actions of Q is V
    assert head.bias.abs().sum() == 0
    plain = DrQAtari(OBS, 5, dueling=False, **SMALL)
    assert type(plain.critic.head).__name__ == "XavierLinear" and plain.critic.head.out_features == 5


def test_same_padding_output_sizes():
    default = DrQAtari((4, 84, 84), 6, hidden_dims=(16,))
    assert default.encoder.out_dim == 64 * 11 * 11  # flax 'SAME': 84 -> 21 -> 11 -> 11
    valid = DrQAtari((4, 84, 84), 6, hidden_dims=(16,), conv_padding="valid")
    assert valid.encoder.out_dim == 64 * 7 * 7  # Nature DQN: 84 -> 20 -> 9 -> 7
    crelu = DrQAtari(OBS, 6, activation="crelu", **SMALL)
    assert crelu.encoder.out_dim == 2 * 16 * 5 * 5 and crelu.critic.head.in_features == 64


def test_epsilon_schedule_and_acting():
    assert linear_epsilon(0, 5000, 0.01) == 1.0
    assert linear_epsilon(2500, 5000, 0.01) == pytest.approx(0.505)
    assert linear_epsilon(5000, 5000, 0.01) == pytest.approx(0.01)
    assert linear_epsilon(10**6, 5000, 0.01) == pytest.approx(0.01)
    torch.manual_seed(0)
    agent = DrQAtari(OBS, 3, epsilon_decay_steps=10, epsilon_eval=0.0, **SMALL)
    obs = torch.randint(0, 256, (6, *OBS), dtype=torch.uint8).numpy()
    assert agent.epsilon == 1.0
    actions = agent.act(obs)  # a batch counts one step per observation
    assert isinstance(actions, np.ndarray) and actions.shape == (6,) and agent._act_steps == 6
    assert agent.epsilon == pytest.approx(0.01 + 0.99 * 0.4)
    single = agent.act(obs[0])
    assert isinstance(single, int) and 0 <= single < 3 and agent._act_steps == 7
    greedy = agent.q_values(torch.as_tensor(obs)).argmax(1).numpy()
    np.testing.assert_array_equal(agent.act(obs, deterministic=True), greedy)  # epsilon_eval 0
    assert agent._act_steps == 7  # evaluation does not advance the schedule
    assert agent.predict(obs[1], deterministic=True)[0] == greedy[1]  # SB3 default: sampled
    agent.act(obs)
    assert agent.epsilon == 0.01
    explorer = DrQAtari(OBS, 3, epsilon_decay_steps=10**9, **SMALL)  # epsilon ~ 1: uniform
    counts = np.bincount(np.concatenate([explorer.act(obs) for _ in range(100)]), minlength=3)
    assert counts.min() > 150


def test_save_load_round_trip(tmp_path):
    torch.manual_seed(0)
    agent = DrQAtari(OBS, 3, activation="crelu", **SMALL)
    buf = pixel_buffer()
    for _ in range(3):
        agent.update(buf.sample(8))
    agent.act(buf.sample(4).obs.numpy())
    agent.save(tmp_path / "agent.pt")
    loaded = DrQAtari.load(tmp_path / "agent.pt")
    assert loaded.hparams == agent.hparams and loaded.obs_shape == OBS
    assert (loaded._act_steps, loaded._update_calls) == (4, 3)
    assert params_equal(agent.parameters(), loaded.parameters())
    batch = buf.sample(8)
    for a in (agent, loaded):
        torch.manual_seed(9)
        a.update(batch)
    assert params_equal(agent.parameters(), loaded.parameters())


def test_plasticity_groups_and_defaults():
    agent = DrQAtari(OBS, 3, **SMALL)
    for pattern in ("encoder", "critic.trunk", "critic.head", "critic"):
        group = resolve_group(agent, pattern)
        assert group.params and set(group.target_params) == set(group.params)
        assert group.optimizers == [agent.optimizers["critic"]]
    assert resolve_group(agent, "critic.head").target_params["critic.head.weight"] is \
        agent.critic_target.head.weight
    assert last_layers(agent, "critic", 1) == ["critic.head"]
    assert DRQ_ATARI_DEFAULTS["lr"] == 1e-4 and DRQ_ATARI_DEFAULTS["adam_eps"] == 1.5e-4
    assert agent.optimizers["critic"].param_groups[0]["eps"] == 1.5e-4
    with pytest.raises(ValueError):
        DrQAtari(OBS, 3, gamma=0.99)


def test_synced_target_skips_its_forward_with_identical_results():
    """With target == online (a hard copy every update) Q'(s') is the online Q(s'): the skipped
    target forward changes nothing, bit for bit; after an intervention the target is used again."""
    from plasticity.scheduler import build_scheduler
    torch.manual_seed(0)
    agent, batch = DrQAtari(OBS, 3, **SMALL), pixel_buffer().sample(8)
    agent.update(batch)
    assert agent._target_synced
    torch.manual_seed(1)
    fast, _ = agent.td_loss(batch)
    agent._target_synced = False
    torch.manual_seed(1)
    slow, _ = agent.td_loss(batch)
    assert torch.equal(fast, slow)
    agent._target_synced = True
    rule = dict(intervention="reset", groups=["critic.head"], unit="updates", every=1,
                target="untouched")
    build_scheduler(agent, [rule]).after_update(1, 1)
    assert not agent._target_synced  # the online head is new, the target's is not
    torch.manual_seed(1)
    with_target, _ = agent.td_loss(batch)
    agent._target_synced = True
    torch.manual_seed(1)
    assert not torch.equal(with_target, agent.td_loss(batch)[0])
