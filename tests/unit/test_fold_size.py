"""A quantised file is never larger than its float source: constant folding does not expand
compact constants (Expand/Tile, or a constant still read elsewhere folded into a second copy),
and the summary flags an output larger than its input."""
import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper, numpy_helper

import dsedge
from dsedge.passes.simplify import eliminate_dead, fold_constants
from dsedge.report import format_quantize

T = 16


def _front_end(path):
    """An audio front end: a [64, 256] basis C read as is (real part) and through Neg, then
    Transpose(Transpose(.)) (imaginary part) as the left operand of MatMuls with the frames
    (float: a constant left operand has no int8 form); a window w [1, 256] expanded to [64, 256]
    and multiplied with the (varying) basis product; then a Conv whose weight is
    Transpose(Neg(W)) of a constant (a reader that needs the folded constant)."""
    rng = np.random.default_rng(0)
    C = rng.standard_normal((64, 256)).astype(np.float32)
    w = np.hanning(256).astype(np.float32)[None]
    W = rng.standard_normal((8, 4, 1)).astype(np.float32)   # Conv weight, stored transposed
    nodes = [
        helper.make_node("Neg", ["C"], ["negC"]),
        helper.make_node("Transpose", ["negC"], ["negCt"], perm=[1, 0]),
        helper.make_node("Transpose", ["negCt"], ["imag_basis"], perm=[1, 0]),
        helper.make_node("MatMul", ["C", "x"], ["re"]),                  # [1, 64, T]
        helper.make_node("MatMul", ["imag_basis", "x"], ["im"]),
        helper.make_node("Mul", ["re", "re"], ["re2"]),
        helper.make_node("Mul", ["im", "im"], ["im2"]),
        helper.make_node("Add", ["re2", "im2"], ["power"]),             # [1, 64, T]
        helper.make_node("Expand", ["w", "wshape"], ["window"]),         # [64, 256] from [1, 256]
        helper.make_node("MatMul", ["power", "xt"], ["proj"]),           # [1, 64, 256]
        helper.make_node("Mul", ["proj", "window"], ["windowed"]),
        helper.make_node("ReduceMean", ["windowed"], ["feat"], axes=[2], keepdims=1),   # [1, 64, 1]
        helper.make_node("Reshape", ["feat", "fshape"], ["feat4"]),      # [1, 4, 16]
        helper.make_node("Neg", ["W"], ["negW"]),
        helper.make_node("Transpose", ["negW"], ["convW"], perm=[0, 1, 2]),
        helper.make_node("Conv", ["feat4", "convW"], ["y"]),
    ]
    inits = [numpy_helper.from_array(C, "C"), numpy_helper.from_array(w, "w"),
             numpy_helper.from_array(np.array([64, 256], np.int64), "wshape"),
             numpy_helper.from_array(np.array([1, 4, 16], np.int64), "fshape"),
             numpy_helper.from_array(W, "W"),
             numpy_helper.from_array(rng.standard_normal((T, 256)).astype(np.float32), "xt")]
    g = helper.make_graph(nodes, "front_end", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 256, T])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)], inits)
    onnx.save(helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)]), path)
    return [{"x": rng.standard_normal((1, 256, T)).astype(np.float32)} for _ in range(6)]


def test_folding_keeps_compact_constants(tmp_path):
    src = tmp_path / "fe.onnx"
    _front_end(src)
    g = dsedge.load(src)
    before = sum(c.nbytes for c in g.consts.values())
    fold_constants(g)
    eliminate_dead(g)
    ops = [n.op for n in g.nodes]
    # the window stays an Expand of the [1, 256] constant, the imaginary basis an expression over C
    assert "Expand" in ops and ops.count("Neg") == 1, ops
    # the Conv's weight, read in a WEIGHT role, is folded
    conv = next(n for n in g.nodes if n.op == "Conv")
    assert conv.inputs[1] in g.consts
    assert sum(c.nbytes for c in g.consts.values()) <= before


def test_quantised_files_are_not_larger_than_the_float_file(tmp_path):
    src = tmp_path / "fe.onnx"
    feeds = _front_end(src)
    res = dsedge.quantize(src, feeds, progress=False)
    size = src.stat().st_size
    for ext in ("onnx", "dse"):
        out = tmp_path / f"fe.int8.{ext}"
        res.save(out)
        assert out.stat().st_size <= size, (ext, out.stat().st_size, size)
    # and the QDQ file still computes the model
    ref = ort.InferenceSession(str(src)).run(None, feeds[0])[0]
    got = ort.InferenceSession(str(tmp_path / "fe.int8.onnx")).run(None, feeds[0])[0]
    assert got.shape == ref.shape
    err = np.sum((ref - got).astype(np.float64) ** 2) / np.sum(ref.astype(np.float64) ** 2)
    assert err < 0.05, err


def test_summary_flags_an_output_larger_than_its_input(tmp_path):
    src = tmp_path / "fe.onnx"
    feeds = _front_end(src)
    res = dsedge.quantize(src, feeds, progress=False)
    out = tmp_path / "fe.int8.onnx"
    res.save(out)
    small = tmp_path / "tiny.onnx"          # stands for a source smaller than its output
    small.write_bytes(src.read_bytes()[: out.stat().st_size // 2])
    s = dsedge.api.quantize_summary(res, small, out)
    assert len(s["warnings"]) == 1 and "LARGER" in s["warnings"][0] and "tiny.onnx" in s["warnings"][0]
    text = format_quantize(s)
    assert "x LARGER" in text and "\nwarning: " in text and "smaller" not in text
    s = dsedge.api.quantize_summary(res, src, out)
    assert s["warnings"] == [] and "x smaller" in format_quantize(s)


def test_a_shared_weight_rounded_alike_is_stored_once(tmp_path):
    rng = np.random.default_rng(0)
    w = rng.standard_normal((32, 32, 3, 3)).astype(np.float32)
    nodes = [helper.make_node("Conv", ["x", "W"], ["a"], pads=[1, 1, 1, 1]), helper.make_node("Relu", ["a"], ["b"]),
             helper.make_node("Conv", ["b", "W"], ["y"], pads=[1, 1, 1, 1])]
    g = helper.make_graph(nodes, "shared", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 32, 6, 6])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)], [numpy_helper.from_array(w, "W")])
    src = tmp_path / "shared.onnx"
    onnx.save(helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)]), src)
    feeds = [{"x": rng.standard_normal((1, 32, 6, 6)).astype(np.float32)} for _ in range(4)]
    from dsedge.quant.quantize import QuantConfig, quantize_graph
    res = quantize_graph(dsedge.load(src), feeds, QuantConfig(weight_rounding="nearest", bias_correction=False,
                                                              progress=False))
    out = tmp_path / "shared.int8.onnx"
    from dsedge.api import save_result
    save_result(res, out)
    m = onnx.load(str(out))
    big = [t.name for t in m.graph.initializer if numpy_helper.to_array(t).size == w.size]
    assert len(big) == 1, big                       # one int8 copy, read by both Convs
    assert sum(big[0] in n.input for n in m.graph.node) == 2
    ref = ort.InferenceSession(str(src)).run(None, feeds[0])[0]
    got = ort.InferenceSession(str(out)).run(None, feeds[0])[0]
    assert np.sum((ref - got) ** 2) < 0.01 * np.sum(ref ** 2)
