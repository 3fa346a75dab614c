"""Every kind of env make_env builds passes gymnasium's check_env; its spec, wrappers included,
survives JSON (what a Minari dataset stores) and builds an env that steps exactly as the
original; observation layouts (envs/obs_layout.py) name the parts of flat observations."""
import re
import warnings
from collections import OrderedDict

import gymnasium
import numpy as np
import pytest
from gymnasium import spaces
from gymnasium.envs.registration import EnvSpec
from gymnasium.utils.env_checker import check_env

from envs import make_env
from envs.dmc import DMCEnv
from envs.obs_layout import ObsLayout, obs_layout
from envs.wrappers import FlattenFloat32Observation
from tests.conftest import needs_gl

ENVS = [
    pytest.param("gym:Pendulum-v1", {}, id="gym"),
    pytest.param("gym:Pendulum-v1", {"action_repeat": 3}, id="gym, action repeat"),
    pytest.param("dmc:walker-walk", {}, id="dmc states"),
    pytest.param("dmc:cheetah-run", {"action_repeat": 2}, id="dmc states, action repeat"),
    pytest.param("dmc:cartpole-swingup", {"pixels": True, "image_size": 32}, id="dmc pixels",
                 marks=needs_gl),
    pytest.param("atari:Pong", {}, id="atari"),
]
# what check_env says of any wrapped env and of DMC's unbounded observations
EXPECTED_WARNINGS = re.compile(r"different from the unwrapped|value is -?infinity")


def _layers(env) -> list[str]:
    out = [type(env).__name__]
    while isinstance(env, gymnasium.Wrapper):
        env = env.env
        out.append(type(env).__name__)
    return out


@pytest.mark.parametrize("env_id, kwargs", ENVS)
def test_check_env_passes(env_id, kwargs, monkeypatch):
    # check_env opens every render mode, Pendulum's "human" (a pygame window) included; headless,
    # SDL's default video driver leaves EGL unusable for dm_control in the rest of the process
    monkeypatch.setenv("SDL_VIDEODRIVER", "dummy")
    env = make_env(env_id, seed=0, **kwargs)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        check_env(env)  # renders, and remakes the env from its spec (render and close checks)
    checker = [str(w.message) for w in caught if "WARN:" in str(w.message)]  # gymnasium's logger
    assert [m for m in checker if not EXPECTED_WARNINGS.search(m)] == []


@pytest.mark.parametrize("env_id, kwargs", ENVS)
def test_spec_survives_json_and_remakes_the_same_env(env_id, kwargs):
    env = make_env(env_id, seed=0, **kwargs)
    again = gymnasium.make(EnvSpec.from_json(env.spec.to_json()))
    assert _layers(again) == _layers(env)
    assert again.action_space == env.action_space
    assert again.observation_space == env.observation_space
    env.action_space.seed(1)
    actions = [env.action_space.sample() for _ in range(12)]
    for env_ in (env, again):
        env_.reset(seed=7)
    first = [env.step(a) for a in actions]
    second = [again.step(a) for a in actions]
    for (o1, r1, t1, u1, _), (o2, r2, t2, u2, _) in zip(first, second):
        assert np.array_equal(o1, o2) and (r1, t1, u1) == (r2, t2, u2)


def test_specs_record_our_wrappers_and_dmc_arguments():
    spec = make_env("gym:Pendulum-v1", action_repeat=2).spec
    assert spec.id == "Pendulum-v1"
    assert [(w.name, w.entry_point, w.kwargs) for w in spec.additional_wrappers] == [
        ("FlattenFloat32Observation", "envs.wrappers:FlattenFloat32Observation", {}),
        ("RescaleAction", "envs.wrappers:RescaleAction", {"min_action": -1.0, "max_action": 1.0}),
        ("ActionRepeat", "envs.wrappers:ActionRepeat", {"k": 2}),
    ]
    spec = make_env("dmc:walker-walk", seed=4).spec
    assert (spec.id, spec.entry_point) == ("plasticrl/dmc-walker-walk-v0", "envs.dmc:DMCEnv")
    assert spec.kwargs == {"domain": "walker", "task": "walk", "seed": 4, "height": 84,
                           "width": 84, "camera_id": 0, "shadow_size": None}
    assert spec.additional_wrappers == ()
    assert type(DMCEnv("walker", "walk", seed=np.int64(4)).spec.kwargs["seed"]) is int  # JSON
    with pytest.raises(ValueError, match="rgb_array only"):
        DMCEnv("walker", "walk", render_mode="human")


@needs_gl
def test_pixel_spec_records_every_wrapper():
    pixels = make_env("dmc:walker-walk", seed=4, pixels=True, image_size=32).spec
    assert pixels.kwargs["shadow_size"] == 512 and pixels.kwargs["camera_id"] == 0
    assert [(w.name, w.kwargs) for w in pixels.additional_wrappers] == [
        ("ActionRepeat", {"k": 2}), ("RenderObservation", {"height": 32, "width": 32,
                                                          "grayscale": False}),
        ("FrameStackObservation", {"stack_size": 3, "padding_type": "reset"}),
        ("ReshapeObservation", {"shape": (9, 32, 32)})]


def test_dmc_layout_is_dm_controls_order():
    env = make_env("dmc:walker-walk", seed=0, action_repeat=2)
    layout = obs_layout(env)
    assert layout.parts == (("orientations", (14,)), ("height", ()), ("velocity", (9,)))
    assert layout.total == 24 and layout.columns()["height"].tolist() == [14]
    obs, _ = env.reset(seed=0)
    assert obs[14] == np.float32(env.unwrapped.physics.named.data.xpos["torso", "z"])
    assert obs_layout(make_env("gym:Pendulum-v1")) == ObsLayout.single((3,))
    assert obs_layout(make_env("atari:Pong")) == ObsLayout.single((4, 84, 84))


def test_flattened_dict_layout_keeps_the_space_order():
    """An OrderedDict space keeps its order (a plain dict would be sorted by gymnasium)."""
    space = spaces.Dict(OrderedDict(z=spaces.Box(-1, 1, (2,)), a=spaces.Discrete(3)))

    class DictEnv(gymnasium.Env):
        observation_space, action_space = space, spaces.Discrete(2)

    wrapper = FlattenFloat32Observation(DictEnv())
    assert obs_layout(wrapper).parts == (("z", (2,)), ("a", (3,)))
    row = wrapper.observation(OrderedDict(z=np.array([0.5, -0.5]), a=1))
    assert row.tolist() == [0.5, -0.5, 0.0, 1.0, 0.0]


def test_layout_json_round_trip_and_errors():
    layout = ObsLayout((("orientations", (14,)), ("height", ()), ("velocity", (9,))))
    assert layout.to_json() == [["orientations", [14]], ["height", []], ["velocity", [9]]]
    assert ObsLayout.from_json(layout.to_json()) == layout
    assert layout.describe() == "orientations (14), height (1), velocity (9)"
    for bad, message in [([], "non-empty list"), ([["a", [2]], ["a", [1]]], "unique"),
                         ([["a", [-1]]], "integer dims"), ([["a", 3]], r"\[key, \[dim"),
                         ("a", "non-empty list")]:
        with pytest.raises(ValueError, match=message):
            ObsLayout.from_json(bad)


CONFIGURED_DMC = ["acrobot-swingup", "ball_in_cup-catch", "cartpole-swingup", "cheetah-run",
                  "finger-spin", "fish-swim", "hopper-hop", "humanoid-run", "pendulum-swingup",
                  "quadruped-run", "reacher-easy", "walker-walk"]


@pytest.mark.parametrize("task", CONFIGURED_DMC)
def test_dmc_layout_describes_the_flat_observation(task):
    """Each part's columns hold that key of dm_control's observation dict."""
    env = make_env(f"dmc:{task}", seed=0)
    flat, _ = env.reset(seed=1)
    raw = env.unwrapped._env.task.get_observation(env.unwrapped.physics)
    layout = obs_layout(env)
    assert layout.keys == list(raw) and layout.total == flat.shape[0]
    for key, columns in layout.columns().items():
        assert np.array_equal(flat[columns], np.asarray(raw[key], np.float32).ravel())
