"""The offline part of a run (offline-to-online fine-tuning, `offline.*` in the config):
the dataset mixed into the replay buffer, a warm start from a pre-trained agent, and the
offline-only pre-training updates that precede the first env step. Rewards of both parts go
through one transform: `offline.reward_normalization` (replay/datasets.py), then
`offline.reward_scale` and `offline.reward_shift`."""
from __future__ import annotations

from pathlib import Path

import torch

from replay import OfflineData, RewardTransform, load_offline


class WarmStartError(ValueError):
    """`offline.init_from` does not hold an agent this config can continue from."""


def reward_normalization(offline_cfg: dict) -> str:
    return offline_cfg.get("reward_normalization", "none")  # absent in configs older than the key


def reward_transform(offline_cfg: dict, data: OfflineData | None = None) -> RewardTransform:
    """The transform of online rewards: the loaded dataset's own (`data`, from `attach_offline`),
    so both parts of the buffer share one scale, else `offline.reward_scale`/`reward_shift`.

    `offline.reward_normalization=returns_range` scales online rewards by the dataset's
    1000 / (R_max - R_min) too. The reference (ikostrikov/implicit_q_learning train_finetune.py)
    normalizes only the dataset and inserts online rewards unscaled; we keep one scale per buffer
    (replay/reward.py), a choice its paper never meets: its fine-tuning runs (AntMaze, Adroit)
    do not normalize."""
    if data is not None:
        return data.reward_transform
    if reward_normalization(offline_cfg) != "none":
        raise ValueError(f"offline.reward_normalization = {reward_normalization(offline_cfg)!r}: "
                         "the online scale comes from the dataset; pass the OfflineData that "
                         "attach_offline returns (reward_transform(offline_cfg, data))")
    return RewardTransform(offline_cfg["reward_scale"], offline_cfg["reward_shift"])


def attach_offline(buffer, offline_cfg: dict, env, env_id: str, device, seed: int):
    """(the run's buffer with the dataset as its offline part, the loaded `OfflineData`), or
    (`buffer`, None) when there is no dataset."""
    if not offline_cfg["dataset"]:
        return buffer, None
    base = RewardTransform(offline_cfg["reward_scale"], offline_cfg["reward_shift"])
    data = load_offline(offline_cfg["dataset"], env.observation_space, env.action_space,
                        device=device, reward_transform=base, env_name=env_id,
                        reward_normalization=reward_normalization(offline_cfg))
    return buffer.with_offline(data, offline_cfg["fraction"], seed=seed), data


def attach_dataset(buffer, offline_cfg: dict, env, env_id: str, device, seed: int):
    """The run's buffer with the dataset as its offline part (or `buffer` when there is none)."""
    return attach_offline(buffer, offline_cfg, env, env_id, device, seed)[0]


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
