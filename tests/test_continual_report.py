"""The continual section of the sweep report (runner/continual_report.py): segment scores cut at
the switch steps, `later - first` per run, the probe's fit ratio per switch, from real (tiny)
continual runs and from hand-made summaries with known values."""
from pathlib import Path

import numpy as np
import pytest
import yaml
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from runner.continual_report import continual_rows, segment_scores
from runner.report import build_report
from runner.sweep import Group, Run, find_runs, group_runs
from runner.trainer import Trainer
from tests.conftest import TINY, make_config

# 3 tasks of 200 env steps; evaluations every 100 steps (at 100, 200 = before the first switch, ...)
SHORT = ("env.sequence={every:200,tasks:3,perturb:[permute_obs]}", "train.total_steps=600",
         "train.learning_starts=100", "train.eval_every=100", "train.eval_episodes=1",
         "train.checkpoint_every=0", "agent.replay_ratio=1", "diagnostics.probe_steps=3")


def test_segments_are_cut_at_the_switch_steps():
    summary = {"eval": [{"env_steps": s, "return_mean": r} for s, r in
                        [(100, -10.0), (200, -8.0), (300, -20.0), (400, -4.0), (500, 1.0), (600, 3.0)]]}
    assert segment_scores(summary, 200) == {"end": [-8.0, -4.0, 3.0], "mean": [-9.0, -12.0, 2.0]}
    summary["eval"].insert(0, {"env_steps": 0, "return_mean": -99.0})  # before training: no segment
    assert segment_scores(summary, 200)["mean"] == [-9.0, -12.0, 2.0]


def test_later_minus_first_per_run_with_its_ci():
    runs = []
    for k, first in enumerate((-100.0, -200.0, -300.0)):
        evals = [{"env_steps": 100 * (i + 1), "return_mean": first + 10.0 * i * (k + 1)} for i in range(3)]
        runs.append(Run(path=Path(f"/nonexistent/{k}"),
                        config={"env.sequence.every": 100}, summary={"eval": evals}))
    [row] = continual_rows([Group("g", {}, runs)], reps=200)
    # run k: segments first, first + 10(k+1), first + 20(k+1): later - first = 15(k+1)
    assert row["drop"][0] == pytest.approx(np.mean([15.0, 30.0, 45.0]))
    assert row["later"][0] == pytest.approx(np.mean([-100 + 15.0, -200 + 30.0, -300 + 45.0]))
    assert row["drop"][1] <= row["drop"][0] <= row["drop"][2]
    assert [s[0] for s in row["segments"]] == pytest.approx([-200.0, -180.0, -160.0])
    assert row["probe"] == {}


@pytest.fixture(scope="module")
def sweep(tmp_path_factory):
    root = tmp_path_factory.mktemp("continual") / "sweep"
    for seed in (0, 1, 2):
        cfg = make_config(*TINY, *SHORT, f"seed={seed}")
        (root / f"run_{seed}").mkdir(parents=True)
        (root / f"run_{seed}" / "config.yaml").write_text(yaml.safe_dump(cfg))  # as train.py writes it
        Trainer(cfg, root / f"run_{seed}").train()
    return root


def test_report_tables_continual_runs_from_their_logs(sweep, tmp_path):
    report = build_report(sweep, out=tmp_path / "r", reps=50)
    assert "## Continual: return per task segment" in report["text"]
    assert (tmp_path / "r" / "continual.png").stat().st_size > 0
    runs = [yaml.safe_load((sweep / f"run_{s}" / "config.yaml").read_text()) for s in (0, 1, 2)]
    assert all(r["env"]["sequence"]["every"] == 200 for r in runs)
    [row] = continual_rows(group_runs(find_runs(sweep))[0], reps=50)
    assert row["runs"] == 3 and len(row["segments"]) == 3
    # the probe ran at both switches (env steps 200 and 400); its values are the logged means
    assert sorted(row["probe"]) == [200, 400]
    logged = []
    for s in (0, 1, 2):
        events = EventAccumulator(str(sweep / f"run_{s}" / "tb"), size_guidance={"scalars": 0})
        events.Reload()
        logged.append({p.step: p.value for p in events.Scalars("probe/critic/fit_ratio")})
    assert row["probe"][200] == pytest.approx(np.mean([v[200] for v in logged]))
