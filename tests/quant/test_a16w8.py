"""A16W8 (int16 activations, int8 weights; docs/quant-arith.md §15): the exact wide requantisation,
the quantiser's choice and its int16 boundaries, the integer reference against float on a
heavy-tailed tensor (far above int8), and the zoo digits model with A16W8 nodes end to end (the C
runtime gives the interpreter's bytes, the .dse decodes to the same integer graph)."""
from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
from onnx import TensorProto, helper, numpy_helper

from dsedge.converters.onnx.reader import load_onnx
from dsedge.errors import ModelError
from dsedge.interp import execute
from dsedge.quant import arith, kinds
from dsedge.quant.quantize import QuantConfig, quantize_graph, sqnr_db


def test_requantize_wide_is_exact():
    rng = np.random.default_rng(0)
    for t in range(300):
        n = int(rng.integers(1, 63))
        M = int(rng.integers(2**30, 2**31))
        if t % 25 == 0:
            M, n = 0, 62
        acc = rng.integers(-(2**47), 2**47, 200, dtype=np.int64)
        acc[:50] = rng.integers(-(2**20), 2**20, 50)
        acc[50], acc[51] = np.iinfo(np.int64).max, np.iinfo(np.int64).min
        acc[52] = -(1 << (n - 1))                                    # ties at every shift
        y = arith.requantize_wide(acc, M, n, 0)
        want = [max(-32768, min(32767, (int(a) * M + (1 << (n - 1))) >> n)) for a in acc]
        assert y.dtype == np.int16 and y.tolist() == want, (M, n)


def test_a16_qparams_and_weights():
    s, zp = arith.choose_a16_qparams(-3.0, 1.0)
    assert zp == 0 and s == np.float32(3.0 / 32767)
    assert arith.choose_a16_qparams(0.0, 0.0)[0] == np.float32(arith.ACT_SCALE_FLOOR)
    with pytest.raises(ModelError, match="non-finite"):
        arith.choose_a16_qparams(0.0, float("nan"))
    w = np.array([[1.0, -0.5], [0.0, 0.0]], np.float32)
    wq, sw = arith.quantize_weight_a16(w, 0, np.float32(1e-4), np.array([0.0, 1e9], np.float32))
    assert wq.tolist()[0] == [127, -64] and abs(1e9 / (1e-4 * float(sw[1]))) <= 2**31 - 1   # bias fits int32
    assert arith.quantize16(np.array([1e9, -1e9, 0.5, 1.5], np.float32), 1.0).tolist() == [32767, -32768, 0, 2]


# -- a model with a heavy-tailed activation -----------------------------------------------------------

def _model(rng, C=8):
    inits = []

    def w(name, *shape, s=0.3):
        inits.append(numpy_helper.from_array((rng.standard_normal(shape) * s).astype(np.float32), name))
        return name

    N = helper.make_node
    nodes = [N("Conv", ["x", w("w1", C, 3, 3, 3), w("b1", C)], ["a"], pads=[1, 1, 1, 1], name="conv1"),
             N("Conv", ["a", w("w2", C, C, 3, 3, s=0.1), w("b2", C)], ["b"], pads=[1, 1, 1, 1], strides=[2, 2],
               name="conv2"),
             N("Relu", ["b"], ["r"], name="relu"),
             N("Flatten", ["r"], ["f"], name="flat"),
             N("Gemm", ["f", w("wg", 10, C * 4 * 4, s=0.05), w("bg", 10)], ["y"], transB=1, name="fc")]
    g = helper.make_graph(nodes, "a16", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 8, 8])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 10])], inits)
    return load_onnx(helper.make_model(g, opset_imports=[helper.make_opsetid("", 18)]).SerializeToString())


def _heavy_feeds(rng, n=16):
    """Student-t (1 degree of freedom) inputs: most values near 1, a few in the hundreds."""
    return [{"x": np.clip(rng.standard_t(1, (1, 3, 8, 8)), -2000, 2000).astype(np.float32)} for _ in range(n)]


def _conv1_sqnr(result, feeds):
    """SQNR of conv1's dequantised output (the node that reads the heavy-tailed input) vs float."""
    fg, qg = result.float_graph, result.graph
    out = qg.node_by_name("conv1").outputs[0]            # its int8 or int16 result
    p = qg.qparams[out]
    num = den = 0.0
    for f in feeds:
        ref = execute(fg, f, outputs=["a"])[0].astype(np.float64)
        got = arith.dequantize(execute(qg, f, outputs=[out])[0], p.scale, int(p.zero_point)).astype(np.float64)
        num += float(np.sum(ref * ref))
        den += float(np.sum((ref - got) ** 2))
    return 10 * np.log10(num / den)


def test_a16w8_conv_far_above_int8_on_heavy_tails():
    rng = np.random.default_rng(1)
    g = _model(rng)
    feeds = _heavy_feeds(rng)
    cfg = QuantConfig(progress=False, method="minmax")
    r8 = quantize_graph(g.copy(), feeds, cfg)
    r16 = quantize_graph(g.copy(), feeds, replace(cfg, a16w8_nodes=("conv1",)))
    plan = {p.name: p for p in r16.plan}
    assert plan["conv1"].precision == "a16w8" and "A16W8" in plan["conv1"].reason
    assert [n.attrs["_q"]["kind"] for n in r16.graph.nodes if n.name == "conv1"] == ["a16w8"]
    s8, s16 = _conv1_sqnr(r8, feeds), _conv1_sqnr(r16, feeds)
    print(f"conv1 output SQNR on heavy-tailed inputs: int8 {s8:.1f} dB, A16W8 {s16:.1f} dB")
    assert s16 > s8 + 20.0, (s8, s16)
    # the whole graph: int16 in and out of conv1 through QuantizeLinear/DequantizeLinear with an int16 zero point
    zps = {n.inputs[2]: r16.graph.consts[n.inputs[2]].dtype for n in r16.graph.nodes
           if n.op in ("QuantizeLinear", "DequantizeLinear")}
    assert np.dtype(np.int16) in zps.values()
    y8 = [execute(r8.graph, f)[0] for f in feeds]
    y16 = [execute(r16.graph, f)[0] for f in feeds]
    yf = [execute(r8.float_graph, f)[0] for f in feeds]
    print(f"output SQNR: int8 {sqnr_db(np.stack(yf), np.stack(y8)):.1f} dB, conv1 A16W8 "
          f"{sqnr_db(np.stack(yf), np.stack(y16)):.1f} dB")


def test_a16w8_choice_all_and_ineligible():
    rng = np.random.default_rng(2)
    g = _model(rng)
    feeds = _heavy_feeds(rng, 4)
    r = quantize_graph(g.copy(), feeds, QuantConfig(progress=False, a16w8_nodes=("all",)))
    prec = {p.name: p.precision for p in r.plan}
    assert prec["conv1"] == prec["conv2"] == prec["fc"] == "a16w8"
    # a16w8 -> a16w8 passes int16 directly: conv2 reads conv1's int16 output
    by = {n.name: n for n in r.graph.nodes}
    assert by["conv1"].outputs[0] == by["conv2"].inputs[0] and r.graph.tensor_info(by["conv2"].inputs[0]).dtype == np.int16
    assert kinds.KINDS["a16w8"].why_not(r.float_graph, r.float_graph.node_by_name("flat")) is not None


def test_a16w8_lowering_refuses_asymmetric_or_float_output():
    from dsedge.ir import QParams
    rng = np.random.default_rng(3)
    g = _model(rng)
    n = g.node_by_name("conv1")
    p = QParams(np.float32(0.01), np.int32(0), np.dtype(np.int16))
    with pytest.raises(ModelError, match="float-output"):
        kinds.lower_node(g.copy(), n, [p], [None], kind_name="a16w8")
    with pytest.raises(ModelError, match="zero point"):
        kinds.lower_node(g.copy(), n, [QParams(np.float32(0.01), np.int32(3), np.dtype(np.int16))], [p],
                         kind_name="a16w8")


# -- the zoo digits model, end to end -------------------------------------------------------------------

def test_digits_a16w8_c_runtime_same_bytes(tmp_path):
    import dsedge
    from dsedge import zoo
    from dsedge.artifact import read
    from dsedge.export.dse import load_dse_graph
    from dsedge.runtime import Runtime
    calib = zoo.digits_calib()
    feeds = [{"image": calib["image"][i]} for i in range(len(calib["image"]))]
    model = str(zoo.digits_dir() / "model.onnx")
    r = dsedge.quantize(model, feeds, a16w8=("conv2", "fc"), progress=False)
    r8 = dsedge.quantize(model, feeds, progress=False)
    path, path8 = tmp_path / "digits_a16w8.dse", tmp_path / "digits.dse"
    r.save(str(path))
    r8.save(str(path8))
    art = read(str(path))
    assert sum(t.dtype == "int16" for t in art.tensors) >= 4
    dg = load_dse_graph(path)
    rt, rt_ref = Runtime(str(path)), Runtime(str(path), kernels="ref")
    ks = rt.kernels()
    assert "dse_i16_conv__ref" in ks and "dse_i16_gemm__ref" in ks and "dse_i16_quantize__ref" in ks
    ev = zoo.digits_eval()
    X = ev["image"]
    correct = agree = 0
    for i in range(len(X)):
        y_np = execute(r.graph, {"image": X[i]})[0]
        assert np.array_equal(execute(dg, {dg.inputs[0]: X[i]})[0], y_np)
        y_c = np.asarray(rt.run({"image": X[i]})[rt.outputs[0].name])
        assert y_c.tobytes() == y_np.tobytes(), i
        if i % 20 == 0:
            assert np.asarray(rt_ref.run({"image": X[i]})[rt.outputs[0].name]).tobytes() == y_np.tobytes()
        yf = execute(r.float_graph, {"image": X[i]})[0]
        correct += int(np.argmax(y_np) == ev["label"][i])
        agree += int(np.argmax(y_np) == np.argmax(yf))
    print(f"digits conv2+fc A16W8: top-1 {correct / len(X):.4f}, agreement with float {agree / len(X):.4f}, "
          f"{path.stat().st_size} B (int8: {path8.stat().st_size} B), arena {art.arena_size} B "
          f"(int8: {read(str(path8)).arena_size} B)")
    assert correct / len(X) >= 0.95 and agree / len(X) >= 0.97


def test_cli_quantize_a16w8(tmp_path):
    from click.testing import CliRunner
    from dsedge import zoo
    from dsedge.cli import main
    model, calib = str(zoo.digits_dir() / "model.onnx"), str(zoo.digits_dir() / "calib.npz")
    out = tmp_path / "d.dse"
    r = CliRunner().invoke(main, ["quantize", model, "--calib", calib, "--a16w8", "conv2,fc", "-o", str(out),
                                  "--no-progress", "--json"])
    assert r.exit_code == 0, r.output
    assert '"a16w8"' in r.output and out.exists()
    for bad in (["--a16w8", "conv2"], ["--calib", calib, "--a16w8", ","],
                ["--calib", calib, "--a16w8", "all", "--precision", "fp16"]):   # no calib / no node / not int8
        r = CliRunner().invoke(main, ["quantize", model, *bad, "-o", str(tmp_path / "e.dse")])
        assert r.exit_code == 2 and "--a16w8" in r.output and "Traceback" not in r.output, r.output
