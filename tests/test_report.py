"""The sweep report: grouping, rliable aggregates checked against hand-computed values (raw
returns, and human-normalised Atari scores with the optimality gap), skipped runs, the plot, CLI
errors; thread shares of parallel runs; and one real parallel sweep."""
import csv
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import joblib
import yaml
from hydra.types import RunMode
from matplotlib.image import imread
from omegaconf import OmegaConf
from scipy.stats import trim_mean

from runner.curves import curve_key, event_steps, mean_curve
from runner.report import build_report, main
from runner.sweep import find_runs, group_runs
from runner.threads import concurrent_jobs, run_threads

ROOT = Path(__file__).resolve().parents[1]
ENVS = {"gym:Pendulum-v1": 1000, "dmc:cheetah-run": 2000, "dmc:walker-walk": 3000,
        "atari:Pong": 100000, "atari:Breakout": 100000, "atari:Alien": 100000}
# Final returns of config "none" per env (seeds 0..3); head_reset every=100 gets +1 on each.
NONE_RETURNS = {"gym:Pendulum-v1": [0, 2, 4, 30], "dmc:cheetah-run": [5, 6, 7, 8],
                "dmc:walker-walk": [100, 101, 102, 103]}


def _plasticity(name, every):
    if name == "none":
        return {"name": "none", "rules": []}
    return {"name": name, "unit": "env_steps", "every": every,
            "rules": [{"intervention": "reset", "groups": ["critic.head"], "unit": "env_steps",
                       "every": every, "optimizer": "reset", "target": "copy_online"}]}


def write_run(path, env, seed, plasticity, every, final, device="cpu", finished=True,
              normalized=None):
    """A run directory as train.py leaves it: config.yaml, and summary.json when finished (as an
    older train.py wrote it, without human-normalised scores, unless `normalized` is given: the
    final one, the mid-run eval gets half of it)."""
    path.mkdir(parents=True)
    total = ENVS[env]
    config = {"seed": seed, "device": device, "resume": None, "threads": 1,
              "agent": {"name": "sac", "hidden_dims": [256, 256], "replay_ratio": 1},
              "env": {"name": env.split(":")[1], "id": env, "action_repeat": 1},
              "plasticity": _plasticity(plasticity, every),
              "train": {"total_steps": total, "eval_every": total // 2, "progress": True}}
    (path / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    if finished:
        events = [{"rule": 0, "intervention": "reset", "group": "critic.head", "updates": s,
                   "env_steps": s} for s in range(every, total + 1, every)] if every else []
        evals = [{"env_steps": total // 2, "return_mean": final / 2 + seed, "return_std": 0.0},
                 {"env_steps": total, "return_mean": float(final), "return_std": 0.0}]
        summary = {"env": env, "seed": seed, "plasticity": plasticity, "eval": evals,
                   "plasticity_events": events, "final_eval_return": float(final)}
        if normalized is not None:
            evals[0]["human_normalized"], evals[1]["human_normalized"] = normalized / 2, normalized
            summary["final_eval_human_normalized"] = normalized
        (path / "summary.json").write_text(json.dumps(summary))


@pytest.fixture
def sweep(tmp_path):
    """3 configs x 3 envs; seeds 0-3 (0-1 for every=200, whose seed 2 is unfinished)."""
    job = 0
    for env, returns in NONE_RETURNS.items():
        for plasticity, every, offset, seeds in (("none", None, 0, 4), ("head_reset", 100, 1, 4),
                                                 ("head_reset", 200, 2, 2)):
            for seed in range(seeds):
                write_run(tmp_path / "sweep" / str(job), env, seed, plasticity, every,
                          returns[seed] + offset, device="cuda" if seed % 2 else "cpu")
                job += 1
    write_run(tmp_path / "sweep" / str(job), "gym:Pendulum-v1", 2, "head_reset", 200, 0,
              finished=False)
    return tmp_path / "sweep"


def test_groups_by_varying_keys_within_env(sweep):
    groups, keys = group_runs(find_runs(sweep))
    # env-dependent run lengths, seed, device and the interpolated rules never split configs
    assert keys == ["plasticity.name", "plasticity.every"]
    assert [g.label for g in groups] == ["plasticity=none", "plasticity=head_reset, plasticity.every=100",
                                         "plasticity=head_reset, plasticity.every=200"]
    assert [len(g.runs) for g in groups] == [12, 12, 6]


def test_a_key_added_between_runs_does_not_split_a_configuration(tmp_path):
    for seed in range(3):
        write_run(tmp_path / "s" / str(seed), "gym:Pendulum-v1", seed, "none", None, -100.0 * seed)
    config = yaml.safe_load((tmp_path / "s/2/config.yaml").read_text())
    config["agent"]["actor_update_every"] = 1  # an option added later, at its default
    (tmp_path / "s/2/config.yaml").write_text(yaml.safe_dump(config))
    groups, keys = group_runs(find_runs(tmp_path / "s"))
    assert keys == [] and [len(g.runs) for g in groups] == [3]
    config["agent"]["actor_update_every"] = 4  # ... but two values of it are a real dimension
    write_run(tmp_path / "s" / "3", "gym:Pendulum-v1", 0, "none", None, 0.0)
    (tmp_path / "s/3/config.yaml").write_text(yaml.safe_dump(config))
    groups, keys = group_runs(find_runs(tmp_path / "s"))
    assert keys == ["agent.actor_update_every"] and [len(g.runs) for g in groups] == [2, 1, 1]


def test_table_values_exact_and_ci_brackets(sweep, tmp_path):
    report = build_report(sweep, reps=300)
    rows = {(r["config"], r["env"]): r for r in report["rows"]}
    assert len(rows) == 3 * 4  # per config: all envs + one row per env
    scores = np.array(list(NONE_RETURNS.values()), dtype=float).T  # [runs, tasks]
    # by hand: 12 scores sorted, 3 cut at each end -> mean(5, 6, 7, 8, 30, 100) = 26
    assert trim_mean(scores, 0.25, axis=None) == 26.0
    expected = {"iqm": 26.0, "median": 9.0, "mean": 39.0}  # task means 9, 6.5, 101.5
    for offset, label in ((0, "plasticity=none"), (1, "plasticity=head_reset, plasticity.every=100")):
        row = rows[(label, "all")]
        assert row["runs"] == 12 and row["tasks"] == 3
        for metric, value in expected.items():
            assert row[metric][0] == pytest.approx(value + offset, abs=1e-12)
    pendulum = rows[("plasticity=none", "gym:Pendulum-v1")]  # [0, 2, 4, 30]
    assert pendulum["runs"] == 4
    assert pendulum["iqm"][0] == 3.0 and pendulum["median"][0] == 9.0 and pendulum["mean"][0] == 9.0
    two = rows[("plasticity=head_reset, plasticity.every=200", "all")]  # seeds 0, 1: +2
    assert two["runs"] == 6 and two["mean"][0] == pytest.approx(np.mean([3, 7.5, 102.5]))
    for row in report["rows"]:
        for metric in ("iqm", "median", "mean"):
            point, low, high = row[metric]
            if row["config"].endswith("every=200"):  # 2 runs per env: no CI
                assert low is None and high is None
            else:
                assert low <= point + 1e-9 and point <= high + 1e-9
    assert rows[("plasticity=none", "all")]["iqm"][1] < 26.0 < rows[("plasticity=none", "all")]["iqm"][2]
    assert report["warning"].startswith("Warning: fewer than 5 runs per env (fewest per configuration: "
                                        "plasticity=none: 4; plasticity=head_reset, plasticity.every=100: 4; "
                                        "plasticity=head_reset, plasticity.every=200: 2).")
    row = "| plasticity=head_reset, plasticity.every=200 | gym:Pendulum-v1 | 2 | 3.0 [n/a] |"
    assert row + " 3.0 [n/a] | 3.0 [n/a] |" in report["text"]  # [2, 4]: IQM = median = mean

    with open(sweep / "report.csv") as f:
        table = list(csv.DictReader(f))
    assert len(table) == 12 and table[0]["plasticity.name"] == "none" and table[0]["plasticity.every"] == ""
    assert float(table[0]["iqm"]) == 26.0 and float(table[0]["median"]) == 9.0
    assert float(table[0]["iqm_ci_low"]) <= 26.0 <= float(table[0]["iqm_ci_high"])
    assert table[0]["last_evals"] == "1"
    assert table[-1]["iqm"] == "102.5" and table[-1]["iqm_ci_low"] == table[-1]["iqm_ci_high"] == ""


# Human-normalised final scores of config "none" per game (seeds 0..3); head_reset every=50000
# gets +0.5 on each. Raw returns (1000 * score + 17) are written too, and must not be used.
ATARI_SCORES = {"atari:Pong": [0.0, 0.2, 0.4, 1.0], "atari:Breakout": [-0.5, 0.5, 1.5, 2.5],
                "atari:Alien": [0.1, 0.1, 0.3, 0.3]}


def write_atari_sweep(root):
    job = 0
    for env, scores in ATARI_SCORES.items():
        for plasticity, every, offset in (("none", None, 0.0), ("head_reset", 50000, 0.5)):
            for seed, score in enumerate(scores):
                write_run(root / str(job), env, seed, plasticity, every, 1000 * (score + offset) + 17,
                          normalized=score + offset)
                job += 1
    return root


def test_human_normalized_scores_iqm_median_mean_optimality_gap(tmp_path):
    sweep = write_atari_sweep(tmp_path / "atari")
    report = build_report(sweep, reps=300)
    rows = {(r["config"], r["env"]): r for r in report["rows"]}
    assert len(rows) == 2 * 4 and report["notes"] == []
    assert {r["score"] for r in report["rows"]} == {"final_eval_human_normalized"}
    # "none", by hand. 12 scores sorted: -0.5 0 0.1 0.1 0.2 0.3 0.3 0.4 0.5 1.0 1.5 2.5; rliable's
    # IQM cuts 12 / 4 = 3 at each end: mean(0.1, 0.2, 0.3, 0.3, 0.4, 0.5) = 0.3.
    # Per-game means: Pong 0.4, Breakout 1.0, Alien 0.2 -> median 0.4, mean 1.6 / 3.
    # Optimality gap, mean of max(1 - score, 0) over the 12 runs (1.5 and 2.5 clipped to 0, and
    # 1.0 gives 0): Pong 1 + 0.8 + 0.6 + 0, Breakout 1.5 + 0.5, Alien 0.9 + 0.9 + 0.7 + 0.7
    # -> 7.6 / 12 = 19 / 30 (unclipped it would be 1 - 1.6 / 3 = 7 / 15).
    expected = {"iqm": 0.3, "median": 0.4, "mean": 1.6 / 3, "optimality_gap": 19 / 30}
    # head_reset, +0.5: IQM, median and mean shift by 0.5, the gap does not (clipping): runs
    # 0.5 0.7 0.9 1.5 | 0 1 2 3 | 0.6 0.6 0.8 0.8 -> gaps 0.5 + 0.3 + 0.1 + 1 + 0.4 + 0.4 + 0.2 + 0.2
    # = 3.1 over 12 runs (per-game means 0.9, 1.5, 0.7).
    shifted = {"iqm": 0.8, "median": 0.9, "mean": 3.1 / 3, "optimality_gap": 3.1 / 12}
    for label, values in (("plasticity=none", expected),
                          ("plasticity=head_reset", shifted)):
        row = rows[(label, "all")]
        assert row["runs"] == 12 and row["tasks"] == 3
        for metric, value in values.items():
            assert row[metric][0] == pytest.approx(value, abs=1e-12), (label, metric)
    breakout = rows[("plasticity=none", "atari:Breakout")]  # -0.5, 0.5, 1.5, 2.5
    assert breakout["iqm"][0] == pytest.approx(1.0) and breakout["mean"][0] == pytest.approx(1.0)
    assert breakout["optimality_gap"][0] == pytest.approx(0.5)  # (1.5 + 0.5 + 0 + 0) / 4
    assert rows[("plasticity=none", "atari:Pong")]["optimality_gap"][0] == pytest.approx(0.6)
    for row in report["rows"]:
        for metric in ("iqm", "median", "mean", "optimality_gap"):
            point, low, high = row[metric]
            assert low <= point + 1e-9 and point <= high + 1e-9
    gap = rows[("plasticity=none", "all")]["optimality_gap"]
    assert gap[1] < 19 / 30 < gap[2]

    text = (sweep / "report.md").read_text()
    assert text.startswith("# Sweep report: human-normalised score")
    assert report["text"].startswith("Score per run: final human-normalised score (the last "
                                     "evaluation). 2 configuration(s), 24 runs under ")
    assert "| optimality gap [95% CI] |" in text
    assert "| plasticity=none | all | 12 | 0.300 [" in text
    with open(sweep / "report.csv") as f:
        table = list(csv.DictReader(f))
    assert table[0]["score"] == "human_normalized" and float(table[0]["iqm"]) == pytest.approx(0.3)
    assert float(table[0]["optimality_gap"]) == pytest.approx(19 / 30)
    assert float(table[0]["optimality_gap_ci_low"]) <= float(table[0]["optimality_gap_ci_high"])

    pong = [json.loads((sweep / str(j) / "summary.json").read_text()) for j in range(4)]
    assert curve_key(pong, normalized=True) == "human_normalized"
    assert curve_key(pong, normalized=False) == "return_mean"
    steps, mean, _, _ = mean_curve(pong, "human_normalized")
    assert steps.tolist() == [50000, 100000] and mean == pytest.approx([0.2, 0.4])
    assert (sweep / "learning_curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_raw_returns_without_or_with_some_normalized_scores(tmp_path):
    sweep = tmp_path / "mixed"
    for seed in range(2):  # new non-Atari summaries: the key is there, None
        write_run(sweep / str(seed), "gym:Pendulum-v1", seed, "none", None, -100.0 * (seed + 1))
        path = sweep / str(seed) / "summary.json"
        path.write_text(json.dumps({**json.loads(path.read_text()), "final_eval_human_normalized": None}))
    report = build_report(sweep, reps=50)
    (row,) = report["rows"]
    assert row["score"] == "final_eval_return" and report["notes"] == []
    assert row["mean"][0] == -150.0 and row["optimality_gap"] is None
    assert "optimality gap" not in report["text"]
    assert "Score per run: final eval return (the last evaluation)." in report["text"]
    curves = [json.loads((sweep / str(j) / "summary.json").read_text()) for j in range(2)]
    assert curve_key(curves, normalized=True) == "return_mean"

    for seed in range(2):  # Atari runs added: a mix -> still raw returns, with a note
        write_run(sweep / str(2 + seed), "atari:Pong", seed, "none", None, 10.0 + seed, normalized=0.5)
    report = build_report(sweep, reps=50)
    rows = {r["env"]: r for r in report["rows"]}
    assert {r["score"] for r in report["rows"]} == {"final_eval_return"}
    assert rows["atari:Pong"]["mean"][0] == 10.5 and rows["all"]["optimality_gap"] is None
    assert report["notes"] == ["2 of 4 runs have a human-normalised score (Atari) and the others "
                               "none: the table aggregates raw eval returns"]
    text = (sweep / "report.md").read_text()
    assert text.startswith("# Sweep report\n") and "Note: 2 of 4 runs" in text
    assert "| config | env | runs | IQM [95% CI] | median [95% CI] | mean [95% CI] |\n" in text
    with open(sweep / "report.csv") as f:
        table = list(csv.DictReader(f))
    assert [r["score"] for r in table] == ["return"] * 3
    assert all(r[k] == "" for r in table for k in ("optimality_gap", "optimality_gap_ci_low",
                                                   "optimality_gap_ci_high"))


def test_skipped_runs_listed_and_png_written(sweep, tmp_path):
    out = tmp_path / "elsewhere"
    report = build_report(sweep, out=out, reps=50)
    assert [r.path.name for r in report["skipped"]] == ["30"]
    assert "no summary.json" in report["skipped"][0].skipped
    text = (out / "report.md").read_text()
    assert "Skipped 1 run(s)" in text and "- 30 (plasticity=head_reset, plasticity.every=200)" in text
    png = out / "learning_curves.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    height, width, _ = imread(png).shape
    assert width > 1000 and height > 300  # three env subplots side by side
    assert not (sweep / "report.md").exists()


def test_curve_mean_and_events():
    runs = [{"eval": [{"env_steps": 10, "return_mean": 1.0}, {"env_steps": 20, "return_mean": 4.0}],
             "plasticity_events": [{"env_steps": 15}]},
            {"eval": [{"env_steps": 10, "return_mean": 3.0}], "plasticity_events": [{"env_steps": 15}]}]
    steps, mean, std, count = mean_curve(runs)
    assert steps.tolist() == [10, 20] and mean.tolist() == [2.0, 4.0]
    assert std.tolist() == [1.0, 0.0] and count.tolist() == [2, 1]
    assert event_steps(runs) == [15]


def test_cli_errors_exit_2(tmp_path, capsys):
    assert main([str(tmp_path / "missing")]) == 2
    assert "no such directory" in capsys.readouterr().err
    assert main([str(tmp_path)]) == 2
    assert "no runs found" in capsys.readouterr().err
    write_run(tmp_path / "0", "gym:Pendulum-v1", 0, "none", None, 0, finished=False)
    assert main([str(tmp_path)]) == 2
    assert "no finished run; 1 skipped" in capsys.readouterr().err


def test_threads_share_of_cores_in_multirun():
    multirun = OmegaConf.create({"mode": RunMode.MULTIRUN, "launcher": {"n_jobs": 2}})
    single = OmegaConf.create({"mode": RunMode.RUN, "launcher": {"n_jobs": 2}})
    assert concurrent_jobs(-1, 8) == 8 and concurrent_jobs(-2, 8) == 7 and concurrent_jobs(3, 8) == 3
    assert run_threads(3, multirun) == 3  # an explicit value always wins
    assert run_threads(None, single) == 1 and run_threads(None) == 1  # single runs: 1 (bench/threads.py)
    assert run_threads(None, multirun) == max(1, joblib.cpu_count() // 2)
    multirun.launcher = {"partition": "gpu"}  # submitit-like: no n_jobs, torch's default
    assert run_threads(None, multirun) is None
    multirun.launcher = {"partition": "gpu", "cpus_per_task": 4}  # the CPUs the job asked for
    assert run_threads(None, multirun) == 4
    multirun.launcher = {"ray": {"init": {}, "remote": {"num_cpus": 3}}}
    assert run_threads(None, multirun) == 3


def test_parallel_sweep_and_report_end_to_end(tmp_path):
    """A real 4-job multirun through the joblib launcher, then the report on it."""
    sweep = tmp_path / "sweep"
    tiny = ["device=cpu", "train.total_steps=400", "train.learning_starts=100", "train.eval_every=200",
            "train.eval_episodes=1", "train.log_every=200", "train.checkpoint_every=0",
            "train.progress=false", "agent.hidden_dims=[16,16]", "agent.batch_size=16",
            "agent.buffer_size=1000"]
    proc = subprocess.run([sys.executable, "train.py", "-m", *tiny, "plasticity=none,head_reset",
                           "++plasticity.every=200", "seed=0,1", "threads=1", f"hydra.sweep.dir={sweep}"],
                          cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "Joblib.Parallel(n_jobs=" in proc.stdout + proc.stderr  # the default launcher
    for job in range(4):
        job_dir = sweep / ["0_plasticity-none_seed-0", "1_plasticity-none_seed-1",
                           "2_plasticity-head_reset_seed-0", "3_plasticity-head_reset_seed-1"][job]
        config = yaml.safe_load((job_dir / "config.yaml").read_text())
        summary = json.loads((job_dir / "summary.json").read_text())
        assert config["threads"] == 1 and summary["seed"] == job % 2
        # not at 400, the last step: head_reset's no_reset_within skips a reset before the final eval
        assert [e["env_steps"] for e in summary["plasticity_events"]] == ([] if job < 2 else [200])
    proc = subprocess.run([sys.executable, "-m", "runner.report", str(sweep), "--reps", "100"],
                          cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "| plasticity=none | gym:Pendulum-v1 | 2 |" in proc.stdout
    assert "| plasticity=head_reset | gym:Pendulum-v1 | 2 |" in proc.stdout
    with open(sweep / "report.csv") as f:
        rows = list(csv.DictReader(f))
    finals = [json.loads((next(sweep.glob(f"{j}_*")) / "summary.json").read_text())["final_eval_return"]
              for j in range(4)]
    assert float(rows[0]["mean"]) == pytest.approx(np.mean(finals[:2]))
    assert float(rows[1]["mean"]) == pytest.approx(np.mean(finals[2:]))
    assert (sweep / "learning_curves.png").stat().st_size > 0
