"""Train an agent: `python train.py agent=sac env=dmc/cheetah_run seed=1 agent.replay_ratio=8`.

Each run writes runs/<date>_<agent>_<env>_s<seed>/ with config.yaml, tb/ (TensorBoard),
checkpoint.pt, agent.pt and summary.json. `python train.py resume=runs/<dir>` continues a run;
`python train.py -m seed=0,1,2 ...` sweeps through Hydra multirun, jobs in parallel (joblib
launcher; `threads` per run, see runner/threads.py); `python -m runner.report <sweep dir>`
summarizes a sweep.
"""
from __future__ import annotations

import sys
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf

from plasticity.groups import GroupError
from replay import DatasetMismatchError
from runner.checkpoint import CheckpointError
import runner.resolvers  # noqa: F401  (registers the configs' resolvers)
from runner.offline import WarmStartError
from runner.resume import resume_config
from runner.threads import apply_threads
from runner.trainer import Trainer
from runner.validate import ConfigError, validate_config


def _fail(message: str, run_dir: Path) -> None:
    if run_dir.is_dir() and not any(run_dir.iterdir()):
        run_dir.rmdir()  # the empty directory Hydra made for a run that never started
    print(f"error: {message}", file=sys.stderr)
    sys.exit(2)


@hydra.main(config_path="configs", config_name="train", version_base="1.3")
def main(cfg: DictConfig) -> None:
    hydra_cfg = HydraConfig.get()
    run_dir = Path(hydra_cfg.runtime.output_dir)
    config = OmegaConf.to_container(cfg, resolve=True)
    try:
        if config.get("resume"):
            config = resume_config(config["resume"], config, list(hydra_cfg.overrides.task))
            run_dir = Path(config["resume"])
        validate_config(config)
        config["threads"] = apply_threads(config.get("threads"), hydra_cfg)  # recorded in config.yaml
        trainer = Trainer(config, run_dir)
        if config.get("resume"):
            trainer.restore()
    except (ConfigError, CheckpointError, GroupError, DatasetMismatchError, WarmStartError,
            FileNotFoundError) as err:
        _fail(str(err), run_dir)
    summary = trainer.train()
    print(f"run dir: {run_dir}\nenv steps {summary['env_steps']}, updates {summary['updates']}, "
          f"final eval return {summary['final_eval_return']:.1f}, "
          f"{summary['updates_per_s']:.1f} updates/s")


if __name__ == "__main__":
    main()
