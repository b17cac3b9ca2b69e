"""The model zoo (`dsedge.zoo`): the committed digits model and the in-repo architectures.

Oracle: onnxruntime (accuracy of the digits model, every architecture runs and produces the
declared output) and dsedge's reference interpreter must match onnxruntime on each model.
"""
from __future__ import annotations

import importlib.util

import numpy as np
import onnx
import onnxruntime as ort
import pytest

from dsedge import zoo
from dsedge.converters.onnx.reader import from_model_proto
from dsedge.interp import run

ARCH_NAMES = ["mobilenet_v2", "resnet50", "yolo_detector", "transformer_encoder"]


def _session(m: onnx.ModelProto) -> ort.InferenceSession:
    so = ort.SessionOptions()
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    so.log_severity_level = 3
    return ort.InferenceSession(m.SerializeToString(), so, providers=["CPUExecutionProvider"])


def _recipe():
    spec = importlib.util.spec_from_file_location("digits_recipe", zoo.digits_dir() / "recipe.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _declared_shape(vi) -> list[int]:
    return [d.dim_value for d in vi.type.tensor_type.shape.dim]


# ----------------------------------------------------------------------------- digits
def test_digits_files_small_and_well_formed():
    d = zoo.digits_dir()
    assert sum((d / f).stat().st_size for f in ("model.onnx", "calib.npz", "eval.npz")) < 1_000_000
    m = zoo.load_digits_model()
    onnx.checker.check_model(m)
    assert m.opset_import[0].version == 13
    assert [i.name for i in m.graph.input] == ["image"] and _declared_shape(m.graph.input[0]) == [1, 1, 8, 8]
    assert [o.name for o in m.graph.output] == ["logits"] and _declared_shape(m.graph.output[0]) == [1, 10]
    assert "BatchNormalization" in {n.op_type for n in m.graph.node}
    meta = {p.key: p.value for p in m.metadata_props}
    assert meta["labels"].split(",") == [str(i) for i in range(10)] and "preprocess" in meta
    calib, ev = zoo.digits_calib(), zoo.digits_eval()
    assert calib["image"].shape == (64, 1, 1, 8, 8) and calib["image"].dtype == np.float32
    assert ev["image"].shape[1:] == (1, 1, 8, 8) and ev["label"].shape == ev["image"].shape[:1]
    for x in (calib["image"], ev["image"]):
        assert x.min() >= 0.0 and x.max() <= 1.0
    # calibration images come from the training side: none of them is in the test split
    test_rows = {r.tobytes() for r in ev["image"]}
    assert not any(r.tobytes() in test_rows for r in calib["image"])


def test_digits_accuracy_onnxruntime():
    sess, ev = _session(zoo.load_digits_model()), zoo.digits_eval()
    pred = np.array([sess.run(None, {"image": x})[0].argmax() for x in ev["image"]])
    acc = float((pred == ev["label"]).mean())
    assert acc >= 0.95, f"digits float accuracy {acc:.4f} < 0.95"


def test_digits_interp_matches_onnxruntime():
    m, ev = zoo.load_digits_model(), zoo.digits_eval()
    sess, g = _session(m), from_model_proto(m)
    for x in ev["image"][:20]:
        np.testing.assert_allclose(run(g, {"image": x})["logits"], sess.run(None, {"image": x})[0],
                                   rtol=1e-4, atol=1e-4)


def test_digits_recipe_deterministic_short():
    rec = _recipe()
    a, acc_a = rec.build(epochs=2)
    b, acc_b = rec.build(epochs=2)
    assert set(a) == {"model.onnx", "calib.npz", "eval.npz"}
    assert a == b and acc_a == acc_b
    # the data files do not depend on training: they must equal the committed ones
    for name in ("calib.npz", "eval.npz"):
        assert a[name] == (zoo.digits_dir() / name).read_bytes(), name
    # a 2-epoch model is a different (valid) model
    assert a["model.onnx"] != (zoo.digits_dir() / "model.onnx").read_bytes()
    onnx.checker.check_model(onnx.load_from_string(a["model.onnx"]))


@pytest.mark.slow
def test_digits_recipe_rebuilds_committed_model():
    files, acc = _recipe().build()
    assert files["model.onnx"] == (zoo.digits_dir() / "model.onnx").read_bytes()
    assert acc >= 0.95


# ----------------------------------------------------------------------------- architectures
def test_names_and_unknown():
    assert zoo.names() == ["digits", *ARCH_NAMES]
    with pytest.raises(KeyError, match="unknown zoo model 'nope'"):
        zoo.build("nope")


@pytest.fixture(scope="module")
def built():
    return {name: zoo.build(name) for name in ARCH_NAMES}


@pytest.mark.slow
@pytest.mark.parametrize("name", ARCH_NAMES)
def test_arch_checker_and_onnxruntime(built, name):
    m = built[name]
    onnx.checker.check_model(m)
    feeds = zoo.random_feeds(m, 2, seed=0)
    sess = _session(m)
    outs = [sess.run(None, {k: v[i] for k, v in feeds.items()})[0] for i in range(2)]
    for o in outs:
        assert list(o.shape) == _declared_shape(m.graph.output[0])
        assert np.all(np.isfinite(o))
    # the output depends on the input (weights and BN stats keep activations alive)
    assert not np.allclose(outs[0], outs[1], rtol=1e-3, atol=1e-3 * np.abs(outs[0]).max())


@pytest.mark.slow
@pytest.mark.parametrize("name", ARCH_NAMES)
def test_arch_interp_matches_onnxruntime(built, name):
    m = built[name]
    feeds = {k: v[0] for k, v in zoo.random_feeds(m, 1, seed=3).items()}
    exp = _session(m).run(None, feeds)[0]
    g = from_model_proto(m)
    got = run(g, feeds)[g.outputs[0]]
    assert got.shape == exp.shape and got.dtype == exp.dtype
    np.testing.assert_allclose(got, exp, rtol=1e-3, atol=1e-4 * max(1.0, float(np.abs(exp).max())))


@pytest.mark.slow
def test_arch_structure():
    mb = zoo.build("mobilenet_v2", num_classes=10, input_size=96, width=0.5)
    ops = [n.op_type for n in mb.graph.node]
    assert _declared_shape(mb.graph.output[0]) == [1, 10]
    assert "Clip" in ops and "BatchNormalization" in ops
    assert any(a.name == "group" and a.i > 1 for n in mb.graph.node if n.op_type == "Conv" for a in n.attribute)
    rn = zoo.build("resnet50", input_size=64, num_classes=7)
    assert sum(n.op_type == "Conv" for n in rn.graph.node) == 53 and _declared_shape(rn.graph.output[0]) == [1, 7]
    yo = zoo.build("yolo_detector", input_size=160, num_classes=3)
    ops = {n.op_type for n in yo.graph.node}
    assert {"Sigmoid", "MaxPool", "Resize", "Concat", "Reshape", "Transpose", "Split"} <= ops
    assert "BatchNormalization" not in ops  # folded like exported detectors
    assert _declared_shape(yo.graph.output[0]) == [1, 3 * (20 * 20 + 10 * 10 + 5 * 5), 8]
    tr = zoo.build("transformer_encoder", seq=16, dim=32, heads=2, layers=1, vocab=50)
    assert {"Gather", "LayerNormalization", "Softmax", "Erf", "MatMul"} <= {n.op_type for n in tr.graph.node}
    assert _declared_shape(tr.graph.output[0]) == [1, 16, 32]
    for m in (mb, rn, yo, tr):
        feeds = {k: v[0] for k, v in zoo.random_feeds(m, 1, seed=0).items()}
        out = _session(m).run(None, feeds)[0]
        assert list(out.shape) == _declared_shape(m.graph.output[0])


def test_build_deterministic():
    kw = dict(num_classes=10, input_size=64, width=0.35)
    assert zoo.build("mobilenet_v2", **kw).SerializeToString() == zoo.build("mobilenet_v2", **kw).SerializeToString()
    assert (zoo.build("mobilenet_v2", seed=1, **kw).SerializeToString()
            != zoo.build("mobilenet_v2", **kw).SerializeToString())


def test_random_feeds_ranges():
    img = zoo.random_feeds(zoo.build("mobilenet_v2", input_size=64, width=0.35), 3, seed=0)["input"]
    assert img.shape == (3, 1, 3, 64, 64) and img.dtype == np.float32
    lo = (0 - np.array([0.485, 0.456, 0.406])) / np.array([0.229, 0.224, 0.225])
    hi = (1 - np.array([0.485, 0.456, 0.406])) / np.array([0.229, 0.224, 0.225])
    per_ch = img.transpose(2, 0, 1, 3, 4).reshape(3, -1)
    assert np.all(per_ch.min(1) >= lo - 1e-5) and np.all(per_ch.max(1) <= hi + 1e-5)
    assert img.std() > 0.3  # not a constant image
    tok = zoo.random_feeds(zoo.build("transformer_encoder", seq=16, dim=32, heads=2, layers=1, vocab=50), 4, 1)
    assert tok["tokens"].shape == (4, 1, 16) and tok["tokens"].dtype == np.int64
    assert tok["tokens"].min() >= 0 and tok["tokens"].max() < 50
    a = zoo.random_feeds(zoo.load_digits_model(), 2, seed=5)["image"]
    assert a.shape == (2, 1, 1, 8, 8) and 0 <= a.min() and a.max() <= 1
    np.testing.assert_array_equal(a, zoo.random_feeds(zoo.load_digits_model(), 2, seed=5)["image"])
