import numpy as np
import pytest

from tests.onnx_check import check_op
from tests.ops.shape_rules import rule


@pytest.mark.parametrize("axis", [0, 1, 2, 3, -1, -3])
def test_flatten(axis):
    x = np.random.default_rng(0).standard_normal((2, 3, 4, 5)).astype(np.float32)
    check_op("Flatten", [x], {"axis": axis}, opset=13)


def test_flatten_default_opsets_and_dtypes():
    check_op("Flatten", [np.arange(24, dtype=np.float32).reshape(2, 3, 4)], opset=9)
    check_op("Flatten", [np.arange(24, dtype=np.int64).reshape(2, 3, 4)], opset=11)
    check_op("Flatten", [np.zeros((0, 3, 2), np.float32)], {"axis": 2})


def test_flatten_shape_rule():
    assert rule("Flatten", [("N", 3, 4)]) == [("N", 12)]
    assert rule("Flatten", [("N", 3, 4)], {"axis": 2}) == [(None, 4)]
    assert rule("Flatten", ["?"]) == [(None, None)]
