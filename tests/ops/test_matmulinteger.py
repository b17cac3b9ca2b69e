"""MatMulInteger against onnxruntime (opset 10+): uint8/int8 operands, scalar and per-column zero
points, batched and 1-D operands."""
import numpy as np
import pytest

from tests.onnx_check import check_op, const

rng = np.random.default_rng(3)


def _u8(shape):
    return rng.integers(0, 256, shape).astype(np.uint8)


def _i8(shape):
    return rng.integers(-128, 128, shape).astype(np.int8)


@pytest.mark.parametrize("opset", [10, 13, 21])
def test_u8_u8(opset):
    check_op("MatMulInteger", [_u8((3, 7)), const(_u8((7, 5))), np.uint8(12), const(np.uint8(200))], opset=opset)


def test_u8_i8_per_column_and_batched():
    check_op("MatMulInteger", [_u8((2, 4, 33)), const(_i8((33, 6))), np.uint8(0), const(np.zeros(6, np.int8))])
    check_op("MatMulInteger", [_u8((2, 4, 9)), const(_u8((9, 6))), np.uint8(3), const(_u8((6,)))])


def test_no_zero_points_and_1d():
    check_op("MatMulInteger", [_u8((5, 8)), const(_u8((8, 3)))])
    check_op("MatMulInteger", [_u8((8,)), const(_u8((8, 3))), np.uint8(9)])


def test_large_k():
    check_op("MatMulInteger", [_u8((2, 4096)), const(_i8((4096, 3))), np.uint8(255)])
