import numpy as np
import pytest
from onnx import numpy_helper

from tests.onnx_check import check_op, const
from tests.ops.shape_rules import rule


@pytest.mark.parametrize("shape", [[2, 3], [4], [], [0, 2]])
def test_constant_of_shape_default(shape):
    check_op("ConstantOfShape", [const(np.array(shape, np.int64))], opset=9)
    check_op("ConstantOfShape", [np.array(shape, np.int64)], opset=21)


@pytest.mark.parametrize("value", [np.array([1.5], np.float32), np.array([-7], np.int64), np.array([True]),
                                   np.array([3], np.int32), np.array([0.25], np.float16)])
def test_constant_of_shape_value(value):
    check_op("ConstantOfShape", [np.array([2, 3], np.int64)], {"value": numpy_helper.from_array(value)}, opset=20)


def test_constant_of_shape_shape_rule():
    assert rule("ConstantOfShape", [None], consts={0: np.array([2, 5])}) == [(2, 5)]
    assert rule("ConstantOfShape", [(3,)], dtype=np.int64) == [(None, None, None)]
