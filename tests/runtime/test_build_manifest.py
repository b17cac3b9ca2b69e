"""The C runtime's build manifest (runtimes/c/build.mk) is the one list of sources, source groups
and flags: its groups cover exactly the .c files on disk, and every builder (the Makefile,
CMake, setup.py, the bindings' fallback build and the tests' `_build.build_binary`, the bundle
exporter, fuzz/coverage.sh) takes its sources and flags from it, an ISA group's FLAGS on that
group's files only and only for its architecture. It ships in the wheel."""
from __future__ import annotations

import fnmatch
import json
import os
import re
import runpy
import shutil
import subprocess
from pathlib import Path

import pytest

from dsedge.runtime import _build

ROOT = Path(__file__).resolve().parents[2]
CDIR = ROOT / "runtimes" / "c"
CC = os.environ.get("CC") or shutil.which("cc") or shutil.which("gcc") or shutil.which("clang")
ARCHES = {"x86_64", "arm64", "armv7"}


@pytest.fixture(scope="module")
def m():
    return _build.Manifest(CDIR)


def rel(paths, base=CDIR):
    return [Path(p).resolve().relative_to(base.resolve()).as_posix() for p in paths]


# -- the manifest itself ---------------------------------------------------------------------

def test_manifest_lines_are_plain_assignments(m):
    """Every line is a comment, blank, or `NAME = value` without make syntax (what CMake's regex
    and the Python parser read the same way as make)."""
    for n, line in enumerate(m.path.read_text().splitlines(), 1):
        assert not line.strip() or line.startswith("#") or re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]* = ?[^$\\]*", line), \
            f"build.mk:{n}: {line!r}"
    for key in ("DSE_STD", "DSE_WARN", "DSE_WERROR", "DSE_OPT", "DSE_LINK_OPT", "DSE_INCLUDE_DIRS", "DSE_LIBS",
                "DSE_CORE_SOURCES", "DSE_HOT_SOURCES", "DSE_ISA_GROUPS", "DSE_BUNDLE_PROFILES", "DSE_BUNDLE_FLAGS"):
        assert key in m.vars, key
    assert "-ffp-contract=off" in m.std and "-std=c11" in m.std
    assert not {"-ffast-math", "-march=native", "-Ofast"} & set().union(*m.vars.values())
    assert m.bundle_profiles()["default"] == (("-Os",), ("-O2",))


def test_manifest_sources_are_the_files_on_disk(m):
    """Every .c under src/ and kernels/ is in exactly one group (core, or one ISA group); every
    kernels/<dir> is ref or an ISA group's; each ISA group names its architecture and flags."""
    on_disk = sorted(rel(list((CDIR / "src").rglob("*.c")) + list((CDIR / "kernels").rglob("*.c"))))
    groups = {"core": rel(m.core_sources())}
    for g in m.isa_groups():
        assert g.arch in ARCHES, (g.name, g.arch)
        assert all(p == f"kernels/{g.name}/*.c" for p in g.patterns), (g.name, g.patterns)
        assert f"DSE_ISA_{g.name}_FLAGS" in m.vars   # present, even when empty
        groups[g.name] = rel(m.expand(g.patterns))
    seen = [f for files in groups.values() for f in files]
    assert sorted(seen) == on_disk, "a source is in no group or in two: edit runtimes/c/build.mk"
    assert len(seen) == len(set(seen))
    assert rel(m.sources()) == seen
    dirs = {p.name for p in (CDIR / "kernels").iterdir() if p.is_dir()}
    assert dirs <= {"ref"} | {g.name for g in m.isa_groups()}, dirs
    assert {g.name for g in m.isa_groups()} >= {"avx2", "avxvnni", "avx512vnni", "neon", "neon_dotprod", "neon_i8mm",
                                                 "neon32"}
    hot = rel(m.hot_sources())
    assert "kernels/ref/loops.c" in hot and set(hot) - {"kernels/ref/loops.c"} == set(seen) - set(groups["core"])
    assert _build.library_sources(CDIR) == m.sources()
    assert CDIR / "build.mk" in _build.hashed_files(CDIR)


def test_manifest_ships_in_the_wheel(m):
    """pyproject's package data for dsedge.runtime.csrc holds build.mk and every file the
    manifest and the builders read."""
    import tomllib
    data = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    assert data["package-dir"]["dsedge.runtime.csrc"] == "runtimes/c"
    pats = data["package-data"]["dsedge.runtime.csrc"]
    need = ["build.mk", "Makefile", "CMakeLists.txt", *rel(m.sources()), *rel(_build.hashed_files(CDIR)),
            *rel((CDIR / "tools").glob("*.c"))]
    for f in need:
        assert any(fnmatch.fnmatch(f, p) and f.count("/") == p.count("/") for p in pats), f"{f} is not package data"
    for g in m.isa_groups():   # a future kernels/<isa>/<op>.c is covered too
        assert any(fnmatch.fnmatch(f"kernels/{g.name}/x.c", p) for p in pats)


def test_no_builder_keeps_its_own_list():
    """No compile command outside the manifest spells the flags or globs the sources itself."""
    files = [ROOT / "setup.py", *(ROOT / "dsedge").rglob("*.py"), *(ROOT / "runtimes" / "python").glob("*.py"),
             *(ROOT / "tests").rglob("*.py"), *(ROOT / "benchmarks").rglob("*.py"), *(CDIR / "fuzz").glob("*.sh"),
             CDIR / "Makefile", CDIR / "CMakeLists.txt"]
    bad = []
    for f in files:
        if f.resolve() == Path(__file__).resolve():
            continue
        py = f.suffix == ".py"
        for n, line in enumerate(f.read_text().splitlines(), 1):
            code = line.split("#", 1)[0]
            if re.search(r"""["']-ffp-contract=off["']|"(src|ref)"\)\.glob\("\*\.c"\)|glob\("\*/\*\.c"\)""" if py else
                         r"-ffp-contract=off|(src|kernels/ref)/\*\.c", code):
                bad.append(f"{f.relative_to(ROOT)}:{n}: {line.strip()}")
    assert not bad, "\n".join(bad)


# -- each builder reads it -------------------------------------------------------------------

def _make(*args, cwd=CDIR):
    r = subprocess.run(["make", "-s", "--no-print-directory", "-C", str(cwd), *args], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    return r.stdout.split()


@pytest.mark.skipif(shutil.which("make") is None, reason="no make")
def test_makefile_reads_the_manifest(m):
    assert _make("print-SRCS") == rel(m.sources())
    assert _make("print-STD") == m.std and _make("print-OPT") == m.opt
    assert _make("print-WARN") == m.warn + m.werror
    assert _make("print-INC") == [f"-I{d}" for d in m.get("DSE_INCLUDE_DIRS")]


def _cmake_target(src: Path, build: Path) -> dict:
    q = build / ".cmake" / "api" / "v1" / "query"
    q.mkdir(parents=True)
    (q / "codemodel-v2").touch()
    r = subprocess.run(["cmake", "-S", str(src), "-B", str(build), "-DDSEDGE_BUILD_TESTS=OFF",
                        "-DCMAKE_BUILD_TYPE=Release"], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr[-3000:]
    reply = next((build / ".cmake" / "api" / "v1" / "reply").glob("target-dsedge-*.json"))
    return json.loads(reply.read_text())


def _cmake_flags(t: dict, path: str) -> list[str]:
    s = next(s for s in t["sources"] if s["path"] == path)
    return " ".join(f["fragment"] for f in t["compileGroups"][s["compileGroupIndex"]]["compileCommandFragments"]).split()


@pytest.mark.skipif(shutil.which("cmake") is None, reason="no cmake")
def test_cmake_reads_the_manifest(m, tmp_path):
    t = _cmake_target(CDIR, tmp_path / "b")
    assert [s["path"] for s in t["sources"]] == rel(m.sources())
    flags = _cmake_flags(t, "src/loader.c")
    for f in (*m.std, *m.warn, *m.werror, *m.opt):
        assert f in flags, (f, flags)


def test_setup_py_reads_the_manifest(m, monkeypatch):
    """setup.py's extension: the manifest's sources (+ the bindings' stub) and flags."""
    import setuptools
    got = {}
    monkeypatch.setattr(setuptools, "setup", lambda **kw: got.update(kw))
    monkeypatch.chdir(ROOT)
    runpy.run_path(str(ROOT / "setup.py"))
    (ext,) = got["ext_modules"]
    assert ext.sources == rel(m.sources(), ROOT) + ["runtimes/python/_pyinit.c"]
    assert ext.extra_compile_args[:len(m.std) + len(m.opt)] == m.std + m.opt
    assert ext.include_dirs == rel(m.include_dirs, ROOT) and ext.libraries == list(m.get("DSE_LIBS"))
    assert "runtimes/c/build.mk" in ext.depends


def test_bundle_units_read_the_manifest(m, tmp_path):
    """The bundle's units include every library source once: the hot sources (loops.c and every
    ISA group) in the HOT unit, the rest in the COLD one, with the profile's flags."""
    from dsedge.export.bundle import _units
    for profile, (cold, hot) in m.bundle_profiles().items():
        d = tmp_path / profile
        d.mkdir()
        units = _units(m, _build.host_arch(), d, profile)
        inc = {u.name: re.findall(r'#include "(.+)"', u.read_text()) for u, _ in units}
        assert sorted(f for fs in inc.values() for f in fs) == sorted(p.resolve().as_posix() for p in m.sources())
        assert inc["dsedge_hot.c"] == [p.resolve().as_posix() for p in m.hot_sources()]
        assert dict((u.name, opt) for u, opt in units) == {"dsedge_lib.c": cold, "dsedge_hot.c": hot}


# -- ISA group flags: honoured, for their group and architecture only ----------------------------

PROBE = '#include "isa.h"\n#ifndef DSE_PROBE_FLAG\n#error the group flags were not applied\n#endif\nint dse_probe_{n};\n'
NOPROBE = '#include "isa.h"\n#ifdef DSE_PROBE_FLAG\n#error group flags leaked to a core file\n#endif\nint dse_noprobe;\n'


@pytest.fixture(scope="module")
def flagged(tmp_path_factory):
    """A copy of the C tree whose host-architecture ISA group has FLAGS = -DDSE_PROBE_FLAG=1 and a
    probe file that fails to compile without them (and a core file that fails with them)."""
    arch = _build.host_arch()
    groups = [g for g in _build.Manifest(CDIR).isa_groups() if g.arch == arch]
    if not groups:
        pytest.skip(f"no ISA group for {arch}")
    g = groups[0]
    d = tmp_path_factory.mktemp("flagged") / "c"
    shutil.copytree(CDIR, d, ignore=shutil.ignore_patterns("build", "corpus"))
    (d / "kernels" / g.name).mkdir(exist_ok=True)
    (d / "kernels" / g.name / "zz_probe.c").write_text(PROBE.format(n=g.name))
    (d / "kernels" / "ref" / "zz_noprobe.c").write_text(NOPROBE)
    mk = d / "build.mk"
    mk.write_text(re.sub(rf"^DSE_ISA_{g.name}_FLAGS =.*$", f"DSE_ISA_{g.name}_FLAGS = -DDSE_PROBE_FLAG=1 -DDSE_PROBE2",
                         mk.read_text(), flags=re.M))
    return d, g, arch


def test_group_flags_manifest(flagged):
    d, g, arch = flagged
    m = _build.Manifest(d)
    probe = d / "kernels" / g.name / "zz_probe.c"
    group = sorted((d / "kernels" / g.name).glob("*.c"))   # the probe and the group's own files
    assert probe in group and m.group_flags(arch) == {p: ("-DDSE_PROBE_FLAG=1", "-DDSE_PROBE2") for p in group}
    assert m.group_flags("no-such-arch") == {}
    jobs = m.compile_jobs(arch)
    assert jobs[1] == (group, ("-DDSE_PROBE_FLAG=1", "-DDSE_PROBE2")) and probe not in jobs[0][0]


@pytest.mark.skipif(shutil.which("make") is None, reason="no make")
def test_group_flags_makefile(flagged, tmp_path):
    d, g, arch = flagged
    objs = [str(tmp_path / "obj" / "kernels" / g.name / "zz_probe.o"), str(tmp_path / "obj/kernels/ref/zz_noprobe.o")]
    _make(f"O={tmp_path}", f"CC={CC}", f"ARCH={arch}", *objs, cwd=d)   # fails on a missing or leaked flag
    dry = subprocess.run(["make", "-n", "-B", "-C", str(d), f"O={tmp_path}", f"CC={CC}", "ARCH=other", objs[0]],
                         capture_output=True, text=True).stdout
    assert "zz_probe.c" in dry and "DSE_PROBE_FLAG" not in dry   # another architecture: no group flags


@pytest.mark.skipif(shutil.which("cmake") is None, reason="no cmake")
def test_group_flags_cmake(flagged, tmp_path):
    d, g, arch = flagged
    t = _cmake_target(d, tmp_path / "b")
    assert "-DDSE_PROBE_FLAG=1" in _cmake_flags(t, f"kernels/{g.name}/zz_probe.c")
    assert "-DDSE_PROBE_FLAG=1" not in _cmake_flags(t, "kernels/ref/zz_noprobe.c")
    assert "-DDSE_PROBE_FLAG=1" not in _cmake_flags(t, "src/session.c")


def test_group_flags_build_binary(flagged, tmp_path):
    """_build.build_binary (the bindings' fallback build, the tests' cross builds) compiles the
    group's files with the flags, the others without."""
    d, g, arch = flagged
    main = tmp_path / "main.c"
    main.write_text("int main(void) { return 0; }\n")
    srcs = [d / "kernels" / g.name / "zz_probe.c", d / "kernels" / "ref" / "zz_noprobe.c"]
    _build.build_binary([CC], tmp_path / "exe", csrc=d, arch=arch, sources=srcs, extra_sources=[main])
    with pytest.raises(RuntimeError, match="group flags were not applied"):
        _build.build_binary([CC], tmp_path / "exe2", csrc=d, arch="other", sources=srcs, extra_sources=[main])


def test_group_flags_bundle_unit(flagged, tmp_path):
    """The bundle gives a flagged group a hot unit of its own, with the flags."""
    from dsedge.export.bundle import _units
    d, g, arch = flagged
    m = _build.Manifest(d)
    units = {u.name: (re.findall(r'#include "(.+)"', u.read_text()), opt) for u, opt in _units(m, arch, tmp_path, "default")}
    probe = (d / "kernels" / g.name / "zz_probe.c").resolve().as_posix()
    group = [p.resolve().as_posix() for p in sorted((d / "kernels" / g.name).glob("*.c"))]
    assert probe in group and units["dsedge_hot1.c"] == (group, ("-O2", "-DDSE_PROBE_FLAG=1", "-DDSE_PROBE2"))
    assert probe not in units["dsedge_hot.c"][0] and probe not in units["dsedge_lib.c"][0]
    assert (d / "kernels/ref/zz_noprobe.c").resolve().as_posix() in units["dsedge_lib.c"][0]


# -- a variant in the bundle's hot unit -------------------------------------------------------

VARIANT = r"""
#include "isa.h"
#if DSE_ARCH_X86_64
#include <immintrin.h>
DSE_TARGET_AVX2 static void floor_avx2_row(float *y, const float *x, size_t n) {
    size_t i = 0;
    for (; i + 8 <= n; i += 8) _mm256_storeu_ps(y + i, _mm256_floor_ps(_mm256_loadu_ps(x + i)));
    for (; i < n; i++) y[i] = __builtin_floorf(x[i]);
}
void dse_f32_floor__avx2(const dse_model *m, const dse_node *n, uint8_t *arena, const dse_ctx *cx) {
    (void)cx;
    floor_avx2_row(dse__data(m, arena, n->out[0]), dse__data(m, arena, n->in[0]), m->tensors[n->in[0]].numel);
}
#endif
"""


@pytest.mark.skipif(_build.host_arch() != "x86_64", reason="the probe variant is AVX2")
def test_variant_links_across_bundle_units(tmp_path):
    """A variant in kernels/avx2/ (hot unit) listed in kernels_x86.inc, reusing a REF check (cold
    unit), builds into a bundle library whose only new global is the variant's run function
    (hidden), and the loader picks it on an AVX2 CPU (the REF kernel with DSE_LOAD_REF_KERNELS)."""
    import ctypes as C
    import numpy as np
    from dsedge.artifact import Artifact, NodeRec, TensorRec, op_id
    from dsedge.export.bundle import build_runtime
    from dsedge.runtime import _Error, _declare
    d = tmp_path / "c"
    shutil.copytree(CDIR, d, ignore=shutil.ignore_patterns("build", "corpus"))
    (d / "kernels" / "avx2").mkdir(exist_ok=True)
    (d / "kernels" / "avx2" / "zz_floor_probe.c").write_text(VARIANT)
    with open(d / "src" / "kernels_x86.inc", "a") as f:
        f.write("DSE_KERNEL(FLOOR, FLOAT32, AVX2, dse__check_unary_f32, dse_f32_floor__avx2, SAME)\n")
    b = build_runtime("host", tmp_path / "out", csrc=d)
    nm = shutil.which("nm")
    if nm:
        syms = subprocess.run([nm, "-g", "--defined-only", str(tmp_path / "out/lib/libdsedge.a")], capture_output=True,
                              text=True).stdout
        assert " dse_f32_floor__avx2" in syms and "dse__check_unary_f32" not in syms
    L = C.CDLL(str(tmp_path / "out" / "lib" / "libdsedge.so"))
    _declare(L)
    art = Artifact(tensors=(TensorRec.arena("x", "float32", (37,), 0), TensorRec.arena("y", "float32", (37,), 192)),
                   nodes=(NodeRec(op_id("Floor"), (0,), (1,)),), inputs=(0,), outputs=(1,), arena_size=384)
    data = art.to_bytes()
    x = np.random.default_rng(0).standard_normal(37).astype(np.float32)
    cpu_avx2 = "avx2" in Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").exists() else False
    for flags, want in ((0, "dse_f32_floor__avx2" if cpu_avx2 else "dse_f32_floor__ref"), (2, "dse_f32_floor__ref")):
        raw = np.zeros(len(data) + 64, np.uint8)
        start = (-raw.ctypes.data) % 64
        raw[start:start + len(data)] = np.frombuffer(data, np.uint8)
        h, s, err = C.c_void_p(), C.c_void_p(), _Error()
        assert L.dse_model_load_ex(raw.ctypes.data + start, len(data), flags, C.byref(h), C.byref(err)) == 0, \
            err.message
        assert L.dse_model_node_kernel(h, 0) == want.encode()
        assert L.dse_session_create(h, None, 0, C.byref(s), C.byref(err)) == 0
        assert L.dse_session_set_input(s, 0, x.ctypes.data, x.nbytes, C.byref(err)) == 0
        assert L.dse_session_run(s, C.byref(err)) == 0
        p, n = C.c_void_p(), C.c_size_t()
        L.dse_session_get_output(s, 0, C.byref(p), C.byref(n))
        assert C.string_at(p.value, n.value) == np.floor(x).tobytes()
        L.dse_session_free(s)
        L.dse_model_free(h)
    assert b["sizes"]["lib/libdsedge.a"] > 0
