"""Where the C runtime's sources are, which files make the library, and how to compile it.

Standard library only: `setup.py` loads this file by path (the build may run in an isolated
environment without numpy), and `dsedge.runtime` / `dsedge.export.bundle` import it.

Sources. The C runtime (`runtimes/c` in the checkout) ships inside the Python package as
`dsedge/runtime/csrc/` (package data), so `dsedge export` works from an installed wheel.

What the library is and how it is compiled comes from ONE file, the build manifest
`runtimes/c/build.mk` (plain `NAME = value` lines that GNU make includes and CMake parses too):
the source groups (core, hot, one group per ISA with its architecture and flags), the flags
every build uses (`DSE_STD`: -std=c11 -ffp-contract=off, never -ffast-math or -march=native,
DESIGN.md §3), warnings, and the optimisation profiles. `Manifest` reads it; the helpers here
(`library_sources`, `cflags`, `compile_jobs`, `build_binary`) are what setup.py, the bindings'
fallback build, the bundle exporter and the tests use, so no builder keeps a list of its own.
`source_hash()` is a SHA-256 over the sources, headers, kernel lists and the manifest, so a built
library can tell whether it is stale.
"""
from __future__ import annotations

import glob
import hashlib
import os
import platform
import re
import shlex
import shutil
import subprocess
import tempfile
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
MANIFEST = "build.mk"
# The start of a C file that #includes several library sources as one compilation unit (the
# bundle's units, tests): the feature macro that the sources using POSIX (src/file.c,
# src/profile.c) define at their top must come before the first system header of any of them.
UNIT_PRELUDE = "#if !defined(_WIN32) && !defined(_POSIX_C_SOURCE)\n#define _POSIX_C_SOURCE 200809L\n#endif\n"

# machine names (uname -m, compiler triples) -> the architecture names of the manifest
_ARCH_PREFIXES = (("x86_64", "x86_64"), ("amd64", "x86_64"), ("x64", "x86_64"), ("aarch64", "arm64"),
                  ("arm64", "arm64"), ("armv7", "armv7"), ("arm", "armv7"), ("thumb", "armv7"))


def arch_name(machine: str) -> str:
    """`x86_64`, `arm64` or `armv7` for a machine name or target triple (`aarch64-linux-gnu`,
    `arm-linux-gnueabihf`, `x86_64-unknown-linux-musl`, ...); otherwise the name's first part."""
    m = machine.strip().lower()
    for prefix, arch in _ARCH_PREFIXES:
        if m.startswith(prefix):
            return arch
    return m.split("-", 1)[0]


def host_arch() -> str:
    return arch_name(platform.machine())


def cc_arch(cc: list[str] | tuple[str, ...]) -> str | None:
    """The architecture a compiler command targets (`CC -dumpmachine`), None if it cannot say."""
    try:
        r = subprocess.run([*cc, "-dumpmachine"], capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.SubprocessError):
        return None
    out = r.stdout.strip()
    return arch_name(out) if r.returncode == 0 and out else None


def csrc_dir() -> Path:
    """The C runtime's source tree: `csrc/` next to this file (installed), else `../c` (checkout)."""
    for d in (HERE / "csrc", HERE.parent / "c"):
        if (d / "include" / "dsedge.h").is_file() and (d / "src").is_dir():
            return d
    raise FileNotFoundError(f"the dsedge C runtime sources are missing (looked in {HERE / 'csrc'} and {HERE.parent / 'c'})")


# -- the manifest ---------------------------------------------------------------------------

_LINE = re.compile(r"^([A-Za-z_][A-Za-z0-9_]*)[ \t]*=(.*)$")


@dataclass(frozen=True)
class IsaGroup:
    """An ISA group of the manifest: kernels/<name>/*.c for one architecture, with its flags."""

    name: str
    arch: str
    patterns: tuple[str, ...]
    flags: tuple[str, ...]


class Manifest:
    """`runtimes/c/build.mk`, parsed: `NAME = value` lines, values split into words."""

    def __init__(self, csrc: Path | None = None):
        self.csrc = Path(csrc or csrc_dir())
        self.path = self.csrc / MANIFEST
        self.vars: dict[str, tuple[str, ...]] = {}
        for n, line in enumerate(self.path.read_text().splitlines(), 1):
            if not line.strip() or line.lstrip().startswith("#"):
                continue
            m = _LINE.match(line)
            if not m or "$" in line or line.rstrip().endswith("\\"):
                raise ValueError(f"{self.path}:{n}: not a plain `NAME = value` line: {line!r}")
            self.vars[m.group(1)] = tuple(shlex.split(m.group(2)))

    def get(self, name: str) -> tuple[str, ...]:
        if name not in self.vars:
            raise KeyError(f"{self.path}: {name} is not set")
        return self.vars[name]

    # flags
    @property
    def std(self) -> list[str]:
        return list(self.get("DSE_STD"))

    @property
    def warn(self) -> list[str]:
        return list(self.get("DSE_WARN"))

    @property
    def werror(self) -> list[str]:
        return list(self.get("DSE_WERROR"))

    @property
    def opt(self) -> list[str]:
        return list(self.get("DSE_OPT"))

    @property
    def link_opt(self) -> list[str]:
        return list(self.get("DSE_LINK_OPT"))

    @property
    def link_strip(self) -> list[str]:
        return list(self.get("DSE_LINK_STRIP"))

    @property
    def libs(self) -> list[str]:
        return [f"-l{x}" for x in self.get("DSE_LIBS")]

    @property
    def include_dirs(self) -> list[Path]:
        return [self.csrc / d for d in self.get("DSE_INCLUDE_DIRS")]

    @property
    def bundle_flags(self) -> list[str]:
        return list(self.get("DSE_BUNDLE_FLAGS"))

    def bundle_profiles(self) -> dict[str, tuple[tuple[str, ...], tuple[str, ...]]]:
        """{profile: (COLD flags, HOT flags)}."""
        return {p: (self.get(f"DSE_PROFILE_{p}_COLD"), self.get(f"DSE_PROFILE_{p}_HOT"))
                for p in self.get("DSE_BUNDLE_PROFILES")}

    # sources
    def expand(self, patterns) -> list[Path]:
        """The files of each pattern (sorted within the pattern), in pattern order, no duplicates."""
        out: list[Path] = []
        for pat in patterns:
            for f in sorted(glob.glob(str(self.csrc / pat))):
                p = Path(f)
                if p not in out:
                    out.append(p)
        return out

    def isa_groups(self) -> list[IsaGroup]:
        return [IsaGroup(g, self.get(f"DSE_ISA_{g}_ARCH")[0], self.get(f"DSE_ISA_{g}_SOURCES"),
                         self.get(f"DSE_ISA_{g}_FLAGS")) for g in self.get("DSE_ISA_GROUPS")]

    def core_sources(self) -> list[Path]:
        return self.expand(self.get("DSE_CORE_SOURCES"))

    def isa_sources(self) -> list[Path]:
        return self.expand([p for g in self.isa_groups() for p in g.patterns])

    def sources(self) -> list[Path]:
        """The library's .c files: the core group, then every ISA group (each compiles to nothing
        on another architecture, so every build takes them all)."""
        core = self.core_sources()
        return core + [p for p in self.isa_sources() if p not in core]

    def hot_sources(self) -> list[Path]:
        """What bundles compile with the HOT optimisation: DSE_HOT_SOURCES and every ISA group."""
        hot = self.expand(self.get("DSE_HOT_SOURCES"))
        return hot + [p for p in self.isa_sources() if p not in hot]

    def group_flags(self, arch: str | None) -> dict[Path, tuple[str, ...]]:
        """{source: its ISA group's flags} for the groups of `arch` whose FLAGS is not empty."""
        out: dict[Path, tuple[str, ...]] = {}
        for g in self.isa_groups():
            if g.flags and g.arch == arch:
                for p in self.expand(g.patterns):
                    out[p] = g.flags
        return out

    def compile_jobs(self, arch: str | None, sources: list[Path] | None = None) -> list[tuple[list[Path], tuple[str, ...]]]:
        """`sources` (default: the library) split by the extra flags they need for `arch`: the
        first job has none; then one job per distinct set of ISA group flags."""
        extra = self.group_flags(arch)
        srcs = self.sources() if sources is None else sources
        jobs: dict[tuple[str, ...], list[Path]] = {(): []}
        for s in srcs:
            jobs.setdefault(extra.get(s, ()), []).append(s)
        return [(v, k) for k, v in jobs.items() if v or not k]


def manifest(csrc: Path | None = None) -> Manifest:
    return Manifest(csrc)


def library_sources(csrc: Path | None = None) -> list[Path]:
    """The .c files of the runtime library (the manifest's core and ISA groups)."""
    return Manifest(csrc).sources()


def option_defines() -> list[str]:
    """Build options from the environment: DSEDGE_REF_FLOAT=1 gives -DDSE_REF_FLOAT (reference
    float kernels only: no optimised float variant, the same float bytes on every target; the
    Makefile's REF_FLOAT=1, CMake's DSEDGE_REF_FLOAT). Part of the source hash, so the bindings'
    cached build of one setting is not used for the other."""
    return ["-DDSE_REF_FLOAT"] if os.environ.get("DSEDGE_REF_FLOAT", "") not in ("", "0") else []


def cflags(csrc: Path | None = None, *, werror: bool = False, opt: bool = True) -> list[str]:
    """The manifest's compile flags for the library: DSE_STD [DSE_OPT] DSE_WARN [DSE_WERROR] -I....,
    then the options of option_defines()."""
    m = Manifest(csrc)
    return [*m.std, *(m.opt if opt else []), *m.warn, *(m.werror if werror else []),
            *(f"-I{d}" for d in m.include_dirs), *option_defines()]


def hashed_files(csrc: Path | None = None) -> list[Path]:
    c = Path(csrc or csrc_dir())
    extra = (sorted((c / "include").glob("*.h")) + sorted((c / "src").glob("*.h")) + sorted((c / "src").glob("*.inc"))
             + sorted((c / "kernels").glob("*/*.h")))   # the kernel files' own headers (i8_avx2.h, i8_neon.h)
    return library_sources(c) + extra + [c / MANIFEST]


def source_hash(csrc: Path | None = None) -> str:
    """SHA-256 (hex, 16 chars) over the library's sources, headers and manifest, names relative to csrc."""
    c = Path(csrc or csrc_dir())
    h = hashlib.sha256()
    for d in option_defines():
        h.update(d.encode() + b"\0")
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


def cache_root() -> Path | None:
    """Where dsedge keeps builds: $DSEDGE_CACHE_DIR, else $XDG_CACHE_HOME/dsedge, else
    ~/.cache/dsedge; None with DSEDGE_NO_BUILD_CACHE=1 (build everything, keep nothing)."""
    if os.environ.get("DSEDGE_NO_BUILD_CACHE", "") not in ("", "0"):
        return None
    return Path(os.environ.get("DSEDGE_CACHE_DIR") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache"), "dsedge"))


OBJECT_CACHE_KEEP = 2000     # newest objects kept (a library is ~90 objects per compiler and flag set)
_CC_IDS: dict[tuple[str, ...], str] = {}


def cc_identity(cc) -> str:
    """The compiler's resolved path and what `--version` prints (memoised per command): part of
    every build cache key (objects here, runtimes in dsedge.export.bundle)."""
    key = tuple(cc)
    if key not in _CC_IDS:
        try:
            r = subprocess.run([*cc, "--version"], capture_output=True, text=True, timeout=60)
            ver = r.stdout + r.stderr
        except (OSError, subprocess.SubprocessError) as e:
            ver = repr(e)
        _CC_IDS[key] = repr([os.path.realpath(shutil.which(cc[0]) or cc[0]), *cc[1:]]) + "\0" + ver
    return _CC_IDS[key]


def _store_object(cache: Path, built: Path, entry: Path) -> None:
    """Copies a compiled object into the cache atomically (temp file, then rename), then keeps the
    newest OBJECT_CACHE_KEEP. A cache that cannot be written is skipped."""
    try:
        fd, tmp = tempfile.mkstemp(prefix=".tmp-", dir=cache)
        os.close(fd)
        shutil.copyfile(built, tmp)
        os.replace(tmp, entry)
        names = [e for e in os.scandir(cache) if e.name.endswith(".o")]
        if len(names) > OBJECT_CACHE_KEEP * 1.1:
            names.sort(key=lambda e: e.stat().st_mtime, reverse=True)
            for e in names[OBJECT_CACHE_KEEP:]:
                os.unlink(e.path)
    except OSError:
        pass


def compile_cached(key, out: Path, compile_fn) -> None:
    """Produce the object `out`: from cache_root()/objects when an object of the same `key` (a
    hashlib object over everything the object depends on) is there, else by `compile_fn()`,
    then kept there. Without a cache (DSEDGE_NO_BUILD_CACHE=1), just compile_fn()."""
    root = cache_root()
    cache = root / "objects" if root is not None else None
    if cache is not None:
        try:
            cache.mkdir(parents=True, exist_ok=True)
        except OSError:
            cache = None
    if cache is None:
        compile_fn()
        return
    entry = cache / (key.hexdigest()[:40] + ".o")
    if entry.is_file():
        try:
            Path(out).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(entry, out)
            os.utime(entry)
            return
        except OSError:
            pass
    compile_fn()
    _store_object(cache, Path(out), entry)


def build_binary(cc: list[str] | tuple[str, ...], out: Path, *, csrc: Path | None = None, arch: str | None = None,
                 extra_sources=(), flags=(), ldflags=(), werror: bool = True, opt: bool = True,
                 sources: list[Path] | None = None) -> Path:
    """Compile the runtime library (`sources`, default the manifest's) with `extra_sources` (a
    program's main, a test harness) into `out` with compiler `cc`: the manifest's flags (`cflags`),
    then `flags` (e.g. -shared -fPIC, sanitizers, -static; a later -O wins), `ldflags` and the
    manifest's libraries. ISA group flags (build.mk) are added to their group's files when `arch`
    (default: what `cc -dumpmachine` says) is the group's. Raises RuntimeError with the command
    and its errors.

    Each library source is compiled to an object, in parallel (one job per CPU), and kept in
    cache_root()/objects under a key of everything the object depends on (every source and header
    of the library, the compiler's identity, the flags, the file): the test suite and the tools
    build the same library with the same flags many times. `extra_sources` are compiled at link."""
    m = Manifest(csrc)
    cc = list(cc)
    if arch is None and any(g.flags for g in m.isa_groups()):
        arch = cc_arch(cc) or host_arch()
    base = [*cflags(m.csrc, werror=werror, opt=opt), *flags]
    jobs = m.compile_jobs(arch, sources)
    common = hashlib.sha256((source_hash(m.csrc) + "\0" + str(m.csrc) + "\0" + cc_identity(cc)).encode()) \
        if cache_root() is not None else None

    def run(cmd):
        r = subprocess.run(cmd, capture_output=True, text=True)
        if r.returncode != 0:
            raise RuntimeError(f"building the dsedge runtime failed:\n{' '.join(map(shlex.quote, cmd))}\n"
                               f"{r.stderr[-4000:]}")

    with tempfile.TemporaryDirectory(prefix="dsedge-objs-") as tmp:
        work = []
        for k, (srcs, extra) in enumerate(jobs):
            for s in srcs:   # (file names: src/pool.c and kernels/ref/pool.c share a stem)
                o = Path(tmp) / f"g{k}" / f"{len(work)}_{s.stem}.o"
                work.append(([*cc, *base, *extra, "-c", str(s), "-o", str(o)], o, s))

        def compile_one(job):
            cmd, o, src = job
            o.parent.mkdir(exist_ok=True)
            if common is None:
                run(cmd)
                return
            h = common.copy()
            h.update(repr(cmd[:-1]).encode() + b"\0" + Path(src).read_bytes())   # without the temporary output
            compile_cached(h, o, lambda: run(cmd))

        with ThreadPoolExecutor(max_workers=max(1, min(len(work), os.cpu_count() or 1))) as pool:
            list(pool.map(compile_one, work))
        # a cross build (a program for qemu) links as a bundle does (build.mk's DSE_LINK_*); a native
        # one keeps its symbols (sanitizer reports)
        cross = (arch or cc_arch(cc) or host_arch()) != host_arch()
        run([*cc, *m.link_opt, *base, *map(str, extra_sources), *(str(o) for _, o, _ in work), "-o", str(out),
             *(m.link_strip if cross else ()), *ldflags, *m.libs])
    return Path(out)


def build_shared(out: Path, csrc: Path | None = None, cc: list[str] | None = None) -> Path:
    """Compile the runtime into the shared library `out` (atomically: temp file, then rename)."""
    c = Path(csrc or csrc_dir())
    cc = cc or host_cc()
    if not cc:
        raise RuntimeError("no C compiler found to build the dsedge runtime: install gcc or clang, "
                           "or `pip install ziglang`, or set $CC")
    out.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=".so", dir=out.parent)
    os.close(fd)
    try:
        pyinit = [HERE / "_pyinit.c"] if (HERE / "_pyinit.c").is_file() else []
        build_binary(cc, Path(tmp), csrc=c, extra_sources=pyinit, werror=False,
                     flags=["-fPIC", "-shared", f'-DDSEDGE_SOURCE_HASH="{source_hash(c)}"'])
    except RuntimeError:
        os.unlink(tmp)
        raise
    os.replace(tmp, out)
    return out


def cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "dsedge"
