import numpy as np
import pytest

from tests.onnx_check import check_op
from tests.ops.shape_rules import rule


@pytest.mark.parametrize("bs", [1, 2, 3])
def test_space_to_depth(bs):
    x = np.arange(2 * 3 * 6 * 12, dtype=np.float32).reshape(2, 3, 6, 12)
    check_op("SpaceToDepth", [x], {"blocksize": bs}, opset=13)
    check_op("SpaceToDepth", [x.astype(np.float64)], {"blocksize": bs}, opset=13)


def test_space_to_depth_shape_rule():
    assert rule("SpaceToDepth", [("N", 3, 6, "W")], {"blocksize": 2}) == [("N", 12, 3, None)]
