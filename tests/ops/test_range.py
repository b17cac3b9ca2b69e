import numpy as np
import pytest

from tests.onnx_check import check_op, const
from tests.ops.shape_rules import rule


@pytest.mark.parametrize("start,limit,delta", [(0, 10, 1), (10, 0, -3), (0.1, 3.3, 0.1), (1, 1, 1), (5, 0, 1),
                                               (-2.5, 2.5, 0.7), (0.0, 1.0, 0.3333)])
@pytest.mark.parametrize("dtype", [np.float32, np.int64, np.int32, np.float64])
def test_range(start, limit, delta, dtype):
    if np.dtype(dtype).kind == "i" and any(float(v) != int(v) for v in (start, limit, delta)):
        pytest.skip("n/a: fractional bounds need a float type")
    vals = [np.array(v, dtype) for v in (start, limit, delta)]
    check_op("Range", vals, opset=11)
    check_op("Range", [const(v) for v in vals], opset=21)


def test_range_shape_rule():
    c = {0: np.array(0, np.int64), 1: np.array(10, np.int64), 2: np.array(3, np.int64)}
    assert rule("Range", [None, None, None], consts=c) == [(4,)]
    assert rule("Range", [(), (), ()]) == [(None,)]
