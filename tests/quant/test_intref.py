"""Integer reference kernels (dsedge/quant/intref.py).

1. Golden cases (tests/quant/golden/*.json, expected outputs from an exact-integer oracle):
   the numpy kernel must match byte for byte, and arith must re-derive the stored M/n.
2. Against float: dequantised int8 outputs within 1 LSB of onnxruntime's float op on the
   dequantised inputs (onnxruntime is the float oracle), and byte-moving ops (MaxPool,
   nearest Resize) identical to onnxruntime's own int8 kernels.
"""
import glob
import json
import os

import numpy as np
import pytest

from dsedge.quant import arith, intref
from tests.onnx_check import const, make_model, run_ort

GOLDEN = os.path.join(os.path.dirname(__file__), "golden")
FILES = sorted(p for p in glob.glob(os.path.join(GOLDEN, "*.json"))
               if json.load(open(p))["kernel"] not in ("quantize_multiplier",))


def decode(v):
    if isinstance(v, dict) and "dtype" in v:
        return np.array(v["data"], dtype=v["dtype"]).reshape(v["shape"])
    if isinstance(v, list) and v and isinstance(v[0], dict):
        return [decode(a) for a in v]
    return v


def load(path):
    case = json.load(open(path))
    args = {k: decode(v) for k, v in case["args"].items()}
    if "mults" in args:
        args["mults"] = {c: (m, n) for c, m, n in args["mults"]}
    if "rescales" in args:
        args["rescales"] = [None if r is None else tuple(r) for r in args["rescales"]]
    return case, args


def h(v):
    return [float.fromhex(a) for a in v] if isinstance(v, list) else float.fromhex(v)


def check_derivation(case, args):
    d = case.get("derive")
    if d is None:
        return
    kind = d["kind"]
    if kind == "conv":
        M, n = arith.conv_multipliers(h(d["s_in"]), h(d["s_w"]), h(d["s_out"]))
        np.testing.assert_array_equal(M, args["M"])
        np.testing.assert_array_equal(n, args["n"])
    elif kind == "add":
        assert arith.add_params(h(d["s_a"]), h(d["s_b"]), h(d["s_out"])) == (args["Ma"], args["Mb"], args["n"])
    elif kind == "mul":
        assert arith.mul_multiplier(h(d["s_a"]), h(d["s_b"]), h(d["s_out"])) == (args["M"], args["n"])
    elif kind == "avgpool":
        if "count" in d:
            got = arith.avgpool_multipliers(h(d["s_in"]), h(d["s_out"]), [d["count"]])
            assert got == {d["count"]: (args["M"], args["n"])}
        else:
            counts = intref.avgpool_counts(args["x_q"].shape[2:], args["kernel_shape"], args["strides"],
                                           args["pads"], args["count_include_pad"], args["ceil_mode"])
            assert arith.avgpool_multipliers(h(d["s_in"]), h(d["s_out"]), counts) == args["mults"]
    elif kind == "rescale":
        got = [arith.rescale_multiplier(s, h(d["s_out"])) for s in h(d["s_in"])]
        want = args["rescales"] if "rescales" in args else [(args["M"], args["n"])]
        assert [None if w is None else g for g, w in zip(got, want)] == want
    elif kind == "table":
        t = arith.make_table(lambda x: 1 / (1 + np.exp(-x)), h(d["s_in"]), d["zp_in"], h(d["s_out"]), d["zp_out"])
        np.testing.assert_array_equal(t, args["table"])
    elif kind == "softmax":
        np.testing.assert_array_equal(arith.softmax_table(h(d["s_in"])), args["table"])
    else:
        raise AssertionError(f"unknown derivation {kind}")


@pytest.mark.parametrize("path", FILES, ids=lambda p: os.path.basename(p)[:-5])
def test_golden(path):
    case, args = load(path)
    fn = arith.requantize if case["kernel"] == "requantize" else getattr(intref, case["kernel"])
    got = fn(**args)
    want = decode(case["expected"])
    assert got.dtype == want.dtype and got.shape == want.shape
    np.testing.assert_array_equal(got, want, err_msg=case["description"])
    check_derivation(case, args)


def test_golden_covers_design_cases():
    cases = [json.load(open(p)) for p in FILES]
    kernels = {c["kernel"] for c in cases}
    assert {"conv_int8", "conv_transpose_int8", "gemm_int8", "matmul_int8", "add_int8", "sub_int8", "mul_int8",
            "avgpool_int8", "maxpool_int8", "concat_int8", "table_int8", "softmax_int8"} <= kernels
    convs = [c["args"] for c in cases if c["kernel"] == "conv_int8"]
    assert any(a["zp_in"] == -128 for a in convs) and any(a["zp_out"] == 127 for a in convs)
    assert any(a["group"] > 1 for a in convs) and any(max(a["dilations"]) > 1 for a in convs)
    assert any(np.prod(a["w_q"]["shape"][1:]) >= 4096 for a in convs)
    assert {c["args"]["count_include_pad"] for c in cases if c["kernel"] == "avgpool_int8"} == {0, 1}


# -- int8 against float -----------------------------------------------------------------------

def _lsb_check(y_q, s_out, zp_out, ref_float, qmin=-128, qmax=127):
    want = np.clip(np.rint(ref_float.astype(np.float64) / np.float64(s_out)) + zp_out, qmin, qmax)
    diff = np.abs(y_q.astype(np.int64) - want)
    assert diff.max() <= 1, f"int8 result off by {diff.max()} LSB"
    assert (diff == 0).mean() > 0.97


def _quant_conv_setup(rng, x_shape, w_shape, axis=0, bias=True, per_tensor_of=None):
    """per_tensor_of=O: one weight scale repeated over O output channels (grouped ConvTranspose)."""
    xf = rng.standard_normal(x_shape).astype(np.float32)
    wf = (rng.standard_normal(w_shape) * 0.2).astype(np.float32)
    s_in, zp_in = arith.choose_activation_qparams(xf.min(), xf.max())
    C = per_tensor_of or w_shape[axis]
    bf = (rng.standard_normal(C) * 0.5).astype(np.float32) if bias else None
    if per_tensor_of:
        w_q, s_w = arith.quantize_weight_per_channel(wf.reshape(1, -1), 0, s_in, [np.abs(bf).max()])
        w_q, s_w = w_q.reshape(w_shape), np.repeat(s_w, C)
        C, axis, wf = 1, 0, None
    else:
        w_q, s_w = arith.quantize_weight_per_channel(wf, axis, s_in, bf)
    b_q = arith.quantize_bias(bf, s_in, s_w) if bias else None
    x_q = arith.quantize(xf, s_in, zp_in)
    shp = [1] * len(w_shape)
    shp[axis] = C
    wd = (w_q.astype(np.float32) * s_w[:C].reshape(shp)).astype(np.float32)
    bd = None if b_q is None else (b_q.astype(np.float64) * s_in * s_w.astype(np.float64)).astype(np.float32)
    return x_q, s_in, zp_in, w_q, s_w, b_q, arith.dequantize(x_q, s_in, zp_in), wd, bd


@pytest.mark.parametrize("kind,x_shape,w_shape,attrs", [
    ("Conv", (2, 6, 11, 9), (8, 3, 3, 3), dict(strides=[2, 1], pads=[1, 2, 0, 1], dilations=[1, 2], group=2)),
    ("Conv", (1, 8, 10, 10), (8, 1, 3, 3), dict(strides=[1, 1], pads=[1, 1, 1, 1], dilations=[1, 1], group=8)),
    ("Conv", (1, 512, 4, 4), (4, 512, 3, 3), dict(strides=[1, 1], pads=[0, 0, 0, 0], dilations=[1, 1], group=1)),
    ("Conv", (2, 3, 40), (5, 3, 7), dict(strides=[2], pads=[3, 3], dilations=[1], group=1)),
    ("ConvTranspose", (1, 4, 5, 6), (4, 3, 3, 3), dict(strides=[2, 2], pads=[1, 1, 1, 1], dilations=[1, 1],
                                                       group=1, output_padding=[1, 0])),
    ("ConvTranspose", (2, 4, 4, 3), (4, 2, 2, 3), dict(strides=[2, 3], pads=[0, 1, 1, 0], dilations=[2, 1],
                                                       group=2, output_padding=[0, 0])),
])
def test_conv_against_float(kind, x_shape, w_shape, attrs):
    rng = np.random.default_rng(3)
    axis = 0 if kind == "Conv" else 1
    grouped_t = kind == "ConvTranspose" and attrs["group"] > 1      # per tensor (DESIGN.md §3)
    x_q, s_in, zp_in, w_q, s_w, b_q, xd, wd, bd = _quant_conv_setup(
        rng, x_shape, w_shape, axis, per_tensor_of=w_shape[1] * attrs["group"] if grouped_t else None)
    m = make_model(kind, [xd, const(wd), const(bd)], attrs, opset=17)
    ref = run_ort(m, {"in0": xd})[0]
    s_out, zp_out = arith.choose_activation_qparams(ref.min(), ref.max())
    M, n = arith.conv_multipliers(s_in, s_w, s_out)
    if kind == "Conv":
        assert arith.accumulator_bound_ok(int(np.prod(w_shape[1:])), b_q)
        y = intref.conv_int8(x_q, zp_in, w_q, b_q, M, n, zp_out, **attrs)
    else:
        y = intref.conv_transpose_int8(x_q, zp_in, w_q, b_q, M, n, zp_out, **attrs)
    assert y.shape == ref.shape
    _lsb_check(y, s_out, zp_out, ref)


@pytest.mark.parametrize("trans_b", [0, 1])
def test_gemm_against_float(trans_b):
    rng = np.random.default_rng(4)
    w_shape = (30, 47) if trans_b else (47, 30)
    x_q, s_in, zp_in, w_q, s_w, b_q, xd, wd, bd = _quant_conv_setup(rng, (6, 47), w_shape, 0 if trans_b else 1)
    ref = run_ort(make_model("Gemm", [xd, const(wd), const(bd)], {"transB": trans_b}), {"in0": xd})[0]
    s_out, zp_out = arith.choose_activation_qparams(ref.min(), ref.max())
    M, n = arith.conv_multipliers(s_in, s_w, s_out)
    _lsb_check(intref.gemm_int8(x_q, zp_in, w_q, b_q, M, n, zp_out, trans_b), s_out, zp_out, ref)
    # MatMul without bias, batched left operand
    x_q3 = np.stack([x_q, x_q[::-1]])
    xd3 = arith.dequantize(x_q3, s_in, zp_in)
    wt = wd.T if trans_b else wd
    ref = run_ort(make_model("MatMul", [xd3, const(np.ascontiguousarray(wt))]), {"in0": xd3})[0]
    s_out, zp_out = arith.choose_activation_qparams(ref.min(), ref.max())
    M, n = arith.conv_multipliers(s_in, s_w, s_out)
    _lsb_check(intref.matmul_int8(x_q3, zp_in, w_q.T if trans_b else w_q, None, M, n, zp_out), s_out, zp_out, ref)


@pytest.mark.parametrize("op", ["Add", "Sub", "Mul"])
def test_binary_against_float(op):
    rng = np.random.default_rng(5)
    a, b = rng.standard_normal((3, 4, 5)).astype(np.float32) * 3, rng.standard_normal((4, 1)).astype(np.float32)
    (sa, za), (sb, zb) = arith.choose_activation_qparams(a.min(), a.max()), arith.choose_activation_qparams(-.2, 1.5)
    aq, bq = arith.quantize(a, sa, za), arith.quantize(b, sb, zb)
    ad, bd = arith.dequantize(aq, sa, za), arith.dequantize(bq, sb, zb)
    ref = run_ort(make_model(op, [ad, bd]), {"in0": ad, "in1": bd})[0]
    so, zo = arith.choose_activation_qparams(ref.min() * 0.8, ref.max() * 0.8)     # some saturation
    if op == "Mul":
        y = intref.mul_int8(aq, za, bq, zb, *arith.mul_multiplier(sa, sb, so), zo)
    else:
        fn = intref.add_int8 if op == "Add" else intref.sub_int8
        y = fn(aq, za, bq, zb, *arith.add_params(sa, sb, so), zo)
    _lsb_check(y, so, zo, ref)


@pytest.mark.parametrize("cip,ceil,k,s,pads", [(0, 0, [3, 3], [2, 2], [1, 1, 1, 1]), (1, 0, [3, 3], [2, 2], [1, 1, 1, 1]),
                                               (1, 1, [3, 2], [2, 2], [1, 0, 0, 1]), (0, 1, [2, 3], [3, 2], [1, 1, 0, 1])])
def test_avgpool_against_float(cip, ceil, k, s, pads):
    rng = np.random.default_rng(6)
    x = rng.standard_normal((2, 3, 8, 7)).astype(np.float32) + 0.7
    s_in, zp_in = arith.choose_activation_qparams(x.min(), x.max())
    xq = arith.quantize(x, s_in, zp_in)
    xd = arith.dequantize(xq, s_in, zp_in)
    attrs = dict(kernel_shape=k, strides=s, pads=pads, count_include_pad=cip, ceil_mode=ceil)
    ref = run_ort(make_model("AveragePool", [xd], attrs, opset=19), {"in0": xd})[0]
    s_out, zp_out = arith.choose_activation_qparams(ref.min(), ref.max())
    counts = intref.avgpool_counts(x.shape[2:], k, s, pads, cip, ceil)
    mults = arith.avgpool_multipliers(s_in, s_out, counts)
    assert len(mults) == len(np.unique(counts))
    y = intref.avgpool_int8(xq, zp_in, k, s, pads, cip, mults, zp_out, ceil)
    assert y.shape == ref.shape
    _lsb_check(y, s_out, zp_out, ref)
    # global average pool and ReduceMean
    ref = xd.astype(np.float64).mean(axis=(2, 3), keepdims=True)
    s_out, zp_out = arith.choose_activation_qparams(ref.min(), ref.max())
    (M, n), = arith.avgpool_multipliers(s_in, s_out, [56]).values()
    _lsb_check(intref.global_avgpool_int8(xq, zp_in, M, n, zp_out), s_out, zp_out, ref)
    ref = xd.astype(np.float64).mean(axis=1)
    (M, n), = arith.avgpool_multipliers(s_in, s_out, [3]).values()
    _lsb_check(intref.mean_int8(xq, zp_in, [1], 0, M, n, zp_out), s_out, zp_out, ref)


@pytest.mark.parametrize("attrs", [dict(kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1]),
                                   dict(kernel_shape=[2, 3], strides=[2, 1], pads=[0, 1, 1, 2], dilations=[2, 1],
                                        ceil_mode=1),
                                   dict(kernel_shape=[3], strides=[2], pads=[1, 1], ceil_mode=1)])
def test_maxpool_matches_onnxruntime_int8(attrs):
    rng = np.random.default_rng(7)
    shape = (2, 3, 9) if len(attrs["kernel_shape"]) == 1 else (2, 3, 9, 8)
    x = rng.integers(-128, -90, shape).astype(np.int8)
    want = run_ort(make_model("MaxPool", [x], attrs, opset=12), {"in0": x})[0]
    np.testing.assert_array_equal(intref.maxpool_int8(x, **attrs), want)


@pytest.mark.parametrize("mode,nearest,out", [("half_pixel", "round_prefer_floor", (1, 2, 7, 13)),
                                              ("asymmetric", "floor", (1, 2, 10, 4)),
                                              ("align_corners", "round_prefer_ceil", (1, 2, 9, 11)),
                                              ("pytorch_half_pixel", "ceil", (1, 2, 3, 17)),
                                              ("tf_half_pixel_for_nn", "round_prefer_floor", (1, 2, 8, 5))])
def test_resize_nearest_matches_onnxruntime_int8(mode, nearest, out):
    x = np.random.default_rng(8).integers(-128, 128, (1, 2, 5, 6)).astype(np.int8)
    attrs = dict(mode="nearest", coordinate_transformation_mode=mode, nearest_mode=nearest)
    m = make_model("Resize", [x, None, None, const(np.array(out, np.int64))], attrs, opset=13)
    want = run_ort(m, {"in0": x})[0]
    np.testing.assert_array_equal(intref.resize_nearest_int8(x, out, None, mode, nearest), want)


def test_resize_nearest_scales():
    x = np.random.default_rng(9).integers(-128, 128, (1, 1, 4, 5)).astype(np.int8)
    sc = np.array([1, 1, 2.0, 1.5], np.float32)
    m = make_model("Resize", [x, None, const(sc)], dict(mode="nearest"), opset=13)
    np.testing.assert_array_equal(intref.resize_nearest_int8(x, scales=sc), run_ort(m, {"in0": x})[0])


def test_softmax_against_float():
    rng = np.random.default_rng(10)
    x = rng.standard_normal((4, 3, 50)).astype(np.float32) * 3
    s_in, zp_in = arith.choose_activation_qparams(x.min(), x.max())
    xq = arith.quantize(x, s_in, zp_in)
    xd = arith.dequantize(xq, s_in, zp_in)
    ref = run_ort(make_model("Softmax", [xd], {"axis": -1}, opset=13), {"in0": xd})[0]
    y = intref.softmax_int8(xq, arith.softmax_table(s_in), -1)
    _lsb_check(y, arith.SOFTMAX_SCALE, arith.SOFTMAX_ZP, ref)


def test_table_against_float():
    x = np.linspace(-6, 6, 300).astype(np.float32)
    s_in, zp_in = arith.choose_activation_qparams(-6, 6)
    xq = arith.quantize(x, s_in, zp_in)
    xd = arith.dequantize(xq, s_in, zp_in)
    ref = run_ort(make_model("HardSwish", [xd], opset=14), {"in0": xd})[0]
    s_out, zp_out = arith.choose_activation_qparams(ref.min(), ref.max())
    t = arith.make_table(lambda v: v * np.clip(v + 3, 0, 6) / 6, s_in, zp_in, s_out, zp_out)
    _lsb_check(intref.table_int8(xq, t), s_out, zp_out, ref)


def test_accumulator_overflow_raises():
    x = np.full((1, 70000), -128, np.int8)
    w = np.full((70000, 1), 127, np.int8)
    assert not arith.accumulator_bound_ok(70000)
    with pytest.raises(ValueError, match="overflow"):
        intref.matmul_int8(x, 127, w, None, [2**30], [40], 0)


def test_concat_same_qparams_is_a_copy():
    xs = [np.arange(-5, 5, dtype=np.int8).reshape(2, 5), np.full((1, 5), 7, np.int8)]
    np.testing.assert_array_equal(intref.concat_int8(xs, [3, 3], 0, [None, None], 3), np.concatenate(xs))
