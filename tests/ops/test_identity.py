import numpy as np

from tests.onnx_check import check_op


def test_identity():
    check_op("Identity", [np.arange(6, dtype=np.float32).reshape(2, 3)])
    check_op("Identity", [np.arange(6, dtype=np.int64)])
