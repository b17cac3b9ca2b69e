"""`pip install .` and `pip install -e .` both install every dsedge.* package (the folders are
mapped with package-dir), with package data, importable from outside the checkout."""
import subprocess
from pathlib import Path

import pytest

from tests.venvs import copy_checkout, installed_venv, make_venv

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


@pytest.mark.slow
@pytest.mark.parametrize("editable", [False, True], ids=["pip-install", "pip-install-e"])
def test_install(tmp_path, tmp_path_factory, editable):
    if editable:
        src = copy_checkout(tmp_path / "src")
        venv = tmp_path / "venv"
        py = make_venv(venv)   # sees the test interpreter's packages, system-wide or in a user's venv
        r = subprocess.run([str(py), "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation",
                            "--disable-pip-version-check", "-e", str(src)], capture_output=True, text=True)
        assert r.returncode == 0, r.stderr[-3000:]
    else:   # `pip install <copy>`, the copy removed: the run's one such install, shared with test_export_bundle
        venv = installed_venv(tmp_path_factory)
        py = venv / "bin" / "python"
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
