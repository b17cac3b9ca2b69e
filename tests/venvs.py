"""Test helper: a fresh virtual environment that sees the test interpreter's packages.

`python -m venv --system-site-packages` links the *base* interpreter's site-packages. Run
from inside a user's own venv (`python3 -m venv v && . v/bin/activate`, then the README), that
is not where numpy, onnx and onnxruntime were installed, so a nested venv made that way cannot
import them. Instead the new venv gets one `.pth` line that adds a folder of links to every
entry of the running interpreter's site-packages (system-wide or venv alike), except dsedge's
own: the dsedge under test is the one installed into the new venv, never the outer one.
"""
from __future__ import annotations

import fcntl
import os
import shutil
import site
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _outer_site_dirs() -> list[Path]:
    dirs = list(site.getsitepackages())
    if site.ENABLE_USER_SITE and os.path.isdir(site.getusersitepackages()):
        dirs.append(site.getusersitepackages())
    return [Path(d) for d in dirs if os.path.isdir(d)]


def _is_dsedge(name: str) -> bool:
    n = name.lower()
    return n.startswith(("dsedge", "__editable__.dsedge", "__editable___dsedge"))


def make_venv(path: Path) -> Path:
    """Create a venv at `path` whose interpreter sees the test interpreter's packages but no
    installed dsedge; returns the venv's python."""
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(path)], check=True)
    py = path / "bin" / "python"
    purelib = Path(subprocess.run([str(py), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                                  capture_output=True, text=True, check=True).stdout.strip())
    lines = []
    for k, d in enumerate(_outer_site_dirs()):
        shadow = path / f"outer-site-{k}"
        shadow.mkdir()
        for entry in sorted(os.listdir(d)):
            if not _is_dsedge(entry):
                os.symlink(d / entry, shadow / entry)
        lines.append(f"import site; site.addsitedir({str(shadow)!r})")
    # processed after the venv's own .pth files (sorted by name), so the dsedge installed into
    # the venv comes first
    (purelib / "zz_outer_site.pth").write_text("\n".join(lines) + "\n")
    return py


def copy_checkout(dst: Path) -> Path:
    """The checkout's tracked and untracked-but-not-ignored files, tests/ and benchmarks/ left
    out, copied to `dst` (what a user's clone would pip install)."""
    files = subprocess.run(["git", "ls-files", "-co", "--exclude-standard"], cwd=ROOT, capture_output=True,
                           text=True, check=True).stdout.split()
    for f in files:
        src = ROOT / f
        if src.is_file() and not f.startswith(("tests/", "benchmarks/")):
            (dst / f).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dst / f)
    return dst


def installed_venv(tmp_path_factory) -> Path:
    """A venv (make_venv) with dsedge installed by `pip install --no-deps --no-build-isolation .`
    from a copy of the checkout (copy_checkout), the copy removed afterwards (nothing may need
    it); returns the venv's folder.

    Built once per test run: test_install[pip-install] and test_export_bundle's cross-bundle
    tests each made this same install (about a minute of compiling the runtime from the copy,
    whose paths no object cache shares). Under pytest-xdist the workers of one run share their
    base temp folders' parent: the first caller builds under a lock there, the others wait and
    reuse it (a failed install is reported to every caller, not retried)."""
    root = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        root = root.parent   # this run's folder, shared by its workers (never a previous run's)
    d = root / "dsedge-installed-venv"
    with open(root / "dsedge-installed-venv.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        failed = root / "dsedge-installed-venv.failed"
        assert not failed.is_file(), failed.read_text()
        if not (d / "installed").is_file():
            shutil.rmtree(d, ignore_errors=True)
            d.mkdir()
            src = copy_checkout(d / "src")
            venv = d / "venv"
            r = subprocess.run([str(make_venv(venv)), "-m", "pip", "install", "-q", "--no-deps",
                                "--no-build-isolation", "--disable-pip-version-check", str(src)],
                               capture_output=True, text=True)
            if r.returncode != 0:
                failed.write_text("pip install of the checkout's copy failed:\n" + r.stderr[-3000:])
                raise AssertionError(failed.read_text())
            shutil.rmtree(src)   # the installed package must not need the checkout
            (d / "installed").write_text("")
    return d / "venv"
