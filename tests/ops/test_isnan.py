"""IsNaN against onnxruntime (opsets 9, 13, 20): NaN, inf and finite values, float16/32/64.
NaN cannot be fed as a graph input (dsedge refuses non-finite feeds), so it is a constant."""
import numpy as np
import pytest

from tests.onnx_check import check_op, const

vals = [1.0, np.nan, np.inf, -np.inf, -0.0, np.nan]


@pytest.mark.parametrize("opset", [9, 13, 20])
@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64])
def test_isnan(opset, dtype):
    got = check_op("IsNaN", [const(np.array(vals, dtype).reshape(2, 3))], opset=opset)[0]
    assert got.dtype == bool and got.sum() == 2
    check_op("IsNaN", [np.linspace(-1, 1, 5).astype(dtype)], opset=opset)
    check_op("IsNaN", [const(np.array(np.nan, dtype))], opset=opset)
