"""From a composed config to a Trainer ready to train, or a refusal before anything is written.
train.py calls `prepare_run`; everything it raises is one of `REFUSED` (exit status 2, one
message naming the key and what is allowed; README "Validation and errors")."""
from __future__ import annotations

from pathlib import Path

from plasticity.groups import GroupError
from replay import DatasetError, DatasetMismatchError
from runner.checkpoint import CheckpointError
from runner.offline import WarmStartError
from runner.resume import resume_config
from runner.resume_checks import refuse_existing_run
from runner.threads import apply_threads
from runner.trainer import Trainer
from runner.validate import ConfigError, validate_config

# what a bad command raises: reported in one message, nothing built on disk
REFUSED = (ConfigError, CheckpointError, GroupError, DatasetError, DatasetMismatchError,
           WarmStartError, FileNotFoundError)


def prepare_run(config: dict, overrides: list[str], run_dir, hydra_cfg=None) -> Trainer:
    """The Trainer for `python train.py <overrides>`: `config` is Hydra's composed config,
    `run_dir` the directory Hydra gave the run. A `resume=` command continues that run (only
    the overridden keys change); a new run never starts in a directory holding another run."""
    if config.get("resume"):
        config = resume_config(config["resume"], config, list(overrides))
        run_dir = Path(config["resume"])
    else:
        refuse_existing_run(run_dir)
    validate_config(config)
    config["threads"] = apply_threads(config.get("threads"), hydra_cfg)  # recorded in config.yaml
    trainer = Trainer(config, run_dir)
    if config.get("resume"):
        trainer.restore()
    return trainer
