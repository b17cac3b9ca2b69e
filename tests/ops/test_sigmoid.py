"""Sigmoid against onnxruntime: opsets where the schema changed, attribute variants, shapes, dtypes."""
import numpy as np
import pytest

from tests.onnx_check import check_op

rng = np.random.default_rng(5)


def _x(shape, dtype=np.float32):
    return rng.uniform(-120, 120, shape).astype(dtype)


@pytest.mark.parametrize("opset", [7, 13])
@pytest.mark.parametrize("attrs", [{}])
def test_sigmoid(opset, attrs):
    check_op("Sigmoid", [_x((2, 3, 5))], attrs, opset=opset)
    check_op("Sigmoid", [_x((1, 1, 7))], attrs, opset=opset)
    check_op("Sigmoid", [_x(())], attrs, opset=opset)


def test_sigmoid_float64():
    check_op("Sigmoid", [_x((4, 3), np.float64)], rtol=1e-12, atol=1e-12)
