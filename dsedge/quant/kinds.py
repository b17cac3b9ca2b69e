"""The int8 form of each quantisation kind: lowering (integer parameters) and execution.

Every op declares a `QuantRule(kind, roles)` in the registry; this file is the one table
that turns a kind into
  * `lower_node(q, node, in_qp, out_qp)`: derive the node's integer parameters once (in
    Python, float64 from the stored float32 scales, dsedge/quant/arith.py), replace its
    weight/bias constants by int8/int32 tensors, store the parameters in `attrs["_q"]`;
  * `run_int(node, args)`: the integer reference of the lowered node (intref.py kernels);
    the interpreter calls it for every node that carries `_q`.
`supports(g, node)` says whether the node's attributes and shapes allow its int8 form.

Kinds: weighted, bytes, minmax, table, add, mul, avgpool, concat, softmax (see registry.py),
and "dynamic": a weighted op (Conv, Gemm, MatMul) quantised without calibration, whose
activation is quantised per inference (`dynamic_why_not`, `lower_dynamic`; arithmetic in
docs/quant-arith.md §12). It is not an op's QuantRule kind: the dynamic quantiser
(dsedge/quant/dynamic.py) chooses it for the weighted kind's ops.
"""
from __future__ import annotations

import math

import numpy as np

from ..errors import DseError, ModelError
from ..interp import register_int_reference
from ..ir import Graph, Node, QParams
from ..ops import REGISTRY
from ..ops.fused import apply_activation
from ..ops.nn import same_pads
from ..ops.registry import ACT
from . import arith, intref

_CHANNEL_AXIS = {"Conv": 0, "ConvTranspose": 1}


def rule_of(n: Node):
    d = REGISTRY.get(n.op, n.domain)
    return None if d is None else d.quant


def weight_axis(n: Node, w: np.ndarray) -> int:
    if n.op in _CHANNEL_AXIS:
        return _CHANNEL_AXIS[n.op]
    if n.op == "Gemm":
        return 0 if n.attrs.get("transB", 0) else 1
    return w.ndim - 1  # MatMul: the output-feature axis of the constant right operand


def reduction_size(g: Graph, n: Node) -> int:
    """K, the number of products summed into one accumulator."""
    w = g.consts.get(n.inputs[1]) if len(n.inputs) > 1 else None
    if w is None:
        return 1 << 40
    if n.op == "Conv":
        return int(np.prod(w.shape[1:]))
    if n.op == "ConvTranspose":
        return int(w.shape[0] * np.prod(w.shape[2:]))  # upper bound over output taps
    if n.op == "Gemm":
        return int(w.shape[1] if n.attrs.get("transB", 0) else w.shape[0])
    return int(w.shape[0])


def _static(g: Graph, name: str):
    info = g.tensor_info(name)
    return tuple(info.shape) if info.is_static else None


def _scalar_const(g: Graph, name: str) -> bool:
    return bool(name) and name in g.consts and g.consts[name].size == 1


def why_not(g: Graph, n: Node) -> str | None:
    """None when the node's int8 form applies, else the reason it does not."""
    rule = rule_of(n)
    if rule is None:
        return "no int8 form"
    k = rule.kind
    if k == "weighted":
        if n.op == "Conv" and len(n.inputs) > 1 and n.inputs[1] in g.consts and \
                _explicit_pads(n, g.tensor_info(n.inputs[0]).shape, g.consts[n.inputs[1]].shape[2:]) is None:
            return "auto_pad with strides > 1 needs a static input shape"
        if n.op == "ConvTranspose" and (n.attrs.get("output_shape") or n.attrs.get("auto_pad", "NOTSET") != "NOTSET"):
            return "ConvTranspose with output_shape/auto_pad"
        return None
    if k == "bytes":
        if n.op in ("Resize", "Upsample") and n.attrs.get("mode", "nearest") != "nearest":
            return f"{n.attrs.get('mode')} resize interpolates (not byte-moving)"
        if n.op == "Pad" and len(n.inputs) > 2 and n.inputs[2] and (
                n.inputs[2] not in g.consts or np.any(g.consts[n.inputs[2]] != 0)):
            return "pads with a non-zero value"
        if n.op == "MaxPool" and len([o for o in n.outputs if o]) > 1:
            return "MaxPool indices output"
        return None
    if k == "minmax":
        acts = [i for j, i in enumerate(n.inputs) if i and rule.role(j) == ACT]
        if n.op in ("Min", "Max") and len([a for a in acts if a not in g.consts]) != 1:
            return "Min/Max of two activations with different scales"
        return None
    if k == "table":
        d = REGISTRY.get(n.op, n.domain)
        extra = [i for i in n.inputs[1:] if i]
        if any(not _scalar_const(g, i) for i in extra):
            return "parameters are not scalar constants"
        rank = g.tensor_info(n.inputs[0]).rank
        if any(g.consts[i].ndim > 0 and (rank is None or g.consts[i].ndim > rank) for i in extra):
            return "a parameter broadcasts the output to a higher rank"
        if d is None:
            return "unknown op"
        return None
    if k in ("add", "mul"):
        if len([i for i in n.inputs if i]) != 2:
            return "needs two inputs"
        return None
    if k == "avgpool":
        if n.op == "AveragePool":
            if _static(g, n.inputs[0]) is None:
                return "needs a static input shape"
            if n.attrs.get("auto_pad", "NOTSET") != "NOTSET":
                return "auto_pad pooling"
            if any(d != 1 for d in (n.attrs.get("dilations") or [])):
                return "dilated average pooling"
        if n.op == "ReduceMean":
            if _static(g, n.inputs[0]) is None:
                return "needs a static input shape"
            if len(n.inputs) > 1 and n.inputs[1] and n.inputs[1] not in g.consts:
                return "axes are not constant"
        if n.op == "GlobalAveragePool" and _static(g, n.inputs[0]) is None:
            return "needs a static input shape"
        return None
    if k == "concat":
        return None
    if k == "softmax":
        info = g.tensor_info(n.inputs[0])
        if n.attrs.get("coerce_2d") and (info.rank is None or
                                         int(n.attrs.get("axis", 1)) % max(info.rank, 1) != info.rank - 1):
            return "legacy (opset < 13) softmax over several axes"
        return None
    return f"unknown quantisation kind {k!r}"


def supports(g: Graph, n: Node) -> bool:
    return why_not(g, n) is None


# -- helpers ----------------------------------------------------------------------------------

def _clamp(act, qp: QParams) -> tuple[int, int]:
    """(qmin, qmax) of a fused clamp activation ('clip', lo, hi) on the output qparams."""
    if not act:
        return arith.QMIN, arith.QMAX
    _, lo, hi = act
    s = np.float64(np.float32(qp.scale))
    zp = int(qp.zero_point)
    qmin = arith.QMIN if lo == float("-inf") else max(arith.QMIN, min(arith.QMAX, zp + int(np.rint(lo / s))))
    qmax = arith.QMAX if hi == float("inf") else max(arith.QMIN, min(arith.QMAX, zp + int(np.rint(hi / s))))
    return qmin, qmax


def _const_qparams(v: np.ndarray) -> QParams:
    s, zp = arith.choose_activation_qparams(float(np.min(v)), float(np.max(v)))
    return QParams(np.float32(s), np.int32(zp))


def _quantize_const_operand(q: Graph, n: Node, k: int, in_qp: list) -> None:
    """A constant operand of an int8 Add/Mul/Concat/Max becomes an int8 constant."""
    name = n.inputs[k]
    v = q.consts[name]
    p = _const_qparams(v.astype(np.float64))
    qv = arith.quantize(v, p.scale, int(p.zero_point))
    new = q.add_const(name + "_q", qv)
    q.qparams[new] = p
    n.inputs[k] = new
    in_qp[k] = p


def _explicit_pads(n: Node, x_shape, kernel) -> list[int] | None:
    """The begin/end pads of a Conv or pool with this kernel, auto_pad resolved (None when
    SAME padding needs an input size that is unknown: see ops.nn.same_pads)."""
    sp = len(kernel)
    mode = n.attrs.get("auto_pad", "NOTSET")
    if mode in ("NOTSET", "", "VALID"):
        return [0] * (2 * sp) if mode == "VALID" else list(n.attrs.get("pads") or [0] * (2 * sp))
    strides = list(n.attrs.get("strides") or [1] * sp)
    dil = list(n.attrs.get("dilations") or [1] * sp)
    sizes = list(x_shape[2:]) if x_shape is not None and len(x_shape) == sp + 2 else None
    return same_pads(mode, sizes, [(k - 1) * d + 1 for k, d in zip(kernel, dil)], strides)


# -- lowering ---------------------------------------------------------------------------------

def lower_node(q: Graph, n: Node, in_qp: list, out_qp: list, *, bias_shift=None, weight_q=None) -> None:
    """Attach integer parameters to an int8 node of the quantised graph `q` (edits q and n).
    `weight_q` = (w_q, scales): int8 weight values chosen by the planner (e.g. rounding.py) on
    those per-channel scales; used for every channel whose scale is the one derived here."""
    kind = rule_of(n).kind
    where = f"node {n.name!r} ({n.op})"
    p_out = out_qp[0] if out_qp else None
    params: dict = {"kind": kind}
    if kind == "weighted":
        x_qp = in_qp[0]
        w = q.consts[n.inputs[1]]
        axis = weight_axis(n, w)
        C = w.shape[axis]
        bias = np.zeros(C, np.float64)
        if len(n.inputs) > 2 and n.inputs[2]:
            bias = np.broadcast_to(q.consts[n.inputs[2]].astype(np.float64).reshape(-1), (C,)).copy()
        if bias_shift is not None:
            bias = bias - np.asarray(bias_shift, np.float64).reshape(-1)[:C]
        w_q, s_w = arith.quantize_weight_per_channel(w, axis, x_qp.scale, bias.astype(np.float32), where=where)
        if weight_q is not None:
            wo, so = weight_q
            same = (np.asarray(so, np.float32) == s_w).reshape([-1 if i == axis % w.ndim else 1 for i in range(w.ndim)])
            w_q = np.where(same, np.asarray(wo, np.int8), w_q).astype(np.int8)
        b_q = arith.quantize_bias(bias.astype(np.float32), x_qp.scale, s_w, where=where)
        wn = q.add_const(n.inputs[1] + "_q", w_q)
        q.qparams[wn] = QParams(s_w, np.zeros(C, np.int32), np.dtype(np.int8), axis)
        bn = q.add_const((n.inputs[2] if len(n.inputs) > 2 and n.inputs[2] else n.name + "_bias") + "_q", b_q)
        s_b = (np.float64(np.float32(x_qp.scale)) * s_w.astype(np.float64)).astype(np.float32)
        q.qparams[bn] = QParams(s_b, np.zeros(C, np.int32), np.dtype(np.int32), 0)
        n.inputs = [n.inputs[0], wn, bn]
        if p_out is None:  # float output: dequantise the accumulator (docs/quant-arith.md)
            params.update(float_out=True, out_scale=s_b, zp_in=int(x_qp.zero_point), M=None, n=None, zp_out=0,
                          qmin=arith.QMIN, qmax=arith.QMAX)
        else:
            M, sh = arith.conv_multipliers(x_qp.scale, s_w, p_out.scale)
            qmin, qmax = _clamp(n.attrs.get("_act"), p_out)
            params.update(M=np.asarray(M, np.int64), n=np.asarray(sh, np.int64), zp_in=int(x_qp.zero_point),
                          zp_out=int(p_out.zero_point), qmin=qmin, qmax=qmax)
        if n.op in ("Conv", "ConvTranspose"):
            pads = _explicit_pads(n, q.tensor_info(n.inputs[0]).shape, w.shape[2:])
            if pads is None:
                raise ModelError(f"{where}: auto_pad with strides > 1 needs a static input shape")
            params["pads"] = pads
    elif kind in ("bytes", "minmax"):
        if n.op == "Pad":
            params["pad_value"] = int(in_qp[0].zero_point)
        if n.op in ("Max", "Min"):
            for k, i in enumerate(n.inputs):
                if i and i in q.consts and k > 0:
                    v = q.consts[i]
                    qv = arith.quantize(v, in_qp[0].scale, int(in_qp[0].zero_point))
                    n.inputs[k] = q.add_const(i + "_q", qv)
                    q.qparams[n.inputs[k]] = in_qp[0]
    elif kind == "table":
        d = REGISTRY.get(n.op, n.domain)
        extra = [q.consts[i].astype(np.float64).reshape(()) if i else None for i in n.inputs[1:]]   # one element each
        attrs = {k: v for k, v in n.attrs.items() if not k.startswith("_")}

        def f(x):
            return np.asarray(d.call([x] + extra, attrs)[0], np.float64)

        table = arith.make_table(f, in_qp[0].scale, int(in_qp[0].zero_point), p_out.scale, int(p_out.zero_point),
                                 *_clamp(n.attrs.get("_act"), p_out), where=where)
        params["table"] = table
    elif kind in ("add", "mul"):
        for k in (0, 1):
            if n.inputs[k] in q.consts and q.consts[n.inputs[k]].dtype.kind == "f":
                _quantize_const_operand(q, n, k, in_qp)
        a, b = in_qp[0], in_qp[1]
        qmin, qmax = _clamp(n.attrs.get("_act"), p_out)
        params.update(za=int(a.zero_point), zb=int(b.zero_point), zp_out=int(p_out.zero_point), qmin=qmin, qmax=qmax)
        if kind == "add":
            Ma, Mb, sh = arith.add_params(a.scale, b.scale, p_out.scale)
            params.update(Ma=Ma, Mb=Mb, n=sh)
        else:
            M, sh = arith.mul_multiplier(a.scale, b.scale, p_out.scale)
            params.update(M=int(M), n=int(sh))
    elif kind == "avgpool":
        x_qp = in_qp[0]
        xs = _static(q, n.inputs[0])
        params.update(zp_in=int(x_qp.zero_point), zp_out=int(p_out.zero_point))
        if n.op == "AveragePool":
            counts = intref.avgpool_counts(xs[2:], n.attrs["kernel_shape"], n.attrs.get("strides"),
                                           n.attrs.get("pads"), int(n.attrs.get("count_include_pad", 0)),
                                           int(n.attrs.get("ceil_mode", 0)))
            params["mults"] = arith.avgpool_multipliers(x_qp.scale, p_out.scale, counts)
        else:
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
    elif kind == "concat":
        for k, i in enumerate(n.inputs):
            if i in q.consts and q.consts[i].dtype.kind == "f":
                _quantize_const_operand(q, n, k, in_qp)
        rescales = []
        for p in in_qp:
            same = np.float32(p.scale) == np.float32(p_out.scale) and int(p.zero_point) == int(p_out.zero_point)
            rescales.append(None if same else tuple(int(v) for v in arith.rescale_multiplier(p.scale, p_out.scale)))
        params.update(rescales=rescales, zps_in=[int(p.zero_point) for p in in_qp], zp_out=int(p_out.zero_point))
    elif kind == "softmax":
        fixed = QParams(np.float32(arith.SOFTMAX_SCALE), np.int32(arith.SOFTMAX_ZP))
        q.qparams[n.outputs[0]] = fixed
        out_qp[0] = fixed
        params["table"] = arith.softmax_table(in_qp[0].scale)
    else:
        raise DseError(f"{where}: no int8 lowering for kind {kind!r}")
    n.attrs["_q"] = params


# -- dynamic quantisation (no calibration) ---------------------------------------------------

DYNAMIC_OPS = ("Conv", "Gemm", "MatMul")


def dynamic_why_not(g: Graph, n: Node) -> str | None:
    """None when node n can be quantised dynamically (int8 weights, activation quantised at run
    time), else why not. Only weighted ops whose integer form ONNX has (ConvInteger,
    MatMulInteger) qualify: ConvTranspose stays float."""
    rule = rule_of(n)
    if rule is None or rule.kind != "weighted" or n.op not in DYNAMIC_OPS:
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
    why = why_not(g, n)
    if why is not None:
        return why
    if not arith.accumulator_bound_ok(reduction_size(g, n)):
        return f"int32 accumulator could overflow (K={reduction_size(g, n)})"
    return None


def lower_dynamic(q: Graph, n: Node) -> None:
    """Dynamic int8 form of a weighted node (edits q and n): w -> int8 symmetric per channel
    (round to nearest), bias -> float32[C] (zeros when absent), `_q` = {kind: dynamic, float_out,
    w_scale, pads (Conv)}. The activation stays float32 and is quantised per inference."""
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
    params: dict = {"kind": "dynamic", "float_out": True, "w_scale": np.asarray(s_w, np.float32)}
    if n.op == "Conv":
        pads = _explicit_pads(n, q.tensor_info(n.inputs[0]).shape, w.shape[2:])
        if pads is None:
            raise ModelError(f"{where}: auto_pad with strides > 1 needs a static input shape")
        params["pads"] = pads
    n.attrs["_q"] = params


def run_dynamic(n: Node, args: list) -> tuple:
    """The reference of a dynamic node (docs/quant-arith.md §12): float32 x -> (s, zp) from its
    range -> int8 x_q -> exact int32 accumulator of (x_q - zp) * w_q -> float32(acc) *
    float32(s * s_w[c]) + bias[c] -> the fused activation in float32."""
    p = n.attrs["_q"]
    x, w, b = np.asarray(args[0], np.float32), args[1], args[2]
    s, zp = arith.dynamic_qparams(x)
    xq = arith.quantize(x, s, zp)
    zero = np.zeros(len(p["w_scale"]), np.int32)
    if n.op == "Conv":
        sp = w.ndim - 2
        strides, dil = _spatial_attrs(n, sp)
        acc = intref.conv_int8(xq, zp, w, zero, None, None, 0, strides, p["pads"], dil,
                               int(n.attrs.get("group", 1)), acc_only=True)
        axis = 1
    elif n.op == "Gemm":
        acc = intref.gemm_int8(xq, zp, w, zero, None, None, 0, int(n.attrs.get("transB", 0)), acc_only=True)
        axis = -1
    else:
        acc = intref.matmul_int8(xq, zp, w, zero, None, None, 0, acc_only=True)
        axis = -1
    y = intref.dynamic_rescale(acc, arith.dynamic_out_scale(s, p["w_scale"]), b, axis)
    if n.attrs.get("_act"):
        y = np.asarray(apply_activation(y, n.attrs["_act"]), np.float32)
    return (y,)


# -- execution --------------------------------------------------------------------------------

def _spatial_attrs(n: Node, sp: int):
    return (list(n.attrs.get("strides") or [1] * sp), list(n.attrs.get("dilations") or [1] * sp))


def run_int(n: Node, args: list) -> tuple:
    """The integer reference of a lowered node: int8 in, int8 out."""
    p = n.attrs["_q"]
    kind = p["kind"]
    if kind == "dynamic":
        return run_dynamic(n, args)
    if kind == "weighted":
        x, w, b = args[0], args[1], args[2]
        fout = bool(p.get("float_out"))
        common = dict(qmin=p["qmin"], qmax=p["qmax"], acc_only=fout)
        if n.op == "Conv":
            sp = w.ndim - 2
            strides, dil = _spatial_attrs(n, sp)
            y = intref.conv_int8(x, p["zp_in"], w, b, p["M"], p["n"], p["zp_out"], strides, p["pads"], dil,
                                 int(n.attrs.get("group", 1)), **common)
        elif n.op == "ConvTranspose":
            sp = w.ndim - 2
            strides, dil = _spatial_attrs(n, sp)
            y = intref.conv_transpose_int8(x, p["zp_in"], w, b, p["M"], p["n"], p["zp_out"], strides, p["pads"],
                                           dil, int(n.attrs.get("group", 1)), n.attrs.get("output_padding"), **common)
        elif n.op == "Gemm":
            y = intref.gemm_int8(x, p["zp_in"], w, b, p["M"], p["n"], p["zp_out"], int(n.attrs.get("transB", 0)), **common)
        else:
            y = intref.matmul_int8(x, p["zp_in"], w, b, p["M"], p["n"], p["zp_out"], **common)
        if fout:
            y = intref.dequantize_acc(y, p["out_scale"], 1 if n.op in _CHANNEL_AXIS else -1)
            if n.attrs.get("_act"):
                y = apply_activation(y, n.attrs["_act"])
        return (y,)
    if kind in ("bytes", "minmax"):
        if n.op == "MaxPool":
            pads = _explicit_pads(n, args[0].shape, n.attrs["kernel_shape"])   # auto_pad resolved
            return (intref.maxpool_int8(args[0], n.attrs["kernel_shape"], n.attrs.get("strides"), pads,
                                        n.attrs.get("dilations"), int(n.attrs.get("ceil_mode", 0))),)
        d = REGISTRY.get(n.op, n.domain)
        attrs = {k: v for k, v in n.attrs.items() if not k.startswith("_")}
        if n.op == "Pad":
            args = list(args[:2]) + [np.int8(p["pad_value"])] + list(args[3:])
        if n.op in ("Resize", "Upsample"):
            y = d.call([args[0].astype(np.float32)] + list(args[1:]), attrs)[0]
            return (np.asarray(y).astype(np.int8),)
        outs = d.call(list(args), attrs)
        return tuple(np.asarray(o).astype(np.int8) if np.asarray(o).dtype.kind == "f" else o for o in outs)
    if kind == "table":
        return (intref.table_int8(args[0], p["table"]),)
    if kind == "add":
        fn = intref.sub_int8 if n.op == "Sub" else intref.add_int8
        return (fn(args[0], p["za"], args[1], p["zb"], p["Ma"], p["Mb"], p["n"], p["zp_out"], p["qmin"], p["qmax"]),)
    if kind == "mul":
        return (intref.mul_int8(args[0], p["za"], args[1], p["zb"], p["M"], p["n"], p["zp_out"], p["qmin"], p["qmax"]),)
    if kind == "avgpool":
        if n.op == "AveragePool":
            return (intref.avgpool_int8(args[0], p["zp_in"], n.attrs["kernel_shape"], n.attrs.get("strides"),
                                        n.attrs.get("pads"), int(n.attrs.get("count_include_pad", 0)), p["mults"],
                                        p["zp_out"], int(n.attrs.get("ceil_mode", 0))),)
        keep = 1 if n.op == "GlobalAveragePool" else int(n.attrs.get("keepdims", 1))
        return (intref.mean_int8(args[0], p["zp_in"], p["axes"], keep, p["M"], p["n"], p["zp_out"]),)
    if kind == "concat":
        return (intref.concat_int8(args, p["zps_in"], int(n.attrs.get("axis", 0)), p["rescales"], p["zp_out"]),)
    if kind == "softmax":
        return (intref.softmax_int8(args[0], p["table"], int(n.attrs.get("axis", -1))),)
    raise DseError(f"node {n.name!r}: no integer reference for kind {kind!r}")


def measure(g: Graph, n: Node, args: list, in_qp: dict, out_qp: QParams) -> np.ndarray:
    """Dequantised output of node n's int8 form on float inputs `args` (for the plan)."""
    rule = rule_of(n)
    mini = Graph(consts={i: g.consts[i] for i in n.inputs if i and i in g.consts})
    for i in n.inputs:
        if i and i not in mini.consts:
            mini.info[i] = g.tensor_info(i)
    node = Node(n.op, list(n.inputs), list(n.outputs), dict(n.attrs), n.name, n.domain)
    qargs, qps = [], []
    for k, (i, a) in enumerate(zip(n.inputs, args)):
        if i and rule.role(k) == ACT and i not in g.consts:
            p = in_qp[i]
            qargs.append(arith.quantize(a, p.scale, int(p.zero_point)))
            qps.append(p)
        else:
            qargs.append(a)
            qps.append(None)
    outs_qp = [out_qp]
    lower_node(mini, node, qps, outs_qp)
    qargs = [mini.consts[i] if (i and i in mini.consts) else a for i, a in zip(node.inputs, qargs)]
    y = run_int(node, qargs)[0]
    return arith.dequantize(y, outs_qp[0].scale, int(outs_qp[0].zero_point)).astype(np.float64)


register_int_reference(run_int)   # the interpreter runs `_q` nodes with it (it never imports upwards)
