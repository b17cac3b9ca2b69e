"""Less against onnxruntime: bool output, broadcasting, 0-d, float and integer types (opsets 9, 13)."""
import numpy as np
import pytest

from tests.onnx_check import check_op, const

rng = np.random.default_rng(13)
a = rng.integers(-3, 4, (2, 3, 4))


@pytest.mark.parametrize("opset", [9, 13])
@pytest.mark.parametrize("dtype", [np.float32, np.int32, np.int64])
def test_less(opset, dtype):
    got = check_op("Less", [a.astype(dtype), rng.integers(-3, 4, (4,)).astype(dtype)], opset=opset)[0]
    assert got.dtype == bool
    check_op("Less", [a.astype(dtype), const(np.array(0, dtype))], opset=opset)
    check_op("Less", [np.array(1, dtype), rng.integers(0, 3, (3, 1)).astype(dtype)], opset=opset)


def test_less_float64_nan():
    check_op("Less", [const(np.array([1.0, np.nan, -np.inf, 2.0])), np.array([1.0, 1.0, 0.0, np.float64(3)])])


def test_less_opset7_float():
    check_op("Less", [rng.standard_normal((2, 3)).astype(np.float32), np.array(0.1, np.float32)], opset=7)
