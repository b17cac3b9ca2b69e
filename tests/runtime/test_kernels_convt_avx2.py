"""The AVX2 ConvTranspose variants (runtimes/c/kernels/avx2/conv_transpose.c, float32, and
conv_transpose_i8.c, int8) against the REF kernels of the same library (DSE_LOAD_REF_KERNELS),
the numpy references and onnxruntime.

  * float32: within the sums' budget of docs/kernels.md ("Optimised float variants"): per element
    |avx2 - ref| <= 4 (K + 1) 2^-24 S, S = sum |x w| + |bias| over the terms of that element, K =
    C/group * taps; and within 1e-5 of onnxruntime (relative to the output's range);
  * int8 (int8 and float_out outputs): REF's bytes and dsedge/quant/intref.py's exactly.
Both paths of dse__convt_plan (DIRECT: no output receives two taps; GENERAL: overlapping taps),
with every tail: odd channel counts (an unpaired last channel in the int8 pairs), groups, strides
1/2/3, kernels 1-5 and 8, dilation 2, pads cutting taps, output_padding and gaps no tap reaches,
1-D and 2-D, widths not a multiple of 8/16, more output channels than one block, output rows wider
than one chunk. Each case also runs on 2 and 3 threads (the same bytes). 3-D nodes, float16
weights and artifacts planned without the variants' scratch run REF (same result). The scratch
planned comes from dsedge/export/scratch.py (`convtranspose_plan`), so the C and Python formulas
must agree for the variant to be chosen.
"""
from __future__ import annotations

import ctypes as C
import os

import numpy as np
import pytest

from dsedge.export.scratch import convtranspose_plan
from dsedge.quant import intref
from dsedge.runtime import _declare

from .test_kernels_f32_avx2 import (AVX2, REF_KERNELS, _make, check_variant, lib_ref_float, planned_scratch, rnd,  # noqa: F401
                                    run, sum_tol)
from .test_kernels_f32_nn import make_node, ort, ref
from .test_kernels_int8_opt import Net, float_ref, rand_bias, rand_i8, rand_w, rng_mults, weighted_attrs

@pytest.fixture(scope="module")
def lib(tmp_path_factory):
    prebuilt = os.environ.get("DSE_TEST_LIBDSEDGE")   # e.g. a sanitizer build (run with LD_PRELOAD=libasan)
    if not prebuilt:
        return _make(tmp_path_factory, "dse_avx2_build")
    L = C.CDLL(prebuilt)
    _declare(L)
    return L


# x shape, w shape (C, M/group, k...), strides, pads, dilations, group, output_padding, bias, act
CASES = [
    # DIRECT
    ((1, 24, 13, 21), (24, 24, 2, 2), (2, 2), (0, 0, 0, 0), (1, 1), 1, (0, 0), True, None),        # DBNet head
    ((1, 24, 9, 17), (24, 1, 2, 2), (2, 2), (0, 0, 0, 0), (1, 1), 1, (0, 0), True, (0.0, np.inf)),  # one channel
    ((2, 6, 5, 70), (6, 3, 2, 2), (2, 2), (1, 0, 1, 1), (1, 1), 2, (0, 0), True, None),             # pads, groups
    ((1, 5, 6, 11), (5, 7, 2, 2), (3, 3), (0, 0, 0, 0), (1, 1), 1, (2, 1), False, None),            # gaps, output_padding
    ((1, 3, 4, 30), (3, 4, 3, 3), (3, 3), (1, 1, 0, 2), (1, 1), 1, (0, 0), True, (-1.0, 1.0)),     # k = s = 3
    ((1, 4, 5, 9), (4, 5, 2, 2), (3, 3), (0, 0, 0, 0), (2, 2), 1, (0, 1), True, None),              # dilation 2
    ((2, 7, 37), (7, 5, 2), (2,), (0, 1), (1,), 1, (1,), True, None),                                # 1-D
    ((1, 9, 5, 19), (9, 11, 1, 1), (1, 1), (0, 0, 0, 0), (1, 1), 1, (0, 0), True, None),            # 1x1
    ((1, 3, 3, 5), (3, 2, 8, 8), (8, 8), (0, 0, 0, 0), (1, 1), 1, (0, 0), True, None),              # 64 taps
    ((1, 51, 6, 9), (51, 60, 2, 2), (2, 2), (0, 0, 0, 0), (1, 1), 1, (0, 0), True, None),           # 5 channel blocks
    ((1, 5, 3, 100), (5, 3, 2, 2), (2, 2), (0, 0, 0, 0), (1, 1), 1, (0, 0), True, None),            # 2 column blocks
    # GENERAL
    ((1, 16, 7, 13), (16, 8, 4, 4), (2, 2), (1, 1, 1, 1), (1, 1), 1, (0, 0), True, None),           # k 4 s 2 p 1
    ((2, 5, 6, 9), (5, 3, 3, 3), (2, 2), (1, 1, 1, 1), (1, 1), 1, (1, 1), True, (-1.0, 1.0)),      # k 3 s 2 op 1
    ((1, 7, 8, 20), (7, 9, 3, 3), (1, 1), (1, 1, 1, 1), (1, 1), 1, (0, 0), False, None),            # stride 1
    ((1, 6, 5, 8), (6, 2, 5, 3), (3, 2), (2, 1, 0, 3), (2, 2), 3, (1, 0), True, None),              # dilated, groups
    ((1, 3, 50), (3, 4, 5), (2,), (2, 1), (1,), 1, (1,), True, None),                                # 1-D
    ((1, 4, 3, 70), (4, 3, 4, 4), (2, 2), (1, 1, 1, 1), (1, 1), 1, (0, 0), True, None),             # 3 column chunks
    ((1, 3, 4, 25), (3, 2, 1, 5), (1, 3), (0, 0, 0, 2), (1, 1), 1, (0, 2), True, None),             # W stride 3
    ((1, 4, 3, 5), (4, 100, 3, 3), (2, 2), (1, 1, 1, 1), (1, 1), 1, (0, 0), True, None),            # 3 channel blocks
    ((1, 2, 2, 3), (2, 3, 5, 5), (1, 1), (2, 3, 2, 1), (1, 1), 1, (0, 0), True, None),              # pads cut taps
]
DIRECT = 11   # CASES[:DIRECT] take the DIRECT path


def _plan(xs, ws, s, d, g, i8):
    nd = len(xs) - 2
    k, s, d = [1] * (2 - nd) + list(ws[2:]), [1] * (2 - nd) + list(s), [1] * (2 - nd) + list(d)
    return convtranspose_plan(nd, ws[0] // g, ws[1], k[0], k[1], s[0], s[1], d[0], d[1], i8)


def _attrs(case):
    xs, ws, s, p, d, g, op_, *_ = case
    return dict(kernel_shape=list(ws[2:]), strides=list(s), pads=list(p), dilations=list(d), group=g,
                output_padding=list(op_))


def _f32_case(case, seed, scratch=None):
    xs, ws, s, p, d, g, op_, has_b, act = case
    rng = np.random.default_rng(seed)
    x, w = rnd(rng, *xs), rnd(rng, *ws, scale=0.5)
    b = rnd(rng, ws[1] * g) if has_b else None
    attrs = _attrs(case)
    (r,) = ref("ConvTranspose", x, w, b, **attrs)
    cattrs = dict(attrs)
    if act:
        cattrs.update(act_min=act[0], act_max=act[1])
    sc = planned_scratch("ConvTranspose", [xs, ws] + ([(ws[1] * g,)] if has_b else []), r.shape, attrs)
    assert sc == _plan(xs, ws, s, d, g, False)
    art, feeds = make_node("ConvTranspose", [(x, False), (w, True)] + ([(b, True)] if has_b else []),
                           [("float32", r.shape)], cattrs, scratch=sc if scratch is None else scratch)
    (s_abs,) = ref("ConvTranspose", np.abs(x), np.abs(w), None if b is None else np.abs(b), **attrs)
    K = ws[0] // g * int(np.prod(ws[2:]))
    return art, feeds, (x, w, b), r, act, 4 * (K + 1) * 2.0 ** -24 * s_abs.astype(np.float64)


@pytest.mark.parametrize("case", CASES, ids=[f"convt{i}" for i in range(len(CASES))])
def test_conv_transpose_f32(lib, case):
    art, feeds, (x, w, b), r, act, bound = _f32_case(case, 100 + case[1][0] + case[1][1])
    o, _ = check_variant(lib, art, feeds, "dse_f32_conv_transpose__avx2", tol=sum_tol(bound))
    (e,) = ort("ConvTranspose", [x, w, b], _attrs(case))
    if act:
        r, e = np.clip(r, *act), np.clip(e, *act)
    scale = float(np.abs(r).max())
    np.testing.assert_allclose(o, e, rtol=1e-5, atol=1e-5 * scale)
    np.testing.assert_allclose(o, r, rtol=1e-5, atol=1e-5 * scale)


def test_conv_transpose_f32_left_to_ref(lib):
    """3-D, float16 weights and an artifact planned without the variant's scratch (an older
    exporter) run REF, with REF's bytes."""
    rng = np.random.default_rng(11)
    x3, w3 = rnd(rng, 1, 2, 3, 4, 5), rnd(rng, 2, 3, 2, 2, 2)
    a3 = dict(kernel_shape=[2, 2, 2], strides=[2, 2, 2], pads=[0] * 6, dilations=[1] * 3, group=1, output_padding=[0] * 3)
    (r3,) = ref("ConvTranspose", x3, w3, None, **a3)
    assert planned_scratch("ConvTranspose", [x3.shape, w3.shape], r3.shape, a3) == 0
    art, feeds = make_node("ConvTranspose", [(x3, False), (w3, True)], [("float32", r3.shape)], a3)
    (o,), ks = run(lib, art, feeds)
    assert ks == ["dse_f32_conv_transpose__ref"]
    np.testing.assert_allclose(o, r3, rtol=1e-5, atol=1e-6)
    case = CASES[0]
    xs, ws = case[0], case[1]
    x, w = rnd(rng, *xs), rnd(rng, *ws)
    attrs = _attrs(case)
    (r,) = ref("ConvTranspose", x, w, None, **attrs)
    sc = planned_scratch("ConvTranspose", [xs, ws], r.shape, attrs)
    art, feeds = make_node("ConvTranspose", [(x, False), (w.astype(np.float16), True)], [("float32", r.shape)], attrs,
                           scratch=sc)
    _, ks = run(lib, art, feeds)
    assert ks == ["dse_f32_conv_transpose__ref"]
    for scratch in (0, sc - 4):   # none planned; less than the variant uses
        art, feeds = make_node("ConvTranspose", [(x, False), (w, True)], [("float32", r.shape)], attrs, scratch=scratch)
        (o,), ks = run(lib, art, feeds)
        assert ks == ["dse_f32_conv_transpose__ref"]
        (oref,), _ = run(lib, art, feeds, flags=REF_KERNELS)
        assert o.tobytes() == oref.tobytes()


def test_conv_transpose_ref_float_build(lib, lib_ref_float):
    """make REF_FLOAT=1: the float variant is left out (REF's bytes); the int8 variant stays."""
    art, feeds, *_ = _f32_case(CASES[0], 5)
    o, ks = run(lib_ref_float, art, feeds)
    assert ks == ["dse_f32_conv_transpose__ref"]
    r, _ = run(lib, art, feeds, flags=REF_KERNELS)
    assert o[0].tobytes() == r[0].tobytes()
    iart, ifeeds, _, want = _i8_case(CASES[0], 3, (5, -7))
    _, ks = run(lib_ref_float, iart, ifeeds)
    if AVX2:
        assert ks == ["dse_i8_conv_transpose__avx2"]


# -- int8 ------------------------------------------------------------------------------------------

def _i8_case(case, seed, zps, out_scale=False, qlim=(-128, 127), big_bias=False, scratch=None):
    xs, ws, s, p, d, g, op_, _, act = case
    rng = np.random.default_rng(seed)
    x, w = rand_i8(rng, xs), rand_w(rng, ws)
    O = ws[1] * g
    K = ws[0] // g * int(np.prod(ws[2:]))
    M, n = rng_mults(rng, O)
    b = rand_bias(rng, O, K, big=big_bias)
    zp_in, zp_out = zps
    scale = (2.0 ** rng.uniform(-12, 0, O)).astype(np.float32) if out_scale else None
    facts = (-0.25 * float(scale.mean()) * 1e3, float("inf")) if out_scale else None
    r = intref.conv_transpose_int8(x, zp_in, w, b, M, n, zp_out, list(s), list(p), list(d), g, list(op_), qlim[0], qlim[1],
                                   acc_only=out_scale)
    if out_scale:
        r = float_ref(r, scale, 1, facts)
    net = Net()
    xi, wi, bi = net.inp(x), net.const(w), net.const(b.astype(np.int32))
    yi = net.out(r.dtype, r.shape)
    attrs = dict(_attrs(case), **weighted_attrs(net, zp_in, zp_out, M, n, qlim[0], qlim[1], scale, facts))
    plan = _plan(xs, ws, s, d, g, True)
    art = net.build("ConvTranspose", [xi, wi, bi], [yi], attrs, plan if scratch is None else scratch)
    return art, net.feeds, net.outs, r


def _check_i8(lib, art, feeds, want, kernel="dse_i8_conv_transpose__avx2"):
    o, ks = run(lib, art, feeds)
    r, rks = run(lib, art, feeds, flags=REF_KERNELS)
    assert all(k.endswith("__ref") for k in rks), rks
    if AVX2 and kernel:
        assert ks[0] == kernel, ks
    want = np.ascontiguousarray(want)
    assert r[0].tobytes() == want.tobytes(), f"REF: {int((r[0] != want).sum())} of {want.size} differ"
    assert o[0].tobytes() == want.tobytes(), f"{ks}: {int((o[0] != want).sum())} of {want.size} differ"
    for t in (2, 3):
        ot, _ = run(lib, art, feeds, threads=t)
        assert ot[0].tobytes() == o[0].tobytes(), f"{t} threads give other bytes"


@pytest.mark.parametrize("case", CASES, ids=[f"convt{i}" for i in range(len(CASES))])
@pytest.mark.parametrize("zps", [(-128, 127), (11, -9)])
def test_conv_transpose_i8(lib, case, zps):
    art, feeds, _, want = _i8_case(case, 300 + case[1][0] + case[1][1] + zps[0], zps)
    _check_i8(lib, art, feeds, want)


@pytest.mark.parametrize("ci", [0, 1, 4, 6, 11, 12, 15])
def test_conv_transpose_i8_float_out_and_clamps(lib, ci):
    """float_out (with act_min), qmin/qmax clamps, a bias near the int32 headroom, multipliers >= 1"""
    case = CASES[ci]
    art, feeds, _, want = _i8_case(case, 40 + ci, (127, 0), out_scale=True)
    _check_i8(lib, art, feeds, want)
    art, feeds, _, want = _i8_case(case, 50 + ci, (-128, -128), qlim=(-100, 60), big_bias=True)
    _check_i8(lib, art, feeds, want)


def test_conv_transpose_i8_left_to_ref(lib):
    """3-D and an artifact planned without the variant's scratch: REF, the same bytes."""
    case3 = ((1, 3, 3, 4, 5), (3, 2, 2, 2, 2), (2, 2, 2), (0,) * 6, (1, 1, 1), 1, (0, 0, 0), True, None)
    rng = np.random.default_rng(1)
    x, w = rand_i8(rng, case3[0]), rand_w(rng, case3[1])
    M, n = rng_mults(rng, 2)
    b = rand_bias(rng, 2, 24)
    r = intref.conv_transpose_int8(x, 3, w, b, M, n, -2, [2, 2, 2], [0] * 6, [1, 1, 1], 1, [0, 0, 0], -128, 127)
    net = Net()
    xi, wi, bi = net.inp(x), net.const(w), net.const(b.astype(np.int32))
    yi = net.out(r.dtype, r.shape)
    art = net.build("ConvTranspose", [xi, wi, bi], [yi], dict(_attrs(case3), **weighted_attrs(net, 3, -2, M, n)), 0)
    _check_i8(lib, art, net.feeds, r, kernel="dse_i8_conv_transpose__ref")
    art, feeds, _, want = _i8_case(CASES[0], 9, (1, 2), scratch=0)
    _check_i8(lib, art, feeds, want, kernel="dse_i8_conv_transpose__ref")


def _load_kernels(L, art, flags=0):
    """The kernel per node of an artifact that must load (not run)."""
    from dsedge.runtime import _Error
    data = art.to_bytes()
    raw = np.zeros(len(data) + 64, np.uint8)
    start = (-raw.ctypes.data) % 64
    raw[start:start + len(data)] = np.frombuffer(data, np.uint8)
    m, err = C.c_void_p(), _Error()
    st = L.dse_model_load_ex(raw.ctypes.data + start, len(data), flags, C.byref(m), C.byref(err))
    assert st == 0, err.message.decode()
    try:
        return [L.dse_model_node_kernel(m, k).decode() for k in range(L.dse_model_node_count(m))]
    finally:
        L.dse_model_free(m)


def test_plan_python_equals_c(lib):
    """Random 1-D/2-D geometries with the scratch of dsedge/export/scratch.py: the loader accepts the
    plan (REF's check reports the C formula: a larger Python plan is refused at load), the variant
    takes the node (a smaller one leaves it to REF), for float32 and int8."""
    rng = np.random.default_rng(77)
    for i in range(40):
        nd = 1 + i % 2
        g = int(rng.choice([1, 1, 2, 3]))
        cg, mg = int(rng.integers(1, 40)), int(rng.integers(1, 70))
        k = [int(v) for v in rng.integers(1, 6, nd)]
        s = [int(v) for v in rng.integers(1, 5, nd)]
        d = [int(v) for v in rng.integers(1, 3, nd)]
        xs = (1, cg * g) + tuple(int(v) for v in rng.integers(1, 9, nd))
        ws = (cg * g, mg) + tuple(k)
        out = [(xs[2 + a] - 1) * s[a] + (k[a] - 1) * d[a] + 1 for a in range(nd)]
        case = (xs, ws, tuple(s), (0,) * (2 * nd), tuple(d), g, (0,) * nd, True, None)
        art, *_ = _f32_case(case, i)
        assert _load_kernels(lib, art) == ["dse_f32_conv_transpose__avx2"] or not AVX2, (case, out)
        assert _load_kernels(lib, art, REF_KERNELS) == ["dse_f32_conv_transpose__ref"]
        if cg * int(np.prod(k)) * 255 * 127 < 2 ** 31 - (1 << 20):
            iart, *_ = _i8_case(case, i, (0, 0))
            assert _load_kernels(lib, iart) == ["dse_i8_conv_transpose__avx2"] or not AVX2, case
            assert _load_kernels(lib, iart, REF_KERNELS) == ["dse_i8_conv_transpose__ref"]


def test_plan_formulas_agree():
    """dsedge/export/scratch.py's formula against the variants' needs on a sweep of geometries (a
    C/Python mismatch makes the variant refuse or the loader reject the artifact; this checks the
    Python side's shape: DIRECT iff no overlap and at most 64 taps; positive for 1-D/2-D only)."""
    assert convtranspose_plan(3, 4, 4, 2, 2, 2, 2, 1, 1, False) == 0
    assert convtranspose_plan(2, 24, 24, 2, 2, 2, 2, 1, 1, False) == 4 * 12 * 4 * 64
    assert convtranspose_plan(2, 24, 24, 2, 2, 2, 2, 1, 1, True) == 4 * 48 * 12 + 4 * 12 * 64 + 4 * 48 * 64
    assert convtranspose_plan(2, 16, 8, 4, 4, 2, 2, 1, 1, False) == 4 * 8 * 16 * 16 + 4 * 8 * 2 * 32
    assert convtranspose_plan(1, 3, 4, 1, 5, 1, 2, 1, 1, False) == 4 * 4 * 5 * 3 + 4 * 4 * 2 * 32
    assert convtranspose_plan(2, 64, 32, 4, 4, 2, 2, 1, 1, False) == 4 * 16 * 16 * 64 + 4 * 16 * 2 * 32   # 2 blocks
    assert convtranspose_plan(2, 4, 4, 3, 3, 2, 20, 1, 1, False) == 0   # GENERAL with sw > 16: REF


# -- a model exported as a user would ----------------------------------------------------------------

def _decoder_onnx():
    """Conv 3x3 + Relu, ConvTranspose k2 s2 (DIRECT), Relu, ConvTranspose k4 s2 p1 (GENERAL) to 3
    channels: the scratch comes from the exporter's own plan."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper
    rng = np.random.default_rng(0)
    inits = [numpy_helper.from_array((rng.standard_normal(s) * 0.3).astype(np.float32), n) for n, s in
             (("w0", (12, 3, 3, 3)), ("b0", (12,)), ("w1", (12, 8, 2, 2)), ("b1", (8,)), ("w2", (8, 3, 4, 4)), ("b2", (3,)))]
    nodes = [helper.make_node("Conv", ["x", "w0", "b0"], ["c0"], kernel_shape=[3, 3], pads=[1, 1, 1, 1]),
             helper.make_node("Relu", ["c0"], ["r0"]),
             helper.make_node("ConvTranspose", ["r0", "w1", "b1"], ["t1"], kernel_shape=[2, 2], strides=[2, 2]),
             helper.make_node("Relu", ["t1"], ["r1"]),
             helper.make_node("ConvTranspose", ["r1", "w2", "b2"], ["y"], kernel_shape=[4, 4], strides=[2, 2],
                              pads=[1, 1, 1, 1])]
    g = helper.make_graph(nodes, "dec", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 11, 19])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 3, 44, 76])], inits)
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
    m.ir_version = 8
    onnx.checker.check_model(m)
    return m


@pytest.mark.parametrize("precision", ["int8", "fp32"])
def test_exported_model_optimised_and_ref(tmp_path, precision):
    """Quantised (or not) and saved by dsedge's own API: the AVX2 ConvTranspose variants are chosen
    with the exporter's scratch plan, and give REF's bytes (int8) or REF's values within 1e-5 of
    the output's range (fp32), on 1 and 2 threads (the same bytes)."""
    import onnx
    import dsedge
    from dsedge.api import save_result
    path = tmp_path / "dec.onnx"
    onnx.save(_decoder_onnx(), str(path))
    rng = np.random.default_rng(1)
    feeds = [{"x": rng.standard_normal((1, 3, 11, 19)).astype(np.float32)} for _ in range(6)]
    res = dsedge.quantize(str(path), feeds[:4], precision=precision, progress=False)
    out = tmp_path / f"dec-{precision}.dse"
    save_result(res, str(out))
    with dsedge.Runtime(str(out)) as rt, dsedge.Runtime(str(out), threads=2) as r2, \
            dsedge.Runtime(str(out), kernels="ref") as rr:
        ks = rt.kernels()
        want = "dse_i8_conv_transpose__avx2" if precision == "int8" else "dse_f32_conv_transpose__avx2"
        if AVX2:
            assert ks.count(want) == 2, ks
        for feed in feeds[4:]:
            a, b, c = rt.run(feed), rr.run(feed), r2.run(feed)
            for k in a:
                assert a[k].tobytes() == c[k].tobytes(), k
                if precision == "int8":
                    assert a[k].tobytes() == b[k].tobytes(), k
                else:
                    np.testing.assert_allclose(a[k], b[k], rtol=0, atol=1e-5 * float(np.abs(b[k]).max()))
