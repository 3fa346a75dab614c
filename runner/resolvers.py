"""OmegaConf resolvers the configs use; importing this module registers them."""
from __future__ import annotations

import re
from pathlib import Path

from omegaconf import OmegaConf

JOB_NAME_LIMIT = 120  # characters of overrides in a job directory's name (a path part is <= 255)


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
    named = resume and str(resume) != "auto" and Path(str(resume)).is_dir()
    return str(resume) if named else default  # resume=auto continues in this run's own dir


def job_subdir(num, overrides, sweep_dir=None) -> str:
    """hydra.sweep.subdir: the job number, then the job's overrides that are not the same for the
    whole sweep, e.g. `3_env-dmc.cheetah_run_seed-1` for `-m env=dmc/cheetah_run,... seed=1,2`.
    `=` becomes `-`; any run of characters other than letters, digits and `._+-` (`/`, `,`,
    brackets, quotes) becomes `.`: the name needs no quoting in a shell or in `resume=<dir>`, and
    TensorBoard lists the run by it. `resume=` is left out (a job started again keeps its
    directory). The number keeps names unique, and in job order, where long ones are cut."""
    shared = _shared_override_keys(sweep_dir)
    parts = [str(num)]
    for override in overrides or ():
        key, eq, value = _split_override(override)
        if key == "resume" or key in shared:
            continue
        parts.append(_path_safe(key) + ("-" + _path_safe(value) if eq else ""))
    name = "_".join(p for p in parts if p)
    limit = len(parts[0]) + 1 + JOB_NAME_LIMIT
    return name if len(name) <= limit else name[:limit].rstrip("._-")


def _split_override(override) -> tuple[str, str, str]:
    key, eq, value = str(override).lstrip("+~").partition("=")
    return key, eq, value


def _shared_override_keys(sweep_dir) -> set[str]:
    """Keys the sweep's command line gives one value for every job (not `a,b`, `range(...)`,
    ...), read from the `multirun.yaml` Hydra writes before launching. Empty when unknown."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    try:
        task = list(OmegaConf.load(Path(str(sweep_dir)) / "multirun.yaml").hydra.overrides.task)
        parsed = OverridesParser.create().parse_overrides(task)
    except Exception:  # noqa: BLE001 - no file, another sweeper's layout: name by every override
        return set()
    return {_split_override(raw)[0] for raw, o in zip(task, parsed) if not o.is_sweep_override()}


def _path_safe(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._+-]+", ".", text).strip(".")

OmegaConf.register_new_resolver("nikishin_drq_interval", nikishin_drq_interval, replace=True)
OmegaConf.register_new_resolver("run_dir", run_dir, replace=True)
OmegaConf.register_new_resolver("job_subdir", job_subdir, replace=True)
