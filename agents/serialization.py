"""Atomic file writes: a crash mid-write never leaves a truncated file in place."""
from __future__ import annotations

import os
import tempfile
from pathlib import Path

import torch


def _atomic_write(path, write, mode: str) -> None:
    """Write through `write(file)` into a temporary file beside `path`, fsync, rename over `path`."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, mode) as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def atomic_save(obj, path) -> None:
    """torch.save `obj` to `path` atomically."""
    _atomic_write(path, lambda f: torch.save(obj, f), "wb")


def atomic_write_text(text: str, path) -> None:
    """Write a small text file (config, summary) atomically."""
    _atomic_write(path, lambda f: f.write(text), "w")
