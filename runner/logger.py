"""Run output: TensorBoard scalars, a tqdm progress bar, the final summary.json and TensorBoard
HParams (runner/hparams.py); with `logger.wandb=true` the same to Weights & Biases
(runner/wandb_logger.py)."""
from __future__ import annotations

import json
import sys

import torch
from torch.utils.tensorboard import SummaryWriter
from tqdm import tqdm

from agents.serialization import atomic_write_text
from runner.hparams import config_hparams, final_metrics, write_hparams


class RunLogger:
    """Scalars go to `<run_dir>/tb` under train/, eval/ and time/, by env step. On resume, events
    after the checkpoint's step are purged so curves do not fold back on themselves. `config`
    (the run's) is what the HParams and W&B record; without it neither is written."""

    def __init__(self, run_dir, total_steps: int, start_step: int = 0, progress: bool = True,
                 config: dict | None = None, label: str | None = None):
        self.run_dir, self.config = run_dir, config
        options = (config or {}).get("logger") or {}
        self.wandb = None
        if options.get("wandb") and options.get("wandb_mode") != "disabled":
            # first: if W&B cannot start, nothing else was opened
            from runner.wandb_logger import WandbRun
            self.wandb = WandbRun(run_dir, config, options)
        self.writer = SummaryWriter(str(run_dir / "tb"), purge_step=start_step or None)
        # tqdm's own time left assumes every step costs the same; the trainer's estimate
        # (runner/progress.py, the `left` field) counts random steps, updates and evaluations
        self.bar = tqdm(total=total_steps, initial=start_step, disable=not progress, desc=label,
                        unit="step", dynamic_ncols=True, mininterval=1.0,
                        bar_format="{l_bar}{bar}| {n_fmt}/{total_fmt} [{elapsed}, {rate_fmt}{postfix}]")
        self.postfix: dict[str, str] = {}

    def scalars(self, prefix: str, values: dict, step: int) -> None:
        """Tensors are read here, and only here: this is the one host sync of logging."""
        values = {f"{prefix}/{key}": value.item() if isinstance(value, torch.Tensor) else value
                  for key, value in values.items()}
        for tag, value in values.items():
            self.writer.add_scalar(tag, value, step)
        if self.wandb is not None and values:
            self.wandb.log(values, step)

    def video(self, tag: str, path, step: int) -> None:
        """An evaluation video already written to `path` (and to TensorBoard: runner/video.py)."""
        if self.wandb is not None:
            self.wandb.video(tag, path, step)

    def progress(self, steps: int, **postfix) -> None:
        self.bar.update(steps)
        if postfix:
            self.postfix.update({k: f"{v:.4g}" if isinstance(v, float) else str(v)
                                 for k, v in postfix.items()})
            self.bar.set_postfix(self.postfix, refresh=False)

    def status(self, text: str | None) -> None:
        """Show what the run is doing while the step count stands still (e.g. evaluating 3/10
        episodes), redrawn now; None clears it."""
        if text is None:
            self.postfix.pop("state", None)
        else:
            self.postfix["state"] = text
        self.bar.set_postfix(self.postfix, refresh=False)
        self.bar.refresh()

    def write(self, line: str) -> None:
        """A message line that does not break the bar (stderr, like the bar)."""
        self.bar.write(line, file=sys.stderr)

    def refresh(self) -> None:
        """Redraw the bar now (for long work that does not advance the step count)."""
        self.bar.refresh()

    def summary(self, summary: dict) -> None:
        """The end of the run: summary.json, the HParams, the W&B summary."""
        atomic_write_text(json.dumps(summary, indent=2) + "\n", self.run_dir / "summary.json")
        if self.config is not None:
            write_hparams(self.run_dir / "tb", config_hparams(self.config), final_metrics(summary),
                          summary["env_steps"])
        if self.wandb is not None:
            self.wandb.summary(summary)

    def close(self, failed: bool = False) -> None:
        """Flush and close everything; `failed`: the run stopped early (an error or a signal)."""
        self.bar.close()
        self.writer.close()
        if self.wandb is not None:
            self.wandb, run = None, self.wandb
            run.finish(failed)
