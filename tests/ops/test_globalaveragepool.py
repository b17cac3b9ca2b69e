import numpy as np
import pytest

from tests.onnx_check import check_op


@pytest.mark.parametrize("shape", [(2, 3, 5, 7), (1, 4, 9), (1, 2, 3, 4, 5)])
def test_global_average_pool(shape):
    check_op("GlobalAveragePool", [np.random.default_rng(0).standard_normal(shape).astype(np.float32)])
