"""Datasets recorded by others' tools load into our buffer in our env's layout: Minari's
DataCollector (needs `minari[create]`, i.e. jax) on gym envs, and shimmy's dm_control wrapper,
whose Dict observation space gymnasium sorts by key (walker: height, orientations, velocity)
while our DMCEnv keeps dm_control's order (orientations, height, velocity)."""
from collections import OrderedDict

import gymnasium
import numpy as np
import pytest
from gymnasium import spaces

from envs import make_env
from envs.obs_layout import obs_layout
from replay import load_offline

pytest.importorskip("jax", reason="Minari's DataCollector needs minari[create] (jax)")
from minari import DataCollector  # noqa: E402

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning:minari")  # author/permalink nags
ORDERED = "PlasticrlOrderedDict-v0"


class OrderedDictEnv(gymnasium.Env):
    """Dict observations in an order of their own (an OrderedDict space is not sorted)."""
    observation_space = spaces.Dict(OrderedDict(
        z=spaces.Box(-10, 10, (2,), np.float32), a=spaces.Box(-10, 10, (), np.float32)))
    action_space = spaces.Box(-3.0, 3.0, (1,), np.float32)

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.x = self.np_random.uniform(-1, 1, 3).astype(np.float32)
        return self._obs(), {}

    def step(self, action):
        self.x = self.x + np.float32(action[0])
        return self._obs(), float(self.x[0]), False, False, {}

    def _obs(self):
        return OrderedDict(z=self.x[:2].copy(), a=np.array(self.x[2]))


if ORDERED not in gymnasium.registry:
    gymnasium.register(ORDERED, entry_point="tests.test_minari_collectors:OrderedDictEnv",
                       max_episode_steps=6)


def record(env, dataset_id, seeds, steps=None):
    """Random episodes through Minari's DataCollector; returns the dataset's directory."""
    collector = DataCollector(env)
    collector.action_space.seed(0)
    for seed in seeds:
        collector.reset(seed=seed)
        for _ in range(steps or 10**6):
            *_, terminated, truncated, _ = collector.step(collector.action_space.sample())
            if terminated or truncated:
                break
    dataset = collector.create_dataset(dataset_id, algorithm_name="random", author="test",
                                       description="recorded by a test")
    collector.close()
    return dataset, dataset.spec.data_path


@pytest.fixture(autouse=True)
def minari_root(tmp_path, monkeypatch):
    monkeypatch.setenv("MINARI_DATASETS_PATH", str(tmp_path))  # DataCollector writes there


def test_shimmy_walker_loads_in_our_order():
    shimmy = pytest.importorskip("shimmy")
    from dm_control import suite

    # gymnasium.make("dm_control/walker-walk-v0") cannot be recorded: its entry point is a
    # function, which Minari cannot store as JSON; the wrapper itself can
    env = gymnasium.wrappers.TimeLimit(
        shimmy.DmControlCompatibilityV0(suite.load("walker", "walk")), max_episode_steps=20)
    assert list(env.observation_space) == ["height", "orientations", "velocity"]  # sorted
    dataset, path = record(env, "shimmy/walker-walk-v0", seeds=[5, 6])
    ours = make_env("dmc:walker-walk")
    data = load_offline(path, ours.observation_space, ours.action_space,
                        env_name="dmc:walker-walk")
    obs = data.storage.fields["obs"].numpy()
    assert data.episodes == 2 and obs.shape == (40, 24)
    raw = list(dataset.iterate_episodes())
    recorded = {k: np.concatenate([ep.observations[k][:-1] for ep in raw]) for k in
                ("orientations", "height", "velocity")}
    assert np.array_equal(obs[:, :14], recorded["orientations"].astype(np.float32))
    assert np.array_equal(obs[:, 14], recorded["height"].astype(np.float32))
    assert np.array_equal(obs[:, 15:], recorded["velocity"].astype(np.float32))
    for seed, ep, start in zip([5, 6], raw, [0, 20]):  # our env, same seed and actions
        rows = [ours.reset(seed=seed)[0]] + [ours.step(a)[0] for a in ep.actions[:-1]]
        assert np.array_equal(obs[start:start + 20], np.stack(rows))
    sorted_rows = np.concatenate([recorded["height"][:, None], recorded["orientations"],
                                  recorded["velocity"]], axis=1).astype(np.float32)
    assert not np.array_equal(obs, sorted_rows)  # what a size-only loader would have stored


def test_data_collector_on_a_gym_env_rescales_actions():
    dataset, path = record(gymnasium.make("Pendulum-v1"), "gym/pendulum-raw-v0", seeds=[1],
                           steps=30)
    ours = make_env("gym:Pendulum-v1")
    data = load_offline(path, ours.observation_space, ours.action_space,
                        env_name="gym:Pendulum-v1")
    episode = next(dataset.iterate_episodes())
    assert np.abs(episode.actions).max() > 1.0  # raw Pendulum actions, in [-2, 2]
    assert np.array_equal(data.storage.fields["action"].numpy(), episode.actions / 2)
    assert np.array_equal(data.storage.fields["obs"].numpy(), episode.observations[:-1])
    assert data.storage.fields["truncated"].tolist() == [False] * 29 + [True]  # closed by us


def test_data_collector_on_our_env_stores_a_recoverable_spec():
    dataset, _ = record(make_env("gym:Pendulum-v1"), "gym/pendulum-ours-v0", seeds=[1], steps=5)
    env = dataset.recover_environment()
    assert env.action_space == spaces.Box(-1.0, 1.0, (1,), np.float32)
    assert type(env).__name__ == "RescaleAction"


def test_data_collector_dict_env_maps_by_key():
    """The dataset's Dict space comes back sorted (a, z); our env flattens z, a."""
    dataset, path = record(gymnasium.make(ORDERED), "gym/ordered-v0", seeds=[3, 4])
    ours = make_env(f"gym:{ORDERED}")
    assert obs_layout(ours).keys == ["z", "a"]
    assert list(dataset.observation_space) == ["a", "z"]
    data = load_offline(path, ours.observation_space, ours.action_space,
                        env_name=f"gym:{ORDERED}")
    raw = list(dataset.iterate_episodes())
    expected = np.concatenate([np.column_stack([ep.observations["z"][:-1],
                                                ep.observations["a"][:-1]]) for ep in raw])
    assert np.array_equal(data.storage.fields["obs"].numpy(), expected)
    for ep, start in zip(raw, [0, 6]):  # our env from the same seed gives the same rows
        first, _ = ours.reset(seed=3 if start == 0 else 4)
        assert np.array_equal(data.storage.fields["obs"][start].numpy(), first)
