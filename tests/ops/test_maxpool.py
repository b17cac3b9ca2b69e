"""MaxPool with Indices: pads, strides, dilations, ceil_mode, storage_order, auto_pad, 1-D/3-D."""
import numpy as np
import pytest

from tests.onnx_check import check_op


@pytest.mark.parametrize("attrs", [
    {"kernel_shape": [2, 2], "strides": [2, 2]},
    {"kernel_shape": [3, 3], "strides": [2, 2], "pads": [1, 1, 1, 0]},
    {"kernel_shape": [3, 3], "strides": [2, 2], "pads": [1, 1, 1, 0], "ceil_mode": 1},
    {"kernel_shape": [2, 2], "strides": [3, 3], "pads": [1, 1, 1, 1], "ceil_mode": 1},
    {"kernel_shape": [3, 2], "dilations": [2, 1], "storage_order": 1},
    {"kernel_shape": [5, 5], "strides": [1, 1], "pads": [2, 2, 2, 2]},
    {"kernel_shape": [3, 3], "strides": [2, 2], "auto_pad": "SAME_UPPER"},
    {"kernel_shape": [2, 3], "strides": [2, 2], "auto_pad": "SAME_LOWER"},
])
def test_maxpool_2d(attrs):
    x = np.random.default_rng(0).standard_normal((2, 3, 7, 8)).astype(np.float32)
    check_op("MaxPool", [x], attrs, opset=12, n_outputs=2)


def test_maxpool_single_output_old_opset_and_int8():
    x = np.random.default_rng(1).standard_normal((1, 2, 9, 9)).astype(np.float32)
    check_op("MaxPool", [x], {"kernel_shape": [3, 3], "strides": [2, 2]}, opset=7)
    q = np.random.default_rng(2).integers(-128, 128, (1, 2, 6, 5)).astype(np.int8)
    check_op("MaxPool", [q], {"kernel_shape": [2, 2], "pads": [1, 1, 0, 0]}, opset=12)


def test_maxpool_1d_3d():
    rng = np.random.default_rng(3)
    check_op("MaxPool", [rng.standard_normal((2, 3, 11)).astype(np.float32)],
             {"kernel_shape": [3], "strides": [2], "pads": [1, 1]}, opset=12, n_outputs=2)
    check_op("MaxPool", [rng.standard_normal((1, 2, 4, 5, 6)).astype(np.float32)],
             {"kernel_shape": [2, 2, 3], "strides": [2, 1, 2]}, opset=12, n_outputs=2)


def test_maxpool_ties_pick_first_in_row_major_order():
    x = np.random.default_rng(4).integers(0, 3, (1, 2, 7, 7)).astype(np.float32)
    check_op("MaxPool", [x], {"kernel_shape": [3, 3], "strides": [2, 2], "pads": [1, 1, 1, 1]}, opset=12, n_outputs=2)
    check_op("MaxPool", [x], {"kernel_shape": [3, 2], "storage_order": 1}, opset=12, n_outputs=2)
