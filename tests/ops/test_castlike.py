import numpy as np
import pytest

from tests.onnx_check import check_op, const

F = np.array([[-2.7, -0.5, 0.0, 1.5, 99.9]], np.float32)


@pytest.mark.parametrize("opset", [15, 19, 21])
@pytest.mark.parametrize("like", [np.int64, np.int32, np.float16, np.float64, np.bool_, np.uint8])
def test_cast_like(opset, like):
    x = np.abs(F) if like == np.uint8 else F
    check_op("CastLike", [x, const(np.zeros((1,), like))], opset=opset)


def test_cast_like_int_to_float():
    check_op("CastLike", [np.array([1, -2, 3], np.int64), np.zeros((), np.float32)], opset=15)
