import numpy as np
import pytest

from tests.onnx_check import check_op, const

X = np.random.default_rng(0).standard_normal((3, 4, 5)).astype(np.float32)


@pytest.mark.parametrize("axis", [0, 1, -1])
@pytest.mark.parametrize("exclusive", [0, 1])
@pytest.mark.parametrize("reverse", [0, 1])
def test_cumsum(axis, exclusive, reverse):
    attrs = {"exclusive": exclusive, "reverse": reverse}
    check_op("CumSum", [X, const(np.array(axis, np.int64))], attrs, opset=11)
    check_op("CumSum", [X.astype(np.int64) * 3, np.array(axis, np.int32)], attrs, opset=14)


def test_cumsum_edges():
    check_op("CumSum", [np.zeros((2, 0), np.float32), const(np.array(1, np.int64))], {"exclusive": 1}, opset=14)
    check_op("CumSum", [np.arange(5, dtype=np.int32), const(np.array([0], np.int64))], {"reverse": 1}, opset=14)
    check_op("CumSum", [X.astype(np.float64), const(np.array(2, np.int64))], opset=14)
