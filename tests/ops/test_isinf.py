"""IsInf against onnxruntime (opsets 10, 20): detect_negative / detect_positive variants."""
import numpy as np
import pytest

from tests.onnx_check import check_op, const

vals = np.array([[1.0, np.nan, np.inf], [-np.inf, -0.0, 3e38]])


@pytest.mark.parametrize("opset", [10, 20])
@pytest.mark.parametrize("attrs", [{}, {"detect_negative": 0}, {"detect_positive": 0},
                                   {"detect_negative": 0, "detect_positive": 0}])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_isinf(opset, attrs, dtype):
    got = check_op("IsInf", [const(vals.astype(dtype))], attrs, opset=opset)[0]
    assert got.dtype == bool
    check_op("IsInf", [const(np.array(-np.inf, dtype))], attrs, opset=opset)
    check_op("IsInf", [np.ones((2, 0), dtype)], attrs, opset=opset)
