"""Generic gymnasium wrappers: flat float32 observations, [-1, 1] actions, action repeat.

Each records its constructor's arguments (`gymnasium.utils.RecordConstructorArgs`), so a wrapped
env's ``spec`` lists it and ``gymnasium.make(env.spec)`` builds the same stack again (what
``check_env`` and Minari's ``recover_environment`` do)."""

from __future__ import annotations

from typing import Any

import gymnasium
import numpy as np
from gymnasium import spaces
from gymnasium.wrappers import RescaleAction as GymnasiumRescaleAction

from envs.obs_layout import ObsLayout, space_layout


class FlattenFloat32Observation(gymnasium.ObservationWrapper,
                                gymnasium.utils.RecordConstructorArgs):
    """Flatten Box/Dict/Tuple observations into a float32 vector (Dict: in the space's key
    order, ``obs_layout``)."""

    def __init__(self, env: gymnasium.Env) -> None:
        gymnasium.utils.RecordConstructorArgs.__init__(self)
        gymnasium.ObservationWrapper.__init__(self, env)
        self._source_space = env.observation_space
        flat = spaces.flatten_space(self._source_space)
        if not isinstance(flat, spaces.Box):
            raise TypeError(f"cannot flatten observation space {self._source_space} to a Box")
        self.observation_space = spaces.Box(
            low=flat.low.astype(np.float32),
            high=flat.high.astype(np.float32),
            dtype=np.float32,
        )

    @property
    def obs_layout(self) -> ObsLayout | None:
        """The keys of a Dict observation in flattening order (None for Box and Tuple)."""
        if isinstance(self._source_space, spaces.Dict):
            return space_layout(self._source_space)
        return None

    def observation(self, observation: Any) -> np.ndarray:
        """Flatten and cast one observation."""
        flat = spaces.flatten(self._source_space, observation)
        return np.asarray(flat, dtype=np.float32).reshape(-1)


class ActionRepeat(gymnasium.Wrapper, gymnasium.utils.RecordConstructorArgs):
    """Repeat each action ``k`` times, summing rewards; stop early when the episode ends."""

    def __init__(self, env: gymnasium.Env, k: int) -> None:
        k = check_action_repeat(k)
        gymnasium.utils.RecordConstructorArgs.__init__(self, k=k)
        gymnasium.Wrapper.__init__(self, env)
        self.k = k

    def step(self, action: Any) -> tuple[Any, float, bool, bool, dict[str, Any]]:
        """Step the inner env up to ``k`` times with the same action."""
        total = 0.0
        for _ in range(self.k):
            obs, reward, terminated, truncated, info = self.env.step(action)
            total += float(reward)
            if terminated or truncated:
                break
        return obs, total, terminated, truncated, info


class RescaleAction(GymnasiumRescaleAction):
    """gymnasium's ``RescaleAction`` with scalar bounds, recorded as floats (which a spec's JSON
    holds) and applied as arrays of the action dtype (float bounds would make gymnasium warn
    about lowered precision). Same class name, as env snapshots name each wrapper."""

    def __init__(self, env: gymnasium.Env, min_action: float, max_action: float) -> None:
        gymnasium.utils.RecordConstructorArgs.__init__(self, min_action=float(min_action),
                                                       max_action=float(max_action))
        space = env.action_space
        super().__init__(env, np.full(space.shape, min_action, dtype=space.dtype),
                         np.full(space.shape, max_action, dtype=space.dtype))


def check_action_repeat(k: Any) -> int:
    """Return ``k`` as an int, or raise ValueError if it is not an integer >= 1."""
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
        raise ValueError(f"action_repeat must be an integer >= 1, got {k!r}")
    return int(k)


def _rescalable(space: spaces.Space) -> bool:
    return (
        isinstance(space, spaces.Box)
        and np.issubdtype(space.dtype, np.floating)
        and bool(np.all(np.isfinite(space.low)) and np.all(np.isfinite(space.high)))
    )


def apply_generic_wrappers(env: gymnasium.Env) -> gymnasium.Env:
    """Flatten/cast observations and rescale bounded Box actions to [-1, 1].

    Discrete action spaces and Box spaces with infinite bounds are left unchanged.
    """
    if isinstance(env.observation_space, (spaces.Box, spaces.Dict, spaces.Tuple)):
        env = FlattenFloat32Observation(env)
    space = env.action_space
    if _rescalable(space) and not (np.all(space.low == -1.0) and np.all(space.high == 1.0)):
        env = RescaleAction(env, -1.0, 1.0)
    return env
