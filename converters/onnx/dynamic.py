"""QDQ ONNX form of a dynamically quantised weighted node (dsedge/quant/dynamic.py).

A node with `_q["kind"] == "dynamic"` (Conv, Gemm, MatMul: float32 x, int8 per-channel w,
float32 bias) is written in standard ONNX ops as

    x ─ DynamicQuantizeLinear ─> x_u8, s_x, zp_x
    x_u8, w_u8, zp_x, 128 ─ ConvInteger | MatMulInteger ─> acc (int32)
    y = Cast(acc, float) * (s_x * s_w[c]) + bias[c]          (Mul, Mul, Add; fused activation after)

The weights are stored **uint8 with zero point 128** (w_u8 = w_q + 128: the symmetric int8
weight dequantises to the same values). That choice is deliberate: onnxruntime's u8s8 integer
kernels on x86 without AVX-VNNI add pairs of u8*s8 products in 16 bits (VPMADDUBSW) and
saturate, while its u8u8 kernels are exact; with uint8 weights onnxruntime's result equals
the integer reference bit for bit on this arithmetic (tests/quant/test_dynamic.py), on every
CPU. Dynamic nodes are written this way whatever the static nodes' QDQ format (qdq.py). DynamicQuantizeLinear's float32 scale/zero-point rule is the one the reference and the
C runtime use (docs/quant-arith.md §12), and `s_x * s_w[c]` is one float32 multiply, then
`float(acc) * scale`, then `+ bias`: the same three roundings in the same order.
A Gemm with transB stores its weight transposed (MatMulInteger takes K x N).
"""
from __future__ import annotations

import numpy as np
from onnx import TensorProto

from dsedge.ir import Node


def emit_dynamic(em, n: Node) -> None:
    """Write node n (a lowered dynamic node) through the emitter `em` (qdq._QdqEmitter)."""
    g = em.g
    x, wname, bname = n.inputs[0], n.inputs[1], n.inputs[2]
    w = g.consts[wname]
    bias = np.asarray(g.consts[bname], np.float32).reshape(-1)
    p = n.attrs["_q"]
    s_w = np.asarray(p["w_scale"], np.float32).reshape(-1)
    base = n.name or n.outputs[0]
    xq, xs, xz = em.fresh(base + "_xq"), em.fresh(base + "_xscale"), em.fresh(base + "_xzp")
    em.emit("DynamicQuantizeLinear", [x], [xq, xs, xz], name=em.fresh(base + "_dynquant"))
    acc = em.fresh(base + "_acc")
    wz = em.const(base + "_wzp", np.uint8(128))
    if n.op == "Conv":
        wu = em.const(base + "_w_u8", (w.astype(np.int16) + 128).astype(np.uint8))
        sp = w.ndim - 2
        attrs = {"group": int(n.attrs.get("group", 1)), "kernel_shape": list(w.shape[2:]),
                 "strides": list(n.attrs.get("strides") or [1] * sp),
                 "dilations": list(n.attrs.get("dilations") or [1] * sp), "pads": list(p["pads"])}
        em.emit("ConvInteger", [xq, wu, xz, wz], [acc], attrs, name=em.fresh(base + "_convinteger"))
        shape = [1, -1] + [1] * sp
    else:
        wk = w.T if (n.op == "Gemm" and n.attrs.get("transB", 0)) else w
        wu = em.const(base + "_w_u8", (np.ascontiguousarray(wk).astype(np.int16) + 128).astype(np.uint8))
        em.emit("MatMulInteger", [xq, wu, xz, wz], [acc], name=em.fresh(base + "_matmulinteger"))
        shape = [-1]
    accf = em.fresh(base + "_accf")
    em.emit("Cast", [acc], [accf], {"to": TensorProto.FLOAT}, name=em.fresh(base + "_cast"))
    sw = em.const(base + "_wscale", s_w.reshape(shape))
    sc = em.fresh(base + "_scale")
    em.emit("Mul", [xs, sw], [sc], name=em.fresh(base + "_scale_mul"))
    y0 = em.fresh(base + "_rescaled")
    em.emit("Mul", [accf, sc], [y0], name=em.fresh(base + "_rescale"))
    b = em.const(base + "_bias", bias.reshape(shape))
    act = n.attrs.get("_act")
    out = n.outputs[0]
    pre = em.fresh(out + "_preact") if act else out
    em.emit("Add", [y0, b], [pre], name=n.name or em.fresh(base + "_bias_add"))
    if act:
        em.activation(act, pre, out, base)
