"""The exporter merges a float HardSwish into the float Conv that produces its input
(export/dse.py `_fuse_act_fn`, `.dse` INT act_fn = 1): only where the Conv stays float32 (after the
quantiser decided), never into an int8 Conv (its HardSwish stays an int8 table) nor where the Conv's
output has another reader or is a graph output. The fused .dse gives the unfused graph's bytes in
the C runtime and in the numpy interpreter (load_dse_graph), and agrees with onnxruntime."""
from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

import dsedge
from dsedge.export import export, load_dse_graph
from dsedge.export import dse as dse_mod
from dsedge.interp import execute
from dsedge.ops import REGISTRY

HSWISH = REGISTRY.get("HardSwish").id
CONV = REGISTRY.get("Conv").id


def _model(extra_reader=False):
    """x -> Conv -> HardSwish -> Conv(depthwise) -> HardSwish -> Conv 1x1 -> y (and, with
    extra_reader, conv1's output also read by an Add into the output)."""
    rng = np.random.default_rng(3)
    inits = []

    def w(name, *shape, s=0.4):
        inits.append(numpy_helper.from_array((rng.standard_normal(shape) * s).astype(np.float32), name))
        return name

    N = helper.make_node
    nodes = [N("Conv", ["x", w("w1", 8, 3, 3, 3), w("b1", 8)], ["a"], pads=[1, 1, 1, 1], name="conv1"),
             N("HardSwish", ["a"], ["h"], name="hs1"),
             N("Conv", ["h", w("w2", 8, 1, 3, 3), w("b2", 8)], ["c"], pads=[1, 1, 1, 1], group=8, name="conv2"),
             N("HardSwish", ["c"], ["h2"], name="hs2"),
             N("Conv", ["h2", w("w3", 4, 8, 1, 1), w("b3", 4)], ["y0"], name="conv3")]
    if extra_reader:
        nodes += [N("Conv", ["a", w("w4", 4, 8, 1, 1)], ["a4"], name="conv4"),
                  N("Add", ["y0", "a4"], ["y"], name="add")]
    else:
        nodes += [N("Identity", ["y0"], ["y"], name="id")]
    g = helper.make_graph(nodes, "hs", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 12, 12])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4, 12, 12])], inits)
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])


def _feeds(n=4, seed=5):
    rng = np.random.default_rng(seed)
    return [{"x": (rng.standard_normal((1, 3, 12, 12)) * 2).astype(np.float32)} for _ in range(n)]


def _graph(**kw):
    from dsedge.converters.onnx.reader import load_onnx
    return load_onnx(_model(**kw).SerializeToString())


def _ops(art):
    return [(REGISTRY.by_id(nr.op).name, dict(nr.attrs).get("act_fn")) for nr in art.nodes]


def _run_c(path, feed, kernels=None):
    rt = dsedge.Runtime(str(path), **({"kernels": kernels} if kernels else {}))
    return next(iter(rt.run(feed).values()))


def _unfused(monkeypatch, r, path):
    with monkeypatch.context() as m:
        m.setattr(dse_mod, "_fuse_act_fn", lambda g: None)
        ex = export(r)
        ex.artifact.write(path)
    return ex


def test_float_conv_takes_the_hardswish(tmp_path, monkeypatch):
    m = _model()
    r = dsedge.quantize(_graph(), _feeds(), precision="fp32", progress=False)
    ex = export(r)
    ops = _ops(ex.artifact)
    assert ("HardSwish", None) not in ops, ops
    assert ops.count(("FusedConv", 1)) == 2 and ops.count(("Conv", None)) == 1, ops
    p = tmp_path / "fused.dse"
    ex.artifact.write(p)
    pu = tmp_path / "unfused.dse"
    exu = _unfused(monkeypatch, r, pu)
    assert sum(1 for o, _ in _ops(exu.artifact) if o == "HardSwish") == 2
    feed = _feeds(1, 11)[0]
    feed["x"].reshape(-1)[7] = np.nan
    for kernels in (None, "ref"):
        y, yu = _run_c(p, feed, kernels), _run_c(pu, feed, kernels)
        assert y.tobytes() == yu.tobytes(), kernels
    # the numpy interpreter on the artifact itself: the fused node gives the separate nodes' values
    back = load_dse_graph(ex.artifact)
    assert sum(1 for n in back.nodes if n.attrs.get("_act_fn") == "HardSwish") == 2
    f = _feeds(1, 12)[0]
    yb = execute(back, {back.inputs[0]: f["x"]})[0]
    yb_u = execute(load_dse_graph(exu.artifact), {back.inputs[0]: f["x"]})[0]
    assert yb.tobytes() == yb_u.tobytes()
    # onnxruntime on the float model
    import onnxruntime as ort
    e = ort.InferenceSession(m.SerializeToString(), providers=["CPUExecutionProvider"]).run(None, f)[0]
    y = _run_c(p, f)
    np.testing.assert_allclose(y, e, rtol=1e-5, atol=1e-5 * float(np.abs(e).max()))
    np.testing.assert_allclose(yb, e, rtol=1e-5, atol=1e-5 * float(np.abs(e).max()))


def test_a_fused_conv_has_its_own_op_id(tmp_path):
    """A Conv carrying act_fn is written as dsedge.FusedConv (its own op id): a runtime that does
    not know fused activations refuses it as an unknown op instead of running the Conv without
    its HardSwish. Artifacts of the one release that wrote Conv + act_fn still run the same."""
    import dataclasses
    r = dsedge.quantize(_graph(), _feeds(), precision="fp32", progress=False)
    ex = export(r)
    conv, fused = REGISTRY.get("Conv").id, REGISTRY.get("FusedConv", "dsedge").id
    assert conv != fused
    with_fn = [nr for nr in ex.artifact.nodes if dict(nr.attrs).get("act_fn")]
    assert len(with_fn) == 2 and all(nr.op == fused for nr in with_fn)
    assert all(not dict(nr.attrs).get("act_fn") for nr in ex.artifact.nodes if nr.op == conv)
    p = tmp_path / "fused.dse"
    ex.artifact.write(p)
    old = dataclasses.replace(ex.artifact, nodes=[dataclasses.replace(nr, op=conv) if nr.op == fused else nr
                                                  for nr in ex.artifact.nodes])
    po = tmp_path / "conv_act_fn.dse"
    old.write(po)
    f = _feeds(1, 21)[0]
    for kernels in (None, "ref"):
        assert _run_c(p, f, kernels).tobytes() == _run_c(po, f, kernels).tobytes(), kernels
    # the registry's FusedConv reference is the Conv's followed by the activation's
    x, w = f["x"], np.random.default_rng(4).standard_normal((8, 3, 3, 3)).astype(np.float32)
    d = REGISTRY.get("FusedConv", "dsedge")
    got = d.call([x, w], {"act_fn": 1, "pads": [1, 1, 1, 1]})[0]
    want = REGISTRY.get("HardSwish").call([REGISTRY.get("Conv").call([x, w], {"pads": [1, 1, 1, 1]})[0]], {})[0]
    assert got.tobytes() == want.tobytes()


def test_int8_conv_keeps_its_hardswish(tmp_path):
    """An int8 Conv followed by HardSwish: no act_fn anywhere, the HardSwish is its own (int8 table)
    node, and the model runs as before (C against the numpy integer reference)."""
    r = dsedge.quantize(_graph(), _feeds(), precision="int8", progress=False)
    ex = export(r)
    ops = _ops(ex.artifact)
    assert all(a is None for _, a in ops), ops
    assert any(o in ("HardSwish", "Elementwise") for o, _ in ops), ops
    assert not any(n.attrs.get("_act_fn") for n in ex.graph.nodes)
    p = tmp_path / "int8.dse"
    ex.artifact.write(p)
    f = _feeds(1, 13)[0]
    y = _run_c(p, f)
    back = load_dse_graph(ex.artifact)
    yn = execute(back, {back.inputs[0]: f["x"]})[0]
    np.testing.assert_array_equal(y, yn)


def test_not_fused_when_the_conv_output_has_another_reader():
    r = dsedge.quantize(_graph(extra_reader=True), _feeds(), precision="fp32", progress=False)
    ex = export(r)
    ops = _ops(ex.artifact)
    assert ops.count(("HardSwish", None)) == 1 and ops.count(("FusedConv", 1)) == 1, ops   # hs1 stays, hs2 is fused


def test_mixed_plan_fuses_only_float_to_float(tmp_path):
    """int8 plan with conv1 and conv2 kept float: conv1 takes hs1 (float conv2 reads it); hs2, whose
    only reader is the QuantizeLinear of the int8 conv3, is absorbed with it instead (one Elementwise
    node with an int8 output, `_fuse_quantize`, as before); no int8 node carries act_fn."""
    from dsedge.quant.quantize import QuantConfig, quantize_graph
    r = quantize_graph(_graph(), _feeds(), QuantConfig(progress=False, keep_float=("conv1", "conv2")))
    ex = export(r, names="all")
    fused = [nr.name for nr in ex.artifact.nodes if dict(nr.attrs).get("act_fn") == 1]
    assert fused == ["conv1"], _ops(ex.artifact)
    int8 = [nr for nr in ex.artifact.nodes if REGISTRY.by_id(nr.op).name == "Conv"
            and ex.artifact.tensors[nr.inputs[0]].dtype == "int8"]
    assert int8 and all("act_fn" not in dict(nr.attrs) for nr in int8)
    p = tmp_path / "mixed.dse"
    ex.artifact.write(p)
    f = _feeds(1, 14)[0]
    back = load_dse_graph(ex.artifact)
    np.testing.assert_array_equal(_run_c(p, f, "ref"), execute(back, {back.inputs[0]: f["x"]})[0])
