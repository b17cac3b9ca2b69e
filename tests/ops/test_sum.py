"""Sum against onnxruntime: variadic (1-4 inputs) with broadcasting (opsets 8, 13)."""
import numpy as np
import pytest

from tests.onnx_check import check_op, const

rng = np.random.default_rng(11)
f = lambda *s: rng.standard_normal(s).astype(np.float32)  # noqa: E731


@pytest.mark.parametrize("opset", [8, 13])
def test_sum_variadic(opset):
    check_op("Sum", [f(2, 3)], opset=opset)
    check_op("Sum", [f(2, 3), f(3)], opset=opset)
    check_op("Sum", [f(2, 1, 4), f(3, 1), const(np.float32(0.5)), f(1)], opset=opset)


def test_sum_float64_scalar():
    check_op("Sum", [np.array(1.5), rng.standard_normal((2, 2))])
