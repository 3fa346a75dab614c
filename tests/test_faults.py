"""Faults: NaN/inf stops a run without writing a non-finite checkpoint; a full disk or a refused
write says so and leaves the previous checkpoint intact; orphan temporary files are removed;
`train.keep_checkpoints` keeps older checkpoints to roll back to (README "Preemption and faults")."""
import errno
import hashlib
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import agents.serialization as serialization
from agents.serialization import WriteError, atomic_save
from runner.checkpoint import CHECKPOINT_NAME
from runner.nonfinite import NonFiniteError
from runner.trainer import Trainer
from tests.conftest import TINY, make_config

ROOT = Path(__file__).resolve().parents[1]


def digest(path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def poison_after(monkeypatch, n: int, where: str = "param"):
    """After update `n`, put a NaN into the first critic weight (`param`) or into the returned
    critic loss (`loss`)."""
    update = Trainer._update

    def patched(self, logger):
        metrics = update(self, logger)
        if self.counters["updates"] >= n:
            if where == "param":
                with torch.no_grad():
                    next(self.agent.critic.parameters()).view(-1)[0] = float("nan")
            else:
                metrics["critic_loss"] = torch.tensor(float("inf"))
                self.guard.observe({"critic_loss": metrics["critic_loss"]})
        return metrics
    monkeypatch.setattr(Trainer, "_update", patched)


def test_nan_parameter_stops_before_the_next_checkpoint(tmp_path, monkeypatch):
    config = make_config(*TINY, "diagnostics.every=50")  # diagnostics would meet the NaN first
    first = Trainer(config, tmp_path)
    first.train(stop_at=400)  # a good checkpoint at the episode end, env step 400
    good = digest(tmp_path / CHECKPOINT_NAME)
    poison_after(monkeypatch, 700)
    trainer = Trainer(config, tmp_path)
    trainer.restore()
    with pytest.raises(NonFiniteError) as err:
        trainer.train()
    message = str(err.value)
    assert "update 750" in message and "env step 574" in message  # the next diagnostics read: 2 * (574 - 199) = 750
    assert "parameters of actor, critic, critic_target, log_alpha" in message
    assert "the checkpoint of env step 400 is intact" in message
    assert digest(tmp_path / CHECKPOINT_NAME) == good
    assert not (tmp_path / "agent.pt").exists()


def test_nonfinite_loss_is_named_and_warn_goes_on_without_writing_bad_parameters(tmp_path, monkeypatch):
    config = make_config(*TINY, "train.checkpoint_every=0")
    with monkeypatch.context() as m:
        poison_after(m, 300, "loss")
        with pytest.raises(NonFiniteError, match=r"env step 500, update 602 \(all finite up to "
                                                 r"update 102\): loss critic_loss"):
            Trainer(config, tmp_path / "stop").train()  # read at the log interval (250 steps)
    assert not (tmp_path / "stop" / CHECKPOINT_NAME).exists()
    warn = make_config(*TINY, "train.checkpoint_every=0", "train.on_nonfinite=warn")
    with monkeypatch.context() as m:
        poison_after(m, 1500)
        summary = Trainer(warn, tmp_path / "warn").train()
    assert summary["env_steps"] == 1000
    assert not (tmp_path / "warn" / CHECKPOINT_NAME).exists()  # never a NaN checkpoint
    assert not (tmp_path / "warn" / "agent.pt").exists()


def test_cli_huge_learning_rate_exits_3_with_one_message(tmp_path):
    run = subprocess.run([sys.executable, "train.py", *TINY, "agent.lr=1e6", f"hydra.run.dir={tmp_path}"],
                         cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert run.returncode == 3, run.stderr
    assert "Traceback" not in run.stderr
    assert "error: non-finite values (NaN or inf) at env step" in run.stderr
    assert not (tmp_path / CHECKPOINT_NAME).exists()


def _fail_fsync(fd):
    raise OSError(errno.ENOSPC, "No space left on device")


def test_disk_full_is_reported_and_the_previous_file_is_intact(tmp_path, monkeypatch):
    path = tmp_path / CHECKPOINT_NAME
    atomic_save({"step": 1}, path)
    before = digest(path)
    monkeypatch.setattr(serialization.os, "fsync", _fail_fsync)
    with pytest.raises(WriteError, match=r"no space left on device \(ENOSPC\); the previous "
                                         r"checkpoint.pt is intact"):
        atomic_save({"step": 2, "big": torch.zeros(1000)}, path)
    assert digest(path) == before and sorted(os.listdir(tmp_path)) == [CHECKPOINT_NAME]


def test_disk_full_inside_torch_save_is_reported_as_such(tmp_path, monkeypatch):
    """torch.save turns a failed write into 'RuntimeError: ... unexpected pos'; the cause is found."""
    save = torch.save

    class FullFile:
        def __init__(self, f):
            self.f, self.written = f, 0

        def write(self, data):
            self.written += len(data)
            if self.written > 4096:
                raise OSError(errno.ENOSPC, "No space left on device")
            return self.f.write(data)

        def __getattr__(self, name):
            return getattr(self.f, name)
    monkeypatch.setattr(serialization.torch, "save", lambda obj, f: save(obj, FullFile(f)))
    with pytest.raises(WriteError, match=r"could not write .*agent.pt: no space left on device "
                                         r"\(ENOSPC\); no agent.pt was written"):
        atomic_save({"w": torch.zeros(10_000)}, tmp_path / "agent.pt")
    assert os.listdir(tmp_path) == []


def test_cli_write_failure_exits_4(tmp_path):
    """A run dir that is a read-only mount: mimicked by a file where the run dir's tb/ would be
    made works for root too (permission bits do not stop root)."""
    blocker = tmp_path / "run"
    blocker.mkdir()
    (blocker / CHECKPOINT_NAME).mkdir()  # a directory where the checkpoint must go
    run = subprocess.run([sys.executable, "train.py", *TINY, "train.total_steps=300",
                          f"hydra.run.dir={blocker}"], cwd=ROOT, capture_output=True, text=True,
                         timeout=600)
    assert run.returncode == 4, run.stderr
    assert "Traceback" not in run.stderr and f"could not write {blocker / CHECKPOINT_NAME}" in run.stderr


def test_atomic_writes_get_the_permissions_of_a_plain_write(tmp_path):
    """mkstemp's 0600 would hide a run's files from the group on a shared cluster."""
    mask = os.umask(0o022)
    try:
        atomic_save({"x": 1}, tmp_path / "a.pt")
        (tmp_path / "b.txt").write_text("plain")
    finally:
        os.umask(mask)
    assert (tmp_path / "a.pt").stat().st_mode & 0o777 == (tmp_path / "b.txt").stat().st_mode & 0o777 == 0o644


def test_orphan_temp_files_are_removed_at_the_next_start(tmp_path):
    config = make_config(*TINY, "train.total_steps=400")
    Trainer(config, tmp_path).train(stop_at=200)
    orphans = [tmp_path / ".checkpoint.pt.k1ll3d.tmp", tmp_path / ".agent.pt.x.tmp"]
    for orphan in orphans:
        orphan.write_bytes(b"half a checkpoint")
    other = tmp_path / ".notes.tmp"
    other.write_text("not ours")
    trainer = Trainer(config, tmp_path)
    trainer.restore()
    trainer.train()
    assert not any(o.exists() for o in orphans) and other.exists()


def test_keep_checkpoints_keeps_the_last_k_and_rolls_back(tmp_path):
    config = make_config(*TINY, "train.checkpoint_every=200", "train.keep_checkpoints=3")
    Trainer(config, tmp_path).train()
    kept = sorted(p.name for p in tmp_path.glob("checkpoint*.pt"))
    assert kept == ["checkpoint.600.pt", "checkpoint.800.pt", "checkpoint.pt"]
    assert torch.load(tmp_path / "checkpoint.800.pt", weights_only=False)["counters"]["env_steps"] == 800
    shutil.move(tmp_path / "checkpoint.600.pt", tmp_path / CHECKPOINT_NAME)  # roll back to 600
    rolled = Trainer(config, tmp_path)
    rolled.restore()
    assert rolled.counters["env_steps"] == 600
    assert rolled.train()["env_steps"] == 1000
