"""Sign against onnxruntime: every opset where the schema changed, odd and 0-d shapes, dtypes."""
import numpy as np
import pytest

from tests.onnx_check import check_op

rng = np.random.default_rng(3)


def _x(shape, dtype=np.float32):
    return (rng.integers(-3, 4, shape) * rng.uniform(0.5, 2, shape)).astype(dtype)


@pytest.mark.parametrize("opset", [9, 13])
def test_sign(opset):
    check_op("Sign", [_x((2, 3, 5))], opset=opset)
    check_op("Sign", [_x((1, 7, 1, 3))], opset=opset)
    check_op("Sign", [_x(())], opset=opset)


@pytest.mark.parametrize("dtype", [np.float64, np.float16])
def test_sign_dtypes(dtype):
    check_op("Sign", [_x((4, 3), dtype)], rtol=1e-3 if dtype == np.float16 else 1e-5)


@pytest.mark.parametrize("dtype", [np.int8, np.int32, np.int64, np.uint8])
def test_sign_int(dtype):
    check_op("Sign", [np.array([0, 1, 100, np.iinfo(dtype).max, np.iinfo(dtype).min], dtype)])
