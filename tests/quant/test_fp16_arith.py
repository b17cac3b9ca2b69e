"""fp16 arithmetic (docs/quant-arith.md §16): float Conv/Gemm/MatMul computed in binary16.

* the numpy reference (dsedge/ops/half.py, ops/nn.py `*_fp16`) against an exact oracle written
  here from the contract with Fractions (one binary16 accumulator per output, sequential over k,
  every fma16 rounded once): subnormals, overflow to inf, NaN, signed zeros, ties, padding,
  groups, strides, dilations, 1-D/2-D/3-D, Gemm transB 0/1 with and without C, batched MatMul;
  and numpy's float32/float64 -> float16 conversions (what the reference rounds with) against the
  oracle's rounding;
* the quantiser marks what is asked and says why not for the rest; `.dse` keeps the attribute
  (decoder included), ONNX keeps float32 compute and names the nodes in its metadata;
* the planner (`dsedge plan --fp16-arith`) keeps it within the budget and drops it where binary16
  overflows; `quantize --plan` and `--precision mixed --fp16-arith all` give the same bytes;
* CLI usage errors exit 2;
* the C REF kernels' bytes against numpy (skipped only while the C library lacks them).
"""
from __future__ import annotations

import json
import math
from fractions import Fraction

import numpy as np
import onnx
import pytest
from click.testing import CliRunner
from onnx import TensorProto, helper, numpy_helper

import dsedge
from dsedge.api import load_plan, save_result
from dsedge.cli import main
from dsedge.converters.onnx.reader import load_onnx
from dsedge.errors import DseError
from dsedge.export import export, load_dse_graph
from dsedge.interp import execute
from dsedge.ops import REGISTRY
from dsedge.ops.half import FP16_ARITH, fma16, run_fp16
from dsedge.ops.nn import conv_fp16, gemm_fp16, matmul_fp16
from dsedge.quant.quantize import QuantConfig, quantize_graph

from .test_precision_plan import feeds as outlier_feeds, outlier_model

# -- the exact oracle ------------------------------------------------------------------------------

F16_MAX = Fraction(65504)
INF = float("inf")


def r16(v: Fraction, neg_zero: bool = False) -> float:
    """v rounded to binary16 (nearest, ties to even, subnormals, overflow to inf), as a float;
    a zero result carries the sign of v (neg_zero: v is an exact -0)."""
    if v == 0:
        return -0.0 if neg_zero else 0.0
    s, a = (-1 if v < 0 else 1), abs(v)
    if a >= F16_MAX + 16:                                    # 65520 and up: past the last tie
        return s * INF
    e = a.numerator.bit_length() - a.denominator.bit_length()
    while Fraction(2) ** e > a:
        e -= 1
    while Fraction(2) ** (e + 1) <= a:
        e += 1
    ulp = Fraction(2) ** (max(e, -14) - 10)
    q, rem = divmod(a, ulp)
    if rem * 2 > ulp or (rem * 2 == ulp and q % 2 == 1):
        q += 1
    out = float(q * ulp)
    return s * out if out else (-0.0 if s < 0 else 0.0)


def h16(x: float) -> float:
    if math.isnan(x) or math.isinf(x):
        return x
    return r16(Fraction(x), neg_zero=math.copysign(1.0, x) < 0)


def fma_oracle(a: float, b: float, c: float) -> float:
    """IEEE 754 binary16 fused multiply-add, from its definition (a, b, c binary16 values)."""
    if any(math.isnan(t) for t in (a, b, c)):
        return math.nan
    if math.isinf(a) or math.isinf(b):
        if a == 0 or b == 0:
            return math.nan
        p = math.copysign(INF, a) * math.copysign(1.0, b)
        return math.nan if math.isinf(c) and c != p else p
    if math.isinf(c):
        return c
    prod = Fraction(a) * Fraction(b)
    exact = prod + Fraction(c)
    if exact == 0:      # an exact zero: -0 only when the product and c are both -0 (or negative zeros)
        pneg = (math.copysign(1.0, a) * math.copysign(1.0, b) < 0) if prod == 0 else prod < 0
        cneg = math.copysign(1.0, c) < 0 if c == 0 else c < 0
        return -0.0 if (pneg and cneg and prod == 0 and c == 0) else 0.0
    return r16(exact)


def acc_oracle(start: float, pairs) -> float:
    acc = start
    for x, w in pairs:
        acc = fma_oracle(x, w, acc)
    return acc


def bits32(y) -> bytes:
    """float32 bytes with every NaN written as 0x7FC00000 (the contract's NaN)."""
    y = np.asarray(y, np.float32).copy()
    y.view(np.uint32)[np.isnan(y)] = 0x7FC00000
    return y.tobytes()


def conv_oracle(x, w, b, strides, pads, dilations, group):
    """§16 Conv: per output, acc = h(b), then over the group's channels, then the kernel offsets
    row-major, a padded tap as x = +0."""
    N, C = x.shape[:2]
    M = w.shape[0]
    k = w.shape[2:]
    sp = len(k)
    cg, mg = C // group, M // group
    out = [(x.shape[2 + i] + pads[i] + pads[sp + i] - ((k[i] - 1) * dilations[i] + 1)) // strides[i] + 1
           for i in range(sp)]
    y = np.zeros((N, M, *out), np.float32)
    for n in range(N):
        for m in range(M):
            g = m // mg
            for o in np.ndindex(*out):
                pairs = []
                for c in range(g * cg, (g + 1) * cg):
                    for t in np.ndindex(*k):
                        pos = [o[i] * strides[i] - pads[i] + t[i] * dilations[i] for i in range(sp)]
                        inside = all(0 <= pos[i] < x.shape[2 + i] for i in range(sp))
                        xv = h16(float(x[(n, c, *pos)])) if inside else 0.0
                        pairs.append((xv, h16(float(w[(m, c - g * cg, *t)]))))
                y[(n, m, *o)] = acc_oracle(0.0 if b is None else h16(float(b[m])), pairs)
    return y


def gemm_oracle(a, bm, c):
    """§16 Gemm/MatMul: y[i, j] = acc over k of a[i, k] * bm[k, j], starting at h(c[j]) or +0."""
    M, K = a.shape
    N = bm.shape[1]
    y = np.zeros((M, N), np.float32)
    for i in range(M):
        for j in range(N):
            y[i, j] = acc_oracle(0.0 if c is None else h16(float(c[j])),
                                 [(h16(float(a[i, k])), h16(float(bm[k, j]))) for k in range(K)])
    return y


def _spiky(rng, shape, scale=1.0):
    """Values that reach binary16's corners: normals, subnormals, signed zeros, large values."""
    v = rng.standard_normal(shape).astype(np.float32) * scale
    r = rng.random(shape)
    v[r < 0.10] = np.float32(0.0)
    v[(r >= 0.10) & (r < 0.15)] = np.float32(-0.0)
    v[(r >= 0.15) & (r < 0.25)] *= np.float32(3e-6)            # binary16 subnormals (< 6.1e-5)
    v[(r >= 0.25) & (r < 0.28)] *= np.float32(3e3)              # products near and past 65504
    return v


# -- numpy's conversions and fma16 -----------------------------------------------------------------

def test_numpy_float64_and_float32_to_float16_are_correctly_rounded():
    """The reference rounds with astype(np.float16): check it on ties, near-ties, subnormals,
    the overflow boundary and random doubles against the exact oracle."""
    rng = np.random.default_rng(0)
    halves = np.arange(0, 0x7C00, dtype=np.uint16).view(np.float16).astype(np.float64)   # every finite >= 0
    nxt = np.append(halves[1:], 65536.0)
    mid = (halves + nxt) / 2                                   # every tie (exact in float64)
    cand = np.concatenate([mid, np.nextafter(mid, 0), np.nextafter(mid, np.inf), halves,
                           rng.uniform(0, 7e4, 20000), 2.0 ** rng.uniform(-30, 17, 20000),
                           [65519.99, 65520.0, 65536.0, 1e300, 2.0 ** -25, 2.0 ** -25 * (1 + 2 ** -40),
                            np.nextafter(2.0 ** -25, 0), 5e-324]])
    cand = np.concatenate([cand, -cand])
    want = np.array([h16(float(v)) for v in cand], np.float64)
    with np.errstate(over="ignore"):
        got = cand.astype(np.float16).astype(np.float64)
    assert np.array_equal(got.view(np.uint64), want.view(np.uint64))   # signs of zero included
    c32 = cand[np.abs(cand) < 3e38].astype(np.float32)
    want32 = np.array([h16(float(v)) for v in c32], np.float64)
    with np.errstate(over="ignore"):
        got32 = c32.astype(np.float16).astype(np.float64)
    assert np.array_equal(got32.view(np.uint64), want32.view(np.uint64))
    assert np.isnan(np.float64("nan").astype(np.float16))


def test_fma16_is_one_correctly_rounded_fma():
    rng = np.random.default_rng(1)
    pool = np.concatenate([rng.integers(0, 0x10000, 3000, dtype=np.uint16).view(np.float16),
                           np.array([0.0, -0.0, 1.0, -1.0, 2.0 ** -24, -(2.0 ** -24), 65504.0, -65504.0, 2.0 ** -11,
                                     np.inf, -np.inf, 2048.0, 1.0 + 2.0 ** -10], np.float16)]).astype(np.float64)
    a, b, c = (rng.choice(pool, 6000) for _ in range(3))
    # ties: 1 * 1 + 2^-11 is halfway between 1 and 1 + 2^-10 (to even: 1); 2048 + 1 (to even: 2048)
    a[:4], b[:4], c[:4] = [1.0, 1.0, 1.0, 2048.0], [1.0, 1.0, 1.0, 1.0], [2.0 ** -11, 3 * 2.0 ** -11, -0.0, 1.0]
    a[4:8], b[4:8], c[4:8] = [-0.0, 0.0, 0.0, 65504.0], [1.0, -1.0, 1.0, 65504.0], [-0.0, -0.0, -0.0, -65504.0]
    with np.errstate(invalid="ignore", over="ignore"):
        got = fma16(a, b, c)
    want = np.array([fma_oracle(*t) for t in zip(a.tolist(), b.tolist(), c.tolist())], np.float64)
    nan = np.isnan(want)
    assert np.array_equal(np.isnan(got), nan)
    assert np.array_equal(got[~nan].view(np.uint64), want[~nan].view(np.uint64))
    assert got[:8].tolist() == [1.0, 1.0 + 2 ** -9, 1.0, 2048.0, -0.0, 0.0, 0.0, INF]
    assert [math.copysign(1, v) for v in got[4:7]] == [-1, -1, 1]


# -- the op references against the oracle ---------------------------------------------------------

@pytest.mark.parametrize("case", [
    dict(x=(1, 4, 5, 6), w=(4, 2, 3, 3), group=2, strides=[2, 1], pads=[1, 0, 1, 2], dil=[1, 2], bias=True),
    dict(x=(2, 3, 7), w=(6, 1, 3), group=3, strides=[2], pads=[2, 1], dil=[1], bias=False),           # depthwise x2
    dict(x=(1, 2, 3, 3, 4), w=(2, 2, 2, 2, 3), group=1, strides=[1, 2, 1], pads=[1, 0, 1, 0, 1, 1], dil=[1, 1, 1],
         bias=True),
])
def test_conv_fp16_matches_the_oracle(case):
    rng = np.random.default_rng(2)
    x = _spiky(rng, case["x"], 4.0)
    w = _spiky(rng, case["w"], 2.0)
    b = _spiky(rng, (case["w"][0],), 8.0) if case["bias"] else None
    kw = dict(strides=case["strides"], pads=case["pads"], dilations=case["dil"], group=case["group"])
    got = conv_fp16(x, w, b, **kw)
    want = conv_oracle(x, w, b, case["strides"], case["pads"], case["dil"], case["group"])
    assert got.shape == want.shape and bits32(got) == bits32(want)


def test_padding_takes_part_and_keeps_the_sign_rule():
    """A padded tap is x = +0 and takes part: from acc = h(-0), the tap +0 * 1 = +0 makes the
    accumulator +0, so x = -0 * 1 = -0 then leaves +0 (skipping the tap would give -0)."""
    x = np.full((1, 1, 1, 1), -0.0, np.float32)
    w = np.ones((1, 1, 1, 2), np.float32)                        # taps: pad, x
    b = np.array([-0.0], np.float32)
    y = conv_fp16(x, w, b, pads=[0, 1, 0, 0])
    assert y.shape == (1, 1, 1, 1) and math.copysign(1, float(y.ravel()[0])) == 1
    assert bits32(y) == bits32(conv_oracle(x, w, b, [1, 1], [0, 1, 0, 0], [1, 1], 1))
    y = conv_fp16(x, w[..., 1:], b)                              # the x tap alone: -0 + -0 = -0
    assert math.copysign(1, float(y.ravel()[0])) == -1


@pytest.mark.parametrize("trans_b,with_c", [(0, False), (0, True), (1, False), (1, True)])
def test_gemm_fp16_matches_the_oracle(trans_b, with_c):
    rng = np.random.default_rng(3 + 2 * trans_b + with_c)
    a = _spiky(rng, (3, 9), 3.0)
    bm = _spiky(rng, (9, 5), 3.0)
    c = _spiky(rng, (5,), 5.0) if with_c else None
    got = gemm_fp16(a, np.ascontiguousarray(bm.T) if trans_b else bm, c, transB=trans_b)
    assert bits32(got) == bits32(gemm_oracle(a, bm, c))


def test_gemm_fp16_corners():
    """Results at binary16's corners, each against the oracle and its known value: a subnormal
    sum, overflow to inf, inf - inf = NaN (written 0x7FC00000), a tie to even, exact zeros of
    both signs (-0 only from a -0 start and -0 products)."""
    t = 2.0 ** -10
    a = np.array([[t, t, 0, 0],                     # 2^-20 - 2^-21 = 2^-21: subnormal
                  [300, 300, 0, 0],                 # 90000: inf
                  [1e6, 1e6, 0, 0],                 # h(1e6) = inf; inf + (-inf) = NaN
                  [1, 2.0 ** -11, 0, 0],            # 1 + 2^-11: a tie, to even (1)
                  [-0.0, 0.0, -0.0, 0.0]], np.float32)
    b = np.array([[t], [-t / 2], [1], [1]], np.float32)
    b2 = np.array([[t, 300, 1, 1, 1], [-t / 2, 0, -1, 1, -1], [1, 1, 1, 1, 1], [1, 1, 1, 1, -1]], np.float32)
    got = gemm_fp16(a, b2, np.array([0, 0, 0, 0, -0.0], np.float32))
    want = gemm_oracle(a, b2, np.array([0, 0, 0, 0, -0.0], np.float32))
    assert bits32(got) == bits32(want)
    d = np.diagonal(got)
    assert d[0] == 2.0 ** -21 and d[1] == INF and np.isnan(d[2]) and d[3] == 1.0
    assert got[4, 4] == 0 and math.copysign(1, float(got[4, 4])) == -1      # -0 start, -0 products
    assert math.copysign(1, float(got[4, 3])) == 1                          # +0 start
    # the node's result (ops/half.run_fp16): NaN written as 0x7FC00000, then the fused clip keeps NaN
    y, = run_fp16(REGISTRY.get("Gemm"), [a, b2, None], {"_act": ("clip", 0.0, 6.0)})
    assert y.view(np.uint32)[2, 2] == 0x7FC00000 and y[1, 1] == 6.0 and y[0, 0] == 2.0 ** -21
    assert bits32(matmul_fp16(a, b)) == bits32(gemm_oracle(a, b, None))


def test_matmul_fp16_batched_matches_the_oracle():
    rng = np.random.default_rng(5)
    a = _spiky(rng, (2, 3, 4, 7), 2.0)
    b = _spiky(rng, (7, 3), 2.0)
    got = matmul_fp16(a, b)
    want = gemm_oracle(a.reshape(-1, 7), b, None).reshape(2, 3, 4, 3)
    assert got.shape == (2, 3, 4, 3) and bits32(got) == bits32(want)
    assert matmul_fp16(a[0, 0, 0], b).shape == (3,)                 # 1-D A
    with pytest.raises(DseError, match="transA"):
        gemm_fp16(a[0, 0], b, transA=1)


def test_long_sums_lose_bits_and_overflow():
    """Why it is chosen per node: a sum of 4096 ones stops at 2048 (there 2048 + 1 is a tie and
    the accumulator's ulp is 2), and a running sum past 65504 is inf."""
    ones = np.ones((1, 4096), np.float32)
    assert float(matmul_fp16(ones, ones.T)[0, 0]) == 2048.0 and float(matmul_fp16(ones[:, :2047], ones[:, :2047].T)[0, 0]) == 2047.0
    assert float(matmul_fp16(np.full((1, 8), 1e4, np.float32), np.ones((8, 1), np.float32))[0, 0]) == INF


# -- the quantiser, .dse and ONNX -----------------------------------------------------------------------

def _model():
    rng = np.random.default_rng(7)
    inits = []

    def w(name, *shape, s=0.3):
        inits.append(numpy_helper.from_array((rng.standard_normal(shape) * s).astype(np.float32), name))
        return name

    N = helper.make_node
    nodes = [N("Conv", ["x", w("w1", 8, 3, 3, 3), w("b1", 8)], ["a"], pads=[1, 1, 1, 1], name="conv1"),
             N("Relu", ["a"], ["r"], name="relu"),
             N("Conv", ["r", w("w2", 8, 2, 3, 3), w("b2", 8)], ["c"], pads=[1, 1, 1, 1], strides=[2, 2], group=4,
               name="conv2"),
             N("Flatten", ["c"], ["f"], name="flat"),
             N("Gemm", ["f", w("wg", 16, 128, s=0.1), w("bg", 16)], ["g"], transB=1, name="fc"),
             N("Reshape", ["g", "shp"], ["g3"], name="reshape"),
             N("MatMul", ["g3", w("wm", 2, 4, 5)], ["m"], name="mm3"),         # a batched B: not eligible
             N("MatMul", ["m", w("wo", 5, 3)], ["y"], name="mm")]
    inits.append(numpy_helper.from_array(np.array([1, 2, 2, 4], np.int64), "shp"))
    g = helper.make_graph(nodes, "f16", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 8, 8])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 2, 2, 3])], inits)
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", 18)])


def _feeds(n=6, seed=8):
    rng = np.random.default_rng(seed)
    return [{"x": rng.standard_normal((1, 3, 8, 8)).astype(np.float32)} for _ in range(n)]


@pytest.fixture(scope="module")
def graph():
    return load_onnx(_model().SerializeToString())


def test_quantiser_marks_what_is_asked_and_says_why_not(graph):
    keep = ("conv2", "fc", "mm3", "mm")
    r = quantize_graph(graph.copy(), _feeds(), QuantConfig(progress=False, keep_float=keep,
                                                           fp16_arith_nodes=("all", "conv1")))
    plan = {p.name: p for p in r.plan}
    marked = {n.name for n in r.graph.nodes if n.attrs.get(FP16_ARITH)}
    assert marked == {"conv2", "fc", "mm"}
    for name in marked:
        assert plan[name].precision == "fp16" and "fp16 arithmetic" in plan[name].reason, plan[name]
    assert plan["mm3"].precision == "fp32" and "not 2-D" in plan["mm3"].reason
    assert plan["conv1"].precision.startswith("int8") and "runs in int8" in plan["conv1"].reason
    # their weights and biases are fp16 (layout 5 in .dse), the int8 node's are not
    half = set(r.graph.fp16_weights)
    by = {n.name: n for n in r.graph.nodes}
    for name in marked:
        assert all(i in half for i in by[name].inputs[1:] if i)
    # the interpreter runs them in binary16: the output differs from float32 compute on the same weights
    y = execute(r.graph, _feeds(1, 9)[0])[0]
    for n in r.graph.nodes:
        n.attrs.pop(FP16_ARITH, None)
    y32 = execute(r.graph, _feeds(1, 9)[0])[0]
    assert not np.array_equal(y, y32) and np.allclose(y, y32, rtol=0.05, atol=0.05)


def test_precision_fp16_marks_every_eligible_node(graph):
    r = quantize_graph(graph.copy(), _feeds(), QuantConfig(progress=False, precision="fp16", fp16_arith_nodes=("all",)))
    marked = {n.name for n in r.graph.nodes if n.attrs.get(FP16_ARITH)}
    assert marked == {"conv1", "conv2", "fc", "mm"}
    plan = {p.name: p for p in r.plan}
    assert "fp16 arithmetic" in plan["conv1"].reason and "not 2-D" in plan["mm3"].reason
    assert plan["flat"].reason == "--precision fp16"                       # not a candidate: nothing said
    with pytest.raises(DseError, match="'nosuch'.*no node or op type"):
        quantize_graph(graph.copy(), _feeds(2), QuantConfig(progress=False, precision="fp16",
                                                            fp16_arith_nodes=("nosuch",)))
    with pytest.raises(DseError, match="fp16 weights"):
        QuantConfig(precision="fp32", fp16_arith_nodes=("all",))


def test_dse_keeps_the_attribute_and_onnx_stays_float32(graph, tmp_path):
    r = dsedge.quantize(graph.copy(), _feeds(), precision="fp16", fp16_arith=("all",), progress=False)
    ex = export(r, names="all")
    recs = {nr.name: dict(nr.attrs) for nr in ex.artifact.nodes}
    assert {k for k, a in recs.items() if a.get("fp16_arith") == 1} == {"conv1", "conv2", "fc", "mm"}
    assert "fp16_arith" not in recs["mm3"] and "fp16_arith" not in recs["flat"]
    by = {n.name: n for n in ex.graph.nodes}
    idx = {nr.name: nr for nr in ex.artifact.nodes}
    for name in ("conv1", "fc"):                        # weight and bias: float16, layout 5
        for t in idx[name].inputs[1:]:
            assert ex.artifact.tensors[t].dtype == "float16" and ex.artifact.tensors[t].layout == 5
    back = load_dse_graph(ex.artifact)
    assert {n.name for n in back.nodes if n.attrs.get(FP16_ARITH)} == {"conv1", "conv2", "fc", "mm"}
    f = _feeds(1, 10)[0]
    assert bits32(execute(back, {back.inputs[0]: f["x"]})[0]) == bits32(execute(r.graph, f)[0])
    assert by["conv1"].attrs.get(FP16_ARITH) == 1
    # ONNX: float32 compute on the fp16 weights, no invented attribute, the nodes named in metadata
    path = tmp_path / "f16.onnx"
    save_result(r, path)
    m = onnx.load(str(path))
    assert not any(a.name == "fp16_arith" or a.name.startswith("_") for n in m.graph.node for a in n.attribute)
    meta = {p.key: p.value for p in m.metadata_props}
    assert meta["dsedge.fp16_arith_nodes"].split(",") == ["conv1", "conv2", "fc", "mm"]
    import onnxruntime as ort
    y_ort = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(None, f)[0]
    y16 = execute(r.graph, f)[0]
    assert np.allclose(y_ort, y16, rtol=0.05, atol=0.05)


def test_c_ref_kernels_give_the_numpy_bytes(graph, tmp_path):
    r = dsedge.quantize(graph.copy(), _feeds(), precision="fp16", fp16_arith=("all",), progress=False)
    path = tmp_path / "f16.dse"
    r.save(str(path))
    back = load_dse_graph(path)
    with dsedge.Runtime(str(path), kernels="ref") as rt:
        for f in _feeds(6, 11) + [{"x": (_feeds(1, 12)[0]["x"] * 3e3).astype(np.float32)}]:   # + overflow
            got = rt.run(f)[rt.outputs[0].name]
            assert bits32(got) == bits32(execute(r.graph, f)[0]) == bits32(execute(back, {back.inputs[0]: f["x"]})[0])


# -- the planner ------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def outlier(tmp_path_factory):
    d = tmp_path_factory.mktemp("f16plan")
    p = d / "outlier.onnx"
    onnx.save(outlier_model(), p)
    calib = d / "calib.npz"
    np.savez(calib, x=np.stack([f["x"] for f in outlier_feeds(160, 1)]))
    big = d / "big.npz"          # the same feeds x 200: gemm1's output passes 65504, inf in binary16
    np.savez(big, x=np.stack([f["x"] * np.float32(200) for f in outlier_feeds(160, 1)]))
    return p, calib, big


def test_plan_keeps_fp16_arith_within_the_budget_and_reproduces_it(outlier, tmp_path):
    model, calib, _ = outlier
    run = CliRunner().invoke
    out = tmp_path / "p.json"
    r = run(main, ["plan", str(model), "--calib", str(calib), "--max-drop", "3%", "--fp16-arith", "-o", str(out),
                   "--no-progress"])
    assert r.exit_code == 0, r.output
    assert "fp16 arithmetic: gemm2" in r.output and "binary16" in r.output
    p = load_plan(out)
    assert p.keep_float == ["gemm2"] and p.fp16_arith == ["gemm2"] and p.meets
    assert json.loads(out.read_text())["fp16_arith_nodes"] == ["gemm2"]
    node = {n["name"]: n for n in p.nodes}["gemm2"]
    assert node["precision"] == "fp16" and "judged with binary16" in node["reason"]
    assert any(t.get("fp16_arith") == 1 and t["why"].startswith("fp16 arithmetic") for t in p.tried)
    a, b = tmp_path / "a.dse", tmp_path / "b.dse"
    r = run(main, ["quantize", str(model), "--calib", str(calib), "--plan", str(out), "-o", str(a), "--no-progress"])
    assert r.exit_code == 0, r.output
    r = run(main, ["quantize", str(model), "--calib", str(calib), "--plan", str(out), "-o", str(b), "--no-progress"])
    assert r.exit_code == 0 and a.read_bytes() == b.read_bytes()
    recs = {nr.name: dict(nr.attrs) for nr in dsedge.artifact.read(a).nodes}
    assert recs["gemm2"].get("fp16_arith") == 1 and "fp16_arith" not in recs["gemm1"]
    c = tmp_path / "c.dse"
    r = run(main, ["quantize", str(model), "--calib", str(calib), "--precision", "mixed", "--max-drop", "3%",
                   "--fp16-arith", "all", "-o", str(c), "--no-progress"])
    assert r.exit_code == 0, r.output
    assert c.read_bytes() == a.read_bytes()


def test_plan_drops_fp16_arith_when_it_breaks_the_budget(outlier, tmp_path):
    """Inputs 200x larger: gemm1's output (gemm2's input) passes binary16's 65504, so gemm2 in fp16
    arithmetic reads inf and changes the answers: the evaluation is tried and refused."""
    model, _, big = outlier
    out = tmp_path / "p.json"
    r = CliRunner().invoke(main, ["plan", str(model), "--calib", str(big), "--max-drop", "3%", "--fp16-arith",
                                  "-o", str(out), "--no-progress"])
    assert r.exit_code == 0, r.output
    p = load_plan(out)
    assert "gemm2" in p.keep_float and p.fp16_arith == [] and p.meets
    tried = [t for t in p.tried if t.get("fp16_arith")]
    assert len(tried) == 1 and tried[0]["drop"] > p.budget
    assert "fp16_arith_nodes" not in json.loads(out.read_text())
    assert "binary16" not in {n["name"]: n for n in p.nodes}["gemm2"]["reason"]


# -- CLI ------------------------------------------------------------------------------------------------------

def test_cli_quantize_fp16_arith(tmp_path):
    model = tmp_path / "m.onnx"
    onnx.save(_model(), model)
    calib = tmp_path / "calib.npz"
    np.savez(calib, x=np.stack([f["x"] for f in _feeds(6)]))
    out = tmp_path / "m.dse"
    run = CliRunner().invoke
    r = run(main, ["quantize", str(model), "--calib", str(calib), "--keep-float", "fc", "--fp16-arith", "fc",
                   "-o", str(out), "--no-progress", "--json"])
    assert r.exit_code == 0, r.output
    layers = {x["name"]: x for x in json.loads(r.stdout)["layers"]}
    assert layers["fc"]["precision"] == "fp16" and "fp16 arithmetic" in layers["fc"]["reason"]
    recs = {nr.name: dict(nr.attrs) for nr in dsedge.artifact.read(out).nodes}
    assert recs["fc"].get("fp16_arith") == 1 and sum(a.get("fp16_arith", 0) for a in recs.values()) == 1
    qdq = tmp_path / "m.int8.onnx"          # QDQ ONNX: fc a float32 node on its fp16 weights, named in metadata
    r = run(main, ["quantize", str(model), "--calib", str(calib), "--keep-float", "fc", "--fp16-arith", "fc",
                   "-o", str(qdq), "--no-progress"])
    assert r.exit_code == 0, r.output
    m = onnx.load(str(qdq))
    onnx.checker.check_model(m)
    assert {p.key: p.value for p in m.metadata_props}["dsedge.fp16_arith_nodes"] == "fc"
    assert not any(a.name == "fp16_arith" or a.name.startswith("_") for n in m.graph.node for a in n.attribute)
    for bad, what in ((["--calib", str(calib), "--fp16-arith", "nosuch"], "'nosuch'"),
                      (["--calib", str(calib), "--fp16-arith", ","], "--fp16-arith"),
                      (["--calib", str(calib), "--fp16-arith", "all", "--precision", "fp32"], "--fp16-arith"),
                      (["--calib", str(calib), "--fp16-arith", "fc", "--precision", "mixed"], "all")):
        r = run(main, ["quantize", str(model), *bad, "-o", str(tmp_path / "e.dse"), "--no-progress"])
        assert r.exit_code == 2 and what in r.output and "Traceback" not in r.output, (bad, r.output)
