"""Which named parts a flat observation concatenates, in which order.

An `ObsLayout` is an ordered tuple of ``(key, shape)`` parts; the flat vector is the parts
raveled and concatenated in that order. Our envs' layouts:

- ``dmc:`` from states (`DMCEnv`): dm_control's observation order, not sorted; walker is
  ``orientations (14,), height (), velocity (9,)``;
- ``gym:`` envs with Dict observations (`FlattenFloat32Observation`): the Dict space's key order
  (gymnasium sorts the keys of a Dict built from a plain dict);
- every other env: one part, ``observation``, of the env's observation shape.

Datasets written by ``runner.collect`` store it as JSON, ``[[key, [dim, ...]], ...]``, so that the
loader can map their columns onto an env's by key (replay/dataset_layout.py).
"""
from __future__ import annotations

from dataclasses import dataclass

import gymnasium
import numpy as np
from gymnasium import spaces

SINGLE_KEY = "observation"  # the one part of an env whose observation has no named parts


@dataclass(frozen=True)
class ObsLayout:
    """Ordered ``(key, shape)`` parts of a flat observation."""

    parts: tuple[tuple[str, tuple[int, ...]], ...]

    @classmethod
    def single(cls, shape) -> "ObsLayout":
        """One unnamed array (key ``observation``)."""
        return cls(((SINGLE_KEY, tuple(int(d) for d in shape)),))

    @property
    def keys(self) -> list[str]:
        return [key for key, _ in self.parts]

    def size(self, key: str) -> int:
        """Number of values of part ``key``."""
        return int(np.prod(dict(self.parts)[key], dtype=np.int64))

    @property
    def total(self) -> int:
        """Length of the flat vector."""
        return sum(self.size(key) for key in self.keys)

    def columns(self) -> dict[str, np.ndarray]:
        """Each part's column indices in the flat vector."""
        out, start = {}, 0
        for key in self.keys:
            out[key] = np.arange(start, start + self.size(key))
            start += self.size(key)
        return out

    def describe(self) -> str:
        """e.g. ``orientations (14), height (1), velocity (9)``."""
        return ", ".join(f"{key} ({self.size(key)})" for key in self.keys)

    def to_json(self) -> list:
        return [[key, list(shape)] for key, shape in self.parts]

    @classmethod
    def from_json(cls, value) -> "ObsLayout":
        """Parse ``[[key, [dim, ...]], ...]``; ValueError saying what is wrong otherwise."""
        if not isinstance(value, list) or not value:
            raise ValueError(f"expected a non-empty list of [key, shape] pairs, got {value!r:.120}")
        parts = []
        for item in value:
            ok = (isinstance(item, (list, tuple)) and len(item) == 2 and isinstance(item[0], str)
                  and isinstance(item[1], (list, tuple))
                  and all(isinstance(d, int) and not isinstance(d, bool) and d >= 0
                          for d in item[1]))
            if not ok:
                raise ValueError(f"each part must be [key, [dim, ...]] with integer dims >= 0, "
                                 f"got {item!r:.120}")
            parts.append((item[0], tuple(item[1])))
        keys = [key for key, _ in parts]
        if len(set(keys)) != len(keys):
            raise ValueError(f"keys must be unique, got {keys}")
        return cls(tuple(parts))


def space_layout(space: spaces.Dict) -> ObsLayout:
    """The parts of a Dict space in its key order; a non-Box part counts as its flat size."""
    return ObsLayout(tuple(
        (str(key), tuple(sub.shape) if isinstance(sub, spaces.Box) else (spaces.flatdim(sub),))
        for key, sub in space.spaces.items()))


def obs_layout(env: gymnasium.Env) -> ObsLayout:
    """The layout of ``env``'s observations: the ``obs_layout`` of the outermost layer that has
    one (`DMCEnv`, `FlattenFloat32Observation` of a Dict) when it describes the whole, 1-D
    observation, else a single part (e.g. pixels, whose frames are no concatenation of keys)."""
    shape = tuple(env.observation_space.shape or ())
    layer = env
    while layer is not None:
        found = getattr(layer, "obs_layout", None)  # gymnasium wrappers do not forward attributes
        if found is not None:
            if len(shape) == 1 and found.total == shape[0]:
                return found
            break
        layer = layer.env if isinstance(layer, gymnasium.Wrapper) else None
    return ObsLayout.single(shape)


def env_id_layout(env_id: str) -> ObsLayout:
    """The layout of ``make_env(env_id)`` (from states), building the env for a moment."""
    from envs.registry import make_env

    env = make_env(env_id)
    try:
        return obs_layout(env)
    finally:
        env.close()
