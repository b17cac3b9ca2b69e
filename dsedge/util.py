"""Small shared utilities: atomic file output, progress bars, C heap tuning for the CLI."""
from __future__ import annotations

import functools
import os
import stat
import sys
import tempfile
from pathlib import Path

from .errors import DseError


def _new_file_mode(path: Path) -> int:
    """The mode a plainly created file would get: the existing file's mode when `path` is
    replaced, else 0666 & ~umask (tempfile.mkstemp alone gives 0600)."""
    try:
        return stat.S_IMODE(os.stat(path).st_mode)
    except OSError:
        pass
    mask = os.umask(0)
    os.umask(mask)
    return 0o666 & ~mask


def atomic_write_bytes(path, data: bytes) -> None:
    """Write `data` to `path` via a temporary file in the same folder and a rename, so a
    failure never leaves a partial output. The file gets the mode a plain `open(path, "wb")`
    would give it (0644 under umask 022). Errors name the path and the reason (DseError,
    exit code 2)."""
    path = Path(path)
    folder = path.parent if str(path.parent) else Path(".")
    if not folder.is_dir():
        raise DseError(f"{path}: cannot write: folder {folder} does not exist")
    mode = _new_file_mode(path)
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=folder)
    except OSError as e:
        raise DseError(f"{path}: cannot write: {e.strerror or e}") from None
    try:
        with os.fdopen(fd, "wb") as f:
            os.fchmod(f.fileno(), mode)
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except OSError as e:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise DseError(f"{path}: cannot write: {e.strerror or e}") from None
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def _same_file(a: str, b: str) -> bool:
    """Whether two paths name one file: the same real path (symlinks, `./x` vs `x`, `..`)
    or the same inode (hard links). A path that does not exist is no existing file."""
    if os.path.realpath(a) == os.path.realpath(b):
        return True
    try:
        return os.path.samefile(a, b)
    except OSError:
        return False


def refuse_overwriting_inputs(outputs, inputs) -> None:
    """Refuse, before any work, a command whose output would replace one of its inputs.

    outputs: paths the command writes. inputs: (what, path) pairs, e.g. ("model", "m.onnx");
    a None path is skipped. An input that is a folder (a calibration set) is refused as an
    output too, and so is an output inside it that would be read as one of its feeds (.npz).
    Raises DseError (exit code 2) naming both paths and the fix; the input is left intact."""
    for out in outputs:
        out = os.fspath(out)
        for what, src in inputs:
            if src is None:
                continue
            src = os.fspath(src)
            clash = _same_file(out, src)
            if not clash and os.path.isdir(src) and out.endswith(".npz"):
                clash = os.path.dirname(os.path.realpath(out)) == os.path.realpath(src)
            if clash:
                raise DseError(f"{out}: the output is the {what} {src}; writing it would replace the input",
                               hint="write the output to another path")


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


def ort_session(path):
    """An onnxruntime CPU session for a model file (onnxruntime's own log quiet); a file it
    cannot load is a ModelError naming the file."""
    import onnxruntime as ort
    from .errors import ModelError
    so = ort.SessionOptions()
    so.log_severity_level = 3
    try:
        return ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])
    except Exception as e:
        raise ModelError(f"{path}: onnxruntime cannot load it: {str(e).splitlines()[0][:300]}") from None
