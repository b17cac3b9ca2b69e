"""Kinds that move int8 bytes: "bytes" (Reshape, Transpose, Slice, Gather, MaxPool, Pad, nearest
Resize, ...: the output shares the input's (scale, zp)), "minmax" (Min/Max/ReduceMax-like
selection on the shared scale) and "concat" (byte-moving where the input ranges agree, else each
input is requantised to the output's scale)."""
from __future__ import annotations

import numpy as np

from ...ops import REGISTRY
from ...ops.registry import ACT
from .. import arith, intref
from .base import QuantKind, explicit_pads, public_attrs, quantize_const_operand, register_kind, rule_of


@register_kind
class Bytes(QuantKind):
    """The float reference runs on the int8 values (it only moves them); all padding is zp."""

    name = "bytes"
    attrs = ("pad_value",)
    moves_bytes = True
    shares_qparams = True

    def why_not(self, g, n):
        if n.op in ("Resize", "Upsample") and n.attrs.get("mode", "nearest") != "nearest":
            return f"{n.attrs.get('mode')} resize interpolates (not byte-moving)"
        if n.op == "Pad" and len(n.inputs) > 2 and n.inputs[2] and (
                n.inputs[2] not in g.consts or np.any(g.consts[n.inputs[2]] != 0)):
            return "pads with a non-zero value"
        if n.op == "MaxPool" and len([o for o in n.outputs if o]) > 1:
            return "MaxPool indices output"
        return None

    def lower(self, q, n, in_qp, out_qp, **opts):
        return {"pad_value": int(in_qp[0].zero_point)} if n.op == "Pad" else {}

    def run(self, n, args):
        p = n.attrs["_q"]
        if n.op == "MaxPool":
            pads = explicit_pads(n, args[0].shape, n.attrs["kernel_shape"])   # auto_pad resolved
            return (intref.maxpool_int8(args[0], n.attrs["kernel_shape"], n.attrs.get("strides"), pads,
                                        n.attrs.get("dilations"), int(n.attrs.get("ceil_mode", 0))),)
        d = REGISTRY.get(n.op, n.domain)
        attrs = public_attrs(n)
        if n.op == "Pad":
            args = list(args[:2]) + [np.int8(p["pad_value"])] + list(args[3:])
        if n.op in ("Resize", "Upsample"):
            y = d.call([args[0].astype(np.float32)] + list(args[1:]), attrs)[0]
            return (np.asarray(y).astype(np.int8),)
        outs = d.call(list(args), attrs)
        return tuple(np.asarray(o).astype(np.int8) if np.asarray(o).dtype.kind == "f" else o for o in outs)

    def encode(self, g, n, q):
        return {"pad_value": int(q["pad_value"])} if "pad_value" in q else {}

    def decode(self, opdef, raw, tv):
        return {"pad_value": int(raw["pad_value"])} if "pad_value" in raw else {}


@register_kind
class MinMax(Bytes):
    """Selection on one scale: a constant operand is quantised on the activation's qparams."""

    name = "minmax"
    moves_bytes = False

    def why_not(self, g, n):
        rule = rule_of(n)
        acts = [i for j, i in enumerate(n.inputs) if i and rule.role(j) == ACT]
        if n.op in ("Min", "Max") and len([a for a in acts if a not in g.consts]) != 1:
            return "Min/Max of two activations with different scales"
        return None

    def lower(self, q, n, in_qp, out_qp, **opts):
        rule = rule_of(n)
        for k, i in enumerate(n.inputs):
            if i and i in q.consts and k > 0 and rule.role(k) == ACT:
                qv = arith.quantize(q.consts[i], in_qp[0].scale, int(in_qp[0].zero_point))
                n.inputs[k] = q.add_const(i + "_q", qv)
                q.qparams[n.inputs[k]] = in_qp[0]
        return {}


@register_kind
class Concat(QuantKind):
    name = "concat"
    attrs = ("zps_in", "zp_out", "rescale", "rescale_M", "rescale_shift")

    def lower(self, q, n, in_qp, out_qp, **opts):
        p_out = out_qp[0]
        for k, i in enumerate(n.inputs):
            if i in q.consts and q.consts[i].dtype.kind == "f":
                quantize_const_operand(q, n, k, in_qp)
        rescales = []
        for p in in_qp:
            same = np.float32(p.scale) == np.float32(p_out.scale) and int(p.zero_point) == int(p_out.zero_point)
            rescales.append(None if same else tuple(int(v) for v in arith.rescale_multiplier(p.scale, p_out.scale)))
        return dict(rescales=rescales, zps_in=[int(p.zero_point) for p in in_qp], zp_out=int(p_out.zero_point))

    def run(self, n, args):
        p = n.attrs["_q"]
        return (intref.concat_int8(args, p["zps_in"], int(n.attrs.get("axis", 0)), p["rescales"], p["zp_out"]),)

    def encode(self, g, n, q):
        r = q["rescales"]
        return dict(zps_in=list(q["zps_in"]), zp_out=q["zp_out"], rescale=[0 if x is None else 1 for x in r],
                    rescale_M=[0 if x is None else int(x[0]) for x in r],
                    rescale_shift=[0 if x is None else int(x[1]) for x in r])

    def decode(self, opdef, raw, tv):
        return dict(zps_in=list(raw["zps_in"]), zp_out=raw["zp_out"],
                    rescales=[None if not r else (int(m), int(s)) for r, m, s in
                              zip(raw["rescale"], raw["rescale_M"], raw["rescale_shift"])])
