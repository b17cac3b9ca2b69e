"""LogSoftmax: opset 11 flattens to 2-D at axis (default 1), opset 13 normalises along one axis."""
import numpy as np
import pytest

from tests.onnx_check import check_op

X = (np.random.default_rng(0).standard_normal((2, 3, 4, 5)) * 4).astype(np.float32)


@pytest.mark.parametrize("opset", [11, 13])
@pytest.mark.parametrize("axis", [None, 0, 1, 2, -1])
def test_log_softmax(opset, axis):
    check_op("LogSoftmax", [X], {} if axis is None else {"axis": axis}, opset=opset)


def test_log_softmax_2d():
    check_op("LogSoftmax", [X[0, 0]], opset=7)
