"""Env snapshots for checkpoints taken mid-episode: the state of a whole wrapper stack, so that a
resumed run steps on exactly as the interrupted one would have (README "Preemption and faults").

The innermost env saves itself: through its own ``get_state()`` / ``set_state(state)`` where it
has them (``DMCEnv``: the pickled dm_control environment, physics and task included; the Atari
env: ``ALEInterface.cloneState(include_rng=True)`` and its frame buffers), else as a pickle (e.g.
gymnasium's classic-control envs; not envs built on ``EzPickle``, such as gymnasium's MuJoCo and
Box2D envs: their pickle holds the constructor's arguments, not the state). Each wrapper above it contributes its plain-data attributes
(``TimeLimit._elapsed_steps``, ``FrameStackObservation.obs_queue``, ...); spaces, functions and
the inner env are left as built. ``env_snapshot`` returns None when the innermost env can be
saved neither way; a checkpoint then ends the episode as truncated instead.
"""
from __future__ import annotations

import copy
import pickle
import zlib
from collections import deque

import gymnasium
import numpy as np

_DATA = (np.ndarray, np.generic, deque, int, float, bool, str, bytes, type(None), tuple, list, dict)
_SKIP = {"env", "_action_space", "_observation_space", "_reward_range", "_metadata",
         "_cached_spec", "spec", "_np_random"}


def _layers(env: gymnasium.Env) -> list:
    layers = [env]
    while isinstance(layers[-1], gymnasium.Wrapper):
        layers.append(layers[-1].env)
    return layers


def _plain(value) -> bool:
    if isinstance(value, (deque, tuple, list)):
        return all(_plain(v) for v in value)
    if isinstance(value, dict):
        return all(_plain(v) for v in value.values())
    return isinstance(value, _DATA)


def env_snapshot(env: gymnasium.Env) -> bytes | None:
    """The state of `env` and its wrappers as compressed bytes, or None if it cannot be saved.
    An env stepped in another process (envs/subprocess_env.py) takes its snapshot there."""
    if hasattr(env, "remote_snapshot"):
        return env.remote_snapshot()
    *wrappers, base = _layers(env)
    if not hasattr(base, "get_state") and isinstance(base, gymnasium.utils.EzPickle):
        return None  # EzPickle pickles the constructor's arguments: it would restore a fresh env
    try:
        inner = base.get_state() if hasattr(base, "get_state") else base
        base_blob = pickle.dumps(inner, protocol=pickle.HIGHEST_PROTOCOL)
    except Exception:  # noqa: BLE001 - any env that will not pickle falls back to truncation
        return None
    wrapper_state = [{k: copy.deepcopy(v) for k, v in vars(w).items()
                      if k not in _SKIP and _plain(v)} for w in wrappers]
    # wrapper names guard against restoring into a differently built stack
    names = [type(layer).__name__ for layer in _layers(env)]
    payload = {"names": names, "wrappers": wrapper_state, "base": base_blob,
               "own": hasattr(base, "get_state")}
    return zlib.compress(pickle.dumps(payload, protocol=pickle.HIGHEST_PROTOCOL), 1)


def restore_env_snapshot(env: gymnasium.Env, blob: bytes) -> None:
    """Put `env` (built from the same config) into the state `env_snapshot` saved."""
    if hasattr(env, "remote_restore"):
        return env.remote_restore(blob)
    payload = pickle.loads(zlib.decompress(blob))
    layers = _layers(env)
    names = [type(layer).__name__ for layer in layers]
    if names != payload["names"]:
        raise ValueError(f"env snapshot of a stack {payload['names']} cannot restore {names}")
    *wrappers, base = layers
    for wrapper, state in zip(wrappers, payload["wrappers"]):
        for key, value in state.items():
            setattr(wrapper, key, value)
    inner = pickle.loads(payload["base"])
    if payload["own"]:
        base.set_state(inner)
    elif wrappers:
        wrappers[-1].env = inner  # the unpickled env replaces the one built
    else:
        raise ValueError("an unwrapped env without set_state() cannot be restored in place")
