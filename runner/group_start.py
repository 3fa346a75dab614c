"""From a config with `members` (or `resume=<a group directory>`) to a GroupTrainer ready to
train, or a refusal before anything is written (train.py; runner/start.py does the same for one
run)."""
from __future__ import annotations

from pathlib import Path

from hydra.types import RunMode
from omegaconf import OmegaConf

from runner.checkpoint import CHECKPOINT_NAME
from runner.group import GROUP_NAME, GroupTrainer
from runner.members import MembersError, member_configs
from runner.resume import merge_resume
from runner.resume_checks import checkpoint_env_steps, read_saved_config
from runner.start import RunFinished
from runner.threads import apply_threads
from runner.validate import validate_config


def is_group_dir(path) -> bool:
    """True for a directory a group wrote (it holds group.yaml)."""
    return isinstance(path, (str, Path)) and bool(str(path)) and (Path(path) / GROUP_NAME).is_file()


def prepare_group(config: dict, overrides: list[str], run_dir, compose, hydra_cfg=None) -> GroupTrainer:
    """The GroupTrainer for `python train.py members.seeds=[...] ...` (`compose(overrides)`: the
    resolved config of a command line), or for `resume=<group dir>` (the members' saved
    configs with the command's overrides, checked as a single run's resume is)."""
    if config.get("resume") == "auto":  # a requeued job: continue its group if it checkpointed
        config = {**config, "resume": str(run_dir) if is_group_dir(run_dir) and
                  (Path(run_dir) / CHECKPOINT_NAME).is_file() else None}
        overrides = [o for o in overrides if not o.startswith("resume=")]
        if config["resume"]:
            _refuse_finished(Path(run_dir), config, overrides)
    if config.get("resume"):
        run_dir = Path(config["resume"])
        members, spec = _resumed_members(run_dir, config, list(overrides))
    else:  # (a resumed member's merged config is validated as its Trainer is built)
        validate_config(config)
        run_dir = Path(run_dir)
        found = [n for n in (GROUP_NAME, CHECKPOINT_NAME, "config.yaml") if (run_dir / n).is_file()]
        if found:
            raise MembersError(f"hydra.run.dir={run_dir} already holds a run ({', '.join(found)}); "
                               f"continue it with resume={run_dir}, or give another hydra.run.dir")
        spec = config["members"]
        members = member_configs(compose, list(overrides), spec)
    threads = apply_threads(config.get("threads"), hydra_cfg)
    for _, cfg in members:
        cfg["threads"] = threads
    trainer = GroupTrainer(members, run_dir, spec)
    if hydra_cfg is not None and hydra_cfg.mode == RunMode.MULTIRUN:
        trainer.members[0].label = run_dir.name  # the job's bar says which job it is
    if config.get("resume"):
        trainer.restore()
    return trainer


def _refuse_finished(run_dir: Path, config: dict, overrides: list[str]) -> None:
    """resume=auto on a group that reached train.total_steps (its own, or the command's): RunFinished,
    as for a single run (train.py prints it and exits 0)."""
    names = OmegaConf.to_container(OmegaConf.load(run_dir / GROUP_NAME)).get("members") or []
    steps = checkpoint_env_steps(run_dir / CHECKPOINT_NAME, f"resume=auto ({run_dir})")
    total = read_saved_config(run_dir / "members" / names[0])["train"].get("total_steps") if names else None
    if any(o.split("=", 1)[0].lstrip("+") == "train.total_steps" for o in overrides):
        total = config["train"]["total_steps"]  # the command extends (or shortens) the run
    if isinstance(total, int) and steps >= total:
        raise RunFinished(f"resume=auto: the group {run_dir} finished at {steps} env steps "
                          f"(train.total_steps={total}); nothing to do")


def _resumed_members(run_dir: Path, composed: dict, overrides: list[str]) -> tuple[list, dict]:
    group = OmegaConf.to_container(OmegaConf.load(run_dir / GROUP_NAME))
    if not (run_dir / CHECKPOINT_NAME).is_file():
        raise MembersError(f"resume={run_dir}: the group has no checkpoint yet; start it again")
    changed = [o for o in overrides if o.lstrip("+~").startswith("members")
               and not o.lstrip("+~").startswith("members.async_envs")]  # how envs step may change
    if changed:
        raise MembersError(f"resume={run_dir}: {changed[0]}: the members of a group cannot change "
                           "on resume")
    steps = checkpoint_env_steps(run_dir / CHECKPOINT_NAME, f"resume={run_dir}")
    members = []
    for name in group["members"]:
        member_dir = run_dir / "members" / name
        saved = read_saved_config(member_dir)
        merged = merge_resume(run_dir, saved, composed, overrides, steps)
        merged["resume"] = None  # a member is resumed by its group
        members.append((name, merged))
    spec = dict(group.get("spec") or {})
    spec["async_envs"] = bool((composed.get("members") or {}).get("async_envs"))  # the command's
    return members, spec
