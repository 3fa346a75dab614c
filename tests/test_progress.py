"""What a run prints (README "Progress and time estimates"): a time estimate that counts random
steps, learning steps and evaluations apart, a warning past a day, the evaluation state on the
bar, and no start-up noise from dm_control / PyOpenGL."""
import logging
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from runner.evaluate import evaluate
from runner.progress import RunClock, duration, estimate_message

ROOT = Path(__file__).resolve().parents[1]


def test_time_left_adds_each_phase_at_its_own_rate():
    # 1000 steps, learning from step 101, evaluations every 250 (4 in all)
    clock = RunClock(total=1000, learning_starts=101, eval_every=250)
    for _ in range(50):
        clock.add("random", 0.001)
    assert clock.left(50) is None  # no learning step timed yet: unknown
    for _ in range(50):
        clock.add("random", 0.001)
    clock.add("learning", 0.05, count=10)  # 10 learning steps, 5 ms each
    clock.add("eval", 2.0)
    # at step 110: 890 learning steps x 5 ms + 4 evaluations left x 2 s (250, 500, 750, 1000)
    assert clock.left(110) == pytest.approx(890 * 0.005 + 4 * 2.0)
    # from step 0: 100 random steps x 1 ms + 900 learning steps x 5 ms + 4 evaluations
    assert clock.left(0) == pytest.approx(100 * 0.001 + 900 * 0.005 + 4 * 2.0)
    assert clock.evaluations_left(500) == 2 and clock.evaluations_left(1000) == 0
    assert RunClock(1000, 1, eval_every=300).evaluations_left(0) == 4  # 300, 600, 900 and the final
    assert RunClock(1000, 1, eval_every=0).evaluations_left(0) == 1    # only the final one


def test_durations_and_the_long_run_warning():
    assert [duration(s) for s in (0.42, 12, 245, 3 * 3600 + 20 * 60, 2 * 86400 + 3 * 3600, None)] == \
        ["0.4 s", "12 s", "4 min 05 s", "3 h 20 min", "2 d 3 h", "?"]
    clock = RunClock(total=500_000, learning_starts=1000)
    clock.add("learning", 6.0, count=1)  # pixel DrQ on a CPU: ~6 s per step
    message = estimate_message(clock, 1000, "cpu", cuda_available=False)
    # (500000 - 999) steps x 6 s = 2,994,006 s = 34 d 15.7 h
    assert message.startswith("time estimate: 34 d 15 h left (0.2 env steps/s with updates)")
    assert "warning: this run would take more than a day on cpu; on a machine with a GPU, device=cuda" in message
    short = RunClock(total=2000, learning_starts=1000)
    short.add("learning", 0.01)
    assert "warning" not in estimate_message(short, 1000, "cpu", cuda_available=False)


def test_evaluation_reports_each_episode_as_it_starts():
    from envs import make_env

    class Still:
        def act(self, obs, deterministic=False):
            return [0.0]
    seen = []
    returns = evaluate(Still(), make_env("gym:Pendulum-v1"), 3, seed=0, round_index=0, on_episode=seen.append)
    assert seen == [1, 2, 3] and len(returns) == 3


def test_known_dm_control_deprecation_is_dropped_and_other_absl_warnings_kept(caplog):
    from envs import make_env
    with caplog.at_level(logging.WARNING, logger="absl"):
        make_env("dmc:cheetah-run")  # its XML uses settotalmass
        logging.getLogger("absl").warning("a real warning")
    messages = [r.getMessage() for r in caplog.records]
    assert "a real warning" in messages and not any("settotalmass" in m for m in messages)


def test_a_dmc_run_prints_its_estimate_and_evaluation_state_and_no_start_up_noise(tmp_path):
    run = subprocess.run([sys.executable, "train.py", "device=cpu", "env=dmc/cheetah_run",
                          "train.total_steps=220", "train.learning_starts=100", "train.eval_every=200",
                          "train.eval_episodes=2", "agent.hidden_dims=[16,16]", "agent.batch_size=16",
                          f"hydra.run.dir={tmp_path}"], cwd=ROOT, capture_output=True, text=True,
                         timeout=600)
    assert run.returncode == 0, run.stderr
    out = run.stdout + run.stderr
    for noise in ("MUJOCO_GL=", "MuJoCo library version", "OpenGL_accelerate", "settotalmass"):
        assert noise not in out, noise
    assert "time estimate: " in run.stderr and "evaluating 2/2 episodes" in run.stderr


def test_multirun_jobs_label_their_progress_bars(tmp_path):
    from hydra.types import RunMode
    from omegaconf import OmegaConf

    from runner.start import prepare_run
    from tests.conftest import TINY, make_config
    job = tmp_path / "3_plasticity-head_reset_seed-1"
    multirun = OmegaConf.create({"mode": RunMode.MULTIRUN, "launcher": {"n_jobs": 2}})
    config = make_config(*TINY, "threads=1")
    assert prepare_run(config, [], job, multirun).label == job.name
    assert prepare_run(make_config(*TINY, "threads=1"), [], tmp_path / "single").label is None


def test_evaluation_leaves_the_training_rng_alone():
    """An agent that draws while acting (an evaluation epsilon): the same returns from the same
    round whatever the global RNG was, and the global RNG as it was before."""
    from envs import make_env

    class Noisy:
        def act(self, obs, deterministic=False):
            return [float(torch.rand(()) * 4 - 2)]
    env = make_env("gym:Pendulum-v1")
    torch.manual_seed(123)
    before = torch.get_rng_state()
    first = evaluate(Noisy(), env, 2, seed=7, round_index=1)
    assert torch.equal(torch.get_rng_state(), before)
    torch.manual_seed(999)  # another training state: evaluation does not depend on it
    assert evaluate(Noisy(), env, 2, seed=7, round_index=1) == first
    assert evaluate(Noisy(), env, 2, seed=7, round_index=2) != first
