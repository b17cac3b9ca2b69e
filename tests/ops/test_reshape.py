import numpy as np
import pytest

from tests.onnx_check import check_op, const
from tests.ops.shape_rules import rule

X = np.arange(24, dtype=np.float32).reshape(2, 3, 4)


@pytest.mark.parametrize("shape", [[4, -1], [0, 12], [0, 0, -1], [-1], [2, 3, 2, 2], [24, 1]])
def test_reshape(shape):
    check_op("Reshape", [X, const(np.array(shape, np.int64))], opset=13)


def test_reshape_allowzero_and_dtypes():
    check_op("Reshape", [np.zeros((0, 3), np.float32), const(np.array([3, 0], np.int64))], {"allowzero": 1}, opset=14)
    check_op("Reshape", [X.astype(np.int64), const(np.array([0, -1], np.int64))], {"allowzero": 0}, opset=14)
    check_op("Reshape", [np.array(7, np.int64), const(np.array([1, 1], np.int64))])
    check_op("Reshape", [np.array([True, False, True, True]), np.array([2, 2], np.int64)])  # runtime shape


def test_reshape_shape_rule():
    assert rule("Reshape", [("N", 3, 4), None], consts={1: np.array([0, -1])}) == [("N", None)]
    assert rule("Reshape", [(2, "T", 4), None], consts={1: np.array([-1, 4])}) == [(None, 4)]
    assert rule("Reshape", [(2, 3, 4), None], consts={1: np.array([0, -1])}) == [(2, 12)]
    assert rule("Reshape", [("N", 3), (3,)]) == [(None, None, None)]
    assert rule("Reshape", [("N", 1, 1), None], consts={1: np.array([-1])}) == [("N",)]
