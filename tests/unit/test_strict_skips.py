"""tests/conftest.py's strict skips: where every tool must be installed (DSEDGE_STRICT_SKIPS=1
or CI=true, as .ci/run and CI set), a test that skips because something is missing fails;
a case that does not apply ("n/a: ..." reason) and xfail still pass; elsewhere skips are
skips. Checked by running pytest on a small test file with the suite's conftest."""
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

CASES = '''
import pytest

def test_missing_tool():
    pytest.skip("qemu-aarch64 is not installed")

def test_not_applicable():
    pytest.skip("n/a: negative pads are checked in constant mode")

@pytest.mark.skipif(True, reason="no C compiler")
def test_marked():
    pass

@pytest.mark.xfail(reason="known")
def test_expected_failure():
    assert 0
'''


def _run(tmp_path: Path, **env) -> str:
    shutil.copy(Path(__file__).resolve().parents[1] / "conftest.py", tmp_path / "conftest.py")
    (tmp_path / "test_cases.py").write_text(CASES)
    clean = {k: v for k, v in os.environ.items() if k not in ("CI", "DSEDGE_STRICT_SKIPS", "PYTEST_ADDOPTS")}
    r = subprocess.run([sys.executable, "-m", "pytest", "-q", "-rs", "-p", "no:cacheprovider", "-p", "no:xdist",
                        str(tmp_path / "test_cases.py")], capture_output=True, text=True, cwd=tmp_path,
                       env={**clean, **env}, timeout=120)
    return r.stdout.strip().splitlines()[-1]


@pytest.mark.parametrize("env", [{"DSEDGE_STRICT_SKIPS": "1"}, {"CI": "true"}], ids=["DSEDGE_STRICT_SKIPS", "CI"])
def test_strict_skips_fail_what_is_missing(tmp_path, env):
    last = _run(tmp_path, **env)
    assert "1 failed" in last and "1 skipped" in last and "1 xfailed" in last and "1 error" in last, last


def test_skips_elsewhere_are_skips(tmp_path):
    last = _run(tmp_path)
    assert "3 skipped" in last and "1 xfailed" in last and not re.search(r"\d+ (failed|error)", last), last
