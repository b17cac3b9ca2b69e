"""Resize against onnxruntime: opset 10 (scales only), 11, 13, 18 (axes, keep_aspect_ratio_policy),
19 (half_pixel_symmetric); nearest (every nearest_mode x coordinate mode), linear, cubic;
scales and sizes; up- and downsampling with odd ratios."""
import itertools

import numpy as np
import pytest

from tests.onnx_check import check_op, const

F = np.float32
EMPTY = const(np.zeros(0, F))
X = np.random.default_rng(0).standard_normal((1, 2, 5, 7)).astype(F)
COORDS = ["half_pixel", "pytorch_half_pixel", "align_corners", "asymmetric"]
NEAREST = ["round_prefer_floor", "round_prefer_ceil", "floor", "ceil"]


@pytest.mark.parametrize("mode", ["nearest", "linear"])
@pytest.mark.parametrize("scales", [[1, 1, 2, 3], [1, 1, 0.6, 0.5], [1, 1, 1.7, 2.5]])
def test_resize_opset10(mode, scales):
    check_op("Resize", [X, const(F(scales))], {"mode": mode}, opset=10)


@pytest.mark.parametrize("ctm,nm", list(itertools.product(COORDS + ["tf_half_pixel_for_nn"], NEAREST)))
@pytest.mark.parametrize("scales", [[1, 1, 2.4, 1.5], [1, 1, 0.6, 0.43]])
def test_resize_nearest_modes(ctm, nm, scales):
    attrs = {"mode": "nearest", "coordinate_transformation_mode": ctm, "nearest_mode": nm}
    check_op("Resize", [X, EMPTY, const(F(scales))], attrs, opset=11)
    if ctm != "tf_half_pixel_for_nn":
        # 7 -> 5 avoids exact .5 ties: with `sizes`, onnxruntime's asymmetric coordinates are not
        # plain float32 x/scale (7 -> 4 gives 3.4999998 here but rounds up there; see nn.py)
        check_op("Resize", [X, None, None, const(np.int64([1, 2, 11, 5]))], attrs, opset=13)


@pytest.mark.parametrize("mode", ["linear", "cubic"])
@pytest.mark.parametrize("ctm", COORDS + ["half_pixel_symmetric"])
@pytest.mark.parametrize("sizes", [[1, 2, 11, 16], [1, 2, 3, 4]])
def test_resize_linear_cubic(mode, ctm, sizes):
    opset = 19 if ctm == "half_pixel_symmetric" else 13
    attrs = {"mode": mode, "coordinate_transformation_mode": ctm}
    check_op("Resize", [X, None, None, const(np.int64(sizes))], attrs, opset=opset, rtol=1e-4, atol=1e-5)
    if opset == 13:
        check_op("Resize", [X, None, const(F([1, 1, 1.5, 0.75]))], attrs, opset=opset, rtol=1e-4, atol=1e-5)


def test_resize_cubic_options_and_5d_linear():
    attrs = {"mode": "cubic", "cubic_coeff_a": -0.5, "exclude_outside": 1}
    check_op("Resize", [X, None, const(F([1, 1, 2.2, 1.6]))], attrs, opset=13, rtol=1e-4, atol=1e-5)
    x5 = np.random.default_rng(1).standard_normal((1, 1, 3, 4, 5)).astype(F)
    check_op("Resize", [x5, None, const(F([1, 1, 2, 1.5, 0.8]))], {"mode": "linear"}, opset=13,
             rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("mode", ["nearest", "linear"])
def test_resize_tf_crop_and_resize(mode):
    roi = const(F([0, 0, 0.2, 0.1, 1, 1, 1.3, 0.8]))
    attrs = {"mode": mode, "coordinate_transformation_mode": "tf_crop_and_resize", "extrapolation_value": -3.0}
    check_op("Resize", [X, roi, EMPTY, const(np.int64([1, 2, 6, 9]))], attrs, opset=11, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("policy", ["stretch", "not_larger", "not_smaller"])
def test_resize_opset18_axes_policy(policy):
    attrs = {"mode": "nearest", "axes": [2, 3], "keep_aspect_ratio_policy": policy}
    check_op("Resize", [X, None, None, const(np.int64([9, 10]))], attrs, opset=18)
    check_op("Resize", [X, None, const(F([2.0, 0.5]))], {"mode": "linear", "axes": [-1, 2]}, opset=18,
             rtol=1e-4, atol=1e-5)


def test_resize_uint8_nearest():
    q = np.random.default_rng(2).integers(0, 256, (1, 3, 4, 4)).astype(np.uint8)
    check_op("Resize", [q, None, const(F([1, 1, 2, 2]))], {"mode": "nearest"}, opset=13)


def test_resize_same_shape_is_a_copy():
    # onnxruntime copies the input when the output shape equals the input shape (scale 1.1 on 2)
    x = np.random.default_rng(3).standard_normal((1, 1, 2, 3)).astype(F)
    check_op("Resize", [x, None, const(F([1, 1, 1.1, 1.1]))],
             {"mode": "nearest", "coordinate_transformation_mode": "asymmetric", "nearest_mode": "floor"}, opset=13)
    check_op("Resize", [x, None, const(F([1, 1, 1.1, 2]))],
             {"mode": "nearest", "coordinate_transformation_mode": "asymmetric", "nearest_mode": "floor"}, opset=13)
