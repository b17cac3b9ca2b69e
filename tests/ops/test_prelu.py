"""PRelu against onnxruntime: slope broadcast to X (per channel, scalar, full), opsets 7, 9, 16."""
import numpy as np
import pytest

from tests.onnx_check import check_op, const

rng = np.random.default_rng(6)
x = rng.standard_normal((2, 3, 4, 5)).astype(np.float32)


@pytest.mark.parametrize("opset", [7, 9, 16])
def test_prelu_slopes(opset):
    check_op("PRelu", [x, const(rng.uniform(0, 1, (3, 1, 1)).astype(np.float32))], opset=opset)
    check_op("PRelu", [x, const(np.array([0.25], np.float32))], opset=opset)
    check_op("PRelu", [x, rng.uniform(-1, 1, (2, 3, 4, 5)).astype(np.float32)], opset=opset)
    check_op("PRelu", [x, rng.uniform(-1, 1, (5,)).astype(np.float32)], opset=opset)


def test_prelu_int_opset16():
    check_op("PRelu", [np.array([[-3, 2], [0, -1]], np.int64), const(np.array([2, -4], np.int64))], opset=16)
