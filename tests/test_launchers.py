"""Cluster sweeps through Hydra's launchers (README "Running on a cluster"): every launcher
composes with our config, a submitit_local sweep and a Ray sweep run end to end and `report`
reads them, and a submitit job stopped by SIGUSR2 (what SLURM sends before a time limit) writes
its checkpoint, is requeued by submitit and ends bitwise equal to an uninterrupted run. The
launcher tests skip when their extra (`plasticrl[slurm]`, `plasticrl[ray]`) is missing; CI
installs both."""
import importlib.util
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from hydra import compose, initialize_config_dir

from runner.start import RunFinished, prepare_run
from tests.conftest import CONFIG_DIR, make_config

ROOT = Path(__file__).resolve().parents[1]
SMALL = ["device=cpu", "train.learning_starts=100", "train.eval_every=0", "train.eval_episodes=1",
         "train.log_every=100", "train.checkpoint_every=0", "agent.hidden_dims=[16,16]",
         "agent.batch_size=16", "agent.buffer_size=5000", "threads=1"]


def needs(module: str, extra: str):
    return pytest.mark.skipif(importlib.util.find_spec(module) is None,
                              reason=f"{module} not installed: pip install 'plasticrl[{extra}]'")


SUBMITIT = needs("hydra_plugins.hydra_submitit_launcher", "slurm")
RAY = needs("hydra_plugins.hydra_ray_launcher", "ray")


@pytest.mark.parametrize("launcher, target", [
    ("joblib", "JoblibLauncher"),
    pytest.param("submitit_slurm", "SlurmLauncher", marks=SUBMITIT),
    pytest.param("slurm", "SlurmLauncher", marks=SUBMITIT),  # ours: configs/hydra/launcher/slurm.yaml
    pytest.param("submitit_local", "LocalLauncher", marks=SUBMITIT),
    pytest.param("ray", "RayLauncher", marks=RAY)])
def test_every_launcher_composes(launcher, target):
    with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
        cfg = compose("train", overrides=[f"hydra/launcher={launcher}"], return_hydra_config=True)
    assert cfg.hydra.launcher._target_.endswith(target)
    if launcher == "slurm":
        assert cfg.hydra.launcher.gpus_per_node == 1 and cfg.hydra.launcher.signal_delay_s == 120


def _sweep(tmp_path, launcher, *extra, timeout=600):
    sweep = tmp_path / "sweep"
    proc = subprocess.run([sys.executable, "train.py", "-m", f"hydra/launcher={launcher}", *SMALL,
                           "train.total_steps=300", "train.progress=false", "seed=0,1", *extra,
                           f"hydra.sweep.dir={sweep}"], cwd=ROOT, capture_output=True, text=True,
                          timeout=timeout)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    for job in ("0_seed-0", "1_seed-1"):  # named by what varies (runner/resolvers.py job_subdir)
        assert (sweep / job / "agent.pt").is_file()
    report = subprocess.run([sys.executable, "-m", "runner.report", str(sweep), "--reps", "50"],
                            cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert report.returncode == 0, report.stderr
    assert "| agent=sac, plasticity=none | gym:Pendulum-v1 | 2 |" in report.stdout
    return sweep


@SUBMITIT
def test_submitit_local_sweep_runs_and_reports(tmp_path):
    _sweep(tmp_path, "submitit_local", "hydra.launcher.timeout_min=10")


@RAY
def test_ray_sweep_runs_and_reports(tmp_path):
    _sweep(tmp_path, "ray", timeout=900)


def _task_pids(folder: Path) -> list[int]:
    """The processes submitit runs the jobs of `folder` in."""
    pids = []
    for proc in Path("/proc").iterdir():
        try:
            cmd = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        if "submitit.core._submit" in cmd and str(folder) in cmd:
            pids.append(int(proc.name))
    return pids


@SUBMITIT
@pytest.mark.skipif(not Path("/proc").is_dir(), reason="finds the job's process through /proc")
def test_submitit_job_stopped_by_usr2_is_requeued_and_resumes_bitwise(tmp_path):
    run = [*SMALL, "train.total_steps=2000", "seed=0"]
    full = subprocess.run([sys.executable, "train.py", *run, f"hydra.run.dir={tmp_path / 'full'}"],
                          cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert full.returncode == 0, full.stderr
    sweep = tmp_path / "sweep"
    sweeper = subprocess.Popen(
        [sys.executable, "train.py", "-m", "hydra/launcher=submitit_local", *run, "resume=auto",
         "train.progress=true", "hydra.launcher.timeout_min=10", f"hydra.sweep.dir={sweep}"],
        cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline, signalled = time.time() + 300, False
    while time.time() < deadline and sweeper.poll() is None and not signalled:
        logs = "".join(p.read_text(errors="replace") for p in sweep.glob(".submitit/*/*_log.err"))
        shown = [int(n) for n in re.findall(r"(\d+)/2000", logs)]
        pids = _task_pids(sweep / ".submitit")
        if shown and max(shown) >= 300 and pids:  # updates have run (they start at step 100)
            os.kill(pids[0], 10 + 2)  # SIGUSR2
            signalled = True
        time.sleep(0.05)
    assert signalled, "the job finished or never started before it could be signalled"
    assert sweeper.wait(timeout=600) == 0
    logs = "".join(p.read_text(errors="replace") for p in sweep.glob(".submitit/*/*_log.err"))
    assert re.search(r"SIGUSR2: stopped at env step \d+, checkpoint written", logs), logs[-2000:]
    assert "Caught signal SIGUSR2" in logs  # submitit's own handler ran after ours: requeued
    a = torch.load(tmp_path / "full" / "agent.pt", weights_only=False)["model"]
    b = torch.load(sweep / "0" / "agent.pt", weights_only=False)["model"]  # one job: nothing varies
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_resume_auto_starts_continues_and_stops_at_the_end(tmp_path):
    overrides = [*SMALL, "train.total_steps=400", "train.progress=false", "resume=auto"]
    first = prepare_run(make_config(*overrides), overrides, tmp_path)  # nothing there: a new run
    assert first.counters["env_steps"] == 0
    first.train(stop_at=200)  # as if stopped: a checkpoint at the episode end
    again = prepare_run(make_config(*overrides), overrides, tmp_path)
    assert again.counters["env_steps"] == 200 and again.cfg["resume"] == str(tmp_path)
    again.train()
    with pytest.raises(RunFinished, match="finished at 400 env steps"):
        prepare_run(make_config(*overrides), overrides, tmp_path)
    longer = [*overrides, "train.total_steps=600"]
    assert prepare_run(make_config(*longer), longer, tmp_path).counters["env_steps"] == 400


def test_resume_auto_starts_over_a_run_killed_before_its_first_checkpoint(tmp_path):
    (tmp_path / "config.yaml").write_text("train: {}\n")  # written at the start, then killed
    overrides = [*SMALL, "train.total_steps=400", "resume=auto"]
    trainer = prepare_run(make_config(*overrides), overrides, tmp_path)
    assert trainer.counters["env_steps"] == 0 and trainer.cfg["resume"] is None
