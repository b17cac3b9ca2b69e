"""com.microsoft DynamicQuantizeLSTM against onnxruntime: forward/reverse/bidirectional,
int8 and uint8 weights, per-direction and per-column scales, initial states, batch > 1.

With batch > 1 (and hidden <= 256, or batch > 4) onnxruntime splits the batch over its
intra-op threads and quantises each slice of the hidden state separately, so its numbers
depend on the thread count; dsedge's reference is the single-thread semantics (the whole
batch quantised at once), checked against onnxruntime run with one thread. With int8 weights
onnxruntime's u8 x s8 kernels saturate on x86 without VNNI, so those cases are checked against
onnxruntime on the same op with the weights re-encoded as uint8 (`uint8_weights`: the same
integers, run by its u8 x u8 kernels, exact on every CPU). All comparisons are bit for bit.
"""
import numpy as np
import onnxruntime as ort
import pytest

from tests.onnx_check import assert_close, check_op, const, feeds_of, make_model, run_dsedge, uint8_weights

WEIGHTS = [(1, 9), (2, 11)]   # (W, its zero point), (R, its zero point)

rng = np.random.default_rng(7)


def _case(direction, wtype, per_column, T=5, B=1, I=6, H=4, init=True):
    d = 2 if direction == "bidirectional" else 1
    if wtype == np.int8:
        W = rng.integers(-127, 128, (d, I, 4 * H)).astype(np.int8)
        R = rng.integers(-127, 128, (d, H, 4 * H)).astype(np.int8)
        zw = np.zeros((d, 4 * H) if per_column else (d,), np.int8)
        zr = np.zeros_like(zw)
    else:
        W = rng.integers(0, 256, (d, I, 4 * H)).astype(np.uint8)
        R = rng.integers(0, 256, (d, H, 4 * H)).astype(np.uint8)
        zw = np.full((d, 4 * H) if per_column else (d,), 131, np.uint8)
        zr = np.full((d, 4 * H) if per_column else (d,), 120, np.uint8)
    sw = rng.uniform(0.002, 0.02, (d, 4 * H) if per_column else (d,)).astype(np.float32)
    sr = rng.uniform(0.002, 0.02, sw.shape).astype(np.float32)
    X = rng.standard_normal((T, B, I)).astype(np.float32)
    bias = (rng.standard_normal((d, 8 * H)) * 0.3).astype(np.float32)
    h0 = (rng.standard_normal((d, B, H)) * 0.5).astype(np.float32) if init else None
    c0 = (rng.standard_normal((d, B, H)) * 0.5).astype(np.float32) if init else None
    inputs = [X, const(W), const(R), const(bias), None, h0, c0, None, const(sw), const(zw), const(sr), const(zr)]
    return inputs, {"direction": direction, "hidden_size": H}


@pytest.mark.parametrize("direction", ["forward", "reverse", "bidirectional"])
@pytest.mark.parametrize("wtype", [np.int8, np.uint8])
def test_directions_and_types(direction, wtype):
    inputs, attrs = _case(direction, wtype, per_column=False)
    check_op("DynamicQuantizeLSTM", inputs, attrs, domain="com.microsoft", n_outputs=3, rtol=0, atol=0,
             oracle_inputs=uint8_weights(inputs, WEIGHTS))


@pytest.mark.parametrize("direction", ["forward", "bidirectional"])
def test_per_column_batch_no_init(direction):
    inputs, attrs = _case(direction, np.int8, per_column=True, T=7, B=3, I=9, H=8, init=False)
    oracle = uint8_weights(inputs, WEIGHTS)
    m = make_model("DynamicQuantizeLSTM", oracle, attrs, domain="com.microsoft", n_outputs=3)
    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    exp = ort.InferenceSession(m.SerializeToString(), so, providers=["CPUExecutionProvider"]).run(None, feeds_of(oracle))
    got, _ = run_dsedge(make_model("DynamicQuantizeLSTM", inputs, attrs, domain="com.microsoft", n_outputs=3),
                        feeds_of(inputs))
    for k, (a, b) in enumerate(zip(got, exp)):
        assert_close(a, b, rtol=0, atol=0, what=f"DynamicQuantizeLSTM output {k}")


def test_input_forget_and_clip():
    inputs, attrs = _case("forward", np.int8, per_column=False)
    check_op("DynamicQuantizeLSTM", inputs, {**attrs, "input_forget": 1, "clip": 0.8}, domain="com.microsoft",
             n_outputs=3, rtol=0, atol=0, oracle_inputs=uint8_weights(inputs, WEIGHTS))
