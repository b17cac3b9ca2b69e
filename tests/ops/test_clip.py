"""Clip against onnxruntime: min/max attributes before opset 11 (upgraded to inputs),
optional inputs from 11, integer types from 12, NaN propagation, min > max."""
import numpy as np
import pytest

from tests.onnx_check import check_op, const

rng = np.random.default_rng(7)
x = (rng.standard_normal((2, 3, 5)) * 4).astype(np.float32)
f = np.float32


@pytest.mark.parametrize("opset", [7, 10])
@pytest.mark.parametrize("attrs", [{"min": 0.0, "max": 6.0}, {"min": -1.0}, {"max": 0.5}, {}])
def test_clip_attributes(opset, attrs):
    check_op("Clip", [x], attrs, opset=opset)
    check_op("Clip", [np.array(7.0, np.float32)], attrs, opset=opset)


@pytest.mark.parametrize("opset", [11, 12, 13])
def test_clip_inputs(opset):
    check_op("Clip", [x, const(f(0)), const(f(6))], opset=opset)
    check_op("Clip", [x, np.array(-1, f), np.array(1, f)], opset=opset)  # runtime bounds
    check_op("Clip", [x, None, const(f(0.5))], opset=opset)
    check_op("Clip", [x, const(f(-0.5))], opset=opset)
    check_op("Clip", [x], opset=opset)
    check_op("Clip", [x, const(f(2)), const(f(0))], opset=opset)  # min > max -> max


@pytest.mark.parametrize("dtype", [np.int8, np.int32, np.int64, np.uint8])
def test_clip_int(dtype):
    a = np.array([0, 1, 5, 9, 100], dtype)
    check_op("Clip", [a, const(np.array(2, dtype)), const(np.array(50, dtype))], opset=13)
    check_op("Clip", [a, const(np.array(3, dtype))], opset=12)


def test_clip_nan_and_float64():
    check_op("Clip", [const(np.array([1, np.nan, -3, np.inf], f)), const(f(0)), const(f(2))], opset=13)
    check_op("Clip", [x.astype(np.float64), const(np.float64(-1)), const(np.float64(1))], opset=13)


def test_clip_upgrade_makes_inputs():
    from dsedge.converters.onnx.reader import from_model_proto
    from tests.onnx_check import make_model
    g = from_model_proto(make_model("Clip", [x], {"max": 6.0}, opset=10))
    n = g.nodes[0]
    assert n.attrs == {} and n.inputs[1] == "" and float(g.consts[n.inputs[2]]) == 6.0
