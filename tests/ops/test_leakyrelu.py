"""LeakyRelu against onnxruntime: opsets where the schema changed, attribute variants, shapes, dtypes."""
import numpy as np
import pytest

from tests.onnx_check import check_op

rng = np.random.default_rng(5)


def _x(shape, dtype=np.float32):
    return rng.uniform(-5, 5, shape).astype(dtype)


@pytest.mark.parametrize("opset", [7, 16])
@pytest.mark.parametrize("attrs", [{}, {"alpha": 0.2}, {"alpha": -1.5}])
def test_leakyrelu(opset, attrs):
    check_op("LeakyRelu", [_x((2, 3, 5))], attrs, opset=opset)
    check_op("LeakyRelu", [_x((1, 1, 7))], attrs, opset=opset)
    check_op("LeakyRelu", [_x(())], attrs, opset=opset)


def test_leakyrelu_float64():
    check_op("LeakyRelu", [_x((4, 3), np.float64)], rtol=1e-6, atol=1e-12)  # ORT: alpha in double, ours float32-rounded
