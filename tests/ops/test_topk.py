import numpy as np
import pytest

from tests.onnx_check import check_op, const, make_model, run_dsedge, run_ort
from tests.ops.shape_rules import rule

X = np.array([[3, 1, 4, 1, 5, 9, 2, 6], [5, 3, 5, 8, 9, 7, 9, 3], [2, 2, 2, 2, 1, 1, 1, 1]], np.float32)


@pytest.mark.parametrize("largest", [0, 1])
@pytest.mark.parametrize("k,axis", [(1, -1), (3, 1), (8, 1), (0, 1), (2, 0), (3, -2)])
def test_topk_ties_follow_onnxruntime(largest, k, axis):
    check_op("TopK", [X, const(np.array([k], np.int64))], {"axis": axis, "largest": largest}, opset=11, n_outputs=2)


def test_topk_opset1_attr_and_opset10_input():
    check_op("TopK", [X], {"k": 3}, opset=9, n_outputs=2)
    check_op("TopK", [X, np.array([4], np.int64)], {"axis": -1}, opset=10, n_outputs=2)


def test_topk_dtypes():
    check_op("TopK", [X.astype(np.int64), const(np.array([3], np.int64))], opset=11, n_outputs=2)
    check_op("TopK", [X.astype(np.int32), const(np.array([5], np.int64))], {"largest": 0}, opset=21, n_outputs=2)
    check_op("TopK", [X.astype(np.float64), const(np.array([2], np.int64))], {"axis": 0}, opset=21, n_outputs=2)


def test_topk_unsorted_is_the_same_set():
    # sorted=0 leaves the order unspecified; dsedge returns it sorted, onnxruntime does not
    m = make_model("TopK", [X, const(np.array([5], np.int64))], {"sorted": 0}, opset=11, n_outputs=2)
    (v, i), _ = run_dsedge(m, {"in0": X})
    ev, ei = run_ort(m, {"in0": X})
    np.testing.assert_array_equal(np.sort(v, axis=-1), np.sort(ev, axis=-1))
    np.testing.assert_array_equal(np.take_along_axis(X, i, -1), v)


def test_topk_shape_rule():
    assert rule("TopK", [("N", 8), None], {"axis": 1}, {1: np.array([3])}) == [("N", 3), ("N", 3)]
    assert rule("TopK", [("N", 8), (1,)], {"axis": 0}) == [(None, 8), (None, 8)]
