"""`dsedge export --target`: cross-compile the C runtime and package a deployable bundle.

    BUNDLE/
      model.dse                      the model (copied, or quantised from ONNX on the way)
      include/dsedge.h, dsedge_ops.h the public C API
      lib/libdsedge.a, libdsedge.so  the runtime (ref kernels) for the target
      bin/dsedge-run                 the command-line runner, statically linked and stripped
      python/dsedge_runtime/         the ctypes bindings (a copy of dsedge.runtime) over lib/libdsedge.so
      README.md                      how to embed; manifest.json: target, compiler, sizes

Compiler (DESIGN.md §5): `$CC` if set (split like a shell word list, so
`CC="zig cc -target aarch64-linux-musl"` works; `$AR` likewise), else `zig cc` from the
`ziglang` package, else Debian's cross gcc (`aarch64-linux-gnu-gcc`, `arm-linux-gnueabihf-gcc`,
`x86_64-linux-gnu-gcc`; for `host`: cc/gcc/clang). With zig, the tool is linked statically
against musl (it runs on any Linux of that architecture) and the libraries are built for glibc
2.17 (what Debian, Ubuntu, Raspberry Pi OS and Jetson boards run; a musl-built archive can
disagree with glibc about struct layouts such as `struct stat` on 32-bit ARM). armv7 means
ARMv7-A with VFPv3-D16, hard float, no NEON (`-mcpu=generic+v7a+vfp3d16-neon-d32`: zig's `v7a`
implies NEON and 32 double registers, which VFPv3-D16 cores lack), so the library runs on any
ARMv7-A core with an FPU; its NEON kernels enable NEON per function and run only where
HWCAP_NEON says so (docs/kernels.md, "armv7 NEON").

Sources and flags come from the runtime's build manifest (runtimes/c/build.mk, read through
dsedge.runtime._build): `DSE_STD` everywhere (`-std=c11 -ffp-contract=off`, never -ffast-math or
-march=native), so the bundle computes the same bytes as the host bindings (DESIGN.md §3).
A bundle's library is built small where size matters and fast where time goes
(runtimes/c/README.md, "Bundle build"):
- compilation units that each include their C files: the hot sources (the manifest's
  `DSE_HOT_SOURCES`, kernels/ref/loops.c, and every ISA group, kernels/<isa>/*.c) with the HOT
  optimisation of the profile (`DSE_PROFILE_<profile>_HOT`, -O2 for "default"), everything else
  with its COLD one (-Os); an ISA group of the target's architecture whose FLAGS is set gets a
  unit of its own with them; every unit with `DSE_BUNDLE_FLAGS` (no debug info, no unwind
  tables, no .comment);
- internal functions are `static` in their unit (`-DDSE_INTERNAL=static`): calls between
  them are resolved by the compiler, so the object carries no relocation or symbol for them;
  the functions the units share are extern but hidden (`DSE_SHARED`: the inner loops, the
  optimised variants' check and run functions, src/internal.h);
- the archive holds one pre-linked object (`ld -r -x`: the units, local symbols
  discarded): the app links all of it anyway (the kernel table refers to every kernel).
The tool is linked with `-ffunction-sections -fdata-sections -Wl,--gc-sections` and
stripped. No flag here licenses FP reassociation or contraction: every build gives the same
bytes (tests compare numpy, host C and arm64 under qemu).
The C sources come from the installed package (`dsedge/runtime/csrc`), so this works from a
wheel.
"""
from __future__ import annotations

import hashlib
import json
import os
import platform
import shlex
import shutil
import subprocess
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from ..errors import DseError, ModelError

TARGETS = ("host", "x86_64", "arm64", "armv7")

# target -> (zig musl triple for the static tool, zig glibc triple for the libraries,
#            Debian cross gcc, extra flags, qemu user emulator)
_CROSS = {
    "x86_64": ("x86_64-linux-musl", "x86_64-linux-gnu.2.17", "x86_64-linux-gnu-gcc", (), "qemu-x86_64"),
    "arm64": ("aarch64-linux-musl", "aarch64-linux-gnu.2.17", "aarch64-linux-gnu-gcc", (), "qemu-aarch64"),
    "armv7": ("arm-linux-musleabihf", "arm-linux-gnueabihf.2.17", "arm-linux-gnueabihf-gcc",
              ("-mcpu=generic+v7a+vfp3d16-neon-d32",), "qemu-arm"),
}
# Bundle build profiles: build.mk's DSE_BUNDLE_PROFILES, each (COLD flags, HOT flags); "default" is
# what bundles use, the others exist to measure the choice (benchmarks/sizes.py).
# one unit per group: internal functions static, the shared ones hidden (runtimes/c/src/internal.h)
UNIT_DEFINES = ("-DDSE_INTERNAL=static", '-DDSE_SHARED=__attribute__((visibility("hidden")))')
TOOL_FLAGS = ("-ffunction-sections", "-fdata-sections")
TOOL_LDFLAGS = ("-Wl,--gc-sections",)
_HOST_ARCH = {"x86_64": "x86_64", "amd64": "x86_64", "aarch64": "arm64", "arm64": "arm64", "armv7l": "armv7"}


@dataclass(frozen=True)
class Toolchain:
    """How to compile for one target: the library compiler, the static-tool compiler, ar."""

    target: str
    lib_cc: tuple[str, ...]
    tool_cc: tuple[str, ...]
    ar: tuple[str, ...]
    source: str          # "$CC", "zig", "gcc" or "host"

    def describe(self) -> str:
        return " ".join(self.lib_cc) if self.lib_cc == self.tool_cc else \
            f"{' '.join(self.lib_cc)} (libraries) / {' '.join(self.tool_cc)} (tool)"


def _zig() -> list[str] | None:
    """The zig driver (`python -m ziglang`, or `zig` on PATH), without its sub-command."""
    try:
        import ziglang  # noqa: F401
    except ImportError:
        return [shutil.which("zig")] if shutil.which("zig") else None
    return [sys.executable, "-m", "ziglang"]


def zig_tool_cc(target: str) -> list[str] | None:
    """`zig cc` for a cross target's static programs exactly as bundles build their dsedge-run
    (musl, the target's CPU flags): test programs built with it share zig's libc for the target
    with the bundles (built once per target, mode and strip setting). None without zig."""
    z = _zig()
    if z is None or target not in _CROSS:
        return None
    musl, _, _, extra, _ = _CROSS[target]
    return [*z, "cc", "-target", musl, *extra]


def _ar_for(cc: list[str], native: bool) -> list[str]:
    """$AR; zig's (llvm-)ar for zig; `<prefix>-ar` for a `<prefix>-gcc`; else ar (native) or any."""
    if os.environ.get("AR"):
        return shlex.split(os.environ["AR"])
    if len(cc) >= 3 and cc[1:3] == ["-m", "ziglang"]:
        return [cc[0], "-m", "ziglang", "ar"]
    if len(cc) >= 2 and os.path.basename(cc[0]) == "zig":
        return [cc[0], "ar"]
    exe = os.path.basename(cc[0])
    for suffix in ("gcc", "clang", "cc"):
        if exe.endswith("-" + suffix):
            pre = cc[0][: len(cc[0]) - len(suffix)] + "ar"
            if shutil.which(pre):
                return [pre]
    z = _zig()
    order = [["ar"], ["llvm-ar"]] + ([[*z, "ar"]] if z else [])
    if not native and z:   # the host's GNU ar may not know the target's object format
        order = [[*z, "ar"], ["llvm-ar"], ["ar"]]
    for cmd in order:
        if shutil.which(cmd[0]) or cmd[0] == sys.executable:
            return cmd
    raise DseError("no archiver (ar) found", hint="install binutils, or set $AR")


def host_target() -> str:
    return _HOST_ARCH.get(platform.machine().lower(), platform.machine().lower())


def find_toolchain(target: str) -> Toolchain:
    """The compilers for `target`, per the rule in the module docstring; a clear error if none."""
    if target not in TARGETS:
        raise DseError(f"unknown target {target!r}", hint="use one of " + ", ".join(TARGETS))
    env = os.environ.get("CC")
    if env:
        cc = shlex.split(env)
        return Toolchain(target, tuple(cc), tuple(cc), tuple(_ar_for(cc, target in ("host", host_target()))), "$CC")
    if target == "host":
        for name in ("cc", "gcc", "clang"):
            if shutil.which(name):
                cc = [shutil.which(name)]
                return Toolchain(target, tuple(cc), tuple(cc), tuple(_ar_for(cc, True)), "host")
        target = host_target()
        if target not in _CROSS:
            raise DseError(f"no C compiler found for this {platform.machine()} host", hint="install gcc or clang")
    musl, gnu, gcc, extra, _ = _CROSS[target]
    z = _zig()
    if z:
        zcc = [*z, "cc"]
        return Toolchain(target, (*zcc, "-target", gnu, *extra), (*zcc, "-target", musl, *extra),
                         tuple(_ar_for(zcc, False)), "zig")
    if shutil.which(gcc):
        return Toolchain(target, (gcc,), (gcc,), tuple(_ar_for([gcc], False)), "gcc")
    deb = gcc.rsplit("-", 1)[0].replace("_", "-")
    raise DseError(f"no C cross compiler for {target} found",
                   hint=f"`pip install ziglang` (zig cc cross-compiles to every target), or "
                        f"`apt-get install gcc-{deb}`, or set $CC to your compiler")


# -- building -----------------------------------------------------------------------------

def _run(cmd: list[str], what: str) -> None:
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode != 0:
        unit = any(w in r.stderr for w in ("used but never defined", "undefined reference", "undefined symbol"))
        raise DseError(f"{what} failed:\n  {' '.join(shlex.quote(c) for c in cmd)}\n{r.stderr[-3000:]}",
                       hint="a function called across the bundle's compilation units (the hot unit: kernels/<isa>/, "
                            "kernels/ref/loops.c; the cold unit: the rest) must be declared DSE_SHARED "
                            "(runtimes/c/README.md, \"Bundle build\")" if unit else
                            "set $CC to a working C compiler for the target")


def _compile_all(cc: tuple[str, ...], jobs: list[tuple[Path, list[str]]], objdir: Path) -> list[Path]:
    """Compile (source, flags) pairs into objdir, two at a time; the objects in order."""
    objdir.mkdir(parents=True, exist_ok=True)
    objs = [objdir / (f"{i:03d}_" + s.stem + ".o") for i, (s, _) in enumerate(jobs)]

    def one(k):
        (src, flags), obj = jobs[k], objs[k]
        _run([*cc, *flags, "-c", str(src), "-o", str(obj)], f"compiling {src.name}")

    with ThreadPoolExecutor(max_workers=2) as ex:
        list(ex.map(one, range(len(jobs))))
    return objs


def _units(m, arch: str, tmp: Path, profile: str) -> list[tuple[Path, tuple[str, ...]]]:
    """The library as compilation units (see the module docstring): generated C files that
    include their sources, each with its flags: the cold sources with the profile's COLD
    optimisation, the hot ones with its HOT optimisation (plus an ISA group's FLAGS when set for
    `arch`: one unit per distinct set)."""
    from ..runtime import _build
    cold_opt, hot_opt = m.bundle_profiles()[profile]
    hot = m.hot_sources()
    groups = [("dsedge_lib.c", [s for s in m.sources() if s not in hot], tuple(cold_opt))]
    for k, (srcs, extra) in enumerate(m.compile_jobs(arch, [s for s in m.sources() if s in hot])):
        groups.append((f"dsedge_hot{k or ''}.c", srcs, (*hot_opt, *extra)))
    units = []
    for name, srcs, opt in groups:
        if not srcs:
            continue
        path = tmp / name
        path.write_text("/* generated by dsedge.export.bundle: one compilation unit */\n" + _build.UNIT_PRELUDE +
                        "".join(f'#include "{s.resolve().as_posix()}"\n' for s in srcs))
        units.append((path, opt))
    return units


def _prelink(tc: Toolchain, objs: list[Path], out: Path) -> bool:
    """`ld -r -x`: the objects as one relocatable object without local symbols (zig's lld is
    called directly: `zig cc -r` ignores -x). False when the toolchain cannot."""
    z = tc.lib_cc[:3] if tc.lib_cc[1:3] == ("-m", "ziglang") else tc.lib_cc[:1] if \
        os.path.basename(tc.lib_cc[0]) == "zig" else None
    cmds = ([[*z, "ld.lld", "-r", "-x", "-o", str(out)]] if z else []) + \
           [[*tc.lib_cc, "-r", "-nostdlib", "-Wl,-x", "-o", str(out)], [*tc.lib_cc, "-r", "-nostdlib", "-o", str(out)]]
    for cmd in cmds:
        if subprocess.run([*cmd, *map(str, objs)], capture_output=True).returncode == 0:
            return True
    return False


BUILD_OUTPUTS = ("lib/libdsedge.a", "lib/libdsedge.so", "bin/dsedge-run")
BUILD_CACHE_KEEP = 24     # newest builds kept in the cache


def build_cache_dir() -> Path | None:
    """Where built runtimes are kept (runtime-builds/ under the runtime's cache root,
    dsedge.runtime._build.cache_root: $DSEDGE_CACHE_DIR, else $XDG_CACHE_HOME/dsedge, else
    ~/.cache/dsedge), or None with DSEDGE_NO_BUILD_CACHE=1."""
    from ..runtime import _build
    root = _build.cache_root()
    return None if root is None else root / "runtime-builds"


def _build_key(target: str, profile: str, tc: Toolchain, m) -> str:
    """Everything a build's bytes depend on: the runtime's sources, headers and manifest
    (`_build.source_hash`, with the build options from the environment), the tool's sources, the
    target, the profile, and the compilers (`_build.cc_identity`: command and `--version`)."""
    from ..runtime import _build
    h = hashlib.sha256(_build.source_hash(m.csrc).encode() + b"\0")
    for f in sorted((m.csrc / "tools").glob("*.c")):
        h.update(f.name.encode() + b"\0" + f.read_bytes() + b"\0")
    h.update(repr((target, profile, tc.lib_cc, tc.tool_cc, tc.ar, tc.source, UNIT_DEFINES, TOOL_FLAGS,
                   TOOL_LDFLAGS)).encode())
    for cc in sorted({tuple(tc.lib_cc), tuple(tc.tool_cc)}):
        h.update(_build.cc_identity(list(cc)).encode() + b"\0")
    return h.hexdigest()[:32]


def build_runtime(target: str, out: Path, *, toolchain: Toolchain | None = None, profile: str = "default",
                  csrc: Path | None = None) -> dict:
    """Build lib/libdsedge.a, lib/libdsedge.so and bin/dsedge-run for `target` under `out`
    (`profile`: one of build.mk's DSE_BUNDLE_PROFILES; bundles use "default"), from the C
    sources in `csrc` (default: the package's).

    A successful build is kept in build_cache_dir() under a key of everything its bytes depend
    on (_build_key), and the next build with the same key copies it instead of compiling (the
    same bytes; a bundle re-export takes a second instead of a minute)."""
    from ..runtime import _build
    m = _build.Manifest(csrc)
    if profile not in m.bundle_profiles():
        raise DseError(f"unknown build profile {profile!r}", hint="use one of " + ", ".join(m.bundle_profiles()))
    tc = toolchain or find_toolchain(target)
    cache = build_cache_dir()
    key = _build_key(target, profile, tc, m) if cache is not None else None
    hit = cache / key if cache is not None else None
    if hit is not None and (hit / "info.json").is_file() and all((hit / f).is_file() for f in BUILD_OUTPUTS):
        for f in BUILD_OUTPUTS:
            (out / f).parent.mkdir(parents=True, exist_ok=True)
            tmp = out / (f + ".tmp")
            shutil.copyfile(hit / f, tmp)
            shutil.copymode(hit / f, tmp)
            os.replace(tmp, out / f)
        os.utime(hit)
        return json.loads((hit / "info.json").read_text())
    info = _build_runtime(target, out, tc, profile, m)
    if hit is not None:
        _cache_store(cache, hit, out, info)
    return info


def _cache_store(cache: Path, hit: Path, out: Path, info: dict) -> None:
    """Copies a finished build into the cache (a temporary folder renamed into place: a reader
    never sees half an entry; two builders of one key keep the first), then keeps the newest
    BUILD_CACHE_KEEP entries. A cache that cannot be written is skipped silently."""
    try:
        cache.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=".tmp-", dir=cache))
        for f in BUILD_OUTPUTS:
            (tmp / f).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(out / f, tmp / f)
        (tmp / "info.json").write_text(json.dumps(info))
        try:
            os.rename(tmp, hit)
        except OSError:          # another process stored the same key first
            shutil.rmtree(tmp, ignore_errors=True)
        entries = sorted((p for p in cache.iterdir() if p.is_dir() and not p.name.startswith(".")),
                         key=lambda p: p.stat().st_mtime, reverse=True)
        for old in entries[BUILD_CACHE_KEEP:]:
            shutil.rmtree(old, ignore_errors=True)
    except OSError:
        pass


def _build_runtime(target: str, out: Path, tc: Toolchain, profile: str, m) -> dict:
    from ..runtime import _build
    arch = target if target != "host" else (_build.cc_arch(tc.lib_cc) or host_target())
    csrc = m.csrc
    inc = [f"-I{d}" for d in m.include_dirs]
    base = [*m.std, *m.warn, *inc, *_build.option_defines()]   # DSEDGE_REF_FLOAT=1: reference float kernels only
    flags = [*base, *m.bundle_profiles()[profile][0], *m.bundle_flags]   # the tool's own sources
    tool_sources = sorted((csrc / "tools").glob("*.c"))
    if not tool_sources:
        raise DseError(f"{csrc / 'tools'}: the dsedge-run sources are missing; reinstall dsedge")
    (out / "lib").mkdir(parents=True, exist_ok=True)
    (out / "bin").mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="dsedge-build-") as tmp:
        tmp = Path(tmp)
        units = _units(m, arch, tmp, profile)
        # -Wno-unused-function: a unit declares (static) every internal function it does not define

        def jobs(extra):
            return [(u, [*base, *opt, *m.bundle_flags, *UNIT_DEFINES, "-Wno-unused-function", *extra])
                    for u, opt in units]

        lib_objs = _compile_all(tc.lib_cc, jobs(["-fPIC"]), tmp / "lib")
        a = out / "lib" / "libdsedge.a"
        if a.exists():
            a.unlink()
        one = tmp / "dsedge.o"   # one pre-linked object; plain objects if the compiler cannot -r
        _run([*tc.ar, "rcs", str(a), *map(str, [one] if _prelink(tc, lib_objs, one) else lib_objs)],
             "archiving libdsedge.a")
        # links: DSE_LINK_OPT and DSE_LINK_STRIP (build.mk: zig builds its libc once per target)
        _run([*tc.lib_cc, *m.link_opt, "-shared", *m.link_strip, "-o", str(out / "lib" / "libdsedge.so"),
              *map(str, lib_objs), *m.libs], "linking libdsedge.so")
        if tc.tool_cc == tc.lib_cc:
            tool_objs = lib_objs
        else:
            tool_objs = _compile_all(tc.tool_cc, jobs(TOOL_FLAGS), tmp / "tool")
        tool = out / "bin" / "dsedge-run"

        def tool_link(tcc, objs, sub):   # the tool's own sources with the profile's COLD flags; LINK_OPT
            own = _compile_all(tcc, [(s, [*flags, *TOOL_FLAGS]) for s in tool_sources], tmp / sub)
            return [*tcc, *m.link_opt, *map(str, own), *map(str, objs), "-static", *m.link_strip, *TOOL_LDFLAGS,
                    "-o", str(tool), *m.libs]
        cmd = tool_link(tc.tool_cc, tool_objs, "tool_main")
        r = subprocess.run(cmd, capture_output=True, text=True)
        if r.returncode != 0 and tc.source == "host" and _zig() and host_target() in _CROSS:
            # no static libc for the host compiler: link the tool with zig's musl instead
            zcc = [*_zig(), "cc"]
            musl, _, _, extra, _ = _CROSS[host_target()]
            tcc = (*zcc, "-target", musl, *extra)
            tool_objs = _compile_all(tcc, jobs(TOOL_FLAGS), tmp / "tool")
            cmd = tool_link(tcc, tool_objs, "tool_main_musl")
            r = subprocess.run(cmd, capture_output=True, text=True)
        if r.returncode != 0:
            raise DseError(f"linking bin/dsedge-run failed:\n  {' '.join(map(shlex.quote, cmd))}\n{r.stderr[-3000:]}",
                           hint="the tool is linked with -static: install the target's static libc, or set $CC")
    return {"target": target, "compiler": tc.describe(), "compiler_source": tc.source,
            "sizes": {p: (out / p).stat().st_size for p in ("lib/libdsedge.a", "lib/libdsedge.so", "bin/dsedge-run")}}


README = """# dsedge bundle ({target})

`model.dse` with the dsedge C runtime built for **{target}** by `{compiler}`
(flags `-std=c11 -ffp-contract=off`, `-Os` with the inner loops `-O2`; the same bytes on every target).

| path | what |
|---|---|
| `model.dse` | the model |
| `include/dsedge.h` | the C API (plus `dsedge_ops.h`) |
| `lib/libdsedge.a`, `lib/libdsedge.so` | the runtime (C11, libc + libm only) |
| `bin/dsedge-run` | static runner: `dsedge-run model.dse --input NAME=x.npy --output-dir out/ [--repeat 100]` |
| `python/dsedge_runtime/` | Python bindings (numpy only) over `lib/libdsedge.so` |

## Embed in C

```c
#include "dsedge.h"
dse_model *m; dse_session *s; dse_error e;
if (dse_model_load_file("model.dse", 0, &m, &e) != DSE_OK) {{ fprintf(stderr, "%s\\n", e.message); return 1; }}
dse_session_create(m, NULL, 0, &s, &e);          /* or pass your own arena of dse_arena_size(m) bytes */
dse_session_set_input(s, 0, input, input_bytes, &e);
dse_session_run(s, &e);
const void *y; size_t ny; dse_session_get_output(s, 0, &y, &ny);
dse_session_free(s); dse_model_free(m);
```

    cc -std=c11 -Iinclude app.c lib/libdsedge.a -lm -pthread -o app

A loaded model is immutable and may be shared by threads; use one session per thread.
Threads inside one inference: create the session with
`dse_session_options o = {{sizeof o, 4}}; dse_session_create_ex(m, NULL, 0, &o, &s, &e);`
(4 threads, the caller's included; the same output bytes for any count), or `dsedge-run --threads 4`.
Inputs and outputs: {io}

## Python

    PYTHONPATH=python python3 -c "import dsedge_runtime as d, numpy as np; rt = d.Runtime('model.dse'); print(rt.inputs)"
"""


# Every file a bundle holds, relative to its folder (the CLI refuses a bundle that would
# overwrite one of its own inputs).
BUNDLE_FILES = ("model.dse", "include/dsedge.h", "include/dsedge_ops.h", "lib/libdsedge.a", "lib/libdsedge.so",
                "bin/dsedge-run", "python/dsedge_runtime/__init__.py", "README.md", "manifest.json")


def _io_summary(dse_path: Path) -> str:
    from ..artifact import read
    a = read(dse_path)
    def f(i):
        t = a.tensors[i]
        q = f", scale {t.quant.scales[0]:.6g}, zero point {t.quant.zero_points[0]}" if t.quant and t.quant.axis is None else ""
        return f"`{t.name}` {t.dtype}{list(t.shape)}{q}"
    return "inputs " + "; ".join(f(i) for i in a.inputs) + " — outputs " + "; ".join(f(i) for i in a.outputs) + "."


def write_model(model, dst: Path, *, calib=None, quantize_options: dict | None = None, progress: bool = False,
                quantize=None) -> dict:
    """Put the model at `dst` as a `.dse`: copy a `.dse`, or quantise an ONNX model through
    `quantize` (dsedge.api.quantize, handed down by the API: the exporter does not import the
    layer above it): calibrated on `calib`, or without it dynamically (int8 weights, inputs of
    the weight layers quantised per inference)."""
    src = Path(os.fspath(model))
    if not src.is_file():
        raise ModelError(f"{src}: no such file")
    with open(src, "rb") as f:
        magic = f.read(8)
    if magic == b"\x89DSE\r\n\x1a\n":
        if calib is not None:
            raise DseError(f"{src}: is already a .dse artifact; --calib applies to ONNX models only")
        if src.resolve() != dst.resolve():
            shutil.copyfile(src, dst)
        return {"source": str(src), "quantized": False}
    if quantize is None:
        raise DseError(f"{src}: an ONNX model is quantised on the way by dsedge.api.export_bundle",
                       hint="call dsedge.api.export_bundle (or `dsedge export`), or export a .dse")
    result = quantize(src, calib, progress=progress, **{"pin_constant_inputs": True, **(quantize_options or {})})
    from .dse import save_dse
    save_dse(result, dst)
    return {"source": str(src), "quantized": True, "dynamic": bool(result.info.get("dynamic"))}


def export_bundle(model, out_dir, *, target: str = "host", calib=None, quantize_options: dict | None = None,
                  progress: bool = False, quantize=None) -> dict:
    """Write the bundle (see the module docstring) and return its manifest (also manifest.json).
    An ONNX `model` is quantised with `quantize` (see write_model)."""
    from .. import __version__
    from ..runtime import _build
    out = Path(os.fspath(out_dir))
    if out.exists() and not out.is_dir():
        raise DseError(f"{out}: exists and is not a folder", hint="give a folder for the bundle")
    tc = find_toolchain(target)   # fail early, before quantising, when no compiler exists
    out.mkdir(parents=True, exist_ok=True)
    info = write_model(model, out / "model.dse", calib=calib, quantize_options=quantize_options, progress=progress,
                       quantize=quantize)
    csrc = _build.csrc_dir()
    (out / "include").mkdir(exist_ok=True)
    for h in ("dsedge.h", "dsedge_ops.h"):
        shutil.copyfile(csrc / "include" / h, out / "include" / h)
    built = build_runtime(target, out, toolchain=tc)
    py = out / "python" / "dsedge_runtime"
    py.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(Path(_build.__file__).with_name("__init__.py"), py / "__init__.py")
    (out / "README.md").write_text(README.format(target=built["target"] if target != "host" else f"host ({host_target()})",
                                                 compiler=built["compiler"], io=_io_summary(out / "model.dse")))
    manifest = {"dsedge": __version__, "target": target, "arch": host_target() if target == "host" else target,
                "compiler": built["compiler"], "compiler_source": built["compiler_source"],
                "model": info, "sizes": {**built["sizes"], "model.dse": (out / "model.dse").stat().st_size},
                "qemu": None if target == "host" else _CROSS[target][4]}
    (out / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
    return manifest
