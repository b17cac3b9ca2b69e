"""The "act_matmul" kind: a MatMul of two int8 activations (attention scores Q·Kᵀ and
attention·V in a transformer), docs/quant-arith.md §14.

MatMul's QuantRule kind is "weighted" (a constant right operand: int8 weights per column);
this kind is in its `forms` and claims the nodes whose right operand is not a constant. Both
operands are then activations (int8, per tensor, asymmetric: roles ACT, ACT); a constant left
operand is quantised on its own range like a constant operand of Mul.

Arithmetic (exact; numpy and C bit-identical): `acc = Σ_k (qa - za)(qb - zb)` in int32 — every
product has |.| <= 255 * 255, so `K * 255 * 255 < 2^31` (K <= 33025) bounds every partial sum,
and a node with a larger K, or a K not known when quantising, stays float — then the one
requantisation rule with (M, n) of `(s_a * s_b) / s_out` (float64, as Mul), or, when every
reader of the result is float, the float output `float32(acc) * float32(s_a * s_b)` and a fused
clamp in float32 (the weighted ops' "int8-fout"). Batch axes broadcast and 1-D operands behave
as numpy/ONNX MatMul.

`.dse` (docs/kernels.md): the node keeps its two inputs (int8) and ONNX MatMul's op id; INT
`za`, `zb`, `zp_out`, `qmin`, `qmax`, `float_out` and either INT `M`, `shift` or FLOAT
`out_scale`. C kernel `dse_i8_matmul_act__ref` (runtimes/c/kernels/ref/matmul_act.c).
"""
from __future__ import annotations

import numpy as np

from ...ops.fused import apply_activation
from ...ops.registry import ACT
from .. import arith, intref
from .base import QuantKind, clamp, quantize_const_operand, register_kind


def inner_size(g, n) -> int | None:
    """K of MatMul node n (A's last axis, or B's axis -2; a 1-D B: its only axis), None when
    neither shape says it."""
    if len(n.inputs) < 2:
        return None
    for i, axis in ((n.inputs[0], -1), (n.inputs[1], -2)):
        info = g.tensor_info(i) if i else None
        if i in g.consts:
            shape = tuple(g.consts[i].shape)
        elif info is not None and info.shape is not None:
            shape = tuple(info.shape)
        else:
            continue
        if not shape:
            continue
        d = shape[axis] if len(shape) >= 2 else shape[0]
        if isinstance(d, (int, np.integer)) and int(d) >= 0:
            return int(d)
    return None


@register_kind
class ActMatMul(QuantKind):
    name = "act_matmul"
    attrs = ("za", "zb", "M", "shift", "zp_out", "qmin", "qmax", "float_out", "out_scale")
    roles = (ACT, ACT)
    float_output = True

    def claims(self, g, n):
        """The weighted form needs a constant right operand: this one takes the others."""
        return len(n.inputs) >= 2 and bool(n.inputs[1]) and n.inputs[1] not in g.consts

    def why_not(self, g, n):
        if len(n.inputs) != 2 or not all(n.inputs):
            return "needs two inputs"
        if all(i in g.consts for i in n.inputs):
            return "both operands are constant"
        K = inner_size(g, n)
        if K is None:
            return "the inner dimension K is not static (the int32 bound K <= 33025 cannot be proven)"
        if not arith.act_matmul_bound_ok(K):
            return f"int32 accumulator could overflow (K={K} > {arith.ACT_MATMUL_MAX_K})"
        return None

    def lower(self, q, n, in_qp, out_qp, **opts):
        """(za, zb) of the operands; (M, n) of (s_a * s_b) / s_out, or without output qparams
        the float output's scale float32(s_a * s_b)."""
        for k in (0, 1):
            if n.inputs[k] in q.consts and q.consts[n.inputs[k]].dtype.kind == "f":
                quantize_const_operand(q, n, k, in_qp)
        a, b = in_qp[0], in_qp[1]
        p_out = out_qp[0] if out_qp else None
        params = dict(za=int(a.zero_point), zb=int(b.zero_point))
        if p_out is None:
            params.update(float_out=True, out_scale=arith.act_matmul_out_scale(a.scale, b.scale), M=None, n=None,
                          zp_out=0, qmin=arith.QMIN, qmax=arith.QMAX)
        else:
            M, sh = arith.mul_multiplier(a.scale, b.scale, p_out.scale)
            qmin, qmax = clamp(n.attrs.get("_act"), p_out)
            params.update(M=int(M), n=int(sh), zp_out=int(p_out.zero_point), qmin=qmin, qmax=qmax)
        return params

    def run(self, n, args):
        p = n.attrs["_q"]
        if p.get("float_out"):
            acc = intref.matmul_act_int8(args[0], p["za"], args[1], p["zb"], None, None, 0, acc_only=True)
            y = np.asarray(acc, np.int64).astype(np.float32) * np.float32(p["out_scale"])
            if n.attrs.get("_act"):
                y = np.asarray(apply_activation(y, n.attrs["_act"]), np.float32)
            return (y,)
        return (intref.matmul_act_int8(args[0], p["za"], args[1], p["zb"], p["M"], p["n"], p["zp_out"],
                                       p["qmin"], p["qmax"]),)

    def encode(self, g, n, q):
        a = dict(za=int(q["za"]), zb=int(q["zb"]), zp_out=int(q["zp_out"]), qmin=int(q["qmin"]),
                 qmax=int(q["qmax"]), float_out=int(bool(q.get("float_out"))))
        if q.get("float_out"):
            a["out_scale"] = float(np.float32(q["out_scale"]))
        else:
            a["M"], a["shift"] = int(q["M"]), int(q["n"])
        return a

    def decode(self, opdef, raw, tv):
        q = dict(za=int(raw["za"]), zb=int(raw["zb"]), zp_out=int(raw["zp_out"]), qmin=int(raw["qmin"]),
                 qmax=int(raw["qmax"]))
        if raw.get("float_out"):
            q.update(float_out=True, out_scale=np.float32(raw["out_scale"]), M=None, n=None)
        else:
            q.update(M=int(raw["M"]), n=int(raw["shift"]))
        return q

    def recorded(self, raw, out_dtype):
        return "zb" in raw and "za" in raw
