"""Build step that pyproject.toml cannot declare: the C runtime as a shared library inside
the package (`dsedge/runtime/_libdsedge*.so`), loaded by `dsedge.runtime` with ctypes.

Everything else (metadata, packages, package data) is in pyproject.toml. The extension is
compiled by `pip install .` and by `pip install -e .` (in place, next to runtimes/python),
from the sources and with the flags of the runtime's build manifest, runtimes/c/build.mk (read
by runtimes/python/_build.py): DSE_STD, DSE_OPT, DSE_WARN; an ISA group's FLAGS, when set, go
to that group's files only (compiled separately by `build_ext` below)."""
import importlib.util
import sys
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
    """Files of an ISA group whose FLAGS is set (for the target's architecture) are compiled
    on their own with those flags and linked in as objects."""

    def build_extension(self, ext):
        arch = None
        if any(g.flags for g in MANIFEST.isa_groups()):
            cc = getattr(self.compiler, "compiler_so", None)
            arch = (_build.cc_arch(cc) if cc else None) or _build.host_arch()
        jobs = MANIFEST.compile_jobs(arch)
        for srcs, flags in jobs[1:]:
            rel = [p.relative_to(ROOT).as_posix() for p in srcs]
            ext.sources = [s for s in ext.sources if s not in rel]
            ext.extra_objects = list(ext.extra_objects or []) + self.compiler.compile(
                rel, output_dir=self.build_temp, macros=ext.define_macros, include_dirs=ext.include_dirs,
                extra_postargs=[*ext.extra_compile_args, *flags], depends=ext.depends)
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
