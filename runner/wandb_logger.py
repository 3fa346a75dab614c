"""Weights & Biases beside TensorBoard (`logger.wandb=true`): the config, every scalar the run
logs (same keys, x-axis `env_steps`), evaluation videos, and at the end the summary with the
plasticity events as a table. wandb is imported only here, only when enabled.

The W&B run id is kept in `<run dir>/wandb_id`: a resumed run continues the same W&B run (the
steps between its last checkpoint and the interruption are then logged twice; TensorBoard purges
them instead). Files go to `<run dir>/wandb/` unless WANDB_DIR is set. Nothing here draws from
the global random generators; `init` and `finish` run with them saved and restored anyway, so
that exact resume never depends on what the wandb version does."""
from __future__ import annotations

import json
import os
import random
import secrets
import string
from contextlib import contextmanager
from pathlib import Path

from agents.serialization import atomic_write_text

INSTALL = 'pip install "plasticrl[wandb]"'
ID_FILE = "wandb_id"
STEP = "env_steps"  # the x-axis of every logged key (TensorBoard's step)
MODES = ("online", "offline", "disabled")


def wandb_missing() -> str | None:
    """None if wandb imports, else why it does not, with the command that installs it."""
    try:
        import wandb  # noqa: F401
    except ImportError as err:
        return f"logger.wandb = true needs the wandb package ({err}); {INSTALL}"
    return None


def new_run_id() -> str:
    """8 random lowercase letters and digits, from the OS (no global random state is used)."""
    return "".join(secrets.choice(string.ascii_lowercase + string.digits) for _ in range(8))


@contextmanager
def preserved_rng():
    """Run the body with Python's, NumPy's and torch's global random states restored after."""
    from runner.seeding import rng_state, set_rng_state

    python, state = random.getstate(), rng_state()
    try:
        yield
    finally:
        random.setstate(python)
        set_rng_state(state)


class WandbRun:
    """One W&B run for one run directory; `options` is the config's `logger` section."""

    def __init__(self, run_dir, config: dict, options: dict):
        problem = wandb_missing()
        if problem:
            raise ImportError(problem)
        import wandb

        self.wandb, run_dir = wandb, Path(run_dir)
        id_path = run_dir / ID_FILE
        run_id = id_path.read_text().strip() if id_path.is_file() else new_run_id()
        atomic_write_text(run_id + "\n", id_path)  # before init: a crash in it still resumes
        with preserved_rng():
            self.run = wandb.init(
                id=run_id, resume="allow", reinit="create_new", name=run_dir.name,
                project=options.get("wandb_project"), entity=options.get("wandb_entity"),
                group=options.get("wandb_group"), mode=options.get("wandb_mode"),
                dir=os.environ.get("WANDB_DIR") or str(run_dir), config=config)
        self.run.define_metric(STEP)
        self.run.define_metric("*", step_metric=STEP)

    def log(self, values: dict, step: int) -> None:
        """Plain numbers by key, at env step `step`."""
        self.run.log({**values, STEP: step})

    def video(self, tag: str, path, step: int) -> None:
        """An mp4 already written (runner/video.py), at env step `step`."""
        self.log({tag: self.wandb.Video(str(path), format="mp4")}, step)

    def summary(self, summary: dict) -> None:
        """summary.json's numbers and names into the run summary; its plasticity events as the
        table `plasticity/events` (one row per event)."""
        self.run.summary.update({k: v for k, v in summary.items()
                                 if v is not None and not isinstance(v, (list, dict))})
        events = summary.get("plasticity_events") or []
        columns = list(dict.fromkeys(k for event in events for k in event))
        rows = [[_cell(event.get(c)) for c in columns] for event in events]
        if rows:
            self.log({"plasticity/events": self.wandb.Table(columns=columns, data=rows)},
                     summary.get("env_steps", 0))

    def finish(self, failed: bool = False) -> None:
        with preserved_rng():
            self.run.finish(exit_code=1 if failed else 0)


def _cell(value):
    """A table cell: lists and mappings (an event's groups) as JSON text."""
    return json.dumps(value) if isinstance(value, (list, dict)) else value
