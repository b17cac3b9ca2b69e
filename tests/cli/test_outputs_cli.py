"""Where commands write: never over one of their inputs, errors naming the path (exit 2),
normal file modes, and the one-line float64 conversion warning."""
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from dsedge.errors import DseError
from dsedge.util import refuse_overwriting_inputs

from .test_quantize_cli import DIGITS, _assert_clean_error

CALIB = DIGITS / "calib.npz"


def dsedge(*args, cwd=None, umask=-1):
    env = dict(os.environ)
    env.pop("DSEDGE_DEBUG", None)
    return subprocess.run([sys.executable, "-m", "dsedge.cli", *map(str, args)], capture_output=True, text=True,
                          cwd=cwd, env=env, timeout=600, umask=umask)


@pytest.fixture(scope="module")
def dse(tmp_path_factory):
    out = tmp_path_factory.mktemp("dse") / "digits.dse"
    r = dsedge("quantize", DIGITS / "model.onnx", "--calib", CALIB, "-o", out, "--no-progress")
    assert r.returncode == 0, r.stderr
    return out


def _model_copy(tmp_path) -> Path:
    m = tmp_path / "m.onnx"
    m.write_bytes((DIGITS / "model.onnx").read_bytes())
    return m


@pytest.mark.parametrize("how", ["same", "dot-slash", "symlink", "hardlink"])
def test_quantize_refuses_to_overwrite_its_model(tmp_path, how):
    m = _model_copy(tmp_path)
    before = m.read_bytes()
    out = {"same": "m.onnx", "dot-slash": "./m.onnx", "symlink": "link.onnx", "hardlink": "hard.onnx"}[how]
    if how == "symlink":
        os.symlink("m.onnx", tmp_path / out)
    elif how == "hardlink":
        os.link(m, tmp_path / out)
    r = dsedge("quantize", "m.onnx", "--calib", CALIB, "-o", out, "--no-progress", cwd=tmp_path)
    _assert_clean_error(r, None, out, "replace the input")
    assert m.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted({"m.onnx", out.lstrip("./")})


def test_quantize_refuses_an_output_that_is_the_calibration_file(tmp_path):
    feeds = tmp_path / "calib.npz"
    feeds.write_bytes(CALIB.read_bytes())
    os.symlink(feeds, tmp_path / "q.dse")
    r = dsedge("quantize", DIGITS / "model.onnx", "--calib", feeds, "-o", tmp_path / "q.dse", "--no-progress")
    _assert_clean_error(r, None, "calibration feeds", "replace the input")
    assert feeds.read_bytes() == CALIB.read_bytes()


def test_run_refuses_to_overwrite_its_feeds_or_model(tmp_path, dse):
    feed = tmp_path / "feed.npz"
    np.savez(feed, image=np.load(CALIB)["image"][:2])
    before = feed.read_bytes()
    r = dsedge("run", dse, "-i", feed, "-o", feed)
    _assert_clean_error(r, None, "input feeds", "replace the input")
    assert feed.read_bytes() == before
    os.symlink(dse, tmp_path / "out.npz")
    r = dsedge("run", dse, "-i", feed, "-o", tmp_path / "out.npz")
    _assert_clean_error(r, None, "model", "replace the input")
    assert r.returncode == 2 and Path(dse).read_bytes()[:4] == b"\x89DSE"


def test_export_refuses_a_bundle_that_would_overwrite_its_model(tmp_path):
    # an ONNX model that sits where the bundle writes model.dse: quantising would replace it
    out = tmp_path / "bundle"
    out.mkdir()
    m = out / "model.dse"
    m.write_bytes((DIGITS / "model.onnx").read_bytes())
    r = dsedge("export", m, "--calib", CALIB, "-o", out, "--no-progress")
    _assert_clean_error(r, None, "model", "replace the input")
    assert m.read_bytes() == (DIGITS / "model.onnx").read_bytes()
    assert sorted(p.name for p in out.iterdir()) == ["model.dse"]


def test_refuse_overwriting_inputs_allows_distinct_paths(tmp_path):
    a = tmp_path / "a.onnx"
    a.write_bytes(b"x")
    refuse_overwriting_inputs([tmp_path / "b.onnx"], [("model", a), ("calibration feeds", None)])
    # re-exporting a bundle's own model.dse: the CLI leaves model.dse out of the written files
    refuse_overwriting_inputs([tmp_path / "README.md"], [("model", a)])
    with pytest.raises(DseError, match="replace the input"):
        refuse_overwriting_inputs([tmp_path / "sub" / ".." / "a.onnx"], [("model", a)])
    # a calibration folder: an .npz written into it would become one of its feeds
    (tmp_path / "feeds").mkdir()
    with pytest.raises(DseError, match="calibration feeds"):
        refuse_overwriting_inputs([tmp_path / "feeds" / "out.npz"], [("calibration feeds", tmp_path / "feeds")])


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="/proc refuses new files, even for root")
def test_unwritable_output_is_a_user_error(tmp_path, dse):
    # /proc refuses new files even to root: the write itself fails, not a pre-check
    for out in ("/proc/dsedge-test.dse", "/proc/dsedge-test.onnx"):
        r = dsedge("quantize", DIGITS / "model.onnx", "--calib", CALIB, "-o", out, "--no-progress")
        _assert_clean_error(r, None, out, "cannot write")
    feed = tmp_path / "feed.npz"
    np.savez(feed, image=np.load(CALIB)["image"][:2])
    r = dsedge("run", dse, "-i", feed, "-o", "/proc/dsedge-test.npz")
    _assert_clean_error(r, None, "/proc/dsedge-test.npz", "cannot write")


def test_written_files_get_the_umask_mode(tmp_path, dse):
    outs = [tmp_path / "q.onnx", tmp_path / "q.dse"]
    for out in outs:
        r = dsedge("quantize", DIGITS / "model.onnx", "--calib", CALIB, "-o", out, "--no-progress", umask=0o022)
        assert r.returncode == 0, r.stderr
    feed = tmp_path / "feed.npz"
    np.savez(feed, image=np.load(CALIB)["image"][:2])
    r = dsedge("run", dse, "-i", feed, "-o", tmp_path / "out.npz", umask=0o022)
    assert r.returncode == 0, r.stderr
    for p in [*outs, tmp_path / "out.npz"]:
        assert oct(p.stat().st_mode & 0o777) == oct(0o644), p
    # replacing a file keeps its mode, as a plain write would
    (tmp_path / "out.npz").chmod(0o640)
    r = dsedge("run", dse, "-i", feed, "-o", tmp_path / "out.npz", umask=0o022)
    assert r.returncode == 0 and (tmp_path / "out.npz").stat().st_mode & 0o777 == 0o640


def test_float64_feeds_are_converted_with_one_warning(tmp_path):
    p = tmp_path / "f64.npz"
    np.savez(p, image=np.load(CALIB)["image"][:6].astype(np.float64))
    r = dsedge("quantize", DIGITS / "model.onnx", "--calib", p, "-o", tmp_path / "q.onnx", "--no-progress")
    assert r.returncode == 0, r.stderr
    lines = [ln for ln in r.stderr.splitlines() if "warning" in ln]
    assert len(lines) == 1, r.stderr
    assert lines[0].startswith("dsedge: warning:") and "'image'" in lines[0] and "float64 -> float32" in lines[0]
