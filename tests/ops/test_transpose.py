import numpy as np
import pytest

from tests.onnx_check import check_op
from tests.ops.shape_rules import rule

X = np.arange(120, dtype=np.float32).reshape(2, 3, 4, 5)


@pytest.mark.parametrize("perm", [None, [0, 2, 3, 1], [3, 2, 1, 0], [1, 0, 2, 3]])
def test_transpose(perm):
    check_op("Transpose", [X], {} if perm is None else {"perm": perm}, opset=13)


def test_transpose_dtypes_and_edges():
    check_op("Transpose", [X.astype(np.int64)], {"perm": [2, 0, 1, 3]}, opset=21)
    check_op("Transpose", [np.array([[True, False, True]])], opset=11)
    check_op("Transpose", [np.zeros((0, 2), np.float32)])
    check_op("Transpose", [np.array(3.0, np.float32)])


def test_transpose_shape_rule():
    assert rule("Transpose", [("N", 3, None)], {"perm": [2, 0, 1]}) == [(None, "N", 3)]
    assert rule("Transpose", [("N", 3)]) == [(3, "N")]
