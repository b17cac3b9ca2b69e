import numpy as np
import pytest

from tests.onnx_check import check_op


@pytest.mark.parametrize("p,axis", [(2, -1), (1, 1), (2, 0)])
def test_lp_norm(p, axis):
    x = np.random.default_rng(0).standard_normal((3, 4, 5)).astype(np.float32)
    check_op("LpNormalization", [x], {"p": p, "axis": axis})
