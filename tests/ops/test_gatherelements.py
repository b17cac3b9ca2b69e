import numpy as np
import pytest

from tests.onnx_check import check_op
from tests.ops.shape_rules import rule

X = np.arange(24, dtype=np.float32).reshape(2, 3, 4)


@pytest.mark.parametrize("axis", [0, 1, 2, -1])
def test_gather_elements(axis):
    rng = np.random.default_rng(axis + 5)
    shape = [2, 2, 3]
    n = X.shape[axis]
    idx = rng.integers(-n, n, size=shape).astype(np.int64)
    check_op("GatherElements", [X, idx], {"axis": axis}, opset=13)
    check_op("GatherElements", [X.astype(np.int64), idx.astype(np.int32)], {"axis": axis}, opset=11)


def test_gather_elements_shape_rule():
    assert rule("GatherElements", [("N", 3), ("N", 5)], {"axis": 1}) == [("N", 5)]
