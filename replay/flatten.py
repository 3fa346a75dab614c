"""Batched versions of what `envs.wrappers` does to one step: flat float32 observations and
bounded Box actions rescaled to [-1, 1], so dataset rows look like our env's rows.

Flattening follows `gymnasium.spaces.flatten` (what `FlattenFloat32Observation` calls): Box ->
reshape, Discrete -> one-hot, Dict -> concatenation in the space's key order, Tuple -> in order.
gymnasium sorts the keys of a Dict built from a plain dict (minari's deserialised spaces too), an
order the env's need not share: the loader flattens a dataset's Dict key by key in the env's
order (replay/dataset_layout.py), never the whole Dict at once.
"""
from __future__ import annotations

import numpy as np
from gymnasium import spaces


def flat_dim(space: spaces.Space) -> int:
    """Length of `space` flattened (raises TypeError for spaces we cannot flatten)."""
    if isinstance(space, spaces.Box):
        return int(np.prod(space.shape))
    if isinstance(space, spaces.Discrete):
        return int(space.n)
    if isinstance(space, spaces.Dict):
        return sum(flat_dim(s) for s in space.spaces.values())
    if isinstance(space, spaces.Tuple):
        return sum(flat_dim(s) for s in space.spaces)
    raise TypeError(f"cannot flatten observation space {space}")


def flatten_batch(space: spaces.Space, data) -> np.ndarray:
    """Data of N steps of `space` (arrays with leading dim N; dicts/tuples of them) -> [N, D] float32."""
    if isinstance(space, spaces.Box):
        data = np.asarray(data)
        return data.reshape(len(data), -1).astype(np.float32, copy=False)  # [N, *shape] -> [N, D]
    if isinstance(space, spaces.Discrete):
        index = np.asarray(data).reshape(-1) - int(space.start)
        return np.eye(int(space.n), dtype=np.float32)[index]  # [N] -> one-hot [N, n]
    if isinstance(space, spaces.Dict):
        return np.concatenate([flatten_batch(s, data[k]) for k, s in space.spaces.items()], axis=1)
    if isinstance(space, spaces.Tuple):
        return np.concatenate([flatten_batch(s, d) for s, d in zip(space.spaces, data)], axis=1)
    raise TypeError(f"cannot flatten observation space {space}")


def is_continuous(space: spaces.Space) -> bool:
    return isinstance(space, spaces.Box) and np.issubdtype(space.dtype, np.floating)


def rescale_actions(space: spaces.Space, actions: np.ndarray) -> np.ndarray:
    """Bounded float Box actions -> [-1, 1] like `apply_generic_wrappers` (no-op if already so);
    other spaces are returned unchanged."""
    if not is_continuous(space):
        return actions
    low, high = space.low.astype(np.float64), space.high.astype(np.float64)
    if not (np.all(np.isfinite(low)) and np.all(np.isfinite(high))) or (
            np.all(low == -1.0) and np.all(high == 1.0)):
        return actions.astype(np.float32, copy=False)
    scaled = 2.0 * (actions.astype(np.float64) - low) / (high - low) - 1.0
    return scaled.astype(np.float32)
