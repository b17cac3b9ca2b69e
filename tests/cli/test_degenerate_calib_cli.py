"""Calibration feeds that never vary a float input the model computes with: an error naming
the input (exit 2), a warning for a recurrent state that starts at zero, silence when the
user declares the input constant."""
import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

import dsedge
from dsedge.errors import DseWarning, FeedError

from .test_quantize_cli import DIGITS, _assert_clean_error, dsedge as cli


def test_all_zero_feeds_are_an_error_naming_the_input(tmp_path):
    p = tmp_path / "zeros.npz"
    np.savez(p, image=np.zeros((8, 1, 1, 8, 8), np.float32))
    out = tmp_path / "o.onnx"
    r = cli("quantize", DIGITS / "model.onnx", "--calib", p, "-o", out, "--no-progress")
    _assert_clean_error(r, out, "zeros.npz", "'image'", "all zeros", "says nothing", "--constant-input image")


def test_identical_feeds_are_an_error(tmp_path):
    one = np.load(DIGITS / "calib.npz")["image"][:1]
    p = tmp_path / "same.npz"
    np.savez(p, image=np.repeat(one, 6, axis=0))
    out = tmp_path / "o.dse"
    _assert_clean_error(cli("quantize", DIGITS / "model.onnx", "--calib", p, "-o", out, "--no-progress"), out,
                        "'image'", "the same array")


def test_declared_constant_input_is_accepted(tmp_path):
    p = tmp_path / "zeros.npz"
    np.savez(p, image=np.zeros((4, 1, 1, 8, 8), np.float32))
    r = cli("quantize", DIGITS / "model.onnx", "--calib", p, "-o", tmp_path / "o.onnx", "--no-progress",
            "--constant-input", "image")
    assert r.returncode == 0, r.stderr
    assert "warning" not in r.stderr


def _recurrent(path):
    """y = x @ W + state, stateN = tanh(y): state [1, 32] comes back as stateN; x is [1, 48]."""
    w = np.random.default_rng(0).standard_normal((48, 32)).astype(np.float32)
    nodes = [helper.make_node("MatMul", ["x", "W"], ["xw"]), helper.make_node("Add", ["xw", "state"], ["y"]),
             helper.make_node("Tanh", ["y"], ["stateN"])]
    g = helper.make_graph(nodes, "rnn", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 48]),
                                         helper.make_tensor_value_info("state", TensorProto.FLOAT, [1, 32])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, None),
                           helper.make_tensor_value_info("stateN", TensorProto.FLOAT, None)],
                          [numpy_helper.from_array(w, "W")])
    onnx.save(helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)]), path)


def test_zero_state_is_a_warning_and_zero_data_an_error(tmp_path):
    m = tmp_path / "rnn.onnx"
    _recurrent(m)
    rng = np.random.default_rng(1)
    feeds = [{"x": rng.standard_normal((1, 48)).astype(np.float32), "state": np.zeros((1, 32), np.float32)}
             for _ in range(4)]
    with pytest.warns(DseWarning, match="'state'.*recurrent state"):
        res = dsedge.quantize(m, feeds, progress=False)
    assert len(res.info["warnings"]) == 1 and "recurrent state" in res.info["warnings"][0]
    assert any("recurrent state" in w for w in dsedge.api.quantize_summary(res)["warnings"])
    # the data input all zeros (one feed is enough to see it) is an error, even with a varying state
    bad = [{"x": np.zeros((1, 48), np.float32), "state": rng.standard_normal((1, 32)).astype(np.float32)}]
    with pytest.raises(FeedError, match="'x' is all zeros"):
        dsedge.quantize(m, bad, progress=False)
    # states from consecutive calls: nothing to say
    varying = [{"x": f["x"], "state": rng.standard_normal((1, 32)).astype(np.float32)} for f in feeds]
    import warnings
    with warnings.catch_warnings():
        warnings.simplefilter("error", DseWarning)
        assert dsedge.quantize(m, varying, progress=False).info["warnings"] == []
