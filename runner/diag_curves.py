"""Plasticity diagnostics of a sweep: diagnostics.png, next to the return curves.

Reads the TensorBoard scalars `plasticity/<group>/<metric>` (logged when diagnostics.every > 0,
plasticity/diagnostics.py) from each run's tb/ and draws one panel per env, group and metric:
env steps on x, a line per configuration (mean over its runs, shaded +- one standard deviation)
and its reset events as dotted vertical lines in its colour, as in learning_curves.png.
"""
from __future__ import annotations

from collections import defaultdict
from pathlib import Path

import numpy as np
from matplotlib import colormaps
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from runner.curves import event_steps

KNOWN = ("dormant_ratio", "srank", "weight_norm", "grad_norm", "init_distance")
DEFAULT = ("dormant_ratio", "srank", "weight_norm")
NAMES = {"dormant_ratio": "dormant ratio", "srank": "srank", "weight_norm": "weight norm",
         "grad_norm": "gradient norm", "init_distance": "distance from init"}
PREFIX = "plasticity/"


def read_diagnostics(run_dir, metrics=DEFAULT, prefix: str = PREFIX
                     ) -> dict[tuple[str, str], tuple[np.ndarray, np.ndarray]]:
    """{(group, metric): (env steps, values)} from `run_dir`/tb, the scalars tagged
    `<prefix><group>/<metric>` (default the diagnostics; "probe/" the trainability probe), groups
    in name order. Of several
    values logged at one env step (heavy priming, or more updates per step than diagnostics.every)
    the last one counts. Empty without tb/ or diagnostics. A resumed run's overwritten stretch is
    left out, as TensorBoard does."""
    tb = Path(run_dir) / "tb"
    if not tb.is_dir():
        return {}
    from tensorboard.backend.event_processing import event_accumulator as ea  # slow to import
    events = ea.EventAccumulator(str(tb), size_guidance={  # every scalar; little of the rest
        ea.SCALARS: 0, ea.IMAGES: 1, ea.HISTOGRAMS: 1, ea.TENSORS: 1, ea.AUDIO: 1})
    events.Reload()
    out = {}
    for tag in sorted(events.Tags()["scalars"]):
        group, _, metric = tag[len(prefix):].rpartition("/")
        if tag.startswith(prefix) and group and metric in metrics:
            at_step = {int(e.step): float(e.value) for e in events.Scalars(tag)}  # the last wins
            steps = np.array(sorted(at_step), dtype=int)
            out[(group, metric)] = (steps, np.array([at_step[s] for s in steps]))
    return out


def diagnostic_curves(configs: list[tuple[str, list]], metrics=DEFAULT) -> dict:
    """`configs`: (label, its finished runs). Returns {(env, group, metric): {label: (steps, mean,
    std, runs)}}, panels ordered by env (first seen), group, then `metrics`: over a
    configuration's runs on the env, step by step (a run contributes to the steps it logged)."""
    values: dict = defaultdict(lambda: defaultdict(lambda: defaultdict(list)))
    for label, runs in configs:
        for run in runs:
            for (group, metric), (steps, series) in read_diagnostics(run.path, metrics).items():
                for step, value in zip(steps, series):
                    values[(run.task, group, metric)][label][int(step)].append(value)
    envs = list(dict.fromkeys(run.task for _, runs in configs for run in runs))
    order = sorted(values, key=lambda p: (envs.index(p[0]), p[1], list(metrics).index(p[2])))
    curves = {}
    for panel in order:
        curves[panel] = {}
        for label, by_step in values[panel].items():
            steps = np.array(sorted(by_step))
            per_step = [np.array(by_step[s]) for s in steps]
            curves[panel][label] = (steps, np.array([v.mean() for v in per_step]),
                                    np.array([v.std() for v in per_step]),
                                    np.array([len(v) for v in per_step]))
    return curves


def plot_diagnostics(configs: list[tuple[str, list]], curves: dict, path) -> dict:
    """One row per (env, group), one column per metric; colours by position in `configs`, as in
    learning_curves.png. Writes a PNG; returns the reset events marked, {(env, label): steps}."""
    rows = list(dict.fromkeys((env, group) for env, group, _ in curves))
    cols = list(dict.fromkeys(metric for _, _, metric in curves))
    several_envs = len({env for env, _ in rows}) > 1
    fig = Figure(figsize=(5 * len(cols), 3.4 * len(rows) + 0.4 + 0.25 * len(configs)),
                 layout="constrained")
    axes = fig.subplots(len(rows), len(cols), squeeze=False)
    palette = colormaps["tab10" if len(configs) <= 10 else "tab20"]
    colours = {label: palette(i % palette.N) for i, (label, _) in enumerate(configs)}
    marked = {}
    panels = [(r, c, (env, group, metric)) for r, (env, group) in enumerate(rows)
              for c, metric in enumerate(cols)]
    for r, c, (env, group, metric) in panels:
        ax = axes[r][c]
        lines = curves.get((env, group, metric))
        if lines is None:
            ax.set_visible(False)
            continue
        for label, (steps, mean, std, _) in lines.items():
            colour = colours[label]
            ax.plot(steps, mean, color=colour, marker="." if len(steps) < 30 else None)
            ax.fill_between(steps, mean - std, mean + std, color=colour, alpha=0.2, linewidth=0)
            runs = next(runs for name, runs in configs if name == label)
            resets = marked[(env, label)] = event_steps([run.summary for run in runs if run.task == env])
            for step in resets:
                ax.axvline(step, color=colour, linestyle=":", linewidth=1.2, alpha=0.8)
        title = f"{group}: {NAMES.get(metric, metric)}"
        ax.set_title(f"{env}, {title}" if several_envs else title)
        ax.set_xlabel("env steps")
        ax.set_ylabel(f"{NAMES.get(metric, metric)} (mean ± std)")
        ax.grid(alpha=0.3)
    handles = [Line2D([], [], color=colours[label], label=f"{label} ({n} run{'s' * (n > 1)})")
               for label, n in ((label, len(runs)) for label, runs in configs)]
    if any(marked.values()):
        handles.append(Line2D([], [], color="grey", linestyle=":", label="reset events (config colour)"))
    fig.legend(handles=handles, loc="outside lower center", ncols=1, frameon=False)
    fig.savefig(Path(path), dpi=100)
    return marked
