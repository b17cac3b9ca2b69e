"""Elu against onnxruntime: opsets where the schema changed, attribute variants, shapes, dtypes."""
import numpy as np
import pytest

from tests.onnx_check import check_op

rng = np.random.default_rng(5)


def _x(shape, dtype=np.float32):
    return rng.uniform(-8, 8, shape).astype(dtype)


@pytest.mark.parametrize("opset", [7])
@pytest.mark.parametrize("attrs", [{}, {"alpha": 0.5}])
def test_elu(opset, attrs):
    check_op("Elu", [_x((2, 3, 5))], attrs, opset=opset)
    check_op("Elu", [_x((1, 1, 7))], attrs, opset=opset)
    check_op("Elu", [_x(())], attrs, opset=opset)

