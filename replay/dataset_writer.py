"""Write episodes as a Minari dataset (`minari.create_dataset_from_buffers`; no jax needed).

A dataset lives at `<root>/<dataset_id>` (minari's layout: `<dir>/data/{metadata.json,
main_data.hdf5}`), root defaulting to `$MINARI_DATASETS_PATH`, else `~/.minari/datasets`. It is
written under a temporary root first and moved into place at the end, so an interrupted write
leaves no half dataset and `overwrite` replaces the old one only once the new one is complete.
"""
from __future__ import annotations

import contextlib
import os
import shutil
import uuid
import warnings
from pathlib import Path

METADATA_PREFIX = "plasticrl_"  # our extra metadata keys, e.g. plasticrl_env_id


def datasets_root(root=None) -> Path:
    """`root`, else $MINARI_DATASETS_PATH, else ~/.minari/datasets (minari's default)."""
    if root is not None:
        return Path(root).absolute()  # minari joins relative roots onto its own paths
    env = os.environ.get("MINARI_DATASETS_PATH")
    return Path(env).absolute() if env else Path.home() / ".minari" / "datasets"


def check_dataset_id(dataset_id: str) -> None:
    """Raise ValueError unless `dataset_id` is minari's `(namespace/)name-v<version>`."""
    from minari.dataset.minari_dataset import parse_dataset_id

    parse_dataset_id(dataset_id)


def dataset_dir(dataset_id: str, root=None) -> Path:
    return datasets_root(root) / dataset_id


def check_writable(dataset_id: str, root=None, overwrite: bool = False) -> Path:
    """The target directory; raises before any collection if it exists and `overwrite` is off."""
    check_dataset_id(dataset_id)
    target = dataset_dir(dataset_id, root)
    if target.exists() and not overwrite:
        raise FileExistsError(f"dataset '{dataset_id}' already exists at {target}; pass "
                              "--overwrite to replace it, or choose another id/version")
    if target.exists() and not (target / "data").is_dir():
        raise FileExistsError(f"{target} exists and is not a Minari dataset; refusing to replace it")
    return target


@contextlib.contextmanager
def _minari_root(path: Path):
    """minari resolves dataset ids under $MINARI_DATASETS_PATH: point it at `path` for a while."""
    old = os.environ.get("MINARI_DATASETS_PATH")
    os.environ["MINARI_DATASETS_PATH"] = str(path)
    try:
        yield
    finally:
        if old is None:
            os.environ.pop("MINARI_DATASETS_PATH", None)
        else:
            os.environ["MINARI_DATASETS_PATH"] = old


def recordable_spec(spec):
    """`spec` (a gymnasium EnvSpec) when JSON can hold it, as Minari stores it, else None with a
    warning saying why (then only the spaces are stored and `recover_environment` cannot work)."""
    if spec is None:
        return None
    try:
        spec.to_json()
    except Exception as err:  # noqa: BLE001 - e.g. a callable entry point, a wrapper with no kwargs
        warnings.warn(f"the env spec of {spec.id} is not stored in the dataset: it cannot be "
                      f"written as JSON ({type(err).__name__}: {str(err)[:160]})", stacklevel=2)
        return None
    return spec


def write_dataset(episodes, dataset_id: str, observation_space, action_space, *, root=None,
                  env_spec=None, algorithm_name: str, description: str,
                  metadata: dict | None = None, author: str | None = None,
                  overwrite: bool = False) -> Path:
    """Write `episodes` (minari EpisodeBuffers) and return the dataset directory.

    `observation_space`/`action_space` describe the stored rows (ours: the wrapped env's flat
    float32 observations and [-1, 1] actions); `env_spec` is the spec of the env that made them,
    wrappers included (`env.spec`), from which `recover_environment()` rebuilds it (Minari
    builds it once here, from the spec). `metadata` keys are stored with the `plasticrl_` prefix.
    """
    import minari

    target = check_writable(dataset_id, root, overwrite)
    root_path = datasets_root(root)
    tmp_root = root_path / f".tmp-{uuid.uuid4().hex[:12]}"
    spec = recordable_spec(env_spec)
    try:
        with _minari_root(tmp_root), warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # minari nags about author/permalink
            dataset = minari.create_dataset_from_buffers(
                dataset_id, list(episodes), env=spec, observation_space=observation_space,
                action_space=action_space, algorithm_name=algorithm_name,
                description=description, author=author)
            dataset.storage.update_metadata(
                {METADATA_PREFIX + k: v for k, v in (metadata or {}).items()})
        _copy_namespace_files(tmp_root, root_path, dataset_id)
        if target.exists():  # overwrite: only now that the new dataset is complete
            shutil.rmtree(target)
        target.parent.mkdir(parents=True, exist_ok=True)
        os.replace(tmp_root / dataset_id, target)
    finally:
        shutil.rmtree(tmp_root, ignore_errors=True)
    return target


def _copy_namespace_files(src_root: Path, dst_root: Path, dataset_id: str) -> None:
    """minari marks each namespace directory with a metadata file; keep existing ones."""
    parts = dataset_id.split("/")[:-1]
    for depth in range(1, len(parts) + 1):
        rel = Path(*parts[:depth]) / "namespace_metadata.json"
        if (src_root / rel).exists() and not (dst_root / rel).exists():
            (dst_root / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src_root / rel, dst_root / rel)
