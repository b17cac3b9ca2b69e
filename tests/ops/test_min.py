"""Min against onnxruntime: variadic (1-3 inputs) with broadcasting, integer types from opset 12, NaN."""
import numpy as np
import pytest

from tests.onnx_check import check_op, const

rng = np.random.default_rng(9)
f = lambda *s: rng.standard_normal(s).astype(np.float32)  # noqa: E731


@pytest.mark.parametrize("opset", [8, 12, 13])
def test_min_variadic(opset):
    check_op("Min", [f(2, 3)], opset=opset)
    check_op("Min", [f(2, 3), f(3)], opset=opset)
    check_op("Min", [f(2, 1, 4), f(3, 1), const(np.float32(0.1))], opset=opset)


@pytest.mark.parametrize("dtype", [np.int8, np.int32, np.int64, np.uint8])
def test_min_int(dtype):
    check_op("Min", [np.array([0, 5, 100], dtype), np.array([[3], [50]], dtype)], opset=13)


def test_min_nan_propagates():
    check_op("Min", [const(np.array([1, np.nan, 3], np.float32)), const(np.array([np.nan, 2, 1], np.float32))])
