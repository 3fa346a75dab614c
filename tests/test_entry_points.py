"""The console scripts pip installs: `plasticrl-train` is `python train.py` (same config, same
help), from any working directory."""
import shutil
import subprocess
from importlib.metadata import entry_points

import pytest


def test_console_scripts_are_declared():
    scripts = {e.name: e.value for e in entry_points(group="console_scripts")}
    assert scripts.get("plasticrl-train") == "train:main"
    assert scripts.get("plasticrl-report") == "runner.report:main"


@pytest.mark.skipif(shutil.which("plasticrl-train") is None, reason="plasticrl not pip-installed")
def test_plasticrl_train_runs_from_another_directory(tmp_path):
    run = subprocess.run(["plasticrl-train", "device=cpu", "train.total_steps=150",
                          "train.learning_starts=100", "train.eval_every=0", "train.eval_episodes=1",
                          "train.progress=false", "agent.hidden_dims=[8,8]", "agent.batch_size=8",
                          f"hydra.run.dir={tmp_path / 'run'}"],
                         cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    assert "env steps 150, updates 51" in run.stdout
    assert (tmp_path / "run" / "agent.pt").is_file()
    listing = subprocess.run(["plasticrl-train", "--help"], cwd=tmp_path, capture_output=True,
                             text=True, timeout=120).stdout
    assert "agent: bbf, drq" in listing and "plasticity:" in listing


def test_a_mistyped_config_group_choice_gets_its_options():
    from runner.cli_groups import check_group_choices, group_options
    assert "dmc/cheetah_run" in group_options("env") and "sac" in group_options("agent")
    message = check_group_choices(["seed=1", "env=dmc/cheetah"])
    assert message.startswith("env=dmc/cheetah: no such env config (configs/env/dmc/cheetah.yaml). "
                              "Did you mean dmc/cheetah_run")
    assert "Options under dmc/: dmc/acrobot_swingup, " in message and "atari/" not in message
    assert "Did you mean gym/pendulum?" in check_group_choices(["-m", "env=dmc/cheetah_run,gym/pendulm"])
    assert check_group_choices(["agent=sac", "env=atari/pong", "plasticity=none,head_reset"]) is None
    assert check_group_choices(["env=glob(dmc/*)", "~plasticity"]) is None  # Hydra's to check


def test_train_py_refuses_a_mistyped_group_with_status_2(tmp_path):
    import sys
    from pathlib import Path
    run = subprocess.run([sys.executable, "train.py", "plasticity=head_rest", f"hydra.run.dir={tmp_path / 'r'}"],
                         cwd=Path(__file__).resolve().parents[1], capture_output=True, text=True, timeout=120)
    assert run.returncode == 2 and run.stderr.startswith("error: plasticity=head_rest: no such")
    assert "Did you mean head_reset?" in run.stderr and not (tmp_path / "r").exists()
