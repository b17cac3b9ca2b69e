"""LSTM (float) against onnxruntime: directions, optional inputs (B, sequence_lens, initial_h/c,
P), all three outputs, layout 0/1 (opset 14), clip, input_forget, non-default activations."""
import numpy as np
import pytest

from tests.onnx_check import check_op, const

TOL = dict(rtol=1e-4, atol=1e-5)
T, B, I, H = 5, 3, 4, 6


def _inputs(direction, seed=0, full=True, layout=0):
    rng = np.random.default_rng(seed)
    nd = 2 if direction == "bidirectional" else 1
    r = lambda *s: (rng.standard_normal(s) * 0.5).astype(np.float32)  # noqa: E731
    x = r(B, T, I) if layout else r(T, B, I)
    w, rr = const(r(nd, 4 * H, I)), const(r(nd, 4 * H, H))
    if not full:
        return [x, w, rr]
    hs = (B, nd, H) if layout else (nd, B, H)
    lens = np.array([5, 2, 4], np.int32)
    return [x, w, rr, const(r(nd, 8 * H)), lens, r(*hs), r(*hs), const(r(nd, 3 * H))]


@pytest.mark.parametrize("direction", ["forward", "reverse", "bidirectional"])
@pytest.mark.parametrize("full", [False, True])
def test_lstm(direction, full):
    check_op("LSTM", _inputs(direction, full=full), {"hidden_size": H, "direction": direction},
             opset=7 if not full else 13, n_outputs=3, **TOL)


def test_lstm_opset14():
    check_op("LSTM", _inputs("bidirectional", 1), {"hidden_size": H, "direction": "bidirectional", "layout": 0},
             opset=14, n_outputs=3, **TOL)


def test_lstm_clip_input_forget_activations():
    ins = _inputs("forward", 2)
    check_op("LSTM", ins, {"hidden_size": H, "clip": 0.7, "input_forget": 1}, opset=14, n_outputs=3, **TOL)
    check_op("LSTM", ins, {"hidden_size": H, "activations": ["HardSigmoid", "LeakyRelu", "Tanh"],
                           "activation_alpha": [0.3, 0.2], "activation_beta": [0.4]}, opset=14, n_outputs=3, **TOL)


def test_lstm_layout1_matches_layout0():
    # onnxruntime refuses layout=1 ("Batchwise recurrent operations are not supported"), so the
    # oracle is onnxruntime on the layout-0 twin, with inputs and outputs transposed.
    from tests.onnx_check import assert_close, make_model, run_dsedge, run_ort
    x, w, r, b, lens, h0, c0, p = _inputs("bidirectional", 3)
    attrs = {"hidden_size": H, "direction": "bidirectional"}
    exp = run_ort(make_model("LSTM", [x, w, r, b, lens, h0, c0, p], attrs, opset=14, n_outputs=3),
                  {"in0": x, "in4": lens, "in5": h0, "in6": c0})
    xt, h0t, c0t = x.swapaxes(0, 1), h0.swapaxes(0, 1), c0.swapaxes(0, 1)
    m = make_model("LSTM", [xt, w, r, b, lens, h0t, c0t, p], dict(attrs, layout=1), opset=14, n_outputs=3)
    got, _ = run_dsedge(m, {"in0": xt, "in4": lens, "in5": h0t, "in6": c0t})
    assert_close(got[0], exp[0].transpose(2, 0, 1, 3), **TOL)
    assert_close(got[1], exp[1].swapaxes(0, 1), **TOL)
    assert_close(got[2], exp[2].swapaxes(0, 1), **TOL)
