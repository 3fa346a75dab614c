"""Per-task scores of continual runs (`env.sequence`, README "Continual RL") for `report`.

A run that switches task every K env steps is cut into segments, one per task it trained on
(segment k: env steps (k K, (k+1) K]). Per run and segment:
  end     the eval return at the segment's last step (evaluated before the switch, on the task
          the segment trained on)
  mean    the mean of the segment's evaluations (how fast the task was learned, the measure of
          Dohare et al. 2024 and Abbas et al. 2023)
Every task of the default perturbations (envs/sequence.py) is the same problem relabelled, so a
fresh agent scores alike on each: a plain agent whose later segments fall below its first has
lost plasticity. `later tasks` is, per run, the mean over segments 2..n, and `later - first` that
minus segment 1 (segment 1 also holds the random warm-up steps, so compare `later tasks` across
configurations, e.g. with a fresh agent per task: a full reset at every switch with the replay
cleared).
Per configuration: the mean over runs with a 95% bootstrap CI (rliable's stratified bootstrap,
runner/scores.py), and the trainability probe's fit ratio at each switch (probe/<module>/fit_ratio,
mean over runs; plasticity/probe.py: higher = the network fits new targets less well).
"""
from __future__ import annotations

import numpy as np

from runner.diag_curves import read_diagnostics
from runner.scores import interval_estimates

EVERY_KEY = "env.sequence.every"


def is_continual(groups) -> bool:
    return any(isinstance(r.config.get(EVERY_KEY), int) for g in groups for r in g.runs)


def segment_scores(summary: dict, every: int) -> dict[str, list[float]]:
    """{"end": [...], "mean": [...]} per segment of one run (see the module docstring)."""
    segments: dict[int, list[tuple[int, float]]] = {}
    for entry in summary.get("eval") or []:
        steps = int(entry["env_steps"])
        if steps > 0:
            segments.setdefault((steps - 1) // every, []).append((steps, float(entry["return_mean"])))
    ordered = [sorted(segments[k]) for k in sorted(segments)]
    return {"end": [s[-1][1] for s in ordered], "mean": [float(np.mean([v for _, v in s])) for s in ordered]}


def _estimate(values, reps: int, seed: int) -> tuple:
    """Mean over runs with its 95% CI (None bounds below 3 runs)."""
    return interval_estimates(np.asarray(values, dtype=float).reshape(-1, 1), reps, seed)["mean"]


def _cell(estimate) -> str:
    point, low, high = estimate
    return f"{point:.0f}" if low is None else f"{point:.0f} [{low:.0f}, {high:.0f}]"


def continual_rows(groups, reps: int = 2000, seed: int = 0, score: str = "mean") -> list[dict]:
    """Per configuration: label, runs, the per-segment estimates, `later - first`, and the
    probe's mean fit ratio per switch step."""
    rows = []
    for g in groups:
        per_run = [segment_scores(r.summary, int(r.config[EVERY_KEY]))[score] for r in g.runs]
        n = min(len(s) for s in per_run)
        matrix = np.array([s[:n] for s in per_run])  # [runs, segments]
        later = matrix[:, 1:].mean(axis=1) if n > 1 else None  # [runs]
        drop = later - matrix[:, 0] if n > 1 else None
        probes: dict[int, list[float]] = {}
        for r in g.runs:
            for (_, metric), (steps, values) in read_diagnostics(r.path, ("fit_ratio",), "probe/").items():
                for step, value in zip(steps, values):
                    probes.setdefault(int(step), []).append(float(value))
        rows.append({"label": g.label, "runs": len(g.runs),
                     "segments": [_estimate(matrix[:, k], reps, seed) for k in range(n)],
                     "later": _estimate(later, reps, seed) if later is not None else None,
                     "drop": _estimate(drop, reps, seed) if drop is not None else None,
                     "probe": {s: float(np.mean(v)) for s, v in sorted(probes.items())}})
    return rows


def continual_markdown(rows: list[dict], score: str = "mean") -> str:
    n = max(len(r["segments"]) for r in rows)
    what = "mean of the segment's evaluations" if score == "mean" else "eval return at the segment's end"
    lines = [f"## Continual: return per task segment ({what}), mean over runs [95% CI]", "",
             "| configuration | runs | " + " | ".join(f"task {k + 1}" for k in range(n)) + " | later tasks | later - first |",
             "|---|---|" + "---|" * (n + 2)]
    for r in rows:
        cells = [_cell(e) for e in r["segments"]] + [""] * (n - len(r["segments"]))
        lines.append(f"| {r['label']} | {r['runs']} | " + " | ".join(cells)
                     + f" | {_cell(r['later']) if r['later'] else ''} | {_cell(r['drop']) if r['drop'] else ''} |")
    steps = sorted({s for r in rows for s in r["probe"]})
    if steps:
        lines += ["", "Trainability probe: fit ratio (loss after / before fitting random targets; "
                  "higher = less trainable) at each switch, mean over runs", "",
                  "| configuration | " + " | ".join(f"step {s}" for s in steps) + " |",
                  "|---|" + "---|" * len(steps)]
        for r in rows:
            lines.append(f"| {r['label']} | " + " | ".join(
                f"{r['probe'][s]:.3f}" if s in r["probe"] else "" for s in steps) + " |")
    return "\n".join(lines) + "\n"


def plot_continual(rows: list[dict], path) -> None:
    """Per-segment return (with CI bands) and the probe's fit ratio per switch, one line per
    configuration."""
    from matplotlib.figure import Figure
    fig = Figure(figsize=(11, 4))
    left, right = fig.subplots(1, 2)
    for r in rows:
        x = np.arange(1, len(r["segments"]) + 1)
        point = np.array([e[0] for e in r["segments"]])
        line, = left.plot(x, point, marker="o", label=r["label"])
        if all(e[1] is not None for e in r["segments"]):
            left.fill_between(x, [e[1] for e in r["segments"]], [e[2] for e in r["segments"]],
                              color=line.get_color(), alpha=0.15)
        if r["probe"]:
            right.plot(list(r["probe"]), list(r["probe"].values()), marker="o", label=r["label"],
                       color=line.get_color())
    left.set(xlabel="task segment", ylabel="return", title="return per task (95% CI)")
    right.set(xlabel="env step of the switch", ylabel="fit ratio", title="trainability probe")
    left.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
