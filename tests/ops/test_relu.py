import numpy as np
import pytest

from tests.onnx_check import check_op


@pytest.mark.parametrize("opset", [11, 13, 14, 21])
def test_relu(opset):
    x = np.random.default_rng(0).standard_normal((2, 3, 4)).astype(np.float32)
    check_op("Relu", [x], opset=opset)
