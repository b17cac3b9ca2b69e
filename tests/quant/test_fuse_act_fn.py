"""The exporter merges a float HardSwish, or a float SiLU x * Sigmoid(x) (a collapsed Elementwise,
Mul's operands in either order), into the float Conv that produces its input (export/dse.py
`_fuse_act_fn`, `.dse` INT act_fn = 1 / 2): only where the Conv stays float32 (after the quantiser
decided), never into an int8 Conv (its activation stays an int8 table) nor where the Conv's output
(or SiLU's sigmoid) has another reader or is a graph output. The fused .dse gives the unfused
graph's bytes in the C runtime (default and REF kernels: each ISA's Sigmoid bytes) and in the numpy
interpreter (load_dse_graph), and agrees with onnxruntime."""
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

CODE = {"HardSwish": 1, "SiLU": 2, "GELU": 3}
ACTS = pytest.mark.parametrize("act", ["HardSwish", "SiLU", "GELU"])


def _act(N, act, x, y, name, swap=False):
    """y = act(x) as ONNX nodes: HardSwish, SiLU as Sigmoid then Mul (Mul(s, x) with swap), or GELU
    as PyTorch exports it, x * (1 + erf(x / sqrt 2)) * 0.5 (operands swapped with swap; the
    constants are the model's initializers sqrt2, one, half)."""
    if act == "HardSwish":
        return [N("HardSwish", [x], [y], name=name)]
    if act == "GELU":
        o = (lambda a, b: [b, a]) if swap else (lambda a, b: [a, b])
        return [N("Div", [x, "sqrt2"], [f"{name}_d"], name=f"{name}_div"),
                N("Erf", [f"{name}_d"], [f"{name}_s"], name=f"{name}_erf"),
                N("Add", o(f"{name}_s", "one"), [f"{name}_a"], name=f"{name}_add"),
                N("Mul", o(x, f"{name}_a"), [f"{name}_m"], name=f"{name}_mul"),
                N("Mul", o(f"{name}_m", "half"), [y], name=name)]
    return [N("Sigmoid", [x], [f"{name}_s"], name=f"{name}_sig"),
            N("Mul", [f"{name}_s", x] if swap else [x, f"{name}_s"], [y], name=name)]


def _model(extra_reader=False, act="HardSwish", sigmoid_reader=False):
    """x -> Conv -> act -> Conv(depthwise) -> act -> Conv 1x1 -> y (and, with extra_reader, conv1's
    output also read by an Add into the output; with sigmoid_reader, SiLU hs1's Sigmoid too)."""
    rng = np.random.default_rng(3)
    inits = []

    def w(name, *shape, s=0.4):
        inits.append(numpy_helper.from_array((rng.standard_normal(shape) * s).astype(np.float32), name))
        return name

    N = helper.make_node
    nodes = [N("Conv", ["x", w("w1", 8, 3, 3, 3), w("b1", 8)], ["a"], pads=[1, 1, 1, 1], name="conv1"),
             *_act(N, act, "a", "h", "hs1"),
             N("Conv", ["h", w("w2", 8, 1, 3, 3), w("b2", 8)], ["c"], pads=[1, 1, 1, 1], group=8, name="conv2"),
             *_act(N, act, "c", "h2", "hs2", swap=True),
             N("Conv", ["h2", w("w3", 4, 8, 1, 1), w("b3", 4)], ["y0"], name="conv3")]
    if extra_reader or sigmoid_reader:
        nodes += [N("Conv", ["hs1_s" if sigmoid_reader else "a", w("w4", 4, 8, 1, 1)], ["a4"], name="conv4"),
                  N("Add", ["y0", "a4"], ["y"], name="add")]
    else:
        nodes += [N("Identity", ["y0"], ["y"], name="id")]
    inits += [numpy_helper.from_array(np.array(v, np.float32), k)
              for k, v in (("sqrt2", np.sqrt(2.0)), ("one", 1.0), ("half", 0.5))]
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


@ACTS
def test_float_conv_takes_the_activation(tmp_path, monkeypatch, act):
    m = _model(act=act)
    r = dsedge.quantize(_graph(act=act), _feeds(), precision="fp32", progress=False)
    ex = export(r)
    ops = _ops(ex.artifact)
    assert not {"HardSwish", "Sigmoid", "Mul", "Elementwise"} & {o for o, _ in ops}, ops
    assert ops.count(("FusedConv", CODE[act])) == 2 and ops.count(("Conv", None)) == 1, ops
    p = tmp_path / "fused.dse"
    ex.artifact.write(p)
    pu = tmp_path / "unfused.dse"
    exu = _unfused(monkeypatch, r, pu)
    assert sum(1 for o, _ in _ops(exu.artifact) if o in ("HardSwish", "Sigmoid", "Erf")) == 2
    feed = _feeds(1, 11)[0]
    feed["x"].reshape(-1)[7] = np.nan
    feed["x"].reshape(-1)[200:206] = [np.inf, -np.inf, 60.0, -60.0, 1e4, -1e4]   # sigmoid saturates
    for kernels in (None, "ref"):
        y, yu = _run_c(p, feed, kernels), _run_c(pu, feed, kernels)
        assert y.tobytes() == yu.tobytes(), kernels
    # the numpy interpreter on the artifact itself: the fused node gives the separate nodes' values
    back = load_dse_graph(ex.artifact)
    assert sum(1 for n in back.nodes if n.attrs.get("_act_fn") == act) == 2
    back_u = load_dse_graph(exu.artifact)
    f = _feeds(1, 12)[0]
    yb = execute(back, {back.inputs[0]: f["x"]})[0]
    assert yb.tobytes() == execute(back_u, {back.inputs[0]: f["x"]})[0].tobytes()
    ys = execute(back, {back.inputs[0]: feed["x"]})[0]   # NaN, infinities, saturation (a NaN's payload aside)
    np.testing.assert_array_equal(ys, execute(back_u, {back.inputs[0]: feed["x"]})[0])
    assert np.isnan(ys).any() and np.isfinite(ys).mean() > 0.5
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
    c = REGISTRY.get("Conv").call([x, w], {"pads": [1, 1, 1, 1]})[0]
    want = REGISTRY.get("HardSwish").call([c], {})[0]
    assert got.tobytes() == want.tobytes()
    got = d.call([x, w], {"act_fn": 2, "pads": [1, 1, 1, 1]})[0]   # SiLU: Sigmoid then Mul
    assert got.tobytes() == REGISTRY.get("Mul").call([c, REGISTRY.get("Sigmoid").call([c], {})[0]], {})[0].tobytes()


@ACTS
def test_int8_conv_keeps_its_activation(tmp_path, act):
    """An int8 Conv followed by the activation: no Conv carries act_fn, the activation is its own node
    (an int8 table, or, SiLU here, after the int8 Conv's float output, float Sigmoid and Mul before the
    next Conv's QuantizeLinear: one dsedge.ActFnQuantize node, tests/quant/test_fuse_act_fn_quantize.py),
    and the model runs as before (C against the numpy integer reference)."""
    r = dsedge.quantize(_graph(act=act), _feeds(), precision="int8", progress=False)
    ex = export(r)
    ops = _ops(ex.artifact)
    assert all(a is None for o, a in ops if o != "ActFnQuantize"), ops
    assert any(o in (act, "Elementwise", "Sigmoid", "ActFnQuantize") for o, _ in ops), ops
    assert not any(n.attrs.get("_act_fn") for n in ex.graph.nodes)
    p = tmp_path / "int8.dse"
    ex.artifact.write(p)
    f = _feeds(1, 13)[0]
    y = _run_c(p, f)
    back = load_dse_graph(ex.artifact)
    yn = execute(back, {back.inputs[0]: f["x"]})[0]
    np.testing.assert_array_equal(y, yn)


@pytest.mark.parametrize("act,kw", [("HardSwish", {"extra_reader": True}), ("SiLU", {"extra_reader": True}),
                                     ("SiLU", {"sigmoid_reader": True})])
def test_not_fused_when_the_conv_output_has_another_reader(act, kw):
    """hs1 stays separate when conv1's output (or, SiLU, hs1's Sigmoid) has another reader; hs2 is
    fused."""
    r = dsedge.quantize(_graph(act=act, **kw), _feeds(), precision="fp32", progress=False)
    ex = export(r)
    ops = _ops(ex.artifact)
    first = "HardSwish" if act == "HardSwish" else "Sigmoid"
    assert ops.count((first, None)) == 1 and ops.count(("FusedConv", CODE[act])) == 1, ops


@ACTS
def test_mixed_plan_fuses_only_float_to_float(tmp_path, act):
    """int8 plan with conv1 and conv2 kept float: conv1 takes hs1 (float conv2 reads it); hs2, whose
    only reader is the QuantizeLinear of the int8 conv3: a HardSwish is absorbed with it instead
    (one Elementwise node with an int8 output, `_fuse_quantize`, as before), a SiLU (which that
    kernel does not run) goes into conv2, the QuantizeLinear after it; no int8 node carries act_fn."""
    from dsedge.quant.quantize import QuantConfig, quantize_graph
    r = quantize_graph(_graph(act=act), _feeds(), QuantConfig(progress=False, keep_float=("conv1", "conv2")))
    ex = export(r, names="all")
    fused = [nr.name for nr in ex.artifact.nodes if dict(nr.attrs).get("act_fn") == CODE[act]]
    assert fused == (["conv1"] if act == "HardSwish" else ["conv1", "conv2"]), _ops(ex.artifact)
    int8 = [nr for nr in ex.artifact.nodes if REGISTRY.by_id(nr.op).name == "Conv"
            and ex.artifact.tensors[nr.inputs[0]].dtype == "int8"]
    assert int8 and all("act_fn" not in dict(nr.attrs) for nr in int8)
    p = tmp_path / "mixed.dse"
    ex.artifact.write(p)
    f = _feeds(1, 14)[0]
    back = load_dse_graph(ex.artifact)
    np.testing.assert_array_equal(_run_c(p, f, "ref"), execute(back, {back.inputs[0]: f["x"]})[0])


def test_act_fn_programs_and_c_codes():
    """act_fn_of recognises an ActFn's program with Mul's operands in either order and nothing
    else; the registry's codes are the C runtime's DSE_ACT_FN_* (src/internal.h)."""
    import re
    from pathlib import Path
    from dsedge.ir import Node
    from dsedge.ops.fused import act_fn_of

    def ew(*steps, result=None, consts=()):
        return Node("Elementwise", ["x"], ["y"], {"program": steps, "consts": consts,
                                                  "result": result or len(steps)}, "e", "dsedge")
    sig, x, s = ("Sigmoid", (("v", 0),), {}), ("v", 0), ("v", 1)
    assert act_fn_of(ew(sig, ("Mul", (x, s), {}))).name == "SiLU"
    assert act_fn_of(ew(sig, ("Mul", (s, x), {}))).name == "SiLU"
    assert act_fn_of(ew(sig, ("Mul", (s, s), {}))) is None                       # sigmoid(x)^2
    assert act_fn_of(ew(sig, ("Mul", (x, s), {}), ("Neg", (("v", 2),), {}))) is None
    assert act_fn_of(ew(sig, ("Mul", (x, ("c", 0)), {}), consts=(np.float32(2),))) is None
    assert act_fn_of(ew(("HardSwish", (x,), {}))).name == "HardSwish"
    assert act_fn_of(Node("HardSwish", ["x"], ["y"], {}, "h")).name == "HardSwish"
    assert act_fn_of(Node("Sigmoid", ["x"], ["y"], {}, "s")) is None
    src = (Path(dse_mod.__file__).resolve().parents[2] / "runtimes" / "c" / "src" / "internal.h").read_text()
    c = {k: int(v) for k, v in re.findall(r"DSE_ACT_FN_(\w+) = (\d+)", src) if k != "NONE"}
    assert c == {f.name.upper(): f.code for f in REGISTRY.act_fns()}
