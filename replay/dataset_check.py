"""Check a Minari dataset directory before anything is loaded: `metadata.json` parses and
names its spaces, and (hdf5, minari's default format) `main_data.hdf5` opens and every episode
holds each field with consistent lengths (T actions, rewards, terminations, truncations and
T + 1 observations). Reads metadata and shapes only, no data. Each problem raises a
`DatasetError` naming the file and what is wrong with it."""
from __future__ import annotations

import json
from pathlib import Path

from replay.dataset_errors import DatasetError

STEP_FIELDS = ("actions", "rewards", "terminations", "truncations")  # T rows each
DATA_FORMATS = ("hdf5", "arrow")
_FIX = ("record it again (`python -m runner.collect --env <env id> --dataset-id <id>`) or "
        "restore it from a good copy")


def _corrupt(name: str, path: Path, problem: str) -> DatasetError:
    return DatasetError(f"offline dataset '{name}' is broken: {path}: {problem}; {_FIX}")


def _first_line(err: BaseException) -> str:
    text = str(err).strip().splitlines()
    return (text[0] if text else type(err).__name__)[:160]


def read_metadata(data_path: Path, name: str) -> dict:
    """The dataset's metadata.json, refused unless it is a JSON object with readable spaces."""
    from minari.serialization import deserialize_space

    path = Path(data_path) / "metadata.json"
    try:
        meta = json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise _corrupt(name, path, f"not valid JSON ({err.msg} at line {err.lineno})") from None
    except (OSError, UnicodeDecodeError) as err:
        raise _corrupt(name, path, f"unreadable ({_first_line(err)})") from None
    if not isinstance(meta, dict):
        raise _corrupt(name, path, f"holds a JSON {type(meta).__name__}, not an object")
    for key in ("observation_space", "action_space"):
        if key not in meta:
            raise _corrupt(name, path, f"has no '{key}'")
        try:
            deserialize_space(meta[key])
        except Exception as err:  # noqa: BLE001 - any failure means the same: no usable space
            raise _corrupt(name, path, f"its {key} is not a space minari can read "
                                       f"({type(err).__name__}: {_first_line(err)})") from None
    fmt = meta.get("data_format", "hdf5")
    if fmt not in DATA_FORMATS:
        raise _corrupt(name, path, f"data_format {fmt!r} is not one of {list(DATA_FORMATS)}")
    return meta


def check_dataset(data_path, name: str) -> dict:
    """Raise DatasetError if the dataset at `data_path` (its `data/` directory) is broken;
    return its metadata."""
    data_path = Path(data_path)
    meta = read_metadata(data_path, name)
    if meta.get("data_format", "hdf5") == "hdf5":
        _check_hdf5(data_path / "main_data.hdf5", name, meta)
    return meta


def _length(node) -> int | None:
    """Rows of a dataset, or of every dataset in a group (dict observations); None if they differ."""
    import h5py

    if isinstance(node, h5py.Dataset):
        return node.shape[0] if node.shape else None
    lengths = {_length(node[k]) for k in node}
    return lengths.pop() if len(lengths) == 1 else None


def _check_hdf5(path: Path, name: str, meta: dict) -> None:
    import h5py

    if not path.is_file():
        raise _corrupt(name, path.parent, "has metadata.json but no main_data.hdf5")
    try:
        handle = h5py.File(path, "r")
    except OSError as err:
        raise _corrupt(name, path, f"cannot be opened as HDF5, it is truncated or corrupt "
                                   f"({_first_line(err)})") from None
    with handle:
        try:
            episodes, steps = _check_episodes(handle, path, name)
        except (OSError, KeyError, RuntimeError) as err:  # a damaged object header or chunk index
            raise _corrupt(name, path, f"unreadable inside ({_first_line(err)}); it is truncated "
                                       "or corrupt") from None
    for key, found in (("total_episodes", episodes), ("total_steps", steps)):
        if key in meta and meta[key] != found:
            raise _corrupt(name, path, f"holds {found} {key[6:]}, its metadata.json says "
                                       f"{key} = {meta[key]!r}")


def _check_episodes(handle, path: Path, name: str) -> tuple[int, int]:
    episodes = [k for k in handle if k.startswith("episode_")]
    if not episodes:
        raise _corrupt(name, path, "holds no episode_<n> groups")
    steps = 0
    for ep in episodes:
        group = handle[ep]
        missing = [f for f in ("observations", *STEP_FIELDS) if f not in group]
        if missing:
            raise _corrupt(name, path, f"{ep} has no {missing}")
        lengths = {f: _length(group[f]) for f in ("observations", *STEP_FIELDS)}
        t = lengths["rewards"]
        expected = {"observations": None if t is None else t + 1, **{f: t for f in STEP_FIELDS}}
        wrong = {f: n for f, n in lengths.items() if n is None or n != expected[f]}
        if t is None or wrong:
            shown = ", ".join(f"{f} {n}" for f, n in lengths.items())
            raise _corrupt(name, path, f"{ep} has mismatched lengths ({shown}; expected T rows "
                                       "of actions, rewards, terminations and truncations and T + 1 "
                                       "observations)")
        steps += t
    return len(episodes), steps
