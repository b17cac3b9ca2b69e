"""Weight-bearing kinds: "weighted" (Conv, ConvTranspose, Gemm, MatMul with a constant right
operand: int8 weights per output channel, int32 accumulator, requantised or dequantised) and
"dynamic" (the same ops' weights without calibration: the activation is quantised per
inference, docs/quant-arith.md §12).

The per-channel axis of the weight is the op's `QuantRule.weight_axis`; an op with a `pads`
attribute (Conv, ConvTranspose) is spatial: its auto_pad is resolved into `_q["pads"]` and its
output channels are on axis 1 (the last axis for Gemm/MatMul).
"""
from __future__ import annotations

import numpy as np

from ...artifact import (LAYOUT_I4, LAYOUT_I4_N8K4, LAYOUT_I4_N8K4_T, LAYOUT_I4_T, LAYOUT_N8K4, LAYOUT_N8K4_T,
                         LAYOUT_PLAIN)
from ...errors import ModelError
from ...ir import Graph, Node, QParams
from ...ops.fused import apply_activation
from .. import arith, intref
from .base import KINDS, QuantKind, clamp, explicit_pads, has_pads, register_kind, rule_of, spatial_attrs

DYNAMIC_OPS = ("Conv", "Gemm", "MatMul")
W4_OPS = ("Conv", "Gemm", "MatMul")      # ConvTranspose keeps int8 weights (its K is not contiguous)


def weight_axis(n: Node, w: np.ndarray) -> int:
    """The per-channel axis of node n's weight `w`: its op's output-feature axis."""
    return rule_of(n).axis_for(n.attrs) % w.ndim


def out_channel_axis(n: Node) -> int:
    """The output-channel axis of a weighted node's result: 1 (NCHW) for spatial ops, else -1."""
    return 1 if has_pads(n) else -1


def reduction_size(g: Graph, n: Node) -> int:
    """K, the number of products summed into one accumulator: the weight's elements per output
    channel (an upper bound over output taps for ConvTranspose)."""
    w = g.consts.get(n.inputs[1]) if len(n.inputs) > 1 else None
    if w is None:
        return 1 << 40
    axis = weight_axis(n, w)
    return int(np.prod([d for i, d in enumerate(w.shape) if i != axis]))


def _resolved_pads(n: Node, q: Graph, w: np.ndarray, where: str) -> list[int]:
    pads = explicit_pads(n, q.tensor_info(n.inputs[0]).shape, w.shape[2:])
    if pads is None:
        raise ModelError(f"{where}: auto_pad with strides > 1 needs a static input shape")
    return pads


@register_kind
class Weighted(QuantKind):
    name = "weighted"
    attrs = ("zp_in", "zp_out", "qmin", "qmax", "float_out", "out_scale", "M", "shift")
    weight_bearing = True
    float_output = True

    def constant_weight_why_not(self, g, n, ops, no_form: str) -> str | None:
        """Why a form of the weighted kind with a constant weight (W4A8, A16W8) does not apply to
        `n`: not of this base kind or not one of `ops` (`no_form`), weights not constant, or a
        batched constant MatMul operand; None when those hold."""
        rule = rule_of(n)
        if rule is None or rule.kind != self.base or n.op not in ops:
            return no_form
        w = n.inputs[1] if len(n.inputs) > 1 else ""
        if w not in g.consts:
            return "weights are not constant"
        if n.op == "MatMul" and g.consts[w].ndim != 2:
            return "batched constant MatMul operand"
        return None

    def why_not(self, g, n):
        if n.op == "Conv" and len(n.inputs) > 1 and n.inputs[1] in g.consts and \
                explicit_pads(n, g.tensor_info(n.inputs[0]).shape, g.consts[n.inputs[1]].shape[2:]) is None:
            return "auto_pad with strides > 1 needs a static input shape"
        if n.op == "ConvTranspose" and (n.attrs.get("output_shape") or n.attrs.get("auto_pad", "NOTSET") != "NOTSET"):
            return "ConvTranspose with output_shape/auto_pad"
        return None

    weight_suffix = "_q"          # the quantised weight constant's name: the float one's + this

    def quantize_weights(self, w, axis, s_in, bias, where, wmax: int = arith.WMAX, **opts):
        """(w_q int8 values in w's shape, channel scales float32[C], extra lowered params);
        `wmax` 63 for 7-bit weights (arith.W7MAX)."""
        w_q, s_w = arith.quantize_weight_per_channel(w, axis, s_in, bias, where=where, wmax=wmax)
        return w_q, s_w, {}

    def lower(self, q, n, in_qp, out_qp, *, bias_shift=None, weight_q=None, **opts):
        """`weight_q` = (w_q, scales): weight values chosen by the planner (e.g. rounding.py)
        on those per-channel scales; used for every channel whose scale is the one derived here.
        Without output qparams the accumulator is dequantised (a float output). `opts` go to
        quantize_weights (W4A8: group)."""
        where = f"node {n.name!r} ({n.op})"
        p_out = out_qp[0] if out_qp else None
        x_qp = in_qp[0]
        w = q.consts[n.inputs[1]]
        axis = weight_axis(n, w)
        C = w.shape[axis]
        bias = np.zeros(C, np.float64)
        if len(n.inputs) > 2 and n.inputs[2]:
            bias = np.broadcast_to(q.consts[n.inputs[2]].astype(np.float64).reshape(-1), (C,)).copy()
        if bias_shift is not None:
            bias = bias - np.asarray(bias_shift, np.float64).reshape(-1)[:C]
        w_q, s_w, extra = self.quantize_weights(w, axis, x_qp.scale, bias.astype(np.float32), where, **opts)
        if weight_q is not None:
            wo, so = weight_q
            same = (np.asarray(so, np.float32) == s_w).reshape([-1 if i == axis % w.ndim else 1 for i in range(w.ndim)])
            w_q = np.where(same, np.asarray(wo, np.int8), w_q).astype(np.int8)
        b_q = arith.quantize_bias(bias.astype(np.float32), x_qp.scale, s_w, where=where)
        wn = q.add_const(n.inputs[1] + self.weight_suffix, w_q)
        q.qparams[wn] = QParams(s_w, np.zeros(C, np.int32), np.dtype(np.int8), axis)
        bn = q.add_const((n.inputs[2] if len(n.inputs) > 2 and n.inputs[2] else n.name + "_bias") + "_q", b_q)
        s_b = (np.float64(np.float32(x_qp.scale)) * s_w.astype(np.float64)).astype(np.float32)
        q.qparams[bn] = QParams(s_b, np.zeros(C, np.int32), np.dtype(np.int32), 0)
        n.inputs = [n.inputs[0], wn, bn]
        if p_out is None:  # float output: dequantise the accumulator (docs/quant-arith.md)
            params = dict(float_out=True, out_scale=s_b, zp_in=int(x_qp.zero_point), M=None, n=None, zp_out=0,
                          qmin=arith.QMIN, qmax=arith.QMAX)
        else:
            M, sh = arith.conv_multipliers(x_qp.scale, s_w, p_out.scale)
            qmin, qmax = clamp(n.attrs.get("_act"), p_out)
            params = dict(M=np.asarray(M, np.int64), n=np.asarray(sh, np.int64), zp_in=int(x_qp.zero_point),
                          zp_out=int(p_out.zero_point), qmin=qmin, qmax=qmax)
        if has_pads(n):
            params["pads"] = _resolved_pads(n, q, w, where)
        params.update(extra)
        return params

    def run(self, n, args):
        p = n.attrs["_q"]
        x, w, b = args[0], args[1], args[2]
        fout = bool(p.get("float_out"))
        common = dict(qmin=p["qmin"], qmax=p["qmax"], acc_only=fout)
        if n.op == "Conv":
            strides, dil = spatial_attrs(n, w.ndim - 2)
            y = intref.conv_int8(x, p["zp_in"], w, b, p["M"], p["n"], p["zp_out"], strides, p["pads"], dil,
                                 int(n.attrs.get("group", 1)), **common)
        elif n.op == "ConvTranspose":
            strides, dil = spatial_attrs(n, w.ndim - 2)
            y = intref.conv_transpose_int8(x, p["zp_in"], w, b, p["M"], p["n"], p["zp_out"], strides, p["pads"],
                                           dil, int(n.attrs.get("group", 1)), n.attrs.get("output_padding"), **common)
        elif n.op == "Gemm":
            y = intref.gemm_int8(x, p["zp_in"], w, b, p["M"], p["n"], p["zp_out"], int(n.attrs.get("transB", 0)), **common)
        else:
            y = intref.matmul_int8(x, p["zp_in"], w, b, p["M"], p["n"], p["zp_out"], **common)
        if fout:
            y = intref.dequantize_acc(y, p["out_scale"], out_channel_axis(n))
            if n.attrs.get("_act"):
                y = apply_activation(y, n.attrs["_act"])
        return (y,)

    def encode(self, g, n, q):
        a = dict(zp_in=int(q["zp_in"]), zp_out=int(q["zp_out"]), qmin=int(q["qmin"]), qmax=int(q["qmax"]),
                 float_out=int(bool(q.get("float_out"))))
        if q.get("float_out"):
            a["out_scale"] = np.asarray(q["out_scale"], np.float32).reshape(-1)
        else:
            a["M"] = np.asarray(q["M"], np.int64).astype(np.int32).reshape(-1)
            a["shift"] = np.asarray(q["n"], np.int64).astype(np.int32).reshape(-1)
        return a

    def decode(self, opdef, raw, tv):
        q = dict(zp_in=int(raw["zp_in"]), zp_out=int(raw["zp_out"]), qmin=int(raw["qmin"]), qmax=int(raw["qmax"]))
        if raw["float_out"]:
            q.update(float_out=True, out_scale=tv("out_scale"), M=None, n=None)
        else:
            q.update(M=tv("M").astype(np.int64), n=tv("shift").astype(np.int64))
        if "pads" in opdef.attrs:
            q["pads"] = list(raw["pads"])
        return q

    def recorded(self, raw, out_dtype):
        return out_dtype == "int8" or raw.get("float_out") == 1

    def weight_layout(self, g, n):
        """int8 Conv with group 1 -> N8K4 (W[O][C*kh*kw]); Gemm transB=1 -> N8K4 (W[N][K]),
        transB=0 -> N8K4_T (B[K][N]); MatMul with a rank-2 B -> N8K4_T; grouped/depthwise Conv
        and ConvTranspose keep the plain layout."""
        if len(n.inputs) < 2 or n.inputs[1] not in g.consts:
            return LAYOUT_PLAIN
        w = np.asarray(g.consts[n.inputs[1]])
        if w.dtype != np.int8:
            return LAYOUT_PLAIN
        if n.op == "Conv" and w.ndim >= 3 and int(n.attrs.get("group", 1) or 1) == 1:
            return LAYOUT_N8K4
        if n.op == "Gemm" and w.ndim == 2 and not int(n.attrs.get("transA", 0) or 0):
            return LAYOUT_N8K4 if int(n.attrs.get("transB", 0) or 0) else LAYOUT_N8K4_T
        if n.op == "MatMul" and w.ndim == 2:
            return LAYOUT_N8K4_T
        return LAYOUT_PLAIN


@register_kind
class Dynamic(QuantKind):
    """A weighted op quantised without calibration: int8 weights, a float32 input quantised per
    inference, a float32 output. Only the ops whose integer form ONNX has (ConvInteger,
    MatMulInteger) qualify: ConvTranspose stays float. The dynamic quantiser
    (dsedge/quant/dynamic.py) chooses it; its `.dse` records carry `dynamic=1` and keep the
    plain weight layout (runtimes/c/kernels/ref/dyn_i8.c)."""

    name = "dynamic"
    base = "weighted"
    attrs = ("dynamic", "w_scale")

    def why_not(self, g, n):
        rule = rule_of(n)
        if rule is None or rule.kind != self.base or n.op not in DYNAMIC_OPS:
            return "no dynamic int8 form"
        w = n.inputs[1] if len(n.inputs) > 1 else ""
        if w not in g.consts or g.consts[w].dtype.kind != "f":
            return "weights are not constant"
        wv = g.consts[w]
        if n.op == "MatMul" and wv.ndim != 2:
            return "batched constant MatMul operand"
        if n.op == "Gemm" and (n.attrs.get("transA", 0) or float(n.attrs.get("alpha", 1.0)) != 1.0
                               or float(n.attrs.get("beta", 1.0)) != 1.0):
            return "Gemm with transA/alpha/beta"
        if len(n.inputs) > 2 and n.inputs[2]:
            b = g.consts.get(n.inputs[2])
            if b is None:
                return "bias is not constant"
            C = wv.shape[weight_axis(n, wv)]
            if b.size not in (1, C):
                return "bias is not one value per output channel"
        if g.tensor_info(n.inputs[0]).dtype not in (None, np.dtype(np.float32)):
            return "input is not float32"
        why = KINDS[self.base].why_not(g, n)
        if why is not None:
            return why
        if not arith.accumulator_bound_ok(reduction_size(g, n)):
            return f"int32 accumulator could overflow (K={reduction_size(g, n)})"
        return None

    def lower(self, q, n, in_qp, out_qp, **opts):
        """w -> int8 symmetric per channel (round to nearest), bias -> float32[C] (zeros when
        absent); `_q` = {float_out, w_scale, pads (Conv)}. The activation stays float32."""
        where = f"node {n.name!r} ({n.op})"
        w = q.consts[n.inputs[1]]
        axis = weight_axis(n, w)
        C = w.shape[axis]
        w_q, s_w = arith.quantize_weight_per_channel(w, axis, where=where)
        bias = np.zeros(C, np.float32)
        if len(n.inputs) > 2 and n.inputs[2]:
            bias = np.broadcast_to(q.consts[n.inputs[2]].astype(np.float32).reshape(-1), (C,)).copy()
        wn = q.add_const(n.inputs[1] + "_q", w_q)
        q.qparams[wn] = QParams(s_w, np.zeros(C, np.int32), np.dtype(np.int8), axis)
        bn = q.add_const((n.inputs[2] if len(n.inputs) > 2 and n.inputs[2] else n.name + "_bias") + "_f", bias)
        n.inputs = [n.inputs[0], wn, bn]
        params: dict = {"float_out": True, "w_scale": np.asarray(s_w, np.float32)}
        if has_pads(n):
            params["pads"] = _resolved_pads(n, q, w, where)
        return params

    def run(self, n, args):
        """float32 x -> (s, zp) from its range -> int8 x_q -> exact int32 accumulator of
        (x_q - zp) * w_q -> float32(acc) * float32(s * s_w[c]) + bias[c] -> the fused
        activation in float32."""
        p = n.attrs["_q"]
        x, w, b = np.asarray(args[0], np.float32), args[1], args[2]
        s, zp = arith.dynamic_qparams(x)
        xq = arith.quantize(x, s, zp)
        zero = np.zeros(len(p["w_scale"]), np.int32)
        if n.op == "Conv":
            strides, dil = spatial_attrs(n, w.ndim - 2)
            acc = intref.conv_int8(xq, zp, w, zero, None, None, 0, strides, p["pads"], dil,
                                   int(n.attrs.get("group", 1)), acc_only=True)
        elif n.op == "Gemm":
            acc = intref.gemm_int8(xq, zp, w, zero, None, None, 0, int(n.attrs.get("transB", 0)), acc_only=True)
        else:
            acc = intref.matmul_int8(xq, zp, w, zero, None, None, 0, acc_only=True)
        y = intref.dynamic_rescale(acc, arith.dynamic_out_scale(s, p["w_scale"]), b, out_channel_axis(n))
        if n.attrs.get("_act"):
            y = np.asarray(apply_activation(y, n.attrs["_act"]), np.float32)
        return (y,)

    def encode(self, g, n, q):
        return {"dynamic": 1, "w_scale": np.asarray(q["w_scale"], np.float32).reshape(-1)}

    def decode(self, opdef, raw, tv):
        q = {"float_out": True, "w_scale": tv("w_scale")}
        if "pads" in opdef.attrs:
            q["pads"] = list(raw["pads"])
        return q

    def recorded(self, raw, out_dtype):
        return raw.get("dynamic") == 1


@register_kind
class W4A8(Weighted):
    """A weighted op with int4 weights and int8 activations (docs/quant-arith.md §13): codes
    q in [-7, 7] on the per-channel scale s[c] (zp 0), optionally with integer multipliers
    m[c, g] in [1, 18] per group of `w4_group` consecutive k of the W[C][K] view (real weight
    s[c] * m[c, g] * q). Its arithmetic is exactly the int8 weighted kind's with the int8
    weights m*q (the kernels sum each group's products and add m times the partial sum), so
    the integer reference is Weighted's on `arith.w4_effective`; the multipliers, bias, M and
    n derive from s[c] as for int8. Conv (any group), Gemm and MatMul with a constant 2-D
    right operand; the quantiser chooses it for nodes of the weighted kind (QuantConfig
    `weight_bits=4`). `.dse`: the weight is an int4 constant in layout 6 / 7 (per channel, where
    the int8 form packs: Conv group 1, Gemm, MatMul) or 3 / 4 (groups, depthwise and grouped
    Conv; `weight_layout`), the node carries INT `w4_group` (0: per channel) and, with
    groups, the int8 TENSOR `w4_mul` (C x ceil(K/group), row-major)."""

    name = "w4a8"
    base = "weighted"
    attrs = Weighted.attrs + ("w4_group", "w4_mul")

    def why_not(self, g, n, group: int = 0):
        why = self.constant_weight_why_not(g, n, W4_OPS, "no int4-weight form (ConvTranspose keeps int8 weights)")
        if why is not None:
            return why
        if group not in arith.W4_GROUPS:
            return f"group size {group} is not one of {arith.W4_GROUPS}"
        why = super().why_not(g, n)
        if why is not None:
            return why
        K = reduction_size(g, n)
        if not arith.accumulator_bound_ok(K, wmax=arith.w4_wmax(group)):
            return f"int32 accumulator could overflow (K={K})"
        return None

    weight_suffix = "_q4"

    def quantize_weights(self, w, axis, s_in, bias, where, group: int = 0):
        """int4 codes (in int8) per channel or with integer group multipliers (the lowering and
        the planner's `weight_q` = (codes, channel scales) are Weighted's)."""
        w_q, s_w, mul = arith.quantize_weight_int4(w, axis, s_in, bias, group, where=where)
        return w_q, s_w, {"w4_group": int(group), "w4_mul": mul}

    def run(self, n, args):
        p = n.attrs["_q"]
        w = np.asarray(args[1])
        w8 = arith.w4_effective(w, weight_axis(n, w), p.get("w4_mul"), int(p.get("w4_group", 0)))
        return super().run(n, [args[0], w8] + list(args[2:]))

    def encode(self, g, n, q):
        a = super().encode(g, n, q)
        a["w4_group"] = int(q.get("w4_group", 0))
        if a["w4_group"]:
            a["w4_mul"] = np.asarray(q["w4_mul"], np.int8).reshape(-1)
        return a

    def decode(self, opdef, raw, tv):
        q = super().decode(opdef, raw, tv)
        q["w4_group"] = int(raw["w4_group"])
        q["w4_mul"] = None
        if q["w4_group"]:
            C = len(q["out_scale"] if q.get("float_out") else q["M"])
            m = tv("w4_mul").astype(np.int8)
            q["w4_mul"] = m.reshape(C, -1)
        return q

    def recorded(self, raw, out_dtype):
        return "w4_group" in raw

    def weight_layout(self, g, n):
        """Per channel (`w4_group` 0) where the int8 form packs its weights (Conv with group 1, Gemm,
        MatMul with a 2-D B): the int4 N8K4 blocks, layout 6 (W[O][K] rows: Conv, Gemm transB=1) or
        7 (B[K][N]: Gemm transB=0, MatMul), which the AVX2 kernels expand to int8 blocks; otherwise
        (depthwise and grouped Conv, group multipliers) each row packed along K: layout 3 (Conv,
        Gemm transB=1) or 4 (Gemm transB=0, MatMul)."""
        rows = n.op == "Conv" or (n.op == "Gemm" and int(n.attrs.get("transB", 0) or 0))
        w = g.consts.get(n.inputs[1]) if len(n.inputs) > 1 else None
        per_channel = not int((n.attrs.get("_q") or {}).get("w4_group", 0) or 0)
        n8k4 = per_channel and w is not None and (
            (n.op == "Conv" and np.ndim(w) >= 3 and int(n.attrs.get("group", 1) or 1) == 1) or
            (n.op in ("Gemm", "MatMul") and np.ndim(w) == 2))
        if n8k4:
            return LAYOUT_I4_N8K4 if rows else LAYOUT_I4_N8K4_T
        return LAYOUT_I4 if rows else LAYOUT_I4_T
