"""Shared test helper: build a one-node ONNX model, run it in onnxruntime (the float oracle)
and in dsedge's reference interpreter, and compare.

    check_op("Relu", [x], opset=13)
    check_op("Split", [x], {"axis": 1, "split": [1, 2]}, opset=11, n_outputs=2)
    check_op("Gather", [x, ("idx", np.array([0, 2]))])   # (name, array) pins an input as an initializer

Inputs given as plain arrays become graph inputs; inputs given as `const(array)` become
initializers (weights, shapes, axes). `None` is an omitted optional input.

onnxruntime is the oracle only where its result does not depend on the CPU. Its u8 x s8
integer kernels do (on x86 without VNNI, VPMADDUBSW's 16-bit pair sums saturate), so an
integer op with int8 weights is checked against the same op with those weights re-encoded as
uint8 (`uint8_weights`: q + 128, zero point + 128, the same dequantised values), which
onnxruntime runs with its u8 x u8 kernels, exact on every CPU.
"""
from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
from onnx import helper, numpy_helper

from dsedge.converters.onnx.reader import from_model_proto
from dsedge.interp import run


class const:  # noqa: N801 - reads like a marker in test code
    def __init__(self, value):
        self.value = np.asarray(value)


def make_model(op_type, inputs, attrs=None, *, opset=17, n_outputs=1, domain="", output_dtypes=None):
    nodes_inputs, graph_inputs, inits = [], [], []
    for k, v in enumerate(inputs):
        if v is None:
            nodes_inputs.append("")
            continue
        name = f"in{k}"
        nodes_inputs.append(name)
        if isinstance(v, const):
            inits.append(numpy_helper.from_array(v.value, name))
        else:
            v = np.asarray(v)
            graph_inputs.append(helper.make_tensor_value_info(
                name, helper.np_dtype_to_tensor_dtype(v.dtype), list(v.shape)))
    outs = [f"out{k}" for k in range(n_outputs)]
    node = helper.make_node(op_type, nodes_inputs, outs, domain=domain, **(attrs or {}))
    out_vi = [helper.make_tensor_value_info(o, output_dtypes[k], None) if output_dtypes and k in output_dtypes
              else helper.make_empty_tensor_value_info(o) for k, o in enumerate(outs)]
    g = helper.make_graph([node], "t", graph_inputs, out_vi, initializer=inits)
    opsets = [helper.make_opsetid("", opset)]
    if domain:
        opsets.append(helper.make_opsetid(domain, 1))
    m = helper.make_model(g, opset_imports=opsets)
    m.ir_version = min(m.ir_version, 8 if opset <= 18 else 9)
    return m


def feeds_of(inputs):
    return {f"in{k}": np.asarray(v) for k, v in enumerate(inputs) if v is not None and not isinstance(v, const)}


def run_ort(model, feeds):
    so = ort.SessionOptions()
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    sess = ort.InferenceSession(model.SerializeToString(), so, providers=["CPUExecutionProvider"])
    return sess.run(None, feeds)


def run_dsedge(model, feeds):
    g = from_model_proto(model)
    res = run(g, feeds)
    return [res[o] for o in g.outputs], g


def assert_close(got, exp, rtol=1e-5, atol=1e-5, what=""):
    got, exp = np.asarray(got), np.asarray(exp)
    assert got.shape == exp.shape, f"{what}: shape {got.shape} != onnxruntime {exp.shape}"
    assert got.dtype == exp.dtype, f"{what}: dtype {got.dtype} != onnxruntime {exp.dtype}"
    if exp.dtype.kind in "fc":
        np.testing.assert_allclose(got, exp, rtol=rtol, atol=atol, err_msg=what, equal_nan=True)
    else:
        np.testing.assert_array_equal(got, exp, err_msg=what)


def uint8_weights(inputs, pairs):
    """`inputs` with each int8 operand named in `pairs` ((value index, zero-point index), the
    zero point possibly omitted = 0) re-encoded as uint8: value + 128, zero point + 128. The op
    computes the same integers; onnxruntime takes its exact u8 x u8 kernels for it."""
    out = list(inputs) + [None] * max(0, max(z for _, z in pairs) + 1 - len(inputs))

    def shift(v):
        a = v.value if isinstance(v, const) else np.asarray(v)
        assert a.dtype == np.int8, a.dtype
        u = (a.astype(np.int16) + 128).astype(np.uint8)
        return const(u) if isinstance(v, const) else u

    for vi, zi in pairs:
        if out[vi] is None or np.asarray(out[vi].value if isinstance(out[vi], const) else out[vi]).dtype != np.int8:
            continue
        out[vi] = shift(out[vi])
        out[zi] = const(np.uint8(128)) if out[zi] is None else shift(out[zi])
    return out


def check_op(op_type, inputs, attrs=None, *, opset=17, n_outputs=1, rtol=1e-5, atol=1e-5, domain="",
             oracle_inputs=None):
    """Compare dsedge's reference against onnxruntime for one node; returns dsedge outputs.
    `oracle_inputs`: what onnxruntime runs instead (an equivalent op whose onnxruntime kernel
    is exact on every CPU, see `uint8_weights`)."""
    m = make_model(op_type, inputs, attrs, opset=opset, n_outputs=n_outputs, domain=domain)

    feeds = feeds_of(inputs)
    if oracle_inputs is None:
        exp = run_ort(m, feeds)
    else:
        exp = run_ort(make_model(op_type, oracle_inputs, attrs, opset=opset, n_outputs=n_outputs, domain=domain),
                      feeds_of(oracle_inputs))
    got, g = run_dsedge(m, feeds)
    for k, (a, b) in enumerate(zip(got, exp)):
        assert_close(a, b, rtol, atol, what=f"{op_type} opset {opset} output {k}")
        # the shape rule must agree with what the reference produced
        info = g.tensor_info(g.outputs[k])
        if info.shape is not None and all(isinstance(d, int) for d in info.shape):
            assert tuple(info.shape) == tuple(np.shape(b)), f"{op_type}: shape rule {info.shape} != {np.shape(b)}"
    return got
