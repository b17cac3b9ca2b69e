"""Upsample (opset 7 attribute scales, opset 9 input scales) against onnxruntime."""
import numpy as np
import pytest

from tests.onnx_check import check_op, const

X = np.random.default_rng(0).standard_normal((1, 2, 3, 5)).astype(np.float32)


@pytest.mark.parametrize("mode", ["nearest", "linear"])
@pytest.mark.parametrize("scales", [[1, 1, 2, 2], [1, 1, 3, 1.5], [1, 1, 1.7, 2.4]])
def test_upsample(mode, scales):
    check_op("Upsample", [X, const(np.float32(scales))], {"mode": mode}, opset=9)
    check_op("Upsample", [X], {"mode": mode, "scales": [float(v) for v in scales]}, opset=7)
