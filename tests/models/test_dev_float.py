"""Every dev model (real pretrained models shipped in PyPI packages, see devmodels.py) imported
with dsedge's ONNX reader and run in the reference interpreter on 2 real feeds matches
onnxruntime within float tolerance (rtol 1e-3 / atol 1e-4, or SQNR > 60 dB), and the app-level
result (OCR text, speech decision, detected boxes) is the same. Silero's Ifs fold away once
the sample rate and input shape are pinned, without changing its outputs."""
import numpy as np
import onnxruntime as ort
import pytest

from dsedge.converters.onnx.reader import load_onnx
from dsedge.interp import run
from dsedge.ir import TensorInfo
from dsedge.passes.control import fold_if, remaining_control_flow
from dsedge.passes.shapes import infer_shapes
from tests.models import devmodels as dm

pytestmark = pytest.mark.slow
MODELS = sorted(dm.dev_models())


def _sqnr_db(ref, got) -> float:
    ref, got = np.asarray(ref, np.float64), np.asarray(got, np.float64)
    noise = np.sum((ref - got) ** 2)
    return float("inf") if noise == 0 else 10 * np.log10(max(np.sum(ref ** 2), 1e-30) / noise)


def _ort(path):
    so = ort.SessionOptions()
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    so.intra_op_num_threads = 1
    so.log_severity_level = 3
    return ort.InferenceSession(path, so, providers=["CPUExecutionProvider"])


def _close(name, k, got, exp):
    assert got.shape == exp.shape, f"{name} output {k}: shape {got.shape} != onnxruntime {exp.shape}"
    assert got.dtype == exp.dtype, f"{name} output {k}: dtype {got.dtype} != onnxruntime {exp.dtype}"
    if exp.dtype.kind != "f":
        np.testing.assert_array_equal(got, exp)
    elif not np.allclose(got, exp, rtol=1e-3, atol=1e-4):
        sqnr = _sqnr_db(exp, got)
        assert sqnr > 60, f"{name} output {k}: max |diff| {np.max(np.abs(got - exp)):.3g}, SQNR {sqnr:.1f} dB"


@pytest.mark.parametrize("name", MODELS)
def test_dev_model_float(name):
    path = dm.model_path(name)
    g = load_onnx(path)
    sess = _ort(path)
    for feed in dm.calibration_feeds(name, 2):
        exp = sess.run(None, feed)
        res = run(g, feed)
        got = [res[o] for o in g.outputs]
        for k, (a, b) in enumerate(zip(got, exp)):
            _close(name, k, a, b)
        ta, tb = dm.task_output(name, got), dm.task_output(name, exp)
        if isinstance(tb, str):
            assert ta == tb, f"{name}: OCR text {ta!r} != onnxruntime {tb!r}"
        elif name == "ddddocr/common_det":
            assert ta.shape == tb.shape and np.allclose(ta, tb, atol=0.5), f"{name}: boxes differ"
        else:
            np.testing.assert_array_equal(ta, tb, err_msg=f"{name}: speech decisions differ")


@pytest.mark.parametrize("name", [n for n in MODELS if n in ("silero/silero_vad", "silero/silero_vad_16k_op15",
                                                                "silero/silero_vad_op18_ifless")])
def test_silero_ifs_fold_with_pinned_sample_rate(name):
    g = load_onnx(dm.model_path(name))
    feeds = dm.calibration_feeds(name, 2)
    before = [run(g, f) for f in feeds]
    g.info["input"] = TensorInfo(np.dtype(np.float32), (1, 576))
    g.info["state"] = TensorInfo(np.dtype(np.float32), (2, 1, 128))
    infer_shapes(g)
    assert fold_if(g, {"sr": np.array(16000, np.int64)}) > 0
    assert remaining_control_flow(g) == []
    for f, b in zip(feeds, before):
        after = run(g, f)
        for o in g.outputs:
            np.testing.assert_array_equal(after[o], b[o])
