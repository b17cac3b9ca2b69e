"""If against onnxruntime: both branches, outer-scope reads, branches whose outputs differ in
shape, branch outputs that are outer tensors or branch constants, nested Ifs, data-dependent
conditions, opsets 11-21."""
import numpy as np
import pytest
from onnx import TensorProto, helper, numpy_helper

from tests.onnx_check import assert_close, run_dsedge, run_ort

F = TensorProto.FLOAT


def _model(nodes, inputs, outputs, opset, inits=()):
    g = helper.make_graph(nodes, "t", inputs, outputs, initializer=list(inits))
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", opset)])
    m.ir_version = 8 if opset <= 18 else 9
    return m


def _branch(name, nodes, outs, inits=()):
    return helper.make_graph(nodes, name, [], [helper.make_empty_tensor_value_info(o) for o in outs],
                             initializer=list(inits))


def _check(m, feeds):
    exp = run_ort(m, feeds)
    got, _ = run_dsedge(m, feeds)
    assert len(got) == len(exp)
    for a, b in zip(got, exp):
        assert_close(a, b, what="If")


x = np.random.default_rng(0).standard_normal((2, 3)).astype(np.float32)


@pytest.mark.parametrize("opset", [11, 13, 16, 21])
@pytest.mark.parametrize("c", [True, False])
def test_outer_scope_and_shapes_differ(opset, c):
    # then: x + 1 (shape [2, 3]); else: a constant made inside the branch, shape [4]
    then_g = _branch("then", [helper.make_node("Add", ["x", "one"], ["t_out"])], ["t_out"],
                     [numpy_helper.from_array(np.float32(1), "one")])
    else_g = _branch("else", [helper.make_node("Constant", [], ["e_out"],
                                               value=numpy_helper.from_array(np.arange(4, dtype=np.float32)))],
                     ["e_out"])
    m = _model([helper.make_node("If", ["c"], ["y"], then_branch=then_g, else_branch=else_g)],
               [helper.make_tensor_value_info("c", TensorProto.BOOL, []), helper.make_tensor_value_info("x", F, [2, 3])],
               [helper.make_tensor_value_info("y", F, None)], opset)
    _check(m, {"c": np.array(c), "x": x})


@pytest.mark.parametrize("c", [True, False])
def test_two_outputs_outer_passthrough_and_nested(c):
    # then: (x, x*2); else: a nested If on c2 choosing (x - 1) or (-x), then (its result, x)
    then_g = _branch("then", [helper.make_node("Add", ["x", "x"], ["t1"]), helper.make_node("Identity", ["x"], ["t0"])],
                     ["t0", "t1"])
    inner_t = _branch("it", [helper.make_node("Sub", ["x", "k"], ["it_o"])], ["it_o"],
                      [numpy_helper.from_array(np.float32(1), "k")])
    inner_e = _branch("ie", [helper.make_node("Neg", ["x"], ["ie_o"])], ["ie_o"])
    else_g = _branch("else", [helper.make_node("If", ["c2"], ["e0"], then_branch=inner_t, else_branch=inner_e),
                              helper.make_node("Identity", ["x"], ["e1"])], ["e0", "e1"])
    m = _model([helper.make_node("If", ["c"], ["y0", "y1"], then_branch=then_g, else_branch=else_g)],
               [helper.make_tensor_value_info("c", TensorProto.BOOL, [1]),
                helper.make_tensor_value_info("c2", TensorProto.BOOL, []), helper.make_tensor_value_info("x", F, [2, 3])],
               [helper.make_tensor_value_info("y0", F, None), helper.make_tensor_value_info("y1", F, None)], 17)
    for c2 in (True, False):
        _check(m, {"c": np.array([c]), "c2": np.array(c2), "x": x})


def test_condition_computed_in_graph():
    # cond = ReduceSum(x) > 0 decides between Relu(x) and Sigmoid(x) — data dependent
    then_g = _branch("then", [helper.make_node("Relu", ["x"], ["a"])], ["a"])
    else_g = _branch("else", [helper.make_node("Sigmoid", ["x"], ["b"])], ["b"])
    nodes = [helper.make_node("ReduceSum", ["x"], ["s"], keepdims=0),
             helper.make_node("Greater", ["s", "zero"], ["c"]),
             helper.make_node("If", ["c"], ["y"], then_branch=then_g, else_branch=else_g)]
    m = _model(nodes, [helper.make_tensor_value_info("x", F, [2, 3])], [helper.make_tensor_value_info("y", F, None)],
               13, [numpy_helper.from_array(np.float32(0), "zero")])
    _check(m, {"x": x})
    _check(m, {"x": -np.abs(x)})


def test_branch_returns_outer_tensor_directly():
    # valid ONNX that onnxruntime refuses to load; the oracle is the same model with an Identity
    def build(direct):
        then_g = _branch("then", [] if direct else [helper.make_node("Identity", ["x"], ["t0"])],
                         ["x" if direct else "t0"])
        else_g = _branch("else", [helper.make_node("Neg", ["x"], ["e0"])], ["e0"])
        return _model([helper.make_node("If", ["c"], ["y"], then_branch=then_g, else_branch=else_g)],
                      [helper.make_tensor_value_info("c", TensorProto.BOOL, []),
                       helper.make_tensor_value_info("x", F, [2, 3])], [helper.make_tensor_value_info("y", F, None)], 17)
    for c in (True, False):
        feeds = {"c": np.array(c), "x": x}
        got, _ = run_dsedge(build(True), feeds)
        assert_close(got[0], run_ort(build(False), feeds)[0], what="If outer output")
