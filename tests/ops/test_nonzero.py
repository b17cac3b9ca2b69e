import numpy as np
import pytest

from tests.onnx_check import check_op


@pytest.mark.parametrize("x", [np.array([[0, 1.5, 0], [2, 0, -1]], np.float32), np.array([[True, False], [True, True]]),
                               np.array([0, 0, 3], np.int64), np.array(2.0, np.float32), np.array(0, np.int32),
                               np.zeros((2, 0, 3), np.float32)])
@pytest.mark.parametrize("opset", [9, 13])
def test_nonzero(x, opset):
    check_op("NonZero", [x], opset=opset)
