"""Not against onnxruntime: bool tensors of odd shapes and 0-d."""
import numpy as np

from tests.onnx_check import check_op


def test_not():
    check_op("Not", [np.random.default_rng(14).random((2, 3, 5)) > 0.5], opset=7)
    check_op("Not", [np.array(True)])
    check_op("Not", [np.zeros((0, 3), bool)])
