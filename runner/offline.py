"""The offline part of a run (offline-to-online fine-tuning, `offline.*` in the config):
the dataset mixed into the replay buffer, a warm start from a pre-trained agent, and the
offline-only pre-training updates that precede the first env step."""
from __future__ import annotations

from pathlib import Path

import torch

from replay import RewardTransform, load_offline


class WarmStartError(ValueError):
    """`offline.init_from` does not hold an agent this config can continue from."""


def reward_transform(offline_cfg: dict) -> RewardTransform:
    return RewardTransform(offline_cfg["reward_scale"], offline_cfg["reward_shift"])


def attach_dataset(buffer, offline_cfg: dict, env, env_id: str, device, seed: int):
    """The run's buffer with the dataset as its offline part (or `buffer` when there is none)."""
    if not offline_cfg["dataset"]:
        return buffer
    data = load_offline(offline_cfg["dataset"], env.observation_space, env.action_space,
                        device=device, reward_transform=reward_transform(offline_cfg),
                        env_name=env_id)
    return buffer.with_offline(data, offline_cfg["fraction"], seed=seed)


def load_pretrained(agent, source) -> Path:
    """Load weights and optimizer state from an `agent.pt` (or a run directory holding one)
    into `agent`, refusing an agent of another kind or with other network shapes."""
    path = Path(source)
    if path.is_dir():
        path = path / "agent.pt"
    if not path.is_file():
        raise WarmStartError(f"offline.init_from = {source}: no agent file at {path} (give an "
                             "agent.pt written by train.py, or its run directory)")
    state = torch.load(path, map_location=agent.device, weights_only=False)
    kind = type(agent).__name__
    if state.get("agent") != kind:
        raise WarmStartError(f"offline.init_from = {path}: holds a '{state.get('agent')}' agent, "
                             f"this config trains '{kind}'")
    try:  # hyperparameters may differ (lr, tau, ...); the networks' shapes may not
        agent.load_training_state(state)
    except (RuntimeError, KeyError, ValueError) as err:
        diffs = [f"{k}: {state['hparams'].get(k)!r} in the file, {v!r} now"
                 for k, v in agent.hparams.items() if state["hparams"].get(k) != v]
        raise WarmStartError(f"offline.init_from = {path}: its networks do not fit this agent "
                             f"({'; '.join(diffs) or err})") from err
    return path
