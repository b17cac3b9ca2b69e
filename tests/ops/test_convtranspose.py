"""ConvTranspose against onnxruntime: strides, dilations, pads, output_padding, output_shape,
auto_pad, groups, 1-D."""
import numpy as np
import pytest

from tests.onnx_check import check_op, const

TOL = dict(rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("attrs", [
    {},
    {"strides": [2, 2], "pads": [1, 1, 1, 1]},
    {"strides": [2, 3], "output_padding": [1, 2], "pads": [0, 1, 2, 0]},
    {"dilations": [2, 1], "strides": [1, 2]},
    {"strides": [2, 3], "output_shape": [14, 23]},
    {"strides": [2, 3], "output_shape": [14, 23], "auto_pad": "SAME_UPPER"},
    {"strides": [2, 3], "auto_pad": "SAME_UPPER"},
    {"strides": [2, 3], "auto_pad": "SAME_LOWER"},
    {"strides": [2, 2], "auto_pad": "VALID"},
])
def test_conv_transpose_variants(attrs):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 3, 7, 8)).astype(np.float32)
    w = rng.standard_normal((3, 2, 3, 3)).astype(np.float32)
    b = rng.standard_normal(2).astype(np.float32)
    check_op("ConvTranspose", [x, const(w), const(b)], attrs, **TOL)


def test_conv_transpose_groups_and_1d():
    rng = np.random.default_rng(1)
    x = rng.standard_normal((1, 4, 5, 6)).astype(np.float32)
    w = rng.standard_normal((4, 3, 4, 4)).astype(np.float32)
    check_op("ConvTranspose", [x, const(w)], {"group": 2, "strides": [2, 2], "pads": [1, 1, 1, 1]}, **TOL)
    x = rng.standard_normal((2, 3, 9)).astype(np.float32)
    w = rng.standard_normal((3, 5, 3)).astype(np.float32)
    check_op("ConvTranspose", [x, const(w)], {"strides": [3], "output_padding": [2]}, opset=11, **TOL)
