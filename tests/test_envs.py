"""Tests for envs: id validation, DMC/gym wrappers, seeding and action repeat."""

import dm_control.suite
import gymnasium
import numpy as np
import pytest

from envs import ActionRepeat, EnvIdError, check_env_id, make_env
from envs.dmc import DMCEnv


def _run_episode(env, action, seed=0):
    """Step with a fixed action until the episode ends; return (steps, flags, rewards)."""
    env.reset(seed=seed)
    flags, rewards = [], []
    while True:
        _, reward, terminated, truncated, _ = env.step(action)
        flags.append((terminated, truncated))
        rewards.append(reward)
        if terminated or truncated:
            return len(flags), flags, rewards


@pytest.mark.parametrize("env_id, dim", [("dmc:cheetah-run", 17), ("gym:Pendulum-v1", 3)])
def test_obs_and_action_spaces(env_id, dim):
    env = make_env(env_id, seed=0)
    assert env.observation_space.shape == (dim,)
    assert env.observation_space.dtype == np.float32
    assert isinstance(env.action_space, gymnasium.spaces.Box)
    assert np.all(env.action_space.low == -1.0) and np.all(env.action_space.high == 1.0)
    obs, _ = env.reset(seed=0)
    assert obs.dtype == np.float32 and obs.shape == (dim,)
    assert env.observation_space.contains(obs)
    obs, reward, terminated, truncated, _ = env.step(env.action_space.sample())
    assert obs.dtype == np.float32 and obs.shape == (dim,)
    assert isinstance(reward, float)
    assert not terminated and not truncated


def test_dmc_episode_truncates_at_1000_steps():
    env = make_env("dmc:cartpole-balance", seed=0)
    steps, flags, _ = _run_episode(env, np.zeros(env.action_space.shape))
    assert steps == 1000
    assert flags[-1] == (False, True)
    assert all(f == (False, False) for f in flags[:-1])
    with pytest.raises(RuntimeError, match="reset"):
        env.step(np.zeros(env.action_space.shape))


def test_action_repeat_episode_length_and_reward_sum():
    env4 = make_env("dmc:cartpole-balance", seed=1, action_repeat=4)
    assert isinstance(env4, ActionRepeat)
    steps, flags, _ = _run_episode(env4, np.zeros(env4.action_space.shape), seed=1)
    assert steps == 250 and flags[-1] == (False, True)

    env1 = make_env("dmc:cartpole-balance", seed=1)
    obs1, _ = env1.reset(seed=3)
    obs4, _ = env4.reset(seed=3)
    np.testing.assert_array_equal(obs1, obs4)
    rng = np.random.default_rng(0)
    for _ in range(10):
        action = rng.uniform(-1, 1, env1.action_space.shape).astype(np.float32)
        inner = [env1.step(action) for _ in range(4)]
        obs4, reward4, *_ = env4.step(action)
        assert reward4 == pytest.approx(sum(step[1] for step in inner))
        np.testing.assert_array_equal(obs4, inner[-1][0])


def _trajectory(env, seed, n=25):
    obs, _ = env.reset(seed=seed)
    rng = np.random.default_rng(123)
    out = [obs]
    for _ in range(n):
        out.append(env.step(rng.uniform(-1, 1, env.action_space.shape))[0])
    return np.stack(out)


@pytest.mark.parametrize("env_id", ["dmc:cheetah-run", "gym:Pendulum-v1"])
def test_seeding_reproducible(env_id):
    env = make_env(env_id, seed=5)
    first = _trajectory(env, seed=5)
    np.testing.assert_array_equal(first, _trajectory(env, seed=5))
    np.testing.assert_array_equal(first, _trajectory(make_env(env_id, seed=5), seed=5))
    assert not np.array_equal(first[0], _trajectory(env, seed=6)[0])
    # reset() without a seed continues the RNG stream instead of repeating it.
    env.reset(seed=5)
    assert not np.array_equal(env.reset()[0], first[0])


def test_make_env_seeds_action_space():
    a = make_env("gym:Pendulum-v1", seed=9).action_space.sample()
    b = make_env("gym:Pendulum-v1", seed=9).action_space.sample()
    np.testing.assert_array_equal(a, b)


def test_pendulum_action_rescale():
    env = make_env("gym:Pendulum-v1", seed=0)
    env.reset(seed=0)
    env.step(np.array([1.0], dtype=np.float32))
    assert env.unwrapped.last_u == pytest.approx(2.0)
    env.step(np.array([-0.5], dtype=np.float32))
    assert env.unwrapped.last_u == pytest.approx(-1.0)


def test_dmc_action_rescale_to_spec_bounds():
    env = DMCEnv("cartpole", "balance", seed=0)
    env._act_low[:] = -3.0  # pretend a spec with non-unit bounds
    env._act_high[:] = 5.0
    np.testing.assert_allclose(env._scale_action([1.0]), [5.0])
    np.testing.assert_allclose(env._scale_action([-1.0]), [-3.0])
    np.testing.assert_allclose(env._scale_action([0.0]), [1.0])
    np.testing.assert_allclose(env._scale_action([7.0]), [5.0])
    with pytest.raises(ValueError, match="expected shape"):
        env._scale_action([0.0, 0.0])


@pytest.mark.filterwarnings("ignore:.*infinity")
def test_dmc_passes_gymnasium_checker():
    from gymnasium.utils.env_checker import check_env

    check_env(DMCEnv("cartpole", "balance", seed=0), skip_render_check=True)


@pytest.mark.parametrize(
    "env_id, expected",
    [
        ("dmc:cheetahh-run", ["cheetahh", "cheetah", "walker", "cartpole"]),
        ("dmc:cheetah-runn", ["runn", "run"]),
        ("dmc:cheetah", ["run"]),
        ("foo:bar", ["foo", "dmc", "gym"]),
        ("cheetah-run", ["dmc", "gym"]),
        ("gym:Pendullum-v1", ["Pendullum-v1", "Pendulum-v1"]),
    ],
)
def test_bad_ids_raise_helpful_errors(env_id, expected):
    for fn in (check_env_id, make_env):
        with pytest.raises(EnvIdError) as info:
            fn(env_id)
        assert isinstance(info.value, ValueError)
        for word in expected:
            assert word in str(info.value)


def test_valid_ids_parse_with_underscores():
    assert tuple(check_env_id("dmc:finger-turn_hard")) == ("dmc", "finger", "turn_hard")
    assert tuple(check_env_id("dmc:ball_in_cup-catch")) == ("dmc", "ball_in_cup", "catch")
    assert tuple(check_env_id("gym:Pendulum-v1")) == ("gym", "Pendulum-v1", None)


def test_check_env_id_does_not_build(monkeypatch):
    def boom(*args, **kwargs):
        raise AssertionError("environment was built")

    monkeypatch.setattr(dm_control.suite, "load", boom)
    monkeypatch.setattr(gymnasium, "make", boom)
    check_env_id("dmc:cheetah-run")
    check_env_id("gym:Pendulum-v1")
    with pytest.raises(AssertionError, match="built"):
        make_env("dmc:cheetah-run")


@pytest.mark.parametrize("bad", [0, -2, 1.5, True])
def test_bad_action_repeat(bad):
    with pytest.raises(ValueError, match="action_repeat"):
        make_env("gym:Pendulum-v1", action_repeat=bad)
