"""Compare a sweep, or a published setting, with published per-run results.

`plasticrl-report <sweep dir> --reference NAME` (runner/report.py) calls `reference_report`; the
left side can also be `ref:OTHER`, a second published setting. The data are copies shipped in
runner/reference_data/ (sources, columns and run counts: SOURCES.md); CATALOGUE names the
settings. Atari settings hold human-normalised scores at the end of Atari 100k (100k agent
steps); DMC settings hold eval returns (0-1000) at 500k / 1M / 2M env steps (action repeat
included), compared at `steps` (default: the largest step at which every compared task has runs).
Each configuration of a sweep is one block, on the tasks both sides have: per-task means with
95% bootstrap CIs, IQM / median / mean (and optimality gap, normalised scores) with 95%
stratified-bootstrap CIs, and P(ours > published) with its CI, all through rliable. With unequal
runs per task, IQM and gap pool all runs (as rliable does); median and mean are of task means.
"""
from __future__ import annotations

import csv
import re
import warnings
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from envs.atari_games import GAMES, SCORES
from runner.sweep import ReportError, find_runs, group_runs

DATA = Path(__file__).with_name("reference_data")
CHECKPOINTS = (500000, 1000000, 2000000)  # DMC env steps kept in the tidy files
ATARI_STEPS = 100000                      # Atari 100k: agent steps (400k frames)
EVAL_EVERY = 5000                         # agent steps between evaluations in the DMC sources
# DrQ's action repeat in rl_with_resets' train_pixels.py (PlaNet values by task name), else 2.
DRQ_ACTION_REPEAT = {"cartpole-swingup": 8, "reacher-easy": 4, "cheetah-run": 4,
                     "finger-spin": 2, "ball_in_cup-catch": 4, "walker-walk": 2}
METRICS = ("iqm", "median", "mean", "optimality_gap")
LABELS = {"iqm": "IQM", "optimality_gap": "optimality gap"}


@dataclass(frozen=True)
class Setting:
    """One published setting: its file under reference_data/ and what it holds."""
    name: str
    file: str
    column: str | None  # its `setting` value in a DMC file; None: a BBF per-game scores file
    paper: str
    about: str
    runs: str

    @property
    def atari(self) -> bool:
        return self.column is None

    @property
    def pixels(self) -> bool:
        return (self.column or "").startswith("drq")

    @property
    def unit(self) -> str:
        return "agent steps" if self.atari else "env steps"

    @property
    def score(self) -> str:
        return "human-normalised score" if self.atari else "eval return (0-1000)"


_BBF = "Schwarzer et al. 2023, Bigger, Better, Faster (Atari 100k)"
_SR = "D'Oro et al. 2023, Breaking the Replay Ratio Barrier (SR-SAC; DMC from states)"
_PB = "Nikishin et al. 2022, The Primacy Bias in Deep RL (DMC)"
_SRF, _PBF = "sr_sac/dmc_final.csv", "primacy/final.csv"
CATALOGUE = {s.name: s for s in (
    *(Setting(f"bbf_{name}", f"bbf/{file}.csv", None, _BBF, about, f"26 games x {runs} runs")
      for name, file, about, runs in (
          ("rr2", "RR2_BBF", "BBF, replay ratio 2", 14),
          ("rr8", "RR8_BBF", "BBF, replay ratio 8 (the paper's agent)", "52-60"),
          ("rr2_no_resets", "RR2_BBF-Resets", "BBF without resets, RR 2", 14),
          ("rr8_no_resets", "RR8_BBF-Resets", "BBF without resets, RR 8", 15),
          ("rr2_no_spr", "RR2_BBF-SPR", "BBF without the SPR loss, RR 2", 14))),
    *(Setting(f"sr_sac_rr{rr}_resets", _SRF, f"sac_rr{rr}_resets", _SR,
              f"SAC, {rr} updates per env step, resets every {every} env steps", runs)
      for rr, every, runs in ((8, "320k", "22 tasks x 5 seeds"), (16, "160k", "22 tasks x 5 seeds"),
                              (32, "80k", "22 tasks x 5 seeds"), (128, "20k", "15 tasks (DMC15) x 5 seeds"))),
    Setting("redq_baseline", _SRF, "redq_baseline", _SR, "the repository's REDQ baseline "
            "(configuration not documented)", "15 tasks (DMC15) x 20 seeds"),
    *(Setting(f"nikishin_sac_rr{rr}{r}", _PBF, f"sac_rr{rr}{r}", _PB, f"SAC from states, {rr} "
              f"update(s) per env step{', resets every 200k env steps' if r else ''}", "10 tasks x 10 seeds")
      for rr in (1, 32) for r in ("", "_resets")),
    Setting("nikishin_drq", _PBF, "drq", _PB, "DrQ from pixels, action repeat 2 (cartpole-swingup "
            "8; cheetah-run, reacher-easy 4)", "19 tasks x 10 seeds"),
    Setting("nikishin_drq_resets", _PBF, "drq_resets", _PB, "DrQ from pixels, resets every "
            "25k / 50k / 100k agent steps (500k / 1M / 2M-step tasks)", "19 tasks x 10 seeds"),
)}


def task_key(task: str) -> str:
    """Name matching key: 'dmc:finger-turn_hard' and 'finger-turn_hard' -> 'fingerturnhard',
    'atari:BankHeist' and 'bankheist' -> 'bankheist'; other prefixes stay ('gym:pendulumv1')."""
    return re.sub(r"[^a-z0-9:]", "", re.sub(r"^(dmc|atari):", "", task).lower())


def setting(name: str, given: str | None = None) -> Setting:
    """The catalogue entry; `given`: how the user wrote it, for the error."""
    if name not in CATALOGUE:
        raise ReportError(f"{given or '--reference ' + name}: unknown reference; known: "
                          f"{', '.join(CATALOGUE)}")
    return CATALOGUE[name]


def check(name: str, steps: int | None = None) -> Setting:
    """The setting `name`, if it exists and has `steps` (None: any)."""
    s = setting(name)
    choose_step([(name, load(s)[0])], [], steps)
    return s


def load(s: Setting) -> tuple[dict[str, dict[int, list[float]]], list[str]]:
    """({task id as ours, 'atari:BankHeist' / 'dmc:cheetah-run': {step: per-run scores}}, notes).
    A DMC run without an evaluation at a checkpoint counts there when its last one is less than an
    evaluation interval before it (DrQ cartpole-swingup: 480k for 500k)."""
    with open(DATA / s.file, newline="") as f:
        rows = list(csv.DictReader(f))
    table: dict = defaultdict(lambda: defaultdict(list))
    if s.atari:
        games = {task_key(g): g for g in GAMES}
        for r in rows:
            if r["game"] in games:
                table[f"atari:{games[r['game']]}"][ATARI_STEPS].append(float(r["GameScoreNormalized"]))
        other = len({r["game"] for r in rows} - set(games))
        return table, [f"{s.name}: {other} games of its file are outside Atari 100k, not used"]
    curves: dict = defaultdict(dict)
    for r in rows:
        if r["setting"] == s.column:
            curves[(r["task"], int(r["seed"]))][int(r["env_steps"])] = float(r["return"])
    notes = set()
    for (task, _), curve in sorted(curves.items()):
        every, last = EVAL_EVERY * (DRQ_ACTION_REPEAT.get(task, 2) if s.pixels else 1), max(curve)
        for step in CHECKPOINTS:
            at = step if step in curve else last if step - every < last < step else None
            if at is not None:
                table[f"dmc:{task}"][step].append(curve[at])
            if at not in (None, step):
                notes.add(f"{s.name} dmc:{task}: the last evaluation, at {at} env steps (one every "
                          f"{every}), stands for {step}")
    return table, sorted(notes)


def steps_of(table: dict) -> list[int]:
    return sorted({step for by_step in table.values() for step in by_step})


def catalogue_text() -> str:
    """The catalogue as printed by --list-references."""
    lines = []
    for s in CATALOGUE.values():
        steps = ", ".join(map(str, steps_of(load(s)[0])))
        lines.append(f"{s.name}: {s.paper}. {s.about}; {s.runs}; {s.score} at {steps} {s.unit}")
    return "\n".join(lines)


def _bootstrap(arrays: list[np.ndarray], func, reps: int, seed: int):
    """rliable's stratified bootstrap of per-task [runs, 1] arrays (resampled independently, so
    run counts may differ). That bootstrap draws from numpy's global generator: seeded here, and
    its state restored."""
    from rliable import library  # imported here: rliable is slow to import
    state = np.random.get_state()
    np.random.seed(seed)
    try:
        with warnings.catch_warnings():  # arch < 8 warns that rliable's random_state is deprecated
            warnings.simplefilter("ignore", FutureWarning)
            points, intervals = library.get_interval_estimates(
                {"s": arrays}, func, reps=reps, random_state=np.random.RandomState(seed))
    finally:
        np.random.set_state(state)
    return [(float(p), float(lo), float(hi)) for p, lo, hi in zip(points["s"], *intervals["s"])]


def improvement(*arrays: np.ndarray) -> float:
    """P(X > Y) + P(X = Y) / 2 per task, averaged: rliable's probability_of_improvement (its
    Mann-Whitney U / (n_x n_y)) for arrays x_1..x_T, y_1..y_T, vectorised for the bootstrap."""
    half = len(arrays) // 2
    return float(np.mean([np.mean(x > y.T) + 0.5 * np.mean(x == y.T)
                          for x, y in zip(arrays[:half], arrays[half:])]))


def compare_scores(ours: list, published: list, reps: int, seed: int = 0, gap: bool = False) -> dict:
    """Per-task lists of per-run scores, same task order on both sides -> {"ours", "published":
    {metric: (point, low, high)}, "ours_tasks", "published_tasks": per-task (mean, low, high),
    "improvement": P(ours > published) (point, low, high)}."""
    from rliable import metrics

    def estimates(*tasks):
        pooled, means = np.concatenate(tasks), [float(t.mean()) for t in tasks]
        values = [metrics.aggregate_iqm(pooled), np.median(means), np.mean(means)]
        return np.array(values + ([metrics.aggregate_optimality_gap(pooled, 1)] if gap else []) + means)

    x, y = ([np.asarray(t, dtype=float).reshape(-1, 1) for t in side] for side in (ours, published))
    result, count = {}, 3 + gap
    for side, arrays in (("ours", x), ("published", y)):
        values = _bootstrap(arrays, estimates, reps, seed)
        result[side] = {m: values[i] if i < count else None for i, m in enumerate(METRICS)}
        result[f"{side}_tasks"] = values[count:]
    point = float(np.mean([metrics.probability_of_improvement(a, b) for a, b in zip(x, y)]))
    _, low, high = _bootstrap(x + y, lambda *a: np.array([improvement(*a)]), reps, seed)[0]
    result["improvement"] = (point, low, high)
    return result


def choose_step(tables: list[tuple[str, dict]], tasks: list[str], steps: int | None) -> tuple[int, str]:
    """The step to compare at and how it was chosen. tables: (name, table) of the published sides;
    tasks: their ids of the tasks compared."""
    for name, table in tables:
        if steps is not None and steps not in steps_of(table):
            raise ReportError(f"--reference-steps {steps}: {name} has "
                              f"{', '.join(map(str, steps_of(table)))}")
    if steps is not None:
        return steps, "--reference-steps"
    allowed = sorted(set.intersection(*(set(steps_of(t)) for _, t in tables)))
    if not allowed:
        raise ReportError(f"{' and '.join(n for n, _ in tables)} have no step in common")

    def covered(step):
        return sum(all(step in t.get(task, {}) for _, t in tables) for task in tasks)

    step = max(allowed, key=lambda s: (covered(s) == len(tasks), covered(s), s))
    how = "every compared task has runs" if covered(step) == len(tasks) else "most tasks have runs"
    return step, f"the default: the largest step at which {how}; the data have " + ", ".join(map(str, allowed))


def _run_score(run, atari: bool) -> tuple[float | None, bool]:
    """(score, computed here from the raw return): the human-normalised score for Atari."""
    raw, value = float(run.summary["final_eval_return"]), run.summary.get("final_eval_human_normalized")
    if not atari:
        return raw, False
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value), False
    game = SCORES.get(run.task.split(":", 1)[-1])
    return (None if game is None else (raw - game.random) / (game.human - game.random)), True


def _sweep_notes(runs_by_task: dict, tasks: list, ref: Setting, step: int) -> list[str]:
    """Run lengths that differ from the step compared, and observation / action-repeat mismatches."""
    notes, obs = [], []
    for task in tasks:
        runs = [(r, r.config.get("env.action_repeat") or 1) for r in runs_by_task[task]]
        lengths = sorted({r.summary["env_steps"] * repeat for r, repeat in runs
                          if isinstance(r.summary.get("env_steps"), int)})
        if lengths and lengths != [step]:
            notes.append(f"{task}: our runs ran {', '.join(map(str, lengths))} {ref.unit}"
                         f"{'' if ref.atari else ' (agent steps x action repeat)'}, {ref.name} is at {step}")
        want, repeats = DRQ_ACTION_REPEAT.get(task.split(":", 1)[-1], 2), sorted({a for _, a in runs})
        if ref.pixels and repeats != [want]:
            notes.append(f"{task}: our action repeat {', '.join(map(str, repeats))}, {ref.name} {want}")
        if not ref.atari and any(bool(r.config.get("env.pixels")) != ref.pixels for r, _ in runs):
            obs.append(task)
    if obs:
        notes.append(f"runs of {', '.join(obs)} are from {'states' if ref.pixels else 'pixels'}, "
                     f"{ref.name} from {'pixels' if ref.pixels else 'states'}")
    return notes


def _fmt(estimate, digits: int) -> str:
    return "{:.{d}f} [{:.{d}f}, {:.{d}f}]".format(*estimate, d=digits)


def _block_text(block: dict, left: str, right: str, digits: int) -> str:
    lines = [f"## {block['label']} vs {right}", ""]
    lines.append(f"{len(block['tasks'])} task(s) compared. Only {left} ({len(block['only_ours'])}): "
                 f"{', '.join(block['only_ours']) or '-'}. Only {right} "
                 f"({len(block['only_published'])}): {', '.join(block['only_published']) or '-'}.")
    lines += ["", f"| task | {left} runs | {left} mean [95% CI] | {right} runs | {right} mean [95% CI] |",
              "|---|---|---|---|---|"]
    for row in block["per_task"]:
        lines.append(f"| {row['task']} | {row['ours_runs']} | {_fmt(row['ours'], digits)} | "
                     f"{row['published_runs']} | {_fmt(row['published'], digits)} |")
    lines += ["", f"| aggregate | {left} [95% CI] | {right} [95% CI] |", "|---|---|---|"]
    for m in METRICS:
        if block["ours"][m] is not None:
            lines.append(f"| {LABELS.get(m, m)} | {_fmt(block['ours'][m], digits)} | "
                         f"{_fmt(block['published'][m], digits)} |")
    lines += ["", f"P({left} > {right}) = {_fmt(block['improvement'], 3)}: the chance that a run of "
              f"{left} scores higher than a run of {right} on the same task, averaged over the tasks."]
    lines += [f"Note: {n}" for n in block["notes"]]
    return "\n".join(lines) + "\n"


def write_csv(blocks: list[dict], reference: str, step: int, path: Path) -> None:
    """One row per task (metric "mean") and per aggregate (task "all"); the probability of
    improvement in the "ours" columns."""
    sides = ("ours", "published")
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["config", "reference", "env_steps", "task", "metric"]
                        + [f"{s}{c}" for s in sides for c in ("_runs", "", "_ci_low", "_ci_high")])
        for b in blocks:
            head = [b["label"], reference, step]
            for row in b["per_task"]:
                writer.writerow(head + [row["task"], "mean"] + [
                    x for s in sides for x in (row[f"{s}_runs"], *map(repr, row[s]))])
            runs = [sum(r[f"{s}_runs"] for r in b["per_task"]) for s in sides]
            for m in METRICS:
                if b["ours"][m] is not None:
                    writer.writerow(head + ["all", m] + [x for s, n in zip(sides, runs)
                                                         for x in (n, *map(repr, b[s][m]))])
            writer.writerow(head + ["all", "probability_of_improvement", runs[0],
                                    *map(repr, b["improvement"]), runs[1], "", "", ""])


def plot_profiles(blocks: list[dict], left: str, right: str, path: Path, xlabel: str) -> None:
    """Per block: the fraction of runs scoring above tau (per task, then averaged over tasks:
    rliable's performance profile) for both sides."""
    from matplotlib.figure import Figure
    fig = Figure(figsize=(5.5 * len(blocks), 4.2), layout="constrained")
    for ax, b in zip(fig.subplots(1, len(blocks), squeeze=False)[0], blocks):
        pooled = np.concatenate([np.concatenate(b["scores"][s]) for s in ("ours", "published")])
        margin = 0.03 * (np.ptp(pooled) or 1.0)  # every run is above the first tau
        taus = np.linspace(pooled.min() - margin, pooled.max() + margin, 301)
        for side, name in (("ours", left), ("published", right)):
            profile = np.mean([(np.asarray(t)[:, None] > taus).mean(axis=0) for t in b["scores"][side]], 0)
            ax.step(taus, profile, where="post", label=f"{name} ({sum(map(len, b['scores'][side]))} runs)")
        ax.set(title=f"{b['label']} vs {right}", xlabel=xlabel, ylim=(0, 1.02),
               ylabel="fraction of runs with score > tau")
        ax.legend(fontsize="small")
    fig.savefig(path, dpi=100)


def _sources(source, out) -> tuple[str, str, Path, list, list, list]:
    """The left side: (name, description, output dir, [(block label, {task: its runs, or None for
    a published setting})], its published table as [(name, table)] or [], notes)."""
    if str(source).startswith("ref:"):
        other = setting(str(source)[4:], str(source))
        table, notes = load(other)
        return (other.name, f"published setting {other.name}", Path(out or "."),
                [(str(source), {t: None for t in table})], [(str(source), table)], notes)
    groups, _ = group_runs(find_runs(source))
    if not groups:
        raise ReportError(f"{source}: no finished run")
    sides = [(g.label, {t: [r for r in g.runs if r.task == t] for t in dict.fromkeys(r.task for r in g.runs)})
             for g in groups]
    where = f"{sum(len(g.runs) for g in groups)} runs under {source}, {len(groups)} configuration(s)"
    return "ours", where, Path(out if out is not None else source), sides, [], []


def _block(label: str, by_task: dict, left: list, table: dict, ref: Setting, step: int) -> dict:
    """One configuration (or published setting) against `table` at `step`: tasks, scores, notes."""
    published_key = {task_key(t): t for t in table}
    mine = {task_key(t) for t in by_task}
    block = {"label": label, "only_ours": [t for t in by_task if task_key(t) not in published_key],
             "only_published": [t for t in table if task_key(t) not in mine],
             "tasks": [], "notes": [], "scores": {"ours": [], "published": []}}
    for task in (t for t in by_task if task_key(t) in published_key):
        published = table[published_key[task_key(task)]].get(step, [])
        if left:  # a published setting
            ours = left[0][1][task].get(step, [])
        else:
            scored = [_run_score(r, ref.atari) for r in by_task[task]]
            ours = [score for score, _ in scored if score is not None]
            if any(computed for _, computed in scored):
                block["notes"].append(f"{task}: human-normalised scores computed from raw returns "
                                      f"with the random / human scores of envs/atari_games.py")
        if not ours or not published:
            block["notes"].append(f"{task}: left out, no runs at {step} {ref.unit}")
            continue
        block["tasks"].append(task)
        block["scores"]["ours"].append(ours)
        block["scores"]["published"].append(published)
    if not left:
        block["notes"] += _sweep_notes(by_task, block["tasks"], ref, step)
    elif CATALOGUE[label[4:]].pixels != ref.pixels:
        block["notes"].append(f"{label[4:]} and {ref.name} differ in observations (pixels vs states)")
    return block


def reference_report(source, name: str, out=None, steps: int | None = None, reps: int = 2000,
                     seed: int = 0) -> dict:
    """Compare `source` (a sweep directory, or "ref:NAME") with the published setting `name`;
    write reference_<name>.md / .csv / .png to `out` (default: the sweep directory, or the current
    directory for a published source) and return {"blocks", "step", "notes", "text", "paths"}."""
    ref = check(name, steps)
    table, notes = load(ref)
    left, where, out, sides, left_table, left_notes = _sources(source, out)
    notes = left_notes + notes
    keys = {task_key(t): t for t in table}
    ours = list(dict.fromkeys(t for _, by_task in sides for t in by_task))
    common = list(dict.fromkeys(keys[task_key(t)] for t in ours if task_key(t) in keys))
    if not common:
        raise ReportError(f"no task in common: {left} has {', '.join(ours)}; {name} has {', '.join(table)}")
    step, how = choose_step(left_table + [(name, table)], common, steps)
    blocks = []
    for label, by_task in sides:
        block = _block(label, by_task, left_table, table, ref, step)
        if block["tasks"]:
            blocks.append(block)
        else:
            notes.append(f"{label}: no task in common with runs at {step} {ref.unit}, left out")
    if not blocks:
        raise ReportError(f"no task in common with runs at {step} {ref.unit}")
    for b in blocks:
        b.update(compare_scores(b["scores"]["ours"], b["scores"]["published"], reps, seed, ref.atari))
        b["per_task"] = [{"task": t, "ours_runs": len(o), "published_runs": len(p), "ours": om,
                          "published": pm} for t, o, p, om, pm in zip(
            b["tasks"], b["scores"]["ours"], b["scores"]["published"], b["ours_tasks"], b["published_tasks"])]
    text = (f"Published: {name}, {ref.paper}: {ref.about}; {ref.runs}. Compared: {where}.\n"
            f"Final {ref.score} at {step} {ref.unit} ({how}). Per-task means with 95% bootstrap CIs; "
            f"IQM, median and mean (of task means){', optimality gap' if ref.atari else ''} with 95% "
            f"stratified-bootstrap CIs (rliable), {reps} reps.\n"
            + "".join(f"Note: {n}\n" for n in notes) + "\n"
            + "\n".join(_block_text(b, left, name, 3 if ref.atari else 1) for b in blocks))
    out.mkdir(parents=True, exist_ok=True)
    paths = {k: out / f"reference_{name}.{k}" for k in ("md", "csv", "png")}
    write_csv(blocks, name, step, paths["csv"])
    plot_profiles(blocks, left, name, paths["png"], f"{ref.score} at {step} {ref.unit}")
    paths["md"].write_text(f"# Comparison with published results: {name}\n\n{text}\n"
                           f"![score distributions]({paths['png'].name})\n")
    return {"blocks": blocks, "step": step, "notes": notes, "text": text, "paths": paths}
