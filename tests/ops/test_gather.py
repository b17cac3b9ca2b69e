import numpy as np
import pytest

from tests.onnx_check import check_op, const
from tests.ops.shape_rules import rule

X = np.arange(60, dtype=np.float32).reshape(3, 4, 5)


@pytest.mark.parametrize("axis", [0, 1, 2, -1])
def test_gather_negative_and_nd_indices(axis):
    idx = np.array([[0, -1], [2, 1]], np.int64)
    check_op("Gather", [X, idx], {"axis": axis}, opset=13)
    check_op("Gather", [X, const(np.array(-2, np.int64))], {"axis": axis}, opset=11)  # 0-d index drops the axis


def test_gather_dtypes():
    check_op("Gather", [X.astype(np.int64), np.array([2, 0, 2], np.int32)], {"axis": 1})
    check_op("Gather", [np.array([True, False, True]), np.array([], np.int64)])
    check_op("Gather", [np.array([5, 6, 7], np.int64), const(np.array(1, np.int64))], opset=7)


def test_gather_shape_rule():
    assert rule("Gather", [("N", 4, 5), ("B", 2)], {"axis": 1}) == [("N", "B", 2, 5)]
    assert rule("Gather", [("N", 4, 5), ()], {"axis": 0}) == [(4, 5)]
