"""Small shared utilities: atomic file output, progress bars."""
from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

from .errors import DseError


def atomic_write_bytes(path, data: bytes) -> None:
    """Write `data` to `path` via a temporary file in the same folder and a rename, so a
    failure never leaves a partial output. Errors name the path."""
    path = Path(path)
    folder = path.parent if str(path.parent) else Path(".")
    if not folder.is_dir():
        raise DseError(f"{path}: cannot write: folder {folder} does not exist")
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=folder)
    except OSError as e:
        raise DseError(f"{path}: cannot write: {e.strerror}") from None
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except OSError as e:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise DseError(f"{path}: cannot write: {e.strerror}") from None
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def progress(iterable, *, total=None, desc="", enabled=True):
    """A tqdm progress bar on stderr when available, enabled and stderr is a terminal or forced."""
    if not enabled:
        return iterable
    try:
        from tqdm import tqdm
    except ImportError:
        return iterable
    return tqdm(iterable, total=total, desc=desc, file=sys.stderr, leave=False,
                disable=None if not os.environ.get("DSEDGE_PROGRESS") else False, unit="feed")


def return_freed_memory_promptly() -> None:
    """glibc only: serve every allocation of 128 KiB or more with its own mapping, returned to
    the system when freed. By default glibc raises that threshold after large frees and then
    keeps freed weight-sized blocks in its heap, so replacing a model's weights (BatchNorm
    folding, quantisation) would leave the old copy counted in the process's memory. Called by
    the CLI; harmless elsewhere (no-op when the C library has no mallopt)."""
    try:
        import ctypes
        libc = ctypes.CDLL(None)
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return
    M_MMAP_THRESHOLD = -3
    try:
        mallopt(M_MMAP_THRESHOLD, 128 * 1024)
    except Exception:   # pragma: no cover - a libc without it
        pass
