"""Loop against onnxruntime: constant trip count, while loops (cond only), trip count with the
cond input absent, scan outputs, outer-scope reads, zero iterations,
early exit, opsets 11-21."""
import numpy as np
import pytest
from onnx import TensorProto, helper, numpy_helper

from tests.onnx_check import assert_close, run_dsedge, run_ort

F, I64, B = TensorProto.FLOAT, TensorProto.INT64, TensorProto.BOOL


def _model(nodes, inputs, outputs, opset, inits=()):
    g = helper.make_graph(nodes, "t", inputs, outputs, initializer=list(inits))
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", opset)])
    m.ir_version = 8 if opset <= 18 else 9
    return m


def _check(m, feeds):
    exp = run_ort(m, feeds)
    got, _ = run_dsedge(m, feeds)
    assert len(got) == len(exp)
    for a, b in zip(got, exp):
        assert_close(a, b, rtol=1e-6, atol=1e-6, what="Loop")
    return got


def _acc_body(cond_out_node=None):
    """acc_out = acc_in + x * float(i); scan = acc_out; cond_out = cond_in (or a given node)."""
    nodes = [helper.make_node("Cast", ["i"], ["fi"], to=F),
             helper.make_node("Mul", ["x", "fi"], ["xi"]),
             helper.make_node("Add", ["acc_in", "xi"], ["acc_out"]),
             helper.make_node("Identity", ["acc_out"], ["scan"])]
    nodes.append(cond_out_node or helper.make_node("Identity", ["cond_in"], ["cond_out"]))
    return helper.make_graph(
        nodes, "body",
        [helper.make_tensor_value_info("i", I64, []), helper.make_tensor_value_info("cond_in", B, []),
         helper.make_tensor_value_info("acc_in", F, None)],
        [helper.make_tensor_value_info("cond_out", B, []), helper.make_tensor_value_info("acc_out", F, None),
         helper.make_tensor_value_info("scan", F, None)])


x = np.random.default_rng(0).standard_normal((2, 3)).astype(np.float32)
IN = [helper.make_tensor_value_info("x", F, [2, 3]), helper.make_tensor_value_info("acc0", F, [2, 3])]
OUT = [helper.make_tensor_value_info("acc", F, None), helper.make_tensor_value_info("scans", F, None)]


@pytest.mark.parametrize("opset", [11, 13, 16, 21])
@pytest.mark.parametrize("trips", [1, 5])
def test_for_loop_with_scan(opset, trips):
    m = _model([helper.make_node("Loop", ["M", "c", "acc0"], ["acc", "scans"], body=_acc_body())], IN, OUT, opset,
               [numpy_helper.from_array(np.array(trips, np.int64), "M"), numpy_helper.from_array(np.array(True), "c")])
    got = _check(m, {"x": x, "acc0": x})
    assert got[1].shape == (trips, 2, 3)


def test_trip_count_without_cond_input_still_honours_body_cond():
    # the ONNX text calls the body condition "ignored" here; onnxruntime stops after one trip
    body = _acc_body(helper.make_node("Constant", [], ["cond_out"], value=numpy_helper.from_array(np.array(False))))
    m = _model([helper.make_node("Loop", ["M", "", "acc0"], ["acc", "scans"], body=body)], IN, OUT, 13,
               [numpy_helper.from_array(np.array(4, np.int64), "M")])
    got = _check(m, {"x": x, "acc0": x})
    assert got[1].shape[0] == 1


@pytest.mark.parametrize("limit", [0.5, 3.0, 100.0])
def test_while_loop_data_dependent(limit):
    # cond only (no M): continue while sum(acc) < limit; x positive so it ends
    body = _acc_body(helper.make_node("Less", ["s", "lim"], ["cond_out"]))
    body.node.insert(3, helper.make_node("ReduceSum", ["acc_out"], ["s"], keepdims=0))
    body.initializer.append(numpy_helper.from_array(np.float32(limit), "lim"))
    m = _model([helper.make_node("Loop", ["", "c", "acc0"], ["acc", "scans"], body=body)],
               IN + [helper.make_tensor_value_info("c", B, [])], OUT, 17)
    _check(m, {"x": np.abs(x) + 0.1, "acc0": np.zeros_like(x), "c": np.array(True)})


def test_early_exit_with_trip_count_and_zero_trips():
    body = _acc_body(helper.make_node("Less", ["i", "two"], ["cond_out"]))
    body.initializer.append(numpy_helper.from_array(np.array(2, np.int64), "two"))
    m = _model([helper.make_node("Loop", ["M", "c", "acc0"], ["acc"], body=_drop_scan(body))],
               [IN[0], IN[1], helper.make_tensor_value_info("M", I64, []), helper.make_tensor_value_info("c", B, [])],
               OUT[:1], 17)
    for trips in (10, 0):
        _check(m, {"x": x, "acc0": x, "M": np.array(trips, np.int64), "c": np.array(True)})
    _check(m, {"x": x, "acc0": x, "M": np.array(10, np.int64), "c": np.array(False)})


def _drop_scan(body):
    del body.output[2]
    return body
