"""The training loop's state beside the counters: where it is in the env (`Episode`) and the
run's total budget (`run_budgets`, for the scheduler's no_reset_within)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass
class Episode:
    """Where the loop is in the env: the observation to act on, the game's return so far, and
    whether an episode is under way (a checkpoint then saves the env's state with it)."""
    obs: Any
    ret: float = 0.0
    running: bool = False

    def as_loop(self) -> tuple:
        """(obs, return, running): what a mid-episode checkpoint stores as `loop`."""
        return self.obs, self.ret, self.running


def run_budgets(cfg: dict) -> dict:
    """The run's total env steps and gradient updates (the scheduler's `no_reset_within`): one
    update per env step and replay ratio from learning_starts on, plus heavy priming and
    offline pre-training."""
    t = cfg["train"]
    online = cfg["agent"]["replay_ratio"] * max(0, t["total_steps"] - t["learning_starts"] + 1)
    return {"env_steps": t["total_steps"],
            "updates": online + t["priming_updates"] + cfg["offline"]["pretrain_updates"]}
