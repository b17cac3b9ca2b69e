import numpy as np
import pytest

from tests.onnx_check import check_op, const
from tests.ops.shape_rules import rule

IDX = np.array([[0, 2, -1], [4, 1, -5]], np.int64)  # -5 wraps to 0, 4 is out of range for depth 4 -> all off


@pytest.mark.parametrize("axis", [-1, 0, 1, 2, -3])
@pytest.mark.parametrize("opset", [9, 11])
def test_onehot(axis, opset):
    check_op("OneHot", [IDX, const(np.array(4, np.int64)), const(np.array([-1.0, 3.0], np.float32))],
             {"axis": axis}, opset=opset)


def test_onehot_types():
    f32 = IDX.astype(np.float32)
    check_op("OneHot", [f32, const(np.array([4.0], np.float32)), const(np.array([0, 1], np.float32))], opset=11)
    check_op("OneHot", [IDX.astype(np.float32), np.array(3, np.int64), np.array([0, 1], np.int64)], opset=11)
    check_op("OneHot", [IDX.astype(np.int32), np.array(5, np.int32), np.array([2, 7], np.float32)], opset=11)
    check_op("OneHot", [IDX, np.array(5.0, np.float32), np.array([2, 7], np.int32)], {"axis": 0}, opset=11)


def test_onehot_shape_rule():
    assert rule("OneHot", [("N", 3), None, (2,)], consts={1: np.array(10)}) == [("N", 3, 10)]
