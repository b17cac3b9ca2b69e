"""AveragePool: count_include_pad both ways, ceil_mode, auto_pad, dilations (opset 19), 1-D."""
import numpy as np
import pytest

from tests.onnx_check import check_op


@pytest.mark.parametrize("cip", [0, 1])
@pytest.mark.parametrize("attrs", [
    {"kernel_shape": [2, 2], "strides": [2, 2]},
    {"kernel_shape": [3, 3], "strides": [2, 2], "pads": [1, 1, 1, 0]},
    {"kernel_shape": [3, 3], "strides": [2, 2], "pads": [1, 1, 1, 0], "ceil_mode": 1},
    {"kernel_shape": [2, 2], "strides": [3, 3], "pads": [1, 1, 1, 1], "ceil_mode": 1},
    {"kernel_shape": [3, 2], "strides": [2, 2], "auto_pad": "SAME_UPPER"},
    {"kernel_shape": [3, 2], "strides": [2, 2], "auto_pad": "SAME_LOWER"},
])
def test_average_pool(attrs, cip):
    x = np.random.default_rng(0).standard_normal((2, 3, 7, 8)).astype(np.float32)
    check_op("AveragePool", [x], dict(attrs, count_include_pad=cip), opset=11)


def test_average_pool_dilations_and_1d():
    rng = np.random.default_rng(1)
    x = rng.standard_normal((1, 2, 9, 8)).astype(np.float32)
    check_op("AveragePool", [x], {"kernel_shape": [3, 2], "dilations": [2, 1], "pads": [1, 1, 1, 1],
                                  "count_include_pad": 1}, opset=19)
    check_op("AveragePool", [rng.standard_normal((2, 3, 10)).astype(np.float32)],
             {"kernel_shape": [4], "strides": [3], "pads": [2, 1]}, opset=7)
