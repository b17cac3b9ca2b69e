import numpy as np
import pytest

from tests.onnx_check import check_op, const


@pytest.mark.parametrize("shape", [(2, 3, 5, 7), (1, 4, 9), (2, 2, 3, 4, 5)])
def test_instance_norm(shape):
    rng = np.random.default_rng(0)
    x = (rng.standard_normal(shape) * 3 + 1).astype(np.float32)
    c = shape[1]
    s, b = rng.standard_normal(c).astype(np.float32), rng.standard_normal(c).astype(np.float32)
    check_op("InstanceNormalization", [x, const(s), const(b)], {"epsilon": 1e-3}, rtol=1e-4, atol=1e-4)
