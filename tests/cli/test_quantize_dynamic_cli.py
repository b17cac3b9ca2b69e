"""`dsedge quantize model.onnx` with no other option: dynamic quantisation, written next to
the input as model.int8.onnx, a summary that says how calibration would do better; `-o x.dse`
without --calib gives a dynamic .dse that the C runtime runs with the same results."""
import json
import shutil

import numpy as np
import onnxruntime as ort

from tests.cli.test_quantize_cli import DIGITS, ROOT, dsedge  # noqa: F401  (one way to run the CLI)


def test_quantize_without_options_writes_dynamic_model_next_to_input(tmp_path):
    model = tmp_path / "model.onnx"
    shutil.copy(DIGITS / "model.onnx", model)
    r = dsedge("quantize", "model.onnx", "--no-progress", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert "Traceback" not in r.stderr
    out = tmp_path / "model.int8.onnx"
    assert out.is_file() and sorted(p.name for p in tmp_path.iterdir()) == ["model.int8.onnx", "model.onnx"]
    assert "--calib" in r.stderr and "int8-dynamic" in r.stderr and "run time" in r.stderr
    e = np.load(DIGITS / "eval.npz")
    f, q = ort.InferenceSession(str(model)), ort.InferenceSession(str(out))
    agree = sum(int(f.run(None, {"image": x})[0].argmax() == q.run(None, {"image": x})[0].argmax())
                for x in e["image"][:50])
    assert agree >= 49


def test_quantize_dse_without_calib_is_dynamic(tmp_path):
    from dsedge.runtime import Runtime
    onnx_out, dse_out = tmp_path / "d.onnx", tmp_path / "d.dse"
    r = dsedge("quantize", DIGITS / "model.onnx", "-o", dse_out, "--json", "--no-progress")
    assert r.returncode == 0, r.stderr
    s = json.loads(r.stdout)
    assert s["dynamic"] is True and s["nodes_by_precision"]["int8-dynamic"] == 3 and "--calib" in s["hint"]
    assert dsedge("quantize", DIGITS / "model.onnx", "-o", onnx_out, "--no-progress").returncode == 0
    q = ort.InferenceSession(str(onnx_out))
    x = np.load(DIGITS / "eval.npz")["image"][0]
    with Runtime(str(dse_out)) as rt:
        np.testing.assert_array_equal(rt.run({"image": x})["logits"], q.run(None, {"image": x})[0])


def test_calibrated_summary_has_no_dynamic_hint(tmp_path):
    r = dsedge("quantize", DIGITS / "model.onnx", "--calib", DIGITS / "calib.npz", "-o", tmp_path / "c.onnx",
               "--json", "--no-progress")
    assert r.returncode == 0, r.stderr
    s = json.loads(r.stdout)
    assert s["dynamic"] is False and s["hint"] is None
