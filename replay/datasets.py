"""Load a Minari dataset into a `TensorStorage`: the offline part of a mixed replay buffer.

`load_offline(source, env.observation_space, env.action_space)` where `source` is a dataset
directory (`<dir>` holding `data/`, or the `data/` directory itself) or a dataset id looked up
under `root` / $MINARI_DATASETS_PATH / ~/.minari/datasets (`minari.load_dataset`'s rule; nothing is
downloaded). Rows are made to look like our env's: observations flattened to float32 and mapped
onto the env's layout by key (replay/dataset_layout.py: dict observations and recorded layouts
are put in the env's key order, flat rows whose order cannot be known are refused), bounded Box
actions rescaled to [-1, 1]. Terminations and truncations are kept apart; an episode whose final
step is neither (e.g. cut by the recorder) gets that step marked truncated (bootstrap from its next
observation), so n-step returns never run from one episode into the next. A dataset that does
not fit the env is refused with `DatasetMismatchError`, and a broken one (unreadable metadata,
a truncated file, mismatched episode lengths, non-finite values) with `DatasetError`, both before
anything reaches the replay buffer (replay/dataset_check.py).

`reward_normalization="returns_range"` (IQL's MuJoCo locomotion setting, ikostrikov/
implicit_q_learning train_offline.py `normalize`) scales rewards by 1000 / (R_max - R_min), the
largest minus the smallest undiscounted episode return of the dataset's raw rewards. It composes
with the given transform as r' = scale * (1000 / (R_max - R_min)) * r + shift (normalization first);
the composed transform is `OfflineData.reward_transform`, for the online rewards as well.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from gymnasium import spaces

from envs.obs_layout import ObsLayout
from replay.dataset_check import check_dataset
from replay.dataset_layout import observation_mapper
from replay.dataset_errors import DatasetError, DatasetMismatchError
from replay.dataset_writer import METADATA_PREFIX, datasets_root
from replay.flatten import flat_dim, is_continuous, rescale_actions
from replay.reward import RewardTransform
from replay.storage import TensorStorage, transition_specs


REWARD_NORMALIZATIONS = ("none", "returns_range")
RETURNS_RANGE_TARGET = 1000.0  # train_offline.py: rewards /= (max - min return); rewards *= 1000


@dataclass
class OfflineData:
    """A loaded dataset: `storage` holds its transitions in episode order, one slot each."""
    storage: TensorStorage
    name: str  # the source as given, for messages
    path: str  # the resolved dataset directory
    episodes: int
    steps: int
    closed_by_loader: int  # episodes whose last step was neither terminated nor truncated
    reward_transform: RewardTransform  # applied to the stored rewards (normalization included)
    metadata: dict = field(default_factory=dict)  # minari's (spaces left out)
    return_range: tuple[float, float] | None = None  # (min, max) episode return, raw rewards


def resolve_dataset(source, root=None) -> Path:
    """The `data/` directory of a dataset given by path or by id; FileNotFoundError if none."""
    path = Path(source)
    for candidate in (path / "data", path):
        if (candidate / "metadata.json").is_file():
            return candidate
    by_id = datasets_root(root) / str(source) / "data"
    if (by_id / "metadata.json").is_file():
        return by_id
    raise FileNotFoundError(
        f"offline dataset '{source}' not found: it is neither a dataset directory nor a dataset id "
        f"under {datasets_root(root)} (root / $MINARI_DATASETS_PATH). Remote datasets are not "
        "downloaded; record one with `python -m runner.collect --env <env id> --dataset-id <id>` "
        "or copy it there.")


def _space_text(space) -> str:
    if isinstance(space, spaces.Box):
        return f"Box{tuple(space.shape)} {space.dtype}"
    if isinstance(space, spaces.Discrete):
        return f"Discrete({space.n})"
    return type(space).__name__


def check_spaces(name: str, metadata: dict, ds_obs, ds_action, env_obs, env_action,
                 env_name: str | None = None) -> None:
    """Raise DatasetMismatchError listing every way the dataset does not fit the env."""
    problems = []
    try:
        ds_flat = (flat_dim(ds_obs),)
    except TypeError:
        ds_flat = None
    env_flat = (int(np.prod(env_obs.shape)),)
    if ds_flat != env_flat:
        problems.append(f"observation: dataset {_space_text(ds_obs)} flattens to "
                        f"{ds_flat or 'nothing (unsupported space)'}, env has shape "
                        f"{tuple(env_obs.shape)}")
    if is_continuous(ds_action) != is_continuous(env_action):
        kind = {True: "continuous", False: "discrete"}
        problems.append(f"action kind: dataset {kind[is_continuous(ds_action)]} "
                        f"({_space_text(ds_action)}), env {kind[is_continuous(env_action)]} "
                        f"({_space_text(env_action)})")
    elif is_continuous(env_action) and tuple(ds_action.shape) != tuple(env_action.shape):
        problems.append(f"action: dataset shape {tuple(ds_action.shape)}, env shape "
                        f"{tuple(env_action.shape)}")
    elif isinstance(env_action, spaces.Discrete) and (
            not isinstance(ds_action, spaces.Discrete) or ds_action.n != env_action.n):
        problems.append(f"action: dataset {_space_text(ds_action)}, env {_space_text(env_action)}")
    if problems:
        recorded = (metadata.get(METADATA_PREFIX + "env_id") or metadata.get("env_spec_id")
                    or "unknown")
        raise DatasetMismatchError(
            f"offline dataset '{name}' does not match env '{env_name or 'the env'}':\n  - "
            + "\n  - ".join(problems)
            + f"\nThe dataset was recorded in env '{recorded}'. Fix: set the env to the one the "
            "dataset was recorded in, or record a dataset for this env with "
            "`python -m runner.collect --env <env id> --dataset-id <id>`.")


def _read_metadata(dataset) -> dict:
    meta = {k: v for k, v in dataset.storage.metadata.items()
            if k not in ("observation_space", "action_space")}
    if dataset.spec.env_spec is not None:
        meta["env_spec_id"] = dataset.spec.env_spec.id
    return meta


def returns_range_transform(returns, transform: RewardTransform, name: str) -> RewardTransform:
    """`transform` after the 1000 / (max - min episode return) scaling (train_offline.py
    `normalize`); ValueError when every episode has the same return."""
    low, high = float(np.min(returns)), float(np.max(returns))
    if not np.isfinite(high - low) or high - low <= 0.0:
        raise DatasetError(
            f"offline.reward_normalization = 'returns_range': dataset '{name}' has "
            f"{len(returns)} episode(s) whose returns span [{low!r}, {high!r}], no positive finite "
            "range to divide by; use offline.reward_normalization=none (and offline.reward_scale)")
    return RewardTransform(transform.scale * RETURNS_RANGE_TARGET / (high - low), transform.shift)


def env_layout(observation_space, env_name: str | None,
               given: ObsLayout | None = None) -> ObsLayout | None:
    """The env's observation layout: `given`, else that of the env id `env_name` (built for a
    moment), else None (unknown). Only 1-D observations have one."""
    shape = tuple(observation_space.shape or ())
    if given is not None:
        if len(shape) != 1 or given.total != shape[0]:
            raise ValueError(f"obs_layout describes {given.total} values ({given.describe()}), "
                             f"the env's observation space has shape {shape}")
        return given
    if len(shape) != 1 or not isinstance(env_name, str):
        return None
    from envs.obs_layout import env_id_layout
    from envs.registry import EnvIdError, check_env_id

    try:
        check_env_id(env_name)
    except EnvIdError:
        return None  # a name for messages only
    layout = env_id_layout(env_name)
    return layout if layout.total == shape[0] else None  # not the env that id builds


def load_offline(source, observation_space, action_space, *, device="cpu",
                 reward_transform: RewardTransform | None = None, root=None,
                 env_name: str | None = None, reward_normalization: str = "none",
                 obs_layout: ObsLayout | None = None) -> OfflineData:
    """Load every episode of a Minari dataset into a TensorStorage on `device`.

    `observation_space`/`action_space` are the env's (after our wrappers). `env_name`, the env
    id, names the env in messages and gives its observation layout (built for a moment) unless
    `obs_layout` (`envs.obs_layout.obs_layout(env)`) is given. Rewards are stored as
    `reward_transform(r)` (float32), after the `reward_normalization` scaling (see the module
    docstring).
    """
    from minari import MinariDataset

    if reward_normalization not in REWARD_NORMALIZATIONS:
        raise ValueError(f"offline.reward_normalization = {reward_normalization!r}: must be one "
                         f"of {list(REWARD_NORMALIZATIONS)}")

    data_path = resolve_dataset(source, root)
    check_dataset(data_path, str(source))
    try:
        dataset = MinariDataset(data_path)
        meta = _read_metadata(dataset)
    except Exception as err:  # noqa: BLE001 - what minari raises on a broken dataset varies
        raise DatasetError(f"offline dataset '{source}' ({data_path}) cannot be read by minari "
                           f"({type(err).__name__}: {str(err)[:160]})") from None
    ds_obs, ds_action = dataset.observation_space, dataset.action_space
    check_spaces(str(source), meta, ds_obs, ds_action, observation_space, action_space, env_name)
    to_rows = observation_mapper(str(source), meta, ds_obs, observation_space,
                                 env_layout(observation_space, env_name, obs_layout), env_name)
    transform = reward_transform or RewardTransform()

    parts, episodes, closed = _read_episodes(dataset, to_rows, ds_action, str(source))
    if not episodes:
        raise DatasetError(f"offline dataset '{source}' ({data_path.parent}) has no transitions")
    _check_finite(parts, str(source))

    returns = [float(np.sum(r, dtype=np.float64)) for r in parts["reward"]]
    if reward_normalization == "returns_range":
        transform = returns_range_transform(returns, transform, str(source))
    data = {k: np.concatenate(v) for k, v in parts.items()}
    data["reward"] = transform(data["reward"])
    total = len(data["reward"])
    obs_shape = tuple(observation_space.shape)
    for key in ("obs", "next_obs"):
        data[key] = data[key].reshape(total, *obs_shape)  # [N, D] -> [N, *env obs shape]
    discrete = isinstance(action_space, spaces.Discrete)
    if discrete:
        data["action"] = data["action"].reshape(total).astype(np.int64)
    specs = transition_specs(obs_shape, () if discrete else tuple(action_space.shape),
                             action_dtype=torch.int64 if discrete else torch.float32)
    storage = TensorStorage(total, specs, device)
    storage.add_batch(**data)
    return OfflineData(storage, str(source), str(data_path.parent), episodes, total, closed,
                       transform, meta, (min(returns), max(returns)))


def _read_episodes(dataset, to_rows, ds_action, name: str) -> tuple[dict, int, int]:
    """({field: [one array per episode]}, episodes, episodes closed by the loader)."""
    parts = {k: [] for k in ("obs", "action", "reward", "next_obs", "terminated", "truncated")}
    episodes = closed = 0
    try:
        for ep in dataset.iterate_episodes():
            steps = len(ep.rewards)
            if steps == 0:
                continue
            flat = to_rows(ep.observations)  # [T + 1, D], in the env's layout
            terminated = np.asarray(ep.terminations, dtype=bool).reshape(steps)
            truncated = np.asarray(ep.truncations, dtype=bool).reshape(steps).copy()
            if not (terminated[-1] or truncated[-1]):
                truncated[-1] = True  # the episode ends here all the same: bootstrap, never run on
                closed += 1
            parts["obs"].append(flat[:-1])
            parts["next_obs"].append(flat[1:])
            parts["action"].append(rescale_actions(ds_action, np.asarray(ep.actions)))
            parts["reward"].append(np.asarray(ep.rewards).reshape(steps))  # raw: transformed below
            parts["terminated"].append(terminated)
            parts["truncated"].append(truncated)
            episodes += 1
    except (ValueError, KeyError, OSError, TypeError) as err:  # e.g. lengths that do not fit
        raise DatasetError(f"offline dataset '{name}': episode {episodes} cannot be read "
                           f"({type(err).__name__}: {str(err)[:160]}); the dataset is broken") from None
    return parts, episodes, closed


def _check_finite(parts: dict, name: str) -> None:
    """Refuse inf / nan in observations, actions or rewards, naming the first episode with one."""
    for key in ("obs", "next_obs", "action", "reward"):
        for i, values in enumerate(parts[key]):
            if np.issubdtype(values.dtype, np.floating) and not np.isfinite(values).all():
                raise DatasetError(f"offline dataset '{name}': episode {i} has non-finite "
                                   f"(inf or nan) {key} values; fix or drop that episode")
