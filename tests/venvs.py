"""Test helper: a fresh virtual environment that sees the test interpreter's packages.

`python -m venv --system-site-packages` links the *base* interpreter's site-packages. Run
from inside a user's own venv (`python3 -m venv v && . v/bin/activate`, then the README), that
is not where numpy, onnx and onnxruntime were installed, so a nested venv made that way cannot
import them. Instead the new venv gets one `.pth` line that adds a folder of links to every
entry of the running interpreter's site-packages (system-wide or venv alike), except dsedge's
own: the dsedge under test is the one installed into the new venv, never the outer one.
"""
from __future__ import annotations

import os
import site
import subprocess
import sys
from pathlib import Path


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
