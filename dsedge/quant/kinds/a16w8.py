"""The "a16w8" kind: a weighted op (Conv, Gemm, MatMul with a constant 2-D right operand) with
int16 activations and int8 weights, for the tensors whose range int8 cannot hold
(docs/quant-arith.md §15; TFLite's 16x8 and onnxruntime's A16W8 quantise the same way).

* Activations: int16, per tensor, **symmetric** (zero point 0, scale max(|lo|, |hi|) / 32767,
  arith.choose_a16_qparams), codes in [-32768, 32767] (QuantizeLinear's int16 range).
* Weights: int8 per output channel, symmetric, [-127, 127] (§1, §4); bias int32 with scale
  s_in * s_w[c]; the bias bound in the weight scale is int32's (arith.quantize_weight_a16).
* Accumulator: **int64**, acc = bias_q + Σ x_q * w_q (padding contributes 0: zp_in = 0, so no
  folding). |acc| <= 2^31 + K * 32768 * 127 < 2^47 for K <= 2^24 (arith.A16_MAX_K; a larger K
  is refused). An int32 accumulator would only do for K <= 516.
* Requantisation: §3's rule (M, n) of (s_in * s_w[c]) / s_out, evaluated exactly on the int64
  accumulator and clamped to int16 (arith.requantize_wide: split at 2^32 so nothing overflows).
  No float-output form: a float reader dequantises the int16 result.

It is an alternative form of the "weighted" kind that the quantiser chooses per node
(QuantConfig.a16w8_nodes, `dsedge quantize --a16w8`, `dsedge plan --a16w8`); its neighbours meet
it through QuantizeLinear / DequantizeLinear with an int16 zero point, as float meets int8.

`.dse`: the op's id with int16 x and y, an int8 weight in the plain layout, an int32 bias; the
weighted kind's attributes (zp_in = zp_out = 0, qmin/qmax in int16, float_out = 0, TENSOR M,
shift). The record is recognised by its int16 output. C kernels `dse_i16_{conv,gemm,matmul}__ref`
(runtimes/c/kernels/ref/a16w8.c); no optimised variants.
"""
from __future__ import annotations

import numpy as np

from ...artifact import LAYOUT_PLAIN
from ...errors import ModelError
from .. import arith, intref
from .base import clamp, register_kind, spatial_attrs
from .weighted import Weighted, reduction_size

A16_OPS = ("Conv", "Gemm", "MatMul")


@register_kind
class A16W8(Weighted):
    name = "a16w8"
    base = "weighted"
    float_output = False
    weight_suffix = "_q8"

    def why_not(self, g, n):
        why = self.constant_weight_why_not(g, n, A16_OPS,
                                           "no A16W8 form (Conv, Gemm and MatMul with constant weights only)")
        if why is not None:
            return why
        if n.op == "Gemm" and int(n.attrs.get("transA", 0) or 0):
            return "Gemm with transA"
        why = super().why_not(g, n)
        if why is not None:
            return why
        K = reduction_size(g, n)
        if not arith.a16_bound_ok(K):
            return f"more than {arith.A16_MAX_K} products per output (K={K})"
        return None

    def quantize_weights(self, w, axis, s_in, bias, where, **opts):
        w_q, s_w = arith.quantize_weight_a16(w, axis, s_in, bias, where=where)
        return w_q, s_w, {}

    def lower(self, q, n, in_qp, out_qp, **opts):
        where = f"node {n.name!r} ({n.op})"
        p_out = out_qp[0] if out_qp else None
        if p_out is None:
            raise ModelError(f"{where}: A16W8 has no float-output form", hint="give the node int16 output qparams")
        for p, what in ((in_qp[0], "input"), (p_out, "output")):
            if int(p.zero_point) != 0:
                raise ModelError(f"{where}: A16W8 {what} zero point {int(p.zero_point)} (int16 activations are "
                                 "symmetric, zero point 0)")
        params = super().lower(q, n, in_qp, out_qp, **opts)
        params["qmin"], params["qmax"] = clamp(n.attrs.get("_act"), p_out, (arith.A16_QMIN, arith.A16_QMAX))
        params["out_dtype"] = "int16"      # shape inference's element type of the result
        return params

    def run(self, n, args):
        p = n.attrs["_q"]
        x, w, b = np.asarray(args[0], np.int16), args[1], args[2]
        common = dict(qmin=p["qmin"], qmax=p["qmax"], wide=True)
        if n.op == "Conv":
            strides, dil = spatial_attrs(n, w.ndim - 2)
            y = intref.conv_int8(x, 0, w, b, p["M"], p["n"], p["zp_out"], strides, p["pads"], dil,
                                 int(n.attrs.get("group", 1)), **common)
        elif n.op == "Gemm":
            y = intref.gemm_int8(x, 0, w, b, p["M"], p["n"], p["zp_out"], int(n.attrs.get("transB", 0)), **common)
        else:
            y = intref.matmul_int8(x, 0, w, b, p["M"], p["n"], p["zp_out"], **common)
        return (y,)

    def decode(self, opdef, raw, tv):
        return {**super().decode(opdef, raw, tv), "out_dtype": "int16"}

    def recorded(self, raw, out_dtype):
        return out_dtype == "int16"

    def weight_layout(self, g, n):
        return LAYOUT_PLAIN
