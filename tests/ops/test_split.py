import numpy as np
import pytest

from dsedge.errors import ModelError
from tests.onnx_check import check_op, const, make_model, run_dsedge
from tests.ops.shape_rules import rule

X = np.arange(42, dtype=np.float32).reshape(6, 7)


@pytest.mark.parametrize("opset", [11, 13])
def test_split_equal_default(opset):
    check_op("Split", [X], {}, opset=opset, n_outputs=3)
    check_op("Split", [X], {"axis": 1}, opset=opset, n_outputs=7)


def test_split_sizes_attr_opset11():
    check_op("Split", [X], {"axis": 1, "split": [2, 4, 1]}, opset=11, n_outputs=3)
    check_op("Split", [X], {"axis": -2, "split": [6, 0]}, opset=11, n_outputs=2)


@pytest.mark.parametrize("opset", [13, 18])
def test_split_sizes_input(opset):
    check_op("Split", [X, const(np.array([2, 4, 1], np.int64))], {"axis": -1}, opset=opset, n_outputs=3)
    check_op("Split", [X.astype(np.int64), const(np.array([1, 5], np.int64))], opset=opset, n_outputs=2)


@pytest.mark.parametrize("n", [1, 2, 3, 4, 7])
def test_split_num_outputs_uneven(n):
    check_op("Split", [X], {"axis": 1, "num_outputs": n}, opset=18, n_outputs=n)


def test_split_num_outputs_impossible():
    m = make_model("Split", [X], {"axis": 1, "num_outputs": 5}, opset=18, n_outputs=5)
    with pytest.raises(ModelError, match="negative last chunk"):  # onnxruntime refuses it too
        run_dsedge(m, {"in0": X})


def test_split_bool():
    check_op("Split", [np.array([True, False, True, True])], {"num_outputs": 2}, opset=18, n_outputs=2)


def test_split_shape_rule():
    assert rule("Split", [("N", 7)], {"axis": 1, "num_outputs": 3}) == [("N", 3), ("N", 3), ("N", 1)]
    assert rule("Split", [("N", 7), None], {"axis": 0}, consts={1: np.array([2, 3])}) == [(2, 7), (3, 7)]
    assert rule("Split", [(6, "T")], {"axis": 1, "num_outputs": 2}) == [(6, None), (6, None)]
