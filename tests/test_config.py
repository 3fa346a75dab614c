"""Config validation beyond the one table of refused inputs (tests/test_bad_inputs.py): all
errors at once, group patterns, devices, the CLI's exit status."""
import subprocess
import sys
from pathlib import Path

import pytest

from runner.validate import ConfigError, validate_config
from tests.conftest import TINY, make_config

ROOT = Path(__file__).resolve().parents[1]


def test_default_config_is_valid():
    validate_config(make_config())


def test_threads_null_by_default_and_any_positive_int():
    assert make_config()["threads"] is None
    validate_config(make_config("threads=2"))


def test_every_error_is_reported_at_once():
    with pytest.raises(ConfigError) as err:
        validate_config(make_config("agent.replay_ratio=0", "agent.lr=-1", "train.total_steps=0"))
    text = str(err.value)
    assert "agent.replay_ratio" in text and "agent.lr" in text and "train.total_steps" in text


def test_group_pattern_matching_nothing_fails_before_training(tmp_path):
    from plasticity.groups import GroupError
    from runner.trainer import Trainer
    cfg = make_config(*TINY, "plasticity=head_reset", "plasticity.rules.0.groups=[critic.neck]")
    with pytest.raises(GroupError, match="critic.neck.*critic.head.weight"):
        Trainer(cfg, tmp_path / "run")
    assert not (tmp_path / "run").exists()


def test_cuda_requested_without_gpu():
    import torch
    if torch.cuda.is_available():
        pytest.skip("a GPU is present")
    with pytest.raises(ConfigError, match="no CUDA device"):
        validate_config(make_config("device=cuda"))


def test_train_py_refuses_before_any_work(tmp_path):
    """The CLI exits with status 2 and the message, and leaves no run directory behind."""
    run_dir = tmp_path / "run"
    proc = subprocess.run(
        [sys.executable, "train.py", *TINY, "agent.replay_ratio=0", f"hydra.run.dir={run_dir}"],
        cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2, proc.stderr
    assert "agent.replay_ratio = 0: must be an integer >= 1" in proc.stderr
    assert not run_dir.exists()
