"""The .dse exporter (dsedge/export): quantised IR -> .dse -> IR, run by the numpy interpreter,
gives byte-identical outputs to running the quantised IR directly (digits int8/fp16/fp32/mixed,
zoo yolo_detector and transformer_encoder int8, silero VAD with its If folded behind a guard
on `sr`, ddddocr OCR specialised with --input-shape); --io-dtype int8/uint8; determinism; the
attribute contract of docs/kernels.md; format overhead; the CLI (`quantize -o x.dse`,
`inspect x.dse`)."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from onnx import TensorProto, helper, numpy_helper

import dsedge
import dsedge.zoo as zoo
from dsedge.artifact import BIG_CONST, CONST, op_id, read
from dsedge.converters.onnx.reader import load_onnx
from dsedge.errors import DseError, ModelError
from dsedge.export import export, load_dse_graph, save_dse
from dsedge.interp import run
from dsedge.ops import REGISTRY
from dsedge.quant.quantize import QuantConfig, quantize_graph

ROOT = Path(__file__).resolve().parents[2]
DIGITS = ROOT / "models" / "digits"
FAST = dict(progress=False, eval_feeds=2)


def _feeds(d: dict, n: int) -> list[dict]:
    return [{k: v[i] for k, v in d.items()} for i in range(n)]


def _digits(precision="int8", keep_float=()):
    g = load_onnx(str(DIGITS / "model.onnx"))
    feeds = _feeds(zoo.digits_calib(), 16)
    return quantize_graph(g, feeds, QuantConfig(precision=precision, keep_float=keep_float, **FAST))


def _roundtrip(result, feeds, tmp_path, name="m.dse", **kw):
    """Export to a file, read it back as IR, compare outputs with the quantised IR byte for byte."""
    path = tmp_path / name
    ex = save_dse(result, path, **kw)
    g2 = load_dse_graph(path)
    for feed in feeds:
        ref = run(result.graph, feed)
        got = run(g2, {k: feed[k] for k in g2.inputs})
        for o in result.graph.outputs:
            a, b = np.asarray(ref[o]), np.asarray(got[o])
            assert a.dtype == b.dtype and a.shape == b.shape, (o, a.dtype, b.dtype, a.shape, b.shape)
            assert a.tobytes() == b.tobytes(), f"output {o}: max diff {np.max(np.abs(a.astype(float) - b))}"
    return ex, path


def _ops(art, dtype=None):
    out = []
    for n in art.nodes:
        dt = art.tensors[n.outputs[0]].dtype
        if dtype is None or dt == dtype:
            out.append(REGISTRY.by_id(n.op).name)
    return out


# -- digits: every precision ---------------------------------------------------------------

@pytest.mark.parametrize("precision,keep", [("int8", ()), ("fp16", ()), ("fp32", ()), ("int8", ("Gemm",))])
def test_digits_roundtrip(tmp_path, precision, keep):
    r = _digits(precision, keep)
    ev = _feeds(zoo.digits_eval(), 6)
    ev = [{"image": f["image"]} for f in ev]
    ex, path = _roundtrip(r, ev, tmp_path)
    art = read(path, verify_weights=True)
    ops = _ops(art)
    if precision == "int8":
        assert "Conv" in _ops(art, "int8")
        assert "QuantizeLinear" in ops
        if keep:   # the Gemm kept float: float weights, no int8 parameters
            assert "Gemm" in _ops(art, "float32")
            gemm = next(n for n in art.nodes if REGISTRY.by_id(n.op).name == "Gemm")
            assert art.tensors[gemm.inputs[1]].dtype == "float32" and gemm.attr("zp_in") is None
    if precision == "fp16":
        assert any(t.dtype == "float16" for t in art.tensors if t.storage == CONST)
        assert not any(t.dtype == "int8" for t in art.tensors)
    if precision == "fp32":
        assert not any(t.dtype in ("float16", "int8") for t in art.tensors)
    meta = art.meta
    assert meta["producer"].startswith("dsedge ")
    plan = json.loads(meta["precision_plan"])
    assert precision in plan
    assert json.loads(meta["calibration"])["feeds"] == 16
    assert "source.labels" in meta                      # the model's own metadata survives
    assert [art.tensors[i].name for i in art.inputs] == ["image"]
    assert [art.tensors[i].name for i in art.outputs] == ["logits"]


def test_same_inputs_same_bytes(tmp_path):
    a, b = _digits(), _digits()
    save_dse(a, tmp_path / "a.dse")
    save_dse(b, tmp_path / "b.dse")
    save_dse(a, tmp_path / "c.dse")
    ba, bb, bc = ((tmp_path / f).read_bytes() for f in ("a.dse", "b.dse", "c.dse"))
    assert ba == bb == bc
    # and a different flag gives a different file
    save_dse(a, tmp_path / "d.dse", io_dtype="uint8")
    assert (tmp_path / "d.dse").read_bytes() != ba


def test_overhead_small_model():
    r = _digits()
    ex = export(r)
    art = ex.artifact
    size = len(art.to_bytes())
    n_const = sum(1 for t in art.tensors if t.storage == CONST)
    overhead = size - ex.payload_bytes
    # DESIGN.md §4 / docs/format.md §7 budget below 1 MB of weights
    assert 0 < overhead <= 4096 + 24 * len(art.nodes) + 12 * n_const, (overhead, len(art.nodes), n_const)


# -- io dtype ---------------------------------------------------------------------------------

def _q(x, scale, zp, dtype):
    d = REGISTRY.get("QuantizeLinear")
    return np.asarray(d.call([x, np.float32(scale), np.asarray(zp, dtype)], {})[0])


def _add_model():
    """x -> Conv a, Conv b -> Add -> y: the Add runs in int8, so the graph output is a
    DequantizeLinear of an int8 tensor (what --io-dtype int8 removes)."""
    rng = np.random.default_rng(0)
    w1 = rng.standard_normal((4, 3, 3, 3)).astype(np.float32) * 0.3
    w2 = rng.standard_normal((4, 3, 3, 3)).astype(np.float32) * 0.3
    nodes = [helper.make_node("Conv", ["x", "w1"], ["a"], pads=[1, 1, 1, 1]),
             helper.make_node("Conv", ["x", "w2"], ["b"], auto_pad="SAME_UPPER"),
             helper.make_node("Add", ["a", "b"], ["y"])]
    g = helper.make_graph(nodes, "add", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 8, 8])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4, 8, 8])],
                          [numpy_helper.from_array(w1, "w1"), numpy_helper.from_array(w2, "w2")])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
    feeds = [{"x": rng.standard_normal((1, 3, 8, 8)).astype(np.float32)} for _ in range(8)]
    return load_onnx(m.SerializeToString()), feeds


@pytest.mark.parametrize("io", ["int8", "uint8"])
def test_io_dtype(tmp_path, io):
    g, feeds = _add_model()
    r = quantize_graph(g, feeds, QuantConfig(max_loss_db=60, **FAST))
    assert [p.precision for p in r.plan if p.op == "Add"] == ["int8"]
    ex = save_dse(r, tmp_path / "m.dse", io_dtype=io)
    art = read(tmp_path / "m.dse")
    xin, yout = art.tensors[art.inputs[0]], art.tensors[art.outputs[0]]
    assert (xin.name, yout.name) == ("x", "y")
    assert xin.dtype == io and yout.dtype == io
    assert xin.quant is not None and xin.quant.axis is None and yout.quant is not None
    assert art.meta["io_dtype"] == io
    g2 = load_dse_graph(tmp_path / "m.dse")
    rt = dsedge.Runtime(tmp_path / "m.dse")
    sx, zx = xin.quant.scales[0], xin.quant.zero_points[0]
    sy, zy = yout.quant.scales[0], yout.quant.zero_points[0]
    # the int8 twin in the float-io graph: same scale, zero point shifted by 128 for uint8
    pin = r.graph.qparams[[n for n in r.graph.nodes if n.op == "QuantizeLinear"][0].outputs[0]]
    assert np.float32(pin.scale) == np.float32(sx) and int(pin.zero_point) + (128 if io == "uint8" else 0) == zx
    for f in feeds[:3]:
        xq = _q(f["x"], sx, zx, np.uint8 if io == "uint8" else np.int8)
        assert xq.dtype == np.dtype(io)
        got = run(g2, {"x": xq})["y"]
        assert got.dtype == np.dtype(io)
        ref = run(r.graph, f)["y"]                        # float output of the float-io graph
        deq = (got.astype(np.float32) - np.float32(zy)) * np.float32(sy)
        assert deq.tobytes() == ref.tobytes()
        # the C runtime loads and runs it too (uint8 io once wrote a .dse the loader refused)
        assert rt.run({"x": xq})["y"].tobytes() == got.tobytes()
    if io == "int8":
        assert "QuantizeLinear" not in _ops(art) and "DequantizeLinear" not in _ops(art)


def test_conv_attributes_explicit(tmp_path):
    g, feeds = _add_model()
    for prec in ("int8", "fp32"):
        r = quantize_graph(g, feeds, QuantConfig(precision=prec, **FAST))
        _, path = _roundtrip(r, feeds[:2], tmp_path, f"{prec}.dse")
        art = read(path)
        convs = [n for n in art.nodes if REGISTRY.by_id(n.op).name == "Conv"]
        assert len(convs) == 2
        for n in convs:
            a = dict(n.attrs)
            assert "auto_pad" not in a
            assert a["kernel_shape"] == (3, 3) and a["strides"] == (1, 1) and a["dilations"] == (1, 1)
            assert a["pads"] == (1, 1, 1, 1) and a["group"] == 1      # SAME_UPPER resolved
            if prec == "int8":
                assert {"zp_in", "zp_out", "qmin", "qmax", "M", "shift", "float_out"} <= set(a)
                assert art.tensors[a["M"].index].dtype == "int32" and art.tensors[a["shift"].index].dtype == "int32"
                w = art.tensors[n.inputs[1]]
                assert w.dtype == "int8" and w.quant.axis == 0 and len(w.quant.scales) == 4
                assert art.tensors[n.inputs[2]].dtype == "int32"
        if prec == "int8":
            add = next(n for n in art.nodes if REGISTRY.by_id(n.op).name == "Add")
            assert {"za", "zb", "Ma", "Mb", "shift", "zp_out", "qmin", "qmax"} <= set(dict(add.attrs))


def test_data_dependent_shape_is_an_error_naming_the_node():
    nodes = [helper.make_node("Relu", ["x"], ["r"], name="relu"),
             helper.make_node("NonZero", ["r"], ["idx"], name="where_positive")]
    g = helper.make_graph(nodes, "nz", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])],
                          [helper.make_tensor_value_info("idx", TensorProto.INT64, [2, None])])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
    feeds = [{"x": np.array([[1, -1, 2, -2]], np.float32)}, {"x": np.array([[1, 1, 2, -2]], np.float32)}]
    r = quantize_graph(load_onnx(m.SerializeToString()), feeds, QuantConfig(precision="fp32", **FAST))
    with pytest.raises(ModelError, match="where_positive.*NonZero"):
        export(r)


def test_shape_arithmetic_folds():
    """Reshape to a shape computed from Shape/Gather/Concat of the input: once the input shape is
    fixed, no Shape, Gather or Concat remains, only the Reshape with a constant shape."""
    nodes = [helper.make_node("Shape", ["x"], ["s"]),
             helper.make_node("Gather", ["s", "i0"], ["n"], axis=0),
             helper.make_node("Concat", ["n", "m1"], ["shape"], axis=0),
             helper.make_node("Reshape", ["x", "shape"], ["y"])]
    g = helper.make_graph(nodes, "sh", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 3, 4])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 12])],
                          [numpy_helper.from_array(np.array([0], np.int64), "i0"),
                           numpy_helper.from_array(np.array([-1], np.int64), "m1")])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
    feeds = [{"x": np.ones((2, 3, 4), np.float32)}, {"x": np.ones((5, 3, 4), np.float32)}]
    r = quantize_graph(load_onnx(m.SerializeToString()), feeds, QuantConfig(precision="fp32", **FAST))
    with pytest.raises(DseError, match="--input-shape x="):
        export(r)
    ex = export(r, input_shapes={"x": (5, 3, 4)})
    assert _ops(ex.artifact) == ["Reshape"]
    assert ex.artifact.tensors[ex.artifact.outputs[0]].shape == (5, 12)


def test_float_elementwise_program_one_node(tmp_path):
    """A float region of arithmetic and clamps (hard swish written out, a leaky clamp) stays one
    dsedge.Elementwise node in the .dse, run by the C kernel in one pass: the bytes of the
    numpy reference, which runs the original ops one after the other; a region with a
    transcendental (SiLU) is expanded into its ops."""
    three, six, zero = (numpy_helper.from_array(np.array(v, np.float32), k) for k, v in
                        (("three", 3.0), ("six", 6.0), ("zero", 0.0)))
    nodes = [helper.make_node("Add", ["x", "three"], ["a"]), helper.make_node("Clip", ["a", "zero", "six"], ["c"]),
             helper.make_node("Mul", ["x", "c"], ["m"]), helper.make_node("Div", ["m", "six"], ["hs"]),
             helper.make_node("LeakyRelu", ["hs"], ["lr"], alpha=0.2), helper.make_node("Neg", ["lr"], ["ng"]),
             helper.make_node("HardSigmoid", ["ng"], ["y"], alpha=0.3, beta=0.4),
             helper.make_node("Sigmoid", ["x"], ["s"]), helper.make_node("Mul", ["x", "s"], ["z"])]
    g = helper.make_graph(nodes, "ew", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 3, 50])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, None),
                           helper.make_tensor_value_info("z", TensorProto.FLOAT, None)], [three, six, zero])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
    rng = np.random.default_rng(5)
    feeds = [{"x": (rng.standard_normal((2, 3, 50)) * 5).astype(np.float32)} for _ in range(2)]
    feeds[0]["x"].flat[:6] = [-0.0, 0.0, -3.0, 3.0, 1e30, -1e30]
    r = quantize_graph(load_onnx(m.SerializeToString()), feeds, QuantConfig(precision="fp32", **FAST))
    ex, path = _roundtrip(r, feeds, tmp_path)
    art = read(path)
    ew = [n for n in art.nodes if n.op == op_id("Elementwise", "dsedge")]
    assert len(ew) == 1 and ew[0].attr("program") and "Sigmoid" in _ops(art)
    rt = dsedge.Runtime(str(path))
    for f in feeds:
        ref, got = run(r.graph, f), rt.run(f)
        assert np.asarray(ref["y"]).tobytes() == np.asarray(got["y"]).tobytes()
        np.testing.assert_allclose(got["z"], ref["z"], rtol=1e-6)   # C's own sigmoid: within an ulp


# -- zoo models ------------------------------------------------------------------------------

@pytest.mark.parametrize("name,kw", [("yolo_detector", dict(input_size=128)),
                                     ("transformer_encoder", dict(seq=32, layers=2))])
@pytest.mark.slow
def test_zoo_int8_roundtrip(tmp_path, name, kw):
    m = zoo.build(name, **kw)
    g = load_onnx(m.SerializeToString())
    feeds = _feeds(zoo.random_feeds(m, 2, 0), 2)
    r = quantize_graph(g, feeds, QuantConfig(method="minmax", bias_correction=False, **FAST))
    ex, path = _roundtrip(r, feeds[:1], tmp_path)
    art = read(path)
    assert len(_ops(art, "int8")) > 10
    # a float dsedge.Elementwise reaches the runtime only as a program of the C kernel's steps
    # (ops/fused.py FLOAT_STEPS), else expanded into its ops
    assert all(art.tensors[n.outputs[0]].dtype == "int8" or n.attr("program")
               for n in art.nodes if n.op == op_id("Elementwise", "dsedge"))
    assert ex.plan.arena_size <= 1.05 * ex.plan.lower_bound
    overhead = (path.stat().st_size - ex.payload_bytes) / path.stat().st_size
    weights = sum(t.nbytes for t in art.tensors if t.storage == CONST)
    assert weights >= 1 << 20
    # DESIGN.md §4: < 1 % from 1 MB of weights (yolo_detector: 1.9 MB of weights in ~280 small
    # nodes, the tightest of the zoo; BENCHMARKS.md, "Sizes")
    assert overhead < 0.01, overhead
    # the exporter orders the tensor table so that the weight blob needs no alignment padding
    # (docs/format.md §4.4): at most 63 B after a big constant whose size is not a multiple of 64
    consts = [t for t in art.tensors if t.storage == CONST]
    ragged = sum(1 for t in consts if t.nbytes >= BIG_CONST and t.nbytes % 64)
    assert art.blob_size - sum(t.nbytes for t in consts) <= 63 * ragged + 7


# -- dev models --------------------------------------------------------------------------------

try:
    from tests.models import devmodels as dm
    DEV = dm.dev_models()
except Exception:  # pragma: no cover - PIL or the packages missing
    dm, DEV = None, {}


@pytest.mark.slow
@pytest.mark.skipif("silero/silero_vad" not in DEV, reason="silero-vad 6.2.3 is not installed")
def test_silero_if_folded_with_guard(tmp_path):
    g = load_onnx(DEV["silero/silero_vad"])
    assert any(n.op == "If" for n in g.nodes)
    feeds = dm.calibration_feeds("silero/silero_vad", 4)
    r = quantize_graph(g, feeds, QuantConfig(**FAST))
    assert r.info["constant_inputs"]["sr"] == 16000
    ex, path = _roundtrip(r, feeds, tmp_path)
    art = read(path)
    assert "If" not in _ops(art) and "Loop" not in _ops(art)
    assert [art.tensors[i].name for i in art.inputs] == ["input", "state", "sr"]
    assert art.meta["guard.sr"] == np.int64(16000).tobytes()
    assert art.tensors[art.inputs[0]].shape == (1, 576)
    # one calibration feed proves nothing about sr: no pin, and the If cannot be exported
    r1 = quantize_graph(g, feeds[:1], QuantConfig(**FAST))
    with pytest.raises(ModelError, match="If"):
        export(r1)


@pytest.mark.slow
@pytest.mark.skipif("ddddocr/common" not in DEV, reason="ddddocr 1.6.1 is not installed")
def test_ddddocr_needs_input_shape(tmp_path):
    g = load_onnx(DEV["ddddocr/common"])
    feeds = dm.calibration_feeds("ddddocr/common", 3)
    assert len({f["input1"].shape for f in feeds}) > 1          # text lines of different widths
    r = quantize_graph(g, feeds, QuantConfig(method="minmax", bias_correction=False, **FAST))
    with pytest.raises(DseError, match="--input-shape input1="):
        export(r)
    fixed = []
    for f in feeds[:2]:
        x = np.ones((1, 1, 64, 160), np.float32)
        w = min(160, f["input1"].shape[-1])
        x[..., :w] = f["input1"][..., :w]
        fixed.append({"input1": x})
    ex, path = _roundtrip(r, fixed, tmp_path, input_shapes=["input1=1x1x64x160"])
    art = read(path)
    assert art.tensors[art.inputs[0]].shape == (1, 1, 64, 160)
    assert "LSTM" in _ops(art, "float32") and "Conv" in _ops(art, "int8")
    assert ex.plan.arena_size <= 1.05 * ex.plan.lower_bound


# -- CLI ------------------------------------------------------------------------------------------

def _cli(*args):
    env = dict(os.environ)
    env.pop("DSEDGE_DEBUG", None)
    return subprocess.run([sys.executable, "-m", "dsedge.cli", *map(str, args)], capture_output=True, text=True,
                          env=env, timeout=300)


def test_cli_quantize_and_inspect_dse(tmp_path):
    out = tmp_path / "d.dse"
    r = _cli("quantize", DIGITS / "model.onnx", "--calib", DIGITS / "calib.npz", "-o", out, "--no-progress",
             "--input-shape", "image=1x1x8x8", "--io-dtype", "uint8")
    assert r.returncode == 0, r.stderr
    r = _cli("inspect", out, "--json")
    assert r.returncode == 0, r.stderr
    info = json.loads(r.stdout)
    assert info["format"] == "dse"
    assert info["inputs"][0]["name"] == "image" and info["inputs"][0]["dtype"] == "uint8"
    assert info["inputs"][0]["shape"] == [1, 1, 8, 8] and "quant" in info["inputs"][0]
    assert info["arena_bytes"] >= info["arena_lower_bound_bytes"] > 0
    assert {"producer", "precision_plan", "calibration"} <= set(info["metadata_keys"])
    assert any(k.startswith("Conv:int8") for k in info["nodes_by_op_dtype"])
    r = _cli("inspect", out)
    assert r.returncode == 0 and "arena" in r.stderr and "lower bound" in r.stderr
    # usage errors: a malformed shape, and .dse-only options on an .onnx output
    r = _cli("quantize", DIGITS / "model.onnx", "--calib", DIGITS / "calib.npz", "-o", tmp_path / "e.dse",
             "--input-shape", "image:1x8", "--no-progress")
    assert r.returncode == 2 and "--input-shape" in r.stderr and "Traceback" not in r.stderr
    r = _cli("quantize", DIGITS / "model.onnx", "--calib", DIGITS / "calib.npz", "-o", tmp_path / "e.onnx",
             "--io-dtype", "int8", "--no-progress")
    assert r.returncode == 2 and "Traceback" not in r.stderr


# -- the C runtime on exported files (the kernels are other helpers' work; one check each) -----

def _if_on_sr_model():
    then_g = helper.make_graph([helper.make_node("Relu", ["x"], ["y_then"])], "then", [],
                               [helper.make_tensor_value_info("y_then", TensorProto.FLOAT, [1, 4])])
    else_g = helper.make_graph([helper.make_node("Neg", ["x"], ["y_else"])], "else", [],
                               [helper.make_tensor_value_info("y_else", TensorProto.FLOAT, [1, 4])])
    nodes = [helper.make_node("Equal", ["sr", "k16000"], ["is16k"]),
             helper.make_node("If", ["is16k"], ["y"], then_branch=then_g, else_branch=else_g)]
    g = helper.make_graph(nodes, "guarded",
                          [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4]),
                           helper.make_tensor_value_info("sr", TensorProto.INT64, [])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])],
                          [numpy_helper.from_array(np.array(16000, np.int64), "k16000")])
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])


def _runtime():
    try:
        from dsedge.runtime import Runtime
        return Runtime
    except Exception as e:  # pragma: no cover - no C compiler
        pytest.skip(f"the C runtime cannot be built here: {e}")


def test_c_runtime_guard_refuses_other_values(tmp_path):
    Runtime = _runtime()
    g = load_onnx(_if_on_sr_model().SerializeToString())
    rng = np.random.default_rng(0)
    feeds = [{"x": rng.standard_normal((1, 4)).astype(np.float32), "sr": np.array(16000, np.int64)} for _ in range(3)]
    r = quantize_graph(g, feeds, QuantConfig(precision="fp32", **FAST))
    ex, path = _roundtrip(r, feeds, tmp_path)
    assert _ops(read(path)) == ["Relu"]                     # the If and the Equal are gone
    rt = Runtime(str(path))
    x = feeds[0]["x"]
    out = rt.run({"x": x, "sr": np.array(16000, np.int64)})["y"]
    assert out.tobytes() == np.maximum(x, 0).tobytes()
    with pytest.raises(DseError, match="sr.*specialised"):
        rt.run({"x": x, "sr": np.array(8000, np.int64)})


def test_c_runtime_digits_int8_byte_identical(tmp_path):
    Runtime = _runtime()
    r = _digits()
    path = tmp_path / "d.dse"
    save_dse(r, path)
    g2 = load_dse_graph(path)
    rt = Runtime(str(path))
    for f in _feeds(zoo.digits_eval(), 8):
        x = {"image": np.ascontiguousarray(f["image"])}
        assert rt.run(x)["logits"].tobytes() == run(g2, x)["logits"].tobytes()


@pytest.mark.slow
def test_silero_if_is_quantised_inside_for_dse(tmp_path):
    """silero_vad's convolutions sit inside an If on the `sr` input. For a .dse (which guards
    inputs pinned from the calibration feeds) the quantiser pins sr first, so the If folds and
    the convolutions run in int8; the C runtime matches the numpy reference and refuses sr=8000."""
    import json
    import subprocess
    import sys
    from tests.models import devmodels as dm
    feeds = dm.calibration_feeds("silero/silero_vad", 8)
    np.savez(tmp_path / "c.npz", **{k: np.stack([f[k] for f in feeds]) for k in feeds[0]})
    out = tmp_path / "s.dse"
    r = subprocess.run([sys.executable, "-m", "dsedge.cli", "quantize", dm.model_path("silero/silero_vad"),
                        "--calib", str(tmp_path / "c.npz"), "-o", str(out), "--json", "--no-progress"],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    s = json.loads(r.stdout)
    conv = [x for x in s["layers"] if x["op"] == "Conv"]
    assert conv and all(x["precision"].startswith("int8") for x in conv), conv
    import dsedge
    from dsedge.export import load_dse_graph
    from dsedge.interp import run
    rt = dsedge.Runtime(str(out))
    g = load_dse_graph(str(out))
    for f in feeds[:3]:
        a = rt.run(f)
        b = run(g, {k: v for k, v in f.items() if k in g.inputs})
        for k in a:
            np.testing.assert_allclose(a[k], b[k], rtol=0, atol=1e-3)   # float LSTM/sigmoid tail
    with pytest.raises(dsedge.DseError, match="sr"):
        rt.run({**feeds[0], "sr": np.array(8000, np.int64)})
