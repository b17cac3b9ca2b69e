"""Log against onnxruntime: every opset where the schema changed, odd and 0-d shapes, dtypes."""
import numpy as np
import pytest

from tests.onnx_check import check_op

rng = np.random.default_rng(3)


def _x(shape, dtype=np.float32):
    return (rng.uniform(1e-3, 1e3, shape)).astype(dtype)


@pytest.mark.parametrize("opset", [7, 13])
def test_log(opset):
    check_op("Log", [_x((2, 3, 5))], opset=opset)
    check_op("Log", [_x((1, 7, 1, 3))], opset=opset)
    check_op("Log", [_x(())], opset=opset)


@pytest.mark.parametrize("dtype", [np.float64, np.float16])
def test_log_dtypes(dtype):
    check_op("Log", [_x((4, 3), dtype)], rtol=1e-3 if dtype == np.float16 else 1e-5)

