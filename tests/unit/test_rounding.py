"""Hessian-aware weight rounding (dsedge/quant/rounding.py): the algorithm against a plain
GPTQ reference, and the quantiser using it (same scales, int8 codes, lower layer error)."""
import numpy as np

import dsedge
from dsedge.ir import Graph, Node, TensorInfo
from dsedge.quant import arith, rounding
from dsedge.quant.quantize import QuantConfig, quantize_graph
from dsedge.zoo import digits_dir


def _gptq_reference(v, H, damp=rounding.DAMP):
    """GPTQ as published (Cholesky of H^-1, column-by-column error propagation), act order."""
    v, H = v.astype(np.float64).copy(), H.copy()
    K = H.shape[0]
    H[np.diag(H) <= 0, np.diag(H) <= 0] = 1.0
    perm = np.argsort(-np.diag(H), kind="stable")
    H, W = H[perm][:, perm], v[:, perm]
    H[np.diag_indices(K)] += damp * np.mean(np.diag(H))
    U = np.linalg.cholesky(np.linalg.inv(H)).T
    Q = np.zeros_like(W)
    for j in range(K):
        Q[:, j] = np.clip(np.rint(W[:, j]), -127, 127)
        e = (W[:, j] - Q[:, j]) / U[j, j]
        W[:, j + 1:] -= np.outer(e, U[j, j + 1:])
    out = np.empty_like(Q)
    out[:, perm] = Q
    return out


def _correlated(rng, G, R, K):
    x = rng.normal(size=(G, R, K))
    x[:, :, 1:] += 0.8 * x[:, :, :1]          # strongly correlated columns, like neighbouring pixels
    return x, np.matmul(x.transpose(0, 2, 1), x) / R


def test_gptq_matches_the_published_algorithm():
    rng = np.random.default_rng(0)
    for G, C, K in ((1, 7, 70), (3, 2, 9), (1, 5, 300)):     # 300 > BLOCK: the blocked update
        _, H = _correlated(rng, G, 4 * K, K)
        v = rng.normal(size=(G, C, K)) * 40
        v[0, 0, 0] = 500.0                                     # clamped to 127
        got = rounding.gptq(v, H)
        ref = np.stack([_gptq_reference(v[g], H[g]) for g in range(G)])
        assert np.array_equal(got, ref)
        assert got.min() >= -127 and got.max() <= 127 and np.array_equal(got, np.rint(got))


def test_gptq_beats_nearest_on_correlated_inputs_and_equals_it_on_diagonal():
    rng = np.random.default_rng(1)
    x, H = _correlated(rng, 1, 2000, 40)
    v = rng.normal(size=(1, 16, 40)) * 30
    q = rounding.gptq(v, H)
    err = lambda c: np.einsum("gck,gkl,gcl->", c - v, H, c - v)   # noqa: E731
    assert err(q) < 0.5 * err(np.rint(v))
    D = np.diag(rng.uniform(0.5, 2.0, 40))[None]
    assert np.array_equal(rounding.gptq(v, D), np.rint(v))


def _conv_graph():
    w = (np.random.default_rng(3).normal(size=(8, 3, 3, 3)) * 0.3).astype(np.float32)
    g = Graph(inputs=["x"], outputs=["y"], consts={"w": w, "b": np.zeros(8, np.float32)})
    g.info["x"] = TensorInfo(np.dtype(np.float32), (1, 3, 16, 16))
    g.nodes = [Node("Conv", ["x", "w", "b"], ["y"], {"pads": [1, 1, 1, 1]}, "conv")]
    return g


def test_quantiser_rounding_keeps_scales_and_lowers_layer_error():
    rng = np.random.default_rng(2)
    base = rng.uniform(0, 1, (24, 1, 3, 1, 1)).astype(np.float32)    # smooth images: correlated taps
    feeds = [{"x": np.ascontiguousarray(np.broadcast_to(b, (1, 3, 16, 16))
                                        + rng.normal(0, 0.05, (1, 3, 16, 16)).astype(np.float32))} for b in base]
    res = {}
    for mode in ("nearest", "hessian"):
        r = quantize_graph(_conv_graph(), feeds, QuantConfig(progress=False, weight_rounding=mode, eval_feeds=24))
        res[mode] = (r.graph.consts["w_q"], r.graph.qparams["w_q"].scale, r)
    (qn, sn, rn), (qh, sh, rh) = res["nearest"], res["hessian"]
    assert np.array_equal(sn, sh) and qh.dtype == np.int8 and np.abs(qh.astype(int)).max() <= 127
    assert not np.array_equal(qn, qh)
    w = _conv_graph().consts["w"]
    assert np.array_equal(qn, arith.quantize_weight_per_channel(w, 0)[0])
    from dsedge.quant.quantize import evaluate
    assert min(evaluate(rh).values()) > min(evaluate(rn).values())


def test_digits_model_with_hessian_rounding():
    d = digits_dir()
    calib = [{"image": x} for x in np.load(d / "calib.npz")["image"][:16]]
    r = dsedge.quantize(d / "model.onnx", calib, progress=False)
    assert r.summary()["output_sqnr_db"]["logits"] > 30


def test_patches_times_weight_rows_is_the_op():
    """patches() and weight_rows() agree with the op's own K order (Conv 1-D/2-D, grouped,
    depthwise, strided, dilated, padded; MatMul; Gemm with and without transB)."""
    from dsedge.ops import REGISTRY
    rng = np.random.default_rng(4)
    f = lambda *s: rng.normal(size=s).astype(np.float32)   # noqa: E731
    cases = [("Conv", f(2, 6, 9, 7), f(4, 3, 3, 2), {"group": 2, "pads": [1, 0, 1, 1], "strides": [2, 1],
                                                     "dilations": [1, 2]}),
             ("Conv", f(2, 6, 9, 7), f(6, 1, 3, 3), {"group": 6, "pads": [1, 1, 1, 1]}),
             ("Conv", f(2, 3, 10), f(5, 3, 4), {"strides": [2]}),
             ("MatMul", f(2, 5, 8), f(8, 3), {}), ("Gemm", f(5, 8), f(3, 8), {"transB": 1}), ("Gemm", f(5, 8), f(8, 3), {})]
    for op, x, w, attrs in cases:
        g, n = Graph(consts={"w": w}), Node(op, ["x", "w"], ["y"], attrs, "n")
        y = np.asarray(REGISTRY.get(op).call([x, w], attrs)[0], np.float64)
        cols, wr = rounding.patches(g, n, x, w), rounding.weight_rows(n, w)
        got = np.matmul(cols.astype(np.float64), wr.transpose(0, 2, 1).astype(np.float64))
        G = cols.shape[0]
        ref = (y.reshape(x.shape[0], G, w.shape[0] // G, -1).transpose(1, 0, 3, 2).reshape(G, -1, w.shape[0] // G)
               if op == "Conv" else y.reshape(1, -1, y.shape[-1]))
        assert np.allclose(got, ref, atol=1e-4), op
        assert np.array_equal(rounding.rows_to_weight(n, wr, w.shape), w)
