"""Gemm: alpha/beta, transposes, C broadcasting (scalar, [N], [1, N], [M, 1], [M, N]), no C."""
import numpy as np
import pytest

from tests.onnx_check import check_op, const

TOL = dict(rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("ta,tb", [(0, 0), (1, 0), (0, 1), (1, 1)])
@pytest.mark.parametrize("cshape", [(), (7,), (1, 7), (5, 1), (5, 7)])
def test_gemm(ta, tb, cshape):
    rng = np.random.default_rng(0)
    a = rng.standard_normal((6, 5) if ta else (5, 6)).astype(np.float32)
    b = rng.standard_normal((7, 6) if tb else (6, 7)).astype(np.float32)
    c = rng.standard_normal(cshape).astype(np.float32)
    check_op("Gemm", [a, const(b), const(c)], {"transA": ta, "transB": tb, "alpha": 0.5, "beta": 2.0}, **TOL)


@pytest.mark.parametrize("opset", [7, 11, 13])
def test_gemm_opsets(opset):
    rng = np.random.default_rng(1)
    a, b = rng.standard_normal((3, 4)).astype(np.float32), rng.standard_normal((4, 2)).astype(np.float32)
    c = rng.standard_normal((2,)).astype(np.float32)
    check_op("Gemm", [a, b, c], opset=opset, **TOL)
    if opset >= 11:
        check_op("Gemm", [a, const(b)], {"alpha": 3.0}, opset=opset, **TOL)
