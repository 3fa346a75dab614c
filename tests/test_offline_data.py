"""Offline data: collect -> Minari -> TensorStorage round trips, terminations vs truncations,
dict-observation flattening, mismatch errors, exact mixing fractions, n-step targets that stay
inside one storage and one episode, and resume of a mixed buffer."""
import os

import gymnasium
import minari
import numpy as np
import pytest
import torch
from gymnasium import spaces
from minari.data_collector.episode_buffer import EpisodeBuffer

from agents import SAC
from envs import make_env
from envs.obs_layout import obs_layout
from envs.wrappers import FlattenFloat32Observation
from replay import (DatasetMismatchError, ReplayBuffer, RewardTransform, TensorStorage,
                    load_offline, transition_specs)
from replay.dataset_writer import write_dataset
from runner.collect import collect, main
from runner.seeding import derived_seed

COUNTDOWN = "PlasticrlCountdown-v0"


class CountdownEnv(gymnasium.Env):
    """obs [t, x], reward t; terminates at a horizon drawn in [3, 12) at reset, so the
    8-step time limit truncates the longer ones. Actions in [-2, 2] (rescaled by make_env)."""
    observation_space = spaces.Box(-np.inf, np.inf, (2,), np.float32)
    action_space = spaces.Box(-2.0, 2.0, (1,), np.float32)

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.t, self.x, self.horizon = 0, 0.0, int(self.np_random.integers(3, 12))
        return self._obs(), {}

    def step(self, action):
        self.t, self.x = self.t + 1, self.x + float(action[0])
        return self._obs(), float(self.t), self.t >= self.horizon, False, {}

    def _obs(self):
        return np.array([self.t, self.x], np.float32)


if COUNTDOWN not in gymnasium.registry:
    gymnasium.register(COUNTDOWN, entry_point="tests.test_offline_data:CountdownEnv",
                       max_episode_steps=8)


def spaces_of(env_id):
    env = make_env(env_id)
    return env.observation_space, env.action_space


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    path = tmp_path_factory.mktemp("minari")
    collect("gym:Pendulum-v1", "test/pendulum-random-v0", episodes=2, root=path, progress=False)
    collect(f"gym:{COUNTDOWN}", "test/countdown-v0", episodes=12, root=path, seed=3, progress=False)
    return path


def load(root, dataset_id, env_id, **kw):
    return load_offline(dataset_id, *spaces_of(env_id), root=root, env_name=env_id, **kw)


def test_pendulum_round_trip(root):
    data = load(root, "test/pendulum-random-v0", "gym:Pendulum-v1")
    s = data.storage.fields
    assert (data.episodes, data.steps, data.closed_by_loader, len(data.storage)) == (2, 400, 0, 400)
    assert s["obs"].shape == s["next_obs"].shape == (400, 3) and s["obs"].dtype == torch.float32
    assert s["action"].shape == (400, 1) and s["action"].dtype == torch.float32
    assert s["reward"].shape == (400,) and s["reward"].dtype == torch.float32
    assert s["action"].abs().max() <= 1.0
    assert not s["terminated"].any()  # Pendulum only truncates
    assert s["truncated"].nonzero().flatten().tolist() == [199, 399]
    within = torch.ones(399, dtype=torch.bool)
    within[199] = False
    assert torch.equal(s["next_obs"][:-1][within], s["obs"][1:][within])  # s'_t = s_{t+1}
    first, _ = make_env("gym:Pendulum-v1").reset(seed=derived_seed(0, 3, 0))
    assert np.array_equal(s["obs"][0].numpy(), first)  # reproducible resets
    assert data.metadata["plasticrl_env_id"] == "gym:Pendulum-v1"
    assert data.metadata["env_spec_id"] == "Pendulum-v1"


def test_terminations_and_truncations_kept_apart(root):
    data = load(root, "test/countdown-v0", f"gym:{COUNTDOWN}")
    raw = list(minari.MinariDataset(root / "test/countdown-v0" / "data").iterate_episodes())
    term = np.concatenate([ep.terminations for ep in raw])
    trunc = np.concatenate([ep.truncations for ep in raw])
    assert (term & ~trunc).any() and (trunc & ~term).any()  # both kinds occur (and both at once)
    s = data.storage.fields
    assert np.array_equal(s["terminated"].numpy(), term)
    assert np.array_equal(s["truncated"].numpy(), trunc)
    t = s["obs"][:, 0]  # step index within the episode
    ends = torch.cat([t[1:] == 0, torch.tensor([True])])  # next row starts an episode
    assert torch.equal(ends, s["terminated"] | s["truncated"])
    assert (s["next_obs"][:, 0] == t + 1).all() and torch.equal(s["reward"], t + 1)
    assert torch.equal(s["truncated"], ends & (t + 1 == 8))  # the time limit, and only it
    assert data.metadata["algorithm_name"] == "random"


def test_steps_budget_truncates_the_cut_episode(tmp_path):
    collect(f"gym:{COUNTDOWN}", "test/cut-v0", steps=20, root=tmp_path, progress=False)
    data = load(tmp_path, "test/cut-v0", f"gym:{COUNTDOWN}")
    assert data.steps == 20 and data.storage.fields["truncated"][-1]


def test_open_episode_ends_dict_obs_and_action_rescale(tmp_path):
    """A foreign dataset: AntMaze-style dict observations, actions in [-2, 2], episode ends
    recorded as neither terminated nor truncated."""
    obs_space = spaces.Dict({"observation": spaces.Box(-9, 9, (3,), np.float32),
                             "achieved_goal": spaces.Box(-9, 9, (2,), np.float32),
                             "desired_goal": spaces.Box(-9, 9, (2,), np.float32)})
    act_space = spaces.Box(-2.0, 2.0, (1,), np.float32)
    rng, episodes = np.random.default_rng(0), []
    for e, steps in enumerate([4, 3]):
        obs = {k: rng.normal(size=(steps + 1, *s.shape)).astype(np.float32)
               for k, s in obs_space.items()}
        episodes.append(EpisodeBuffer(id=e, observations=obs,
                                      actions=np.array([[-2.0], [0.0], [2.0], [1.0]][:steps], np.float32),
                                      rewards=[0.0] * steps, terminations=[False] * steps,
                                      truncations=[False] * steps))
    write_dataset(episodes, "ext/antmaze-like-v0", obs_space, act_space, root=tmp_path,
                  algorithm_name="x", description="x")
    class DictEnv(gymnasium.Env):  # what our env wrapper makes of one such observation
        observation_space, action_space = obs_space, act_space
    wrapper = FlattenFloat32Observation(DictEnv())
    env_obs = spaces.Box(-np.inf, np.inf, (7,), np.float32)
    env_act = spaces.Box(-1.0, 1.0, (1,), np.float32)
    with pytest.raises(DatasetMismatchError, match="key order of the env is unknown"):
        load_offline(tmp_path / "ext/antmaze-like-v0", env_obs, env_act)  # no env id, no layout
    data = load_offline(tmp_path / "ext/antmaze-like-v0", env_obs, env_act,
                        reward_transform=RewardTransform(shift=-1.0),
                        obs_layout=obs_layout(wrapper))
    s = data.storage.fields
    assert data.closed_by_loader == 2 and s["truncated"].nonzero().flatten().tolist() == [3, 6]
    assert not s["terminated"].any()
    assert s["action"].flatten().tolist() == [-1.0, 0.0, 1.0, 0.5, -1.0, 0.0, 1.0]
    assert (s["reward"] == -1.0).all()  # AntMaze's r - 1

    step0 = {k: v[0] for k, v in episodes[0].observations.items()}
    assert np.array_equal(s["obs"][0].numpy(), wrapper.observation(step0))
    assert np.array_equal(s["obs"][0, :2].numpy(), step0["achieved_goal"])  # sorted key order


def test_mismatched_dataset_is_refused(root):
    with pytest.raises(DatasetMismatchError) as err:
        load(root, "test/pendulum-random-v0", f"gym:{COUNTDOWN}")
    msg = str(err.value)
    for part in ("test/pendulum-random-v0", f"gym:{COUNTDOWN}", "(3,)", "(2,)",
                 "gym:Pendulum-v1", "runner.collect"):
        assert part in msg
    with pytest.raises(DatasetMismatchError, match="action kind: dataset continuous"):
        load(root, "test/pendulum-random-v0", "gym:CartPole-v1")
    with pytest.raises(FileNotFoundError, match="runner.collect"):
        load(root, "test/missing-v0", "gym:Pendulum-v1")


def marked_buffers(offline_reward=1.0, online_reward=0.0, n_off=50, n_on=30, seed=0, device="cpu"):
    offline = TensorStorage(n_off, transition_specs((1,), (1,)), device)
    offline.add_batch(obs=torch.arange(n_off).float()[:, None], action=torch.zeros(n_off, 1),
                      reward=torch.full((n_off,), offline_reward), next_obs=torch.zeros(n_off, 1),
                      terminated=torch.zeros(n_off, dtype=torch.bool),
                      truncated=torch.arange(n_off) % 10 == 9)
    online = ReplayBuffer.for_spaces(100, (1,), (1,), device=device, seed=seed)
    for i in range(n_on):
        online.add([float(i)], [0.0], online_reward, [0.0], False, i % 7 == 6)
    return online, offline


@pytest.mark.parametrize("fraction", [0.0, 0.25, 0.5, 1.0])
@pytest.mark.parametrize("batch_size", [64, 7])
def test_mixing_fraction_is_exact_per_batch(fraction, batch_size):
    online, offline = marked_buffers()
    mixed = online.with_offline(offline, fraction, seed=1)
    k = int(np.floor(fraction * batch_size + 0.5))  # 0.5 * 7 = 3.5 -> 4, 0.25 * 7 = 1.75 -> 2
    for _ in range(5):
        batch = mixed.sample(batch_size)
        assert batch.reward.shape == (batch_size,)
        assert batch.reward.tolist() == [1.0] * k + [0.0] * (batch_size - k)  # offline rows first
        assert (batch.idx[:k] < 50).all() and (batch.idx[k:] >= 50).all()


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_mixed_sampling_on_cuda_makes_no_host_sync():
    online, offline = marked_buffers(device="cuda")
    mixed = online.with_offline(offline, 0.25)
    mixed.sample(64, n_step=3)  # warm-up
    torch.cuda.set_sync_debug_mode("error")
    try:
        batch = mixed.sample(64, n_step=3)
    finally:
        torch.cuda.set_sync_debug_mode(0)
    assert batch.reward.device.type == "cuda" and (batch.idx < 50).sum().item() == 16


def test_empty_online_part():
    online, offline = marked_buffers(n_on=0)
    assert online.with_offline(offline, 0.5).sample(16).reward.tolist() == [1.0] * 16
    with pytest.raises(RuntimeError, match="online part is empty"):
        online.with_offline(offline, 0.0).sample(16)
    with pytest.raises(ValueError, match="offline_fraction"):
        online.with_offline(offline, 1.5)


def walk(s, i, n, gamma):
    """Reference n-step target of row i of a storage filled in order: (return, discount, next)."""
    ret = 0.0
    for k in range(n):
        ret += gamma ** k * s["reward"][i + k].item()
        if s["terminated"][i + k]:
            return ret, 0.0, i + k
        if s["truncated"][i + k] or k == n - 1 or i + k + 1 == len(s["reward"]):
            return ret, gamma ** (k + 1), i + k
    raise AssertionError


def test_nstep_stays_in_its_storage_and_episode(root):
    data = load(root, "test/countdown-v0", f"gym:{COUNTDOWN}")
    obs_space, act_space = spaces_of(f"gym:{COUNTDOWN}")
    online = ReplayBuffer.for_spaces(64, obs_space.shape, act_space.shape, n_step=4, gamma=0.5)
    for i in range(20):  # online rewards 1000: any offline return reaching them would show
        online.add([0.0, 0.0], [0.0], 1000.0, [1.0, 0.0], False, i == 19)
    mixed = online.with_offline(data, 0.5, seed=2)
    s, cap = data.storage.fields, data.storage.capacity
    for _ in range(10):
        b = mixed.sample(32)
        for row in range(16):  # offline rows
            i = b.idx[row].item()
            ret, disc, last = walk(s, i, 4, 0.5)
            assert (b.reward[row].item(), b.discount[row].item()) == (ret, disc)
            assert torch.equal(b.next_obs[row], s["next_obs"][last])
            assert b.next_obs[row, 0] > b.obs[row, 0]  # same episode: the step index grew
        assert (b.reward[:16] < 100).all() and (b.reward[16:] >= 1000).all()
        assert torch.equal(b.next_obs[16:], online.batch_at(b.idx[16:] - cap).next_obs)


def test_mixed_resume_is_bitwise_and_checks_the_dataset(root, tmp_path):
    env_id = f"gym:{COUNTDOWN}"
    obs_space, act_space = spaces_of(env_id)

    def build(**kw):
        buf = ReplayBuffer.for_spaces(64, obs_space.shape, act_space.shape, n_step=3, seed=5)
        for i in range(40):
            buf.add([float(i), 0.0], [0.1], float(i), [i + 1.0, 0.0], False, i % 9 == 8)
        return buf.with_offline(load(root, "test/countdown-v0", env_id, **kw), 0.25, seed=5)

    a = build()
    a.sample(32)
    torch.save(a.state_dict(), tmp_path / "replay.pt")
    expected = [a.sample(32) for _ in range(3)]
    b = build()
    b.load_state_dict(torch.load(tmp_path / "replay.pt", weights_only=False))
    for want in expected:
        got = b.sample(32)
        assert all((x is None and y is None) or torch.equal(x, y) for x, y in zip(got, want))
    with pytest.raises(ValueError, match="offline data differ"):
        build(reward_transform=RewardTransform(shift=-1.0)).load_state_dict(a.state_dict())


def test_reward_transform_same_on_both_paths():
    t = RewardTransform(scale=0.1, shift=-1.0)
    rewards = np.random.default_rng(0).normal(size=100)
    batch = t(rewards)
    assert batch.dtype == np.float32
    assert all(batch[i] == t(float(r)) for i, r in enumerate(rewards))  # online: one float


def test_collect_agent_policy_and_overwrite(tmp_path, capsys):
    agent = SAC(3, 1, hidden_dims=(8, 8))
    agent.save(tmp_path / "agent.pt")
    args = ["--env", "gym:Pendulum-v1", "--dataset-id", "tt/agent-v0", "--root", str(tmp_path),
            "--steps", "30", "--agent", str(tmp_path / "agent.pt"), "--noise-std", "0.3",
            "--epsilon", "0.5", "--no-progress"]
    assert main(args) == 0
    data = load(tmp_path, "tt/agent-v0", "gym:Pendulum-v1")
    assert data.metadata["plasticrl_policy"] == "SAC + gaussian noise std 0.3, epsilon 0.5 uniform"
    assert data.storage.fields["action"].abs().max() <= 1.0
    assert main(args) == 2 and "--overwrite" in capsys.readouterr().err  # never silently replaced
    assert main(args[:8] + ["--no-progress", "--overwrite"]) == 0  # now a random policy
    assert load(tmp_path, "tt/agent-v0", "gym:Pendulum-v1").metadata["plasticrl_policy"] == "random"
    assert sorted(os.listdir(tmp_path)) == ["agent.pt", "tt"]  # no temporary directory left


def test_collect_to_a_relative_root(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # minari would join a relative root onto its own paths
    collect("gym:Pendulum-v1", "rel/pendulum-v0", episodes=1, root="data/minari", progress=False)
    assert (tmp_path / "data/minari/rel/pendulum-v0/data/metadata.json").is_file()


def reward_dataset(root, dataset_id, episode_rewards, obs_dim=2):
    """A hand-made dataset: one episode per list of rewards, each ending terminated."""
    obs_space = spaces.Box(-np.inf, np.inf, (obs_dim,), np.float32)
    act_space = spaces.Box(-1.0, 1.0, (1,), np.float32)
    episodes = []
    for e, rewards in enumerate(episode_rewards):
        n = len(rewards)
        episodes.append(EpisodeBuffer(
            id=e, observations=np.arange((n + 1) * obs_dim, dtype=np.float32).reshape(n + 1, obs_dim),
            actions=np.zeros((n, 1), np.float32), rewards=list(rewards),
            terminations=[False] * (n - 1) + [True], truncations=[False] * n))
    write_dataset(episodes, dataset_id, obs_space, act_space, root=root, algorithm_name="hand-made",
                  description="rewards for the returns_range tests")
    return root / dataset_id


# returns -1, 7, 2.5: 1000 / (7 - (-1)) = 125, exact in float32 like every product below
EPISODES = [[-0.5, -0.5], [3.0, 4.0], [1.25, 1.25]]
ENV_SPACES = (spaces.Box(-np.inf, np.inf, (2,), np.float32), spaces.Box(-1.0, 1.0, (1,), np.float32))


def test_returns_range_scales_by_1000_over_the_return_range(tmp_path):
    """IQL train_offline.py `normalize`: rewards / (max return - min return) * 1000."""
    path = reward_dataset(tmp_path, "hand/returns-v0", EPISODES)
    raw = np.concatenate(EPISODES).astype(np.float32)
    plain = load_offline(path, *ENV_SPACES)
    assert plain.storage.fields["reward"].numpy().tolist() == raw.tolist()
    assert plain.return_range == (-1.0, 7.0) and plain.reward_transform == RewardTransform()
    data = load_offline(path, *ENV_SPACES, reward_normalization="returns_range")
    assert data.return_range == (-1.0, 7.0) and data.reward_transform == RewardTransform(125.0, 0.0)
    assert data.storage.fields["reward"].numpy().tolist() == (raw * 125).tolist()
    assert data.storage.fields["reward"].tolist() == [-62.5, -62.5, 375.0, 500.0, 156.25, 156.25]
    # then reward_scale and reward_shift: r' = 2 * 125 * r - 1
    both = load_offline(path, *ENV_SPACES, reward_normalization="returns_range",
                        reward_transform=RewardTransform(scale=2.0, shift=-1.0))
    assert both.reward_transform == RewardTransform(250.0, -1.0)
    assert both.storage.fields["reward"].tolist() == [-126.0, -126.0, 749.0, 999.0, 311.5, 311.5]


def test_returns_range_applies_to_online_rewards(tmp_path):
    from types import SimpleNamespace

    from runner.offline import attach_offline, reward_transform
    path = reward_dataset(tmp_path, "hand/returns-v0", EPISODES)
    cfg = {"dataset": str(path), "fraction": 0.5, "reward_scale": 1.0, "reward_shift": 0.0,
           "reward_normalization": "returns_range"}
    env = SimpleNamespace(observation_space=ENV_SPACES[0], action_space=ENV_SPACES[1])
    online = ReplayBuffer.for_spaces(16, (2,), (1,))
    buffer, data = attach_offline(online, cfg, env, "hand", "cpu", seed=0)
    transform = reward_transform(cfg, data)
    assert transform is data.reward_transform  # one transform for both parts of the buffer
    for r in (-0.5, 3.0, 1.25, 0.0, 8.0):
        assert transform(r) == np.float32(r * 125.0)
    assert buffer.offline.storage.fields["reward"].tolist() == [transform(r) for r in np.concatenate(EPISODES)]
    with pytest.raises(ValueError, match="offline.reward_normalization = 'returns_range'.*OfflineData"):
        reward_transform(cfg)  # without the dataset there is no scale
    assert attach_offline(online, {**cfg, "dataset": None}, env, "hand", "cpu", seed=0) == (online, None)


def test_returns_range_refuses_equal_returns_and_unknown_names(tmp_path):
    equal = reward_dataset(tmp_path, "hand/equal-v0", [[1.0, 2.0], [3.0], [0.5, 2.5]])  # all 3
    with pytest.raises(ValueError, match=r"reward_normalization = 'returns_range'.*3 episode\(s\) "
                                         r"whose returns span \[3.0, 3.0\]"):
        load_offline(equal, *ENV_SPACES, reward_normalization="returns_range")
    one = reward_dataset(tmp_path, "hand/one-v0", [[1.0, 2.0]])
    with pytest.raises(ValueError, match="1 episode"):
        load_offline(one, *ENV_SPACES, reward_normalization="returns_range")
    with pytest.raises(ValueError, match=r"reward_normalization = 'abc': must be one of \['none', "
                                         r"'returns_range'\]"):
        load_offline(equal, *ENV_SPACES, reward_normalization="abc")


def test_mixed_buffer_serves_sequence_requests_per_part():
    """BBF-style requests (K-step sequences) with a dataset: offline rows' sequences come from
    the offline storage, online rows' from the online one; masks stop at each part's episode
    ends and never run from one part into the other."""
    from replay import ReplayRequest
    online, offline = marked_buffers(n_off=50, n_on=30)
    mixed = online.with_offline(offline, 0.5, seed=2)
    batch = mixed.sample_request(ReplayRequest(16, n_step=1, gamma=0.9, horizon=3))
    assert batch.future_obs.shape == (16, 3, 1) and batch.weights is None
    assert (batch.idx[:8] < 50).all() and (batch.idx[8:] >= 50).all()
    for row in range(16):
        start, offline_row = int(batch.obs[row, 0]), row < 8
        period = 10 if offline_row else 7  # episode lengths of marked_buffers' two parts
        stored = 50 if offline_row else 30
        valid = [j for j in range(3) if (start % period) + j < period and start + j < stored]
        assert batch.mask[row].tolist() == [j in valid for j in range(3)], row
        assert batch.actions[row].shape == (3, 1)
    assert mixed.sample_sequences(4, 2).mask.shape == (4, 2)


def test_prioritized_replay_with_a_dataset_is_refused_before_any_work(tmp_path):
    from runner.validate import ConfigError, validate_config
    from tests.conftest import make_config
    cfg = make_config("agent=bbf", "env=atari/pong", f"offline.dataset={tmp_path}")
    with pytest.raises(ConfigError, match="agent.prioritized = true with offline.dataset: prioritized "
                                          "replay over an offline dataset is not supported"):
        validate_config(cfg)
