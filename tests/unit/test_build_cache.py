"""The runtime build cache of dsedge.export.bundle.build_runtime: a second build with the same
key copies the stored files instead of compiling; any change of a source, the build options or
the compiler is a new key; a failed build stores nothing; DSEDGE_NO_BUILD_CACHE=1 turns it off.
The compile itself is replaced by a recorder (the real builds are tested in tests/runtime)."""
from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from dsedge.errors import DseError
from dsedge.export import bundle
from dsedge.runtime import _build

CDIR = Path(__file__).resolve().parents[2] / "runtimes" / "c"


@pytest.fixture
def fake(monkeypatch, tmp_path):
    calls = []

    def build(target, out, tc, profile, m):
        calls.append((target, profile, m.csrc))
        if getattr(tc, "source", "") == "broken":
            raise DseError("compile failed")
        for i, f in enumerate(bundle.BUILD_OUTPUTS):
            (out / f).parent.mkdir(parents=True, exist_ok=True)
            (out / f).write_bytes(b"built %d %d" % (len(calls), i))
        return {"target": target, "n": len(calls)}

    monkeypatch.setattr(bundle, "_build_runtime", build)
    monkeypatch.setenv("DSEDGE_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.delenv("DSEDGE_NO_BUILD_CACHE", raising=False)
    monkeypatch.delenv("DSEDGE_REF_FLOAT", raising=False)
    return calls


def tc(source="test", cc=("true",)):
    return bundle.Toolchain("arm64", tuple(cc), tuple(cc), ("ar",), source)


def test_second_build_is_copied(fake, tmp_path):
    a = bundle.build_runtime("arm64", tmp_path / "a", toolchain=tc())
    b = bundle.build_runtime("arm64", tmp_path / "b", toolchain=tc())
    assert len(fake) == 1 and a == b
    for f in bundle.BUILD_OUTPUTS:
        assert (tmp_path / "b" / f).read_bytes() == (tmp_path / "a" / f).read_bytes()


def test_key_changes_rebuild(fake, tmp_path, monkeypatch):
    bundle.build_runtime("arm64", tmp_path / "o1", toolchain=tc())
    bundle.build_runtime("armv7", tmp_path / "o2", toolchain=tc())                 # another target
    bundle.build_runtime("arm64", tmp_path / "o3", toolchain=tc(cc=("echo", "x")))  # another compiler
    monkeypatch.setenv("DSEDGE_REF_FLOAT", "1")
    bundle.build_runtime("arm64", tmp_path / "o4", toolchain=tc())                 # another build option
    monkeypatch.delenv("DSEDGE_REF_FLOAT")
    d = tmp_path / "c"                                                              # another source
    shutil.copytree(CDIR, d, ignore=shutil.ignore_patterns("build", "corpus", "fuzz"))
    src = _build.Manifest(d).sources()[0]
    src.write_text(src.read_text() + "\n/* changed */\n")
    bundle.build_runtime("arm64", tmp_path / "o5", toolchain=tc(), csrc=d)
    assert len(fake) == 5
    bundle.build_runtime("arm64", tmp_path / "o6", toolchain=tc())                 # the first again: cached
    assert len(fake) == 5


def test_failure_stores_nothing_and_cache_can_be_off(fake, tmp_path, monkeypatch):
    for _ in range(2):
        with pytest.raises(DseError):
            bundle.build_runtime("arm64", tmp_path / "f", toolchain=tc(source="broken"))
    assert len(fake) == 2
    monkeypatch.setenv("DSEDGE_NO_BUILD_CACHE", "1")
    bundle.build_runtime("arm64", tmp_path / "x", toolchain=tc())
    bundle.build_runtime("arm64", tmp_path / "y", toolchain=tc())
    assert len(fake) == 4 and not (tmp_path / "cache").exists()


# -- the object cache of _build.build_binary (the tests' and tools' library builds) ------------

def _objects(tmp_path) -> list[Path]:
    d = tmp_path / "cache" / "objects"
    return sorted(d.glob("*.o")) if d.is_dir() else []


def test_object_cache_reuses_and_keys(tmp_path, monkeypatch):
    """Real compiles of two small sources into a shared object: the second identical build
    compiles nothing (every object from the cache, the same library bytes); other flags, another
    compiler command or a changed source compile again; DSEDGE_NO_BUILD_CACHE=1 stores nothing."""
    cc = _build.host_cc()
    if cc is None:
        pytest.skip("no C compiler")
    monkeypatch.setenv("DSEDGE_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.delenv("DSEDGE_NO_BUILD_CACHE", raising=False)
    csrc = tmp_path / "c"
    shutil.copytree(CDIR, csrc)
    srcs = [csrc / "src" / "attr.c", csrc / "src" / "mathf.c"]
    real_run, compiles = _build.subprocess.run, []

    def run(cmd, *a, **k):
        if "-c" in cmd:
            compiles.append(cmd)
        return real_run(cmd, *a, **k)

    monkeypatch.setattr(_build.subprocess, "run", run)

    def build(name, flags=(), cc_=cc):
        compiles.clear()
        out = tmp_path / name
        _build.build_binary(cc_, out, csrc=csrc, sources=srcs, werror=False, flags=["-fPIC", "-shared", *flags])
        return out.read_bytes(), len(compiles)

    first, n1 = build("a.so")
    assert n1 == 2 and len(_objects(tmp_path)) == 2
    again, n2 = build("b.so")
    assert n2 == 0 and again == first
    _, n3 = build("c.so", ["-DDSE_TEST_FLAG=1"])
    assert n3 == 2 and len(_objects(tmp_path)) == 4
    _, n4 = build("d.so", cc_=[*cc, "-DDSE_VIA_CC=1"])
    assert n4 == 2
    srcs[1].write_text(srcs[1].read_text() + "\nint dse_test_extra_symbol;\n")
    _, n5 = build("e.so")
    assert n5 == 2          # any source of the library (a header too) is part of every key
    monkeypatch.setenv("DSEDGE_NO_BUILD_CACHE", "1")
    before = len(_objects(tmp_path))
    _, n6 = build("f.so", ["-DDSE_OTHER=1"])
    assert n6 == 2 and len(_objects(tmp_path)) == before
