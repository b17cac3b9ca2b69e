"""Hardmax (one-hot of the first maximum): opset 11 flattens to 2-D, opset 13 works along one axis."""
import numpy as np
import pytest

from tests.onnx_check import check_op

X = (np.random.default_rng(0).standard_normal((2, 3, 4, 5)) * 4).astype(np.float32)


@pytest.mark.parametrize("opset", [11, 13])
@pytest.mark.parametrize("axis", [None, 0, 1, 2, -1])
def test_hardmax(opset, axis):
    check_op("Hardmax", [X], {} if axis is None else {"axis": axis}, opset=opset)


def test_hardmax_2d():
    check_op("Hardmax", [X[0, 0]], opset=7)


def test_hardmax_ties_pick_first():
    x = np.array([[1, 3, 3, 0], [2, 2, 2, 2]], np.float32)
    check_op("Hardmax", [x], {"axis": 1}, opset=13)
