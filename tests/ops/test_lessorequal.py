"""LessOrEqual against onnxruntime: bool output, broadcasting, 0-d, float and integer types (opsets 12, 16)."""
import numpy as np
import pytest

from tests.onnx_check import check_op, const

rng = np.random.default_rng(13)
a = rng.integers(-3, 4, (2, 3, 4))


@pytest.mark.parametrize("opset", [12, 16])
@pytest.mark.parametrize("dtype", [np.float32, np.int32, np.int64])
def test_lessorequal(opset, dtype):
    got = check_op("LessOrEqual", [a.astype(dtype), rng.integers(-3, 4, (4,)).astype(dtype)], opset=opset)[0]
    assert got.dtype == bool
    check_op("LessOrEqual", [a.astype(dtype), const(np.array(0, dtype))], opset=opset)
    check_op("LessOrEqual", [np.array(1, dtype), rng.integers(0, 3, (3, 1)).astype(dtype)], opset=opset)


def test_lessorequal_float64_nan():
    check_op("LessOrEqual", [const(np.array([1.0, np.nan, -np.inf, 2.0])), np.array([1.0, 1.0, 0.0, np.float64(3)])])
