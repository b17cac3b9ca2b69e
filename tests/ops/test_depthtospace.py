import numpy as np
import pytest

from tests.onnx_check import check_op
from tests.ops.shape_rules import rule

X = np.arange(2 * 12 * 2 * 3, dtype=np.float32).reshape(2, 12, 2, 3)


@pytest.mark.parametrize("mode", ["DCR", "CRD"])
@pytest.mark.parametrize("bs", [1, 2])
def test_depth_to_space(mode, bs):
    check_op("DepthToSpace", [X], {"blocksize": bs, "mode": mode}, opset=13)


def test_depth_to_space_default_mode_and_dtypes():
    check_op("DepthToSpace", [X.reshape(2, 4, 3, 6)], {"blocksize": 2}, opset=11)
    check_op("DepthToSpace", [X.astype(np.float64)], {"blocksize": 2, "mode": "CRD"}, opset=13)


def test_depth_to_space_shape_rule():
    assert rule("DepthToSpace", [("N", 12, "H", 3)], {"blocksize": 2}) == [("N", 3, None, 6)]
