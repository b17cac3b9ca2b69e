"""`pip install .` and `pip install -e .` both install every dsedge.* package (the folders are
mapped with package-dir), with package data, importable from outside the checkout."""
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.venvs import make_venv

ROOT = Path(__file__).resolve().parents[2]

CHECK = r"""
import os, sys, json
import dsedge, dsedge.converters.onnx.reader, dsedge.calibration, dsedge.zoo, dsedge.runtime, dsedge.cli
from dsedge.ops import REGISTRY
p = dsedge.zoo.digits_dir()
assert (p / "model.onnx").is_file() and (p / "calib.npz").is_file(), p
assert "Conv" in REGISTRY
print(json.dumps({m: os.path.dirname(sys.modules[m].__file__) for m in
      ["dsedge", "dsedge.converters", "dsedge.calibration", "dsedge.zoo", "dsedge.runtime"]}))
"""


def _copy_checkout(dst: Path) -> Path:
    files = subprocess.run(["git", "ls-files", "-co", "--exclude-standard"], cwd=ROOT, capture_output=True,
                           text=True, check=True).stdout.split()
    for f in files:
        src = ROOT / f
        if src.is_file() and not f.startswith(("tests/", "benchmarks/")):
            (dst / f).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dst / f)
    return dst


@pytest.mark.slow
@pytest.mark.parametrize("editable", [False, True], ids=["pip-install", "pip-install-e"])
def test_install(tmp_path, editable):
    src = _copy_checkout(tmp_path / "src")
    venv = tmp_path / "venv"
    py = make_venv(venv)   # sees the test interpreter's packages, system-wide or in a user's venv
    cmd = [str(py), "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation", "--disable-pip-version-check"]
    cmd += ["-e", str(src)] if editable else [str(src)]
    r = subprocess.run(cmd, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr[-3000:]
    work = tmp_path / "elsewhere"
    work.mkdir()
    r = subprocess.run([str(py), "-c", CHECK], capture_output=True, text=True, cwd=work)
    assert r.returncode == 0, r.stderr[-3000:]
    import json
    where = json.loads(r.stdout.strip().splitlines()[-1])
    base = src if editable else venv
    for mod, d in where.items():
        assert Path(d).resolve().is_relative_to(base.resolve()), (mod, d, base)
    if editable:  # the folders map to the checkout's own folders
        assert Path(where["dsedge.converters"]).resolve() == (src / "converters").resolve()
        assert Path(where["dsedge.zoo"]).resolve() == (src / "models").resolve()
    r = subprocess.run([str(venv / "bin" / "dsedge"), "--version"], capture_output=True, text=True, cwd=work)
    assert r.returncode == 0 and "dsedge" in r.stdout
