"""The quantisation-kind registry (dsedge/quant/kinds/): every op's QuantRule names a registered
kind, unknown kinds are clear errors, and every kind's `.dse` decoding inverts its encoding
(the `_q` read back from an exported file is the `_q` that was exported)."""
from dataclasses import replace

import numpy as np
import pytest
from onnx import TensorProto, helper, numpy_helper

from dsedge.converters.onnx.reader import load_onnx
from dsedge.errors import DseError
from dsedge.export import export, load_dse_graph
from dsedge.ir import Node
from dsedge.ops import REGISTRY
from dsedge.quant import kinds
from dsedge.quant.dynamic import quantize_dynamic
from dsedge.quant.quantize import QuantConfig, quantize_graph


def test_every_quant_rule_names_a_registered_kind():
    for d in REGISTRY.all():
        if d.quant is not None:
            assert d.quant.kind in kinds.KINDS, d.name
            assert kinds.KINDS[d.quant.kind].base is None, d.name
            assert all(f in kinds.KINDS and kinds.KINDS[f].base is None for f in d.quant.forms), d.name
    assert kinds.KINDS["dynamic"].base == "weighted"
    assert REGISTRY.get("MatMul").quant.forms == ("act_matmul",)
    assert all(k.name == name for name, k in kinds.KINDS.items())


def test_unknown_kind_is_a_clear_error():
    with pytest.raises(DseError, match="unknown quantisation kind 'int3'"):
        kinds.kind("int3")
    n = Node("Relu", ["x"], ["y"], {"_q": {"kind": "int3"}}, "r")
    with pytest.raises(DseError, match="node 'r'.*unknown quantisation kind 'int3'"):
        kinds.run_int(n, [np.zeros(2, np.int8)])
    with pytest.raises(ValueError, match="declared twice"):
        kinds.register_kind(type(kinds.KINDS["table"]))


def _model(rng):
    inits = []

    def const(name, v):
        inits.append(numpy_helper.from_array(np.asarray(v), name))
        return name

    def w(name, *shape, s=0.3):
        return const(name, (rng.standard_normal(shape) * s).astype(np.float32))

    N = helper.make_node
    nodes = [
        N("Conv", ["x", w("w1", 8, 3, 3, 3), w("b1", 8)], ["a"], pads=[1, 1, 1, 1]),
        N("Conv", ["x", w("w2", 8, 3, 1, 1), w("b2", 8)], ["b"]),
        N("Mul", ["a", "b"], ["mul"]),                                                  # mul
        N("Tanh", ["mul"], ["t"]),                                                      # table
        N("MatMul", ["a", "b"], ["mm"]),                                                # act_matmul (int8 out)
        N("MatMul", ["b", "a"], ["mm2"]),                                               # act_matmul (float out)
        N("Add", ["t", "mm"], ["s"]),                                                   # add
        N("ReduceMax", ["s", const("ax1", np.array([1], np.int64))], ["rmx"], keepdims=1),   # minmax
        N("Concat", ["rmx", "s"], ["cat"], axis=1),                                     # concat
        N("Pad", ["cat", const("pads", np.array([0, 0, 1, 1, 0, 0, 1, 1], np.int64))], ["pd"]),   # bytes
        N("AveragePool", ["pd"], ["ap"], kernel_shape=[3, 3]),                          # avgpool (windows)
        N("Conv", ["ap", w("w3", 4, 9, 3, 3, s=0.15), w("b3", 4)], ["c3"], pads=[1, 1, 1, 1]),
        N("ReduceMean", ["c3", const("ax2", np.array([1], np.int64))], ["rm"], keepdims=0),  # avgpool (axes)
        N("Reshape", ["rm", const("shp", np.array([1, 64], np.int64))], ["flat"]),
        N("Gemm", ["flat", w("wg", 64, 16, s=0.1), w("bg", 16)], ["g1"]),
        N("Softmax", ["g1"], ["sm"], axis=-1),                                          # softmax
        N("Gemm", ["sm", w("wo", 16, 10), w("bo", 10)], ["y"]),
    ]
    g = helper.make_graph(nodes, "kinds", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 8, 8])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 10]),
                           helper.make_tensor_value_info("mm2", TensorProto.FLOAT, [1, 8, 8, 8])], inits)
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", 18)])


def _same(a, b) -> bool:
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    if a is None or b is None:
        return a is None and b is None
    return np.array_equal(np.asarray(a), np.asarray(b))


def test_every_kind_decodes_what_it_encodes():
    rng = np.random.default_rng(0)
    g = load_onnx(_model(rng).SerializeToString())
    feeds = [{"x": rng.standard_normal((1, 3, 8, 8)).astype(np.float32)} for _ in range(4)]
    loose = QuantConfig(max_loss_db=60.0, good_db=0.0, min_round_db=0.0, progress=False)
    seen, fout = set(), set()
    w4g = replace(loose, weight_bits=4, weight_group=32)                   # W4A8 with group multipliers
    w4c = replace(loose, node_weight_bits=(("Conv", 4),))                   # W4A8 per channel, Conv only
    a16 = replace(loose, a16w8_nodes=("Conv", "Gemm"))                       # A16W8 (int16 activations)
    for result in (quantize_graph(g.copy(), feeds, loose), quantize_dynamic(g.copy()),
                   quantize_graph(g.copy(), feeds, w4g), quantize_graph(g.copy(), feeds, w4c),
                   quantize_graph(g.copy(), feeds, a16)):
        ex = export(result, names="all")
        back = {n.name: n for n in load_dse_graph(ex.artifact).nodes}
        for n in ex.graph.nodes:
            if "_q" in n.attrs:
                seen.add(n.attrs["_q"]["kind"])
                if n.attrs["_q"].get("float_out"):
                    fout.add(n.attrs["_q"]["kind"])
                assert n.name in back and back[n.name].op == n.op
                assert _same(n.attrs["_q"], back[n.name].attrs.get("_q")), (n.name, n.attrs["_q"])
    assert seen == set(kinds.KINDS)
    assert {"weighted", "act_matmul"} <= fout
