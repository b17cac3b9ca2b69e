"""GRU (float) against onnxruntime: directions, linear_before_reset, optional inputs, layout."""
import numpy as np
import pytest

from tests.onnx_check import check_op, const

TOL = dict(rtol=1e-4, atol=1e-5)
T, B, I, H = 4, 3, 5, 4


def _inputs(direction, seed=0, full=True, layout=0):
    rng = np.random.default_rng(seed)
    nd = 2 if direction == "bidirectional" else 1
    r = lambda *s: (rng.standard_normal(s) * 0.5).astype(np.float32)  # noqa: E731
    x = r(B, T, I) if layout else r(T, B, I)
    w, rr = const(r(nd, 3 * H, I)), const(r(nd, 3 * H, H))
    if not full:
        return [x, w, rr]
    return [x, w, rr, const(r(nd, 6 * H)), np.array([4, 1, 3], np.int32), r(*((B, nd, H) if layout else (nd, B, H)))]


@pytest.mark.parametrize("direction", ["forward", "reverse", "bidirectional"])
@pytest.mark.parametrize("lbr", [0, 1])
@pytest.mark.parametrize("full", [False, True])
def test_gru(direction, lbr, full):
    check_op("GRU", _inputs(direction, full=full), {"hidden_size": H, "direction": direction,
                                                    "linear_before_reset": lbr}, opset=13, n_outputs=2, **TOL)


def test_gru_clip_and_layout1():
    ins = _inputs("bidirectional", 1)
    attrs = {"hidden_size": H, "direction": "bidirectional", "clip": 0.5}
    exp = check_op("GRU", ins, attrs, opset=14, n_outputs=2, **TOL)
    # onnxruntime refuses layout=1: compare with the (checked) layout-0 result, transposed
    from tests.onnx_check import assert_close, make_model, run_dsedge
    x, h0 = ins[0].swapaxes(0, 1), ins[5].swapaxes(0, 1)
    m = make_model("GRU", [x] + ins[1:5] + [h0], dict(attrs, layout=1), opset=14, n_outputs=2)
    got, _ = run_dsedge(m, {"in0": x, "in4": ins[4], "in5": h0})
    assert_close(got[0], exp[0].transpose(2, 0, 1, 3))
    assert_close(got[1], exp[1].swapaxes(0, 1))
