import numpy as np
import pytest

from tests.onnx_check import check_op, const
from tests.ops.shape_rules import rule

X = np.arange(6, dtype=np.float32).reshape(2, 3)


@pytest.mark.parametrize("axes", [[0], [-1], [0, 3], [1, -1], [3, 0, 2]])
def test_unsqueeze_opset11_attr(axes):
    check_op("Unsqueeze", [X], {"axes": axes}, opset=11)


@pytest.mark.parametrize("axes", [[0], [-1], [0, 3], [1, -1], [3, 0, 2]])
def test_unsqueeze_opset13_input(axes):
    check_op("Unsqueeze", [X, const(np.array(axes, np.int64))], opset=13)


def test_unsqueeze_dtypes_and_scalars():
    check_op("Unsqueeze", [np.array(5, np.int64), const(np.array([0], np.int64))], opset=13)
    check_op("Unsqueeze", [np.array([True, False]), const(np.array([0, 2], np.int64))], opset=21)


def test_unsqueeze_shape_rule():
    assert rule("Unsqueeze", [("N", 3), None], consts={1: np.array([0, -1])}) == [(1, "N", 3, 1)]
    assert rule("Unsqueeze", [("N", 3), (1,)]) == [None]
