"""Deterministic evaluation: full episodes with the agent's greedy/mean action."""
from __future__ import annotations

import numpy as np

from runner.seeding import derived_seed


def evaluate(agent, env, episodes: int, seed: int, round_index: int, on_episode=None) -> list[float]:
    """Returns the undiscounted return of each episode. Reset seeds depend only on
    (seed, round_index, episode), so evaluation never touches the training RNG streams.
    `on_episode(k)` is called as episode k (1-based) starts (the progress bar's state)."""
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
