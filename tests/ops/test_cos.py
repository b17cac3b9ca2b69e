"""Cos against onnxruntime: every opset where the schema changed, odd and 0-d shapes, dtypes."""
import numpy as np
import pytest

from tests.onnx_check import check_op

rng = np.random.default_rng(3)


def _x(shape, dtype=np.float32):
    return (rng.uniform(-10, 10, shape)).astype(dtype)


@pytest.mark.parametrize("opset", [7])
def test_cos(opset):
    check_op("Cos", [_x((2, 3, 5))], opset=opset)
    check_op("Cos", [_x((1, 7, 1, 3))], opset=opset)
    check_op("Cos", [_x(())], opset=opset)


@pytest.mark.parametrize("dtype", [np.float64, np.float16])
def test_cos_dtypes(dtype):
    check_op("Cos", [_x((4, 3), dtype)], rtol=1e-3 if dtype == np.float16 else 1e-5)

