"""OmegaConf resolvers the configs use; importing this module registers them."""
from __future__ import annotations

from omegaconf import OmegaConf


def nikishin_drq_interval(total_steps, action_repeat) -> int:
    """Nikishin et al. 2022's DrQ reset interval in agent steps: the run's env-step budget / 20
    (rl_with_resets train_pixels.py `reset_interval`, set per run length in its curves/drq/: 25k
    agent steps for 500k env steps, 50k for 1M, 100k for 2M; 20 / action repeat resets a run)."""
    repeat = 1 if action_repeat is None else int(action_repeat)
    return max(1, int(total_steps) * repeat // 20)


OmegaConf.register_new_resolver("nikishin_drq_interval", nikishin_drq_interval, replace=True)
# hydra.run.dir is the resumed run's directory when `resume` is set.
OmegaConf.register_new_resolver("run_dir", lambda resume, default: resume or default, replace=True)
