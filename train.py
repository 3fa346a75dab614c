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
from omegaconf.errors import OmegaConfBaseException

from agents.serialization import WriteError
import runner.resolvers  # noqa: F401  (registers the configs' resolvers)
from runner.nonfinite import NonFiniteError
from runner.cli_groups import check_group_choices
from runner.signals import Interrupted, hand_over
from runner.group_start import is_group_dir, prepare_group
from runner.members import MembersError, wanted
from runner.start import REFUSED, RunFinished, prepare_run


# Exit statuses (README "Preemption and faults"): 0 finished, 2 refused before any work (bad
# input), 3 stopped on NaN/inf, 4 a file could not be written, 128 + N stopped by signal N
# (checkpoint written).
BAD_INPUT, NON_FINITE, WRITE_FAILED = 2, 3, 4


def _fail(message: str, made: Path | None, status: int = BAD_INPUT) -> None:
    """Print one line and exit with `status`; remove `made`, the directory Hydra created for
    this run, if nothing was written into it."""
    if made is not None and made.is_dir() and not any(made.iterdir()):
        made.rmdir()
    print(f"error: {message}", file=sys.stderr)
    sys.exit(status)


def main() -> None:
    """`python train.py` and `plasticrl-train`: group choices checked first, then Hydra."""
    problem = check_group_choices(sys.argv[1:])
    if problem:
        print(f"error: {problem}", file=sys.stderr)
        sys.exit(BAD_INPUT)
    run()


@hydra.main(config_path="configs", config_name="train", version_base="1.3")
def run(cfg: DictConfig) -> None:
    hydra_cfg = HydraConfig.get()
    run_dir = Path(hydra_cfg.runtime.output_dir)
    resume = cfg.get("resume")
    # with resume=<an existing directory> Hydra's run dir is that directory: never removed
    made = None if resume and Path(str(resume)).resolve() == run_dir.resolve() else run_dir
    try:
        config = OmegaConf.to_container(cfg, resolve=True)
    except OmegaConfBaseException as err:  # e.g. an override interpolating a missing key
        _fail(f"the config does not resolve: {str(err).splitlines()[0]}", made)
    try:
        if wanted(config) or is_group_dir(config.get("resume")):  # many members in this process
            trainer = prepare_group(config, hydra_cfg.overrides.task, run_dir, _compose, hydra_cfg)
        else:
            trainer = prepare_run(config, hydra_cfg.overrides.task, run_dir, hydra_cfg)
    except REFUSED + (MembersError,) as err:
        _fail(str(err), made)
    except RunFinished as done:  # resume=auto on a finished run (a job started again)
        print(done)
        return
    try:
        summary = trainer.train()
    except Interrupted as stop:  # SIGTERM / SIGINT / SIGUSR1: checkpointed, one line, no traceback
        print(stop, file=sys.stderr)
        hand_over(stop.signum)  # e.g. submitit's handler: requeue this job
        sys.exit(stop.status)
    except NonFiniteError as err:
        _fail(str(err), None, NON_FINITE)
    except WriteError as err:
        _fail(str(err), None, WRITE_FAILED)
    for name, member in zip(getattr(trainer, "names", []), summary.get("members", [])):
        print(f"  {name}: final eval return {member['final_eval_return']:.1f}")
    print(f"run dir: {trainer.run_dir}\nenv steps {summary['env_steps']}, updates {summary['updates']}, "
          f"final eval return {summary['final_eval_return']:.1f}, "
          f"{summary['updates_per_s']:.1f} updates/s")


def _compose(overrides: list[str]) -> dict:
    """The resolved config of `python train.py <overrides>` (a group's members)."""
    return OmegaConf.to_container(hydra.compose(config_name="train", overrides=overrides), resolve=True)


if __name__ == "__main__":
    main()
