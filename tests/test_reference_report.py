"""Comparing with published results (runner/reference.py, `plasticrl-report --reference`): the
shipped data against the figures of its SOURCES.md, exact values on hand-made scores and a
hand-made reference file, a small DMC sweep against SR-SAC, an Atari sweep against BBF (name
mapping), and the CLI errors."""
import csv
import hashlib
import json
import re

import numpy as np
import pytest
import yaml
from rliable import metrics
from scipy.stats import trim_mean

from runner import reference
from runner.reference import (CATALOGUE, compare_scores, improvement, load, reference_report,
                              task_key)
from runner.report import main

REPS = 200


def _csv(name):
    with open(reference.DATA / name, newline="") as f:
        return list(csv.DictReader(f))


def _published(setting, task, step=500000, file="sr_sac/dmc_final.csv"):
    """Per-run returns straight from a shipped tidy file."""
    return [float(r["return"]) for r in _csv(file)
            if r["setting"] == setting and r["task"] == task and int(r["env_steps"]) == step]


def write_run(path, env, seed, final, env_steps, plasticity="none", normalized=None, action_repeat=1,
              pixels=False):
    """A finished run directory as train.py leaves it (the keys the report reads); `env_steps`
    counts agent steps, as in summary.json."""
    path.mkdir(parents=True)
    config = {"seed": seed, "device": "cpu", "agent": {"name": "sac"},
              "env": {"name": env.split(":")[1], "id": env, "action_repeat": action_repeat, "pixels": pixels},
              "plasticity": {"name": plasticity}, "train": {"total_steps": env_steps}}
    (path / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    summary = {"env": env, "seed": seed, "env_steps": env_steps, "final_eval_return": float(final),
               "eval": [{"env_steps": env_steps, "return_mean": float(final)}],
               "final_eval_human_normalized": normalized}
    (path / "summary.json").write_text(json.dumps(summary))


def test_shipped_files_are_the_sources_and_package_data():
    sources = (reference.DATA / "SOURCES.md").read_text()
    assert "Copied from the project's shared reference folder" in sources
    table = re.findall(r"^\| (\S+\.csv) \| (\d+) \| ([0-9a-f]{16}) \|", sources, re.M)
    assert len(table) == 5
    for name, size, digest in table:
        data = (reference.DATA / "bbf" / name).read_bytes()
        assert len(data) == int(size) and hashlib.sha256(data).hexdigest()[:16] == digest
    assert len(_csv("sr_sac/dmc_final.csv")) == 1408 and len(_csv("primacy/final.csv")) == 2060
    pyproject = (reference.DATA.parents[1] / "pyproject.toml").read_text()
    assert 'runner = ["reference_data/*.md", "reference_data/**/*.csv"]' in pyproject


def _counts(name, step):
    table, _ = load(CATALOGUE[name])
    return {task: len(by_step[step]) for task, by_step in table.items() if step in by_step}


def test_loader_run_counts_are_the_readmes():
    for name, runs in (("bbf_rr2", 14), ("bbf_rr2_no_resets", 14), ("bbf_rr8_no_resets", 15),
                       ("bbf_rr2_no_spr", 14)):
        counts = _counts(name, 100000)
        assert len(counts) == 26 and set(counts.values()) == {runs}, name
    rr8 = _counts("bbf_rr8", 100000)
    assert {game for game, n in rr8.items() if n == 52} == {"atari:BankHeist", "atari:Hero"}
    assert {task_key(g) for g, n in rr8.items() if n == 56} == set(
        "alien assault asterix breakout demonattack frostbite kangaroo krull pong".split())
    assert sum(n == 60 for n in rr8.values()) == 15 and "atari:UpNDown" in rr8
    for name, tasks, runs in (("sr_sac_rr8_resets", 22, 5), ("sr_sac_rr32_resets", 22, 5),
                              ("sr_sac_rr128_resets", 15, 5), ("redq_baseline", 15, 20),
                              ("nikishin_sac_rr1", 10, 10), ("nikishin_drq", 19, 10)):
        counts = _counts(name, 500000)
        assert len(counts) == tasks and set(counts.values()) == {runs}, name
    assert _counts("sr_sac_rr8_resets", 1000000)["dmc:pendulum-swingup"] == 4  # stops at 860k
    assert _counts("sr_sac_rr16_resets", 1000000)["dmc:quadruped-walk"] == 4   # stops at 785k
    at_2m = _counts("nikishin_sac_rr32_resets", 2000000)  # 7 runs stop before 2M
    assert sum(10 - n for n in at_2m.values()) == 7 and at_2m["dmc:swimmer-swimmer15"] == 6
    assert len(_counts("nikishin_drq", 2000000)) == 11 and "dmc:walker-walk" not in _counts("nikishin_drq", 1000000)
    # DrQ cartpole-swingup evaluates every 40k env steps: its 480k point stands for 500k
    table, notes = load(CATALOGUE["nikishin_drq"])
    assert table["dmc:cartpole-swingup"][500000] == _published("drq", "cartpole-swingup", 480000,
                                                               "primacy/final.csv")
    assert notes == ["nikishin_drq dmc:cartpole-swingup: the last evaluation, at 480000 env steps "
                     "(one every 40000), stands for 500000"]


def test_bbf_resets_ahead_and_readme_figures(tmp_path):
    report = reference_report("ref:bbf_rr2", "bbf_rr2_no_resets", out=tmp_path, reps=REPS)
    (block,) = report["blocks"]
    assert report["step"] == 100000 and len(block["tasks"]) == 26
    assert block["only_ours"] == block["only_published"] == []
    assert round(block["ours"]["iqm"][0], 3) == 0.940 and round(block["published"]["iqm"][0], 3) == 0.653
    point, low, high = block["improvement"]
    assert point > 0.5 and low > 0.5 and low <= point <= high
    # the point is rliable's probability of improvement on the [14 runs, 26 games] matrices
    x, y = (np.array(block["scores"][s]).T for s in ("ours", "published"))
    assert x.shape == (14, 26) and point == pytest.approx(metrics.probability_of_improvement(x, y), abs=1e-12)
    assert block["ours"]["optimality_gap"][0] == pytest.approx(metrics.aggregate_optimality_gap(x, 1))
    rr8 = reference_report("ref:bbf_rr8", "bbf_rr8_no_resets", out=tmp_path, reps=REPS)["blocks"][0]
    ours = {m: round(v[0], 3) for m, v in rr8["ours"].items()}  # README: 1.023, 0.880, 2.238
    assert (ours["iqm"], ours["median"], ours["mean"]) == (1.023, 0.880, 2.238)
    for name in ("md", "csv", "png"):
        assert (tmp_path / f"reference_bbf_rr8_no_resets.{name}").is_file()


def test_sr_sac_rr128_vs_rr32_at_500k_and_redq(tmp_path):
    report = reference_report("ref:sr_sac_rr128_resets", "sr_sac_rr32_resets", out=tmp_path,
                              steps=500000, reps=REPS)
    (block,) = report["blocks"]
    assert len(block["tasks"]) == 15 and block["only_ours"] == []
    assert block["only_published"] == ["dmc:finger-spin", "dmc:finger-turn_easy", "dmc:fish-upright",
                                       "dmc:reacher-easy", "dmc:swimmer-swimmer15", "dmc:walker-stand",
                                       "dmc:walker-walk"]
    dmc15 = [t.split(":")[1] for t in block["tasks"]]
    for side, setting, readme in (("ours", "sac_rr128_resets", 740), ("published", "sac_rr32_resets", 692)):
        pooled = np.concatenate([_published(setting, t) for t in dmc15])
        assert block[side]["iqm"][0] == pytest.approx(trim_mean(pooled, 0.25), abs=1e-9)
        assert round(block[side]["iqm"][0]) == readme
    # RR128 is ahead on IQM, median and mean; P(rr128 > rr32) = 0.581, by pair counting
    assert all(block["ours"][m][0] > block["published"][m][0] for m in ("iqm", "median", "mean"))
    wins = [np.mean([(a > b) + 0.5 * (a == b) for a in _published("sac_rr128_resets", t)
                     for b in _published("sac_rr32_resets", t)]) for t in dmc15]
    assert block["improvement"][0] == pytest.approx(np.mean(wins), abs=1e-12)
    assert round(block["improvement"][0], 3) == 0.581
    assert "at 500000 env steps (--reference-steps)" in report["text"]
    # the default step is the largest both have on every task: 1M (README: rr128 IQM 805)
    late = reference_report("ref:sr_sac_rr128_resets", "redq_baseline", out=tmp_path, reps=REPS)
    assert late["step"] == 1000000 and "(the default: the largest step at which every" in late["text"]
    assert round(late["blocks"][0]["ours"]["iqm"][0]) == 805
    early = reference_report("ref:sr_sac_rr128_resets", "redq_baseline", out=tmp_path, steps=500000, reps=REPS)
    assert round(early["blocks"][0]["published"]["iqm"][0]) == 511


def test_exact_aggregates_and_improvement_on_hand_made_scores():
    ours, published = [[1, 2, 3, 4], [10, 20]], [[0, 1], [30]]
    result = compare_scores(ours, published, reps=REPS, gap=True)
    # ours: 6 runs pooled, 1 cut at each end -> mean(2, 3, 4, 10); task means 2.5 and 15
    assert result["ours"]["iqm"][0] == 4.75 and result["ours"]["median"][0] == 8.75
    assert result["ours"]["mean"][0] == 8.75 and result["ours"]["optimality_gap"][0] == 0.0
    # published: 3 runs, none cut -> 31 / 3; task means 0.5 and 30; gap 1 - mean(0, 1, 1)
    assert result["published"]["iqm"][0] == pytest.approx(31 / 3)
    assert result["published"]["mean"][0] == 15.25 and result["published"]["median"][0] == 15.25
    assert result["published"]["optimality_gap"][0] == pytest.approx(1 / 3)
    assert [t[0] for t in result["ours_tasks"]] == [2.5, 15.0]
    # task 1: 7 wins and one tie of 8 pairs; task 2: 0 of 2
    assert result["improvement"][0] == pytest.approx((7.5 / 8 + 0) / 2, abs=1e-12)
    for side in ("ours", "published"):
        for m in ("iqm", "median", "mean", "optimality_gap"):
            point, low, high = result[side][m]
            assert low <= point + 1e-12 and point <= high + 1e-12
    assert result["published_tasks"][1] == (30.0, 30.0, 30.0)  # one run: no spread
    # equal run counts: the same as rliable's matrix aggregates, and its probability of improvement
    rng = np.random.default_rng(0)
    x, y = rng.integers(0, 5, (6, 4)).astype(float), rng.integers(0, 5, (9, 4)).astype(float)
    result = compare_scores(list(x.T), list(y.T), reps=REPS)
    assert result["ours"]["iqm"][0] == pytest.approx(metrics.aggregate_iqm(x), abs=1e-12)
    assert result["ours"]["median"][0] == pytest.approx(metrics.aggregate_median(x), abs=1e-12)
    assert result["published"]["mean"][0] == pytest.approx(metrics.aggregate_mean(y), abs=1e-12)
    expected = metrics.probability_of_improvement(x, y)  # with ties
    assert improvement(*[c[:, None] for c in x.T], *[c[:, None] for c in y.T]) == pytest.approx(expected, abs=1e-12)
    assert result["improvement"][0] == pytest.approx(expected, abs=1e-12)
    assert compare_scores(list(x.T), list(y.T), reps=REPS) == result  # seeded: reproducible


def test_hand_made_reference_file(tmp_path, monkeypatch):
    (tmp_path / "primacy").mkdir()
    rows = [("drq", "cartpole-swingup", 0, 480000, 100.0), ("drq", "cartpole-swingup", 1, 480000, 300.0),
            ("drq", "cheetah-run", 0, 500000, 10.0), ("drq", "cheetah-run", 1, 500000, 20.0),
            ("drq", "cheetah-run", 2, 500000, 60.0), ("drq", "cheetah-run", 0, 1000000, 70.0),
            ("drq", "walker-walk", 0, 460000, 5.0),  # more than one eval interval before 500k
            ("sac_rr1", "cheetah-run", 0, 500000, 999.0)]
    with open(tmp_path / "primacy" / "final.csv", "w", newline="") as f:
        csv.writer(f).writerows([("setting", "task", "seed", "env_steps", "return"), *rows])
    monkeypatch.setattr(reference, "DATA", tmp_path)
    table, _ = load(CATALOGUE["nikishin_drq"])
    assert set(table) == {"dmc:cartpole-swingup", "dmc:cheetah-run"}
    report = reference_report("ref:nikishin_drq", "nikishin_drq", out=tmp_path / "out", reps=REPS)
    (block,) = report["blocks"]
    assert report["step"] == 500000  # cartpole-swingup has nothing at 1M
    means = {row["task"]: (row["ours_runs"], row["ours"][0], row["published"][0]) for row in block["per_task"]}
    assert means == {"dmc:cartpole-swingup": (2, 200.0, 200.0), "dmc:cheetah-run": (3, 30.0, 30.0)}
    # 5 runs 10 20 60 100 300, one cut at each end -> mean(20, 60, 100); task means 200 and 30
    assert block["ours"]["iqm"][0] == 60.0 and block["published"]["median"][0] == 115.0
    assert block["improvement"][0] == 0.5


def _dmc_sweep(root):
    """Config "none": 3 seeds on 3 DMC tasks (cheetah-run run to 500k env steps, the others to
    100k) and Pendulum; config "head_reset": cheetah-run only."""
    job = 0
    for env, finals, steps in (("dmc:cheetah-run", [900, 950, 1000], 500000),
                               ("dmc:walker-run", [100, 200, 300], 100000),
                               ("dmc:hopper-hop", [300, 350, 400], 100000),
                               ("gym:Pendulum-v1", [-100, -200, -300], 20000)):
        for seed, final in enumerate(finals):
            write_run(root / str(job), env, seed, final, steps)
            job += 1
    for seed in range(2):
        write_run(root / str(job + seed), "dmc:cheetah-run", seed, 500.0, 500000, "head_reset")
    return root


def test_small_sweep_against_sr_sac_rr32(tmp_path, capsys):
    sweep = _dmc_sweep(tmp_path / "sweep")
    assert main([str(sweep), "--reference", "sr_sac_rr32_resets", "--reference-steps", "500000",
                 "--reps", str(REPS)]) == 0
    printed = capsys.readouterr().out
    # the sweep report is still printed, first, then the comparison
    assert printed.index("| plasticity=none | all |") < printed.index("## plasticity=none vs sr_sac_rr32_resets")
    png = (sweep / "reference_sr_sac_rr32_resets.png").read_bytes()
    assert (sweep / "report.md").is_file() and png[:8] == b"\x89PNG\r\n\x1a\n"
    md = (sweep / "reference_sr_sac_rr32_resets.md").read_text()
    assert md.startswith("# Comparison with published results: sr_sac_rr32_resets")
    assert "| dmc:cheetah-run | 3 | 950.0 [" in md and "| 5 | 816.7 [" in md
    others = sorted({r["task"] for r in _csv("sr_sac/dmc_final.csv") if r["setting"] == "sac_rr32_resets"}
                    - {"cheetah-run", "walker-run", "hopper-hop"})
    assert len(others) == 19
    assert f"Only ours (1): gym:Pendulum-v1. Only sr_sac_rr32_resets (19): " \
           f"{', '.join('dmc:' + t for t in others)}." in md
    with open(sweep / "reference_sr_sac_rr32_resets.csv") as f:
        rows = {(r["config"], r["task"], r["metric"]): r for r in csv.DictReader(f)}
    expected = {"dmc:cheetah-run": 950.0, "dmc:walker-run": 200.0, "dmc:hopper-hop": 350.0}
    for task, mean in expected.items():
        row = rows[("plasticity=none", task, "mean")]
        published = _published("sac_rr32_resets", task.split(":")[1])
        assert (int(row["ours_runs"]), float(row["ours"])) == (3, mean)
        assert int(row["published_runs"]) == 5 and float(row["published"]) == pytest.approx(np.mean(published))
        assert float(row["ours_ci_low"]) <= mean <= float(row["ours_ci_high"])
        assert row["env_steps"] == "500000"
    assert float(rows[("plasticity=none", "dmc:hopper-hop", "mean")]["published"]) == pytest.approx(348.74)
    # cheetah-run: every run above all 5 published (max 888.9) -> 1; walker-run: below all -> 0;
    # hopper-hop: 300, 350, 400 beat 2, 3 and 4 of 369.7 348.2 495.7 281.0 249.1 -> 9 / 15
    poi = rows[("plasticity=none", "all", "probability_of_improvement")]
    assert float(poi["ours"]) == pytest.approx((1 + 0 + 9 / 15) / 3, abs=1e-12)
    assert poi["published"] == "" and int(poi["ours_runs"]) == 9 and int(poi["published_runs"]) == 15
    assert float(rows[("plasticity=none", "all", "mean")]["ours"]) == pytest.approx(500.0)
    assert ("plasticity=none", "all", "optimality_gap") not in rows  # raw returns: no gap
    # one block per configuration; head_reset has cheetah-run only
    head = rows[("plasticity=head_reset", "dmc:cheetah-run", "mean")]
    assert (int(head["ours_runs"]), float(head["ours"])) == (2, 500.0)
    assert "Only ours (0): -. Only sr_sac_rr32_resets (21):" in md
    # run lengths: walker-run and hopper-hop ran 100k env steps, not 500k
    assert "Note: dmc:walker-run: our runs ran 100000 env steps (agent steps x action repeat), " \
           "sr_sac_rr32_resets is at 500000" in md
    assert "Note: dmc:hopper-hop: our runs ran" in md and "dmc:cheetah-run: our runs ran" not in md
    # the default step: 1M, where all three tasks have runs; now cheetah-run is short too
    report = reference_report(sweep, "sr_sac_rr32_resets", out=tmp_path / "late", reps=REPS)
    assert report["step"] == 1000000 and "at 1000000 env steps (the default" in report["text"]
    assert "dmc:cheetah-run: our runs ran 500000 env steps" in report["text"]


def test_atari_sweep_against_bbf(tmp_path):
    sweep = tmp_path / "atari"
    scores = {"atari:BankHeist": [0.5, 1.5], "atari:UpNDown": [1.0, 2.0], "atari:Pong": [0.8, None]}
    job = 0
    for env, values in scores.items():
        for seed, value in enumerate(values):  # Pong seed 1: an older summary, raw return only
            write_run(sweep / str(job), env, seed, 14.6 if value is None else 0.0, 100000,
                      normalized=value, action_repeat=None)
            job += 1
    report = reference_report(sweep, "bbf_rr2", reps=REPS)
    (block,) = report["blocks"]
    assert block["tasks"] == list(scores) and len(block["only_published"]) == 23
    rows = {r["task"]: r for r in block["per_task"]}
    assert rows["atari:Pong"]["ours"][0] == pytest.approx(0.9)  # raw 14.6 is the human score: 1.0
    assert "atari:Pong: human-normalised scores computed from raw returns" in " ".join(block["notes"])
    for task, game in (("atari:BankHeist", "bankheist"), ("atari:UpNDown", "upndown")):
        published = [float(r["GameScoreNormalized"]) for r in _csv("bbf/RR2_BBF.csv") if r["game"] == game]
        assert rows[task]["published_runs"] == 14
        assert rows[task]["published"][0] == pytest.approx(np.mean(published), abs=1e-12)
    assert block["ours"]["iqm"][0] == pytest.approx(trim_mean([0.5, 1.5, 1.0, 2.0, 0.8, 1.0], 0.25))
    assert block["ours"]["optimality_gap"][0] == pytest.approx((0.5 + 0.2) / 6)
    assert not any("our runs ran" in n for n in block["notes"])  # 100k agent steps, as BBF
    assert "| optimality gap |" in report["text"] and (sweep / "reference_bbf_rr2.csv").is_file()


def test_pixel_runs_against_drq_lengths_in_env_steps(tmp_path):
    sweep = tmp_path / "pixels"
    for seed in range(2):  # cheetah-run: 125k agent steps x action repeat 4 = DrQ's 500k env steps
        write_run(sweep / f"c{seed}", "dmc:cheetah-run", seed, 300.0 + seed, 125000, action_repeat=4, pixels=True)
        write_run(sweep / f"w{seed}", "dmc:walker-walk", seed, 600.0, 100000, action_repeat=4, pixels=True)
    write_run(sweep / "s0", "dmc:walker-walk", 0, 900.0, 500000, "from_states")  # a second block
    report = reference_report(sweep, "nikishin_drq", reps=REPS)
    pixels, states = report["blocks"]
    assert report["step"] == 500000 and pixels["tasks"] == ["dmc:cheetah-run", "dmc:walker-walk"]
    assert pixels["per_task"][0]["ours"][0] == 300.5
    assert pixels["per_task"][0]["published"][0] == pytest.approx(
        np.mean(_published("drq", "cheetah-run", file="primacy/final.csv")))
    assert pixels["notes"] == [  # walker-walk: 400k env steps, and DrQ's action repeat there is 2
        "dmc:walker-walk: our runs ran 400000 env steps (agent steps x action repeat), nikishin_drq "
        "is at 500000", "dmc:walker-walk: our action repeat 4, nikishin_drq 2"]
    assert states["label"] == "plasticity=from_states" and states["tasks"] == ["dmc:walker-walk"]
    assert states["notes"][-1] == "runs of dmc:walker-walk are from states, nikishin_drq from pixels"


def test_cli_errors_exit_2_and_catalogue(tmp_path, capsys):
    sweep = _dmc_sweep(tmp_path / "sweep")
    assert main([str(sweep), "--reference", "nope"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: --reference nope: unknown reference; known: bbf_rr2, bbf_rr8, ")
    assert all(name in err for name in CATALOGUE) and not (sweep / "report.md").exists()
    assert main(["ref:nope", "--reference", "bbf_rr2"]) == 2
    assert "error: ref:nope: unknown reference; known: bbf_rr2" in capsys.readouterr().err
    assert main([str(sweep), "--reference", "sr_sac_rr32_resets", "--reference-steps", "750000"]) == 2
    assert capsys.readouterr().err == ("error: --reference-steps 750000: sr_sac_rr32_resets has "
                                       "500000, 1000000\n")
    assert not (sweep / "report.md").exists()  # checked before the sweep report is written
    assert main(["ref:bbf_rr2", "--reference", "bbf_rr8", "--reference-steps", "500000"]) == 2
    assert "bbf_rr8 has 100000" in capsys.readouterr().err
    pendulum = tmp_path / "pendulum"
    write_run(pendulum / "0", "gym:Pendulum-v1", 0, -100.0, 20000)
    assert main([str(pendulum), "--reference", "sr_sac_rr32_resets", "--reps", "20"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: no task in common: ours has gym:Pendulum-v1; sr_sac_rr32_resets has "
                          "dmc:acrobot-swingup, ") and err.count("\n") == 1
    assert main(["ref:bbf_rr2", "--reference", "sr_sac_rr32_resets"]) == 2
    assert "no task in common: bbf_rr2 has atari:Alien" in capsys.readouterr().err
    with pytest.raises(SystemExit) as stop:
        main(["ref:bbf_rr2"])
    assert stop.value.code == 2 and "ref:bbf_rr2 needs --reference NAME" in capsys.readouterr().err
    assert main(["--list-references"]) == 0
    listing = capsys.readouterr().out.splitlines()
    assert [line.split(":")[0] for line in listing] == list(CATALOGUE)
    assert "sr_sac_rr32_resets: D'Oro et al. 2023" in listing[7] and "at 500000, 1000000 env steps" in listing[7]
