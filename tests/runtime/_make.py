"""One `make` build of the C runtime per configuration, shared by the test modules.

Seven test modules load the library through `make -C runtimes/c O=DIR` (the Makefile is one of
the builders the manifest feeds: runtimes/c/build.mk). Each used its own DIR, so a test run
compiled the same library (about 80 files, the optimised kernels included) seven times, plus
twice for ASan/UBSan. `make_dir` keys DIR by everything that decides the result (the sources'
hash — every .c, .h, .inc and the manifest —, the Makefile, the compiler, the extra make
arguments), so the first module builds and the others find the objects up to date. A lock file
serialises concurrent builds of one DIR (pytest-xdist workers); make's own dependency rules do
the rest, and a stale DIR cannot be picked up (a changed source changes the key).
"""
from __future__ import annotations

import fcntl
import hashlib
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

from dsedge.runtime import _build

ROOT = Path(__file__).resolve().parents[2]
CDIR = ROOT / "runtimes" / "c"


def make_dir(cc: str, *args: str) -> Path:
    """The shared build directory of (cc, args); created, not built."""
    h = hashlib.sha256()
    for part in (_build.source_hash(CDIR), (CDIR / "Makefile").read_text(), os.path.realpath(shutil.which(cc) or cc),
                 *args, str(CDIR)):
        h.update(part.encode() + b"\0")
    root = _build.cache_root()   # $DSEDGE_CACHE_DIR like every dsedge build (.ci/run: a fresh one, cold as CI)
    d = (root / "test-make" if root is not None else Path(tempfile.gettempdir()) / f"dsedge-test-make-{os.getuid()}") \
        / h.hexdigest()[:20]
    d.mkdir(parents=True, exist_ok=True)
    return d


def make(cc: str, *targets: str, args: tuple[str, ...] = ()) -> subprocess.CompletedProcess:
    """`make -s -C runtimes/c O=<shared dir> CC=cc *args *targets` under the directory's lock.
    Targets are make goals ("asan") or file names inside the directory ("libdsedge.so").
    Returns the completed process (returncode, stdout, stderr as text); `.out` is the directory."""
    out = make_dir(cc, *args)
    goals = [t if t in ("all", "asan") else str(out / t) for t in targets]
    with open(out / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        r = subprocess.run(["make", "-s", "-j2", "-C", str(CDIR), f"O={out}", f"CC={cc}", *args, *goals],
                           capture_output=True, text=True)
    r.out = out
    return r


def make_checked(cc: str, *targets: str, args: tuple[str, ...] = ()) -> Path:
    """make(), raising AssertionError with make's errors when it fails; returns the directory."""
    r = make(cc, *targets, args=args)
    assert r.returncode == 0, r.stderr[-3000:]
    return r.out


# -- one ASan + UBSan build of the library for every sanitizer test ----------------------------

SAN_CC = os.environ.get("CC") or shutil.which("cc") or shutil.which("gcc") or shutil.which("clang")
SAN_FLAGS = ["-fsanitize=address,undefined", "-fno-sanitize-recover=all", "-fno-omit-frame-pointer", "-g", "-O1"]


def san_binary(out: Path, extra_sources, cc: str | None = None) -> Path:
    """The library + `extra_sources` (a test program's main) built with ASan + UBSan (SAN_FLAGS,
    UB traps) into `out`. The library's objects come from build_binary's object cache: the fuzz
    replay, the kernel corpus and the thread stress test (and the next run) share one set instead
    of compiling ~90 files under the sanitizers three times. Raises RuntimeError on failure."""
    return _build.build_binary([cc or SAN_CC], out, csrc=CDIR, opt=False, flags=SAN_FLAGS,
                               extra_sources=list(extra_sources))
