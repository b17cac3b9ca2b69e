"""The C runtime's kernels for onnxruntime `quantize_dynamic` models (runtimes/c/kernels/ref:
dynamic_quantize.c, conv_integer.c, matmul_integer.c, binary_i32.c, dyn_lstm.c) against the
numpy reference interpreter (dsedge/ops/quantized.py, the oracle), byte for byte.

Each case is a small ONNX model built with onnx.helper, exported to a .dse the way `dsedge
quantize` does (fp32 plan: these ops are already integer, the plan passes them through) and
run by `dsedge.Runtime`; the interpreter runs the same exported graph (load_dse_graph). The
reference itself is checked against onnxruntime in tests/ops/. Tails: odd channels and
widths, padding, strides, dilations, groups, auto_pad, zero points 0/128/255 and int8 ones,
uint8 vs int8 operands, scalar vs per-channel/per-row/per-column zero points, batch > 1,
K large enough that int32 wraps, and DynamicQuantizeLinear's NaN / inf / all-zero / tie inputs.
"""
from __future__ import annotations

import numpy as np
import pytest
from onnx import TensorProto, helper, numpy_helper

from dsedge.api import quantize, save_result
from dsedge.export.dse import load_dse_graph
from dsedge.interp import execute

rng = np.random.default_rng(10)
T_OF = {np.dtype(np.float32): TensorProto.FLOAT, np.dtype(np.uint8): TensorProto.UINT8,
        np.dtype(np.int8): TensorProto.INT8, np.dtype(np.int32): TensorProto.INT32}


def _model(path, nodes, inputs, outputs, inits, domain=False):
    """inputs: {name: example array}; outputs: [name]; inits: {name: array}."""
    g = helper.make_graph(nodes, "g", [helper.make_tensor_value_info(k, T_OF[v.dtype], list(v.shape)) for k, v in inputs.items()],
                          [helper.make_empty_tensor_value_info(o) for o in outputs],
                          [numpy_helper.from_array(np.asarray(v), k) for k, v in inits.items()])
    ops = [helper.make_opsetid("", 13)] + ([helper.make_opsetid("com.microsoft", 1)] if domain else [])
    m = helper.make_model(g, opset_imports=ops)
    m.ir_version = 8
    path.write_bytes(m.SerializeToString())
    return path


def _check(tmp_path, path, feeds_list, precision="fp32", calib=None, approx=()):
    """Export `path`, then for every feed: C runtime == interpreter on the exported graph, byte
    for byte (the outputs named in `approx`, of float ops with their own C arithmetic, within
    1e-5 relative)."""
    from dsedge.runtime import Runtime
    res = quantize(str(path), calib, precision=precision, progress=False)
    dse = tmp_path / f"{path.stem}.{precision}.dse"
    save_result(res, dse)
    g = load_dse_graph(dse)
    outs = []
    with Runtime(str(dse)) as rt:
        for k, feeds in enumerate(feeds_list):
            ref = dict(zip(g.outputs, execute(g, feeds)))
            got = rt.run(feeds)
            for name, exp in ref.items():
                exp = np.asarray(exp)
                c = np.asarray(got[name])
                assert c.dtype == exp.dtype and c.shape == exp.shape, (name, c.dtype, c.shape, exp.dtype, exp.shape)
                if name in approx:
                    np.testing.assert_allclose(c, exp, rtol=1e-5, atol=1e-6, err_msg=f"{name}, feed {k}")
                else:
                    np.testing.assert_array_equal(c.reshape(-1).view(np.uint8), exp.reshape(-1).view(np.uint8),
                                                  err_msg=f"{name}, feed {k}")
            outs.append(got)
    return outs


def _u8(shape):
    return rng.integers(0, 256, shape).astype(np.uint8)


def _i8(shape):
    return rng.integers(-128, 128, shape).astype(np.int8)


# -- DynamicQuantizeLinear ---------------------------------------------------------------------

def test_dynamic_quantize_linear_all_ranges(tmp_path):
    shape = (3, 7, 5)
    x = rng.standard_normal(shape).astype(np.float32)
    ties = (np.arange(105, dtype=np.float32).reshape(shape) - 52) * np.float32(0.5)   # .5 multiples: ties
    cases = [x, np.abs(x) + 1, -np.abs(x) * 50, np.zeros(shape, np.float32), np.full(shape, 2.5, np.float32), ties,
             x * np.float32(1e-42), np.clip(x, -1, 1) * np.float32(3e38)]   # subnormal range (scale 0), overflowing range (scale inf)
    zp_tie = np.linspace(-0.25, 127.25, x.size, dtype=np.float32).reshape(shape)   # scale 0.5, -lo/scale = 0.5
    cases.append(zp_tie)
    for bad in (np.nan, np.inf, -np.inf):
        y = x.copy()
        y[1, 3, 2] = bad
        cases.append(y)
    path = _model(tmp_path / "dql.onnx", [helper.make_node("DynamicQuantizeLinear", ["x"], ["q", "s", "z"])],
                  {"x": x}, ["q", "s", "z"], {})
    outs = _check(tmp_path, path, [{"x": c} for c in cases])
    assert outs[3]["s"] == 1 and outs[3]["z"] == 0 and not outs[3]["q"].any()         # all zero
    assert np.isnan(outs[-3]["s"]) and not outs[-3]["q"].any()                        # NaN anywhere
    assert len({int(o["z"]) for o in outs[:6]}) >= 3                                  # zero points 0, 255 and between


# -- ConvInteger -------------------------------------------------------------------------------

CONV_CASES = {
    # name: (x shape, w shape, x dtype, w dtype, x_zp, w_zp ('scalar' value | 'channel' | None), attrs)
    "u8u8_pad_stride": ((1, 3, 9, 11), (5, 3, 3, 3), np.uint8, np.uint8, 128, 121, {"pads": [1, 1, 1, 1], "strides": [2, 2]}),
    "u8s8_batch_asym": ((2, 3, 8, 7), (4, 3, 2, 3), np.uint8, np.int8, 255, 0, {"pads": [0, 2, 1, 0], "dilations": [2, 1]}),
    "s8s8_channel_zp": ((1, 4, 6, 6), (3, 4, 3, 1), np.int8, np.int8, -5, "channel", {"pads": [1, 0, 1, 0]}),
    "u8u8_groups": ((2, 6, 7, 5), (9, 2, 3, 3), np.uint8, np.uint8, 0, "channel", {"group": 3, "pads": [1, 1, 1, 1]}),
    "depthwise_same": ((1, 5, 9, 9), (5, 1, 3, 3), np.uint8, np.uint8, 17, 255, {"group": 5, "auto_pad": "SAME_UPPER", "strides": [2, 2]}),
    "conv1d_valid": ((3, 2, 13), (3, 2, 4), np.uint8, np.int8, 200, None, {"strides": [3], "auto_pad": "VALID"}),
    "conv3d": ((1, 2, 4, 5, 6), (3, 2, 2, 3, 2), np.int8, np.uint8, None, 7, {"pads": [1, 0, 1, 0, 1, 1]}),
    "wide_row": ((1, 1, 3, 150), (2, 1, 1, 5), np.uint8, np.uint8, 128, 128, {"pads": [0, 2, 0, 2]}),
}


@pytest.mark.parametrize("case", list(CONV_CASES))
def test_conv_integer(tmp_path, case):
    xs, ws, xt, wt, zx, zw, attrs = CONV_CASES[case]
    gen = {np.uint8: _u8, np.int8: _i8}
    w = gen[wt](ws)
    inits, ins = {"w": w}, ["x", "w"]
    if zx is not None:
        inits["zx"] = np.array(zx, xt)
    ins.append("zx" if zx is not None else "")
    if zw is not None:
        inits["zw"] = gen[wt]((ws[0],)) if zw == "channel" else np.array(zw, wt)
        ins.append("zw")
    x = gen[xt](xs)
    path = _model(tmp_path / f"{case}.onnx", [helper.make_node("ConvInteger", ins, ["y"], **attrs)], {"x": x}, ["y"], inits)
    outs = _check(tmp_path, path, [{"x": x}, {"x": gen[xt](xs)}])
    assert outs[0]["y"].dtype == np.int32 and outs[0]["y"].any()


# -- MatMulInteger -----------------------------------------------------------------------------

MM_CASES = {
    # name: (a shape, b shape, a dtype, b dtype, a_zp ('row' | value | None), b_zp ('col' | value | None), b constant)
    "u8u8_scalar": ((5, 33), (33, 70), np.uint8, np.uint8, 128, 121, True),
    "u8s8_rows_cols": ((7, 19), (19, 67), np.uint8, np.int8, "row", "col", True),
    "s8u8_batched_bcast": ((2, 3, 5, 9), (3, 9, 4), np.int8, np.uint8, 0, 255, False),
    "vector_a": ((17,), (17, 6), np.uint8, np.uint8, 255, None, True),
    "vector_b": ((3, 4, 17), (17,), np.uint8, np.int8, None, -3, True),
    "rows_not_multiple": ((6, 5), (5, 130), np.uint8, np.uint8, "row", 0, True),
}


@pytest.mark.parametrize("case", list(MM_CASES))
def test_matmul_integer(tmp_path, case):
    as_, bs, at, bt, za, zb, bconst = MM_CASES[case]
    gen = {np.uint8: _u8, np.int8: _i8}
    a, b = gen[at](as_), gen[bt](bs)
    inits, inputs, ins = {}, {"a": a}, ["a", "b"]
    (inits if bconst else inputs)["b"] = b
    if za is not None:
        inits["za"] = gen[at]((as_[-2],)) if za == "row" else np.array(za, at)
    ins.append("za" if za is not None else "")
    if zb is not None:
        inits["zb"] = gen[bt]((bs[-1],)) if zb == "col" else np.array(zb, bt)
        ins.append("zb")
    path = _model(tmp_path / f"{case}.onnx", [helper.make_node("MatMulInteger", ins, ["y"])], inputs, ["y"], inits)
    feeds = [{k: v for k, v in inputs.items()}, {k: gen[at if k == "a" else bt](v.shape) for k, v in inputs.items()}]
    _check(tmp_path, path, feeds)


def test_matmul_integer_wraps_like_the_reference(tmp_path):
    """K = 40000 with extreme codes: the exact sum leaves int32; C and the reference both give
    it modulo 2^32."""
    K = 40000
    a = np.full((2, K), 255, np.uint8)
    a[1, ::2] = 0
    b = np.full((K, 3), 0, np.uint8)
    b[:, 1] = 255
    path = _model(tmp_path / "wrap.onnx", [helper.make_node("MatMulInteger", ["a", "b", "za", "zb"], ["y"])],
                  {"a": a}, ["y"], {"b": b, "za": np.uint8(0), "zb": np.uint8(128)})
    out = _check(tmp_path, path, [{"a": a}])[0]["y"]
    assert int(out[0, 0]) == int(np.int64(-255 * 128 * K).astype(np.int32))   # wrapped


# -- int32 Add / Sub / Mul -----------------------------------------------------------------------

@pytest.mark.parametrize("op", ["Add", "Sub", "Mul"])
def test_int32_binary_broadcast_and_wrap(tmp_path, op):
    a = rng.integers(-2**31, 2**31, (2, 5, 3, 7)).astype(np.int32)
    a[0, 0, 0, :2] = [2**31 - 1, -2**31]
    b = rng.integers(-2**31, 2**31, (5, 1, 1)).astype(np.int32)
    path = _model(tmp_path / f"{op}.onnx", [helper.make_node(op, ["a", "b"], ["y"])], {"a": a}, ["y"], {"b": b})
    _check(tmp_path, path, [{"a": a}])


# -- DynamicQuantizeLSTM ------------------------------------------------------------------------

def _lstm(direction, wtype, per_column, T=5, B=1, I=6, H=4, init=True, bias=True, attrs=None, outputs=("Y", "Y_h", "Y_c")):
    d = 2 if direction == "bidirectional" else 1
    zshape = (d, 4 * H) if per_column else (d,)
    if wtype == np.int8:
        W, R = _i8((d, I, 4 * H)), _i8((d, H, 4 * H))
        zw, zr = np.zeros(zshape, np.int8), np.zeros(zshape, np.int8)
    else:
        W, R = _u8((d, I, 4 * H)), _u8((d, H, 4 * H))
        zw, zr = np.full(zshape, 131, np.uint8), np.full(zshape, 120, np.uint8)
    inits = {"W": W, "R": R, "sw": rng.uniform(0.002, 0.02, zshape).astype(np.float32), "zw": zw,
             "sr": rng.uniform(0.002, 0.02, zshape).astype(np.float32), "zr": zr}
    X = rng.standard_normal((T, B, I)).astype(np.float32)
    if bias:
        inits["B"] = (rng.standard_normal((d, 8 * H)) * 0.3).astype(np.float32)
    if init:
        inits["h0"] = (rng.standard_normal((d, B, H)) * 0.5).astype(np.float32)
        inits["c0"] = (rng.standard_normal((d, B, H)) * 0.5).astype(np.float32)
    ins = ["X", "W", "R", "B" if bias else "", "", "h0" if init else "", "c0" if init else "", "", "sw", "zw", "sr", "zr"]
    node = helper.make_node("DynamicQuantizeLSTM", ins, list(outputs), domain="com.microsoft", direction=direction,
                            hidden_size=H, **(attrs or {}))
    return node, X, inits, [o for o in outputs if o]


LSTM_CASES = {
    "forward_u8": dict(direction="forward", wtype=np.uint8, per_column=False),
    "reverse_s8": dict(direction="reverse", wtype=np.int8, per_column=False),
    "bidir_s8_columns_batch": dict(direction="bidirectional", wtype=np.int8, per_column=True, T=7, B=3, I=9, H=8, init=False),
    "bidir_u8_no_bias_Y_only": dict(direction="bidirectional", wtype=np.uint8, per_column=True, bias=False, outputs=("Y",)),
    "clip_forget_relu": dict(direction="forward", wtype=np.uint8, per_column=False, B=2,
                             attrs={"clip": 0.7, "input_forget": 1, "activations": ["Sigmoid", "Tanh", "Relu"]}),
    "hidden_only": dict(direction="forward", wtype=np.int8, per_column=False, outputs=("", "Y_h")),
}


@pytest.mark.parametrize("case", list(LSTM_CASES))
def test_dynamic_quantize_lstm(tmp_path, case):
    node, X, inits, outs = _lstm(**LSTM_CASES[case])
    path = _model(tmp_path / f"{case}.onnx", [node], {"X": X}, outs, inits, domain=True)
    _check(tmp_path, path, [{"X": X}, {"X": (X * 3).astype(np.float32)}])


# -- the quantize_dynamic pattern, fp32 and int8 plans ------------------------------------------------

def _dynamic_conv_chain(tmp_path):
    """What onnxruntime's quantize_dynamic writes for Conv + bias: DynamicQuantizeLinear, the
    bias quantised at run time (Div by x_scale * w_scale, Floor, Cast int32), ConvInteger whose
    x zero point is DynamicQuantizeLinear's, int32 Add, Cast to float, Mul by the scale; then a
    float op (Sigmoid) so an int8 plan has something of its own to decide."""
    w = _u8((6, 3, 3, 3))
    nodes = [helper.make_node("DynamicQuantizeLinear", ["x"], ["xq", "xs", "xz"]),
             helper.make_node("Mul", ["xs", "ws"], ["s"]),
             helper.make_node("Div", ["bf", "s"], ["bq0"]),
             helper.make_node("Floor", ["bq0"], ["bq1"]),
             helper.make_node("Cast", ["bq1"], ["bq"], to=TensorProto.INT32),
             helper.make_node("Reshape", ["bq", "bshape"], ["bq4"]),
             helper.make_node("ConvInteger", ["xq", "w", "xz", "wz"], ["acc"], pads=[1, 1, 1, 1], strides=[2, 1]),
             helper.make_node("Add", ["acc", "bq4"], ["acc2"]),
             helper.make_node("Cast", ["acc2"], ["accf"], to=TensorProto.FLOAT),
             helper.make_node("Mul", ["accf", "s"], ["yf"]),
             helper.make_node("Sigmoid", ["yf"], ["y"])]
    inits = {"w": w, "wz": np.uint8(121), "ws": np.float32(0.01), "bf": (rng.standard_normal(6) * 0.5).astype(np.float32),
             "bshape": np.array([1, 6, 1, 1], np.int64)}
    x = rng.standard_normal((2, 3, 9, 10)).astype(np.float32)
    return _model(tmp_path / "chain.onnx", nodes, {"x": x}, ["y", "acc2"], inits), x


@pytest.mark.parametrize("precision", ["fp32", "int8"])
def test_quantize_dynamic_conv_chain(tmp_path, precision):
    path, x = _dynamic_conv_chain(tmp_path)
    feeds = [{"x": rng.standard_normal(x.shape).astype(np.float32)} for _ in range(3)]
    calib = feeds if precision == "int8" else None
    _check(tmp_path, path, [{"x": x}, *feeds], precision=precision, calib=calib, approx=("y",))
