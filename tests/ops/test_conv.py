"""Conv against onnxruntime: 1-D/2-D/3-D, strides, dilations, pads, auto_pad, groups."""
import numpy as np
import pytest

from tests.onnx_check import check_op, const

TOL = dict(rtol=1e-4, atol=1e-4)


def _data(seed, xs, ws):
    rng = np.random.default_rng(seed)
    return rng.standard_normal(xs).astype(np.float32), rng.standard_normal(ws).astype(np.float32)


@pytest.mark.parametrize("attrs", [
    {},
    {"pads": [1, 1, 1, 1]},
    {"strides": [2, 3], "pads": [0, 2, 1, 0]},
    {"dilations": [2, 3], "pads": [2, 1, 0, 3]},
    {"auto_pad": "SAME_UPPER", "strides": [2, 2]},
    {"auto_pad": "SAME_LOWER", "strides": [3, 2]},
    {"auto_pad": "VALID", "strides": [2, 1]},
])
def test_conv2d_variants(attrs):
    x, w = _data(0, (2, 3, 9, 11), (5, 3, 3, 4))
    b = np.random.default_rng(1).standard_normal(5).astype(np.float32)
    check_op("Conv", [x, const(w), const(b)], attrs, **TOL)


@pytest.mark.parametrize("group,cin,cout", [(2, 4, 6), (4, 4, 4), (3, 3, 6)])
def test_conv_groups_and_depthwise(group, cin, cout):
    x, w = _data(2, (1, cin, 10, 7), (cout, cin // group, 3, 3))
    check_op("Conv", [x, const(w)], {"group": group, "pads": [1, 1, 1, 1], "strides": [2, 1]}, **TOL)


def test_conv_1x1_and_activation_weight():
    x, w = _data(3, (2, 8, 5, 6), (4, 8, 1, 1))
    check_op("Conv", [x, const(w)], {"kernel_shape": [1, 1]}, **TOL)
    check_op("Conv", [x, w], {}, **TOL)          # weight as a runtime input


def test_conv1d_and_3d():
    x, w = _data(4, (2, 3, 17), (4, 3, 5))
    check_op("Conv", [x, const(w)], {"strides": [2], "dilations": [2], "pads": [3, 1]}, **TOL)
    x, w = _data(5, (1, 2, 5, 6, 7), (3, 2, 2, 3, 3))
    check_op("Conv", [x, const(w)], {"pads": [1, 0, 1, 0, 1, 1], "strides": [1, 2, 2]}, opset=11, **TOL)
