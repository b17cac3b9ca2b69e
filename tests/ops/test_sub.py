"""Sub against onnxruntime: broadcasting, 0-d operands, integer types (schema changes at 7, 13, 14)."""
import numpy as np
import pytest

from tests.onnx_check import check_op, const

rng = np.random.default_rng(0)
f32 = lambda *s: rng.standard_normal(s).astype(np.float32)  # noqa: E731


@pytest.mark.parametrize("opset", [7, 13, 14])
def test_sub_float_broadcast(opset):
    check_op("Sub", [f32(2, 3, 4), f32(4)], opset=opset)
    check_op("Sub", [f32(3, 1), f32(1, 5)], opset=opset)
    check_op("Sub", [f32(1, 3, 1, 2), const(f32(3, 1, 1))], opset=opset)


def test_sub_scalar_and_float64():
    check_op("Sub", [f32(2, 3), np.array(1.5, np.float32)])
    check_op("Sub", [np.array(-2.0, np.float32), np.array(0.25, np.float32)])
    check_op("Sub", [rng.standard_normal((3, 2)), rng.standard_normal((2,))])


@pytest.mark.parametrize("dtype", [np.int32, np.int64])
def test_sub_int(dtype):
    a = rng.integers(-50, 50, (2, 3)).astype(dtype)
    check_op("Sub", [a, rng.integers(-50, 50, (3,)).astype(dtype)])
    check_op("Sub", [a, const(np.array(7, dtype))])


def test_sub_uint8_wraps_opset14():
    a = np.array([0, 5, 200, 255], np.uint8)
    check_op("Sub", [a, np.array([1, 10, 100, 3], np.uint8)], opset=14)
