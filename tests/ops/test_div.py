"""Div against onnxruntime: float broadcasting, integer division truncating toward zero."""
import numpy as np
import pytest

from tests.onnx_check import check_op, const

rng = np.random.default_rng(1)


@pytest.mark.parametrize("opset", [7, 13, 14])
def test_div_float(opset):
    x = rng.standard_normal((2, 3, 4)).astype(np.float32)
    check_op("Div", [x, rng.uniform(0.5, 2, (4,)).astype(np.float32)], opset=opset)
    check_op("Div", [x, const(np.array(3.0, np.float32))], opset=opset)
    check_op("Div", [np.array(1.0, np.float32), rng.uniform(0.5, 2, (3, 1)).astype(np.float32)], opset=opset)


@pytest.mark.parametrize("dtype", [np.int32, np.int64])
def test_div_int_truncates_toward_zero(dtype):
    a = np.array([7, -7, 7, -7, 6, -1, 0, 9], dtype)
    b = np.array([2, 2, -2, -2, 3, 3, -5, -4], dtype)
    got = check_op("Div", [a, b])[0]
    assert got[1] == -3 and got[2] == -3  # numpy's // would give -4
    check_op("Div", [a.reshape(2, 4), const(np.array([3, -3, 5, -5], dtype))])


def test_div_uint8_opset14():
    check_op("Div", [np.array([7, 200, 255], np.uint8), np.array([2, 3, 16], np.uint8)], opset=14)
