"""Constructs met in real models the project was not developed on (rapidocr's PP-OCR
classifier, magika), each in a small model: quantised, its QDQ file checked by onnx and run in
onnxruntime against the float model, its integer reference against the QDQ file. The QDQ file
(default format u8u8) is the integer reference's model with exact integer sums in onnxruntime on
every x86 CPU (tests/quant/test_qdq_formats.py), so the two agree to a rare requantisation tie
(onnxruntime requantises in float32); a u8s8
file on a CPU without VNNI would not (saturated sums, ~21 dB)."""
import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

import dsedge
from dsedge.api import save_result
from dsedge.interp import execute


def _model(nodes, inits, x_shape, y_name="y"):
    g = helper.make_graph(nodes, "m", [helper.make_tensor_value_info("x", TensorProto.FLOAT, x_shape)],
                          [helper.make_tensor_value_info(y_name, TensorProto.FLOAT, None)],
                          [numpy_helper.from_array(np.asarray(v, np.float32), k) for k, v in inits.items()])
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])


def _quantise_and_check(tmp_path, m, x_shape, min_sqnr):
    path = tmp_path / "m.onnx"
    onnx.save(m, path)
    rng = np.random.default_rng(0)
    feeds = [{"x": rng.standard_normal(x_shape).astype(np.float32)} for _ in range(12)]
    r = dsedge.quantize(str(path), feeds, progress=False)
    out = tmp_path / "m.int8.onnx"
    save_result(r, out)
    onnx.checker.check_model(onnx.load(out), full_check=True)
    ref_s, q_s = ort.InferenceSession(str(path)), ort.InferenceSession(str(out))
    for f in feeds[:4]:
        ref = ref_s.run(None, f)[0]
        got = q_s.run(None, f)[0]
        assert got.shape == ref.shape
        sqnr = 10 * np.log10(np.sum(ref.astype(np.float64) ** 2) / np.sum((ref - got).astype(np.float64) ** 2))
        assert sqnr > min_sqnr, sqnr
        mine = execute(r.graph, f)[0]              # the integer reference: what the C runtime computes
        assert mine.shape == ref.shape
        # the same model: 1e-3 of the range leaves room for a rare requantisation tie only
        np.testing.assert_allclose(mine, got, atol=1e-3 * float(np.abs(ref).max()))
    return r


@pytest.mark.parametrize("act", [None, "Relu"])
def test_matmul_with_constant_weights_is_a_valid_qdq_file(tmp_path, act):
    # int8 MatMul carries a bias (bias correction) in the IR; ONNX MatMul takes two inputs only
    rng = np.random.default_rng(1)
    nodes = [helper.make_node("MatMul", ["x", "w"], ["h" if act else "y"], name="fc")]
    if act:
        nodes.append(helper.make_node(act, ["h"], ["y"], name="act"))
    r = _quantise_and_check(tmp_path, _model(nodes, {"w": rng.standard_normal((16, 8)) * 0.3}, [2, 16]),
                            [2, 16], 25)
    assert any(p.name == "fc" and p.precision.startswith("int8") for p in r.plan)


def _between_matmuls(chain, consts, x_shape):
    """x -> MatMul -> chain (reads "u", writes "v") -> MatMul -> y: the chain's input and output
    are int8 activations, so its int8 form (one table) is a candidate."""
    rng = np.random.default_rng(2)
    k = x_shape[-1]
    nodes = [helper.make_node("MatMul", ["x", "w1"], ["u"], name="fc1")] + chain + \
            [helper.make_node("MatMul", ["v", "w2"], ["y"], name="fc2")]
    inits = dict(consts, w1=rng.standard_normal((k, k)) * 0.4, w2=rng.standard_normal((k, 8)) * 0.3)
    return _model(nodes, inits, x_shape)


def test_elementwise_chain_with_rank_n_one_element_constants(tmp_path):
    # gelu (tanh form) written with [[[c]]] constants, as jax2tf exports it (magika)
    c = {"a": [[[0.044715]]], "b": [[[0.7978846]]], "one": [[[1.0]]], "half": 0.5, "three": 3.0}
    chain = [helper.make_node("Pow", ["u", "three"], ["x3"]), helper.make_node("Mul", ["x3", "a"], ["ax3"]),
             helper.make_node("Add", ["u", "ax3"], ["s"]), helper.make_node("Mul", ["s", "b"], ["bs"]),
             helper.make_node("Tanh", ["bs"], ["t"]), helper.make_node("Add", ["t", "one"], ["t1"]),
             helper.make_node("Mul", ["t1", "half"], ["t2"]), helper.make_node("Mul", ["u", "t2"], ["v"])]
    r = _quantise_and_check(tmp_path, _between_matmuls(chain, c, [1, 4, 32]), [1, 4, 32], 20)
    gelu = [p for p in r.plan if p.op == "dsedge.Elementwise"]
    assert len(gelu) == 1 and gelu[0].precision == "int8", _plan(r)


def test_a_one_element_constant_of_higher_rank_broadcasts_the_output(tmp_path):
    # u is 2-D, the constant 3-D: v is 3-D. Not an elementwise function of u (no single table).
    chain = [helper.make_node("Mul", ["u", "c"], ["m"]), helper.make_node("Tanh", ["m"], ["v"])]
    r = _quantise_and_check(tmp_path, _between_matmuls(chain, {"c": [[[0.7]]]}, [4, 32]), [4, 32], 20)
    assert not any(p.op == "dsedge.Elementwise" for p in r.plan), _plan(r)


@pytest.mark.parametrize("stride", [1, 2])
def test_same_upper_conv_with_an_even_kernel_on_dynamic_shapes(tmp_path, stride):
    # PP-OCR: Conv k=2, auto_pad SAME_UPPER (pad 0 before, 1 after), input N x C x H x W unknown.
    # Stride 1: the pads do not depend on the size (int8). Stride 2: they do (stays float).
    rng = np.random.default_rng(3)
    nodes = [helper.make_node("Conv", ["x", "w1"], ["c1"], name="c1", kernel_shape=[2, 2], auto_pad="SAME_UPPER",
                              strides=[stride, stride]),
             helper.make_node("Relu", ["c1"], ["r1"]),
             helper.make_node("Conv", ["r1", "w2"], ["y"], name="c2", kernel_shape=[3, 3], pads=[1, 1, 1, 1])]
    inits = {"w1": rng.standard_normal((8, 3, 2, 2)) * 0.3, "w2": rng.standard_normal((4, 8, 3, 3)) * 0.2}
    m = _model(nodes, inits, ["N", 3, "H", "W"])
    r = _quantise_and_check(tmp_path, m, [1, 3, 12, 17], 20)
    prec = {p.name: p.precision for p in r.plan}
    assert prec["c1"].startswith("int8") == (stride == 1), _plan(r)
    dse = tmp_path / "m.dse"                  # the exporter and the C runtime take the same pads
    save_result(r, dse, input_shapes={"x": [1, 3, 12, 17]})
    f = {"x": np.random.default_rng(9).standard_normal((1, 3, 12, 17)).astype(np.float32)}
    with dsedge.Runtime(str(dse)) as rt:
        np.testing.assert_allclose(rt.run(f)["y"], execute(r.graph, f)[0], rtol=1e-5, atol=1e-5)


def test_int8_maxpool_with_same_upper_auto_pad(tmp_path):
    # PP-OCR rec's stem: MaxPool k=2, stride 1, auto_pad SAME_UPPER between int8 convs
    rng = np.random.default_rng(4)
    nodes = [helper.make_node("Conv", ["x", "w1"], ["c1"], name="c1", pads=[1, 1, 1, 1]),
             helper.make_node("Relu", ["c1"], ["r1"]),
             helper.make_node("MaxPool", ["r1"], ["p"], name="pool", kernel_shape=[2, 2], auto_pad="SAME_UPPER"),
             helper.make_node("Conv", ["p", "w2"], ["y"], name="c2", pads=[1, 1, 1, 1])]
    inits = {"w1": rng.standard_normal((8, 3, 3, 3)) * 0.3, "w2": rng.standard_normal((4, 8, 3, 3)) * 0.2}
    r = _quantise_and_check(tmp_path, _model(nodes, inits, [1, 3, 10, 13]), [1, 3, 10, 13], 20)
    assert {p.name: p.precision for p in r.plan}["pool"] == "int8", _plan(r)


def _plan(r):
    return {p.name or p.op: (p.op, p.precision, p.reason) for p in r.plan}


def test_concat_of_pixel_boxes_and_scores_stays_float(tmp_path):
    """YOLOv8's head (nudenet) concatenates box coordinates in pixels with sigmoid class scores:
    one int8 scale for both rounds every score to 0 or one step of ~1.2 (3 dB on the scores).
    The Concat stays float; the scores keep their own precision."""
    rng = np.random.default_rng(3)
    nodes = [helper.make_node("MatMul", ["x", "wb"], ["b0"], name="boxes_fc"),
             helper.make_node("Mul", ["b0", "k"], ["boxes"], name="to_pixels"),
             helper.make_node("MatMul", ["x", "ws"], ["s0"], name="scores_fc"),
             helper.make_node("Sigmoid", ["s0"], ["scores"], name="sigmoid"),
             helper.make_node("Concat", ["boxes", "scores"], ["y"], name="head", axis=1)]
    inits = {"wb": rng.standard_normal((16, 4)) * 0.3, "ws": rng.standard_normal((16, 6)) * 0.5,
             "k": np.float32(160.0)}
    path = tmp_path / "m.onnx"
    onnx.save(_model(nodes, inits, [8, 16]), path)
    feeds = [{"x": rng.standard_normal((8, 16)).astype(np.float32)} for _ in range(12)]
    r = dsedge.quantize(str(path), feeds, progress=False)
    head = next(p for p in r.plan if p.name == "head")
    assert head.precision == "fp32" and "ranges differ" in head.reason, head.as_dict()
    out = tmp_path / "m.int8.onnx"
    save_result(r, out)
    ref_s, q_s = ort.InferenceSession(str(path)), ort.InferenceSession(str(out))
    ref = np.concatenate([ref_s.run(None, f)[0] for f in feeds])
    for got in (np.concatenate([q_s.run(None, f)[0] for f in feeds]),
                np.concatenate([execute(r.graph, f)[0] for f in feeds])):
        s_ref, s_got = ref[:, 4:].astype(np.float64), got[:, 4:].astype(np.float64)
        assert 10 * np.log10(np.sum(s_ref ** 2) / np.sum((s_ref - s_got) ** 2)) > 25   # about 3 dB before


def test_table_input_range_chosen_by_the_tables_error(tmp_path):
    """A SiLU table whose input reaches far below zero: the calibrated range of the input
    minimises the input's own error; SiLU flattens there, so the range is refined by the error
    of SiLU's result (only for tables that go int8), which beats the input's own range."""
    from dsedge.quant import quantize as Q
    rng = np.random.default_rng(4)
    w = rng.standard_normal((16, 16)) * 0.4
    b = np.where(np.arange(16) < 8, -25.0, 0.0)    # half the outputs far below zero
    nodes = [helper.make_node("MatMul", ["x", "w1"], ["h0"], name="fc1"),
             helper.make_node("Add", ["h0", "b"], ["h"], name="bias"),
             helper.make_node("Sigmoid", ["h"], ["sg"], name="sig"),
             helper.make_node("Mul", ["h", "sg"], ["a"], name="silu"),
             helper.make_node("MatMul", ["a", "w2"], ["y"], name="fc2")]
    path = tmp_path / "m.onnx"
    onnx.save(_model(nodes, {"w1": w, "b": b, "w2": rng.standard_normal((16, 8)) * 0.3}, [64, 16]), path)
    x = [{"x": (rng.standard_normal((64, 16)) * 2).astype(np.float32)} for _ in range(12)]
    ref_s = ort.InferenceSession(str(path))

    def silu_sqnr(r):       # SiLU's int8 result against the float SiLU, on held-out data
        a_name = next(n.outputs[0] for n in r.graph.nodes if n.name == "silu")
        qp = r.graph.qparams[a_name]
        err = sig = 0.0
        from dsedge.interp import run
        for f in x[6:]:
            env = {}
            run(r.graph, f, hook=lambda k, v, node: env.__setitem__(k, np.asarray(v)))
            h = f["x"].astype(np.float64) @ w.astype(np.float32).astype(np.float64) + b
            a = h / (1 + np.exp(-h))
            got = (env[a_name].astype(np.float64) - int(qp.zero_point)) * float(qp.scale)
            sig += float(np.sum(a * a))
            err += float(np.sum((a - got) ** 2))
        return 10 * np.log10(sig / err)

    from dsedge.api import load_graph
    cfg = Q.QuantConfig(progress=False, max_loss_db=10.0)     # SiLU goes int8 with or without refining

    def quantise():
        return Q.quantize_graph(load_graph(str(path)), x[:6], cfg)
    r = quantise()
    silu = next(p for p in r.plan if p.name == "silu")
    assert silu.precision == "int8" and "table's error" in silu.reason, silu.as_dict()
    lo, _ = r.ranges["h"]
    obs_min = min(float((f["x"] @ w.astype(np.float32) + b).min()) for f in x[:6])
    assert lo > 0.5 * obs_min          # clipped well inside the observed minimum
    orig = Q.refine_table_inputs
    try:
        Q.refine_table_inputs = lambda *a, **k: {}
        r0 = quantise()
    finally:
        Q.refine_table_inputs = orig
    assert silu_sqnr(r) > silu_sqnr(r0) + 1.0, (silu_sqnr(r), silu_sqnr(r0))
    for f in x[6:8]:                   # and the whole model still matches onnxruntime's float result
        ref = ref_s.run(None, f)[0].astype(np.float64)
        got = execute(r.graph, f)[0].astype(np.float64)
        assert 10 * np.log10(np.sum(ref ** 2) / np.sum((ref - got) ** 2)) > 20


def test_residual_add_with_outliers_stays_float(tmp_path):
    """BERT's residual stream (all-MiniLM-L6-v2): a few values ~100x the rest. One int8 scale for
    the Add before LayerNormalization leaves the other values a code or two; rounding alone
    gives < 20 dB there, so the Add stays float and LayerNormalization sees float input
    (without that rule the output below is about 13 dB, with it 32 dB)."""
    rng = np.random.default_rng(5)
    c = 256
    nodes = [helper.make_node("MatMul", ["x", "w1"], ["f"], name="ffn"),
             helper.make_node("Add", ["f", "h"], ["r"], name="residual"),
             helper.make_node("LayerNormalization", ["r", "g", "b"], ["n"], name="ln", axis=-1, epsilon=1e-5),
             helper.make_node("MatMul", ["n", "w2"], ["y"], name="proj")]
    inits = {"w1": rng.standard_normal((c, c)) / 16, "g": np.ones(c), "b": np.zeros(c),
             "w2": rng.standard_normal((c, 16)) / 16}
    g = helper.make_graph(nodes, "m", [helper.make_tensor_value_info(k, TensorProto.FLOAT, [128, c]) for k in "xh"],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
                          [numpy_helper.from_array(np.asarray(v, np.float32), k) for k, v in inits.items()])
    path = tmp_path / "m.onnx"
    onnx.save(helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)]), path)

    def feed():
        h = rng.standard_normal((128, c)).astype(np.float32)
        h[rng.integers(128), 3] = 200.0           # the residual stream: one outlier per feed
        return {"x": rng.standard_normal((128, c)).astype(np.float32), "h": h}
    feeds = [feed() for _ in range(12)]
    r = dsedge.quantize(str(path), feeds[:8], progress=False)
    res = next(p for p in r.plan if p.name == "residual")
    assert res.precision == "fp32" and "rounding alone" in res.reason, res.as_dict()
    out = tmp_path / "m.int8.onnx"
    save_result(r, out)
    ref_s, q_s = ort.InferenceSession(str(path)), ort.InferenceSession(str(out))
    for f in feeds[8:]:
        ref = ref_s.run(None, f)[0].astype(np.float64)
        for got in (q_s.run(None, f)[0], execute(r.graph, f)[0]):
            got = got.astype(np.float64)
            assert 10 * np.log10(np.sum(ref ** 2) / np.sum((ref - got) ** 2)) > 20


def test_concat_with_an_all_zero_input_is_not_kept_float_for_its_range():
    """An input that is all zeros (range [0, 0]) is exact at any scale: it must not count as a
    range too narrow for the Concat's result."""
    from dsedge.quant.quantize import _concat_scale_loss
    from dsedge.ir import Node
    n = Node("Concat", ["a", "z"], ["y"], {"axis": 1}, "cat")
    ranges = {"a": (-3.0, 5.0), "z": (0.0, 0.0), "y": (-3.0, 5.0)}
    assert _concat_scale_loss(n, ["a", "z"], ranges, 3.0) is None
    ranges["z"] = (0.0, 0.5)                     # a real narrow input still keeps it float
    assert "'z'" in _concat_scale_loss(n, ["a", "z"], ranges, 3.0)
