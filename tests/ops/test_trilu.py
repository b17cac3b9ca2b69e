import numpy as np
import pytest

from tests.onnx_check import check_op, const

X = np.arange(1, 2 * 3 * 4 + 1, dtype=np.float32).reshape(2, 3, 4)


@pytest.mark.parametrize("upper", [0, 1])
@pytest.mark.parametrize("k", [None, 0, 1, -1, 5, -5])
def test_trilu(upper, k):
    ins = [X] if k is None else [X, const(np.array(k, np.int64))]
    check_op("Trilu", ins, {"upper": upper}, opset=14)
    check_op("Trilu", [X[0].T.astype(np.int64)] + ins[1:], {"upper": upper}, opset=14)


def test_trilu_default_upper():
    check_op("Trilu", [X.reshape(4, 6)], opset=14)
