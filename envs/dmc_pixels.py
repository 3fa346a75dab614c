"""DeepMind Control Suite tasks from pixels: ``make_env("dmc:walker-walk", pixels=True)``.

Observations are uint8 ``[3 * frame_stack, size, size]`` RGB renders, channel-first, the newest
frame LAST (channels ``-3:``). At an episode start the stack is padded by repeating the first
frame (the replay storage rebuilds stacks assuming this).

- Camera 2 for quadruped, 0 otherwise (the DrQ / DrQ-v2 / PlaNet choice).
- Action repeat: PlaNet's per-domain values by default (cartpole 8, reacher 4, cheetah 4,
  finger 2, ball_in_cup 4, walker 2), 2 for every other domain (DrQ-v2 uses 2 everywhere; it is
  the most common value in the table). An episode is the suite's 1000 env steps, i.e.
  ``1000 / action_repeat`` agent steps, ended by ``truncated=True``.
- One render per agent step: the frame is rendered after the repeated action, never inside it.
  ``env.render()`` returns that same frame ``(size, size, 3)`` without rendering again (videos).
- Shadows: the suite's 2048x2048 shadow map is reduced to 512x512 (``shadow_size``). At 84x84 the
  frames differ by < 0.1 grey levels on average (a handful of shadow-edge pixels change), while
  software (llvmpipe) rendering gets ~1.5x faster; on a GPU it changes nothing measurable.
  ``shadow_size=None`` keeps the suite's value; 0 removes shadows (~2.5x, but visibly different).

Built from gymnasium's ``FrameStackObservation(padding_type="reset")`` and
``ReshapeObservation`` (taking a list as well, for specs read from JSON); only the channel-first
render is our own wrapper (gymnasium's
``AddRenderObservation`` resets and renders at construction, keeps (H, W, 3) and renders again on
``render()``).
"""

from __future__ import annotations

from typing import Any

import gymnasium
import numpy as np
from gymnasium import spaces
from gymnasium.wrappers import FrameStackObservation
from gymnasium.wrappers import ReshapeObservation as GymnasiumReshapeObservation

from envs.gl import ensure_rendering
from envs.wrappers import ActionRepeat, check_action_repeat

PLANET_ACTION_REPEAT = {"cartpole": 8, "reacher": 4, "cheetah": 4, "finger": 2,
                        "ball_in_cup": 4, "walker": 2}
DEFAULT_ACTION_REPEAT = 2  # domains PlaNet did not use
DEFAULT_SHADOW_SIZE = 512


def default_action_repeat(domain: str) -> int:
    """PlaNet's action repeat for ``domain``, else 2."""
    return PLANET_ACTION_REPEAT.get(domain, DEFAULT_ACTION_REPEAT)


def default_camera(domain: str) -> int:
    """The camera DrQ renders: 2 for quadruped (a view that follows it), 0 otherwise."""
    return 2 if domain == "quadruped" else 0


GRAY_WEIGHTS = np.array([0.299, 0.587, 0.114])  # rl_with_resets wrappers/rgb2gray.py (ITU-R 601)


class RenderObservation(gymnasium.ObservationWrapper, gymnasium.utils.RecordConstructorArgs):
    """Replace the observation by ``env.render()`` made channel-first: uint8 ``[3, H, W]``, or
    ``[1, H, W]`` with ``grayscale`` (Nikishin et al.'s DrQ: 0.299 R + 0.587 G + 0.114 B,
    truncated to uint8 as rl_with_resets' ``RGB2Gray`` does).

    ``render()`` returns the last observed frame (H, W, 3) in colour instead of rendering again.
    """

    def __init__(self, env: gymnasium.Env, height: int, width: int, grayscale: bool = False) -> None:
        gymnasium.utils.RecordConstructorArgs.__init__(self, height=height, width=width,
                                                       grayscale=grayscale)
        gymnasium.ObservationWrapper.__init__(self, env)
        self.grayscale = bool(grayscale)
        self.observation_space = spaces.Box(0, 255, (1 if grayscale else 3, height, width), np.uint8)
        self._frame: np.ndarray | None = None

    def observation(self, observation: Any) -> np.ndarray:
        """Render the current state; the state observation is dropped."""
        frame = np.asarray(self.env.render(), dtype=np.uint8)
        if frame.shape != self.observation_space.shape[1:] + (3,):
            raise ValueError(f"render() gave shape {frame.shape}, expected "
                             f"{self.observation_space.shape[1:] + (3,)}")
        self._frame = frame
        if self.grayscale:  # [H, W, 3] . [3] -> [1, H, W]
            return (frame @ GRAY_WEIGHTS).astype(np.uint8)[None]
        return np.ascontiguousarray(frame.transpose(2, 0, 1))

    def render(self) -> np.ndarray:
        """The newest frame, (H, W, 3) uint8; renders afresh only before the first reset."""
        if self._frame is None:
            return np.asarray(self.env.render(), dtype=np.uint8)
        return self._frame.copy()


class ReshapeObservation(GymnasiumReshapeObservation):
    """gymnasium's ``ReshapeObservation`` taking ``shape`` as any sequence of ints: a spec read
    back from JSON (Minari's ``recover_environment``) gives a list. Same class name, as env
    snapshots (envs/snapshot.py) name each wrapper of the stack."""

    def __init__(self, env: gymnasium.Env, shape) -> None:
        super().__init__(env, tuple(int(d) for d in shape))


def make_dmc_pixels(domain: str, task: str, *, seed: int | None = None,
                    action_repeat: int | None = None, frame_stack: int = 3,
                    image_size: int = 84, camera_id: int | None = None, grayscale: bool = False,
                    shadow_size: int | None = DEFAULT_SHADOW_SIZE) -> gymnasium.Env:
    """``dmc:<domain>-<task>`` from pixels (see the module docstring).

    ``action_repeat`` / ``camera_id`` None mean the domain defaults; ``seed`` seeds the task and
    the action space (still call ``reset(seed=...)``). Raises GLUnavailableError (saying what to
    install) when no OpenGL backend works.
    """
    ensure_rendering()
    from envs.dmc import DMCEnv  # after envs.gl, like every dm_control import

    repeat = check_action_repeat(default_action_repeat(domain) if action_repeat is None
                                 else action_repeat)
    for name, value in (("frame_stack", frame_stack), ("image_size", image_size)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
            raise ValueError(f"{name} must be an integer >= 1, got {value!r}")
    camera = default_camera(domain) if camera_id is None else int(camera_id)
    size = int(image_size)

    base = DMCEnv(domain, task, seed=seed, height=size, width=size, camera_id=camera,
                  shadow_size=shadow_size)
    env: gymnasium.Env = ActionRepeat(base, repeat) if repeat > 1 else base
    if not isinstance(grayscale, bool):
        raise ValueError(f"grayscale must be true or false, got {grayscale!r}")
    env = RenderObservation(env, size, size, grayscale)
    channels = env.observation_space.shape[0]
    env = FrameStackObservation(env, int(frame_stack), padding_type="reset")
    env = ReshapeObservation(env, (channels * int(frame_stack), size, size))
    if seed is not None:
        env.action_space.seed(seed)
    return env
