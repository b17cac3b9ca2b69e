"""Where the C runtime's sources are, which files make the library, and how to compile it.

Standard library only: `setup.py` loads this file by path (the build may run in an isolated
environment without numpy), and `dsedge.runtime` / `dsedge.export.bundle` import it.

Sources. The C runtime (`runtimes/c` in the checkout) ships inside the Python package as
`dsedge/runtime/csrc/` (package data), so `dsedge export` works from an installed wheel. The
library is `src/*.c` + `kernels/ref/*.c`, with `include/` and `src/` on the include path;
`source_hash()` is a SHA-256 over exactly those files plus the headers and kernel lists, so a
built library can tell whether it is stale.

Flags (DESIGN.md §3): `-std=c11 -ffp-contract=off -O2`, never `-ffast-math` or
`-march=native`, so every target computes the same bytes.
"""
from __future__ import annotations

import hashlib
import os
import shlex
import shutil
import subprocess
import tempfile
from pathlib import Path

STD_FLAGS = ["-std=c11", "-ffp-contract=off", "-O2"]
WARN_FLAGS = ["-Wall", "-Wextra"]
# libraries the runtime links: libm, and POSIX threads for a session's workers (src/pool.c)
LINK_LIBS = ["-lm", "-pthread"]

HERE = Path(__file__).resolve().parent


def csrc_dir() -> Path:
    """The C runtime's source tree: `csrc/` next to this file (installed), else `../c` (checkout)."""
    for d in (HERE / "csrc", HERE.parent / "c"):
        if (d / "include" / "dsedge.h").is_file() and (d / "src").is_dir():
            return d
    raise FileNotFoundError(f"the dsedge C runtime sources are missing (looked in {HERE / 'csrc'} and {HERE.parent / 'c'})")


def library_sources(csrc: Path | None = None) -> list[Path]:
    """The .c files of the runtime library, sorted (what the Makefile and CMakeLists.txt build)."""
    c = csrc or csrc_dir()
    return sorted((c / "src").glob("*.c")) + sorted((c / "kernels").glob("*/*.c"))


def hashed_files(csrc: Path | None = None) -> list[Path]:
    c = csrc or csrc_dir()
    extra = sorted((c / "include").glob("*.h")) + sorted((c / "src").glob("*.h")) + sorted((c / "src").glob("*.inc"))
    return library_sources(c) + extra


def source_hash(csrc: Path | None = None) -> str:
    """SHA-256 (hex, 16 chars) over the library's sources and headers, names relative to csrc."""
    c = csrc or csrc_dir()
    h = hashlib.sha256()
    for p in hashed_files(c):
        h.update(p.relative_to(c).as_posix().encode() + b"\0")
        h.update(p.read_bytes() + b"\0")
    return h.hexdigest()[:16]


def host_cc() -> list[str] | None:
    """The host C compiler: $CC, else cc/gcc/clang on PATH, else `python -m ziglang cc`."""
    env = os.environ.get("CC")
    if env:
        return shlex.split(env)
    for name in ("cc", "gcc", "clang"):
        p = shutil.which(name)
        if p:
            return [p]
    try:
        import ziglang  # noqa: F401
        import sys
        return [sys.executable, "-m", "ziglang", "cc"]
    except ImportError:
        return None


def build_shared(out: Path, csrc: Path | None = None, cc: list[str] | None = None) -> Path:
    """Compile the runtime into the shared library `out` (atomically: temp file, then rename)."""
    c = csrc or csrc_dir()
    cc = cc or host_cc()
    if not cc:
        raise RuntimeError("no C compiler found to build the dsedge runtime: install gcc or clang, "
                           "or `pip install ziglang`, or set $CC")
    out.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=".so", dir=out.parent)
    os.close(fd)
    cmd = [*cc, *STD_FLAGS, *WARN_FLAGS, "-fPIC", "-shared", f"-I{c / 'include'}", f"-I{c / 'src'}",
           f'-DDSEDGE_SOURCE_HASH="{source_hash(c)}"', *map(str, library_sources(c)), str(HERE / "_pyinit.c")
           if (HERE / "_pyinit.c").is_file() else "", "-o", tmp, *LINK_LIBS]
    cmd = [a for a in cmd if a]
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode != 0:
        os.unlink(tmp)
        raise RuntimeError(f"building the dsedge runtime failed:\n{' '.join(cmd)}\n{r.stderr[-4000:]}")
    os.replace(tmp, out)
    return out


def cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "dsedge"
