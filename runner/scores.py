"""Run scores and their aggregates per configuration, for the sweep report (runner/report.py).

A run's score is its final eval return or, with `last` = K > 1, the mean of its last K evaluations
(summary.json `eval`: the "final performance" of most papers, less noisy than one evaluation).
When every run has one (Atari), the human-normalised score is used instead. Per configuration
(and env): rliable's IQM, median and mean, and the optimality gap for normalised scores, with 95%
stratified-bootstrap CIs where every env of the row has at least MIN_CI_RUNS runs.
"""
from __future__ import annotations

import math
import warnings

import numpy as np

from runner.sweep import Group, ReportError

METRICS = ("iqm", "median", "mean", "optimality_gap")  # the gap: human-normalised scores only
RAW, NORMALIZED = "final_eval_return", "final_eval_human_normalized"  # summary.json keys
EVAL_FIELDS = {RAW: "return_mean", NORMALIZED: "human_normalized"}  # the same, per eval entry
# Fewer runs per configuration and env than MIN_SEEDS: a warning. Agarwal et al. 2021 (rliable,
# "Deep RL at the edge of the statistical precipice") show that aggregates of the 3-5 runs per
# task common in deep RL vary widely between repetitions; 5 is a floor, not a guarantee.
MIN_SEEDS = 5
# Fewer runs on an env than MIN_CI_RUNS: no CI. A bootstrap resample of 2 runs takes one of 3
# values, so its "95% CI" is about [min, max]: a range, not a confidence interval.
MIN_CI_RUNS = 3


def _number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def run_score(summary: dict, key: str, last: int = 1) -> float | None:
    """The run's score under summary `key` (RAW or NORMALIZED): with `last` 1 the final value,
    else the mean of the last `last` eval entries (all of them when it has fewer). None when a
    value is missing."""
    if last == 1:
        return float(summary[key]) if _number(summary.get(key)) else None
    entries = summary.get("eval") or [{EVAL_FIELDS[key]: summary.get(key)}]
    values = [entry.get(EVAL_FIELDS[key]) for entry in entries[-last:]]
    return float(np.mean(values)) if all(_number(v) for v in values) else None


def score_key(runs: list, last: int = 1) -> tuple[str, str | None]:
    """(summary key of the score to aggregate, note or None): the human-normalised score when
    every run has one, else the raw eval return (with a note when only some have one)."""
    normalized = sum(run_score(r.summary, NORMALIZED, last) is not None for r in runs)
    if normalized == len(runs):
        return NORMALIZED, None
    broken = [r for r in runs if run_score(r.summary, RAW, last) is None]
    if broken:
        raise ReportError(f"{broken[0].path}: summary.json has no finite eval return "
                          f"{'(final_eval_return)' if last == 1 else f'in its last {last} evaluations'}")
    note = (f"{normalized} of {len(runs)} runs have a human-normalised score (Atari) and the others "
            f"none: the table aggregates raw eval returns" if normalized else None)
    return RAW, note


def score_matrix(runs: list, tasks: list[str], scores: dict) -> tuple[np.ndarray, int]:
    """The runs' scores (`scores`: run path -> score) as rliable's [runs, tasks] matrix (runs of
    each task ordered by seed). Tasks with more runs than the others are cut to the smallest
    count; returns how many were cut."""
    per_task = [sorted((r.summary.get("seed", 0), scores[r.path]) for r in runs if r.task == task)
                for task in tasks]
    n = min(len(task_scores) for task_scores in per_task)
    cut = sum(len(task_scores) - n for task_scores in per_task)
    return np.array([[task_scores[i][1] for task_scores in per_task] for i in range(n)],
                    dtype=float), cut


def interval_estimates(matrix: np.ndarray, reps: int, seed: int = 0, gap: bool = False) -> dict:
    """{metric: (point, low, high)}: rliable's aggregates and 95% stratified-bootstrap CIs; low
    and high are None when a task has fewer than MIN_CI_RUNS runs. With `gap` (normalised
    scores), also the optimality gap at gamma 1, mean of max(1 - score, 0); without, None."""
    from rliable import library, metrics  # imported here: rliable is slow to import
    aggregates = [metrics.aggregate_iqm, metrics.aggregate_median, metrics.aggregate_mean]
    if gap:
        aggregates.append(lambda x: metrics.aggregate_optimality_gap(x, gamma=1))
    if matrix.shape[0] < MIN_CI_RUNS:
        return {m: (float(aggregates[i](matrix)), None, None) if i < len(aggregates) else None
                for i, m in enumerate(METRICS)}
    with warnings.catch_warnings():  # arch < 8 warns that rliable's random_state is deprecated
        warnings.simplefilter("ignore", FutureWarning)
        points, intervals = library.get_interval_estimates(
            {"scores": matrix}, lambda x: np.array([f(x) for f in aggregates]), reps=reps,
            random_state=np.random.RandomState(seed))
    point, (low, high) = points["scores"], intervals["scores"]
    return {m: (float(point[i]), float(low[i]), float(high[i])) if i < len(aggregates) else None
            for i, m in enumerate(METRICS)}


def _short_histories(runs: list, last: int) -> str | None:
    short = [len(r.summary.get("eval") or [None]) for r in runs]
    short = [n for n in short if n < last]
    return (f"{len(short)} run(s) have fewer than {last} evaluations (fewest {min(short)}): "
            f"their score is the mean of all their evaluations" if short else None)


def table_rows(groups: list[Group], reps: int, seed: int = 0, last: int = 1
               ) -> tuple[list[dict], list[str]]:
    """One row per configuration (over all its envs) and, with several envs, one per env. Each
    row's "score" is the summary key aggregated (one for the whole report, see `score_key`)."""
    runs = [r for g in groups for r in g.runs]
    tasks = list(dict.fromkeys(r.task for r in runs))
    key, note = score_key(runs, last)
    scores = {r.path: run_score(r.summary, key, last) for r in runs}
    notes = [n for n in (note, _short_histories(runs, last) if last > 1 else None) if n]
    rows = []
    for group in groups:
        mine = [t for t in tasks if any(r.task == t for r in group.runs)]
        scopes = [("all" if len(tasks) > 1 else mine[0], mine)]
        if len(tasks) > 1:
            scopes += [(t, [t]) for t in mine]
        for env, scope in scopes:
            matrix, cut = score_matrix(group.runs, scope, scores)
            if cut and env == "all":
                notes.append(f"{group.label}: unequal runs per env; {cut} run(s) beyond the "
                             f"smallest count left out of the all-env row")
            rows.append({"config": group.label, "env": env, "runs": matrix.size,
                         "tasks": len(scope), "keys": group.values, "score": key, "last": last,
                         **interval_estimates(matrix, reps, seed, gap=key == NORMALIZED)})
    return rows, notes


def seed_warning(groups: list[Group], rows: list[dict]) -> str | None:
    """A warning when a configuration has fewer than MIN_SEEDS runs on an env, else None."""
    few = {}
    for group in groups:
        counts = [sum(r.task == t for r in group.runs) for t in dict.fromkeys(r.task for r in group.runs)]
        if min(counts) < MIN_SEEDS:
            few[group.label] = min(counts)
    if not few:
        return None
    listed = "; ".join(f"{label}: {n}" for label, n in few.items())
    text = (f"Warning: fewer than {MIN_SEEDS} runs per env (fewest per configuration: {listed}). "
            f"Aggregates of so few runs vary widely between repetitions of a sweep (Agarwal et al. "
            f"2021, rliable): use at least {MIN_SEEDS} seeds before drawing conclusions. A 95% CI is "
            f"shown only where every env of a row has at least {MIN_CI_RUNS} runs (n/a otherwise).")
    if any(row["runs"] < 4 for row in rows):
        text += " With fewer than 4 runs in a row, IQM trims nothing and equals the mean."
    return text
