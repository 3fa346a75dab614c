"""`python -m runner.report <sweep dir>` (or `plasticrl-report`): summarize a sweep.

Reads every run under the directory (runner/sweep.py), groups them into configurations (labelled
by the config values that differ between them) and writes, in the directory (or --out):
  report.md / report.csv  the score per configuration: runs, IQM, median and mean, each with a 95%
                          stratified-bootstrap CI (rliable) where every env has >= 3 runs; with
                          several envs, one row over all envs and one per env (runner/scores.py)
  learning_curves.png     eval score vs env steps per env, mean over seeds, reset events marked
  diagnostics.png         dormant ratio, srank and weight norm (--diagnostics) per env and network
                          group vs env steps, from the runs' TensorBoard scalars (runner/diag_curves.py)
  continual.png           continual runs (env.sequence): return per task segment with CIs and the
                          trainability probe per switch, also as tables in report.md
                          (runner/continual_report.py)
A run's score is its final eval return, or with --last K the mean of its last K evaluations; the
human-normalised score (Atari) instead when every run has one, and then the optimality gap
(gamma 1) is a fourth metric. Fewer than 5 runs per configuration and env gives a warning.
The table is also printed. Exit status 2 for a missing directory or one without finished runs.
With --reference NAME, the sweep (or a published setting, ref:OTHER) is also compared with
published per-run results: runner/reference.py, reference_NAME.md / .csv / .png.
"""
from __future__ import annotations

import argparse
import csv
import sys
from pathlib import Path

from runner.continual_report import continual_markdown, continual_rows, is_continual, plot_continual
from runner.curves import plot_learning_curves
from runner.diag_curves import DEFAULT, KNOWN, diagnostic_curves, plot_diagnostics
from runner.scores import METRICS, NORMALIZED, RAW, seed_warning, table_rows
from runner.sweep import MISSING, ReportError, find_runs, group_runs

HEADER = ("config", "env", "runs", "IQM [95% CI]", "median [95% CI]", "mean [95% CI]",
          "optimality gap [95% CI]")
SCORE_NAMES = {RAW: "eval return", NORMALIZED: "human-normalised score"}


def score_text(key: str, last: int) -> str:
    """What a run's score is, e.g. "eval return, mean of the last 5 evaluations"."""
    name = SCORE_NAMES[key]
    return f"final {name} (the last evaluation)" if last == 1 else \
        f"{name}, mean of the last {last} evaluations"


def _cell(estimate, digits: int) -> str:
    point, low, high = estimate
    interval = "n/a" if low is None else "{:.{d}f}, {:.{d}f}".format(low, high, d=digits)
    return f"{point:.{digits}f} [{interval}]"


def markdown_table(rows: list[dict]) -> str:
    """Scores with 3 decimals when human-normalised or every value is below 10, else 1; "n/a"
    for a CI not computed. The optimality gap column only when it was computed."""
    metrics = [m for m in METRICS if rows[0][m] is not None]
    header = HEADER[:3 + len(metrics)]
    small = max(abs(x) for row in rows for m in metrics for x in row[m] if x is not None) < 10
    digits = 3 if small or rows[0]["score"] == NORMALIZED else 1
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for row in rows:
        cells = [row["config"], row["env"], str(row["runs"])]
        cells += [_cell(row[m], digits) for m in metrics]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _csv_cells(estimate) -> list[str]:
    return ["", "", ""] if estimate is None else ["" if x is None else repr(x) for x in estimate]


def write_csv(rows: list[dict], keys: list[str], path: Path) -> None:
    """One row per table row; "last_evals": the K of --last; empty CI cells where it is n/a."""
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["config", *keys, "env", "runs", "tasks", "score", "last_evals"]
                        + [f"{m}{s}" for m in METRICS for s in ("", "_ci_low", "_ci_high")])
        for row in rows:  # score: "return" or "human_normalized"; the gap is empty for returns
            values = [row["keys"][k] for k in keys]
            writer.writerow([row["config"], *("" if v == MISSING else v for v in values),
                             row["env"], row["runs"], row["tasks"],
                             "human_normalized" if row["score"] == NORMALIZED else "return",
                             row["last"]] + [cell for m in METRICS for cell in _csv_cells(row[m])])


def build_report(root, out=None, reps: int = 2000, seed: int = 0, last: int = 1,
                 diagnostics=DEFAULT) -> dict:
    """Read the runs under `root`, write report.md, report.csv, learning_curves.png and (when
    some run logged `diagnostics` metrics) diagnostics.png to `out` (default `root`). Returns
    {"rows", "skipped", "notes", "warning", "diagnostics" (the curves), "text", "paths"}."""
    root = Path(root)
    runs = find_runs(root)
    groups, keys = group_runs(runs)
    skipped = [r for r in runs if r.skipped]
    listing = [f"- {r.path.relative_to(root) if r.path != root else '.'} ({r.label}): {r.skipped}"
               for r in skipped]
    if not groups:
        raise ReportError(f"{root}: no finished run; {len(skipped)} skipped:\n" + "\n".join(listing))
    rows, notes = table_rows(groups, reps, seed, last)
    warning = seed_warning(groups, rows)
    out = Path(out) if out is not None else root
    out.mkdir(parents=True, exist_ok=True)
    paths = {"md": out / "report.md", "csv": out / "report.csv", "png": out / "learning_curves.png"}
    normalized = rows[0]["score"] == NORMALIZED
    plot_learning_curves([(g.label, [r.summary for r in g.runs]) for g in groups], paths["png"],
                         normalized=normalized)
    write_csv(rows, keys, paths["csv"])
    configs = [(g.label, g.runs) for g in groups]
    curves = diagnostic_curves(configs, diagnostics) if diagnostics else {}
    if curves:
        paths["diagnostics"] = out / "diagnostics.png"
        plot_diagnostics(configs, curves, paths["diagnostics"])
    what = ("IQM, median, mean and optimality gap (mean of max(1 - score, 0))" if normalized
            else "IQM, median and mean")
    text = (f"Score per run: {score_text(rows[0]['score'], last)}. {len(groups)} configuration(s), "
            f"{sum(len(g.runs) for g in groups)} runs under {root}. {what} as in rliable (median "
            f"and mean: of the per-env means), 95% stratified-bootstrap CIs, {reps} reps.\n"
            + (f"{warning}\n" if warning else "") + "\n" + markdown_table(rows) + "\n")
    if notes:
        text += "\n" + "\n".join(f"Note: {n}" for n in notes) + "\n"
    if diagnostics and not curves:
        text += (f"\nNo diagnostics ({', '.join(diagnostics)}) in any run's tb/ (logged when "
                 f"diagnostics.every > 0): diagnostics.png not written.\n")
    if skipped:
        text += f"\nSkipped {len(skipped)} run(s):\n" + "\n".join(listing) + "\n"
    if is_continual(groups):  # per-task segments and the trainability probe
        continual = continual_rows(groups, reps, seed)
        paths["continual"] = out / "continual.png"
        plot_continual(continual, paths["continual"])
        text += "\n" + continual_markdown(continual)
    title = "Sweep report: human-normalised score" if normalized else "Sweep report"
    figures = f"![learning curves]({paths['png'].name})\n"
    if curves:
        figures += f"\n![plasticity diagnostics]({paths['diagnostics'].name})\n"
    if "continual" in paths:
        figures += f"\n![continual: return per task and probe]({paths['continual'].name})\n"
    paths["md"].write_text(f"# {title}\n\n{text}\n{figures}")
    return {"rows": rows, "skipped": skipped, "notes": notes, "warning": warning,
            "diagnostics": curves, "text": text, "paths": paths}


def _metrics(value: str) -> tuple[str, ...]:
    names = () if value == "none" else tuple(v.strip() for v in value.split(",") if v.strip())
    unknown = [n for n in names if n not in KNOWN]
    if unknown:
        raise argparse.ArgumentTypeError(f"unknown metric(s) {', '.join(unknown)}: choose from "
                                         f"{', '.join(KNOWN)}, or none")
    return names


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="plasticrl-report", description="Summarize a sweep: a table "
                                     "of eval returns, or human-normalised scores when every run has one "
                                     "(IQM, median, mean, optimality gap; 95% CIs), learning curves and "
                                     "plasticity diagnostics curves.")
    parser.add_argument("sweep_dir", nargs="?", help="a sweep directory (runs/multirun/<date>) or any "
                        "directory holding run directories; or ref:NAME, a published setting, to "
                        "compare it with --reference")
    parser.add_argument("--out", help="write report.md, report.csv, learning_curves.png and "
                        "diagnostics.png here (default: the sweep directory)")
    parser.add_argument("--reps", type=int, default=2000, help="bootstrap replications (2000)")
    parser.add_argument("--last", type=int, default=1, metavar="K", help="score each run by the mean "
                        "of its last K evaluations (default 1: the final evaluation; --reference "
                        "always compares final scores)")
    parser.add_argument("--diagnostics", type=_metrics, default=DEFAULT, metavar="M[,M...]",
                        help=f"diagnostics to plot in diagnostics.png, from {', '.join(KNOWN)}, or "
                        f"none (default: {','.join(DEFAULT)})")
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
    if args.last < 1:
        parser.error(f"--last = {args.last}: must be an integer >= 1")
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
            report = build_report(args.sweep_dir, args.out, args.reps, args.seed, args.last,
                                  args.diagnostics)
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
