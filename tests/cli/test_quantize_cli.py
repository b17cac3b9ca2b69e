"""`dsedge quantize / compare / inspect` end to end on the digits seed model, and bad input."""
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

ROOT = Path(__file__).resolve().parents[2]
DIGITS = ROOT / "models" / "digits"


def dsedge(*args, cwd=None):
    env = dict(os.environ)
    env.pop("DSEDGE_DEBUG", None)
    return subprocess.run([sys.executable, "-m", "dsedge.cli", *map(str, args)], capture_output=True, text=True,
                          cwd=cwd, env=env, timeout=600)


@pytest.fixture(scope="module")
def quantized(tmp_path_factory):
    out = tmp_path_factory.mktemp("q") / "digits.int8.onnx"
    r = dsedge("quantize", DIGITS / "model.onnx", "--calib", DIGITS / "calib.npz", "-o", out, "--json",
               "--no-progress")
    assert r.returncode == 0, r.stderr
    return out, json.loads(r.stdout)


def test_quantize_digits_keeps_accuracy(quantized):
    out, summary = quantized
    assert summary["nodes_by_precision"].get("int8", 0) >= 3
    assert all(v > 25 for v in summary["output_sqnr_db"].values()), summary["output_sqnr_db"]
    e = np.load(DIGITS / "eval.npz")
    f = ort.InferenceSession(str(DIGITS / "model.onnx"))
    q = ort.InferenceSession(str(out))
    acc_f = np.mean([f.run(None, {"image": x})[0].argmax() == y for x, y in zip(e["image"], e["label"])])
    acc_q = np.mean([q.run(None, {"image": x})[0].argmax() == y for x, y in zip(e["image"], e["label"])])
    assert acc_q >= acc_f - 0.01, (acc_f, acc_q)
    m = onnx.load(str(out))
    ops = {n.op_type for n in m.graph.node}
    assert {"QuantizeLinear", "DequantizeLinear", "Conv", "Gemm"} <= ops
    # activations are uint8 in the file; weights int8 per channel (axis attribute on their DQ)
    zps = {t.name: t.data_type for t in m.graph.initializer}
    q_zps = [zps[n.input[2]] for n in m.graph.node if n.op_type == "QuantizeLinear"]
    assert q_zps and all(z == TensorProto.UINT8 for z in q_zps)
    assert {p.key: p.value for p in m.metadata_props}.get("labels") == "0,1,2,3,4,5,6,7,8,9"


def test_quantize_is_byte_identical(quantized, tmp_path):
    out, _ = quantized
    again = tmp_path / "again.onnx"
    r = dsedge("quantize", DIGITS / "model.onnx", "--calib", DIGITS / "calib.npz", "-o", again, "--no-progress")
    assert r.returncode == 0, r.stderr
    assert again.read_bytes() == Path(out).read_bytes()


def test_compare_json(quantized):
    out, _ = quantized
    r = dsedge("compare", DIGITS / "model.onnx", out, "--data", DIGITS / "eval.npz", "--labels", "label", "--json", "--no-progress")
    assert r.returncode == 0, r.stderr
    res = json.loads(r.stdout)
    o = res["outputs"]["logits"]
    assert o["sqnr_db"] > 20 and o["cosine"] > 0.99 and o["top1_agreement"] > 0.95
    assert res["accuracy"]["float"] > 0.95 and res["accuracy"]["quant"] >= res["accuracy"]["float"] - 0.01
    r = dsedge("compare", DIGITS / "model.onnx", out, "--data", DIGITS / "eval.npz", "--labels", "label", "--min-sqnr", "200", "--no-progress")
    assert r.returncode == 1 and "below" in r.stderr


def test_inspect(tmp_path):
    r = dsedge("inspect", DIGITS / "model.onnx", "--json")
    assert r.returncode == 0, r.stderr
    rep = json.loads(r.stdout)
    assert rep["ops"]["Conv"] == 2 and rep["macs"] > 0 and rep["int8_nodes"] >= 3
    r = dsedge("inspect", DIGITS / "model.onnx")
    assert r.returncode == 0 and "MACs" in r.stderr


def test_inspect_macs_unknown_on_dynamic_shapes(tmp_path):
    # batch and spatial sizes symbolic: the Conv's MACs are unknown, not 0
    w = numpy_helper.from_array(np.ones((4, 3, 3, 3), np.float32), "w")
    g = helper.make_graph([helper.make_node("Conv", ["x", "w"], ["y"])], "dyn",
                          [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 3, "H", "W"])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)], [w])
    p = tmp_path / "dyn.onnx"
    onnx.save(helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)]), p)
    r = dsedge("inspect", p, "--json")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["macs"] is None


# -- bad input: one clear line, exit 2, no traceback, no partial output ----------------------

def _assert_clean_error(r, out: Path | None, *words):
    assert r.returncode == 2, (r.returncode, r.stdout, r.stderr)
    assert "Traceback" not in r.stderr
    last = [ln for ln in r.stderr.replace("\r", "\n").splitlines() if ln.strip()][-1]
    assert last.startswith("dsedge: error:"), r.stderr  # one clear line, last on stderr
    for w in words:
        assert w in r.stderr, (w, r.stderr)
    if out is not None:
        assert not out.exists()
        assert not [p for p in out.parent.iterdir() if p.name.startswith("." + out.name)]


def test_truncated_model(tmp_path):
    bad = tmp_path / "bad.onnx"
    bad.write_bytes((DIGITS / "model.onnx").read_bytes()[:700])
    out = tmp_path / "o.onnx"
    r = dsedge("quantize", bad, "--calib", DIGITS / "calib.npz", "-o", out)
    _assert_clean_error(r, out, "bad.onnx")


def test_garbage_model(tmp_path):
    bad = tmp_path / "garbage.onnx"
    bad.write_bytes(b"\xff\x00not a model" * 50)
    out = tmp_path / "o.onnx"
    _assert_clean_error(dsedge("quantize", bad, "--calib", DIGITS / "calib.npz", "-o", out), out, "garbage.onnx")


def _feeds(tmp_path, **arrays):
    p = tmp_path / "feeds.npz"
    np.savez(p, **arrays)
    return p


def test_feed_missing_input(tmp_path):
    p = _feeds(tmp_path, img=np.zeros((4, 1, 1, 8, 8), np.float32))
    out = tmp_path / "o.onnx"
    _assert_clean_error(dsedge("quantize", DIGITS / "model.onnx", "--calib", p, "-o", out), out, "image")


def test_feed_wrong_shape(tmp_path):
    p = _feeds(tmp_path, image=np.zeros((4, 1, 1, 9, 8), np.float32))
    out = tmp_path / "o.onnx"
    _assert_clean_error(dsedge("quantize", DIGITS / "model.onnx", "--calib", p, "-o", out), out, "shape")


def test_feed_wrong_dtype(tmp_path):
    p = _feeds(tmp_path, image=np.zeros((4, 1, 1, 8, 8), np.int64))
    out = tmp_path / "o.onnx"
    _assert_clean_error(dsedge("quantize", DIGITS / "model.onnx", "--calib", p, "-o", out), out, "dtype")


def test_feed_nan(tmp_path):
    a = np.zeros((4, 1, 1, 8, 8), np.float32)
    a[2, 0, 0, 3, 3] = np.nan
    p = _feeds(tmp_path, image=a)
    out = tmp_path / "o.onnx"
    _assert_clean_error(dsedge("quantize", DIGITS / "model.onnx", "--calib", p, "-o", out), out, "NaN")


def test_unsupported_op(tmp_path):
    node = helper.make_node("GridSample", ["x", "grid"], ["y"])
    g = helper.make_graph([node], "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 1, 4, 4])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
                          initializer=[numpy_helper.from_array(np.zeros((1, 4, 4, 2), np.float32), "grid")])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
    p = tmp_path / "grid.onnx"
    onnx.save(m, p)
    feeds = _feeds(tmp_path, x=np.zeros((2, 1, 1, 4, 4), np.float32))
    out = tmp_path / "o.onnx"
    _assert_clean_error(dsedge("quantize", p, "--calib", feeds, "-o", out), out, "GridSample", "supported ops")


def test_unwritable_output(tmp_path):
    r = dsedge("quantize", DIGITS / "model.onnx", "--calib", DIGITS / "calib.npz", "-o", tmp_path / "nope" / "o.onnx")
    _assert_clean_error(r, None, "does not exist")
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o500)
    try:
        if os.access(ro, os.W_OK):  # root ignores permissions: a file in place of the folder then
            target = tmp_path / "file" / "o.onnx"
            (tmp_path / "file").write_text("x")
        else:
            target = ro / "o.onnx"
        r = dsedge("quantize", DIGITS / "model.onnx", "--calib", DIGITS / "calib.npz", "-o", target)
        _assert_clean_error(r, None, "cannot write")
    finally:
        ro.chmod(0o700)


def test_missing_model_and_usage():
    r = dsedge("quantize", "/nonexistent/m.onnx", "--calib", DIGITS / "calib.npz", "-o", "/tmp/x.onnx")
    assert r.returncode == 2 and "no such" in r.stderr and "Traceback" not in r.stderr
    r = dsedge("quantize")
    assert r.returncode == 2  # click usage error: missing MODEL (--calib and -o are optional)
    r = dsedge("--help")
    assert r.returncode == 0 and "Exit codes" in r.stdout


def test_shuffled_feeds_give_the_same_file(quantized, tmp_path):
    out, _ = quantized
    c = np.load(DIGITS / "calib.npz")["image"]
    p = tmp_path / "shuffled.npz"
    np.savez(p, image=c[np.random.default_rng(7).permutation(len(c))])
    again = tmp_path / "shuffled.onnx"
    r = dsedge("quantize", DIGITS / "model.onnx", "--calib", p, "-o", again, "--no-progress")
    assert r.returncode == 0, r.stderr
    assert again.read_bytes() == Path(out).read_bytes()
