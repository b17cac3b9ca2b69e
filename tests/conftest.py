"""Suite-wide settings.

Skips. A test skips only when a tool it needs is missing (a C compiler, qemu-user, ziglang, a
dev model) or when a case does not apply (its reason then starts with "n/a:"). Where every
tool is meant to be there — CI, and `.ci/run` anywhere, which set DSEDGE_STRICT_SKIPS=1 or
CI=true — a skip of the first kind is a failure: CI must not pass while skipping what it
exists to check. Skip reasons are listed at the end of the run (`-rs`).
"""
import os
import sys

import pytest

# make `tests.onnx_check` importable whatever the rootdir
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

STRICT_SKIPS = (os.environ.get("DSEDGE_STRICT_SKIPS") == "1"
                or os.environ.get("CI", "").lower() in ("1", "true", "yes"))
NOT_APPLICABLE = "n/a:"


def _skip_reason(rep) -> str:
    lr = rep.longrepr
    if isinstance(lr, tuple) and len(lr) == 3:
        return str(lr[2])
    return str(lr)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    rep = outcome.get_result()
    if not STRICT_SKIPS or not rep.skipped or hasattr(rep, "wasxfail"):
        return
    reason = _skip_reason(rep)
    if reason.removeprefix("Skipped: ").startswith(NOT_APPLICABLE):
        return
    rep.outcome = "failed"
    rep.longrepr = (f"skipped where every tool must be installed (CI / .ci/run): {reason}\n"
                    "Install what it names in .ci/run, or start the reason with 'n/a:' if the case does not apply.")


# -- the order files go to pytest-xdist's workers (`-n 2 --dist loadfile`, the README's command) --
#
# loadfile hands a worker one whole file at a time, in the order of the work queue, and by
# default (xdist's --loadscope-reorder) that queue is sorted by the number of tests per file: the
# files of a few long tests — the cross builds under qemu, the pip installs, the end-to-end model
# runs — went out last, and one of them running alone on one core set the run's tail. Under
# loadfile the queue is instead this suite's order: the files below first, longest first (their
# seconds on 2 cores in the session-15 CI, `--durations=30`), then every other file by its number
# of tests as xdist would. Only files move, never tests inside a file; without xdist nothing
# changes. (test_install.py stays at the back: its `pip install .` is test_export_bundle's, shared,
# tests/venvs.py.)
HEAVY_FILES = {
    "tests/models/test_e2e_runtime.py": 600,
    "tests/runtime/test_export_bundle.py": 400,
    "tests/runtime/test_pool.py": 200,
    "tests/runtime/test_kernels_int8_opt.py": 160,
    "tests/runtime/test_bindings.py": 120,
    "tests/runtime/test_build_manifest.py": 95,
    "tests/runtime/test_loader.py": 90,
    "tests/runtime/test_kernels_any.py": 70,
    "tests/runtime/test_kernels_f32_nn.py": 60,
    "tests/runtime/test_kernels_vnni.py": 60,
    "tests/quant/test_w4a8.py": 40,
    "tests/runtime/test_kernels_neon_f32.py": 35,
    "tests/runtime/test_kernels_f32_avx2.py": 35,
    "tests/runtime/test_profile.py": 30,
    "tests/quant/test_fp16_arith.py": 25,
    "tests/quant/test_dynamic.py": 20,
}


def _loadfile(config) -> bool:
    return getattr(config.option, "dist", "no") == "loadfile"


def pytest_configure(config):
    if _loadfile(config) and hasattr(config.option, "loadscopereorder"):
        config.option.loadscopereorder = False   # the controller's queue: the collection order below


@pytest.hookimpl(optionalhook=True)
def pytest_configure_node(node):   # pytest-xdist, in the controller: workers run with dist "no"
    node.workerinput["dsedge_loadfile"] = _loadfile(node.config)


def pytest_collection_modifyitems(session, config, items):
    wi = getattr(config, "workerinput", None)
    if not (wi.get("dsedge_loadfile", False) if wi is not None else _loadfile(config)):
        return
    files: dict[str, int] = {}
    for it in items:
        f = it.nodeid.split("::", 1)[0]
        files[f] = files.get(f, 0) + 1
    # heavy files by their seconds, then the rest by test count (xdist's order); ties: as collected
    rank = {f: (0, -HEAVY_FILES[f], 0) if f in HEAVY_FILES else (1, 0, -n) for f, n in files.items()}
    pos = {f: k for k, f in enumerate(files)}
    items.sort(key=lambda it: (rank[it.nodeid.split("::", 1)[0]], pos[it.nodeid.split("::", 1)[0]]))
