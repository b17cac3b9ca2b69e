"""The AVX2 variants of ConvInteger, MatMulInteger and com.microsoft DynamicQuantizeLSTM
(runtimes/c/kernels/avx2/integer.c) against the REF kernels of the same library
(DSE_LOAD_REF_KERNELS): the same output bytes, exactly, for 1, 2 and 3 threads
(check_variant), and against the numpy reference interpreter (dsedge/ops/quantized.py).

Each case is a one-node ONNX model exported as `dsedge quantize` does (the fp32 plan passes the
integer ops through; the exporter plans the variants' scratch). Tails: K odd, columns / output
pixels not multiples of 16 (panels spanning output rows), rows not multiples of 6, more than 64
rows of A (two packed chunks), batch > 1 and broadcast batches, groups, depthwise, 1-D/3-D,
strides, dilations, padding; uint8/int8 operands each way, zero points at the extremes (0, 255,
-128, 127), per output channel / per row / per column; K large enough that the int32 sum wraps.
Artifacts planned without the variant's scratch, and a ConvInteger whose x_zero_point has
another dtype than x, run REF.
"""
from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from onnx import helper

from dsedge.api import quantize, save_result
from dsedge.artifact import Artifact
from dsedge.export.dse import load_dse_graph
from dsedge.interp import execute

from .test_kernels_dynq import _lstm, _model
from .test_kernels_f32_avx2 import AVX2, REF_KERNELS, check_variant, lib, run  # noqa: F401 (fixture)

rng = np.random.default_rng(20)


def _u8(shape, lo=0, hi=256):
    return rng.integers(lo, hi, shape).astype(np.uint8)


def _i8(shape, lo=-128, hi=128):
    return rng.integers(lo, hi, shape).astype(np.int8)


GEN = {np.uint8: _u8, np.int8: _i8}
EXTREMES = {np.uint8: (0, 255), np.int8: (-128, 127)}


def _export(tmp_path, path):
    r = quantize(str(path), None, precision="fp32", progress=False)   # as tests/runtime/test_kernels_dynq.py
    dse = tmp_path / (path.stem + ".dse")
    save_result(r, dse)
    return Artifact.read(dse), load_dse_graph(dse)


def _check(lib, tmp_path, path, feeds: dict, kernel: str):
    """Export; the variant gives REF's bytes (any thread count) and the interpreter's."""
    art, g = _export(tmp_path, path)
    arrays = [feeds[art.tensors[i].name] for i in art.inputs]
    o, _ = check_variant(lib, art, arrays, kernel, exact=True)
    outs, _ = run(lib, art, arrays)
    exp = dict(zip(g.outputs, execute(g, feeds)))
    for oi, got in zip(art.outputs, outs):
        e = np.asarray(exp[art.tensors[oi].name])
        assert got.tobytes() == e.astype(got.dtype).tobytes(), art.tensors[oi].name
    return art, arrays, outs


# -- ConvInteger -------------------------------------------------------------------------------

CONV_CASES = {
    # name: (x shape, w shape, x dtype, w dtype, x_zp, w_zp ('channel' | value | None), attrs)
    "u8u8_pad_stride_oddK": ((1, 3, 9, 11), (5, 3, 3, 3), np.uint8, np.uint8, 255, 0, {"pads": [1, 1, 1, 1], "strides": [2, 2]}),
    "u8s8_batch_dilated": ((2, 3, 8, 21), (13, 3, 2, 3), np.uint8, np.int8, 0, -128, {"pads": [0, 2, 1, 0], "dilations": [2, 1]}),
    "s8s8_channel_extremes": ((1, 4, 6, 37), (7, 4, 3, 1), np.int8, np.int8, -128, "channel", {"pads": [1, 0, 1, 0]}),
    "s8u8_rows_span_panels": ((1, 5, 11, 7), (8, 5, 3, 3), np.int8, np.uint8, 127, "channel", {"pads": [1, 1, 1, 1]}),
    "u8u8_groups": ((2, 6, 7, 5), (9, 2, 3, 3), np.uint8, np.uint8, 0, "channel", {"group": 3, "pads": [1, 1, 1, 1]}),
    "depthwise_stride2": ((1, 5, 9, 19), (5, 1, 3, 3), np.uint8, np.uint8, 17, 255, {"group": 5, "pads": [1, 1, 1, 1], "strides": [2, 2]}),
    "conv1d_stride3": ((3, 2, 53), (3, 2, 4), np.uint8, np.int8, 200, None, {"strides": [3]}),
    "conv3d": ((1, 2, 4, 5, 6), (3, 2, 2, 3, 2), np.int8, np.uint8, None, 7, {"pads": [1, 0, 1, 0, 1, 1]}),
    "1x1_wide": ((1, 24, 8, 80), (24, 24, 1, 1), np.uint8, np.uint8, 131, 120, {}),
    "pad_larger_than_row": ((1, 2, 3, 2), (4, 2, 3, 5), np.uint8, np.uint8, 9, 250, {"pads": [2, 4, 2, 4]}),
}


def _conv_model(tmp_path, case, xs, ws, xt, wt, zx, zw, attrs, zx_dtype=None):
    w = GEN[wt](ws)
    lo, hi = EXTREMES[wt]
    w.reshape(-1)[:2] = (lo, hi)
    inits, ins = {"w": w}, ["x", "w"]
    if zx is not None:
        inits["zx"] = np.array(zx, zx_dtype or xt)
    ins.append("zx" if zx is not None else "")
    if zw is not None:
        if zw == "channel":
            z = GEN[wt]((ws[0],))
            z[:2] = (lo, hi)
            inits["zw"] = z
        else:
            inits["zw"] = np.array(zw, wt)
        ins.append("zw")
    return _model(tmp_path / f"{case}.onnx", [helper.make_node("ConvInteger", ins, ["y"], **attrs)], {"x": GEN[xt](xs)}, ["y"], inits)


def _conv_feed(xs, xt):
    x = GEN[xt](xs)
    lo, hi = EXTREMES[xt]
    x.reshape(-1)[:3] = (lo, hi, lo)
    return {"x": x}


@pytest.mark.parametrize("case", list(CONV_CASES))
def test_conv_integer(lib, tmp_path, case):
    xs, ws, xt, wt, zx, zw, attrs = CONV_CASES[case]
    path = _conv_model(tmp_path, case, xs, ws, xt, wt, zx, zw, attrs)
    _, _, (y,) = _check(lib, tmp_path, path, _conv_feed(xs, xt), "dse_i32_convinteger__avx2")
    assert y.any()


def test_conv_integer_wraps_modulo_2_32(lib, tmp_path):
    """K = 2 x 18000 with extreme codes: the exact sums leave int32; the variant wraps as REF."""
    xs, ws = (1, 18000, 1, 3), (3, 18000, 1, 2)
    w = np.zeros(ws, np.uint8)
    w[1] = 255
    x = np.full(xs, 255, np.uint8)
    path = _model(tmp_path / "wrap.onnx", [helper.make_node("ConvInteger", ["x", "w", "zx", "zw"], ["y"])], {"x": x}, ["y"],
                  {"w": w, "zx": np.uint8(0), "zw": np.uint8(128)})
    _, _, (y,) = _check(lib, tmp_path, path, {"x": x}, "dse_i32_convinteger__avx2")
    assert int(y[0, 0, 0, 0]) == int(np.int64(255 * -128 * 36000).astype(np.int32))   # wrapped


def test_conv_integer_runs_ref_for_an_old_plan_or_a_foreign_zero_point(lib, tmp_path):
    xs, ws, xt, wt, zx, zw, attrs = CONV_CASES["u8u8_groups"]
    path = _conv_model(tmp_path, "old", xs, ws, xt, wt, zx, zw, attrs)
    feeds = _conv_feed(xs, xt)
    art, _ = _export(tmp_path, path)
    arrays = [feeds[art.tensors[i].name] for i in art.inputs]
    old = dataclasses.replace(art, scratch_size=0)   # written before the variant: no scratch
    (o,), ks = run(lib, old, arrays)
    assert ks == ["dse_i32_convinteger__ref"]
    (r,), _ = run(lib, art, arrays, flags=REF_KERNELS)
    assert o.tobytes() == r.tobytes()
    path = _conv_model(tmp_path, "foreign", xs, ws, xt, wt, -3, zw, attrs, zx_dtype=np.int8)   # uint8 x, int8 zx
    art, _ = _export(tmp_path, path)
    _, ks = run(lib, art, [feeds["x"]])
    assert ks == ["dse_i32_convinteger__ref"]


# -- MatMulInteger -----------------------------------------------------------------------------

MM_CASES = {
    # name: (a shape, b shape, a dtype, b dtype, a_zp ('row' | value | None), b_zp ('col' | value | None), b constant)
    "u8u8_scalar_extremes": ((5, 33), (33, 70), np.uint8, np.uint8, 255, 0, True),
    "u8s8_rows_cols": ((7, 19), (19, 67), np.uint8, np.int8, "row", "col", True),
    "s8u8_batched_bcast": ((2, 3, 5, 9), (3, 9, 4), np.int8, np.uint8, -128, 255, False),
    "vector_a": ((17,), (17, 6), np.uint8, np.uint8, 255, None, True),
    "vector_b": ((3, 4, 17), (17,), np.uint8, np.int8, None, 127, True),
    "vector_a_wide_cols": ((33,), (33, 150), np.uint8, np.int8, 7, "col", True),       # one row: 64-column groups
    "one_row_activation_b": ((1, 64), (64, 200), np.int8, np.uint8, "row", "col", False),
    "rows_over_64": ((70, 31), (31, 33), np.uint8, np.uint8, "row", "col", True),
    "ddddocr_like": ((20, 1024), (1024, 130), np.uint8, np.uint8, 128, 121, True),
    "s8s8_activation_b": ((4, 6, 16), (4, 16, 17), np.int8, np.int8, "row", "col", False),
}


@pytest.mark.parametrize("case", list(MM_CASES))
def test_matmul_integer(lib, tmp_path, case):
    as_, bs, at, bt, za, zb, bconst = MM_CASES[case]
    a, b = GEN[at](as_), GEN[bt](bs)
    a.reshape(-1)[:2] = EXTREMES[at]
    b.reshape(-1)[:2] = EXTREMES[bt]
    inits, inputs, ins = {}, {"a": a}, ["a", "b"]
    (inits if bconst else inputs)["b"] = b
    if za is not None:
        if za == "row":
            z = GEN[at]((as_[-2],))
            z[0], z[-1] = EXTREMES[at]
            inits["za"] = z
        else:
            inits["za"] = np.array(za, at)
    ins.append("za" if za is not None else "")
    if zb is not None:
        if zb == "col":
            z = GEN[bt]((bs[-1],))
            z[0], z[-1] = EXTREMES[bt]
            inits["zb"] = z
        else:
            inits["zb"] = np.array(zb, bt)
        ins.append("zb")
    path = _model(tmp_path / f"{case}.onnx", [helper.make_node("MatMulInteger", ins, ["y"])], inputs, ["y"], inits)
    _check(lib, tmp_path, path, inputs, "dse_i32_matmulinteger__avx2")


def test_matmul_integer_wraps_modulo_2_32(lib, tmp_path):
    K = 40001
    a = np.full((2, K), 255, np.uint8)
    a[1, ::2] = 0
    b = np.zeros((K, 19), np.uint8)
    b[:, 1] = 255
    path = _model(tmp_path / "wrap.onnx", [helper.make_node("MatMulInteger", ["a", "b", "za", "zb"], ["y"])],
                  {"a": a}, ["y"], {"b": b, "za": np.uint8(0), "zb": np.uint8(128)})
    _, _, (y,) = _check(lib, tmp_path, path, {"a": a}, "dse_i32_matmulinteger__avx2")
    assert int(y[0, 0]) == int(np.int64(-255 * 128 * K).astype(np.int32))


# -- DynamicQuantizeLSTM ------------------------------------------------------------------------

LSTM_CASES = {
    "forward_u8": dict(direction="forward", wtype=np.uint8, per_column=False),
    "reverse_s8": dict(direction="reverse", wtype=np.int8, per_column=False),
    "bidir_s8_columns_batch": dict(direction="bidirectional", wtype=np.int8, per_column=True, T=7, B=3, I=9, H=8, init=False),
    "bidir_u8_no_bias_Y_only": dict(direction="bidirectional", wtype=np.uint8, per_column=True, bias=False, outputs=("Y",)),
    "clip_forget_relu": dict(direction="forward", wtype=np.uint8, per_column=False, B=2,
                             attrs={"clip": 0.7, "input_forget": 1, "activations": ["Sigmoid", "Tanh", "Relu"]}),
    "rows_over_64_odd_sizes": dict(direction="bidirectional", wtype=np.uint8, per_column=True, T=23, B=3, I=13, H=5),
    "one_row_steps_wide": dict(direction="bidirectional", wtype=np.int8, per_column=True, T=4, B=1, I=7, H=37),
}


@pytest.mark.parametrize("case", list(LSTM_CASES))
def test_dynamic_quantize_lstm(lib, tmp_path, case):
    node, X, inits, outs = _lstm(**LSTM_CASES[case])
    path = _model(tmp_path / f"{case}.onnx", [node], {"X": X}, outs, inits, domain=True)
    _check(lib, tmp_path, path, {"X": X}, "dse_f32_dynamicquantizelstm__avx2")


def test_dynamic_quantize_lstm_saturating_gates(lib, tmp_path):
    """Inputs 40x larger: gates beyond MLAS's clamps (|x| > 18 sigmoid, > 9 tanh) and NaN-free
    extremes; the vectorised activations give REF's bits."""
    node, X, inits, outs = _lstm(direction="bidirectional", wtype=np.uint8, per_column=True, T=6, B=2, I=11, H=19)
    inits["B"] = inits["B"] * 60
    path = _model(tmp_path / "sat.onnx", [node], {"X": X}, outs, inits, domain=True)
    _check(lib, tmp_path, path, {"X": (X * 40).astype(np.float32)}, "dse_f32_dynamicquantizelstm__avx2")


# -- DynamicQuantizeLinear ------------------------------------------------------------------------

@pytest.mark.parametrize("shape", [(3, 7, 5), (5,), (2, 8), (1, 1, 173)])
def test_dynamic_quantize_linear(lib, tmp_path, shape):
    """Every range test_kernels_dynq.py tries (ties, zeros, subnormal and overflowing ranges, NaN
    and infinities inside the vectors and in the tail), sizes below, at and past the 8 lanes."""
    x = rng.standard_normal(shape).astype(np.float32)
    n = x.size
    ties = ((np.arange(n, dtype=np.float32) - n // 2) * np.float32(0.5)).reshape(shape)
    cases = [x, np.abs(x) + 1, -np.abs(x) * 50, np.zeros(shape, np.float32), np.full(shape, 2.5, np.float32), ties,
             x * np.float32(1e-42), np.clip(x, -1, 1) * np.float32(3e38),
             np.linspace(-0.25, 127.25, n, dtype=np.float32).reshape(shape)]
    for bad in (np.nan, np.inf, -np.inf):
        for at in (0, n - 1):
            y = x.copy().reshape(-1)
            y[at] = bad
            cases.append(y.reshape(shape))
    path = _model(tmp_path / "dql.onnx", [helper.make_node("DynamicQuantizeLinear", ["x"], ["q", "s", "z"])],
                  {"x": x}, ["q", "s", "z"], {})
    art, g = _export(tmp_path, path)
    for c in cases:
        check_variant(lib, art, [c], "dse_u8_dynamicquantizelinear__avx2", exact=True)
        outs, _ = run(lib, art, [c])
        exp = dict(zip(g.outputs, execute(g, {"x": c})))
        for oi, got in zip(art.outputs, outs):
            assert got.tobytes() == np.asarray(exp[art.tensors[oi].name]).astype(got.dtype).tobytes()
