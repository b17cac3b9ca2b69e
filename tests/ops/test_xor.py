"""Xor against onnxruntime: bool inputs with broadcasting, 0-d (opset 7 onward)."""
import numpy as np
import pytest

from tests.onnx_check import check_op, const

rng = np.random.default_rng(15)


@pytest.mark.parametrize("opset", [7, 17])
def test_xor(opset):
    check_op("Xor", [rng.random((2, 3, 4)) > 0.5, rng.random((4,)) > 0.5], opset=opset)
    check_op("Xor", [rng.random((3, 1)) > 0.5, rng.random((1, 5)) > 0.5], opset=opset)
    check_op("Xor", [np.array([[True, False]]), const(np.array(True))], opset=opset)
    check_op("Xor", [np.array(False), np.array([True, False])], opset=opset)
