"""Pow against onnxruntime: float base, mixed exponent types (opset 12+), integer bases
(computed in double and truncated, so 2 ** -1 == 0), output dtype of the base."""
import numpy as np
import pytest

from tests.onnx_check import check_op, const

rng = np.random.default_rng(2)
base = rng.uniform(0.1, 3, (2, 3, 4)).astype(np.float32)


@pytest.mark.parametrize("opset", [7, 12, 13, 15])
def test_pow_float(opset):
    check_op("Pow", [base, rng.uniform(-2, 2, (4,)).astype(np.float32)], opset=opset)
    check_op("Pow", [base, const(np.array(2.0, np.float32))], opset=opset)
    check_op("Pow", [base, const(np.array(0.5, np.float32))], opset=opset)
    check_op("Pow", [np.array([-2, -1.5, 0, 3], np.float32), np.array([3, 2, 2, -1], np.float32)], opset=opset)


@pytest.mark.parametrize("opset", [12, 15])
def test_pow_mixed_types(opset):
    x = np.array([2, 3, 4, -2], np.float32)
    check_op("Pow", [x, np.array([-1, 3, 2, 3], np.int64)], opset=opset)
    check_op("Pow", [x, const(np.array(2, np.int32))], opset=opset)
    check_op("Pow", [x.astype(np.float64), np.array([0.5, 1, 2, 3], np.float32)], opset=opset)
    check_op("Pow", [np.array([2, 3], np.float32), np.array([0.5, 1.1], np.float64)], opset=opset)


@pytest.mark.parametrize("dtype", [np.int32, np.int64])
def test_pow_int_base(dtype):
    got = check_op("Pow", [np.array([2, 3, -2, 5, 7], dtype), np.array([-1, 10, 3, 0, 2], dtype)], opset=13)[0]
    assert got[0] == 0
    # integer base, float exponent: truncated toward zero
    check_op("Pow", [np.array([2, 3, 4, 7], dtype), np.array([0.5, 2.6, -0.5, 1.99], np.float32)], opset=13)


def test_pow_int64_large_matches_double_rounding():
    check_op("Pow", [np.array([3, 3], np.int64), np.array([30, 39], np.int64)], opset=13)
