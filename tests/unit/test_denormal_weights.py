"""Subnormal float32 weights set to zero by the float pipeline (passes/simplify.py
flush_denormal_weights): PaddleOCR's text detector (rapidocr det) has 185,260 subnormal weights in
one 1x1 conv of 294,912, and x86 cores take a microcode assist per multiply by one (that conv:
227 ms on an Intel Xeon; 0.1 ms without). Oracles: onnxruntime on the original model (the answers
do not move), the constants themselves (which were changed, which not)."""
import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper, numpy_helper

import dsedge
from dsedge.converters.onnx.reader import load_onnx
from dsedge.passes.simplify import optimize

TINY = np.finfo(np.float32).tiny


def _model():
    rng = np.random.default_rng(0)
    w = (rng.standard_normal((16, 8, 1, 1)) * 0.3).astype(np.float32)
    w.reshape(-1)[::3] = (rng.standard_normal(w.size)[::3] * 1e-39).astype(np.float32)   # subnormal
    w.reshape(-1)[1] = -1e-40
    m = rng.standard_normal((16, 4)).astype(np.float32)
    m[0, :] = 5e-41                                                                          # subnormal
    eps = np.full((16,), 1e-40, np.float32)          # an Add's operand, not a weight: kept
    g = helper.make_graph(
        [helper.make_node("Conv", ["x", "w"], ["c"]),
         helper.make_node("Add", ["c", "eps"], ["c2"]),
         helper.make_node("Transpose", ["c2"], ["t"], perm=[0, 2, 3, 1]),
         helper.make_node("MatMul", ["t", "m"], ["y"])],
        "denormals", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 8, 6, 6])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 6, 6, 4])],
        initializer=[numpy_helper.from_array(w, "w"), numpy_helper.from_array(m, "m"),
                     numpy_helper.from_array(eps.reshape(1, 16, 1, 1), "eps")])
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)]), w, m


def test_subnormal_weights_become_signed_zeros_and_nothing_else_changes():
    model, w, m = _model()
    g = load_onnx(model.SerializeToString())
    rep: dict = {}
    optimize(g, report=rep)
    want = int(np.count_nonzero((w != 0) & (np.abs(w) < TINY))) + int(np.count_nonzero((m != 0) & (np.abs(m) < TINY)))
    assert rep["denormal_weights_flushed"] == want > 0
    conv = next(n for n in g.nodes if n.op == "Conv")
    w2 = g.consts[conv.inputs[1]]
    sub = (w != 0) & (np.abs(w) < TINY)
    assert np.all(w2[sub] == 0) and np.array_equal(np.signbit(w2[sub]), np.signbit(w[sub]))
    assert np.array_equal(w2[~sub], w[~sub])                                   # normal weights untouched
    eps = [v for v in g.consts.values() if v.size == 16 and np.all(v == np.float32(1e-40))]
    assert eps, "a subnormal constant that is not a weight must stay"


def test_a_model_with_subnormal_weights_gives_the_same_answers(tmp_path):
    model, _, _ = _model()
    onnx.save(model, tmp_path / "m.onnx")
    rng = np.random.default_rng(1)
    feeds = [{"x": rng.standard_normal((1, 8, 6, 6)).astype(np.float32)} for _ in range(4)]
    r = dsedge.quantize(str(tmp_path / "m.onnx"), feeds, precision="fp32", progress=False)
    assert r.info["denormal_weights_flushed"] > 0
    from dsedge.api import quantize_summary
    from dsedge.report import format_quantize
    s = quantize_summary(r)
    assert s["denormal_weights_flushed"] == r.info["denormal_weights_flushed"]
    assert "subnormal float32 weights (|w| < 2^-126) set to zero" in format_quantize(dict(s, seconds=0.1))
    r.save(str(tmp_path / "m.dse"))
    sess = ort.InferenceSession(str(tmp_path / "m.onnx"), providers=["CPUExecutionProvider"])
    with dsedge.Runtime(str(tmp_path / "m.dse")) as rt:
        for f in feeds:
            np.testing.assert_allclose(rt.run(f)["y"], sess.run(None, f)[0], rtol=1e-5, atol=1e-6)
