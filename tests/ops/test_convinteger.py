"""ConvInteger against onnxruntime (opset 10+): strides, pads, dilations, groups, auto_pad,
1-D/2-D, per-channel weight zero points, padding with the input zero point."""
import numpy as np
import pytest

from tests.onnx_check import assert_close, check_op, const, make_model, run_dsedge, run_ort

rng = np.random.default_rng(4)


def _u8(shape):
    return rng.integers(0, 256, shape).astype(np.uint8)


@pytest.mark.parametrize("attrs", [
    {},
    {"pads": [1, 1, 1, 1], "strides": [2, 2]},
    {"pads": [0, 2, 1, 0], "dilations": [2, 1]},
    {"auto_pad": "SAME_UPPER", "strides": [2, 2]},
    {"auto_pad": "SAME_LOWER"},
    {"auto_pad": "VALID", "strides": [1, 3]},
])
def test_conv_integer_2d(attrs):
    x = _u8((1, 3, 9, 11))
    w = _u8((4, 3, 3, 3))
    check_op("ConvInteger", [x, const(w), np.uint8(7), const(np.uint8(130))], attrs)


def test_grouped_and_depthwise():
    x = _u8((2, 4, 7, 6))
    check_op("ConvInteger", [x, const(_u8((6, 2, 3, 1))), np.uint8(100), const(np.uint8(3))],
             {"group": 2, "pads": [1, 0, 1, 0]})
    check_op("ConvInteger", [x, const(_u8((4, 1, 3, 3))), np.uint8(128)], {"group": 4, "pads": [1, 1, 1, 1]})


def test_per_channel_weight_zp_and_1d():
    # onnxruntime only runs a scalar weight zero point: the oracle is one ORT run per output channel
    x, w, zw = _u8((1, 3, 8, 8)), _u8((5, 3, 2, 2)), _u8((5,))
    exp = np.concatenate([
        run_ort(make_model("ConvInteger", [x, const(w[c:c + 1]), np.uint8(255), const(zw[c])], {"pads": [1, 1, 1, 1]}),
                {"in0": x, "in2": np.array(255, np.uint8)})[0] for c in range(5)], axis=1)
    m = make_model("ConvInteger", [x, const(w), np.uint8(255), const(zw)], {"pads": [1, 1, 1, 1]})
    got, _ = run_dsedge(m, {"in0": x, "in2": np.array(255, np.uint8)})
    assert_close(got[0], exp, what="ConvInteger per-channel zero point")
    check_op("ConvInteger", [_u8((2, 2, 13)), const(_u8((3, 2, 4)))], {"strides": [3], "pads": [2, 1]})


@pytest.mark.parametrize("opset", [10, 21])
def test_int8_weights(opset):
    x = _u8((1, 2, 5, 5))
    w = rng.integers(-128, 128, (3, 2, 3, 3)).astype(np.int8)
    check_op("ConvInteger", [x, const(w), np.uint8(17), const(np.int8(0))], {"pads": [1, 1, 1, 1]}, opset=opset)
