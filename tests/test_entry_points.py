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
