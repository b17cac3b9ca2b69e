"""Abs against onnxruntime: every opset where the schema changed, odd and 0-d shapes, dtypes."""
import numpy as np
import pytest

from tests.onnx_check import check_op

rng = np.random.default_rng(3)


def _x(shape, dtype=np.float32):
    return (rng.uniform(-10, 10, shape)).astype(dtype)


@pytest.mark.parametrize("opset", [7, 13])
def test_abs(opset):
    check_op("Abs", [_x((2, 3, 5))], opset=opset)
    check_op("Abs", [_x((1, 7, 1, 3))], opset=opset)
    check_op("Abs", [_x(())], opset=opset)


@pytest.mark.parametrize("dtype", [np.float64, np.float16])
def test_abs_dtypes(dtype):
    check_op("Abs", [_x((4, 3), dtype)], rtol=1e-3 if dtype == np.float16 else 1e-5)


@pytest.mark.parametrize("dtype", [np.int8, np.int16, np.int32, np.int64, np.uint8])
def test_abs_int(dtype):
    info = np.iinfo(dtype)
    check_op("Abs", [np.array([info.min, 0, 5, info.max], dtype)])
