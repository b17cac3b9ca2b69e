import numpy as np
import pytest

from tests.onnx_check import check_op, const
from tests.ops.shape_rules import rule

X = np.arange(120, dtype=np.float32).reshape(4, 5, 6)
BIG, SMALL = np.iinfo(np.int64).max, np.iinfo(np.int64).min

CASES = [  # starts, ends, axes, steps
    ([1], [3], [0], None),
    ([0, 1], [BIG, -1], [1, 2], None),
    ([-2], [SMALL], [2], [-1]),
    ([BIG], [SMALL], [1], [-2]),
    ([3, 4], [0, 1], [0, -1], [-1, -2]),
    ([0, 0, 0], [10, 10, 10], None, [2, 3, 4]),
    ([2], [2], [0], None),          # empty
    ([-100], [100], [-2], [1]),
]


def _i(v):
    return const(np.array(v, np.int64))


@pytest.mark.parametrize("opset", [10, 13])
@pytest.mark.parametrize("starts,ends,axes,steps", CASES)
def test_slice_inputs(opset, starts, ends, axes, steps):
    ins = [X, _i(starts), _i(ends)]
    if axes is not None or steps is not None:
        ins.append(_i(axes if axes is not None else list(range(len(starts)))))
    if steps is not None:
        ins.append(_i(steps))
    check_op("Slice", ins, opset=opset)


@pytest.mark.parametrize("starts,ends,axes", [([1], [3], [0]), ([0, 1], [BIG, -1], [1, 2]), ([-3], [100], None)])
def test_slice_opset9_attrs(starts, ends, axes):
    attrs = {"starts": starts, "ends": ends} | ({} if axes is None else {"axes": axes})
    check_op("Slice", [X], attrs, opset=9)


def test_slice_dtypes_and_runtime_inputs():
    check_op("Slice", [X.astype(np.int64), np.array([1], np.int32), np.array([-1], np.int32)], opset=13)
    check_op("Slice", [np.array([True, False, True, False]), _i([3]), _i([0]), _i([0]), _i([-2])], opset=13)


def test_slice_shape_rule():
    c = {1: np.array([1]), 2: np.array([BIG]), 3: np.array([1])}
    assert rule("Slice", [("N", 10, 3), None, None, None], consts=c) == [("N", 9, 3)]
    assert rule("Slice", [("N", "T", 3), None, None, None], consts=c) == [("N", None, 3)]
    assert rule("Slice", [("N", 10, 3), (1,), (1,), None], consts={3: np.array([2])}) == [("N", 10, None)]
