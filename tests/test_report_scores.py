"""The sweep report for plasticity research: scores over the last K evaluations, the low-seed
warning and CIs only with >= 3 runs per env, configuration labels, and the CLI options."""
import csv
import json

import pytest
import yaml

from runner.report import build_report, main
from runner.sweep import find_runs, group_runs
from tests.test_report import write_run

# Eval returns at env steps 250, 500, 750, 1000 of seeds 0-4 (one config, Pendulum).
HISTORIES = [[0, 1, 2, 3], [0, 5, 1, 0], [0, 2, 8, 20], [0, 9, 9, 6], [0, 0, 0, 40]]


def write_histories(root, histories, env="gym:Pendulum-v1", plasticity="none"):
    for seed, returns in enumerate(histories):
        path = root / f"{plasticity}_{seed}"
        write_run(path, env, seed, plasticity, None, returns[-1])
        summary = json.loads((path / "summary.json").read_text())
        summary["eval"] = [{"env_steps": 250 * (i + 1), "return_mean": float(r), "return_std": 0.0}
                           for i, r in enumerate(returns)]
        (path / "summary.json").write_text(json.dumps(summary))
    return root


def _row(report):
    (row,) = report["rows"]
    return {m: row[m][0] for m in ("iqm", "median", "mean")}


@pytest.mark.parametrize("last, iqm, mean", [
    # finals 3 0 20 6 40: IQM cuts int(5 / 4) = 1 run at each end -> mean(3, 6, 20)
    (1, 29 / 3, 69 / 5),
    # last 2: 2.5 0.5 14 7.5 20 -> IQM mean(2.5, 7.5, 14) = 8, mean 44.5 / 5
    (2, 8.0, 8.9),
    # last 3: 2 2 10 8 40/3 -> IQM mean(2, 8, 10) = 20 / 3, mean (22 + 40/3) / 5 = 106 / 15
    (3, 20 / 3, 106 / 15)])
def test_score_is_the_mean_of_the_last_k_evaluations(tmp_path, last, iqm, mean):
    sweep = write_histories(tmp_path / "s", HISTORIES)
    report = build_report(sweep, reps=100, last=last)
    # one env: rliable's median is the median of the one task mean, the mean
    assert _row(report) == pytest.approx({"iqm": iqm, "median": mean, "mean": mean}, abs=1e-12)
    assert report["notes"] == [] and report["warning"] is None  # 5 seeds
    which = "final eval return (the last evaluation)" if last == 1 else \
        f"eval return, mean of the last {last} evaluations"
    assert report["text"].startswith(f"Score per run: {which}. 1 configuration(s), 5 runs under ")
    assert f"Score per run: {which}." in (sweep / "report.md").read_text()
    with open(sweep / "report.csv") as f:
        (table,) = list(csv.DictReader(f))
    assert table["last_evals"] == str(last) and float(table["mean"]) == pytest.approx(mean)


def test_last_k_beyond_a_run_history_uses_all_of_it_with_a_note(tmp_path):
    sweep = write_histories(tmp_path / "s", HISTORIES)
    report = build_report(sweep, reps=100, last=10)
    # whole histories: 1.5 1.5 7.5 6 10 -> mean 26.5 / 5
    assert _row(report)["mean"] == pytest.approx(5.3)
    assert report["notes"] == ["5 run(s) have fewer than 10 evaluations (fewest 4): their score is "
                               "the mean of all their evaluations"]


def test_last_k_averages_the_human_normalised_eval_scores(tmp_path):
    for seed, score in enumerate([0.4, 0.8]):  # evals: score / 2, then score (raw: other values)
        write_run(tmp_path / "s" / str(seed), "atari:Pong", seed, "none", None, 1000 * score + 17,
                  normalized=score)
    (row,) = build_report(tmp_path / "s", reps=50, last=2)["rows"]
    assert row["score"] == "final_eval_human_normalized"
    assert row["mean"][0] == pytest.approx((0.3 + 0.6) / 2)  # 0.75 * score per run


def test_two_seeds_warn_and_give_no_ci(tmp_path):
    for seed, final in enumerate([10.0, 30.0]):
        write_run(tmp_path / "s" / str(seed), "gym:Pendulum-v1", seed, "none", None, final)
    report = build_report(tmp_path / "s", reps=100)
    (row,) = report["rows"]
    assert row["config"] == "agent=sac, plasticity=none"  # one configuration: its group choices
    for metric in ("iqm", "median", "mean"):
        assert row[metric] == (20.0, None, None)
    warning = ("Warning: fewer than 5 runs per env (fewest per configuration: agent=sac, "
               "plasticity=none: 2). Aggregates of so few runs vary widely between repetitions of a "
               "sweep (Agarwal et al. 2021, rliable): use at least 5 seeds before drawing "
               "conclusions. A 95% CI is shown only where every env of a row has at least 3 runs "
               "(n/a otherwise). With fewer than 4 runs in a row, IQM trims nothing and equals the mean.")
    assert report["warning"] == warning
    line = "| agent=sac, plasticity=none | gym:Pendulum-v1 | 2 | 20.0 [n/a] | 20.0 [n/a] | 20.0 [n/a] |"
    for text in (report["text"], (tmp_path / "s/report.md").read_text()):
        assert warning + "\n" in text and line in text
    with open(tmp_path / "s/report.csv") as f:
        (table,) = list(csv.DictReader(f))
    assert table["mean"] == "20.0" and table["mean_ci_low"] == table["mean_ci_high"] == ""


def test_five_seeds_have_cis_and_no_warning_three_seeds_a_ci_and_a_warning(tmp_path):
    for seed, final in enumerate([0.0, 10.0, 20.0, 30.0, 100.0]):
        write_run(tmp_path / "s" / f"n{seed}", "gym:Pendulum-v1", seed, "none", None, final)
    report = build_report(tmp_path / "s", reps=200)
    (row,) = report["rows"]
    assert report["warning"] is None and "Warning" not in report["text"]
    assert row["iqm"][0] == 20.0 and row["mean"][0] == 32.0  # IQM: mean(10, 20, 30)
    for metric in ("iqm", "median", "mean"):
        point, low, high = row[metric]
        assert low <= point <= high and low < high
    for seed, final in enumerate([1.0, 2.0, 6.0]):
        write_run(tmp_path / "s" / f"h{seed}", "gym:Pendulum-v1", seed, "head_reset", 100, final)
    report = build_report(tmp_path / "s", reps=200)
    rows = {r["config"]: r for r in report["rows"]}
    assert rows["plasticity=head_reset"]["mean"][0] == 3.0
    assert None not in rows["plasticity=head_reset"]["mean"]  # 3 runs: a CI
    assert report["warning"].startswith("Warning: fewer than 5 runs per env (fewest per "
                                        "configuration: plasticity=head_reset: 3). ")


def test_labels_name_what_differs_never_all_runs(tmp_path):
    extra = {0: 1, 1: 2, 2: None}  # agent.extra: 1, 2, and a run without it
    for job, value in extra.items():
        write_run(tmp_path / "a" / str(job), "gym:Pendulum-v1", 0, "none", None, 0.0)
        if value is not None:
            config = yaml.safe_load((tmp_path / "a" / str(job) / "config.yaml").read_text())
            config["agent"]["extra"] = value
            (tmp_path / "a" / str(job) / "config.yaml").write_text(yaml.safe_dump(config))
    groups, keys = group_runs(find_runs(tmp_path / "a"))
    assert keys == ["agent.extra"]
    assert [g.label for g in groups] == ["agent.extra=1", "agent.extra=2", "agent.extra=<absent>"]

    # one configuration whose agent changes with the env: named by the choices common to all
    write_run(tmp_path / "b/0", "gym:Pendulum-v1", 0, "none", None, 0.0)
    write_run(tmp_path / "b/1", "dmc:cheetah-run", 0, "none", None, 0.0)
    config = yaml.safe_load((tmp_path / "b/1/config.yaml").read_text())
    config["agent"]["name"] = "drq"
    (tmp_path / "b/1/config.yaml").write_text(yaml.safe_dump(config))
    groups, keys = group_runs(find_runs(tmp_path / "b"))
    assert keys == [] and [g.label for g in groups] == ["plasticity=none"]

    # a run whose config.yaml is unreadable changes no other run's label
    (tmp_path / "b/2").mkdir()
    (tmp_path / "b/2/config.yaml").write_text("seed: [unclosed")
    runs = find_runs(tmp_path / "b")
    groups, keys = group_runs(runs)
    assert keys == [] and [g.label for g in groups] == ["plasticity=none"]
    assert runs[2].label == "configuration unknown" and "unreadable" in runs[2].skipped


def test_cli_last_and_diagnostics_options(tmp_path, capsys):
    sweep = write_histories(tmp_path / "s", HISTORIES[:2])
    assert main([str(sweep), "--reps", "20", "--last", "2"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("Score per run: eval return, mean of the last 2 evaluations. ")
    assert "No diagnostics (dormant_ratio, srank, weight_norm) in any run's tb/" in out
    assert not (sweep / "diagnostics.png").exists()
    assert main([str(sweep), "--reps", "20", "--diagnostics", "none"]) == 0
    assert "No diagnostics" not in capsys.readouterr().out
    for bad in (["--last", "0"], ["--diagnostics", "srank,dormant"]):
        with pytest.raises(SystemExit) as exit_info:
            main([str(sweep), *bad])
        assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert "--last = 0: must be an integer >= 1" in err and "unknown metric(s) dormant" in err
    summary = json.loads((sweep / "none_1/summary.json").read_text())
    summary["eval"][2]["return_mean"] = float("nan")  # a diverged evaluation
    (sweep / "none_1/summary.json").write_text(json.dumps(summary))
    assert main([str(sweep), "--reps", "20", "--last", "2"]) == 2
    assert capsys.readouterr().err == (f"error: {sweep / 'none_1'}: summary.json has no finite eval "
                                       f"return in its last 2 evaluations\n")
    assert main([str(sweep), "--reps", "20"]) == 0  # the final evaluation is fine
