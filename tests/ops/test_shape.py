import numpy as np
import pytest

from tests.onnx_check import check_op
from tests.ops.shape_rules import rule

X = np.zeros((2, 3, 4, 5), np.float32)


@pytest.mark.parametrize("opset", [13, 15, 21])
def test_shape(opset):
    check_op("Shape", [X], opset=opset)
    check_op("Shape", [np.array(1, np.int64)], opset=opset)
    check_op("Shape", [np.zeros((0, 3), bool)], opset=opset)


@pytest.mark.parametrize("start,end", [(1, None), (-2, None), (0, -1), (1, 3), (-10, 10), (3, 1), (None, 2)])
def test_shape_start_end(start, end):
    attrs = {k: v for k, v in (("start", start), ("end", end)) if v is not None}
    check_op("Shape", [X], attrs, opset=15)


def test_shape_shape_rule():
    assert rule("Shape", [("N", 3, "T")], {"start": 1}) == [(2,)]
    assert rule("Shape", ["?"]) == [(None,)]
