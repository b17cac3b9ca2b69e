"""ddddocr's common_old.onnx (an onnxruntime `quantize_dynamic` model: DynamicQuantizeLinear,
ConvInteger, MatMulInteger, com.microsoft DynamicQuantizeLSTM, int32 bias arithmetic) in the
C runtime, built as benchmarks/latency.py builds `ddddocr/common_old@w160`: OCR lines rendered
offline (tests/models/devmodels.py) at a fixed width of 160, the fp32 .dse and the default
int8 .dse of `dsedge.quantize`.

Each .dse run by `dsedge.Runtime` gives the interpreter's bytes on the same exported graph
(every op of this model has an exact REF kernel, or a float one whose bytes happen to agree
here: the check is exact, the float tolerance is the fallback), and is close to onnxruntime's
float output of the original model (SQNR; onnxruntime's own u8 x s8 kernels on x86 without
VNNI saturate, so exactness against it is not expected; the per-node exactness of the
reference is tests/models/test_dev_float.py::test_common_old_nodes_match_onnxruntime_given_its_inputs).
"""
from __future__ import annotations

import numpy as np
import onnxruntime as ort
import pytest

from tests.models import devmodels as dm

MODELS = dm.dev_models()
pytestmark = pytest.mark.skipif("ddddocr/common_old" not in MODELS, reason="ddddocr 1.6.1 is not installed")
WIDTH = 160


def _fixed_width(feeds):
    out = []
    for f in feeds:
        x = f["input1"]
        w = x.shape[-1]
        x = x[..., :WIDTH] if w >= WIDTH else np.concatenate([x, np.repeat(x[..., -1:], WIDTH - w, -1)], -1)
        out.append({"input1": np.ascontiguousarray(x)})
    return out


def _sqnr_db(ref, got) -> float:
    ref, got = np.asarray(ref, np.float64), np.asarray(got, np.float64).reshape(np.shape(ref))
    err = float(np.sum((ref - got) ** 2))
    return float("inf") if err == 0 else 10 * np.log10(float(np.sum(ref * ref)) / err)


@pytest.mark.parametrize("precision", ["fp32", "int8"])
def test_common_old_runs_in_c_like_the_interpreter(tmp_path, precision):
    from dsedge.api import quantize, save_result
    from dsedge.export.dse import load_dse_graph
    from dsedge.interp import execute
    from dsedge.runtime import Runtime

    path = dm.model_path("ddddocr/common_old")
    feeds = _fixed_width(dm.calibration_feeds("ddddocr/common_old", 3, seed=0))
    calib, feed = feeds[:2], feeds[2]
    res = quantize(path, calib if precision == "int8" else None, precision=precision, progress=False)
    dse = tmp_path / f"common_old.{precision}.dse"
    save_result(res, dse, input_shapes={"input1": list(feed["input1"].shape)})

    so = ort.SessionOptions()
    so.log_severity_level = 3
    sess = ort.InferenceSession(path, so, providers=["CPUExecutionProvider"])
    ref = sess.run(None, feed)[0]
    g = load_dse_graph(dse)
    interp = np.asarray(execute(g, feed)[0])
    with Runtime(str(dse)) as rt:
        got = np.asarray(next(iter(rt.run(feed).values())))
    assert got.shape == interp.shape
    if not np.array_equal(got.view(np.uint32), interp.view(np.uint32)):
        np.testing.assert_allclose(got, interp, rtol=1e-4, atol=1e-5)
    assert _sqnr_db(ref, got) > 30, _sqnr_db(ref, got)
    # the recognised text (argmax per time step) agrees with onnxruntime's almost everywhere
    assert np.mean(got.reshape(ref.shape).argmax(-1) == ref.argmax(-1)) >= 0.9
