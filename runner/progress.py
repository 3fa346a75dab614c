"""The run's time estimate (README "Progress and time estimates").

tqdm's own estimate divides the steps left by the recent step rate, which is wrong for most of a
run: the first `learning_starts` env steps take random actions and make no update (a DMC run's
first 10k steps go by in seconds), evaluations stop the step count for minutes (Atari's final
100 games), and the rest runs `replay_ratio` updates per step. `RunClock` times each kind of work
separately and adds up what is left of each:

    left = random steps left x t_random + learning steps left x t_learning + evaluations left x t_eval

where each t is the mean wall time per unit measured so far in this process. Before the first
learning steps are timed the estimate is unknown (None): nothing can be said about the updates.
"""
from __future__ import annotations

import math


class RunClock:
    """Per-phase timing of a run from env step `start` (a resumed run starts later) to `total`."""

    def __init__(self, total: int, learning_starts: int, start: int = 0, eval_every: int = 0):
        self.total, self.learning_starts, self.eval_every = total, learning_starts, eval_every
        self.seconds = {"random": 0.0, "learning": 0.0, "eval": 0.0}
        self.counts = {"random": 0, "learning": 0, "eval": 0}
        self.start = start

    def add(self, phase: str, seconds: float, count: int = 1) -> None:
        """`count` units of `phase` (an env step of the random or learning phase, or an
        evaluation) took `seconds` in all."""
        self.seconds[phase] += seconds
        self.counts[phase] += count

    def per_unit(self, phase: str) -> float | None:
        n = self.counts[phase]
        return self.seconds[phase] / n if n else None

    def evaluations_left(self, env_steps: int) -> int:
        """Evaluations still to come after `env_steps`: one every eval_every steps and the final one."""
        if not self.eval_every:
            return 1 if env_steps < self.total else 0
        periodic = self.total // self.eval_every - env_steps // self.eval_every
        final = 0 if self.total % self.eval_every == 0 else 1
        return periodic + (final if env_steps < self.total else 0)

    def left(self, env_steps: int) -> float | None:
        """Seconds left from `env_steps`, or None while the learning phase is untimed."""
        t_learning = self.per_unit("learning")
        if t_learning is None:
            return None
        random_left = max(0, min(self.learning_starts - 1, self.total) - env_steps)
        learning_left = self.total - max(env_steps, self.learning_starts - 1)
        t_random = self.per_unit("random") or 0.0
        t_eval = self.per_unit("eval") or 0.0
        return (random_left * t_random + max(0, learning_left) * t_learning
                + self.evaluations_left(env_steps) * t_eval)


def duration(seconds: float | None) -> str:
    """'2 d 3 h', '3 h 20 min', '4 min 05 s', '12 s', '0.4 s'; '?' when unknown."""
    if seconds is None or not math.isfinite(seconds):
        return "?"
    if seconds < 10:
        return f"{seconds:.1f} s"
    s = int(round(seconds))
    days, s = divmod(s, 86400)
    hours, s = divmod(s, 3600)
    minutes, s = divmod(s, 60)
    if days:
        return f"{days} d {hours} h"
    if hours:
        return f"{hours} h {minutes:02d} min"
    if minutes:
        return f"{minutes} min {s:02d} s"
    return f"{s} s"


LONG_RUN_S = 86400.0  # a day: past it the estimate comes with a warning


def estimate_message(clock: RunClock, env_steps: int, device: str, cuda_available: bool) -> str:
    """The one line printed once the first learning steps are timed, with a warning past a day."""
    left, t_learning, t_eval = clock.left(env_steps), clock.per_unit("learning"), clock.per_unit("eval")
    line = f"time estimate: {duration(left)} left ({1 / t_learning:.1f} env steps/s with updates"
    line += ")" if t_eval is None else f", {duration(t_eval)} per evaluation)"
    if left is not None and left > LONG_RUN_S:
        gpu = ("device=cuda runs it on the GPU here" if cuda_available and device != "cuda"
               else "on a machine with a GPU, device=cuda" if device != "cuda" else
               "lower train.total_steps or agent.replay_ratio to shorten it")
        line += f"\nwarning: this run would take more than a day on {device}; {gpu}"
    return line
