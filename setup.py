"""Build step that pyproject.toml cannot declare: the C runtime as a shared library inside
the package (`dsedge/runtime/_libdsedge*.so`), loaded by `dsedge.runtime` with ctypes.

Everything else (metadata, packages, package data) is in pyproject.toml. The extension is
compiled by `pip install .` and by `pip install -e .` (in place, next to runtimes/python),
from the sources and with the flags of the runtime's build manifest, runtimes/c/build.mk (read
by runtimes/python/_build.py): DSE_STD, DSE_OPT, DSE_WARN; an ISA group's FLAGS, when set, go
to that group's files only (compiled separately by `build_ext` below)."""
import hashlib
import importlib.util
import os
import sys
import sysconfig
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

ROOT = Path(__file__).resolve().parent
_spec = importlib.util.spec_from_file_location("_dsedge_build", ROOT / "runtimes" / "python" / "_build.py")
_build = importlib.util.module_from_spec(_spec)
sys.modules[_spec.name] = _build   # before running it: its dataclasses look their module up
_spec.loader.exec_module(_build)

CSRC = ROOT / "runtimes" / "c"
MANIFEST = _build.Manifest(CSRC)
sources = [p.relative_to(ROOT).as_posix() for p in MANIFEST.sources()] + ["runtimes/python/_pyinit.c"]
include_dirs = [p.relative_to(ROOT).as_posix() for p in MANIFEST.include_dirs]


class BuildExt(build_ext):
    """Every source is compiled on its own, in parallel (one job per CPU; setuptools compiles one
    file after another), files of an ISA group whose FLAGS is set (for the target's architecture)
    with those flags, and linked in as objects. Objects are kept in the runtime's object cache
    (runtimes/python/_build.py: ~/.cache/dsedge/objects, off with DSEDGE_NO_BUILD_CACHE=1) under a
    key of the compiler, its flags, every source and header and the file, so installing the same
    sources again (another venv, a reinstall) links instead of compiling."""

    def build_extension(self, ext):
        cc = list(getattr(self.compiler, "compiler_so", None) or [])
        arch = None
        if any(g.flags for g in MANIFEST.isa_groups()):
            arch = (_build.cc_arch(cc) if cc else None) or _build.host_arch()
        extra = {p.relative_to(ROOT).as_posix(): flags for srcs, flags in MANIFEST.compile_jobs(arch)[1:] for p in srcs}
        common = hashlib.sha256(repr([_build.source_hash(CSRC), _build.cc_identity(cc[:1]) if cc else "", cc,
                                      ext.define_macros, ext.include_dirs, ext.extra_compile_args,
                                      sysconfig.get_paths()["include"], self.compiler.include_dirs]).encode())

        def one(src):
            flags = list(extra.get(src, ()))
            obj = self.compiler.object_filenames([src], output_dir=self.build_temp)[0]
            key = common.copy()
            key.update(repr([src, flags]).encode() + b"\0" + (ROOT / src).read_bytes())
            _build.compile_cached(key, Path(obj), lambda: self.compiler.compile(
                [src], output_dir=self.build_temp, macros=ext.define_macros, include_dirs=ext.include_dirs,
                extra_postargs=[*ext.extra_compile_args, *flags], depends=ext.depends))
            return obj
        with ThreadPoolExecutor(max_workers=max(1, os.cpu_count() or 1)) as pool:
            objs = list(pool.map(one, ext.sources))
        ext.sources = []
        ext.extra_objects = [*objs, *(ext.extra_objects or [])]
        super().build_extension(ext)


setup(
    cmdclass={"build_ext": BuildExt},
    ext_modules=[
        Extension(
            "dsedge.runtime._libdsedge",
            sources=sources,
            include_dirs=include_dirs,
            define_macros=[("DSEDGE_SOURCE_HASH", f'"{_build.source_hash(CSRC)}"')],
            extra_compile_args=MANIFEST.std + MANIFEST.opt + ["-Wno-unused-parameter"] + _build.option_defines(),
            libraries=list(MANIFEST.get("DSE_LIBS")),
            depends=[p.relative_to(ROOT).as_posix() for p in _build.hashed_files(CSRC)],
        )
    ],
)
