"""Build step that pyproject.toml cannot declare: the C runtime as a shared library inside
the package (`dsedge/runtime/_libdsedge*.so`), loaded by `dsedge.runtime` with ctypes.

Everything else (metadata, packages, package data) is in pyproject.toml. The extension is
compiled by `pip install .` and by `pip install -e .` (in place, next to runtimes/python),
with the runtime's flags (-std=c11 -ffp-contract=off -O2, runtimes/python/_build.py)."""
import importlib.util
from pathlib import Path

from setuptools import Extension, setup

ROOT = Path(__file__).resolve().parent
_spec = importlib.util.spec_from_file_location("_dsedge_build", ROOT / "runtimes" / "python" / "_build.py")
_build = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_build)

CSRC = ROOT / "runtimes" / "c"
sources = [p.relative_to(ROOT).as_posix() for p in _build.library_sources(CSRC)] + ["runtimes/python/_pyinit.c"]

setup(
    ext_modules=[
        Extension(
            "dsedge.runtime._libdsedge",
            sources=sources,
            include_dirs=["runtimes/c/include", "runtimes/c/src"],
            define_macros=[("DSEDGE_SOURCE_HASH", f'"{_build.source_hash(CSRC)}"')],
            extra_compile_args=_build.STD_FLAGS + ["-Wno-unused-parameter"],
            libraries=["m"],
            depends=[p.relative_to(ROOT).as_posix() for p in _build.hashed_files(CSRC)],
        )
    ],
)
