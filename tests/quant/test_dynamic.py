"""Dynamic quantisation (no calibration data): numpy reference == onnxruntime (QDQ ONNX) ==
C runtime (.dse), bit for bit, and accuracy against float.

The arithmetic is docs/quant-arith.md §12: per-inference range (ONNX DynamicQuantizeLinear's
float32 rule), int8 input, exact int32 accumulator with int8 per-channel weights, float32
rescale then float32 bias. The QDQ file stores the weights as uint8 with zero point 128, so
onnxruntime takes its exact u8u8 kernels even on x86 without VNNI (u8s8 saturates there:
K >= 2 with large codes is enough, which the big-K cases below would expose).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

from dsedge.api import load_graph, quantize, save_result
from dsedge.export.dse import load_dse_graph
from dsedge.interp import execute
from dsedge.quant import arith
from dsedge.quant.quantize import sqnr_db

ROOT = Path(__file__).resolve().parents[2]
DIGITS = ROOT / "models" / "digits"


def _model(path, nodes, inits, x_shape, y_name="y", opset=13):
    g = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, list(x_shape))],
                          [helper.make_tensor_value_info(y_name, TensorProto.FLOAT, None)],
                          [numpy_helper.from_array(v, k) for k, v in inits.items()])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", opset)])
    m.ir_version = 8
    Path(path).write_bytes(m.SerializeToString())
    return path


def _session(path):
    so = ort.SessionOptions()
    so.log_severity_level = 3
    return ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])


def _inputs(rng, shape):
    """Inputs covering the range rule's cases: mixed signs, all >= 0, all <= 0, all zero, an
    offset range, tiny and huge magnitudes."""
    yield (rng.normal(size=shape) * 2).astype(np.float32)
    yield np.abs(rng.normal(size=shape)).astype(np.float32)
    yield -np.abs(rng.normal(size=shape) * 50).astype(np.float32)
    yield np.zeros(shape, np.float32)
    yield (rng.normal(size=shape) + 7).astype(np.float32)
    yield (rng.normal(size=shape) * 1e-6).astype(np.float32)
    yield (rng.normal(size=shape) * 1e4).astype(np.float32)


def test_dynamic_qparams_match_onnx_dynamicquantizelinear():
    path_m = helper.make_model(helper.make_graph(
        [helper.make_node("DynamicQuantizeLinear", ["x"], ["q", "s", "z"])], "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, None)],
        [helper.make_tensor_value_info(n, t, None) for n, t in
         (("q", TensorProto.UINT8), ("s", TensorProto.FLOAT), ("z", TensorProto.UINT8))]),
        opset_imports=[helper.make_opsetid("", 13)])
    sess = ort.InferenceSession(path_m.SerializeToString(), providers=["CPUExecutionProvider"])
    rng = np.random.default_rng(0)
    for k, x in enumerate(_inputs(rng, (3, 257))):
        q, s, z = sess.run(None, {"x": x})
        s_ref, zp = arith.dynamic_qparams(x)
        assert np.float32(s) == s_ref, k
        assert int(z) - 128 == zp, k
        np.testing.assert_array_equal(q.astype(np.int16) - 128, arith.quantize(x, s_ref, zp))


def _build(tmp_path, kind):
    rng = np.random.default_rng({"matmul": 1, "gemm": 2, "gemm_t": 3, "conv": 4, "convg": 5, "bigk": 6}[kind])
    w = lambda *s: (rng.normal(size=s) * 0.3).astype(np.float32)   # noqa: E731
    if kind == "matmul":        # 3-D x, constant 2-D right operand, a following bias Add
        nodes = [helper.make_node("MatMul", ["x", "W"], ["t"]), helper.make_node("Add", ["t", "B"], ["y"])]
        return _model(tmp_path / "m.onnx", nodes, {"W": w(24, 13), "B": w(13)}, (2, 5, 24)), (2, 5, 24)
    if kind in ("gemm", "gemm_t"):
        tb = int(kind == "gemm_t")
        nodes = [helper.make_node("Gemm", ["x", "W", "B"], ["t"], transB=tb), helper.make_node("Relu", ["t"], ["y"])]
        W = w(11, 40) if tb else w(40, 11)
        return _model(tmp_path / "g.onnx", nodes, {"W": W, "B": w(11)}, (3, 40)), (3, 40)
    if kind == "conv":          # padded, strided, dilated conv + relu, then a 1-D-bias-free conv
        nodes = [helper.make_node("Conv", ["x", "W1", "B1"], ["a"], pads=[1, 2, 1, 0], strides=[2, 1]),
                 helper.make_node("Relu", ["a"], ["r"]),
                 helper.make_node("Conv", ["r", "W2"], ["y"], pads=[2, 2, 2, 2], dilations=[2, 2])]
        return _model(tmp_path / "c.onnx", nodes, {"W1": w(6, 3, 3, 3), "B1": w(6), "W2": w(5, 6, 3, 3)},
                      (2, 3, 9, 11)), (2, 3, 9, 11)
    if kind == "convg":         # grouped / depthwise
        nodes = [helper.make_node("Conv", ["x", "W1", "B1"], ["a"], group=4, pads=[1, 1, 1, 1]),
                 helper.make_node("Conv", ["a", "W2"], ["y"], group=8, kernel_shape=[3, 3], strides=[2, 2])]
        return _model(tmp_path / "cg.onnx", nodes, {"W1": w(8, 2, 3, 3), "B1": w(8), "W2": w(8, 1, 3, 3)},
                      (1, 8, 10, 10)), (1, 8, 10, 10)
    # big K with extreme codes: u8s8 kernels without VNNI would saturate here
    W = np.where(rng.random((4096, 6)) < 0.5, 1.0, -1.0).astype(np.float32)
    nodes = [helper.make_node("MatMul", ["x", "W"], ["y"])]
    return _model(tmp_path / "k.onnx", nodes, {"W": W}, (2, 4096)), (2, 4096)


KINDS = ["matmul", "gemm", "gemm_t", "conv", "convg", "bigk"]


@pytest.mark.parametrize("kind", KINDS)
def test_reference_onnxruntime_and_c_agree_bit_for_bit(tmp_path, kind):
    from dsedge.runtime import Runtime
    path, shape = _build(tmp_path, kind)
    res = quantize(str(path), None, progress=False)
    assert any(p.precision == "int8-dynamic" for p in res.plan)
    qdq, dse = tmp_path / "q.onnx", tmp_path / "q.dse"
    save_result(res, qdq)
    save_result(res, dse)
    sess, fsess = _session(qdq), _session(path)
    dg = load_dse_graph(dse)
    rng = np.random.default_rng(7)
    with Runtime(str(dse)) as rt:
        for k, x in enumerate(_inputs(rng, shape)):
            if kind == "bigk" and k == 0:
                x = np.where(rng.random(shape) < 0.5, 3.0, -3.0).astype(np.float32)   # codes near +-127
            ref = execute(res.graph, {"x": x})[0]
            np.testing.assert_array_equal(sess.run(None, {"x": x})[0].view(np.uint32), ref.view(np.uint32),
                                          err_msg=f"onnxruntime vs reference, input {k}")
            np.testing.assert_array_equal(execute(dg, {"x": x})[0].view(np.uint32), ref.view(np.uint32),
                                          err_msg=f".dse graph vs reference, input {k}")
            np.testing.assert_array_equal(rt.run({"x": x})["y"].view(np.uint32), ref.view(np.uint32),
                                          err_msg=f"C runtime vs reference, input {k}")
            if k == 0:   # mixed-sign input: close to float (8-bit input, 8-bit weights)
                assert sqnr_db(fsess.run(None, {"x": x})[0], ref) > 30, kind


def test_digits_dynamic_accuracy(tmp_path):
    """The seed model quantised without calibration: C runtime == onnxruntime, >= 35 dB, top-1
    accuracy within 1 % of float."""
    from dsedge.runtime import Runtime
    res = quantize(str(DIGITS / "model.onnx"), None, progress=False)
    save_result(res, tmp_path / "d.onnx")
    save_result(res, tmp_path / "d.dse")
    e = np.load(DIGITS / "eval.npz")
    f, q = _session(DIGITS / "model.onnx"), _session(tmp_path / "d.onnx")
    ys_f, ys_q = [], []
    with Runtime(str(tmp_path / "d.dse")) as rt:
        for x in e["image"][:120]:
            yq = q.run(None, {"image": x})[0]
            np.testing.assert_array_equal(rt.run({"image": x})["logits"], yq)
            ys_f.append(f.run(None, {"image": x})[0])
            ys_q.append(yq)
    yf, yq = np.concatenate(ys_f), np.concatenate(ys_q)
    assert sqnr_db(yf, yq) > 35
    lab = e["label"][:120]
    assert (yq.argmax(1) == lab).mean() >= (yf.argmax(1) == lab).mean() - 0.01


def test_keep_float_and_non_weighted_ops_stay_float(tmp_path):
    path, _ = _build(tmp_path, "conv")
    g = load_graph(path)
    from dsedge.quant.dynamic import quantize_dynamic
    from dsedge.quant.quantize import QuantConfig
    names = [n.name for n in quantize_dynamic(g, QuantConfig(progress=False)).graph.nodes]
    res = quantize_dynamic(g, QuantConfig(progress=False, keep_float=(names[-1],)))
    prec = {p.name: p.precision for p in res.plan}
    assert prec[names[-1]] == "fp32" and list(prec.values()).count("int8-dynamic") == 1


def _mutated(src, dst, *, scale=None, drop_scratch=False, drop_dynamic=False):
    """The artifact at src with the first dynamic node's w_scale set to `scale`, or without
    scratch, or without its `dynamic` attribute."""
    import dataclasses
    from dsedge.artifact import TensorAttr, read, write
    a = read(src)
    k = next(i for i, n in enumerate(a.nodes) if dict(n.attrs).get("dynamic") == 1)
    n = a.nodes[k]
    tensors, nodes = list(a.tensors), list(a.nodes)
    if scale is not None:
        ti = dict(n.attrs)["w_scale"].index
        t = tensors[ti]
        tensors[ti] = dataclasses.replace(t, data=np.full(t.shape, scale, np.float32).tobytes())
    if drop_dynamic:
        nodes[k] = dataclasses.replace(n, attrs=tuple((key, v) for key, v in n.attrs if key != "dynamic"))
    kw = {"scratch_size": 0} if drop_scratch else {}
    b = dataclasses.replace(a, tensors=tuple(tensors), nodes=tuple(nodes), **kw)
    write(b, dst)
    assert isinstance(dict(n.attrs)["w_scale"], TensorAttr)
    return dst


@pytest.mark.parametrize("how, words", [({"scale": 0.0}, "w_scale"), ({"scale": float("nan")}, "w_scale"),
                                        ({"drop_scratch": True}, "scratch"),
                                        ({"drop_dynamic": True}, "dse_f32_matmul__ref")])
def test_c_loader_refuses_malformed_dynamic_nodes(tmp_path, how, words):
    from dsedge.errors import DseError
    from dsedge.runtime import Runtime
    path, _ = _build(tmp_path, "matmul")
    res = quantize(str(path), None, progress=False)
    save_result(res, tmp_path / "ok.dse")
    bad = _mutated(tmp_path / "ok.dse", tmp_path / "bad.dse", **how)
    with pytest.raises(DseError) as e:
        Runtime(str(bad))
    assert words in str(e.value) and "MatMul" in str(e.value)


def test_summary_says_when_nothing_was_quantised(tmp_path):
    from dsedge.api import quantize_summary
    nodes = [helper.make_node("Relu", ["x"], ["y"])]
    path = _model(tmp_path / "r.onnx", nodes, {}, (2, 3))
    s = quantize_summary(quantize(str(path), None, progress=False), path)
    assert s["dynamic"] and "stays float" in s["hint"] and "--calib" in s["hint"]
    s = quantize_summary(quantize(str(_build(tmp_path, "gemm")[0]), None, progress=False))
    assert "int8" in s["hint"] and "run time" in s["hint"]


def test_transformer_encoder_dynamic(tmp_path):
    """A small transformer (MatMul with 3-D activations, LayerNorm, Softmax in float between):
    the dynamic model within 35 dB of float in onnxruntime and in the C runtime, and the two
    within float-kernel tolerance of each other (> 100 dB; the int8 parts are bit-exact)."""
    import dsedge.zoo as zoo
    from dsedge.runtime import Runtime
    tr = zoo.build("transformer_encoder", seq=8, dim=32, heads=2, layers=1, vocab=50)
    (tmp_path / "m.onnx").write_bytes(tr.SerializeToString())
    res = quantize(str(tmp_path / "m.onnx"), None, progress=False)
    assert sum(p.precision == "int8-dynamic" for p in res.plan) >= 4
    save_result(res, tmp_path / "q.onnx")
    save_result(res, tmp_path / "q.dse")
    feeds = zoo.random_feeds(tr, 8, seed=1)
    f, q = _session(tmp_path / "m.onnx"), _session(tmp_path / "q.onnx")
    name = f.get_outputs()[0].name
    a, b, c = [], [], []
    with Runtime(str(tmp_path / "q.dse")) as rt:
        for i in range(8):
            fd = {k: v[i] for k, v in feeds.items()}
            a.append(f.run(None, fd)[0])
            b.append(q.run(None, fd)[0])
            c.append(rt.run(fd)[name])
    a, b, c = map(np.concatenate, (a, b, c))
    assert sqnr_db(a, b) > 35 and sqnr_db(a, c) > 35 and sqnr_db(b, c) > 100


def test_dynamic_dse_same_bytes_on_arm64_under_qemu(tmp_path):
    """The dynamic kernels' float32 range/scale arithmetic gives the same bytes on arm64 (a
    cross-compiled bundle's dsedge-run under qemu) as on the host."""
    import shutil
    import subprocess
    from dsedge.export.bundle import export_bundle
    from dsedge.runtime import Runtime
    if shutil.which("qemu-aarch64") is None:
        pytest.skip("qemu-aarch64 is not installed (apt-get install qemu-user)")
    res = quantize(str(DIGITS / "model.onnx"), None, progress=False)
    save_result(res, tmp_path / "d.dse")
    try:
        export_bundle(tmp_path / "d.dse", tmp_path / "b", target="arm64")
    except Exception as e:   # no cross compiler on this machine
        pytest.skip(f"no arm64 bundle: {e}")
    x = -np.abs(np.load(DIGITS / "eval.npz")["image"][5].astype(np.float32)) * 3 + 1   # an offset range
    np.save(tmp_path / "x.npy", x)
    with Runtime(str(tmp_path / "d.dse")) as rt:
        want = rt.run({"image": x})["logits"]
    p = subprocess.run(["qemu-aarch64", str(tmp_path / "b" / "bin" / "dsedge-run"), str(tmp_path / "b" / "model.dse"),
                        "--input", f"image={tmp_path / 'x.npy'}", "--output-dir", str(tmp_path / "o")],
                       capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stderr
    assert np.load(tmp_path / "o" / "logits.npy").tobytes() == want.tobytes()
