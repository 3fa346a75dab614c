"""Run output: TensorBoard scalars, a tqdm progress bar and the final summary.json."""
from __future__ import annotations

import json

import torch
from torch.utils.tensorboard import SummaryWriter
from tqdm import tqdm

from agents.serialization import atomic_write_text


class RunLogger:
    """Scalars go to `<run_dir>/tb` under train/, eval/ and time/. On resume, events after
    the checkpoint's step are purged so curves do not fold back on themselves."""

    def __init__(self, run_dir, total_steps: int, start_step: int = 0, progress: bool = True):
        self.run_dir = run_dir
        self.writer = SummaryWriter(str(run_dir / "tb"), purge_step=start_step or None)
        self.bar = tqdm(total=total_steps, initial=start_step, disable=not progress,
                        unit="step", dynamic_ncols=True, mininterval=1.0)
        self.postfix: dict[str, str] = {}

    def scalars(self, prefix: str, values: dict, step: int) -> None:
        """Tensors are read here, and only here: this is the one host sync of logging."""
        for key, value in values.items():
            if isinstance(value, torch.Tensor):
                value = value.item()
            self.writer.add_scalar(f"{prefix}/{key}", value, step)

    def progress(self, steps: int, **postfix) -> None:
        self.bar.update(steps)
        if postfix:
            self.postfix.update({k: f"{v:.4g}" if isinstance(v, float) else str(v)
                                 for k, v in postfix.items()})
            self.bar.set_postfix(self.postfix, refresh=False)

    def refresh(self) -> None:
        """Redraw the bar now (for long work that does not advance the step count)."""
        self.bar.refresh()

    def summary(self, summary: dict) -> None:
        atomic_write_text(json.dumps(summary, indent=2) + "\n", self.run_dir / "summary.json")

    def close(self) -> None:
        self.bar.close()
        self.writer.close()
