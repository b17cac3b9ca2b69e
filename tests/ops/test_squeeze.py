import numpy as np
import pytest

from tests.onnx_check import check_op, const
from tests.ops.shape_rules import rule

X = np.arange(6, dtype=np.float32).reshape(1, 2, 1, 3, 1)


@pytest.mark.parametrize("axes", [None, [0], [2, -1], [0, 2, 4]])
def test_squeeze_opset11_attr(axes):
    check_op("Squeeze", [X], {} if axes is None else {"axes": axes}, opset=11)


@pytest.mark.parametrize("axes", [None, [0], [2, -1], [0, 2, 4]])
def test_squeeze_opset13_input(axes):
    check_op("Squeeze", [X] if axes is None else [X, const(np.array(axes, np.int64))], opset=13)


def test_squeeze_dtypes():
    check_op("Squeeze", [np.array([[7]], np.int64)], opset=13)  # to a 0-d tensor
    check_op("Squeeze", [np.array([[True], [False]]), const(np.array([1], np.int64))], opset=21)


def test_squeeze_shape_rule():
    assert rule("Squeeze", [("N", 1, 4), None], consts={1: np.array([1])}) == [("N", 4)]
    assert rule("Squeeze", [("N", 1, 4)]) == [None]  # which dims are 1 is unknown
    assert rule("Squeeze", [(1, 3, 1)]) == [(3,)]
