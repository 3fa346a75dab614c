"""A training env stepped in a process of its own, so that a group's member envs step in parallel
(`members.async_envs=true`; README "Many seeds in one process").

`SubprocessEnv` holds gymnasium's `AsyncVectorEnv` over one env (the library's worker process and
pipes; autoreset off: the trainer resets each episode itself, with its own seed) and looks like
that env to the trainer: `reset`, `step`, and the split `step_async(action)` / `step_wait()` a
group uses to step every member's env at once. Observations, rewards and infos come back
unbatched. The action and observation spaces are the ones of the env the trainer built and
seeded in this process, so warm-up actions draw from the same stream as a synchronous run.
Checkpoints: `remote_snapshot()` / `remote_restore(blob)` run envs/snapshot.py inside the worker,
so a snapshot is the same bytes as the synchronous env's and either kind restores it.
"""
from __future__ import annotations

import functools

import gymnasium
import numpy as np
from gymnasium.vector import AsyncVectorEnv, AutoresetMode

from envs.snapshot import env_snapshot, restore_env_snapshot


class SnapshotAccess(gymnasium.Wrapper):
    """Inside the worker: the snapshot functions as methods `AsyncVectorEnv.call` can reach."""

    def plasticrl_snapshot(self) -> bytes | None:
        return env_snapshot(self.env)

    def plasticrl_restore(self, blob: bytes) -> None:
        restore_env_snapshot(self.env, blob)


def _built(make) -> gymnasium.Env:
    return SnapshotAccess(make())


class SubprocessEnv(gymnasium.Env):
    """`make()` (picklable: it is called in the worker) stepped in its own process; `local` is
    the same env built here, whose spaces (and their seeded RNG) this proxy takes over."""

    def __init__(self, make, local: gymnasium.Env):
        self.action_space, self.observation_space = local.action_space, local.observation_space
        self._vector = AsyncVectorEnv([functools.partial(_built, make)], shared_memory=False,
                                      context="spawn", autoreset_mode=AutoresetMode.DISABLED)

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        obs, info = self._vector.reset(seed=None if seed is None else [seed], options=options)
        return obs[0], _unbatched(info)

    def step_async(self, action) -> None:
        self._vector.step_async(np.asarray(action)[None])

    def step_wait(self):
        obs, reward, terminated, truncated, info = self._vector.step_wait()
        return obs[0], reward[0].item(), bool(terminated[0]), bool(truncated[0]), _unbatched(info)

    def step(self, action):
        self.step_async(action)
        return self.step_wait()

    def remote_snapshot(self) -> bytes | None:
        return self._vector.call("plasticrl_snapshot")[0]

    def remote_restore(self, blob: bytes) -> None:
        self._vector.call("plasticrl_restore", blob)

    def close(self) -> None:
        if not self._vector.closed:
            self._vector.close()


def _unbatched(info: dict) -> dict:
    """The one env's info out of a vector env's ({key: [value], "_key": [present]})."""
    out = {}
    for key, value in info.items():
        if key.startswith("_") or not bool(np.asarray(info.get(f"_{key}", [True]))[0]):
            continue
        out[key] = _unbatched(value) if isinstance(value, dict) else _item(value[0])
    return out


def _item(value):
    return value.item() if isinstance(value, np.generic) else value
