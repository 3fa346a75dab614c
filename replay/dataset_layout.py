"""Map a dataset's observations onto an env's flat layout by key (envs/obs_layout.py).

A flat env observation concatenates named parts in an order of its own: `DMCEnv` keeps
dm_control's order, while gymnasium (shimmy's dm_control envs, Minari's deserialised spaces,
``FlattenObservation``) sorts a Dict's keys. The same values in another order fit the same flat
size, so sizes alone would load walker's ``height`` into an ``orientations`` column. The rules:

- dict observations (a Dict space: Minari's ``DataCollector`` or shimmy on a dict-observation
  env) are concatenated in the env's key order;
- flat rows with a recorded layout (metadata ``plasticrl_obs_layout``, written by
  ``runner.collect``) have their columns permuted by key into the env's order;
- flat rows without one are taken as they are only where no order can differ: the env has one
  part, or the dataset was recorded by ``runner.collect`` in the same env id;
- anything else (keys missing, extra or of another size; flat rows of a multi-part env with no
  layout) is refused with a `DatasetMismatchError` that says how to fix the dataset.

When both sides have a single part their names are not compared (a Box is a Box). Without the
env's layout (no env id given) flat rows are taken as they are and a dict with several keys is
refused: there is no order to concatenate it in. Envs whose observations are not 1-D (pixels)
have no layout to map: their rows are only reshaped.
"""
from __future__ import annotations

from typing import Callable

import numpy as np
from gymnasium import spaces

from envs.obs_layout import ObsLayout, space_layout
from replay.dataset_errors import DatasetError, DatasetMismatchError
from replay.dataset_writer import METADATA_PREFIX
from replay.flatten import flatten_batch

LAYOUT_KEY = METADATA_PREFIX + "obs_layout"
ENV_ID_KEY = METADATA_PREFIX + "env_id"
_FIX = ("Fix: record the dataset with `python -m runner.collect --env <env id> --dataset-id <id>` "
        "(it stores the layout), record dict observations (Minari's DataCollector on the "
        "dict-observation env), or add the rows' order to its metadata.json as "
        f"\"{LAYOUT_KEY}\": [[key, [dims]], ...].")


def recorded_layout(meta: dict, name: str) -> ObsLayout | None:
    """The layout a dataset's metadata records, None if it records none."""
    if LAYOUT_KEY not in meta:
        return None
    try:
        return ObsLayout.from_json(meta[LAYOUT_KEY])
    except ValueError as err:
        raise DatasetError(f"offline dataset '{name}': metadata '{LAYOUT_KEY}' is not an "
                           f"observation layout ({err}); {_FIX}") from None


def _order(src: ObsLayout, env: ObsLayout, what: str, name: str, env_name: str) -> list[str]:
    """The keys of ``src`` in ``env``'s order, or DatasetMismatchError naming every difference."""
    if len(src.parts) == 1 and len(env.parts) == 1:
        if src.total == env.total:
            return src.keys
        problems = [f"observation: dataset {src.total} values, env {env.total}"]
    else:
        problems = [f"key '{k}' of the env is missing" for k in env.keys if k not in src.keys]
        problems += [f"key '{k}' is not one of the env's" for k in src.keys if k not in env.keys]
        problems += [f"key '{k}': dataset {src.size(k)} values, env {env.size(k)}"
                     for k in env.keys if k in src.keys and src.size(k) != env.size(k)]
        if not problems:
            return env.keys
    raise DatasetMismatchError(
        f"offline dataset '{name}' ({what}: {src.describe()}) cannot be mapped onto env "
        f"'{env_name}' ({env.describe()}) by key:\n  - " + "\n  - ".join(problems) + "\n" + _FIX)


def observation_mapper(name: str, meta: dict, ds_obs: spaces.Space, env_obs: spaces.Space,
                       env_layout: ObsLayout | None,
                       env_name: str | None) -> Callable[[object], np.ndarray]:
    """A function from one episode's observations (as Minari gives them) to env rows [N, D],
    or DatasetMismatchError / DatasetError (see the module docstring)."""
    shown = env_name or "the env"
    if len(env_obs.shape or ()) != 1:  # pixels: no named parts
        return lambda data: flatten_batch(ds_obs, data)
    if isinstance(ds_obs, spaces.Dict):
        src = space_layout(ds_obs)
        if env_layout is None:
            if len(src.parts) > 1:
                raise DatasetMismatchError(
                    f"offline dataset '{name}' holds dict observations ({src.describe()}) and "
                    f"the key order of {shown} is unknown; give the env id (env_name) or its "
                    "obs_layout so that the keys are concatenated in the env's order")
            return lambda data: flatten_batch(ds_obs, data)
        keys = _order(src, env_layout, "dict observations", name, shown)
        return lambda data: np.concatenate(
            [flatten_batch(ds_obs[k], data[k]) for k in keys], axis=1)
    src = recorded_layout(meta, name)
    flat = lambda data: flatten_batch(ds_obs, data)  # noqa: E731
    if src is None:
        same_env = env_name is not None and meta.get(ENV_ID_KEY) == env_name
        if env_layout is None or len(env_layout.parts) == 1 or same_env:
            return flat
        raise DatasetMismatchError(
            f"offline dataset '{name}' holds flat observations without a recorded layout, and "
            f"env '{shown}' concatenates several keys ({env_layout.describe()}): the dataset's "
            "column order cannot be known (gymnasium's FlattenObservation, for one, sorts the "
            "keys; our dmc: envs keep dm_control's order). " + _FIX)
    if src.total != spaces.flatdim(ds_obs):
        raise DatasetError(f"offline dataset '{name}': metadata '{LAYOUT_KEY}' describes "
                           f"{src.total} values ({src.describe()}), its observations hold "
                           f"{spaces.flatdim(ds_obs)}; {_FIX}")
    if env_layout is None:
        return flat
    keys = _order(src, env_layout, "recorded layout", name, shown)
    columns = src.columns()
    index = np.concatenate([columns[k] for k in keys])
    if np.array_equal(index, np.arange(src.total)):
        return flat
    return lambda data: flat(data)[:, index]
