import numpy as np
import pytest

from tests.onnx_check import check_op

X = np.arange(24, dtype=np.float32).reshape(4, 3, 2)


def test_scatter_nd_none():
    upd = -np.ones((2, 3, 2), np.float32)
    check_op("ScatterND", [X, np.array([[1], [3]], np.int64), upd], opset=13)
    check_op("ScatterND", [X, np.array([[0, 1, 1], [2, 2, 0]], np.int64), np.array([7, 8], np.float32)], opset=11)
    check_op("ScatterND", [X.astype(np.int64), np.array([[-1, 0]], np.int64), np.array([[5, 6]], np.int64)], opset=16)


@pytest.mark.parametrize("reduction,opset", [("add", 16), ("mul", 16), ("max", 18), ("min", 18)])
def test_scatter_nd_reduction(reduction, opset):
    idx = np.array([[1], [3], [1]], np.int64)  # a repeated index accumulates
    upd = np.random.default_rng(1).standard_normal((3, 3, 2)).astype(np.float32) * 10
    check_op("ScatterND", [X, idx, upd], {"reduction": reduction}, opset=opset)
