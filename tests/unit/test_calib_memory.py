"""calibrate(): what it observes (checked against onnxruntime), what it keeps, and that its
memory does not grow with the number of feeds (tracemalloc peak, 1000 feeds vs 10)."""
import subprocess
import sys
import tracemalloc
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

from dsedge.calibration import OBSERVERS, calibrate, open_feeds
from dsedge.converters.onnx.reader import from_model_proto
from dsedge.errors import FeedError, ModelError

# 72 KB in, 135 KB per conv activation: large enough that the float engine's own bounded
# bookkeeping (onnxruntime's binding allocates up to ~40 KB more over many runs, never more)
# does not hide what the bound is about: statistics that stream, whatever the number of feeds.
SHAPE = (1, 8, 48, 48)


def _model(extra_log=False, int_input=False):
    """x -> Conv(16) -> Relu -> Conv(16) -> Relu -> Flatten -> Gemm(10) [-> Log] (+ idx -> Identity)."""
    rng = np.random.default_rng(0)
    w1 = (rng.standard_normal((16, 8, 3, 3)) * 0.2).astype(np.float32)
    w2 = (rng.standard_normal((16, 16, 3, 3)) * 0.1).astype(np.float32)
    wg = (rng.standard_normal((10, 16 * (SHAPE[2] - 4) * (SHAPE[3] - 4))) * 0.01).astype(np.float32)
    inits = [numpy_helper.from_array(a, n) for a, n in
             [(w1, "w1"), (np.zeros(16, np.float32), "b1"), (w2, "w2"), (wg, "wg"), (np.ones(10, np.float32), "bg")]]
    nodes = [helper.make_node("Conv", ["x", "w1", "b1"], ["c1"], name="conv1"),
             helper.make_node("Relu", ["c1"], ["r1"], name="relu1"),
             helper.make_node("Conv", ["r1", "w2"], ["c2"], name="conv2"),
             helper.make_node("Relu", ["c2"], ["r2"], name="relu2"),
             helper.make_node("Flatten", ["r2"], ["f"], name="flat"),
             helper.make_node("Gemm", ["f", "wg", "bg"], ["y"], transB=1, name="fc")]
    ins = [helper.make_tensor_value_info("x", TensorProto.FLOAT, list(SHAPE))]
    outs = [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)]
    if extra_log:
        nodes.append(helper.make_node("Log", ["r2"], ["logr"], name="log_of_relu"))
        outs.append(helper.make_tensor_value_info("logr", TensorProto.FLOAT, None))
    if int_input:
        nodes.append(helper.make_node("Identity", ["idx"], ["z"], name="id"))
        ins.append(helper.make_tensor_value_info("idx", TensorProto.INT64, [3]))
        outs.append(helper.make_tensor_value_info("z", TensorProto.INT64, None))
    m = helper.make_model(helper.make_graph(nodes, "m", ins, outs, initializer=inits),
                          opset_imports=[helper.make_opsetid("", 17)])
    m.ir_version = 8
    return m


def _feed(i, int_input=False):
    f = {"x": np.random.default_rng(i).standard_normal(SHAPE).astype(np.float32)}
    if int_input:
        f["idx"] = np.array([i, 2, 3], np.int64)
    return f


def _feeds(n, **kw):
    return (_feed(i, **kw) for i in range(n))      # generated lazily: the source holds nothing


def test_ranges_match_onnxruntime_activations():
    m = _model(int_input=True)
    g = from_model_proto(m)
    feeds = [_feed(i, int_input=True) for i in range(5)]
    res = calibrate(g, feeds, method="minmax", progress=False, keep_outputs=3)
    # oracle: every intermediate tensor from onnxruntime
    names = ["x", "c1", "r1", "c2", "r2", "f", "y"]
    m2 = _model(int_input=True)
    m2.graph.output.extend(helper.make_empty_tensor_value_info(n) for n in names if n != "y")
    sess = ort.InferenceSession(m2.SerializeToString(), providers=["CPUExecutionProvider"])
    outs = [dict(zip([o.name for o in sess.get_outputs()], sess.run(None, f))) for f in feeds]
    assert set(res.ranges) == set(names)                    # no constants, no int tensors
    for n in names:
        lo = min(0.0, min(float(o[n].min()) for o in outs))
        hi = max(0.0, max(float(o[n].max()) for o in outs))
        np.testing.assert_allclose(res.ranges[n], (lo, hi), rtol=1e-5, atol=1e-6, err_msg=n)
    assert res.n_feeds == 5 and len(res.feeds) == len(res.outputs) == 3
    # the kept feeds are chosen by content digest (order-independent), each with its own outputs
    for kept, o in zip(res.feeds, res.outputs):
        k = next(i for i, f in enumerate(feeds) if np.array_equal(f["x"], kept["x"]))
        assert set(o) == {"y"}                                  # float outputs only
        np.testing.assert_allclose(o["y"], outs[k]["y"], rtol=1e-4, atol=1e-5)
    again = calibrate(g, feeds[::-1], method="minmax", progress=False, keep_outputs=3)
    assert all(np.array_equal(a["x"], b["x"]) for a, b in zip(res.feeds, again.feeds))


def test_tensors_filter_and_feed_order_invariance():
    g = from_model_proto(_model())
    feeds = [_feed(i) for i in range(6)]
    a = calibrate(g, feeds, method="auto", tensors=["c1", "r2"], progress=False)
    b = calibrate(g, feeds[::-1], method="auto", tensors=["c1", "r2"], progress=False)
    assert set(a.ranges) == {"c1", "r2"}
    assert a.ranges == b.ranges                             # bit for bit
    assert set(a.chosen) == {"c1", "r2"} and all(c in OBSERVERS for c in a.chosen.values())
    assert a.summary()["tensors"] == 2


def test_nan_in_an_activation_names_node_and_feed():
    g = from_model_proto(_model(extra_log=True))           # log(relu(.)) = -inf where relu is 0
    with pytest.raises(ModelError, match=r"feed 0: node 'log_of_relu' \(Log\).*tensor 'logr'"):
        calibrate(g, [_feed(0)], progress=False)


def test_feed_errors_name_the_feed():
    g = from_model_proto(_model())
    bad = _feed(1)
    bad["x"] = bad["x"][:, :4]
    with pytest.raises(FeedError, match="feed 1: input 'x' has shape"):
        calibrate(g, [_feed(0), bad], progress=False)
    with pytest.raises(FeedError, match="no feeds"):
        calibrate(g, [], progress=False)
    with pytest.raises(ValueError, match="unknown calibration method"):
        calibrate(g, [_feed(0)], method="kl")


def test_path_feeds_and_progress_bar(tmp_path, capsys):
    g = from_model_proto(_model())
    for i in range(3):
        np.savez(tmp_path / f"{i:03d}.npz", **_feed(i))
    res = calibrate(g, tmp_path, method="percentile", progress=True)
    ref = calibrate(g, [_feed(i) for i in range(3)], method="percentile", progress=False)
    assert res.ranges == ref.ranges and res.n_feeds == 3
    assert "calibrating" in capsys.readouterr().err


def _fill_free_lists():
    """CPython keeps freed small tuples on free lists (up to 2000 per length), which
    tracemalloc still counts as allocated: fill them first so reuse is not mistaken for growth."""
    junk = [tuple(range(k)) for k in range(1, 21) for _ in range(2000)]
    del junk


def _peak(g, feeds, method):
    _fill_free_lists()
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        calibrate(g, feeds, method=method, progress=False, keep_outputs=8)
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


@pytest.mark.slow
@pytest.mark.parametrize("method", list(OBSERVERS))
def test_memory_does_not_grow_with_feeds(method):
    g = from_model_proto(_model())
    _peak(g, _feeds(2), method)                              # warm up caches and lazy imports
    small = _peak(g, _feeds(10), method)
    big = _peak(g, _feeds(1000), method)
    assert big <= 1.1 * small, (method, small, big)


_MMAP_CHILD = r"""
import sys, numpy as np
sys.path.insert(0, sys.argv[1])
from tests.unit.test_calib_memory import _model, _peak, SHAPE
from dsedge.converters.onnx.reader import from_model_proto
from dsedge.calibration import open_feeds
g = from_model_proto(_model())
small_fs = open_feeds(sys.argv[2] + "/small.npz", g)
_peak(g, small_fs, "auto")                                     # warm up this code path
small = _peak(g, small_fs, "auto")
big = _peak(g, open_feeds(sys.argv[2] + "/calib.npz", g), "auto")
print(small, big)
"""


@pytest.mark.slow
def test_memory_with_a_memory_mapped_sample_file(tmp_path):
    """The same streaming bound through a one-file sample set (memory-mapped): 10 samples vs
    1000 samples. Measured in a fresh interpreter: tracemalloc peaks in a long pytest process
    pick up one-off allocations of earlier tests' state."""
    xs = np.random.default_rng(0).standard_normal((1000,) + SHAPE).astype(np.float32)
    np.savez(tmp_path / "calib.npz", x=xs)
    np.savez(tmp_path / "small.npz", x=xs[:10])
    del xs
    root = str(Path(__file__).resolve().parents[2])
    r = subprocess.run([sys.executable, "-c", _MMAP_CHILD, root, str(tmp_path)], capture_output=True, text=True,
                       timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    small, big = map(int, r.stdout.split())
    assert big <= 1.1 * small, (small, big)
