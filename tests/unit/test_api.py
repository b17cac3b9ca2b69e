"""The Python API: dsedge.load / dsedge.quantize / result.save / result.summary."""
import numpy as np
import onnxruntime as ort

import dsedge
from dsedge.zoo import digits_dir


def test_quantize_api_roundtrip(tmp_path):
    d = digits_dir()
    g = dsedge.load(d / "model.onnx")
    assert isinstance(g, dsedge.Graph) and "image" in g.inputs
    calib = np.load(d / "calib.npz")["image"]
    res = dsedge.quantize(g, [{"image": x} for x in calib[:16]], progress=False)
    s = res.summary()
    assert s["nodes_by_precision"]["int8"] >= 2 and s["output_sqnr_db"]["logits"] > 30
    out = tmp_path / "m.onnx"
    res.save(out)
    y = ort.InferenceSession(str(out)).run(None, {"image": calib[0]})[0]
    x = ort.InferenceSession(str(d / "model.onnx")).run(None, {"image": calib[0]})[0]
    assert y.shape == x.shape and y.argmax() == x.argmax()


def test_precisions(tmp_path):
    d = digits_dir()
    calib = [{"image": x} for x in np.load(d / "calib.npz")["image"][:8]]
    e = np.load(d / "eval.npz")
    ref = ort.InferenceSession(str(d / "model.onnx"))
    for prec, min_db in (("fp32", 100), ("fp16", 50)):
        res = dsedge.quantize(d / "model.onnx", calib, precision=prec, progress=False)
        out = tmp_path / f"{prec}.onnx"
        res.save(out)
        s = ort.InferenceSession(str(out))
        a = np.concatenate([ref.run(None, {"image": x})[0] for x in e["image"][:50]])
        b = np.concatenate([s.run(None, {"image": x})[0] for x in e["image"][:50]])
        snr = 10 * np.log10(np.sum(a.astype(np.float64) ** 2) / max(np.sum((a - b).astype(np.float64) ** 2), 1e-300))
        assert snr > min_db, (prec, snr)
    assert out.stat().st_size < (d / "model.onnx").stat().st_size * 0.75  # fp16 weights are half the bytes


def test_keep_float_by_name_and_type():
    d = digits_dir()
    calib = [{"image": x} for x in np.load(d / "calib.npz")["image"][:8]]
    res = dsedge.quantize(d / "model.onnx", calib, keep_float=["Gemm", "conv1"], progress=False)
    prec = {p.name: (p.op, p.precision, p.reason) for p in res.plan}
    assert prec["conv1"][1] == "fp32" and prec["conv1"][2] == "--keep-float"
    assert all(v[1] == "fp32" for v in prec.values() if v[0] == "Gemm")
    assert any(v[1].startswith("int8") for v in prec.values())
