import numpy as np
import pytest

from tests.onnx_check import check_op, const
from tests.ops.shape_rules import rule

X = np.arange(1, 25, dtype=np.float32).reshape(2, 3, 4)
PADS = [[0, 1, 2, 0, 2, 1], [1, 0, 0, 1, 1, 3], [0, -1, 1, 0, 0, -2]]


def _i(v):
    return const(np.array(v, np.int64))


@pytest.mark.parametrize("pads", PADS)
@pytest.mark.parametrize("mode", ["constant", "reflect", "edge"])
def test_pad_opset10_attrs(pads, mode):
    if mode != "constant" and min(pads) < 0:
        pytest.skip("n/a: negative pads are checked in constant mode")
    check_op("Pad", [X], {"pads": pads, "mode": mode} | ({"value": 2.5} if mode == "constant" else {}), opset=10)


@pytest.mark.parametrize("pads", PADS)
@pytest.mark.parametrize("mode", ["constant", "reflect", "edge", "wrap"])
def test_pad_inputs(pads, mode):
    opset = 19 if mode == "wrap" else 11
    if mode != "constant" and min(pads) < 0:
        pytest.skip("n/a: negative pads are checked in constant mode")
    value = const(np.array(-1.5, np.float32)) if mode == "constant" else None
    check_op("Pad", [X, _i(pads), value], {"mode": mode}, opset=opset)


@pytest.mark.parametrize("mode", ["constant", "reflect", "edge", "wrap"])
def test_pad_axes_opset18(mode):
    opset = 19 if mode == "wrap" else 18
    check_op("Pad", [X, _i([2, 1, 0, 1]), None, _i([-1, 0])], {"mode": mode}, opset=opset)


def test_pad_dtypes_and_defaults():
    check_op("Pad", [X.astype(np.int64), _i([1, 0, 0, 0, 2, 1]), const(np.array(7, np.int64))], opset=13)
    check_op("Pad", [X.astype(np.int32), np.array([0, 1, 1, 1, 0, 0], np.int64)], opset=13)  # default value 0
    check_op("Pad", [np.array([True, False]), _i([1, 2]), const(np.array(True))], opset=13)


def test_pad_shape_rule():
    assert rule("Pad", [("N", 3, 4), None], consts={1: np.array([0, 1, 1, 0, 1, 1])}) == [("N", 5, 6)]
    assert rule("Pad", [("N", 3, 4), None, None, None],
                consts={1: np.array([1, 1]), 3: np.array([0])}) == [(None, 3, 4)]
    assert rule("Pad", [("N", 3, 4), (6,)]) == [(None, None, None)]
