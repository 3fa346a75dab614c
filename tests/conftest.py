"""Shared test helpers: compose the real Hydra config with overrides."""
from __future__ import annotations

from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

import torch

import runner.resolvers  # noqa: F401  (the configs' resolvers, as train.py registers them)
from envs import gl

CONFIG_DIR = str(Path(__file__).resolve().parents[1] / "configs")
# In-process runs use 1 torch thread, as a single train.py run does (runner/threads.py): torch's
# default collapses when anything else shares the CPU (the suite took 72 min, not 4, that way).
torch.set_num_threads(1)


def make_config(*overrides: str) -> dict:
    """The resolved config `python train.py <overrides>` would run with."""
    with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
        cfg = compose(config_name="train", overrides=list(overrides))
    return OmegaConf.to_container(cfg, resolve=True)


# A tiny but real run: Pendulum, small nets, a few hundred steps.
TINY = ("device=cpu", "train.total_steps=1000", "train.learning_starts=200", "train.eval_every=500",
        "train.eval_episodes=1", "train.log_every=250", "train.checkpoint_every=400",
        "train.progress=false", "agent.hidden_dims=[32,32]", "agent.batch_size=32",
        "agent.buffer_size=5000", "agent.replay_ratio=2")


@pytest.fixture
def tiny_config():
    return make_config(*TINY)


def _gl_problem() -> str | None:
    try:
        gl.ensure_rendering()
    except gl.GLUnavailableError as exc:  # pragma: no cover - machines without OpenGL
        return str(exc)
    return None


_NO_GL = _gl_problem()
# for tests that render (DMC pixels, videos): skipped, with the reason, where OpenGL is missing
needs_gl = pytest.mark.skipif(_NO_GL is not None, reason=f"no OpenGL: {_NO_GL}")
