"""Kinds that reduce over windows or axes: "avgpool" (AveragePool, GlobalAveragePool,
ReduceMean: sums of (q - zp) in int32, requantised with s_in / (s_out * n), one multiplier per
distinct window count) and "softmax" (int8 in, int8 out through an exp table, on fixed output
qparams)."""
from __future__ import annotations

import numpy as np

from ...ir import QParams
from .. import arith, intref
from .base import QuantKind, has_pads, register_kind, static_shape


@register_kind
class AvgPool(QuantKind):
    """A windowed pool (an op with `pads`) has one multiplier per window count (`mults`); a mean
    over whole axes has one (M, n) and its `axes`."""

    name = "avgpool"
    attrs = ("zp_in", "zp_out", "mult_count", "mult_M", "mult_shift", "M", "shift")

    def why_not(self, g, n):
        if static_shape(g, n.inputs[0]) is None:
            return "needs a static input shape"
        if has_pads(n):
            if n.attrs.get("auto_pad", "NOTSET") != "NOTSET":
                return "auto_pad pooling"
            if any(d != 1 for d in (n.attrs.get("dilations") or [])):
                return "dilated average pooling"
        elif len(n.inputs) > 1 and n.inputs[1] and n.inputs[1] not in g.consts:
            return "axes are not constant"
        return None

    def lower(self, q, n, in_qp, out_qp, **opts):
        x_qp, p_out = in_qp[0], out_qp[0]
        xs = static_shape(q, n.inputs[0])
        params = dict(zp_in=int(x_qp.zero_point), zp_out=int(p_out.zero_point))
        if has_pads(n):
            counts = intref.avgpool_counts(xs[2:], n.attrs["kernel_shape"], n.attrs.get("strides"),
                                           n.attrs.get("pads"), int(n.attrs.get("count_include_pad", 0)),
                                           int(n.attrs.get("ceil_mode", 0)))
            params["mults"] = arith.avgpool_multipliers(x_qp.scale, p_out.scale, counts)
            return params
        if n.op == "GlobalAveragePool":
            axes = tuple(range(2, len(xs)))
        else:
            ax = q.consts.get(n.inputs[1]) if len(n.inputs) > 1 and n.inputs[1] else None
            if ax is None or ax.size == 0:
                axes = tuple(range(len(xs)))
            else:
                axes = tuple(int(a) % len(xs) for a in ax.reshape(-1))
        count = int(np.prod([xs[a] for a in axes]))
        (M, sh), = arith.avgpool_multipliers(x_qp.scale, p_out.scale, [count]).values()
        params.update(axes=axes, M=M, n=sh)
        return params

    def run(self, n, args):
        p = n.attrs["_q"]
        if "mults" in p:
            return (intref.avgpool_int8(args[0], p["zp_in"], n.attrs["kernel_shape"], n.attrs.get("strides"),
                                        n.attrs.get("pads"), int(n.attrs.get("count_include_pad", 0)), p["mults"],
                                        p["zp_out"], int(n.attrs.get("ceil_mode", 0))),)
        keep = 1 if n.op == "GlobalAveragePool" else int(n.attrs.get("keepdims", 1))
        return (intref.mean_int8(args[0], p["zp_in"], p["axes"], keep, p["M"], p["n"], p["zp_out"]),)

    def encode(self, g, n, q):
        a = dict(zp_in=q["zp_in"], zp_out=q["zp_out"])
        if "mults" in q:
            counts = sorted(q["mults"])
            a["mult_count"] = np.asarray(counts, np.int32)
            a["mult_M"] = np.asarray([q["mults"][c][0] for c in counts], np.int64).astype(np.int32)
            a["mult_shift"] = np.asarray([q["mults"][c][1] for c in counts], np.int32)
        else:
            a.update(M=q["M"], shift=q["n"], axes=sorted(int(x) for x in q["axes"]))
        return a

    def decode(self, opdef, raw, tv):
        q = dict(zp_in=raw["zp_in"], zp_out=raw["zp_out"])
        if "mult_count" in raw:
            q["mults"] = {int(c): (int(m), int(s)) for c, m, s in zip(tv("mult_count"), tv("mult_M"), tv("mult_shift"))}
        else:
            q.update(axes=tuple(raw["axes"]), M=raw["M"], n=raw["shift"])
        return q


@register_kind
class Softmax(QuantKind):
    """The output qparams are fixed (arith.SOFTMAX_SCALE, SOFTMAX_ZP): lowering sets them."""

    name = "softmax"
    attrs = ("exp_table",)

    def why_not(self, g, n):
        info = g.tensor_info(n.inputs[0])
        if n.attrs.get("coerce_2d") and (info.rank is None or
                                         int(n.attrs.get("axis", 1)) % max(info.rank, 1) != info.rank - 1):
            return "legacy (opset < 13) softmax over several axes"
        return None

    def lower(self, q, n, in_qp, out_qp, **opts):
        fixed = QParams(np.float32(arith.SOFTMAX_SCALE), np.int32(arith.SOFTMAX_ZP))
        q.qparams[n.outputs[0]] = fixed
        out_qp[0] = fixed
        return {"table": arith.softmax_table(in_qp[0].scale)}

    def run(self, n, args):
        return (intref.softmax_int8(args[0], n.attrs["_q"]["table"], int(n.attrs.get("axis", -1))),)

    def encode(self, g, n, q):
        return {"exp_table": np.asarray(q["table"], np.int32).reshape(256)}

    def decode(self, opdef, raw, tv):
        return {"table": tv("exp_table")}
