"""The calibration float engines (calibration/engine.py), the bias-correction shortcut and the
histogram sampling that make `dsedge quantize` fast, each against an independent oracle:
the numpy reference interpreter, the op itself, and exact (unsampled) histograms."""
import numpy as np
import pytest

from dsedge import zoo
from dsedge.calibration import calibrate
from dsedge.calibration import engine as E
from dsedge.calibration.observers import SAMPLE_MAX, _sample, make_observer
from dsedge.converters.onnx.reader import from_model_proto
from dsedge.ir import Node
from dsedge.ops import REGISTRY
from dsedge.passes.simplify import optimize
from dsedge.quant.quantize import _contract, _window_sums


def _mean_shift_sums(n, x, dw, attrs):
    """What the quantiser computes: window sums of x (weights unread), contracted with dw."""
    sums, count = _window_sums(n, x, dw.shape, attrs)
    return _contract(n, sums, dw, attrs), count


def _graph(name):
    m = zoo.build(name)
    return optimize(from_model_proto(m)), zoo.random_feeds(m, 3, seed=0)


@pytest.mark.slow
@pytest.mark.parametrize("name", ["mobilenet_v2", "transformer_encoder", "yolo_detector"])
def test_onnxruntime_engine_shows_what_the_interpreter_shows(name):
    g, feeds = _graph(name)
    ort_eng, ref_eng = E.float_engine(g, "fiub"), E.NumpyEngine(g)
    assert ort_eng.name == "onnxruntime"
    feed = {k: v[0] for k, v in feeds.items()}
    seen: dict = {}, {}
    got_nodes = []
    a = ort_eng.run(feed, hook=lambda n, v, node: seen[0].__setitem__(n, v),
                    node_hook=lambda n, args, outs: got_nodes.append((n.name, len(args), len(outs))))
    b = ref_eng.run(feed, hook=lambda n, v, node: seen[1].__setitem__(n, v))
    assert set(seen[0]) == set(seen[1])                 # every tensor, once, by name
    assert [x[0] for x in got_nodes] == [n.name for n in g.nodes]
    for k, v in seen[1].items():
        w = seen[0][k]
        assert w.shape == v.shape and w.dtype == v.dtype, k
        if v.dtype.kind == "f":
            scale = float(np.abs(v).max()) or 1.0
            assert float(np.abs(w.astype(np.float64) - v).max()) <= 1e-3 * scale, k
        else:
            assert np.array_equal(w, v), k
    assert set(a) == set(b) == set(g.outputs)


@pytest.mark.slow
def test_calibration_ranges_agree_between_engines(monkeypatch):
    g, feeds = _graph("mobilenet_v2")
    fl = [{k: v[i] for k, v in feeds.items()} for i in range(3)]
    r_ort = calibrate(g, fl, method="minmax", progress=False)
    assert r_ort.engine.name == "onnxruntime"
    monkeypatch.setenv("DSEDGE_FLOAT_ENGINE", "numpy")
    r_np = calibrate(g, fl, method="minmax", progress=False)
    assert r_np.engine.name == "numpy"
    assert set(r_ort.ranges) == set(r_np.ranges)
    for k in r_np.ranges:
        lo, hi = r_np.ranges[k]
        lo2, hi2 = r_ort.ranges[k]
        tol = 1e-4 * max(hi - lo, 1e-6)
        assert abs(lo - lo2) <= tol and abs(hi - hi2) <= tol, (k, r_np.ranges[k], r_ort.ranges[k])


@pytest.mark.slow
def test_falls_back_to_the_interpreter_when_onnxruntime_refuses(monkeypatch):
    g, feeds = _graph("mobilenet_v2")
    import onnxruntime as ort

    def refuse(*a, **k):
        raise RuntimeError("no")
    monkeypatch.setattr(ort, "InferenceSession", refuse)
    assert E.float_engine(g).name == "numpy"
    monkeypatch.setenv("DSEDGE_FLOAT_ENGINE", "onnxruntime")
    with pytest.raises(RuntimeError):
        E.float_engine(g)


@pytest.mark.slow
def test_a_feed_onnxruntime_fails_on_is_run_by_the_interpreter():
    g, feeds = _graph("mobilenet_v2")
    eng = E.float_engine(g)
    feed = {k: v[0] for k, v in feeds.items()}
    ref = E.NumpyEngine(g).run(feed)

    def broken(_feed):
        raise RuntimeError("onnxruntime failed")
    eng._run = broken
    out = eng.run(feed)
    assert eng.failures == 1
    for k in ref:
        np.testing.assert_array_equal(out[k], ref[k])


@pytest.mark.slow
def test_spilled_constants_keep_their_values():
    g, _ = _graph("resnet50")
    before = {k: np.array(v) for k, v in g.consts.items()}
    n = E.spill_constants(g)
    assert n >= E.SPILL_MIN_TOTAL
    spilled = [k for k, v in g.consts.items() if isinstance(v, np.memmap)]
    assert sum(g.consts[k].nbytes for k in spilled) == n
    for k, v in before.items():
        assert g.consts[k].dtype == v.dtype and g.consts[k].shape == v.shape
        np.testing.assert_array_equal(g.consts[k], v)
    with pytest.raises(ValueError):
        g.consts[spilled[0]][...] = 0        # read-only: constants are never written


CONV_CASES = [((2, 4, 9, 11), (6, 4, 3, 3), dict(strides=[2, 2], pads=[1, 1, 1, 1])),
              ((1, 6, 10, 10), (6, 1, 3, 3), dict(group=6, pads=[1, 0, 2, 1], dilations=[2, 1])),
              ((1, 6, 10, 12), (4, 3, 5, 3), dict(group=2, strides=[3, 2])),
              ((1, 3, 17), (5, 3, 4), dict(strides=[2], pads=[2, 1])),
              ((1, 3, 8, 8), (5, 3, 1, 1), {}),
              ((1, 3, 8, 8), (5, 3, 3, 3), dict(auto_pad="SAME_UPPER", strides=[2, 2])),
              ((1, 2, 4, 5, 6), (3, 2, 2, 3, 2), dict(pads=[1, 0, 1, 0, 1, 1]))]


@pytest.mark.parametrize("xs,ws,attrs", CONV_CASES)
def test_bias_shift_from_window_sums_equals_running_the_conv(xs, ws, attrs):
    rng = np.random.default_rng(0)
    x = rng.standard_normal(xs).astype(np.float32)
    dw = rng.standard_normal(ws).astype(np.float32)
    y = np.asarray(REGISTRY.get("Conv").call([x, dw], attrs)[0], np.float64)
    ref = y.sum(axis=tuple(i for i in range(y.ndim) if i != 1))
    got, count = _mean_shift_sums(Node("Conv", ["x", "w"], ["y"], attrs), x, dw, attrs)
    assert count == y.size // y.shape[1]
    np.testing.assert_allclose(got, ref, rtol=1e-5, atol=1e-4 * np.abs(ref).max())


@pytest.mark.parametrize("op,trans", [("MatMul", 0), ("Gemm", 0), ("Gemm", 1)])
def test_bias_shift_from_column_sums_equals_the_product(op, trans):
    rng = np.random.default_rng(1)
    x = rng.standard_normal((6, 7) if op == "Gemm" else (2, 5, 7)).astype(np.float32)
    w = rng.standard_normal((3, 7) if trans else (7, 3)).astype(np.float32)
    attrs = {"transB": 1} if trans else {}
    got, count = _mean_shift_sums(Node(op, ["x", "w"], ["y"], attrs), x, w, attrs)
    y = x.reshape(-1, 7).astype(np.float64) @ (w.T if trans else w)
    assert count == y.shape[0]
    np.testing.assert_allclose(got, y.sum(axis=0), rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize("method", ["percentile", "entropy", "mse", "auto"])
def test_sampled_histograms_give_nearly_the_exact_ranges(method):
    """calibrate() bins a strided sample of about SAMPLE_MAX values per tensor and feed, each
    counted `step` times, plus every value in the tails, counted once;
    on activation-like data the range percentile and entropy choose stays within 2 % of the
    exact histogram's, and the real quantisation MSE of the range mse and auto choose within 2 %
    of the exact histogram's choice."""
    rng = np.random.default_rng(3)
    feeds = [np.maximum(rng.standard_normal((1, 32, 56, 56)) * rng.gamma(2.0, 1.0, (1, 32, 1, 1)), 0)
             .astype(np.float32) for _ in range(6)]
    exact, sampled = make_observer(method), make_observer(method, sample_max=SAMPLE_MAX)
    for x in feeds:
        assert x.size > 1.5 * SAMPLE_MAX
        exact.update(x)
        sampled.update(x)
    assert sampled.min == exact.min and sampled.max == exact.max
    bulk, step, tail = _sample(feeds[0], SAMPLE_MAX, float(feeds[0].min()), float(feeds[0].max()))
    assert step > 1 and bulk.size + tail.size < feeds[0].size / 1.5      # it did sample
    assert abs(int(sampled.hist.sum()) - int(exact.hist.sum())) <= 0.01 * exact.hist.sum()   # weighted counts
    (lo, hi), (lo2, hi2) = exact.range(), sampled.range()
    if method in ("percentile", "entropy"):    # near the optimum the MSE is flat: mse/auto may move more
        assert abs(hi2 - hi) <= 0.02 * hi and abs(lo2 - lo) <= 0.02 * (hi - lo)
    allx = np.concatenate([x.reshape(-1) for x in feeds]).astype(np.float64)

    def mse(lo, hi):
        s = (hi - lo) / 255
        zp = np.clip(np.rint(-128 - lo / s), -128, 127)
        q = np.clip(np.rint(allx / s) + zp, -128, 127)
        return float(np.mean(((q - zp) * s - allx) ** 2))
    if method in ("mse", "auto"):              # the methods whose objective this is
        assert mse(lo2, hi2) <= 1.02 * mse(lo, hi)
