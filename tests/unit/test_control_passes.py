"""fold_if / unroll_loops: the rewritten graph has no If/Loop left where it should not, and its
outputs match both the interpreter on the original graph and onnxruntime on the original model."""
import numpy as np
import pytest
from onnx import TensorProto, helper, numpy_helper

from dsedge.converters.onnx.reader import from_model_proto
from dsedge.interp import run
from dsedge.passes.control import fold_if, remaining_control_flow, unroll_loops
from tests.onnx_check import assert_close, run_ort

F, I64, B = TensorProto.FLOAT, TensorProto.INT64, TensorProto.BOOL
x = np.random.default_rng(0).standard_normal((2, 3)).astype(np.float32)


def _model(nodes, inputs, outputs, inits=(), opset=17):
    g = helper.make_graph(nodes, "t", inputs, outputs, initializer=list(inits))
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", opset)])
    m.ir_version = 8
    return m


def _branch(name, nodes, outs, inits=()):
    return helper.make_graph(nodes, name, [], [helper.make_empty_tensor_value_info(o) for o in outs],
                             initializer=list(inits))


def _ops(g):
    return {n.op for _, n in g.walk()}


def _compare(m, feeds, rewrite):
    g = from_model_proto(m)
    before = run(g, feeds)
    changed = rewrite(g)
    after = run(g, feeds)
    exp = run_ort(m, feeds)
    for k, o in enumerate(g.outputs):
        assert_close(after[o], before[o], 0, 0, what=f"output {o} after vs before")
        assert_close(after[o], exp[k], 1e-6, 1e-6, what=f"output {o} after vs onnxruntime")
    return g, changed


def _if_model(cond_init: bool | None):
    # then: (relu(x) + w, x*2 via a nested If on a constant); else: (-x, x)
    inner_t = _branch("it", [helper.make_node("Add", ["x", "x"], ["it_o"])], ["it_o"])
    inner_e = _branch("ie", [helper.make_node("Sub", ["x", "x"], ["ie_o"])], ["ie_o"])
    then_g = _branch("then", [helper.make_node("Relu", ["x"], ["r"]), helper.make_node("Add", ["r", "w"], ["t0"]),
                              helper.make_node("If", ["k"], ["t1"], then_branch=inner_t, else_branch=inner_e)],
                     ["t0", "t1"], [numpy_helper.from_array(np.float32([1, 2, 3]), "w"),
                                    numpy_helper.from_array(np.array(True), "k")])
    else_g = _branch("else", [helper.make_node("Neg", ["x"], ["e0"]), helper.make_node("Identity", ["x"], ["e1"])],
                     ["e0", "e1"])
    nodes = [helper.make_node("If", ["c"], ["y0", "y1"], then_branch=then_g, else_branch=else_g),
             helper.make_node("Mul", ["y0", "y1"], ["z"])]
    inputs = [helper.make_tensor_value_info("x", F, [2, 3])]
    inits = []
    if cond_init is None:
        inputs.append(helper.make_tensor_value_info("c", B, []))
    else:
        inits.append(numpy_helper.from_array(np.array(cond_init), "c"))
    return _model(nodes, inputs, [helper.make_tensor_value_info("z", F, None),
                                  helper.make_tensor_value_info("y1", F, None)], inits)


@pytest.mark.parametrize("c", [True, False])
def test_fold_if_constant_condition(c):
    g, changed = _compare(_if_model(c), {"x": x}, fold_if)
    assert changed >= 1 and "If" not in _ops(g)


def test_fold_if_with_known_input_value():
    # cond = Equal(sr, 16000) with sr a graph input: folded when the caller pins sr
    then_g = _branch("then", [helper.make_node("Mul", ["x", "two"], ["t"])], ["t"],
                     [numpy_helper.from_array(np.float32(2), "two")])
    else_g = _branch("else", [helper.make_node("Neg", ["x"], ["e"])], ["e"])
    m = _model([helper.make_node("Equal", ["sr", "k16"], ["c"]),
                helper.make_node("If", ["c"], ["y"], then_branch=then_g, else_branch=else_g)],
               [helper.make_tensor_value_info("x", F, [2, 3]), helper.make_tensor_value_info("sr", I64, [])],
               [helper.make_tensor_value_info("y", F, None)], [numpy_helper.from_array(np.array(16000, np.int64), "k16")])
    feeds = {"x": x, "sr": np.array(16000, np.int64)}
    g, changed = _compare(m, feeds, lambda g: fold_if(g, {"sr": feeds["sr"]}))
    assert changed == 1 and "If" not in _ops(g)


def test_fold_if_leaves_data_dependent_condition():
    m = _if_model(None)
    g = from_model_proto(m)
    assert fold_if(g) == 1          # only the nested If on the constant k
    assert any("If" in s for s in remaining_control_flow(g))
    for c in (True, False):
        feeds = {"x": x, "c": np.array(c)}
        got, exp = run(g, feeds), run_ort(m, feeds)
        assert_close(got["z"], exp[0], 1e-6, 1e-6)


def _loop_model(trips, cond_value=True, nested=False, scan=True):
    # acc = acc + x * i (i = 0..trips-1), scan of acc; optionally an inner Loop of (i + 1) trips adding x
    body_nodes = [helper.make_node("Cast", ["i"], ["fi"], to=F), helper.make_node("Mul", ["x", "fi"], ["xi"]),
                  helper.make_node("Add", ["acc_in", "xi"], ["a1"])]
    if nested:
        inner = helper.make_graph(
            [helper.make_node("Add", ["v_in", "x"], ["v_out"]), helper.make_node("Identity", ["ci"], ["co"])], "inner",
            [helper.make_tensor_value_info("j", I64, []), helper.make_tensor_value_info("ci", B, []),
             helper.make_tensor_value_info("v_in", F, None)],
            [helper.make_tensor_value_info("co", B, []), helper.make_tensor_value_info("v_out", F, None)])
        body_nodes += [helper.make_node("Add", ["i", "one"], ["n_in"]),
                       helper.make_node("Loop", ["n_in", "", "a1"], ["acc_out"], body=inner)]
    else:
        body_nodes.append(helper.make_node("Identity", ["a1"], ["acc_out"]))
    body_nodes.append(helper.make_node("Identity", ["cond_in"], ["cond_out"]))
    outs = [helper.make_tensor_value_info("cond_out", B, []), helper.make_tensor_value_info("acc_out", F, None)]
    if scan:
        outs.append(helper.make_tensor_value_info("acc_out", F, None))
    body = helper.make_graph(body_nodes, "body",
                             [helper.make_tensor_value_info("i", I64, []), helper.make_tensor_value_info("cond_in", B, []),
                              helper.make_tensor_value_info("acc_in", F, None)], outs,
                             initializer=[numpy_helper.from_array(np.array(1, np.int64), "one")])
    louts = ["acc", "scans"] if scan else ["acc"]
    return _model([helper.make_node("Loop", ["M", "c", "x"], louts, body=body)],
                  [helper.make_tensor_value_info("x", F, [2, 3])],
                  [helper.make_tensor_value_info(o, F, None) for o in louts],
                  [numpy_helper.from_array(np.array(trips, np.int64), "M"),
                   numpy_helper.from_array(np.array(cond_value), "c")])


@pytest.mark.parametrize("trips", [1, 4])
def test_unroll_constant_trip_count(trips):
    g, changed = _compare(_loop_model(trips), {"x": x}, unroll_loops)
    assert changed == 1 and "Loop" not in _ops(g)


def test_unroll_nested_loops_and_false_cond():
    g, changed = _compare(_loop_model(3, nested=True), {"x": x}, unroll_loops)
    assert changed == 1 + 3 and "Loop" not in _ops(g)     # the outer loop, then each inner copy
    g, _ = _compare(_loop_model(3, cond_value=False, scan=False), {"x": x}, unroll_loops)
    assert "Loop" not in _ops(g)


def test_data_dependent_loop_is_left_and_reported():
    m = _loop_model(3)
    g = from_model_proto(m)
    g.consts.pop("M")                     # make M a graph input: no constant trip count
    g.inputs.append("M")
    assert unroll_loops(g) == 0
    assert remaining_control_flow(g) == ["node 'Loop_0': Loop with data-dependent trip count cannot be exported"]
    got = run(g, {"x": x, "M": np.array(3, np.int64)})
    assert_close(got["acc"], run_ort(m, {"x": x})[0], 1e-6, 1e-6)


def test_unroll_respects_max_trips():
    g = from_model_proto(_loop_model(10))
    assert unroll_loops(g, max_trips=4) == 0 and "Loop" in _ops(g)
