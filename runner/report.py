"""`python -m runner.report <sweep dir>` (or `plasticrl-report`): summarize a sweep.

Reads every run under the directory (runner/sweep.py), groups them into configurations and
writes, in the directory (or --out):
  report.md / report.csv  final eval score per configuration: runs, IQM, median and mean, each
                          with a 95% stratified-bootstrap confidence interval (rliable); with
                          several envs, one row over all envs and one per env
  learning_curves.png     eval score vs env steps per env, mean over seeds, reset events marked
The score is the human-normalised score (summary.json `final_eval_human_normalized`, Atari) when
every run has one, and then the optimality gap (gamma 1) is a fourth metric; otherwise the raw
final eval return (a mix of normalised and other runs gets a note).
The table is also printed. Exit status 2 for a missing directory or one without finished runs.
With --reference NAME, the sweep (or a published setting, ref:OTHER) is also compared with
published per-run results: runner/reference.py, reference_NAME.md / .csv / .png.
"""
from __future__ import annotations

import argparse
import csv
import math
import sys
import warnings
from pathlib import Path

import numpy as np

from runner.curves import plot_learning_curves
from runner.sweep import MISSING, Group, ReportError, find_runs, group_runs

METRICS = ("iqm", "median", "mean", "optimality_gap")  # the gap: human-normalised scores only
HEADER = ("config", "env", "runs", "IQM [95% CI]", "median [95% CI]", "mean [95% CI]",
          "optimality gap [95% CI]")
RAW, NORMALIZED = "final_eval_return", "final_eval_human_normalized"  # summary.json keys
SCORE_NAMES = {RAW: "eval return", NORMALIZED: "human-normalised score"}  # "final ..."


def _number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def score_key(runs: list) -> tuple[str, str | None]:
    """(summary key of the score to aggregate, note or None): the human-normalised score when
    every run has one, else the raw final eval return (with a note when only some have one)."""
    normalized = sum(_number(r.summary.get(NORMALIZED)) for r in runs)
    if normalized == len(runs):
        return NORMALIZED, None
    note = (f"{normalized} of {len(runs)} runs have a human-normalised score (Atari) and the others "
            f"none: the table aggregates raw final eval returns" if normalized else None)
    return RAW, note


def score_matrix(runs: list, tasks: list[str], key: str = RAW) -> tuple[np.ndarray, int]:
    """Final eval scores (summary `key`) as rliable's [runs, tasks] matrix (runs of each task
    ordered by seed). Tasks with more runs than the others are cut to the smallest count; returns
    how many were cut."""
    per_task = [sorted((r.summary.get("seed", 0), r.summary[key])
                       for r in runs if r.task == task) for task in tasks]
    n = min(len(scores) for scores in per_task)
    cut = sum(len(scores) - n for scores in per_task)
    return np.array([[scores[i][1] for scores in per_task] for i in range(n)], dtype=float), cut


def interval_estimates(matrix: np.ndarray, reps: int, seed: int = 0, gap: bool = False) -> dict:
    """{metric: (point, low, high)}: rliable's aggregates and 95% stratified-bootstrap CIs. With
    `gap` (normalised scores), also the optimality gap at gamma 1, mean of max(1 - score, 0), from
    the same bootstrap samples; without, "optimality_gap" is None."""
    from rliable import library, metrics  # imported here: rliable is slow to import
    aggregates = [metrics.aggregate_iqm, metrics.aggregate_median, metrics.aggregate_mean]
    if gap:
        aggregates.append(lambda x: metrics.aggregate_optimality_gap(x, gamma=1))
    with warnings.catch_warnings():  # arch < 8 warns that rliable's random_state is deprecated
        warnings.simplefilter("ignore", FutureWarning)
        points, intervals = library.get_interval_estimates(
            {"scores": matrix}, lambda x: np.array([f(x) for f in aggregates]), reps=reps,
            random_state=np.random.RandomState(seed))
    point, (low, high) = points["scores"], intervals["scores"]
    return {m: (float(point[i]), float(low[i]), float(high[i])) if i < len(aggregates) else None
            for i, m in enumerate(METRICS)}


def table_rows(groups: list[Group], reps: int, seed: int = 0) -> tuple[list[dict], list[str]]:
    """One row per configuration (over all its envs) and, with several envs, one per env. Each
    row's "score" is the summary key aggregated (one for the whole report, see `score_key`)."""
    tasks = list(dict.fromkeys(r.task for g in groups for r in g.runs))
    key, note = score_key([r for g in groups for r in g.runs])
    rows, notes = [], [note] if note else []
    for group in groups:
        mine = [t for t in tasks if any(r.task == t for r in group.runs)]
        scopes = [("all" if len(tasks) > 1 else mine[0], mine)]
        if len(tasks) > 1:
            scopes += [(t, [t]) for t in mine]
        for env, scope in scopes:
            matrix, cut = score_matrix(group.runs, scope, key)
            if cut and env == "all":
                notes.append(f"{group.label}: unequal runs per env; {cut} run(s) beyond the "
                             f"smallest count left out of the all-env row")
            rows.append({"config": group.label, "env": env, "runs": matrix.size,
                         "tasks": len(scope), "keys": group.values, "score": key,
                         **interval_estimates(matrix, reps, seed, gap=key == NORMALIZED)})
    return rows, notes


def markdown_table(rows: list[dict]) -> str:
    """Scores with 3 decimals when human-normalised or every value is below 10, else 1. The
    optimality gap column only when it was computed (human-normalised scores)."""
    metrics = [m for m in METRICS if rows[0][m] is not None]
    header = HEADER[:3 + len(metrics)]
    small = max(abs(x) for row in rows for m in metrics for x in row[m]) < 10
    digits = 3 if small or rows[0]["score"] == NORMALIZED else 1
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for row in rows:
        cells = [row["config"], row["env"], str(row["runs"])]
        cells += ["{:.{d}f} [{:.{d}f}, {:.{d}f}]".format(*row[m], d=digits) for m in metrics]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _csv_cells(estimate) -> list[str]:
    return ["", "", ""] if estimate is None else [repr(x) for x in estimate]


def write_csv(rows: list[dict], keys: list[str], path: Path) -> None:
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["config", *keys, "env", "runs", "tasks", "score"]
                        + [f"{m}{s}" for m in METRICS for s in ("", "_ci_low", "_ci_high")])
        for row in rows:  # score: "return" or "human_normalized"; the gap is empty for returns
            values = [row["keys"][k] for k in keys]
            writer.writerow([row["config"], *("" if v == MISSING else v for v in values),
                             row["env"], row["runs"], row["tasks"],
                             "human_normalized" if row["score"] == NORMALIZED else "return"]
                            + [cell for m in METRICS for cell in _csv_cells(row[m])])


def build_report(root, out=None, reps: int = 2000, seed: int = 0) -> dict:
    """Read the runs under `root`, write report.md, report.csv and learning_curves.png to `out`
    (default `root`) and return {"rows", "skipped", "notes", "text", "paths"}."""
    root = Path(root)
    runs = find_runs(root)
    groups, keys = group_runs(runs)
    skipped = [r for r in runs if r.skipped]
    listing = [f"- {r.path.relative_to(root) if r.path != root else '.'} ({r.label}): {r.skipped}"
               for r in skipped]
    if not groups:
        raise ReportError(f"{root}: no finished run; {len(skipped)} skipped:\n" + "\n".join(listing))
    rows, notes = table_rows(groups, reps, seed)
    out = Path(out) if out is not None else root
    out.mkdir(parents=True, exist_ok=True)
    paths = {"md": out / "report.md", "csv": out / "report.csv", "png": out / "learning_curves.png"}
    normalized = rows[0]["score"] == NORMALIZED
    plot_learning_curves([(g.label, [r.summary for r in g.runs]) for g in groups], paths["png"],
                         normalized=normalized)
    write_csv(rows, keys, paths["csv"])
    what = ("IQM, median, mean and optimality gap (mean of max(1 - score, 0))" if normalized
            else "IQM, median and mean")
    text = (f"Final {SCORE_NAMES[rows[0]['score']]} per configuration "
            f"({sum(len(g.runs) for g in groups)} runs under {root}). {what} as in rliable (median "
            f"and mean: of the per-env means), 95% stratified-bootstrap CIs, {reps} reps.\n\n"
            + markdown_table(rows) + "\n")
    if notes:
        text += "\n" + "\n".join(f"Note: {n}" for n in notes) + "\n"
    if skipped:
        text += f"\nSkipped {len(skipped)} run(s):\n" + "\n".join(listing) + "\n"
    title = "Sweep report: human-normalised score" if normalized else "Sweep report"
    paths["md"].write_text(f"# {title}\n\n{text}\n![learning curves]({paths['png'].name})\n")
    return {"rows": rows, "skipped": skipped, "notes": notes, "text": text, "paths": paths}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="plasticrl-report", description="Summarize a sweep: a table "
                                     "of final eval returns, or human-normalised scores when every run has "
                                     "one (IQM, median, mean, optimality gap; 95% CIs), and learning curves.")
    parser.add_argument("sweep_dir", nargs="?", help="a sweep directory (runs/multirun/<date>) or any "
                        "directory holding run directories; or ref:NAME, a published setting, to "
                        "compare it with --reference")
    parser.add_argument("--out", help="write report.md, report.csv, learning_curves.png here "
                        "(default: the sweep directory)")
    parser.add_argument("--reps", type=int, default=2000, help="bootstrap replications (2000)")
    parser.add_argument("--seed", type=int, default=0, help="bootstrap seed (0)")
    parser.add_argument("--reference", metavar="NAME", help="also compare with the published per-run "
                        "results NAME (runner/reference.py; see --list-references): writes "
                        "reference_NAME.md, .csv and .png")
    parser.add_argument("--reference-steps", type=int, metavar="N", help="the step of the published "
                        "DMC results to compare at, in env steps as in the data (default: the largest "
                        "at which every compared task has runs)")
    parser.add_argument("--list-references", action="store_true", help="print the published "
                        "settings known to --reference and exit")
    args = parser.parse_args(argv)
    if args.reps < 1:
        parser.error(f"--reps = {args.reps}: must be an integer >= 1")
    if args.list_references:
        from runner.reference import catalogue_text
        print(catalogue_text())
        return 0
    if args.sweep_dir is None:
        parser.error("the sweep directory is required (or --list-references)")
    published = args.sweep_dir.startswith("ref:")
    if (published or args.reference_steps is not None) and args.reference is None:
        parser.error(f"{'--reference-steps' if not published else args.sweep_dir} needs --reference NAME")
    try:
        if args.reference is not None:  # a bad name fails before the sweep report is written
            from runner.reference import check, reference_report
            check(args.reference, args.reference_steps)
        if not published:
            report = build_report(args.sweep_dir, args.out, args.reps, args.seed)
            print(report["text"] + "\nwrote " + ", ".join(str(p) for p in report["paths"].values()))
        if args.reference is not None:
            comparison = reference_report(args.sweep_dir, args.reference, args.out,
                                          args.reference_steps, args.reps, args.seed)
            print(("\n" if not published else "") + comparison["text"] + "\nwrote "
                  + ", ".join(str(p) for p in comparison["paths"].values()))
    except ReportError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
