import numpy as np

from tests.onnx_check import check_op
from tests.ops.shape_rules import rule

X = np.arange(60, dtype=np.float32).reshape(3, 4, 5)


def test_gather_nd():
    check_op("GatherND", [X, np.array([[0, 1], [2, -1]], np.int64)], opset=11)
    check_op("GatherND", [X, np.array([[[0, 1, 2]], [[2, 3, -1]]], np.int64)], opset=12)
    check_op("GatherND", [X, np.array([[1], [0]], np.int64)], opset=13)
    check_op("GatherND", [X.astype(np.int64), np.array([[1, 2]], np.int64)], opset=13)


def test_gather_nd_batch_dims():
    check_op("GatherND", [X, np.array([[1], [0], [3]], np.int64)], {"batch_dims": 1}, opset=12)
    check_op("GatherND", [X, np.array([[[1, 4], [0, 0]], [[3, 3], [2, 1]], [[0, -1], [1, 1]]], np.int64)],
             {"batch_dims": 1}, opset=13)


def test_gather_nd_shape_rule():
    assert rule("GatherND", [("N", 4, 5), ("K", 2)], {}) == [("K", 5)]
    assert rule("GatherND", [("N", 4, 5), ("N", 1)], {"batch_dims": 1}) == [("N", 5)]
