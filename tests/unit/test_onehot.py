"""passes/onehot.py: a one-hot embedding (Equal against a 0..K-1 count, Cast, MatMul by a
constant, row-wise nodes after it) becomes a Gather of precomputed rows, with the same bytes
as the nodes it replaces, for in-range and out-of-range indices, in float and in int8."""
from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from dsedge.converters.onnx.reader import from_model_proto
from dsedge.interp import execute
from dsedge.passes.onehot import onehot_to_gather
from dsedge.passes.shapes import infer_shapes
from dsedge.passes.simplify import eliminate_dead

K, N = 9, 5


def _model(tail=("Relu",), idx_last=1, count=None):
    rng = np.random.default_rng(3)
    r = np.arange(K, dtype=np.int32).reshape(1, 1, K) if count is None else count
    inits = {"r": r, "w": (rng.standard_normal((K, N)) * 2).astype(np.float32),
             "b": rng.standard_normal((1, 1, N)).astype(np.float32)}
    nodes = [helper.make_node("Equal", ["x", "r"], ["eq"]),
             helper.make_node("Cast", ["eq"], ["oh"], to=TensorProto.FLOAT),
             helper.make_node("MatMul", ["oh", "w"], ["mm"]),
             helper.make_node("Add", ["mm", "b"], ["t0"])]
    for k, op in enumerate(tail):
        nodes.append(helper.make_node(op, [f"t{k}"], [f"t{k + 1}"]))
    nodes.append(helper.make_node("Mul", [f"t{len(tail)}", f"t{len(tail)}"], ["y"]))   # not row-wise: ends the chain
    dims = [1, "n", idx_last]
    g = helper.make_graph(nodes, "onehot", [helper.make_tensor_value_info("x", TensorProto.INT32, dims)],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
                          initializer=[numpy_helper.from_array(v, k) for k, v in inits.items()])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
    m.ir_version = 8
    return m


def _feeds(last=1, n=12):
    x = np.array([0, 3, K - 1, K, -1, -7, 100, 2**31 - 1, -2**31, 5, 1, 4][:n], np.int32)
    return {"x": np.repeat(x.reshape(1, n, 1), last, axis=2)}


def _static(m, shape):
    g = from_model_proto(m)
    g.info["x"] = g.info["x"].with_shape(shape)
    infer_shapes(g)
    return g


def test_rewrite_same_bytes_float():
    m = _model(tail=("Relu", "Neg"))
    g = _static(m, (1, 12, 1))
    before = execute(g, _feeds())[0]
    assert onehot_to_gather(g) == 1
    eliminate_dead(g)                 # the Equal and Cast nobody reads any more
    ops = [n.op for n in g.nodes]
    assert "MatMul" not in ops and "Equal" not in ops and "Relu" not in ops and ops[-2:] == ["Gather", "Mul"]
    after = execute(g, _feeds())[0]
    assert after.dtype == before.dtype and np.array_equal(after.view(np.uint32), before.view(np.uint32))


def test_chain_stops_before_transcendentals():
    """C's tanh is within an ulp of numpy's, not the same bytes: the table ends before it."""
    g = _static(_model(tail=("Tanh",)), (1, 12, 1))
    before = execute(g, _feeds())[0]
    assert onehot_to_gather(g) == 1
    assert [n.op for n in g.nodes][-3:] == ["Gather", "Tanh", "Mul"]
    assert np.array_equal(execute(g, _feeds())[0], before)


@pytest.mark.parametrize("case", ["wide_index", "not_a_count", "dynamic"])
def test_not_a_one_hot(case):
    if case == "wide_index":        # Equal of [.., K] against the count: elementwise, not one-hot
        g = _static(_model(idx_last=K), (1, 12, K))
    elif case == "not_a_count":
        g = _static(_model(count=np.arange(1, K + 1, dtype=np.int32).reshape(1, 1, K)), (1, 12, 1))
    else:                           # the index's last extent unknown: wait for specialisation
        g = from_model_proto(_model(idx_last="k"))
        infer_shapes(g)
    assert onehot_to_gather(g) == 0


def test_int8_dse_same_bytes(tmp_path, monkeypatch):
    """End to end: quantised (the MatMul lowered to int8 with a float output) and exported, the
    .dse with the lookup gives the bytes of the .dse without it (the rewrite disabled in both
    place that runs it: export's specialisation)."""
    import importlib

    import dsedge
    from dsedge.api import save_result
    from dsedge.runtime import Runtime
    src = tmp_path / "m.onnx"
    onnx.save(_model(tail=("Relu",)), src)
    rng = np.random.default_rng(1)
    calib = [{"x": rng.integers(-2, K + 2, (1, 12, 1)).astype(np.int32)} for _ in range(4)]
    for name in ("lookup", "plain"):
        if name == "plain":
            monkeypatch.setattr(importlib.import_module("dsedge.export.specialize"), "onehot_to_gather", lambda g: 0)
        for prec in ("int8", "fp32"):
            r = dsedge.quantize(str(src), calib, precision=prec, progress=False)
            save_result(r, tmp_path / f"{name}_{prec}.dse")
    for prec in ("int8", "fp32"):
        rp, rl = Runtime(str(tmp_path / f"plain_{prec}.dse")), Runtime(str(tmp_path / f"lookup_{prec}.dse"))
        for f in [_feeds()] + calib:
            a, b = rp.run(f), rl.run(f)
            for k in a:
                assert np.array_equal(np.asarray(a[k]).view(np.uint8), np.asarray(b[k]).view(np.uint8)), (prec, k)
        assert (tmp_path / f"lookup_{prec}.dse").stat().st_size != (tmp_path / f"plain_{prec}.dse").stat().st_size
