import numpy as np
import pytest

from tests.onnx_check import check_op, const
from tests.ops.shape_rules import rule

rng = np.random.default_rng(0)


@pytest.mark.parametrize("axis", [0, 1, 2, -1, -3])
def test_concat(axis):
    shape = [2, 3, 4]
    a = rng.standard_normal(shape).astype(np.float32)
    shape[axis] = 1
    b = rng.standard_normal(shape).astype(np.float32)
    shape[axis] = 0
    check_op("Concat", [a, b, a, np.zeros(shape, np.float32)], {"axis": axis}, opset=13)


def test_concat_dtypes_and_constants():
    check_op("Concat", [np.array([1, 2], np.int64), const(np.array([3], np.int64))], {"axis": 0}, opset=11)
    check_op("Concat", [np.array([[True]]), np.array([[False, True]])], {"axis": 1})
    check_op("Concat", [np.ones((2, 2), np.float32)], {"axis": 0}, opset=7)


def test_concat_shape_rule():
    assert rule("Concat", [("N", 3), ("N", 5)], {"axis": 1}) == [("N", 8)]
    assert rule("Concat", [("N", 3), (2, 3)], {"axis": 0}) == [(None, 3)]
    assert rule("Concat", [(None, 3), (2, "C")], {"axis": 0}) == [(None, 3)]
    assert rule("Concat", ["?", (2, 3)], {"axis": 0}) == [(None, None)]
