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
