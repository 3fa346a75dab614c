"""The README's first commands run as written (README "First hour"): every command of that
section, in order, in a fresh directory, with the run budgets cut to seconds. Budget keys the
command sets are replaced (a later override wins in Hydra and argparse); nothing else changes."""
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()
# appended to every train.py command: seconds instead of minutes
TINY_TRAIN = ["device=cpu", "train.total_steps=260", "train.learning_starts=100",
              "train.eval_every=130", "train.eval_episodes=1", "train.checkpoint_every=0",
              "train.progress=false", "agent.batch_size=8", "diagnostics.every=50"]
SMALLER = {"plasticity.every": "100", "offline.pretrain_updates": "40", "agent.hidden_dims": "[16,16]"}
TINY_COLLECT = ["--episodes", "2"]


def first_hour_commands() -> list[str]:
    """The shell commands of the README's First hour section, `\\` continuations joined,
    comments dropped."""
    section = README.split("## First hour", 1)[1].split("\n## ", 1)[0]
    commands = []
    for block in re.findall(r"```bash\n(.*?)```", section, re.S):
        for line in block.replace("\\\n", " ").splitlines():
            line = line.split("  #", 1)[0].strip()
            if line and not line.startswith("#"):
                commands.append(line)
    return commands


def tiny(command: str) -> list[str]:
    args = shlex.split(command)
    if args[:2] == ["python", "train.py"]:
        args = [sys.executable, str(ROOT / "train.py"), *args[2:]]
        args = [f"{a.split('=')[0]}={SMALLER[a.split('=')[0].lstrip('+')]}"
                if a.split("=")[0].lstrip("+") in SMALLER else a for a in args]
        return args + TINY_TRAIN
    if args[:3] == ["python", "-m", "runner.collect"]:
        return [sys.executable, *args[1:], *TINY_COLLECT]
    if args[:2] == ["python", "-m"]:
        return [sys.executable, *args[1:]]
    if args[0] == "tensorboard":
        return []  # a server: not started here
    raise AssertionError(f"README First hour: a command this test does not know how to run: {command}")


def test_the_first_hour_section_has_one_command_per_family():
    commands = first_hour_commands()
    joined = "\n".join(commands)
    for family in ("env=dmc/", " -m ", "runner.report", "runner.collect", "offline.dataset=", "env=atari/",
                   "--help"):
        assert family in joined, family


def test_every_first_hour_command_runs_as_written(tmp_path):
    for command in first_hour_commands():
        args = tiny(command)
        if not args:
            continue
        run = subprocess.run(args, cwd=tmp_path, capture_output=True, text=True, timeout=900)
        assert run.returncode == 0, f"{command}\n{run.stdout[-2000:]}\n{run.stderr[-3000:]}"
    assert list(tmp_path.glob("runs/*/agent.pt")), "no run finished"
    assert list(tmp_path.glob("runs/*/report.md")), "no report written"
