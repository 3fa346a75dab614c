"""What `resume=<dir>` needs before anything is built, each refused with a CheckpointError that
says what is wrong and what to do: a directory (not a file, not a missing path) holding a run
(config.yaml, readable) that reached its first checkpoint (checkpoint.pt, readable), and a
command that would train something (a finished run is never rewritten)."""
from __future__ import annotations

from pathlib import Path

import torch
from omegaconf import OmegaConf
from omegaconf.errors import OmegaConfBaseException
from yaml import YAMLError

from runner.checkpoint import CHECKPOINT_NAME, CheckpointError
from runner.validate_common import brief, is_int

CONFIG_NAME = "config.yaml"
RUN_FILES = (CONFIG_NAME, CHECKPOINT_NAME, "agent.pt", "summary.json")


def _first_line(err: BaseException) -> str:
    lines = str(err).strip().splitlines()
    return (lines[0] if lines else "")[:160]


def check_run_dir(run_dir) -> Path:
    """`run_dir` as a Path, if it is a directory holding a run's config.yaml and checkpoint.pt."""
    if not isinstance(run_dir, (str, Path)) or not str(run_dir):
        raise CheckpointError(f"resume = {brief(run_dir)}: must be the path of a run directory")
    path = Path(run_dir)
    if not path.exists():
        raise CheckpointError(f"resume={path}: no such directory (resume takes the directory a run "
                              "wrote, e.g. runs/<date>_<agent>_<env>_s<seed>)")
    if not path.is_dir():
        hint = (f"pass its directory: resume={path.parent}" if path.name in RUN_FILES
                else f"resume takes the directory that holds {CONFIG_NAME} and {CHECKPOINT_NAME}")
        raise CheckpointError(f"resume={path} is a file, not a run directory; {hint}")
    has_config, has_checkpoint = (path / CONFIG_NAME).is_file(), (path / CHECKPOINT_NAME).is_file()
    if not has_config and not has_checkpoint:
        raise CheckpointError(f"resume={path}: not a run directory (it holds no {CONFIG_NAME} and no "
                              f"{CHECKPOINT_NAME}); resume takes the directory a run wrote")
    if not has_config:
        raise CheckpointError(f"resume={path}: {CONFIG_NAME} is missing beside {CHECKPOINT_NAME}; "
                              "the run cannot be continued without the config it was trained with")
    if not has_checkpoint:
        every = _saved_checkpoint_every(path)
        raise CheckpointError(
            f"resume={path}: no checkpoint yet — the run stopped before its first checkpoint "
            f"(train.checkpoint_every{f' = {every} env steps' if every is not None else ''}), so "
            "there is nothing to resume; start it again")
    return path


def refuse_existing_run(run_dir) -> None:
    """A new run may not start where another run's files are: it would overwrite them."""
    path = Path(run_dir)
    found = [name for name in (CONFIG_NAME, CHECKPOINT_NAME) if (path / name).is_file()]
    if found:
        raise CheckpointError(
            f"hydra.run.dir={path} already holds a run ({' and '.join(found)}); a new run there "
            f"would overwrite it. Continue it with resume={path}, or give another hydra.run.dir")


def _saved_checkpoint_every(path: Path):
    try:
        return OmegaConf.load(path / CONFIG_NAME).train.checkpoint_every
    except Exception:  # noqa: BLE001 - only a detail of the message
        return None


def read_saved_config(run_dir: Path) -> dict:
    """The run's config.yaml as a resolved dict; CheckpointError if it is not a readable config."""
    path = run_dir / CONFIG_NAME
    try:
        saved = OmegaConf.to_container(OmegaConf.load(path), resolve=True)
    except (YAMLError, OmegaConfBaseException, UnicodeDecodeError, OSError, ValueError) as err:
        raise CheckpointError(f"resume={run_dir}: {path} is not a readable config "
                              f"({type(err).__name__}: {_first_line(err)}); restore it from the "
                              "run's checkpoint or a copy, or start a new run") from None
    if not isinstance(saved, dict) or not isinstance(saved.get("train"), dict):
        raise CheckpointError(f"resume={run_dir}: {path} does not hold a run config (a mapping with "
                              f"train, agent, env, ...; found {brief(saved)})")
    return saved


def checkpoint_env_steps(path: Path, given: str) -> int:
    """The env steps a run checkpoint holds, read without loading its tensors (mapped, not
    read); CheckpointError if the file is empty, truncated or not a run checkpoint."""
    if path.stat().st_size == 0:
        raise CheckpointError(f"{given}: {path} is empty (0 bytes), a truncated write; there is "
                              "nothing to resume from")
    try:
        try:
            state = torch.load(path, map_location="cpu", weights_only=False, mmap=True)
        except RuntimeError as err:
            if "mmap" not in str(err):  # a legacy (non-zip) file cannot be mapped: read it whole
                raise
            state = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as err:  # noqa: BLE001 - any unpickling failure means the same to the user
        raise CheckpointError(f"{given}: {path} is not a readable checkpoint, it is truncated or "
                              f"corrupt ({type(err).__name__}: {_first_line(err)})") from None
    steps = state.get("counters", {}).get("env_steps") if isinstance(state, dict) else None
    if not is_int(steps):
        found = (f"a dict with keys {brief(sorted(map(str, state))[:8])}" if isinstance(state, dict)
                 else f"a {type(state).__name__}")
        raise CheckpointError(f"{given}: {path} is not a run checkpoint written by train.py "
                              f"(it holds {found})")
    return steps


def refuse_nothing_to_train(run_dir: Path, saved: dict, merged: dict, env_steps: int) -> None:
    """Refuse a resume whose train.total_steps is not above the checkpoint's env steps: it would
    train nothing and rewrite the run's checkpoint, agent.pt, summary.json and config.yaml."""
    total = merged.get("train", {}).get("total_steps")
    if not is_int(total) or total > env_steps:
        return  # a bad total_steps is the validator's to report
    before = saved.get("train", {}).get("total_steps")
    if is_int(before) and before <= env_steps:
        raise CheckpointError(
            f"resume={run_dir}: the run finished at {env_steps} env steps (train.total_steps="
            f"{before}); with train.total_steps={total} there is nothing to train, and its files "
            f"would only be rewritten. To continue it, raise train.total_steps above {env_steps} "
            f"(e.g. train.total_steps={2 * env_steps})")
    raise CheckpointError(
        f"resume={run_dir}: its checkpoint is at {env_steps} env steps, and train.total_steps="
        f"{total} is not above that: nothing would be trained. Raise train.total_steps above "
        f"{env_steps}, or leave it at the run's {before}")
