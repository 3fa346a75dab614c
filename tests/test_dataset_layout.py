"""Datasets by key (replay/dataset_layout.py): collect records the observation layout and an env
spec Minari recovers the env from; the loader permutes recorded layouts and dict observations into
the env's order and refuses what it cannot map."""
import json

import minari
import numpy as np
import pytest
from gymnasium import spaces
from gymnasium.envs.registration import EnvSpec
from minari.data_collector.episode_buffer import EpisodeBuffer

from envs import make_env
from envs.obs_layout import ObsLayout
from replay import DatasetError, DatasetMismatchError, load_offline
from replay.dataset_writer import recordable_spec, write_dataset
from runner.collect import collect
from runner.seeding import derived_seed

WALKER = "dmc:walker-walk"
WALKER_LAYOUT = [["orientations", [14]], ["height", []], ["velocity", [9]]]
SORTED = ObsLayout((("height", ()), ("orientations", (14,)), ("velocity", (9,))))


def spaces_of(env_id):
    env = make_env(env_id)
    return env.observation_space, env.action_space


def load(path, env_id, **kw):
    return load_offline(path, *spaces_of(env_id), env_name=env_id, **kw)


def replay(env, seed, actions):
    """Observations of `env` reset with `seed` and stepped with `actions`: [T + 1, D]."""
    obs = [env.reset(seed=seed)[0]]
    obs += [env.step(a)[0] for a in actions]
    return np.stack(obs)


@pytest.fixture(scope="module")
def walker_rows():
    """Two short walker episodes from our env (dm_control order) and their actions."""
    env, rng, out = make_env(WALKER), np.random.default_rng(0), []
    for seed in (11, 12):
        actions = rng.uniform(-1, 1, (6, 6)).astype(np.float32)
        out.append((seed, replay(env, seed, actions), actions))
    return out


def flat_dataset(root, dataset_id, walker_rows, columns, metadata):
    """The walker episodes as flat rows with their columns in `columns` order."""
    episodes = [EpisodeBuffer(id=i, seed=seed, observations=obs[:, columns], actions=actions,
                              rewards=[0.0] * len(actions), terminations=[False] * len(actions),
                              truncations=[False] * (len(actions) - 1) + [True])
                for i, (seed, obs, actions) in enumerate(walker_rows)]
    obs_space, act_space = spaces_of(WALKER)
    return write_dataset(episodes, dataset_id, obs_space, act_space, root=root,
                         algorithm_name="test", description="walker rows", metadata=metadata)


SORTED_COLUMNS = [14, *range(14), *range(15, 24)]  # height, orientations, velocity


def test_collect_records_layout_and_a_recoverable_spec(tmp_path):
    path = collect(WALKER, "dmc/walker-v0", steps=15, root=tmp_path, action_repeat=2, seed=4,
                   progress=False)
    meta = json.loads((path / "data" / "metadata.json").read_text())
    assert meta["plasticrl_obs_layout"] == WALKER_LAYOUT
    data = load(path, WALKER)
    raw = minari.MinariDataset(path / "data")
    episode = next(raw.iterate_episodes())
    env = raw.recover_environment()  # the env that made the rows, action repeat included
    assert [type(e).__name__ for e in (env, env.env)] == ["ActionRepeat", "DMCEnv"]
    assert env.action_space == make_env(WALKER).action_space  # Box [-1, 1]: the stored actions
    rows = replay(env, derived_seed(4, 3, 0), episode.actions)
    assert np.array_equal(rows, episode.observations)
    assert np.array_equal(data.storage.fields["obs"].numpy(), rows[:-1])


def test_recovered_gym_env_takes_the_stored_actions(tmp_path):
    path = collect("gym:Pendulum-v1", "gym/pendulum-v0", steps=20, root=tmp_path, seed=2,
                   progress=False)
    raw = minari.MinariDataset(path / "data")
    episode = next(raw.iterate_episodes())
    env = raw.recover_environment()
    assert env.action_space == spaces.Box(-1.0, 1.0, (1,), np.float32)  # raw Pendulum: [-2, 2]
    assert np.array_equal(replay(env, derived_seed(2, 3, 0), episode.actions),
                          episode.observations)
    assert json.loads((path / "data" / "metadata.json").read_text())[
        "plasticrl_obs_layout"] == [["observation", [3]]]


def test_recorded_layout_is_permuted_into_the_env_order(tmp_path, walker_rows):
    path = flat_dataset(tmp_path, "layout/sorted-v0", walker_rows, SORTED_COLUMNS,
                        {"obs_layout": SORTED.to_json()})
    obs = load(path, WALKER).storage.fields["obs"].numpy()
    expected = np.concatenate([rows[:-1] for _, rows, _ in walker_rows])
    assert np.array_equal(obs, expected)


def test_flat_rows_without_a_layout(tmp_path, walker_rows):
    """Refused for a multi-key env, unless our own collect recorded them in the same env."""
    path = flat_dataset(tmp_path, "layout/nolayout-v0", walker_rows, SORTED_COLUMNS, {})
    with pytest.raises(DatasetMismatchError) as err:
        load(path, WALKER)
    msg = str(err.value)
    for part in ("layout/nolayout-v0", "without a recorded layout", WALKER,
                 "orientations (14), height (1), velocity (9)", "plasticrl_obs_layout",
                 "runner.collect"):
        assert part in msg
    older = flat_dataset(tmp_path, "layout/older-collect-v0", walker_rows, list(range(24)),
                         {"env_id": WALKER})  # before layouts were recorded: the env's order
    obs = load(older, WALKER).storage.fields["obs"].numpy()
    assert np.array_equal(obs, np.concatenate([rows[:-1] for _, rows, _ in walker_rows]))
    with pytest.raises(DatasetMismatchError, match="without a recorded layout"):
        load(older, "dmc:walker-run")  # another id: no promise about its order


def dict_dataset(root, dataset_id, walker_rows, keys):
    """The walker episodes as dict observations holding `keys` (a subset, or renamed)."""
    parts = dict(zip(["orientations", "height", "velocity"],
                     [slice(0, 14), 14, slice(15, 24)]))
    obs_space = spaces.Dict({new: spaces.Box(-np.inf, np.inf, (14,) if old == "orientations"
                                             else () if old == "height" else (9,), np.float64)
                             for new, old in keys.items()})
    episodes = [EpisodeBuffer(id=i, observations={new: obs[:, parts[old]].astype(np.float64)
                                                  for new, old in keys.items()},
                              actions=actions, rewards=[0.0] * len(actions),
                              terminations=[False] * len(actions),
                              truncations=[False] * len(actions))
                for i, (_, obs, actions) in enumerate(walker_rows)]
    return write_dataset(episodes, dataset_id, obs_space, spaces_of(WALKER)[1], root=root,
                         algorithm_name="test", description="dict rows")


def test_dict_observations_are_mapped_by_key(tmp_path, walker_rows):
    same = {"orientations": "orientations", "height": "height", "velocity": "velocity"}
    obs = load(dict_dataset(tmp_path, "layout/dict-v0", walker_rows, same), WALKER)
    assert np.array_equal(obs.storage.fields["obs"].numpy(),
                          np.concatenate([rows[:-1] for _, rows, _ in walker_rows]))
    renamed = {"orientations": "orientations", "torso_height": "height", "velocity": "velocity"}
    with pytest.raises(DatasetMismatchError) as err:
        load(dict_dataset(tmp_path, "layout/renamed-v0", walker_rows, renamed), WALKER)
    assert "key 'height' of the env is missing" in str(err.value)
    assert "key 'torso_height' is not one of the env's" in str(err.value)


def test_broken_layout_metadata_is_refused(tmp_path, walker_rows):
    path = flat_dataset(tmp_path, "layout/badlayout-v0", walker_rows, list(range(24)),
                        {"obs_layout": [["orientations", 14]]})
    with pytest.raises(DatasetError, match="'plasticrl_obs_layout' is not an observation layout"):
        load(path, WALKER)
    short = flat_dataset(tmp_path, "layout/shortlayout-v0", walker_rows, list(range(24)),
                         {"obs_layout": [["orientations", [14]], ["height", []]]})
    with pytest.raises(DatasetError, match=r"describes 15 values .* observations hold 24"):
        load(short, WALKER)
    wrong = flat_dataset(tmp_path, "layout/wrongsize-v0", walker_rows, list(range(24)),
                         {"obs_layout": [["orientations", [13]], ["height", [2]],
                                         ["velocity", [9]]]})
    with pytest.raises(DatasetMismatchError, match="key 'orientations': dataset 13 values, env 14"):
        load(wrong, WALKER)


def test_specs_json_cannot_hold_are_left_out_with_a_warning():
    spec = EnvSpec(id="plasticrl/callable-v0", entry_point=lambda: None)
    with pytest.warns(UserWarning, match="env spec of plasticrl/callable-v0 is not stored"):
        assert recordable_spec(spec) is None
    good = make_env("gym:Pendulum-v1").spec
    assert recordable_spec(good) is good and recordable_spec(None) is None


def test_a_given_layout_must_describe_the_env(tmp_path, walker_rows):
    path = flat_dataset(tmp_path, "layout/given-v0", walker_rows, SORTED_COLUMNS,
                        {"obs_layout": SORTED.to_json()})
    obs_space, act_space = spaces_of(WALKER)
    with pytest.raises(ValueError, match=r"obs_layout describes 3 values .* shape \(24,\)"):
        load_offline(path, obs_space, act_space, obs_layout=ObsLayout.single((3,)))
    env_order = ObsLayout((("orientations", (14,)), ("height", ()), ("velocity", (9,))))
    given = load_offline(path, obs_space, act_space, obs_layout=env_order)  # no env id needed
    assert np.array_equal(given.storage.fields["obs"].numpy(),
                          np.concatenate([rows[:-1] for _, rows, _ in walker_rows]))
