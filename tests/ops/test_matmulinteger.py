"""MatMulInteger against onnxruntime (opset 10+): uint8/int8 operands, scalar and per-column zero
points, batched and 1-D operands. With int8 weights onnxruntime's result depends on the CPU
(u8 x s8 saturates on x86 without VNNI): those cases are checked against an exact int64 product
and against onnxruntime on the same op with the weights re-encoded as uint8 (exact everywhere)."""
import numpy as np
import pytest

from tests.onnx_check import check_op, const, uint8_weights

rng = np.random.default_rng(3)


def _u8(shape):
    return rng.integers(0, 256, shape).astype(np.uint8)


def _i8(shape):
    return rng.integers(-128, 128, shape).astype(np.int8)


@pytest.mark.parametrize("opset", [10, 13, 21])
def test_u8_u8(opset):
    check_op("MatMulInteger", [_u8((3, 7)), const(_u8((7, 5))), np.uint8(12), const(np.uint8(200))], opset=opset)


def _exact(a, b, za=0, zb=0):
    """The int64 product of the zero-point-shifted operands (the op's definition), as int32."""
    a = np.asarray(a, np.int64) - np.asarray(za, np.int64)
    b = np.asarray(b, np.int64) - np.asarray(zb, np.int64)
    return np.matmul(a, b).astype(np.int32)


def check_s8_weights(inputs):
    got = check_op("MatMulInteger", inputs, oracle_inputs=uint8_weights(inputs, [(1, 3)]))[0]
    vals = [v.value if isinstance(v, const) else v for v in inputs] + [0] * (4 - len(inputs))
    np.testing.assert_array_equal(got, _exact(*vals))


def test_u8_i8_per_column_and_batched():
    zb = np.zeros(6, np.int8)
    zb[2], zb[5] = -7, 100   # per-column int8 zero points
    check_s8_weights([_u8((2, 4, 33)), const(_i8((33, 6))), np.uint8(0), const(zb)])
    check_s8_weights([_u8((2, 4, 33)), const(_i8((33, 6))), np.uint8(17)])
    check_op("MatMulInteger", [_u8((2, 4, 9)), const(_u8((9, 6))), np.uint8(3), const(_u8((6,)))])


def test_saturating_pairs():
    """Every adjacent product pair at 255 * 127 * 2 > 2^15: where onnxruntime's u8 x s8 kernel
    saturates, the reference must still give the exact sum."""
    a = np.full((2, 64), 255, np.uint8)
    b = np.full((64, 3), 127, np.int8)
    b[:, 1] = -128
    check_s8_weights([a, const(b)])


def test_no_zero_points_and_1d():
    check_op("MatMulInteger", [_u8((5, 8)), const(_u8((8, 3)))])
    check_op("MatMulInteger", [_u8((8,)), const(_u8((8, 3))), np.uint8(9)])


def test_large_k():
    check_s8_weights([_u8((2, 4096)), const(_i8((4096, 3))), np.uint8(255)])
    check_op("MatMulInteger", [_u8((2, 4096)), const(_u8((4096, 3))), np.uint8(255), const(np.uint8(1))])
