"""Passes keep the float semantics: compare against onnxruntime on the original model."""
import numpy as np
import pytest
from onnx import helper, numpy_helper, TensorProto

from dsedge.converters.onnx.reader import from_model_proto
from dsedge.converters.onnx.writer import to_model_proto
from dsedge.interp import run
from dsedge.passes.simplify import optimize
from tests.onnx_check import run_ort

rng = np.random.default_rng(0)


def _model(nodes, inits, inp_shape, out_name="y", opset=13):
    g = helper.make_graph(nodes, "t", [helper.make_tensor_value_info("x", TensorProto.FLOAT, inp_shape)],
                          [helper.make_tensor_value_info(out_name, TensorProto.FLOAT, None)],
                          initializer=[numpy_helper.from_array(v, k) for k, v in inits.items()])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", opset)])
    m.ir_version = 8
    return m


def _conv_bn_relu_silu():
    w = rng.standard_normal((8, 3, 3, 3)).astype(np.float32) * 0.3
    b = rng.standard_normal(8).astype(np.float32)
    inits = {"w": w, "b": b, "s": rng.uniform(0.5, 2, 8).astype(np.float32),
             "bb": rng.standard_normal(8).astype(np.float32), "m": rng.standard_normal(8).astype(np.float32),
             "v": rng.uniform(0.5, 2, 8).astype(np.float32), "three": np.float32(3), "six": np.float32(6),
             "zero": np.float32(0)}
    nodes = [
        helper.make_node("Conv", ["x", "w", "b"], ["c"], pads=[1, 1, 1, 1]),
        helper.make_node("BatchNormalization", ["c", "s", "bb", "m", "v"], ["n"]),
        helper.make_node("Identity", ["n"], ["n2"]),
        helper.make_node("Relu", ["n2"], ["r"]),
        helper.make_node("Sigmoid", ["r"], ["sg"]),
        helper.make_node("Mul", ["r", "sg"], ["silu"]),
        helper.make_node("Add", ["silu", "three"], ["a3"]),
        helper.make_node("Clip", ["a3", "zero", "six"], ["cl"]),
        helper.make_node("Mul", ["silu", "cl"], ["hs"]),
        helper.make_node("Div", ["hs", "six"], ["y"]),
    ]
    return _model(nodes, inits, [1, 3, 10, 10])


def test_optimize_preserves_semantics_and_fuses():
    m = _conv_bn_relu_silu()
    x = rng.standard_normal((1, 3, 10, 10)).astype(np.float32)
    exp = run_ort(m, {"x": x})[0]
    g = optimize(from_model_proto(m))
    ops = [n.op for n in g.nodes]
    assert ops == ["Conv", "Elementwise"], ops          # BN folded, Relu fused, 6 ops -> one table
    assert g.nodes[0].attrs["_act"] == ("clip", 0.0, float("inf"))
    got = run(g, {"x": x})["y"]
    np.testing.assert_allclose(got, exp, rtol=1e-4, atol=1e-5)
    # and the written ONNX (annotations expanded back) runs in onnxruntime with the same result
    back = run_ort(to_model_proto(g), {"x": x})[0]
    np.testing.assert_allclose(back, exp, rtol=1e-4, atol=1e-5)


def test_constant_folding_of_shape_arithmetic():
    nodes = [
        helper.make_node("Shape", ["x"], ["s"]),
        helper.make_node("Gather", ["s", "i0"], ["d0"], axis=0),
        helper.make_node("Unsqueeze", ["d0", "ax"], ["d0u"]),
        helper.make_node("Concat", ["d0u", "m1"], ["shape"], axis=0),
        helper.make_node("Reshape", ["x", "shape"], ["y"]),
    ]
    inits = {"i0": np.array(0, np.int64), "ax": np.array([0], np.int64), "m1": np.array([-1], np.int64)}
    m = _model(nodes, inits, [2, 3, 4])
    g = optimize(from_model_proto(m))
    assert [n.op for n in g.nodes] == ["Reshape"]
    x = rng.standard_normal((2, 3, 4)).astype(np.float32)
    np.testing.assert_array_equal(run(g, {"x": x})["y"], x.reshape(2, -1))


def test_dead_code_and_identity_output():
    nodes = [helper.make_node("Relu", ["x"], ["r"]), helper.make_node("Sigmoid", ["x"], ["unused"]),
             helper.make_node("Identity", ["r"], ["y"])]
    g = optimize(from_model_proto(_model(nodes, {}, [4])))
    assert [n.op for n in g.nodes] == ["Relu"] and g.nodes[0].outputs == ["y"]


def _bias_add_model(op, c, **attrs):
    w = {"Conv": (6, 3, 3, 3), "ConvTranspose": (3, 4, 3, 3), "Gemm": (5, 4)}[op]
    inits = {"w": rng.standard_normal(w).astype(np.float32) * 0.3, "c": np.asarray(c, np.float32)}
    nodes = [helper.make_node(op, ["x", "w"], ["h"], **attrs), helper.make_node("Add", ["h", "c"], ["a"]),
             helper.make_node("Relu", ["a"], ["y"])]
    return _model(nodes, inits, [2, 5] if op == "Gemm" else [1, 3, 8, 8])


@pytest.mark.parametrize("op,c,attrs,folds", [
    ("Conv", rng.standard_normal((1, 6, 1, 1)), {"pads": [1, 1, 1, 1]}, True),        # Paddle's bias
    ("Conv", rng.standard_normal((6, 1, 1)), {}, True),
    ("Conv", 0.25, {}, True),                                                          # a scalar
    ("Conv", rng.standard_normal((1, 1, 6, 6)), {}, False),                            # per pixel
    ("Conv", rng.standard_normal((1, 1, 6, 1, 1)), {}, False),                          # raises the rank
    ("ConvTranspose", rng.standard_normal((1, 4, 1, 1)), {"strides": [2, 2]}, True),
    ("Gemm", rng.standard_normal(4), {}, True),
    ("Gemm", rng.standard_normal((2, 4)), {}, False),                                  # per row
])
def test_bias_add_folds_into_the_bias(op, c, attrs, folds):
    m = _bias_add_model(op, c, **attrs)
    x = rng.standard_normal((2, 5) if op == "Gemm" else (1, 3, 8, 8)).astype(np.float32)
    exp = run_ort(m, {"x": x})[0]
    g = optimize(from_model_proto(m))
    assert ("Add" not in [n.op for n in g.nodes]) == folds, [n.op for n in g.nodes]
    np.testing.assert_allclose(run(g, {"x": x})["y"], exp, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(run_ort(to_model_proto(g), {"x": x})[0], exp, rtol=1e-4, atol=1e-5)


def test_bias_add_is_not_folded_when_the_conv_output_is_read_elsewhere():
    w = rng.standard_normal((4, 3, 1, 1)).astype(np.float32)
    nodes = [helper.make_node("Conv", ["x", "w"], ["h"]), helper.make_node("Add", ["h", "c"], ["a"]),
             helper.make_node("Mul", ["a", "h"], ["y"])]
    m = _model(nodes, {"w": w, "c": rng.standard_normal((4, 1, 1)).astype(np.float32)}, [1, 3, 5, 5])
    g = optimize(from_model_proto(m))
    assert "Add" in [n.op for n in g.nodes]
    x = rng.standard_normal((1, 3, 5, 5)).astype(np.float32)
    np.testing.assert_allclose(run(g, {"x": x})["y"], run_ort(m, {"x": x})[0], rtol=1e-4, atol=1e-5)
