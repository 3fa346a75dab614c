"""DeepMind Control Suite tasks exposed as flat-vector gymnasium environments.

A `DMCEnv` carries a gymnasium ``spec`` (entry point ``envs.dmc:DMCEnv`` and its constructor's
arguments), so ``gymnasium.make(env.spec)`` builds it again, wrappers included; no registration
is needed for that. Observations concatenate dm_control's observation dict in its own order
(``obs_layout``), not in gymnasium's sorted order.
"""

from __future__ import annotations

import logging
from typing import Any

import gymnasium
import numpy as np
from gymnasium import spaces
from gymnasium.envs.registration import EnvSpec

from envs.gl import configure_gl, ensure_rendering

configure_gl()  # picks MUJOCO_GL (EGL, else OSMesa) before dm_control chooses its GL backend

from dm_control import suite  # noqa: E402

from envs.obs_layout import ObsLayout  # noqa: E402


class _KnownModelDeprecation(logging.Filter):
    """dm_control's own cheetah, walker, ... XML use `settotalmass`, which MuJoCo 3.17 reports as
    deprecated (twice per env: train and eval) through absl's logger. Not ours to fix, so that one
    message is dropped; every other absl warning still shows."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "compiler attribute 'settotalmass' is deprecated" not in record.getMessage()


logging.getLogger("absl").addFilter(_KnownModelDeprecation())


def all_tasks() -> dict[str, list[str]]:
    """Map each DMC suite domain to its list of task names."""
    tasks: dict[str, list[str]] = {}
    for domain, task in suite.ALL_TASKS:
        tasks.setdefault(domain, []).append(task)
    return tasks


def flatten_observation(obs: dict[str, Any]) -> np.ndarray:
    """Concatenate a DMC observation dict (in its own order) into one float32 vector."""
    parts = [np.asarray(v, dtype=np.float32).ravel() for v in obs.values()]
    if not parts:
        return np.zeros((0,), dtype=np.float32)
    return np.concatenate(parts)


def _plain_int(value: Any) -> int | None:
    """An int (or None) that a spec's JSON can hold, e.g. from a numpy integer."""
    return None if value is None else int(value)


class DMCEnv(gymnasium.Env):
    """A DMC suite task with flat float32 observations and actions in [-1, 1].

    The suite's time limit ends an episode with ``truncated=True``; an episode is
    ``terminated`` only when the final time step has discount 0.
    """

    metadata = {"render_modes": ["rgb_array"]}

    def __init__(
        self,
        domain: str,
        task: str,
        seed: int | None = None,
        height: int = 84,
        width: int = 84,
        camera_id: int = 0,
        shadow_size: int | None = None,
        render_mode: str | None = "rgb_array",
    ) -> None:
        if render_mode not in ("rgb_array", None):
            raise ValueError(f"DMCEnv renders rgb_array only (render_mode 'rgb_array' or None), "
                             f"got {render_mode!r}")
        self.domain, self.task = domain, task
        self._env = suite.load(domain, task, task_kwargs={"random": seed})
        if shadow_size is not None:  # read when the render context is made, at the first render
            self._env.physics.model.vis.quality.shadowsize = int(shadow_size)
        self.render_mode = "rgb_array"  # render() always works; None is accepted for gymnasium
        self._height, self._width, self._camera_id = height, width, camera_id
        self.spec = EnvSpec(
            id=f"plasticrl/dmc-{domain}-{task}-v0", entry_point="envs.dmc:DMCEnv",
            kwargs={"domain": domain, "task": task, "seed": _plain_int(seed),
                    "height": int(height), "width": int(width), "camera_id": int(camera_id),
                    "shadow_size": _plain_int(shadow_size)},
            order_enforce=False, disable_env_checker=True)  # it checks its own step order
        self._needs_reset = True
        # Real-time rate of one env step, for videos (gymnasium's convention).
        self.metadata = {**self.metadata, "render_fps": 1.0 / self._env.control_timestep()}

        dim = sum(int(np.prod(s.shape)) for s in self._env.observation_spec().values())
        self.observation_space = spaces.Box(-np.inf, np.inf, (dim,), np.float32)

        spec = self._env.action_spec()
        self._act_shape = tuple(spec.shape)
        self._act_low = np.broadcast_to(spec.minimum, spec.shape).astype(np.float64)
        self._act_high = np.broadcast_to(spec.maximum, spec.shape).astype(np.float64)
        self.action_space = spaces.Box(-1.0, 1.0, self._act_shape, np.float32)

    @property
    def obs_layout(self) -> ObsLayout:
        """The observation's parts in dm_control's order (e.g. walker: orientations, height,
        velocity)."""
        return ObsLayout(tuple((key, tuple(int(d) for d in spec.shape))
                               for key, spec in self._env.observation_spec().items()))

    @property
    def physics(self):
        """The underlying dm_control physics (e.g. for rendering)."""
        return self._env.physics

    def _scale_action(self, action: Any) -> np.ndarray:
        a = np.asarray(action, dtype=np.float64)
        if a.size != int(np.prod(self._act_shape)):
            raise ValueError(
                f"action has {a.size} elements, expected shape {self._act_shape} "
                f"for dmc:{self.domain}-{self.task}"
            )
        a = np.clip(a.reshape(self._act_shape), -1.0, 1.0)
        scaled = self._act_low + (a + 1.0) * 0.5 * (self._act_high - self._act_low)
        return np.clip(scaled, self._act_low, self._act_high)

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        """Start an episode; a seed reseeds the task's RandomState."""
        super().reset(seed=seed)
        if seed is not None:
            self._env.task.random.seed(seed)
        time_step = self._env.reset()
        self._needs_reset = False
        return flatten_observation(time_step.observation), {}

    def step(self, action: Any) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        """Apply one (rescaled, clipped) action."""
        if self._needs_reset:
            raise RuntimeError(
                "DMCEnv.step() called before reset() or after the episode ended; call reset()"
            )
        time_step = self._env.step(self._scale_action(action))
        obs = flatten_observation(time_step.observation)
        reward = float(time_step.reward or 0.0)
        discount = 1.0 if time_step.discount is None else float(time_step.discount)
        terminated = bool(time_step.last() and discount == 0.0)
        truncated = bool(time_step.last() and not terminated)
        self._needs_reset = time_step.last()
        return obs, reward, terminated, truncated, {"discount": discount}

    def get_state(self) -> dict[str, Any]:
        """Everything stepping depends on (envs/snapshot.py): the dm_control environment,
        pickled whole (physics data and model, which some tasks change per episode, the task's
        RandomState and the step count) and whether a reset is due."""
        return {"env": self._env, "needs_reset": self._needs_reset}

    def set_state(self, state: dict[str, Any]) -> None:
        """Continue from ``get_state()``'s state (render contexts are made again when needed)."""
        self._env, self._needs_reset = state["env"], state["needs_reset"]

    def render(self) -> np.ndarray:
        """Render an RGB array from the configured camera (needs an OpenGL backend: see
        envs.gl, which raises GLUnavailableError saying what to install if there is none)."""
        ensure_rendering()
        return self.physics.render(
            height=self._height, width=self._width, camera_id=self._camera_id
        )

    def close(self) -> None:
        """Release the underlying dm_control environment."""
        self._env.close()
