"""The elementwise ops are all declared once, with ids in 100-199, the documented quantisation
rules, and shape rules that broadcast symbolic dims and give comparisons a bool output."""
import numpy as np
import pytest
from onnx import TensorProto, helper

from dsedge.converters.onnx.reader import from_model_proto
from dsedge.ir import TensorInfo
from dsedge.ops import REGISTRY

TABLE = ["Relu", "Sqrt", "Exp", "Log", "Erf", "Neg", "Abs", "Reciprocal", "Floor", "Ceil", "Round", "Sign",
         "LeakyRelu", "Elu", "Selu", "Gelu", "Softplus", "Softsign", "Clip", "Sigmoid", "HardSigmoid",
         "HardSwish", "Tanh", "Sin", "Cos"]
FLOAT_ONLY = ["Div", "Pow", "Mod", "Sum", "Mean", "PRelu", "Where", "Equal", "Less", "Greater", "LessOrEqual",
              "GreaterOrEqual", "Not", "And", "Or", "Xor", "IsNaN", "IsInf"]
QUANT = {**{k: "table" for k in TABLE}, **{k: None for k in FLOAT_ONLY},
         "Add": "add", "Sub": "add", "Mul": "mul", "Min": "minmax", "Max": "minmax"}
COMPARE = ["Equal", "Less", "Greater", "LessOrEqual", "GreaterOrEqual", "And", "Or", "Xor"]


def test_all_declared_in_range_with_unique_ids():
    defs = [REGISTRY.get(name) for name in QUANT]
    assert all(d is not None for d in defs), [n for n, d in zip(QUANT, defs) if d is None]
    ids = [d.id for d in defs]
    assert len(set(ids)) == len(ids) and all(100 <= i < 200 for i in ids)
    assert REGISTRY.get("Relu").id == 100
    assert all(REGISTRY.by_id(d.id) is d for d in defs)


@pytest.mark.parametrize("name", sorted(QUANT))
def test_quant_rule(name):
    q = REGISTRY.get(name).quant
    assert (q.kind if q else None) == QUANT[name]
    if name in ("Add", "Sub", "Mul"):
        assert q.roles == ("act", "act")


def test_variadic_arity():
    for name in ("Sum", "Mean", "Min", "Max"):
        assert REGISTRY.get(name).n_inputs == (1, -1)


def test_shape_rules_symbolic():
    f32, b = np.dtype(np.float32), np.dtype(bool)
    x, y = TensorInfo(f32, ("N", 1, 4)), TensorInfo(f32, (3, 1))
    assert REGISTRY.get("Add").infer({}, [x, y], [None, None]) == [TensorInfo(f32, ("N", 3, 4))]
    for name in COMPARE:
        assert REGISTRY.get(name).infer({}, [x, y], [None, None]) == [TensorInfo(b, ("N", 3, 4))], name
    cond = TensorInfo(b, (1, 1, 1))
    assert REGISTRY.get("Where").infer({}, [cond, x, y], [None] * 3) == [TensorInfo(f32, ("N", 3, 4))]
    assert REGISTRY.get("Max").infer({}, [x, y, x], [None] * 3) == [TensorInfo(f32, ("N", 3, 4))]
    assert REGISTRY.get("IsNaN").infer({}, [x], [None]) == [TensorInfo(b, ("N", 1, 4))]
    assert REGISTRY.get("Clip").infer({}, [x, None, None], [None] * 3) == [x]
    assert REGISTRY.get("Gelu").infer({"approximate": "tanh"}, [x], [None]) == [x]


def test_dynamic_batch_model_infers_and_runs():
    vi = helper.make_tensor_value_info
    nodes = [helper.make_node("Mul", ["x", "y"], ["m"]), helper.make_node("Sigmoid", ["m"], ["s"]),
             helper.make_node("Less", ["s", "y"], ["out"])]
    g = helper.make_graph(nodes, "t", [vi("x", TensorProto.FLOAT, ["N", 3]), vi("y", TensorProto.FLOAT, [3])],
                          [vi("out", TensorProto.BOOL, None)])
    graph = from_model_proto(helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)]))
    assert graph.info["m"] == TensorInfo(np.dtype(np.float32), ("N", 3))
    assert graph.info["out"] == TensorInfo(np.dtype(bool), ("N", 3))
    from dsedge.interp import run
    x = np.array([[0.0, 1.0, -1.0]] * 2, np.float32)
    y = np.array([2.0, 0.5, 1.0], np.float32)
    np.testing.assert_array_equal(run(graph, {"x": x, "y": y})["out"], 1 / (1 + np.exp(-x * y)) < y)
