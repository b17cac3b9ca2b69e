"""Mean against onnxruntime: variadic (1-4 inputs) with broadcasting (opsets 8, 13)."""
import numpy as np
import pytest

from tests.onnx_check import check_op, const

rng = np.random.default_rng(12)
f = lambda *s: rng.standard_normal(s).astype(np.float32)  # noqa: E731


@pytest.mark.parametrize("opset", [8, 13])
def test_mean_variadic(opset):
    check_op("Mean", [f(2, 3)], opset=opset)
    check_op("Mean", [f(2, 3), f(3)], opset=opset)
    check_op("Mean", [f(2, 1, 4), f(3, 1), const(np.float32(0.5)), f(1)], opset=opset)


def test_mean_scalar():
    check_op("Mean", [np.array(1.5, np.float32), f(2, 2)])
    check_op("Mean", [np.array(1.5, np.float32), np.array(-4, np.float32)])
