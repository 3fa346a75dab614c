"""Continual RL: one env whose task changes along a seeded sequence (README "Continual RL").

Task 0 is the env as built; tasks 1 .. N-1 each draw, from their own seeded stream, every
perturbation the sequence names:

    permute_obs       o'  = o[perm]                        a fixed random permutation (vector obs)
    permute_actions   a_env[perm[j]] = a[j]                 which action dimension drives what
    negate_actions    a_env = s * a, s in {-1, +1}^|A|      at least one sign flipped
    scale_reward      r'  = c r,  c log-uniform in [1/4, 4]
    friction, mass, gravity (DMC)  the physics model's geom_friction, body_mass or gravity times a
                      factor log-uniform in [1/2, 2], applied to the values the model was built with

The trainer switches tasks at exact env steps (runner/continual.py); `set_task` may be called at
any time and is idempotent. The wrapper sits outside the env's own wrappers, so the agent sees
permuted flat observations and acts in [-1, 1] as before; a perturbed action is still in [-1, 1].
"""
from __future__ import annotations

from dataclasses import dataclass

import gymnasium
import numpy as np

PERTURBATIONS = ("permute_obs", "permute_actions", "negate_actions", "scale_reward",
                 "friction", "mass", "gravity")
PHYSICS = {"friction": "geom_friction", "mass": "body_mass", "gravity": "opt.gravity"}


@dataclass(frozen=True)
class Task:
    """One task of a sequence: index arrays and factors (None / 1: that part unchanged)."""
    obs_perm: tuple[int, ...] | None = None
    action_perm: tuple[int, ...] | None = None
    action_sign: tuple[float, ...] | None = None
    reward_scale: float = 1.0
    physics: tuple[tuple[str, float], ...] = ()  # (perturbation, factor)


def _permutation(rng: np.random.Generator, n: int) -> tuple[int, ...]:
    """A random permutation of range(n) that moves something (n > 1)."""
    while True:
        perm = rng.permutation(n)
        if n < 2 or (perm != np.arange(n)).any():
            return tuple(int(i) for i in perm)


def draw_tasks(perturbations, count: int, obs_dim: int, action_dim: int, seed: int) -> list[Task]:
    """Task 0 unchanged, tasks 1 .. count-1 drawn from (seed, task index)."""
    tasks = [Task()]
    for index in range(1, count):
        rng = np.random.default_rng([int(seed), index])
        parts: dict = {}
        for kind in perturbations:
            if kind == "permute_obs":
                parts["obs_perm"] = _permutation(rng, obs_dim)
            elif kind == "permute_actions":
                parts["action_perm"] = _permutation(rng, action_dim)
            elif kind == "negate_actions":
                signs = np.where(rng.random(action_dim) < 0.5, -1.0, 1.0)
                if (signs > 0).all():
                    signs[rng.integers(action_dim)] = -1.0
                parts["action_sign"] = tuple(float(s) for s in signs)
            elif kind == "scale_reward":
                parts["reward_scale"] = float(np.exp(rng.uniform(np.log(0.25), np.log(4.0))))
            elif kind in PHYSICS:
                factor = float(np.exp(rng.uniform(np.log(0.5), np.log(2.0))))
                parts["physics"] = parts.get("physics", ()) + ((kind, factor),)
            else:
                raise ValueError(f"perturbation {kind!r}: allowed {list(PERTURBATIONS)}")
        tasks.append(Task(**parts))
    return tasks


class TaskSequence(gymnasium.Wrapper, gymnasium.utils.RecordConstructorArgs):
    """`env` under task `index` of `draw_tasks(perturbations, count, ..., seed)`."""

    def __init__(self, env: gymnasium.Env, perturbations, count: int, seed: int):
        gymnasium.utils.RecordConstructorArgs.__init__(
            self, perturbations=list(perturbations), count=count, seed=seed)
        gymnasium.Wrapper.__init__(self, env)
        obs_shape, act_space = env.observation_space.shape, env.action_space
        if "permute_obs" in perturbations and len(obs_shape) != 1:
            raise ValueError(f"permute_obs needs flat vector observations, not shape {obs_shape}")
        if {"permute_actions", "negate_actions"} & set(perturbations) and not isinstance(
                act_space, gymnasium.spaces.Box):
            raise ValueError(f"action perturbations need Box actions, not {act_space}")
        physics = getattr(env.unwrapped, "physics", None)
        if physics is None and set(PHYSICS) & set(perturbations):
            raise ValueError("friction / mass / gravity perturbations need a DMC env (dmc: ids)")
        self._originals = {kind: _model_array(physics, name).copy() for kind, name in PHYSICS.items()
                           if kind in perturbations}
        action_dim = act_space.shape[0] if isinstance(act_space, gymnasium.spaces.Box) else 0
        self.tasks = draw_tasks(perturbations, count, obs_shape[0] if obs_shape else 0, action_dim, seed)
        self.task_index = 0

    @property
    def task(self) -> Task:
        return self.tasks[self.task_index]

    def set_task(self, index: int) -> None:
        """Make task `index` (mod the sequence's length) the current one."""
        self.task_index = int(index) % len(self.tasks)
        factors = dict(self.task.physics)
        physics = getattr(self.env.unwrapped, "physics", None)
        for kind, original in self._originals.items():
            _model_array(physics, PHYSICS[kind])[...] = original * factors.get(kind, 1.0)

    def _obs(self, obs):
        perm = self.task.obs_perm
        return obs if perm is None else obs[list(perm)]

    def reset(self, **kwargs):
        obs, info = self.env.reset(**kwargs)
        return self._obs(obs), {**info, "task": self.task_index}

    def step(self, action):
        task = self.task
        action = np.asarray(action, dtype=np.float32)
        if task.action_sign is not None:
            action = action * np.asarray(task.action_sign, dtype=np.float32)
        if task.action_perm is not None:
            moved = np.empty_like(action)
            moved[list(task.action_perm)] = action
            action = moved
        obs, reward, terminated, truncated, info = self.env.step(action)
        return self._obs(obs), float(reward) * task.reward_scale, terminated, truncated, \
            {**info, "task": self.task_index}


def _model_array(physics, dotted: str) -> np.ndarray:
    node = physics.model
    for part in dotted.split("."):
        node = getattr(node, part)
    return node
