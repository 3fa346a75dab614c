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


def run_summary(cfg: dict, counters: dict, eval_history: list, events: list) -> dict:
    """summary.json of a run: what it trained, how fast, its evaluations and plasticity events."""
    c = counters
    wall = max(c["wall_time"], 1e-9)
    last = eval_history[-1] if eval_history else None
    return {"agent": cfg["agent"]["name"], "env": cfg["env"]["id"],
            "seed": cfg["seed"], "env_steps": c["env_steps"], "updates": c["updates"],
            "episodes": c["episodes"], "wall_time_s": c["wall_time"],
            "env_steps_per_s": c["env_steps"] / wall, "updates_per_s": c["updates"] / wall,
            "final_eval_return": last["return_mean"] if last else None,
            "final_eval_human_normalized": last.get("human_normalized") if last else None,
            "eval": eval_history, "plasticity": cfg["plasticity"]["name"],
            "plasticity_events": events}
