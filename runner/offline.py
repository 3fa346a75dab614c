"""The offline part of a run (offline-to-online fine-tuning, `offline.*` in the config):
the dataset mixed into the replay buffer, a warm start from a pre-trained agent, and the
offline-only pre-training updates that precede the first env step. Rewards of both parts go
through one transform: `offline.reward_normalization` (replay/datasets.py), then
`offline.reward_scale` and `offline.reward_shift`."""
from __future__ import annotations

from pathlib import Path

import torch

from replay import OfflineData, RewardTransform, load_offline
from runner.checkpoint import CHECKPOINT_NAME
from runner.validate_common import brief

AGENT_FILE = "agent.pt"


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


def read_agent_file(source, expected: str | None = None, device="cpu", peek: bool = False):
    """(path, contents) of the agent.pt `source` names (the file or its run directory), else a
    WarmStartError saying what is there instead: nothing, an unfinished run, a truncated or
    corrupt file, a run checkpoint, another kind of file, an agent of another kind than
    `expected` (a class name). `peek`: map the tensors instead of reading them (a quick check)."""
    given = f"offline.init_from = {brief(str(source))}"
    path = Path(source)
    if path.is_dir():
        if not (path / AGENT_FILE).is_file():
            unfinished = (path / CHECKPOINT_NAME).is_file()
            raise WarmStartError(
                f"{given}: no {AGENT_FILE} in that directory"
                + (f" (it holds a {CHECKPOINT_NAME}: {AGENT_FILE} is written when a run finishes; "
                   "resume the run to its end, or give another agent.pt)" if unfinished else
                   " (give an agent.pt written by train.py, or its run directory)"))
        path = path / AGENT_FILE
    elif not path.exists():
        raise WarmStartError(f"{given}: no such file or directory (give an agent.pt written by "
                             "train.py, or its run directory)")
    if path.stat().st_size == 0:
        raise WarmStartError(f"{given}: {path} is empty (0 bytes), a truncated write; give another agent.pt")
    state = _torch_load(path, device, peek, given)
    if isinstance(state, dict) and "counters" in state and "replay" in state:
        raise WarmStartError(f"{given}: this is a run checkpoint, not an agent.pt; pass the run dir "
                             f"or its {AGENT_FILE}")
    if not (isinstance(state, dict) and isinstance(state.get("agent"), str)
            and isinstance(state.get("hparams"), dict) and "model" in state):
        held = (f"a dict with keys {brief(sorted(map(str, state))[:8])}" if isinstance(state, dict)
                else f"a {type(state).__name__}")
        raise WarmStartError(f"{given}: {path} is not an agent.pt written by train.py (it holds {held})")
    if expected is not None and state["agent"] != expected:
        raise WarmStartError(f"{given}: {path} holds a '{state['agent']}' agent, this config trains "
                             f"'{expected}'")
    return path, state


def _torch_load(path: Path, device, peek: bool, given: str):
    try:
        if peek:
            try:
                return torch.load(path, map_location="cpu", weights_only=False, mmap=True)
            except RuntimeError:
                pass  # not a zip-format file: mmap cannot map it; read it whole below
        return torch.load(path, map_location=device, weights_only=False)
    except Exception as exc:  # noqa: BLE001 - any unpickling failure means the same to the user
        first = (str(exc).strip().splitlines() or [""])[0][:160]
        raise WarmStartError(f"{given}: {path} cannot be read, it is truncated or not a file "
                             f"torch.save wrote ({type(exc).__name__}: {first})") from None


def load_pretrained(agent, source) -> Path:
    """Load weights and optimizer state from an `agent.pt` (or a run directory holding one)
    into `agent`, refusing an agent of another kind or with other network shapes."""
    path, state = read_agent_file(source, type(agent).__name__, agent.device)
    try:  # hyperparameters may differ (lr, tau, ...); the networks' shapes may not
        agent.load_training_state(state)
    except (RuntimeError, KeyError, ValueError) as err:
        diffs = [f"{k}: {brief(state['hparams'].get(k))} in the file, {brief(v)} now"
                 for k, v in agent.hparams.items() if state["hparams"].get(k) != v]
        raise WarmStartError(f"offline.init_from = {path}: its networks do not fit this agent "
                             f"({'; '.join(diffs) or str(err)[:300]})") from None
    return path
