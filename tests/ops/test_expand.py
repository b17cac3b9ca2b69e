import numpy as np
import pytest

from tests.onnx_check import check_op, const
from tests.ops.shape_rules import rule


@pytest.mark.parametrize("xshape,shape", [((3, 1), (2, 3, 4)), ((3, 1), (1, 1)), ((2, 1, 4), (3, 1)),
                                          ((1,), (0, 2)), ((), (2, 2)), ((4,), (4,))])
def test_expand(xshape, shape):
    x = np.arange(int(np.prod(xshape)), dtype=np.float32).reshape(xshape)
    check_op("Expand", [x, const(np.array(shape, np.int64))], opset=13)


def test_expand_dtypes_and_runtime_shape():
    check_op("Expand", [np.array([[1], [2]], np.int64), np.array([2, 3], np.int64)], opset=8)
    check_op("Expand", [np.array([True, False]), const(np.array([3, 1], np.int64))])


def test_expand_shape_rule():
    assert rule("Expand", [("N", 1), None], consts={1: np.array([1, 5])}) == [("N", 5)]
    assert rule("Expand", [("N", 1), (3,)]) == [(None, None, None)]
