"""QLinearMatMul against onnxruntime (opset 10, 21): uint8 and int8, per-column weight scales,
batched operands, saturation."""
import numpy as np
import pytest

from tests.onnx_check import check_op, const

rng = np.random.default_rng(5)


@pytest.mark.parametrize("opset", [10, 21])
def test_uint8(opset):
    a = rng.integers(0, 256, (2, 3, 16)).astype(np.uint8)
    b = rng.integers(0, 256, (16, 5)).astype(np.uint8)
    check_op("QLinearMatMul", [a, const(np.float32(0.02)), const(np.uint8(120)), const(b), const(np.float32(0.01)),
                               const(np.uint8(128)), const(np.float32(0.05)), const(np.uint8(100))], opset=opset)


def test_int8_per_column_and_saturation():
    a = rng.integers(-128, 128, (4, 32)).astype(np.int8)
    b = rng.integers(-127, 128, (32, 6)).astype(np.int8)
    check_op("QLinearMatMul", [a, const(np.float32(0.1)), const(np.int8(-5)), const(b),
                               const(rng.uniform(0.001, 0.01, 6).astype(np.float32)), const(np.zeros(6, np.int8)),
                               const(np.float32(0.02)), const(np.int8(3))])
    check_op("QLinearMatMul", [a, const(np.float32(0.1)), const(np.int8(0)), const(b), const(np.float32(0.5)),
                               const(np.int8(0)), const(np.float32(0.01)), const(np.int8(0))])   # mostly saturates
