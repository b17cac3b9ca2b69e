import numpy as np
import pytest

from tests.onnx_check import check_op, const


@pytest.mark.parametrize("sa,sb", [((3, 4), (4, 5)), ((2, 3, 4), (4, 5)), ((4,), (4, 5)), ((3, 4), (4,)),
                                   ((4,), (4,)), ((2, 1, 3, 4), (5, 4, 2)), ((1, 3, 4), (2, 4, 6))])
def test_matmul(sa, sb):
    rng = np.random.default_rng(0)
    a, b = rng.standard_normal(sa).astype(np.float32), rng.standard_normal(sb).astype(np.float32)
    check_op("MatMul", [a, b], rtol=1e-4, atol=1e-4)
    check_op("MatMul", [a, const(b)], opset=9, rtol=1e-4, atol=1e-4)
