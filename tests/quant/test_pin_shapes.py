"""Input shapes pinned at quantisation for a .dse (quant/quantize.py `pin_constant_inputs`).

silero VAD's LSTM sits inside two Ifs on its input's rank and length. Only the exporter fixed
input shapes, so those Ifs were folded after quantisation, and what their branches held was
never calibrated, measured or planned: the LSTM stayed float32 in every plan (0.73 MB int8; with
the shapes pinned at quantisation the planner gives its weights fp16: 0.46 MB). When every
calibration feed gives each input one shape and fixing those shapes lets more If/Loop nodes fold,
the quantiser now fixes them; the exporter refuses another --input-shape with a message.
Oracle: onnxruntime on the float model."""
import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

import dsedge
from dsedge.errors import DseError


def _model(path):
    """y = If(Shape(x)[1] == 64, then: Relu(x @ A) @ W, else: ReduceMean(x) * ones(1, 10)):
    the taken branch depends only on the input's length."""
    rng = np.random.default_rng(0)
    a = numpy_helper.from_array(rng.standard_normal((64, 32)).astype(np.float32), "a")
    then = helper.make_graph([helper.make_node("MatMul", ["x", "a"], ["t1"]),
                              helper.make_node("Relu", ["t1"], ["t2"]),
                              helper.make_node("MatMul", ["t2", "w"], ["t_out"])],
                             "then", [], [helper.make_tensor_value_info("t_out", TensorProto.FLOAT, None)],
                             initializer=[a])
    other = helper.make_graph([helper.make_node("ReduceMean", ["x"], ["e1"], axes=[1], keepdims=1),
                               helper.make_node("Mul", ["e1", "ones"], ["e_out"])],
                              "else", [], [helper.make_tensor_value_info("e_out", TensorProto.FLOAT, None)])
    g = helper.make_graph(
        [helper.make_node("Shape", ["x"], ["s"]),
         helper.make_node("Gather", ["s", "one"], ["len"], axis=0),
         helper.make_node("Equal", ["len", "sixty_four"], ["c"]),
         helper.make_node("If", ["c"], ["h"], then_branch=then, else_branch=other),
         helper.make_node("Sigmoid", ["h"], ["y"])],
        "shape_if", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", "len"])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
        initializer=[numpy_helper.from_array(np.array(1, np.int64), "one"),
                     numpy_helper.from_array(np.array(64, np.int64), "sixty_four"),
                     numpy_helper.from_array(rng.standard_normal((32, 10)).astype(np.float32) * 0.2, "w"),
                     numpy_helper.from_array(np.ones((1, 10), np.float32), "ones")])
    onnx.save(helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)]), path)


def _feeds(shapes, seed=1):
    rng = np.random.default_rng(seed)
    return [{"x": rng.standard_normal(s).astype(np.float32)} for s in shapes]


def _ops(graph):
    return sorted(n.op for _, n in graph.walk())


def test_shape_if_folds_at_quantisation_and_its_branch_is_int8(tmp_path):
    _model(tmp_path / "m.onnx")
    feeds = _feeds([(1, 64)] * 24)
    r = dsedge.quantize(str(tmp_path / "m.onnx"), feeds, progress=False, pin_constant_inputs=True)
    assert r.info["pinned_shapes"] == {"x": [1, 64]}
    ops = _ops(r.graph)
    assert "If" not in ops and ops.count("MatMul") == 2, ops
    assert all(lp.precision.startswith("int8") for lp in r.plan if lp.op == "MatMul"), \
        [(lp.name, lp.op, lp.precision) for lp in r.plan]
    r.save(str(tmp_path / "m.dse"))
    sess = ort.InferenceSession(str(tmp_path / "m.onnx"), providers=["CPUExecutionProvider"])
    test = _feeds([(1, 64)] * 8, seed=7)
    with dsedge.Runtime(str(tmp_path / "m.dse")) as rt:
        got = np.stack([rt.run(f)["y"] for f in test])
    want = np.stack([sess.run(None, f)[0] for f in test])
    assert got.shape == want.shape
    sqnr = 10 * np.log10(np.sum(want ** 2) / np.sum((got - want) ** 2))
    assert sqnr > 25, sqnr       # int8 MatMuls on 64/32 inputs: about 30 dB; the else branch would give ~0 dB


def test_without_pinning_the_if_stays_and_a_qdq_model_keeps_it(tmp_path):
    _model(tmp_path / "m.onnx")
    r = dsedge.quantize(str(tmp_path / "m.onnx"), _feeds([(1, 64)] * 24), progress=False)
    assert "pinned_shapes" not in r.info
    assert "If" in _ops(r.graph)


def test_feeds_of_two_shapes_pin_nothing(tmp_path):
    _model(tmp_path / "m.onnx")
    r = dsedge.quantize(str(tmp_path / "m.onnx"), _feeds([(1, 64)] * 12 + [(2, 64)] * 12), progress=False,
                        pin_constant_inputs=True)
    assert "pinned_shapes" not in r.info
    assert "If" in _ops(r.graph)


def test_another_input_shape_at_export_is_refused_with_the_pinned_one_named(tmp_path):
    _model(tmp_path / "m.onnx")
    r = dsedge.quantize(str(tmp_path / "m.onnx"), _feeds([(1, 64)] * 24), progress=False, pin_constant_inputs=True)
    with pytest.raises(DseError) as e:
        r.save(str(tmp_path / "m.dse"), input_shapes={"x": (1, 48)})
    assert "quantised for 1x64" in str(e.value) and "1x48" in str(e.value)
    assert not (tmp_path / "m.dse").exists()
    r.save(str(tmp_path / "same.dse"), input_shapes={"x": (1, 64)})      # the pinned shape itself is fine
    assert (tmp_path / "same.dse").stat().st_size > 0


def test_shapes_stay_free_when_fixing_them_folds_nothing_more(tmp_path):
    """An If on a constant integer input (silero's sample rate) folds by its value alone: the
    input shapes are not pinned, so the exporter may still take another --input-shape."""
    from tests.cli.test_plan_pinned_cli import _model as if_on_mode
    if_on_mode(tmp_path / "m.onnx")
    rng = np.random.default_rng(2)
    feeds = [{"x": rng.standard_normal((1, 64)).astype(np.float32), "mode": np.array(1, np.int64)}
             for _ in range(16)]
    r = dsedge.quantize(str(tmp_path / "m.onnx"), feeds, progress=False, pin_constant_inputs=True)
    assert "If" not in _ops(r.graph)
    assert "pinned_shapes" not in r.info


def test_an_export_shape_other_than_the_feeds_leaves_shapes_free(tmp_path):
    """`dsedge quantize ... -o m.dse --input-shape x=1x48` with feeds of 1x64: the shapes stay free
    at quantisation and the exporter folds the If for 1x48 (the else branch), as before."""
    _model(tmp_path / "m.onnx")
    r = dsedge.quantize(str(tmp_path / "m.onnx"), _feeds([(1, 64)] * 24), progress=False, pin_constant_inputs=True,
                        input_shapes={"x": (1, 48)})
    assert "pinned_shapes" not in r.info and "If" in _ops(r.graph)
    r.save(str(tmp_path / "m.dse"), input_shapes={"x": (1, 48)})
    sess = ort.InferenceSession(str(tmp_path / "m.onnx"), providers=["CPUExecutionProvider"])
    f = _feeds([(1, 48)], seed=5)[0]
    with dsedge.Runtime(str(tmp_path / "m.dse")) as rt:
        np.testing.assert_allclose(rt.run(f)["y"], sess.run(None, f)[0], atol=1e-5)
    r = dsedge.quantize(str(tmp_path / "m.onnx"), _feeds([(1, 64)] * 24), progress=False, pin_constant_inputs=True,
                        input_shapes={"x": (1, 64)})         # the feeds' own shape: pinned
    assert r.info["pinned_shapes"] == {"x": [1, 64]}
