"""From a composed config to a Trainer ready to train, or a refusal before anything is written.
train.py calls `prepare_run`; everything it raises is one of `REFUSED` (exit status 2, one
message naming the key and what is allowed; README "Validation and errors")."""
from __future__ import annotations

from pathlib import Path

from hydra.types import RunMode

from plasticity.groups import GroupError
from replay import DatasetError, DatasetMismatchError
from runner.checkpoint import CHECKPOINT_NAME, CheckpointError
from runner.offline import WarmStartError
from runner.resume import resume_config
from runner.resume_checks import checkpoint_env_steps, read_saved_config, refuse_existing_run
from runner.threads import apply_threads
from runner.trainer import Trainer
from runner.validate import ConfigError, validate_config

AUTO = "auto"  # resume=auto: continue the run in this run's own directory if it has a checkpoint


class RunFinished(Exception):
    """resume=auto found the run already finished: nothing to do (exit status 0)."""


# what a bad command raises: reported in one message, nothing built on disk
REFUSED = (ConfigError, CheckpointError, GroupError, DatasetError, DatasetMismatchError,
           WarmStartError, FileNotFoundError)


def prepare_run(config: dict, overrides: list[str], run_dir, hydra_cfg=None) -> Trainer:
    """The Trainer for `python train.py <overrides>`: `config` is Hydra's composed config,
    `run_dir` the directory Hydra gave the run. A `resume=` command continues that run (only
    the overridden keys change); `resume=auto` continues the run in `run_dir` if it has a
    checkpoint; a new run never starts in a directory holding another run."""
    if config.get("resume") == AUTO:
        config = _auto_resume(config, list(overrides), Path(run_dir))
    elif config.get("resume"):
        config = resume_config(config["resume"], config, list(overrides))
        run_dir = Path(config["resume"])
    else:
        refuse_existing_run(run_dir)
    validate_config(config)
    config["threads"] = apply_threads(config.get("threads"), hydra_cfg)  # recorded in config.yaml
    trainer = Trainer(config, run_dir)
    if config.get("resume"):
        trainer.restore()
    if hydra_cfg is not None and hydra_cfg.mode == RunMode.MULTIRUN:
        trainer.label = Path(run_dir).name  # the job's bar says which job it is
    return trainer


def _auto_resume(config: dict, overrides: list[str], run_dir: Path) -> dict:
    """resume=auto, for jobs a scheduler may start again with the same command (a requeued SLURM
    array task): continue from `run_dir`'s checkpoint if there is one, else start the run there
    (a run killed before its first checkpoint starts over); a finished run raises RunFinished."""
    if not (run_dir / CHECKPOINT_NAME).is_file():
        return {**config, "resume": None}
    overrides = [o for o in overrides if not o.startswith("resume=")]
    steps = checkpoint_env_steps(run_dir / CHECKPOINT_NAME, f"resume=auto ({run_dir})")
    total = read_saved_config(run_dir)["train"].get("total_steps")
    if any(o.split("=", 1)[0].lstrip("+") == "train.total_steps" for o in overrides):
        total = config["train"]["total_steps"]  # the command extends (or shortens) the run
    if isinstance(total, int) and steps >= total:
        raise RunFinished(f"resume=auto: {run_dir} finished at {steps} env steps "
                          f"(train.total_steps={total}); nothing to do")
    return resume_config(run_dir, config, overrides)
