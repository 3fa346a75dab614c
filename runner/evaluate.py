"""Deterministic evaluation: full episodes with the agent's greedy/mean action."""
from __future__ import annotations

import numpy as np
import torch

from runner.seeding import derived_seed

ACTING_STREAM = 3  # derived_seed(seed, ACTING_STREAM, round): the global RNG while evaluating


def evaluate(agent, env, episodes: int, seed: int, round_index: int, on_episode=None) -> list[float]:
    """Returns the undiscounted return of each episode. Reset seeds depend only on
    (seed, round_index, episode), and the draws an agent makes while acting (an evaluation
    epsilon) come from torch's global RNG seeded with (seed, round_index) inside a fork that is
    undone afterwards, so evaluation never touches the training RNG streams. `on_episode(k)` is
    called as episode k (1-based) starts (the progress bar's state)."""
    devices = [torch.cuda.current_device()] if torch.cuda.is_available() else []
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(derived_seed(seed, ACTING_STREAM, round_index))
        return _episodes(agent, env, episodes, seed, round_index, on_episode)


def _episodes(agent, env, episodes: int, seed: int, round_index: int, on_episode) -> list[float]:
    returns = []
    for episode in range(episodes):
        if on_episode is not None:
            on_episode(episode + 1)
        obs, _ = env.reset(seed=derived_seed(seed, 1, round_index, episode))
        done, total = False, 0.0
        while not done:
            obs, reward, terminated, truncated, _ = env.step(agent.act(obs, deterministic=True))
            total += float(reward)
            done = terminated or truncated
        returns.append(total)
    return returns


def summarize(returns: list[float]) -> dict:
    return {"return_mean": float(np.mean(returns)), "return_std": float(np.std(returns)),
            "returns": [float(r) for r in returns]}
