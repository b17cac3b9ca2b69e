"""Where against onnxruntime: three-way broadcasting, dtypes, 0-d condition (opsets 9, 16)."""
import numpy as np
import pytest

from tests.onnx_check import check_op, const

rng = np.random.default_rng(8)


@pytest.mark.parametrize("opset", [9, 16])
def test_where_broadcast(opset):
    c = rng.random((2, 1, 4)) > 0.5
    check_op("Where", [c, rng.standard_normal((3, 1)).astype(np.float32),
                       rng.standard_normal((4,)).astype(np.float32)], opset=opset)
    check_op("Where", [np.array(True), np.ones((2, 3), np.float32), const(np.float32(-1))], opset=opset)
    check_op("Where", [c, np.arange(4, dtype=np.int64), const(np.array(-1, np.int64))], opset=opset)


def test_where_int8_and_float64():
    c = np.array([[True, False, True]])
    check_op("Where", [c, np.array([1, 2, 3], np.int8), np.array([[4], [5]], np.int8)], opset=16)
    check_op("Where", [c, rng.standard_normal((3,)), const(np.array(0.5))], opset=16)
