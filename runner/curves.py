"""Learning curves of a sweep: eval return vs env steps, one subplot per env, one line per
configuration (mean over seeds, shaded +- one standard deviation), and each configuration's
reset events (summary.json `plasticity_events`) as dotted vertical lines in its colour. For a
report on human-normalised scores (Atari), an env whose eval entries all hold "human_normalized"
is plotted in that score instead (y label "human-normalised score").
Drawn on a bare matplotlib Figure (Agg canvas), so no pyplot state or display is touched."""
from __future__ import annotations

import math
from collections import defaultdict
from pathlib import Path

import numpy as np
from matplotlib import colormaps
from matplotlib.figure import Figure
from matplotlib.lines import Line2D


NORMALIZED = "human_normalized"  # an eval entry's human-normalised score (Atari runs)


def mean_curve(summaries: list[dict], key: str = "return_mean"
               ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(steps, mean, std, count) of eval entries' `key` over the runs, step by step (a run that
    stopped early contributes to the steps it reached)."""
    by_step: dict[int, list[float]] = defaultdict(list)
    for summary in summaries:
        for point in summary.get("eval", []):
            by_step[int(point["env_steps"])].append(float(point[key]))
    steps = np.array(sorted(by_step))
    values = [np.array(by_step[s]) for s in steps]
    return (steps, np.array([v.mean() for v in values]), np.array([v.std() for v in values]),
            np.array([len(v) for v in values]))


def event_steps(summaries: list[dict]) -> list[int]:
    """Env steps at which any run of the configuration had a plasticity event."""
    return sorted({int(e["env_steps"]) for s in summaries for e in s.get("plasticity_events", [])})


def curve_key(summaries: list[dict], normalized: bool) -> str:
    """The eval entry key to plot: "human_normalized" when asked for and every entry has a number
    there, else "return_mean"."""
    points = [p for s in summaries for p in s.get("eval", [])]
    usable = all(type(p.get(NORMALIZED)) in (int, float) for p in points)
    return NORMALIZED if normalized and points and usable else "return_mean"


def plot_learning_curves(configs: list[tuple[str, list[dict]]], path, normalized: bool = False) -> None:
    """`configs`: (label, the summaries of its finished runs) in legend order; writes a PNG.
    `normalized`: plot human-normalised eval scores where the runs have them."""
    envs = list(dict.fromkeys(s["env"] for _, summaries in configs for s in summaries))
    keys = {env: curve_key([s for _, summaries in configs for s in summaries if s["env"] == env],
                           normalized) for env in envs}
    cols = min(3, len(envs))
    rows = math.ceil(len(envs) / cols)
    fig = Figure(figsize=(5.5 * cols, 3.8 * rows + 0.4 + 0.25 * len(configs)), layout="constrained")
    axes = fig.subplots(rows, cols, squeeze=False).ravel()
    palette = colormaps["tab10" if len(configs) <= 10 else "tab20"]
    handles, any_events = [], False
    for i, (label, summaries) in enumerate(configs):
        colour = palette(i % palette.N)
        seeds = len(summaries)
        handles.append(Line2D([], [], color=colour, label=f"{label} ({seeds} run{'s' * (seeds > 1)})"))
        for ax, env in zip(axes, envs):
            mine = [s for s in summaries if s["env"] == env]
            if not mine:
                continue
            steps, mean, std, _ = mean_curve(mine, keys[env])
            ax.plot(steps, mean, color=colour, marker="." if len(steps) < 30 else None)
            ax.fill_between(steps, mean - std, mean + std, color=colour, alpha=0.2, linewidth=0)
            for step in event_steps(mine):
                ax.axvline(step, color=colour, linestyle=":", linewidth=1.2, alpha=0.8)
                any_events = True
    for ax, env in zip(axes, envs):
        ax.set_title(env)
        ax.set_xlabel("env steps")
        score = "human-normalised score" if keys[env] == NORMALIZED else "eval return"
        ax.set_ylabel(f"{score} (mean ± std over runs)")
        ax.grid(alpha=0.3)
    for ax in axes[len(envs):]:
        ax.set_visible(False)
    if any_events:
        handles.append(Line2D([], [], color="grey", linestyle=":", label="reset events (config colour)"))
    fig.legend(handles=handles, loc="outside lower center", ncols=1, frameon=False)
    fig.savefig(Path(path), dpi=110)
