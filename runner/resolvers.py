"""OmegaConf resolvers the configs use; importing this module registers them."""
from __future__ import annotations

from pathlib import Path

from omegaconf import OmegaConf


def nikishin_drq_interval(total_steps, action_repeat) -> int:
    """Nikishin et al. 2022's DrQ reset interval in agent steps: the run's env-step budget / 20
    (rl_with_resets train_pixels.py `reset_interval`, set per run length in its curves/drq/: 25k
    agent steps for 500k env steps, 50k for 1M, 100k for 2M; 20 / action repeat resets a run)."""
    try:
        repeat = 1 if action_repeat is None else int(action_repeat)
        return max(1, int(total_steps) * repeat // 20)
    except (TypeError, ValueError):  # a bad train.total_steps / env.action_repeat: the validator
        return None                  # names it (and the rule's every = None) instead of a traceback


def run_dir(resume, default) -> str:
    """hydra.run.dir: the resumed run's directory when `resume` names an existing one; else the
    new run's (a `resume=` naming a file or nothing is refused by train.py, which then removes
    that empty new directory; Hydra would fail making a directory where a file is)."""
    return str(resume) if resume and Path(str(resume)).is_dir() else default


OmegaConf.register_new_resolver("nikishin_drq_interval", nikishin_drq_interval, replace=True)
OmegaConf.register_new_resolver("run_dir", run_dir, replace=True)
