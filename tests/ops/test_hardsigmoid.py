"""HardSigmoid against onnxruntime: opsets where the schema changed, attribute variants, shapes, dtypes."""
import numpy as np
import pytest

from tests.onnx_check import check_op

rng = np.random.default_rng(5)


def _x(shape, dtype=np.float32):
    return rng.uniform(-8, 8, shape).astype(dtype)


@pytest.mark.parametrize("opset", [7])
@pytest.mark.parametrize("attrs", [{}, {"alpha": 0.5, "beta": 0.1}, {"alpha": -0.1, "beta": 0.9}])
def test_hardsigmoid(opset, attrs):
    check_op("HardSigmoid", [_x((2, 3, 5))], attrs, opset=opset)
    check_op("HardSigmoid", [_x((1, 1, 7))], attrs, opset=opset)
    check_op("HardSigmoid", [_x(())], attrs, opset=opset)

