"""Atomic file writes: a crash mid-write never leaves a truncated file in place, and a failed
write (disk full, no permission) says so and leaves the previous file as it was."""
from __future__ import annotations

import errno
import os
import tempfile
from pathlib import Path

import torch

TEMP_SUFFIX = ".tmp"  # temporary files are ".<name>.<random>.tmp" beside the file they replace
_CAUSES = {errno.ENOSPC: "no space left on device (ENOSPC)", errno.EDQUOT: "disk quota exceeded (EDQUOT)",
           errno.EACCES: "permission denied (EACCES)", errno.EPERM: "operation not permitted (EPERM)",
           errno.EROFS: "read-only file system (EROFS)"}


class WriteError(OSError):
    """A file could not be written; the message names the cause and says the old file is intact."""


def _os_error(exc: BaseException) -> OSError | None:
    """The OSError behind `exc` (torch.save wraps a failed write in a RuntimeError)."""
    seen = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        if isinstance(exc, OSError) and exc.errno is not None:
            return exc
        exc = exc.__cause__ or exc.__context__
    return None


def _write_error(path: Path, exc: BaseException) -> WriteError | None:
    cause = _os_error(exc)
    if cause is None:
        return None
    reason = _CAUSES.get(cause.errno, f"{os.strerror(cause.errno)} (errno {cause.errno})")
    kept = f"the previous {path.name} is intact" if path.exists() else f"no {path.name} was written"
    return WriteError(cause.errno, f"could not write {path}: {reason}; {kept}")


def _atomic_write(path, write, mode: str) -> None:
    """Write through `write(file)` into a temporary file beside `path`, fsync, rename over `path`."""
    path, tmp = Path(path), None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=TEMP_SUFFIX, dir=path.parent)
        os.fchmod(fd, 0o666 & ~_umask())  # mkstemp makes 0600; give what open() would
        with os.fdopen(fd, mode) as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as exc:
        if tmp is not None and os.path.exists(tmp):
            os.unlink(tmp)
        error = _write_error(path, exc) if isinstance(exc, Exception) else None
        if error is not None:
            raise error from None
        raise


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def remove_orphan_temps(directory, names) -> list[Path]:
    """Delete the temporary files a killed write of one of `names` left in `directory`."""
    removed = []
    for name in names:
        for tmp in Path(directory).glob(f".{name}.*{TEMP_SUFFIX}"):
            tmp.unlink(missing_ok=True)
            removed.append(tmp)
    return removed


def atomic_save(obj, path) -> None:
    """torch.save `obj` to `path` atomically."""
    _atomic_write(path, lambda f: torch.save(obj, f), "wb")


def atomic_write_text(text: str, path) -> None:
    """Write a small text file (config, summary) atomically."""
    _atomic_write(path, lambda f: f.write(text), "w")
