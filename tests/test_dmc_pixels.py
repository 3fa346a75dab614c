"""Tests for DMC from pixels (envs.dmc_pixels) and the OpenGL backend choice (envs.gl).

Software rendering does ~30-50 frames/s at 84x84 on a CPU: the tests take few steps and use
small images where the size does not matter.
"""

import numpy as np
import pytest

from envs import gl, make_env
from tests.conftest import needs_gl
from envs.dmc_pixels import PLANET_ACTION_REPEAT, default_action_repeat, make_dmc_pixels
from envs.wrappers import ActionRepeat



def _frames(obs):
    """[3k, H, W] -> k frames [3, H, W], oldest first."""
    return obs.reshape(-1, 3, *obs.shape[1:])


def _action_repeat(env):
    while env is not None:
        if isinstance(env, ActionRepeat):
            return env.k
        env = getattr(env, "env", None)
    return 1


@needs_gl
def test_obs_space_padding_and_render():
    env = make_env("dmc:walker-walk", pixels=True, seed=0)
    assert env.observation_space.shape == (9, 84, 84)
    assert env.observation_space.dtype == np.uint8
    obs, _ = env.reset(seed=0)
    assert obs.shape == (9, 84, 84) and obs.dtype == np.uint8
    assert env.observation_space.contains(obs)
    assert obs.max() > obs.min()  # a real image, not a blank buffer
    first = _frames(obs)
    # at reset the stack repeats the first frame
    np.testing.assert_array_equal(first[0], first[2])
    np.testing.assert_array_equal(first[1], first[2])
    np.testing.assert_array_equal(env.render(), first[-1].transpose(1, 2, 0))

    obs2, *_ = env.step(np.ones(env.action_space.shape))
    second = _frames(obs2)
    np.testing.assert_array_equal(second[:2], first[1:])  # shifted, newest last
    assert not np.array_equal(second[2], first[2])  # the walker moved
    frame = env.render()
    assert frame.shape == (84, 84, 3) and frame.dtype == np.uint8
    np.testing.assert_array_equal(frame, second[-1].transpose(1, 2, 0))

    obs3, _ = env.reset(seed=1)  # a new episode pads again with its own first frame
    third = _frames(obs3)
    np.testing.assert_array_equal(third[0], third[2])
    assert not np.array_equal(third[2], second[2])


@needs_gl
def test_quadruped_uses_camera_2():
    env = make_dmc_pixels("quadruped", "walk", seed=0, image_size=24, frame_stack=1)
    obs, _ = env.reset(seed=0)
    physics = env.unwrapped.physics
    cam2 = physics.render(24, 24, camera_id=2).transpose(2, 0, 1)
    cam0 = physics.render(24, 24, camera_id=0).transpose(2, 0, 1)
    np.testing.assert_array_equal(obs, cam2)
    assert not np.array_equal(obs, cam0)


def test_action_repeat_defaults():
    assert PLANET_ACTION_REPEAT == {"cartpole": 8, "reacher": 4, "cheetah": 4, "finger": 2,
                                    "ball_in_cup": 4, "walker": 2}
    assert default_action_repeat("walker") == 2 and default_action_repeat("cartpole") == 8
    assert default_action_repeat("quadruped") == 2 and default_action_repeat("hopper") == 2


@needs_gl
def test_episode_length_in_agent_steps():
    env = make_env("dmc:cartpole-balance", pixels=True, seed=0, image_size=16, frame_stack=2)
    assert _action_repeat(env) == 8
    assert env.observation_space.shape == (6, 16, 16)
    env.reset(seed=0)
    flags = []
    while True:
        _, reward, terminated, truncated, _ = env.step(np.zeros(env.action_space.shape))
        flags.append((terminated, truncated))
        assert 0.0 <= reward <= 8.0  # 8 summed env-step rewards in [0, 1]
        if terminated or truncated:
            break
    assert len(flags) == 1000 // 8 and flags[-1] == (False, True)
    assert all(f == (False, False) for f in flags[:-1])
    # an explicit value wins over the domain default
    assert _action_repeat(make_env("dmc:cartpole-balance", pixels=True, action_repeat=1,
                                   image_size=16)) == 1


@needs_gl
def test_same_seed_same_pixels():
    def rollout(env_seed, reset_seed):
        env = make_env("dmc:walker-walk", pixels=True, seed=env_seed, image_size=32,
                       frame_stack=1)
        rng = np.random.default_rng(0)
        out = [env.reset(seed=reset_seed)[0]]
        for _ in range(3):
            out.append(env.step(rng.uniform(-1, 1, env.action_space.shape))[0])
        return np.stack(out)

    a = rollout(3, 7)
    np.testing.assert_array_equal(a, rollout(3, 7))
    assert not np.array_equal(a[0], rollout(3, 8)[0])  # another seed, another start


@pytest.mark.parametrize("bad", [dict(frame_stack=0), dict(image_size=0),
                                 dict(action_repeat=0)])
def test_bad_settings_raise(bad):
    with pytest.raises(ValueError):
        make_dmc_pixels("cartpole", "balance", **bad)


def test_state_envs_keep_flat_observations():
    env = make_env("dmc:cartpole-balance", seed=0)
    assert env.observation_space.shape == (5,) and env.observation_space.dtype == np.float32


# ---------------------------------------------------------------- OpenGL backend choice


def test_no_backend_error_names_packages(monkeypatch):
    monkeypatch.setattr(gl, "probe_egl", lambda: "libEGL.so.1 not found (package libegl1)")
    monkeypatch.setattr(gl, "probe_osmesa", lambda: "libOSMesa not found (package libosmesa6)")
    with pytest.raises(gl.GLUnavailableError) as info:
        gl.choose_backend({})
    message = str(info.value)
    for package in ("libegl1", "libgl1", "libosmesa6"):
        assert package in message


def test_egl_preferred_then_osmesa(monkeypatch):
    monkeypatch.setattr(gl, "probe_egl", lambda: None)
    monkeypatch.setattr(gl, "probe_osmesa", lambda: None)
    assert gl.choose_backend({}) == "egl"
    monkeypatch.setattr(gl, "probe_egl", lambda: "cannot initialise")
    assert gl.choose_backend({}) == "osmesa"

    def boom():
        raise OSError("driver crashed")

    monkeypatch.setattr(gl, "probe_osmesa", boom)  # a crashing probe counts as a failure
    with pytest.raises(gl.GLUnavailableError, match="driver crashed"):
        gl.choose_backend({})


def test_user_set_backend_is_respected(monkeypatch):
    def must_not_probe():
        raise AssertionError("a user-set MUJOCO_GL must not be probed")

    monkeypatch.setattr(gl, "probe_egl", must_not_probe)
    monkeypatch.setattr(gl, "probe_osmesa", must_not_probe)
    assert gl.choose_backend({"MUJOCO_GL": "osmesa"}) == "osmesa"
    assert gl.choose_backend({"MUJOCO_GL": "glfw"}) == "glfw"


def test_pixel_env_without_gl_raises_clear_error(monkeypatch):
    error = gl.GLUnavailableError(f"no OpenGL backend: test. {gl.INSTALL_HINT}")
    monkeypatch.setattr(gl, "_configured", True)
    monkeypatch.setattr(gl, "_error", error)
    with pytest.raises(gl.GLUnavailableError, match="libosmesa6"):
        make_env("dmc:walker-walk", pixels=True)
    with pytest.raises(gl.GLUnavailableError, match="libegl1"):
        make_env("dmc:walker-walk").unwrapped.render()
    make_env("dmc:walker-walk").reset(seed=0)  # states still work


def test_disabled_backend_raises(monkeypatch):
    monkeypatch.setattr(gl, "_configured", True)
    monkeypatch.setattr(gl, "_error", None)
    monkeypatch.setenv("MUJOCO_GL", "disable")
    with pytest.raises(gl.GLUnavailableError, match="disables rendering"):
        gl.ensure_rendering()


@needs_gl
@pytest.mark.parametrize("first", ["", "import dm_control.suite; "])
def test_backend_chosen_in_a_fresh_process(first):
    """MUJOCO_GL unset: envs picks EGL/OSMesa and sets it, even when dm_control came first."""
    import os
    import subprocess
    import sys

    code = (f"{first}import os; from envs import make_env; "
            "env = make_env('dmc:cartpole-balance', pixels=True, image_size=8, frame_stack=1); "
            "obs, _ = env.reset(seed=0); assert obs.shape == (3, 8, 8) and obs.max() > 0; "
            "print(os.environ['MUJOCO_GL'])")
    environ = {k: v for k, v in os.environ.items() if k not in ("MUJOCO_GL", "PYOPENGL_PLATFORM")}
    environ.pop("DISPLAY", None)
    out = subprocess.run([sys.executable, "-c", code], env=environ, capture_output=True,
                         text=True, timeout=120, cwd=os.path.dirname(os.path.dirname(__file__)))
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.split()[-1] in ("egl", "osmesa")
