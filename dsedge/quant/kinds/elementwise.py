"""Elementwise kinds: "table" (a unary function of one int8 value, or a dsedge.Elementwise
program, as a 256-entry table built in float64), "add" (Add/Sub: two rescaled int64 terms, one
rounding) and "mul" (an int32 product, requantised)."""
from __future__ import annotations

import numpy as np

from ...ops import REGISTRY
from .. import arith, intref
from .base import QuantKind, clamp, public_attrs, quantize_const_operand, register_kind, scalar_const


@register_kind
class Table(QuantKind):
    name = "table"
    attrs = ("table",)

    def why_not(self, g, n):
        d = REGISTRY.get(n.op, n.domain)
        extra = [i for i in n.inputs[1:] if i]
        if any(not scalar_const(g, i) for i in extra):
            return "parameters are not scalar constants"
        rank = g.tensor_info(n.inputs[0]).rank
        if any(g.consts[i].ndim > 0 and (rank is None or g.consts[i].ndim > rank) for i in extra):
            return "a parameter broadcasts the output to a higher rank"
        if d is None:
            return "unknown op"
        return None

    def lower(self, q, n, in_qp, out_qp, **opts):
        """The table of the op's float reference (its scalar parameters bound) on every int8
        input value, clamped by a fused activation."""
        d = REGISTRY.get(n.op, n.domain)
        p_out = out_qp[0]
        extra = [q.consts[i].astype(np.float64).reshape(()) if i else None for i in n.inputs[1:]]   # one element each
        attrs = public_attrs(n)

        def f(x):
            return np.asarray(d.call([x] + extra, attrs)[0], np.float64)

        table = arith.make_table(f, in_qp[0].scale, int(in_qp[0].zero_point), p_out.scale, int(p_out.zero_point),
                                 *clamp(n.attrs.get("_act"), p_out), where=f"node {n.name!r} ({n.op})")
        return {"table": table}

    def run(self, n, args):
        return (intref.table_int8(args[0], n.attrs["_q"]["table"]),)

    def encode(self, g, n, q):
        return {"table": np.asarray(q["table"], np.int8).reshape(256)}

    def decode(self, opdef, raw, tv):
        return {"table": tv("table")}


class _Binary(QuantKind):
    """Two int8 operands with their own (scale, zp); a float constant operand is quantised on
    its own range first."""

    def why_not(self, g, n):
        if len([i for i in n.inputs if i]) != 2:
            return "needs two inputs"
        return None

    def lower(self, q, n, in_qp, out_qp, **opts):
        p_out = out_qp[0]
        for k in (0, 1):
            if n.inputs[k] in q.consts and q.consts[n.inputs[k]].dtype.kind == "f":
                quantize_const_operand(q, n, k, in_qp)
        a, b = in_qp[0], in_qp[1]
        qmin, qmax = clamp(n.attrs.get("_act"), p_out)
        params = dict(za=int(a.zero_point), zb=int(b.zero_point), zp_out=int(p_out.zero_point), qmin=qmin, qmax=qmax)
        params.update(self.multipliers(a.scale, b.scale, p_out.scale))
        return params

    def multipliers(self, s_a, s_b, s_out) -> dict:
        raise NotImplementedError


@register_kind
class Add(_Binary):
    name = "add"
    attrs = ("za", "zb", "Ma", "Mb", "shift", "zp_out", "qmin", "qmax")

    def multipliers(self, s_a, s_b, s_out):
        Ma, Mb, sh = arith.add_params(s_a, s_b, s_out)
        return dict(Ma=Ma, Mb=Mb, n=sh)

    def run(self, n, args):
        p = n.attrs["_q"]
        fn = intref.sub_int8 if n.op == "Sub" else intref.add_int8
        return (fn(args[0], p["za"], args[1], p["zb"], p["Ma"], p["Mb"], p["n"], p["zp_out"], p["qmin"], p["qmax"]),)

    def encode(self, g, n, q):
        return dict(za=q["za"], zb=q["zb"], Ma=q["Ma"], Mb=q["Mb"], shift=q["n"], zp_out=q["zp_out"],
                    qmin=q["qmin"], qmax=q["qmax"])

    def decode(self, opdef, raw, tv):
        return dict(za=raw["za"], zb=raw["zb"], Ma=raw["Ma"], Mb=raw["Mb"], n=raw["shift"], zp_out=raw["zp_out"],
                    qmin=raw["qmin"], qmax=raw["qmax"])


@register_kind
class Mul(_Binary):
    name = "mul"
    attrs = ("za", "zb", "M", "shift", "zp_out", "qmin", "qmax")

    def multipliers(self, s_a, s_b, s_out):
        M, sh = arith.mul_multiplier(s_a, s_b, s_out)
        return dict(M=int(M), n=int(sh))

    def run(self, n, args):
        p = n.attrs["_q"]
        return (intref.mul_int8(args[0], p["za"], args[1], p["zb"], p["M"], p["n"], p["zp_out"], p["qmin"], p["qmax"]),)

    def encode(self, g, n, q):
        return dict(za=q["za"], zb=q["zb"], M=q["M"], shift=q["n"], zp_out=q["zp_out"], qmin=q["qmin"],
                    qmax=q["qmax"])

    def decode(self, opdef, raw, tv):
        return dict(za=raw["za"], zb=raw["zb"], M=raw["M"], n=raw["shift"], zp_out=raw["zp_out"],
                    qmin=raw["qmin"], qmax=raw["qmax"])
