"""Small shared utilities: atomic file output, progress bars, C heap tuning for the CLI."""
from __future__ import annotations

import functools
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


def progress(iterable, *, total=None, desc="", enabled=True, unit="feed"):
    """A tqdm progress bar on stderr when available, enabled and stderr is a terminal or forced."""
    if not enabled:
        return iterable
    try:
        from tqdm import tqdm
    except ImportError:
        return iterable
    return tqdm(iterable, total=total, desc=desc, file=sys.stderr, leave=False,
                disable=None if not os.environ.get("DSEDGE_PROGRESS") else False, unit=unit)


_HEAP = {"managed": False}
M_MMAP_THRESHOLD = -3
SMALL_MAPPING = 128 * 1024         # weight phases: every block of 128 KiB or more is its own mapping
LARGE_MAPPING = 32 * 1024 * 1024   # activation phases: blocks up to 32 MiB are recycled in the heap


@functools.lru_cache(maxsize=1)
def _libc():
    try:
        import ctypes
        libc = ctypes.CDLL(None)
        return libc if hasattr(libc, "mallopt") and hasattr(libc, "malloc_trim") else None
    except (OSError, AttributeError):
        return None


def return_freed_memory_promptly() -> None:
    """glibc only, and for a whole process (called by the CLI): let `heap_phase` tune the C
    heap. By default glibc raises its mmap threshold after large frees and then keeps freed
    weight-sized blocks in its heap, so replacing a model's weights (BatchNorm folding,
    quantisation) would leave the old copy counted in the process's memory. Starts in the
    "weights" phase. Harmless elsewhere (no-op without mallopt)."""
    if _libc() is None:
        return
    _HEAP["managed"] = True
    heap_phase("weights")


def heap_trim() -> None:
    """Return the C heap's free memory to the system now (malloc_trim; only after
    `return_freed_memory_promptly`). For loops whose temporaries, freed in varying sizes,
    leave holes the heap would otherwise keep (e.g. one weight-rounding problem per layer)."""
    if _HEAP["managed"]:              # set only where _libc() has mallopt and malloc_trim
        _libc().malloc_trim(0)


def heap_phase(kind: str) -> None:
    """Tune the C heap for the work that follows (only after `return_freed_memory_promptly`).

    "weights": few large blocks that replace each other (folding, rounding, lowering, writing):
    each block of 128 KiB or more gets its own mapping, returned to the system when freed, and
    what the heap holds free now is returned (malloc_trim).
    "activations": the same activation-sized blocks allocated and freed on every feed (the float
    engine's outputs, the observers' temporaries): recycled in the heap. Giving each its own
    mapping makes every feed page-fault its outputs afresh: MobileNetV2's calibration runs took
    50 ms each instead of 12 ms."""
    if kind not in ("weights", "activations"):
        raise ValueError(f"unknown heap phase {kind!r}")
    if not _HEAP["managed"]:
        return
    if kind == "weights":
        import gc
        gc.collect()                  # arrays held only by reference cycles go before the trim
        _libc().mallopt(M_MMAP_THRESHOLD, SMALL_MAPPING)
        heap_trim()
    else:
        _libc().mallopt(M_MMAP_THRESHOLD, LARGE_MAPPING)
