import numpy as np

from tests.onnx_check import check_op


def test_size():
    check_op("Size", [np.zeros((2, 3, 4), np.float32)], opset=13)
    check_op("Size", [np.array(3, np.int64)], opset=21)
    check_op("Size", [np.zeros((0, 5), bool)])
