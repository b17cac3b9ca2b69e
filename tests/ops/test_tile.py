import numpy as np
import pytest

from tests.onnx_check import check_op, const
from tests.ops.shape_rules import rule


@pytest.mark.parametrize("reps", [[1, 1, 1], [2, 1, 3], [1, 0, 2], [3, 2, 1]])
def test_tile(reps):
    x = np.arange(12, dtype=np.float32).reshape(2, 3, 2)
    check_op("Tile", [x, const(np.array(reps, np.int64))], opset=13)


def test_tile_dtypes_and_runtime_repeats():
    check_op("Tile", [np.array([1, 2], np.int64), np.array([3], np.int64)], opset=7)
    check_op("Tile", [np.array([[True, False]]), const(np.array([2, 2], np.int64))])


def test_tile_shape_rule():
    assert rule("Tile", [("N", 3), None], consts={1: np.array([1, 2])}) == [("N", 6)]
    assert rule("Tile", [("N", 3), None], consts={1: np.array([2, 1])}) == [(None, 3)]
    assert rule("Tile", [("N", 3), (2,)]) == [(None, None)]
