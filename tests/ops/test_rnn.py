"""RNN (float) against onnxruntime: directions, optional inputs, activations.
(onnxruntime refuses layout=1; the layout path is shared with LSTM/GRU and tested there.)"""
import numpy as np
import pytest

from tests.onnx_check import check_op, const

TOL = dict(rtol=1e-4, atol=1e-5)
T, B, I, H = 4, 2, 3, 5


@pytest.mark.parametrize("direction", ["forward", "reverse", "bidirectional"])
def test_rnn(direction):
    rng = np.random.default_rng(0)
    nd = 2 if direction == "bidirectional" else 1
    r = lambda *s: (rng.standard_normal(s) * 0.5).astype(np.float32)  # noqa: E731
    x, h0 = r(T, B, I), r(nd, B, H)
    ins = [x, const(r(nd, H, I)), const(r(nd, H, H)), const(r(nd, 2 * H)), np.array([3, 4], np.int32), h0]
    check_op("RNN", ins, {"hidden_size": H, "direction": direction}, opset=14, n_outputs=2, **TOL)
    check_op("RNN", ins[:3], {"hidden_size": H, "direction": direction,
                              "activations": ["Relu"] * nd}, opset=14, n_outputs=2, **TOL)
