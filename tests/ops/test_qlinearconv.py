"""QLinearConv against onnxruntime (opset 10): uint8/int8, per-channel weights, int32 bias,
strides/pads/groups, auto_pad."""
import numpy as np
import pytest

from tests.onnx_check import check_op, const

rng = np.random.default_rng(6)


@pytest.mark.parametrize("attrs", [{}, {"pads": [1, 1, 1, 1], "strides": [2, 2]}, {"auto_pad": "SAME_UPPER"},
                                   {"group": 2, "dilations": [2, 2], "pads": [2, 2, 2, 2]}])
def test_uint8(attrs):
    x = rng.integers(0, 256, (1, 4, 9, 8)).astype(np.uint8)
    w = rng.integers(0, 256, (6, 4 // attrs.get("group", 1), 3, 3)).astype(np.uint8)
    b = rng.integers(-2000, 2000, 6).astype(np.int32)
    check_op("QLinearConv", [x, const(np.float32(0.02)), const(np.uint8(110)), const(w), const(np.float32(0.004)),
                             const(np.uint8(128)), const(np.float32(0.1)), const(np.uint8(90)), const(b)], attrs)


def test_int8_per_channel_no_bias():
    x = rng.integers(-128, 128, (2, 3, 7, 7)).astype(np.int8)
    w = rng.integers(-127, 128, (5, 3, 3, 3)).astype(np.int8)
    check_op("QLinearConv", [x, const(np.float32(0.05)), const(np.int8(-10)), const(w),
                             const(rng.uniform(0.001, 0.02, 5).astype(np.float32)), const(np.zeros(5, np.int8)),
                             const(np.float32(0.2)), const(np.int8(4))], {"pads": [1, 1, 1, 1]})
