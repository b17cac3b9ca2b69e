"""Round against onnxruntime: every opset where the schema changed, odd and 0-d shapes, dtypes."""
import numpy as np
import pytest

from tests.onnx_check import check_op

rng = np.random.default_rng(3)


def _x(shape, dtype=np.float32):
    return (rng.uniform(-10, 10, shape)).astype(dtype)


@pytest.mark.parametrize("opset", [11])
def test_round(opset):
    check_op("Round", [_x((2, 3, 5))], opset=opset)
    check_op("Round", [_x((1, 7, 1, 3))], opset=opset)
    check_op("Round", [_x(())], opset=opset)


@pytest.mark.parametrize("dtype", [np.float64, np.float16])
def test_round_dtypes(dtype):
    check_op("Round", [_x((4, 3), dtype)], rtol=1e-3 if dtype == np.float16 else 1e-5)


def test_round_half_to_even():
    x = np.array([0.5, 1.5, 2.5, -0.5, -1.5, -2.5, 2.4999998, 1e7 + 1], np.float32)
    got = check_op("Round", [x], opset=11)[0]
    assert got[2] == 2.0 and got[5] == -2.0
