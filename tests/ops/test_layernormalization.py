import numpy as np
import pytest

from tests.onnx_check import check_op, const


@pytest.mark.parametrize("axis,with_bias", [(-1, True), (1, True), (2, False), (-2, True)])
def test_layer_norm(axis, with_bias):
    rng = np.random.default_rng(0)
    x = (rng.standard_normal((2, 3, 4, 5)) * 2 + 0.5).astype(np.float32)
    norm_shape = x.shape[axis % 4:]
    s = rng.standard_normal(norm_shape).astype(np.float32)
    b = const(rng.standard_normal(norm_shape).astype(np.float32)) if with_bias else None
    check_op("LayerNormalization", [x, const(s), b], {"axis": axis, "epsilon": 1e-4}, opset=17, n_outputs=3,
             rtol=1e-4, atol=1e-4)


def test_layer_norm_broadcast_scale():
    rng = np.random.default_rng(1)
    x = rng.standard_normal((3, 7)).astype(np.float32)
    check_op("LayerNormalization", [x, const(np.float32([2.0])), const(np.float32([0.5]))], opset=17,
             rtol=1e-4, atol=1e-4)
