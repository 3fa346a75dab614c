"""Checkpoints: an interrupted and resumed run ends bitwise identical to an uninterrupted
one on the CPU; incompatible or broken checkpoints are refused; writes are atomic."""
import copy
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from agents.serialization import atomic_save
from runner.checkpoint import CheckpointError
from runner.resume import resume_config
from runner.trainer import Trainer
from tests.conftest import TINY, make_config

ROOT = Path(__file__).resolve().parents[1]


def final_state(trainer):
    return {**{f"param/{k}": v for k, v in trainer.agent.state_dict().items()},
            **{f"replay/{k}": v for k, v in trainer.buffer.storage.fields.items()}}


EVERY_250 = ("plasticity.unit=updates", "plasticity.every=250")


@pytest.mark.parametrize("preset, extra", [
    ("none", ()), ("shrink_perturb", EVERY_250), ("hare_tortoise", EVERY_250),
    ("redo", ("plasticity.every=250", "plasticity.tau=0.5")),  # its side batch and fresh draws
    ("regen", ("plasticity.coef=0.01", "train.priming_updates=50", "diagnostics.every=100"))])
def test_interrupted_run_resumes_bitwise_identical(tmp_path, preset, extra):
    # resets every 250 updates: some before the interruption at step 600, some after
    tiny_config = make_config(*TINY, f"plasticity={preset}", *extra)
    full = Trainer(tiny_config, tmp_path / "full")
    full.train()

    interrupted = Trainer(tiny_config, tmp_path / "resumed")
    interrupted.train(stop_at=500)  # stops at the episode end at step 600, checkpointed
    assert interrupted.counters["env_steps"] == 600
    del interrupted

    resumed = Trainer(tiny_config, tmp_path / "resumed")  # a fresh process would do the same
    resumed.restore()
    assert resumed.counters["env_steps"] == 600
    resumed.train()

    a, b = final_state(full), final_state(resumed)
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key
    for opt_name, opt in full.agent.optimizers.items():
        sa, sb = opt.state_dict()["state"], resumed.agent.optimizers[opt_name].state_dict()["state"]
        for pid in sa:
            for field in sa[pid]:
                assert torch.equal(sa[pid][field], sb[pid][field]), (opt_name, pid, field)
    assert full.counters["updates"] == resumed.counters["updates"]
    assert [e["return_mean"] for e in full.eval_history] == [e["return_mean"] for e in resumed.eval_history]
    assert full.scheduler.events == resumed.scheduler.events
    if extra == EVERY_250:
        # 1602 updates in all; 1500 would leave less than one interval (no_reset_within = 1)
        assert [e["updates"] for e in full.scheduler.events] == [250, 500, 750, 1000, 1250]


def test_incompatible_checkpoint_is_refused(tmp_path, tiny_config):
    Trainer(tiny_config, tmp_path).train(stop_at=200)
    other = copy.deepcopy(tiny_config)
    other["agent"]["hidden_dims"] = [64, 64]
    with pytest.raises(CheckpointError, match=r"agent.hidden_dims: \[32, 32\] in the checkpoint, \[64, 64\] now"):
        Trainer(other, tmp_path).restore()
    longer = copy.deepcopy(tiny_config)
    longer["train"]["total_steps"] = 2000  # run length may change
    Trainer(longer, tmp_path).restore()


def test_unreadable_or_missing_checkpoint_is_refused(tmp_path, tiny_config):
    with pytest.raises(CheckpointError, match="no checkpoint at"):
        Trainer(tiny_config, tmp_path).restore()
    (tmp_path / "checkpoint.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match="not a readable checkpoint"):
        Trainer(tiny_config, tmp_path).restore()


def test_resume_overrides_may_change_train_but_not_agent(tmp_path, tiny_config):
    Trainer(tiny_config, tmp_path).train(stop_at=200)
    composed = copy.deepcopy(tiny_config)
    composed["train"]["total_steps"] = 3000
    composed["agent"]["replay_ratio"] = 8
    merged = resume_config(tmp_path, composed, [f"resume={tmp_path}", "train.total_steps=3000"])
    assert merged["train"]["total_steps"] == 3000 and merged["agent"]["replay_ratio"] == 2
    with pytest.raises(CheckpointError, match="agent.replay_ratio: 2 in the checkpoint, 8 now"):
        resume_config(tmp_path, composed, [f"resume={tmp_path}", "agent.replay_ratio=8"])


def test_failed_write_leaves_previous_file_intact(tmp_path):
    path = tmp_path / "checkpoint.pt"
    atomic_save({"step": 1}, path)
    with pytest.raises(Exception):
        atomic_save({"bad": lambda: None}, path)  # lambdas cannot be pickled
    assert torch.load(path)["step"] == 1
    assert [p.name for p in tmp_path.iterdir()] == ["checkpoint.pt"]  # no temp file left


def test_train_py_resume_from_cli(tmp_path):
    run_dir = tmp_path / "run"
    base = [sys.executable, "train.py", *TINY, "train.total_steps=300", "train.eval_every=0"]
    first = subprocess.run([*base, f"hydra.run.dir={run_dir}"], cwd=ROOT, capture_output=True,
                           text=True, timeout=300)
    assert first.returncode == 0, first.stderr
    again = subprocess.run([*base, f"resume={run_dir}", "train.total_steps=600"], cwd=ROOT,
                           capture_output=True, text=True, timeout=300)
    assert again.returncode == 0, again.stderr
    assert "env steps 600" in again.stdout
    # the first run stopped mid-episode (Pendulum episodes last 200 steps); its final checkpoint
    # saved the env, so the resumed run finished that episode: no cut at step 300
    truncated = torch.load(run_dir / "checkpoint.pt", weights_only=False)["replay"]["storage"]["fields"]["truncated"]
    assert truncated.nonzero().flatten().tolist() == [199, 399, 599]
    bad = subprocess.run([*base, f"resume={run_dir}", "agent.lr=0.1"], cwd=ROOT,
                         capture_output=True, text=True, timeout=300)
    assert bad.returncode == 2 and "agent.lr: 0.0003 in the checkpoint, 0.1 now" in bad.stderr


def test_resume_fills_keys_added_after_the_run_was_saved(tmp_path, tiny_config):
    from omegaconf import OmegaConf
    old = copy.deepcopy(tiny_config)
    del old["diagnostics"], old["train"]["priming_updates"]  # a run saved before these existed
    (tmp_path / "config.yaml").write_text(OmegaConf.to_yaml(OmegaConf.create(old)))
    torch.save({"counters": {"env_steps": 300}}, tmp_path / "checkpoint.pt")  # read for its steps only
    merged = resume_config(tmp_path, make_config(*TINY, "train.total_steps=2000"), ["train.total_steps=2000"])
    assert merged["diagnostics"] == tiny_config["diagnostics"]
    assert merged["train"]["priming_updates"] == 0 and merged["train"]["total_steps"] == 2000
    with pytest.raises(CheckpointError, match="diagnostics.\\*, logger.\\*, device and threads may change"):
        resume_config(tmp_path, make_config(*TINY, "agent.lr=0.1"), ["agent.lr=0.1"])
