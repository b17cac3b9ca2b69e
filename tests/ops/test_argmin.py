import numpy as np
import pytest

from tests.onnx_check import check_op
from tests.ops.shape_rules import rule

X = np.array([[[3, 1, 3, 0], [2, 2, 0, 0], [1, 3, 3, 1]], [[0, 0, 0, 0], [5, 1, 5, 1], [2, 4, 4, 2]]], np.float32)


@pytest.mark.parametrize("axis", [0, 1, 2, -1])
@pytest.mark.parametrize("keepdims", [0, 1])
@pytest.mark.parametrize("last", [0, 1])
def test_argmin(axis, keepdims, last):
    check_op("ArgMin", [X], {"axis": axis, "keepdims": keepdims, "select_last_index": last},
             opset=13)  # X has ties on purpose


@pytest.mark.parametrize("opset", [11, 12, 13])
def test_argmin_defaults_and_dtypes(opset):
    check_op("ArgMin", [X], opset=opset)
    check_op("ArgMin", [X.astype(np.int64)], {"axis": 1}, opset=opset)
    check_op("ArgMin", [X.astype(np.int32)], {"axis": -1, "keepdims": 0}, opset=opset)
    check_op("ArgMin", [np.random.default_rng(1).standard_normal((5, 7)).astype(np.float64)], {"axis": 1}, opset=opset)


def test_argmin_shape_rule():
    assert rule("ArgMin", [("N", 3, 4)], {"axis": 1, "keepdims": 0}) == [("N", 4)]
    assert rule("ArgMin", [("N", 3, 4)], {"axis": -1}) == [("N", 3, 1)]
