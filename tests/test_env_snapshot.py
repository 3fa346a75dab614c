"""Env snapshots (envs/snapshot.py), what a mid-episode checkpoint saves: an env restored from
one steps on exactly as the env it was taken from, for every kind of env the trainer builds."""
import numpy as np
import pytest

from envs import make_env
from envs.snapshot import env_snapshot, restore_env_snapshot
from tests.conftest import needs_gl

ENVS = [
    pytest.param("gym:Pendulum-v1", {}, id="gym (pickled)"),
    pytest.param("dmc:cartpole-swingup", {}, id="dmc states"),
    pytest.param("dmc:walker-walk", {"action_repeat": 2}, id="dmc states, action repeat"),
    pytest.param("dmc:cartpole-swingup", {"pixels": True, "image_size": 32}, id="dmc pixels",
                 marks=needs_gl),
    pytest.param("atari:Pong", {}, id="atari (ALE cloneState)"),
    pytest.param("atari:Breakout", {"training": False}, id="atari eval (no life-loss ends)"),
]


def _rollout(env, actions) -> list:
    out = []
    for action in actions:
        obs, reward, terminated, truncated, _ = env.step(action)
        out.append((np.array(obs, copy=True), float(reward), terminated, truncated))
        if terminated or truncated:
            break
    return out


@pytest.mark.parametrize("env_id, kwargs", ENVS)
def test_restored_env_steps_on_identically(env_id, kwargs):
    env = make_env(env_id, seed=3, **kwargs)
    env.reset(seed=3)
    env.action_space.seed(0)
    actions = [env.action_space.sample() for _ in range(60)]
    _rollout(env, actions[:30])
    blob = env_snapshot(env)
    assert blob is not None
    expected = _rollout(env, actions[30:])
    other = make_env(env_id, seed=7, **kwargs)  # built afresh, as on resume, in another state
    other.reset(seed=7)
    _rollout(other, actions[:5])
    restore_env_snapshot(other, blob)
    got = _rollout(other, actions[30:])
    assert len(got) == len(expected) > 0
    for (o1, r1, t1, u1), (o2, r2, t2, u2) in zip(expected, got):
        assert np.array_equal(o1, o2) and r1 == r2 and t1 == t2 and u1 == u2


def test_envs_that_pickle_their_arguments_only_are_not_snapshotted():
    """gymnasium's MuJoCo envs use EzPickle: unpickled, they are fresh envs. No snapshot, so a
    mid-episode checkpoint ends the episode as truncated instead of restoring a wrong state."""
    env = make_env("gym:HalfCheetah-v5", seed=1)
    env.reset(seed=1)
    assert env_snapshot(env) is None


def test_a_snapshot_refuses_another_wrapper_stack():
    blob = env_snapshot(make_env("dmc:walker-walk", seed=1, action_repeat=2))
    with pytest.raises(ValueError, match="cannot restore"):
        restore_env_snapshot(make_env("dmc:walker-walk", seed=1), blob)
