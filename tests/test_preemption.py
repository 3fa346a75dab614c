"""Preemption: SIGTERM / SIGINT / SIGUSR1 stop a run after the current env step with a
checkpoint, mid-episode included, and the resumed run ends bitwise identical to an uninterrupted
one (README "Preemption and faults")."""
import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import torch

from runner.checkpoint import CHECKPOINT_NAME
from runner.signals import Interrupted
from runner.trainer import Trainer
from tests.conftest import TINY, make_config
from tests.test_resume import final_state

ROOT = Path(__file__).resolve().parents[1]


def signal_at_update(monkeypatch, n: int, signum=signal.SIGTERM, repeat_in_save: bool = False):
    """Send `signum` to this process right after update `n` (and, with `repeat_in_save`, again
    in the middle of the checkpoint write it causes)."""
    update = Trainer._update

    def patched(self, logger):
        metrics = update(self, logger)
        if self.counters["updates"] == n:
            os.kill(os.getpid(), signum)
        return metrics
    monkeypatch.setattr(Trainer, "_update", patched)
    if repeat_in_save:
        import runner.trainer as trainer_module
        save = trainer_module.save_checkpoint

        def save_with_signal(state, path, *args):
            os.kill(os.getpid(), signum)
            save(state, path, *args)
        monkeypatch.setattr(trainer_module, "save_checkpoint", save_with_signal)


def assert_same_run(a: Trainer, b: Trainer) -> None:
    sa, sb = final_state(a), final_state(b)
    assert sa.keys() == sb.keys()
    for key in sa:
        assert torch.equal(sa[key], sb[key]), key
    assert a.counters["updates"] == b.counters["updates"]
    assert a.counters["episodes"] == b.counters["episodes"]
    assert [e["return_mean"] for e in a.eval_history] == [e["return_mean"] for e in b.eval_history]


def interrupted_then_resumed(config, run_dir, monkeypatch, n, **kw) -> Trainer:
    with monkeypatch.context() as m:
        signal_at_update(m, n, **kw)
        trainer = Trainer(config, run_dir)
        with pytest.raises(Interrupted) as stop:
            trainer.train()
    assert stop.value.status == 128 + kw.get("signum", signal.SIGTERM)
    steps = trainer.counters["env_steps"]
    assert steps < config["train"]["total_steps"]
    del trainer
    resumed = Trainer(config, run_dir)  # as a fresh process would
    resumed.restore()
    assert resumed.counters["env_steps"] == steps
    resumed.train()
    return resumed


@pytest.mark.parametrize("env, signum, n", [
    (("env=gym/pendulum",), signal.SIGTERM, 301),          # Pendulum: mid-episode (200-step episodes)
    (("env=dmc/cartpole_swingup", "train.total_steps=600"), signal.SIGUSR1, 250),  # DMC physics state
    (("env=gym/pendulum",), signal.SIGINT, 399)])
def test_signal_mid_episode_resumes_bitwise(tmp_path, monkeypatch, env, signum, n):
    config = make_config(*TINY, *env, "train.checkpoint_every=0")
    full = Trainer(config, tmp_path / "full")
    full.train()
    resumed = interrupted_then_resumed(config, tmp_path / "cut", monkeypatch, n, signum=signum)
    assert_same_run(full, resumed)


def test_signal_mid_game_on_atari_resumes_bitwise(tmp_path, monkeypatch):
    """Pong with DrQ(eps): the emulator is saved with ALE cloneState, frame stacks included."""
    from tests.test_pixel_training import PONG
    config = make_config(*PONG)
    full = Trainer(config, tmp_path / "full")
    full.train()
    resumed = interrupted_then_resumed(config, tmp_path / "cut", monkeypatch, 20)
    assert resumed.counters["episodes"] == 0  # the cut was inside the first game (life)
    assert_same_run(full, resumed)


def test_second_signal_during_the_save_changes_nothing(tmp_path, monkeypatch):
    config = make_config(*TINY, "train.checkpoint_every=0")
    full = Trainer(config, tmp_path / "full")
    full.train()
    resumed = interrupted_then_resumed(config, tmp_path / "cut", monkeypatch, 123, repeat_in_save=True)
    assert_same_run(full, resumed)


def test_env_without_snapshot_ends_the_episode_as_truncated(tmp_path, monkeypatch):
    import runner.trainer as trainer_module
    monkeypatch.setattr(trainer_module, "env_snapshot", lambda env: None)  # an env that will not save
    config = make_config(*TINY, "train.checkpoint_every=0")
    with monkeypatch.context() as m:
        signal_at_update(m, 301)
        with pytest.raises(Interrupted):
            Trainer(config, tmp_path).train()
    state = torch.load(tmp_path / CHECKPOINT_NAME, weights_only=False)
    assert state["env_state"] is None and state["counters"]["mid_episode"]
    resumed = Trainer(config, tmp_path)
    resumed.restore()
    storage = resumed.buffer.storage
    steps = state["counters"]["env_steps"]
    assert steps % 200 != 0  # cut mid-episode: the newest transition now ends its episode
    assert bool(storage.fields["truncated"][steps - 1])
    assert resumed.counters["episodes"] == state["counters"]["episodes"] + 1
    resumed.train()
    assert resumed.counters["env_steps"] == 1000


def test_interrupted_pretraining_resumes_where_it_stopped(tmp_path, monkeypatch):
    """Offline pre-training (IQL's 1M updates) stops on a signal too, and continues from its
    update count."""
    from runner.collect import collect
    collect("gym:Pendulum-v1", "test/pendulum-random-v0", episodes=2, root=tmp_path / "data",
            progress=False)
    config = make_config(*TINY, "agent=iql", "agent.hidden_dims=[32,32]", "agent.batch_size=32",
                         f"offline.dataset={tmp_path / 'data' / 'test' / 'pendulum-random-v0'}",
                         "offline.pretrain_updates=300", "train.total_steps=400",
                         "plasticity=full_reset", "plasticity.unit=switch")
    full = Trainer(config, tmp_path / "full")
    full.train()
    resumed = interrupted_then_resumed(config, tmp_path / "cut", monkeypatch, 150)
    assert_same_run(full, resumed)


def _cli(run_dir, *overrides):
    return [sys.executable, "train.py", *TINY, "train.checkpoint_every=0", "train.total_steps=2000",
            f"hydra.run.dir={run_dir}", *overrides]


def _signal_after_updates(proc, signum, steps: int = 250) -> str:
    """Send `signum` once the progress bar (stderr) shows `steps` env steps (updates run from
    step 200), and return all of stderr."""
    chunks = []
    reader = threading.Thread(target=lambda: chunks.extend(iter(lambda: proc.stderr.read(1), "")))
    reader.start()
    deadline = time.time() + 300
    while time.time() < deadline and proc.poll() is None:
        shown = [int(n) for n in re.findall(r"(\d+)/2000", "".join(chunks))]
        if shown and max(shown) >= steps:
            proc.send_signal(signum)
            break
        time.sleep(0.02)
    proc.wait(timeout=300)
    reader.join()
    return "".join(chunks)


@pytest.fixture(scope="module")
def uninterrupted_cli_run(tmp_path_factory) -> Path:
    run = tmp_path_factory.mktemp("full") / "run"
    full = subprocess.run(_cli(run), cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert full.returncode == 0, full.stderr
    return run


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_cli_signal_checkpoints_and_exits_with_one_line(tmp_path, uninterrupted_cli_run, signum):
    cut = tmp_path / "cut"
    proc = subprocess.Popen(_cli(cut, "train.progress=true"), cwd=ROOT, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)
    err = _signal_after_updates(proc, signum)
    assert proc.returncode == 128 + signum, err
    assert "Traceback" not in err
    lines = [line for line in err.splitlines() if signal.Signals(signum).name in line]
    assert len(lines) == 1 and f"resume={cut}" in lines[0], err
    steps = int(re.search(r"stopped at env step (\d+)", lines[0]).group(1))
    assert 250 <= steps < 2000
    resume = subprocess.run([sys.executable, "train.py", f"resume={cut}"], cwd=ROOT,
                            capture_output=True, text=True, timeout=600)
    assert resume.returncode == 0, resume.stderr
    a = torch.load(uninterrupted_cli_run / "agent.pt", weights_only=False)["model"]
    b = torch.load(cut / "agent.pt", weights_only=False)["model"]
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
