"""diagnostics.png of the sweep report, from real (tiny) training runs: the curves are the
per-step means over seeds of the values in the runs' event files, reset events are marked."""
import numpy as np
import pytest
import yaml
from matplotlib.image import imread
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from runner.diag_curves import diagnostic_curves, plot_diagnostics, read_diagnostics
from runner.report import build_report
from runner.sweep import find_runs, group_runs
from runner.trainer import Trainer
from tests.conftest import TINY, make_config

ENV = "gym:Pendulum-v1"
# 300 env steps, updates from env step 100 (update u at env step 99 + u), diagnostics every 50
# updates: at env steps 149, 199, 249, 299. head_reset: a reset at env step 150.
SHORT = ("train.total_steps=300", "train.learning_starts=100", "train.eval_every=150",
         "train.checkpoint_every=0", "agent.replay_ratio=1", "diagnostics.every=50")
RUNS = {"none_0": ("plasticity=none", "seed=0"), "none_1": ("plasticity=none", "seed=1"),
        "reset_0": ("plasticity=head_reset", "plasticity.unit=env_steps", "plasticity.every=150",
                    "seed=0")}


@pytest.fixture(scope="module")
def sweep(tmp_path_factory):
    root = tmp_path_factory.mktemp("diag") / "sweep"
    for name, overrides in RUNS.items():
        cfg = make_config(*TINY, *SHORT, *overrides)
        (root / name).mkdir(parents=True)
        (root / name / "config.yaml").write_text(yaml.safe_dump(cfg))  # as train.py writes it
        Trainer(cfg, root / name).train()
    return root


def logged(run_dir, tag):
    """(steps, values) of one tag, read here independently of runner/diag_curves.py."""
    events = EventAccumulator(str(run_dir / "tb"), size_guidance={"scalars": 0})
    events.Reload()
    points = events.Scalars(tag)
    return [p.step for p in points], [p.value for p in points]


def test_curves_are_the_means_over_seeds_of_the_logged_values(sweep):
    groups, _ = group_runs(find_runs(sweep))
    configs = [(g.label, g.runs) for g in groups]
    assert [(label, len(runs)) for label, runs in configs] == [("plasticity=none", 2),
                                                               ("plasticity=head_reset", 1)]
    curves = diagnostic_curves(configs)
    metrics = ("dormant_ratio", "srank", "weight_norm")
    assert list(curves) == [(ENV, g, m) for g in ("actor", "critic") for m in metrics]
    for (_, group, metric), lines in curves.items():
        tag = f"plasticity/{group}/{metric}"
        (s0, v0), (s1, v1), (s2, v2) = (logged(sweep / n, tag) for n in ("none_0", "none_1", "reset_0"))
        assert s0 == s1 == s2 == [149, 199, 249, 299]
        assert v0 != v1  # the seeds differ
        steps, mean, std, count = lines["plasticity=none"]
        assert steps.tolist() == s0 and count.tolist() == [2] * 4
        assert mean.tolist() == [(a + b) / 2 for a, b in zip(v0, v1)]
        assert std.tolist() == [abs(a - b) / 2 for a, b in zip(v0, v1)]
        steps, mean, std, count = lines["plasticity=head_reset"]
        assert steps.tolist() == s2 and mean.tolist() == v2 and std.tolist() == [0.0] * 4
        if metric == "dormant_ratio":
            assert all(0.0 <= v <= 1.0 for v in v0 + v1 + v2)
    # one run's reading, any metric (the gradient norm: not in the figure by default)
    grad = read_diagnostics(sweep / "none_0", ("grad_norm",))
    assert list(grad) == [("actor", "grad_norm"), ("critic", "grad_norm")]
    assert grad[("critic", "grad_norm")][1].tolist() == logged(sweep / "none_0",
                                                               "plasticity/critic/grad_norm")[1]

    marked = plot_diagnostics(configs, curves, sweep.parent / "alone.png")
    assert marked == {(ENV, "plasticity=none"): [], (ENV, "plasticity=head_reset"): [150]}


def test_report_writes_diagnostics_png(sweep, tmp_path):
    report = build_report(sweep, out=tmp_path / "r", reps=20)
    png = report["paths"]["diagnostics"]
    assert png == tmp_path / "r/diagnostics.png" and png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    height, width, _ = imread(png).shape
    assert width == 1500 and height > 600  # 3 metrics x 2 groups (actor, critic)
    assert len(report["diagnostics"]) == 6
    text = (tmp_path / "r/report.md").read_text()
    assert "![plasticity diagnostics](diagnostics.png)" in text and "No diagnostics" not in text
    assert "Warning: fewer than 5 runs per env" in text

    report = build_report(sweep, out=tmp_path / "g", reps=20, diagnostics=("grad_norm",))
    assert list(report["diagnostics"]) == [(ENV, "actor", "grad_norm"), (ENV, "critic", "grad_norm")]
    _, mean, _, _ = report["diagnostics"][(ENV, "critic", "grad_norm")]["plasticity=head_reset"]
    assert mean.tolist() == logged(sweep / "reset_0", "plasticity/critic/grad_norm")[1]
    assert np.all(mean > 0)
