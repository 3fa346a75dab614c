"""One reward transform for offline and online transitions: r' = scale * r + shift.

AntMaze fine-tuning (RLPD, IQL) trains on r - 1: `RewardTransform(shift=-1.0)`. The same object
is applied to the dataset at load time and by the trainer to every online reward before
`buffer.add`, so both parts of a mixed buffer hold rewards on the same scale. The arithmetic is
float32 on both paths (one float32 multiply, one float32 add), so a reward reads the same whether
it came from the dataset or from the env.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class RewardTransform:
    scale: float = 1.0
    shift: float = 0.0

    @property
    def identity(self) -> bool:
        return self.scale == 1.0 and self.shift == 0.0

    def __call__(self, reward):
        """A float, or a numpy array of any shape -> float32 of the same shape."""
        r = np.asarray(reward, dtype=np.float32)
        out = r if self.identity else r * np.float32(self.scale) + np.float32(self.shift)
        return out if out.ndim else np.float32(out)

    def as_dict(self) -> dict:
        return {"scale": float(self.scale), "shift": float(self.shift)}
