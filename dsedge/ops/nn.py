"""Neural-network ops (ids 1-99): convolution, matrix products, normalisation, pooling,
resizing, the softmax family, recurrent layers and dropout.

Conventions shared by the references below:
  * Layout is ONNX's N C D1..Dn. Spatial attributes (kernel_shape, strides, dilations) have
    one entry per spatial axis; `pads` is [begin_1..begin_n, end_1..end_n].
  * Conv is im2col: the padded input is viewed as windows with `as_strided` (no copy),
    copied once into a (groups, N, C/g*K, P) column matrix and multiplied by the weights
    with one float32 matmul batched over groups. ConvTranspose is its adjoint: one matmul
    gives each input pixel's contribution to its kernel footprint, then one strided
    slice-add per kernel position scatters it (col2im).
  * Pools reduce with one strided slice per kernel position (memory stays O(output)).
  * Resize is separable: every resized axis is resampled on its own with 1 (nearest),
    2 (linear) or 4 (cubic) taps per output index; source coordinates are computed in
    float32 with onnxruntime's formulas so nearest-neighbour ties pick the same pixel.
    Opset-10 Resize and Upsample use nearest_mode "simple" (a dsedge extension of the
    canonical form): floor when upsampling, ceil when downsampling, as those opsets did.
  * Softmax/LogSoftmax/Hardmax take `coerce_2d` (a dsedge extension set by `upgrade` for
    opset < 13): flatten to 2-D at `axis` and normalise over the whole trailing block.
  * Recurrent layers (LSTM, GRU, RNN) loop over time steps only, vectorised over the batch.
Every op has an explicit `infer` rule (shape arithmetic only, no zero-array evaluation).
Unsupported attribute values are rejected at import by `upgrade` (which runs for every
opset) with an UnsupportedOpError, and again by the reference when a graph is built by hand.
"""
from __future__ import annotations

import math

import numpy as np
from numpy.lib.stride_tricks import as_strided, sliding_window_view

from ..artifact import LAYOUT_F32_O32, LAYOUT_F32_P16
from ..errors import UnsupportedOpError
from ..ir import TensorInfo
from .fused import act_fn_name, apply_act_fn
from .half import Fp16Rule, bias_start, dot16, h
from .registry import ACT, BIAS, PARAM, WEIGHT, QuantRule, as_ints, normalize_axis, op, same_infer  # noqa: F401

_AUTO_PADS = ("NOTSET", "", "VALID", "SAME_UPPER", "SAME_LOWER")


def _int(d) -> bool:
    return isinstance(d, (int, np.integer)) and not isinstance(d, bool) and d >= 0


def _prod(xs) -> int:
    return int(np.prod(xs, dtype=np.int64)) if len(xs) else 1


def _unsupported(opname: str, what: str, hint: str | None = None):
    raise UnsupportedOpError(f"{opname}: {what} is not supported", hint=hint)


def _check_auto_pad(opname, auto_pad):
    if auto_pad not in _AUTO_PADS:
        _unsupported(opname, f"auto_pad={auto_pad!r}", "use NOTSET, VALID, SAME_UPPER or SAME_LOWER")


# ---------------------------------------------------------------------------------------
# window geometry shared by Conv and the pools
# ---------------------------------------------------------------------------------------

def _spatial(v, nd, default):
    return [int(a) for a in v] if v else [default] * nd


def same_pads(auto_pad: str, in_sizes, kernel_eff, strides) -> list[int] | None:
    """Begin and end pads (ONNX order: all begins, then all ends) that auto_pad SAME_UPPER or
    SAME_LOWER gives. Along a stride-1 axis the total is kernel_eff - 1 whatever the size (the
    output keeps it); along other axes the size must be known: None when it is not."""
    nd = len(kernel_eff)
    pads = [0] * (2 * nd)
    for i in range(nd):
        n = in_sizes[i] if in_sizes is not None else None
        if strides[i] == 1:
            total = kernel_eff[i] - 1
        elif not _int(n):
            return None
        else:
            total = max(0, (-(-n // strides[i]) - 1) * strides[i] + kernel_eff[i] - n)
        lo = total // 2
        pads[i], pads[nd + i] = (lo, total - lo) if auto_pad == "SAME_UPPER" else (total - lo, lo)
    return pads


def _geometry(in_sizes, kernel, strides, dilations, pads, auto_pad, ceil_mode=0):
    """Per spatial axis: (pad_begin, pad_end, out). `out` is None for a symbolic size."""
    nd = len(kernel)
    s, d = _spatial(strides, nd, 1), _spatial(dilations, nd, 1)
    p = _spatial(pads, 2 * nd, 0)
    _check_auto_pad("Conv/Pool", auto_pad)
    pb, pe, out = [], [], []
    for i in range(nd):
        n, ek = in_sizes[i], (kernel[i] - 1) * d[i] + 1
        b, e = p[i], p[nd + i]
        if auto_pad in ("SAME_UPPER", "SAME_LOWER"):
            if not _int(n):
                pb.append(0), pe.append(0), out.append(None)
                continue
            o = -(-n // s[i])
            b, e = same_pads(auto_pad, [n], [ek], [s[i]])
        else:
            if auto_pad == "VALID":
                b = e = 0
            if not _int(n):
                pb.append(b), pe.append(e), out.append(None)
                continue
            span = n + b + e - ek
            if span < 0:
                raise ValueError(f"kernel {kernel} (dilations {d}) is larger than the padded input {list(in_sizes)}")
            if ceil_mode:
                o = -(-span // s[i]) + 1
                if (o - 1) * s[i] >= n + b:   # a window may not start in the end padding
                    o -= 1
            else:
                o = span // s[i] + 1
        pb.append(b), pe.append(e), out.append(o)
    return pb, pe, out, s, d


def _pad(x, pb, pe, value):
    """Pad the spatial axes (2..) of x; negative end pads crop."""
    if not any(pb) and not any(pe):
        return x
    crop = tuple(slice(0, x.shape[2 + i] + e if e < 0 else None) for i, e in enumerate(pe))
    x = x[(slice(None), slice(None)) + crop]
    width = [(0, 0), (0, 0)] + [(b, max(e, 0)) for b, e in zip(pb, pe)]
    return np.pad(x, width, constant_values=value)


def conv_windows(xp, kernel, strides, dilations):
    """View (N, C, *out, *kernel) of the (already padded) input xp: window `out` of a Conv or
    pool with this kernel, strides and dilations (no copy)."""
    sp = len(kernel)
    eff = [(k - 1) * d + 1 for k, d in zip(kernel, dilations)]
    if any(xp.shape[2 + i] < eff[i] for i in range(sp)):
        raise ValueError(f"kernel {list(kernel)} (dilated {eff}) larger than padded input {xp.shape[2:]}")
    win = sliding_window_view(xp, eff, axis=tuple(range(2, 2 + sp)))
    idx = (slice(None), slice(None)) + tuple(slice(None, None, s) for s in strides) \
        + tuple(slice(None, None, d) for d in dilations)
    return win[idx]


def _window_slices(kidx, d, s, out):
    return tuple(slice(k * dd, k * dd + (o - 1) * ss + 1, ss) for k, dd, ss, o in zip(kidx, d, s, out))


def _pool_infer(attrs, infos, consts):
    x = infos[0]
    if x.shape is None:
        return [TensorInfo(x.dtype, None), TensorInfo(np.dtype(np.int64), None)]
    k = attrs["kernel_shape"]
    _, _, out, _, _ = _geometry(x.shape[2:], k, attrs.get("strides"), attrs.get("dilations"), attrs.get("pads"),
                                attrs.get("auto_pad", "NOTSET"), attrs.get("ceil_mode", 0))
    shape = tuple(x.shape[:2]) + tuple(out)
    return [TensorInfo(x.dtype, shape), TensorInfo(np.dtype(np.int64), shape)]


# ---------------------------------------------------------------------------------------
# Conv, ConvTranspose
# ---------------------------------------------------------------------------------------

def _conv_infer(attrs, infos, consts):
    x, w = infos[0], infos[1]
    if x.shape is None:
        return [TensorInfo(x.dtype, None)]
    k = attrs.get("kernel_shape") or (w.shape[2:] if w.shape is not None else None)
    m = w.shape[0] if w.shape is not None else None
    if k is None or not all(_int(a) for a in k):
        return [TensorInfo(x.dtype, (x.shape[0], m) + (None,) * (len(x.shape) - 2))]
    _, _, out, _, _ = _geometry(x.shape[2:], list(k), attrs.get("strides"), attrs.get("dilations"),
                                attrs.get("pads"), attrs.get("auto_pad", "NOTSET"))
    return [TensorInfo(x.dtype, (x.shape[0], m) + tuple(out))]


def _conv_upgrade(opset, inputs, attrs):
    _check_auto_pad("Conv", attrs.get("auto_pad", "NOTSET"))
    return inputs, attrs


def _conv_shapes(x, w, group, kernel_shape):
    """(kernel, N, C, M, groups) of a Conv, checked."""
    k = list(w.shape[2:])
    if kernel_shape and list(kernel_shape) != k:
        raise ValueError(f"kernel_shape {list(kernel_shape)} does not match the weight shape {list(w.shape)}")
    n, c = x.shape[:2]
    m, g = w.shape[0], int(group)
    if c % g or m % g or w.shape[1] != c // g:
        raise ValueError(f"group={g} does not fit input channels {c} and weight shape {list(w.shape)}")
    return k, n, c, m, g


# binary16 arithmetic of Conv, Gemm and MatMul (docs/quant-arith.md §16; ops/half.py): the
# reduction in the contract's order (Conv: the group's channels, then the kernel offsets
# row-major; Gemm/MatMul: k = 0 .. K-1), vectorised over the outputs

def conv_fp16(x, w, b=None, *, auto_pad="NOTSET", dilations=None, group=1, kernel_shape=None, pads=None,
              strides=None):
    nd = x.ndim - 2
    k, n, c, m, g = _conv_shapes(x, w, group, kernel_shape)
    pb, pe, out, s, d = _geometry(x.shape[2:], k, strides, dilations, pads, auto_pad)
    win = conv_windows(_pad(h(x), pb, pe, 0.0), k, s, d)      # N, C, *out, *k; padded taps are +0
    cg, mg, p, kp = c // g, m // g, _prod(out), _prod(k)
    win = win.reshape((n, g, cg) + tuple(out) + tuple(k))
    order = [1, 0] + list(range(3, 3 + nd)) + [2] + list(range(3 + nd, 3 + 2 * nd))
    cols = win.transpose(order).reshape(g, n * p, cg * kp)    # k index = channel, then offsets row-major
    wg = h(w).reshape(g, mg, cg * kp).transpose(0, 2, 1)
    acc = dot16(cols, wg, bias_start(b, (g, 1, mg)))           # G, N*P, M/G
    return acc.reshape(g, n, p, mg).transpose(1, 0, 3, 2).reshape((n, m) + tuple(out)).astype(np.float32)


def gemm_fp16(a, b, c=None, *, alpha=1.0, beta=1.0, transA=0, transB=0):
    why = _gemm_fp16_attrs(dict(alpha=alpha, beta=beta, transA=transA))
    if why:
        raise UnsupportedOpError(f"Gemm in fp16 arithmetic: {why}")
    bm = b.T if transB else b
    if c is not None and np.shape(c) != (bm.shape[1],):
        raise ValueError(f"Gemm in fp16 arithmetic: C has shape {list(np.shape(c))}, expected [{bm.shape[1]}]")
    return dot16(h(a)[None], h(bm)[None], bias_start(c, (1, 1, bm.shape[1])))[0].astype(np.float32)


def matmul_fp16(a, b):
    if b.ndim != 2 or a.shape[-1] != b.shape[0]:
        raise ValueError(f"MatMul in fp16 arithmetic: needs A [..., K] and a 2-D B [K, N], got {list(a.shape)} "
                         f"and {list(b.shape)}")
    acc = dot16(h(a).reshape(1, -1, b.shape[0]), h(b)[None], 0.0)[0]
    return acc.reshape(a.shape[:-1] + (b.shape[1],)).astype(np.float32)


def _fp16_operands(infos, consts, ranks, what) -> str | None:
    """The common part of §16's eligibility: a float32 input of a rank in `ranks`, a constant
    float weight (input 1) and a constant bias (input 2) if present."""
    x = infos[0]
    if x is None or x.dtype != np.dtype(np.float32):
        return "its input is not float32"
    if x.shape is None:
        return "its input's rank is unknown"
    if len(x.shape) not in ranks:
        return f"{what} with an input of rank {len(x.shape)}"
    if len(consts) < 2 or consts[1] is None:
        return "its weight is not a constant"
    if consts[1].dtype != np.dtype(np.float32):
        return "its weight is not float32"
    if len(infos) > 2 and infos[2] is not None and (consts[2] is None or consts[2].dtype != np.dtype(np.float32)):
        return "its bias is not a float32 constant"
    return None


def _conv_fp16_why_not(attrs, infos, consts):
    return _fp16_operands(infos, consts, (3, 4, 5), "Conv (1 to 3 spatial axes only)")


def _gemm_fp16_attrs(attrs) -> str | None:
    if int(attrs.get("transA", 0) or 0):
        return "Gemm with transA = 1"
    if float(attrs.get("alpha", 1.0)) != 1.0 or float(attrs.get("beta", 1.0)) != 1.0:
        return "Gemm with alpha or beta other than 1"
    return None


def _gemm_fp16_why_not(attrs, infos, consts):
    why = _gemm_fp16_attrs(attrs) or _fp16_operands(infos, consts, (2,), "Gemm")
    if why is None and consts[1].ndim != 2:
        return "Gemm with a weight that is not 2-D"
    if why is None and len(consts) > 2 and consts[2] is not None:
        n = consts[1].shape[0 if int(attrs.get("transB", 0) or 0) else 1]
        if consts[2].shape != (n,):
            return f"Gemm whose C has shape {list(consts[2].shape)}, not [{n}]"
    return why


def _matmul_fp16_why_not(attrs, infos, consts):
    rank = len(infos[0].shape) if infos[0] is not None and infos[0].shape is not None else 0
    why = _fp16_operands(infos, consts, range(1, 2 + rank), "MatMul")
    if why is None and consts[1].ndim != 2:
        return "MatMul with a constant B that is not 2-D"
    return why


# The float Conv's weight in layout 8 (artifact.py LAYOUT_F32_O32: panels of 32 output channels,
# k-major) where the C kernels run it with the output channels in the vector lanes (docs/kernels.md,
# "Conv: 1x1 on small images"): group 1, every kernel dimension 1, unit strides, no padding, one
# image of F32_O32_MIN_P..F32_O32_MAX_P output pixels, not a multiple of 16 (a 7x7 image is 49
# columns: 3 16-wide tiles and a 1-column tail for the SGEMM's tiles that run along the pixels;
# BENCHMARKS.md "Session 18": one-node, 49 px 0.80-0.85x of the SGEMM path, 100 px 0.89x, 196 px
# 0.95x, but 144 and 64 px 0.98-0.99x, 240 and 256 px 1.04-1.05x), output channels a multiple of 32, at
# least 32 input channels (then the 1x1 conv's planned scratch, K * dse__sgemm_pack_cols(K) floats,
# holds the AVX2 kernel's 32 x P accumulators for P <= 256).
F32_O32_MIN_P, F32_O32_MAX_P = 8, 256


def _conv_float_weight_layout(g, n) -> int:
    if len(n.inputs) < 2 or n.inputs[1] not in g.consts:
        return 0
    w = np.asarray(g.consts[n.inputs[1]])
    if w.dtype != np.float32 or w.ndim < 3 or w.shape[0] % 32 or w.shape[1] < 32 or any(int(k) != 1 for k in w.shape[2:]):
        return 0
    a = n.attrs
    if int(a.get("group", 1)) != 1 or any(int(s) != 1 for s in (a.get("strides") or ())) or \
            any(int(p) != 0 for p in (a.get("pads") or ())):
        return 0
    try:
        x, y = g.tensor_info(n.inputs[0]).shape, g.tensor_info(n.outputs[0]).shape
    except Exception:  # noqa: BLE001 - no shape: the plain layout
        return 0
    if x is None or y is None or len(y) != w.ndim or any(not isinstance(d, (int, np.integer)) for d in y) or y[0] != 1:
        return 0
    P = int(np.prod(y[2:], dtype=np.int64))
    return LAYOUT_F32_O32 if F32_O32_MIN_P <= P <= F32_O32_MAX_P and P % 16 and list(y[2:]) == list(x[2:]) else 0


@op("Conv", 1, infer=_conv_infer, upgrade=_conv_upgrade,
    quant=QuantRule("weighted", (ACT, WEIGHT, BIAS), weight_axis=0), fp16=Fp16Rule(conv_fp16, _conv_fp16_why_not),
    takes_act_fn="FusedConv", float_weight_layout=_conv_float_weight_layout)
def conv(x, w, b=None, *, auto_pad="NOTSET", dilations=None, group=1, kernel_shape=None, pads=None,
         strides=None):
    nd = x.ndim - 2
    k, n, c, m, g = _conv_shapes(x, w, group, kernel_shape)
    pb, pe, out, s, d = _geometry(x.shape[2:], k, strides, dilations, pads, auto_pad)
    xp = np.asarray(_pad(x, pb, pe, 0))   # a plain ndarray (feeds may be memory-mapped)
    p = _prod(out)
    kp = _prod(k)
    wd = w.astype(x.dtype, copy=False)
    cg, mg = c // g, m // g
    if g > 1 and cg == 1 and mg == 1:
        # depthwise: accumulate one strided window tap at a time (k*k passes over C*P)
        y = np.zeros((n, m) + tuple(out), dtype=np.float64 if x.dtype == np.float64 else np.float32)
        wk = wd.reshape(m, kp)
        for t, idx in enumerate(np.ndindex(*k)):
            start = tuple(idx[i] * d[i] for i in range(nd))
            sl = (slice(None), slice(None)) + tuple(
                slice(start[i], start[i] + (out[i] - 1) * s[i] + 1, s[i]) for i in range(nd))
            y += xp[sl] * wk[:, t].reshape((m,) + (1,) * nd)
    else:
        y = np.empty((n, m, p), dtype=np.result_type(x.dtype, wd.dtype))
        for gi in range(g):
            xg = xp[:, gi * cg:(gi + 1) * cg]
            wg = wd[gi * mg:(gi + 1) * mg].reshape(mg, cg * kp)
            for bi in range(n):
                if kp == 1 and all(a == 1 for a in s) and not any(pb) and not any(pe):
                    cols = xg[bi].reshape(cg, p)                          # 1x1 conv: a plain GEMM
                else:
                    sb = xg.strides
                    view = as_strided(xg[bi], (cg,) + tuple(k) + tuple(out),
                                      (sb[1],) + tuple(sb[2 + i] * d[i] for i in range(nd))
                                      + tuple(sb[2 + i] * s[i] for i in range(nd)), writeable=False)
                    cols = view.reshape(cg * kp, p)                      # im2col (one copy)
                y[bi, gi * mg:(gi + 1) * mg] = wg @ cols
    y = y.reshape((n, m) + tuple(out))
    if b is not None:
        y = y + b.astype(x.dtype, copy=False).reshape((m,) + (1,) * nd)
    return np.ascontiguousarray(y, dtype=x.dtype)


@op("FusedConv", 1001, domain="dsedge", infer=_conv_infer)
def fused_conv(x, w, b=None, *, act_fn=0, auto_pad="NOTSET", dilations=None, group=1, kernel_shape=None,
               pads=None, strides=None):
    """Conv followed by a fused activation function (OpDef.act_fn code `act_fn`): the form a float
    Conv carrying `_act_fn` is written as in `.dse` (OpDef.takes_act_fn), so that a runtime built
    before fused activations refuses it as an unknown op. In the IR it is a Conv with `_act_fn`."""
    y = conv(x, w, b, auto_pad=auto_pad, dilations=dilations, group=group, kernel_shape=kernel_shape, pads=pads,
             strides=strides)
    return apply_act_fn(y, act_fn_name(int(act_fn))) if act_fn else y


def _convt_geometry(in_sizes, k, strides, dilations, pads, auto_pad, output_padding, output_shape):
    nd = len(k)
    s, d = _spatial(strides, nd, 1), _spatial(dilations, nd, 1)
    op_, p = _spatial(output_padding, nd, 0), _spatial(pads, 2 * nd, 0)
    oshape = list(output_shape)[-nd:] if output_shape else None
    _check_auto_pad("ConvTranspose", auto_pad)
    pb, pe, out = [], [], []
    for i in range(nd):
        n = in_sizes[i]
        if not _int(n):
            pb.append(p[i]), pe.append(p[nd + i]), out.append(oshape[i] if oshape else None)
            continue
        full = (n - 1) * s[i] + (k[i] - 1) * d[i] + 1 + op_[i]
        if oshape is not None or auto_pad in ("SAME_UPPER", "SAME_LOWER"):
            o = oshape[i] if oshape is not None else n * s[i]
            total = max(0, full - o)
            lo = total // 2
            b, e = (lo, total - lo) if auto_pad == "SAME_UPPER" else (total - lo, lo)
        elif auto_pad == "VALID":
            b, e, o = 0, 0, full
        else:
            b, e = p[i], p[nd + i]
            o = full - b - e
        pb.append(b), pe.append(e), out.append(o)
    return pb, pe, out, s, d, op_


def _convt_infer(attrs, infos, consts):
    x, w = infos[0], infos[1]
    g = int(attrs.get("group", 1))
    m = w.shape[1] * g if w.shape is not None and _int(w.shape[1]) else None
    if x.shape is None:
        return [TensorInfo(x.dtype, None)]
    k = attrs.get("kernel_shape") or (w.shape[2:] if w.shape is not None else None)
    if k is None or not all(_int(a) for a in k):
        return [TensorInfo(x.dtype, (x.shape[0], m) + (None,) * (len(x.shape) - 2))]
    _, _, out, _, _, _ = _convt_geometry(x.shape[2:], list(k), attrs.get("strides"), attrs.get("dilations"),
                                         attrs.get("pads"), attrs.get("auto_pad", "NOTSET"),
                                         attrs.get("output_padding"), attrs.get("output_shape"))
    return [TensorInfo(x.dtype, (x.shape[0], m) + tuple(out))]


def _convt_upgrade(opset, inputs, attrs):
    _check_auto_pad("ConvTranspose", attrs.get("auto_pad", "NOTSET"))
    return inputs, attrs


@op("ConvTranspose", 2, infer=_convt_infer, upgrade=_convt_upgrade,
    quant=QuantRule("weighted", (ACT, WEIGHT, BIAS), weight_axis=1))
def conv_transpose(x, w, b=None, *, auto_pad="NOTSET", dilations=None, group=1, kernel_shape=None,
                   output_padding=None, output_shape=None, pads=None, strides=None):
    nd = x.ndim - 2
    k = list(w.shape[2:])
    if kernel_shape and list(kernel_shape) != k:
        raise ValueError(f"kernel_shape {list(kernel_shape)} does not match the weight shape {list(w.shape)}")
    n, c = x.shape[:2]
    g = int(group)
    if c % g or w.shape[0] != c:
        raise ValueError(f"group={g} does not fit input channels {c} and weight shape {list(w.shape)}")
    cg, mg = c // g, w.shape[1]
    ins = list(x.shape[2:])
    pb, pe, out, s, d, _ = _convt_geometry(ins, k, strides, dilations, pads, auto_pad, output_padding,
                                           output_shape)
    kp, p = _prod(k), _prod(ins)
    wm = w.astype(x.dtype, copy=False).reshape(g, cg, mg * kp).transpose(0, 2, 1)[:, None]   # (g,1,mg*kp,cg)
    xm = x.reshape(n, g, cg, p).swapaxes(0, 1)                                              # (g,n,cg,p)
    cols = np.matmul(wm, xm).reshape((g, n, mg) + tuple(k) + tuple(ins))
    size = [max(pb[i] + out[i], (ins[i] - 1) * s[i] + (k[i] - 1) * d[i] + 1) for i in range(nd)]
    buf = np.zeros((n, g, mg) + tuple(size), dtype=x.dtype)
    lead = (slice(None),) * 3
    for kidx in np.ndindex(*k):
        buf[lead + _window_slices(kidx, d, s, ins)] += cols[lead + kidx].swapaxes(0, 1)
    y = buf.reshape((n, g * mg) + tuple(size))[(slice(None), slice(None))
                                               + tuple(slice(pb[i], pb[i] + out[i]) for i in range(nd))]
    if b is not None:
        y = y + b.astype(x.dtype, copy=False).reshape((g * mg,) + (1,) * nd)
    return np.ascontiguousarray(y)


# ---------------------------------------------------------------------------------------
# normalisation
# ---------------------------------------------------------------------------------------

def _bn_upgrade(opset, inputs, attrs):
    attrs = dict(attrs)
    if attrs.get("training_mode", 0):
        _unsupported("BatchNormalization", "training_mode=1",
                     "export the model in inference mode (model.eval() before torch.onnx.export)")
    # spatial (opset < 9) is implied by the shape of scale; is_test/consumed_inputs are
    # no-ops for inference.
    for a in ("spatial", "is_test", "consumed_inputs"):
        attrs.pop(a, None)
    return inputs, attrs


@op("BatchNormalization", 3, infer=same_infer, upgrade=_bn_upgrade)
def batch_norm(x, scale, b, mean, var, *, epsilon=1e-5, momentum=0.9, training_mode=0):
    if training_mode:
        _unsupported("BatchNormalization", "training_mode=1", "export the model in inference mode")
    shape = (-1,) + (1,) * (x.ndim - 2) if np.ndim(scale) == 1 else np.shape(scale)
    f = np.float32 if x.dtype != np.float64 else np.float64
    inv = scale.astype(f) / np.sqrt(var.astype(f) + f(epsilon))
    shift = b.astype(f) - mean.astype(f) * inv
    return (x * inv.reshape(shape) + shift.reshape(shape)).astype(x.dtype)


@op("InstanceNormalization", 4, infer=same_infer)
def instance_norm(x, scale, b, *, epsilon=1e-5):
    axes = tuple(range(2, x.ndim))
    mean = x.mean(axis=axes, keepdims=True)
    var = np.square(x - mean).mean(axis=axes, keepdims=True)
    shape = (-1,) + (1,) * (x.ndim - 2)
    y = (x - mean) / np.sqrt(var + np.asarray(epsilon, x.dtype)) * scale.reshape(shape) + b.reshape(shape)
    return y.astype(x.dtype)


def _ln_infer(attrs, infos, consts):
    x = infos[0]
    st = np.dtype(np.float32) if attrs.get("stash_type", 1) == 1 else x.dtype
    if x.shape is None:
        return [x, TensorInfo(st, None), TensorInfo(st, None)]
    r = len(x.shape)
    a = normalize_axis(attrs.get("axis", -1), r)
    red = tuple(x.shape[:a]) + (1,) * (r - a)
    return [x, TensorInfo(st, red), TensorInfo(st, red)]


@op("LayerNormalization", 5, infer=_ln_infer)
def layer_norm(x, scale, b=None, *, axis=-1, epsilon=1e-5, stash_type=1):
    a = normalize_axis(axis, x.ndim)
    axes = tuple(range(a, x.ndim))
    st = np.float32 if stash_type == 1 else x.dtype
    xf = x.astype(st)
    mean = xf.mean(axis=axes, keepdims=True)
    var = np.square(xf - mean).mean(axis=axes, keepdims=True)
    inv = (1 / np.sqrt(var + st(epsilon))).astype(st)
    y = (xf - mean) * inv * scale.astype(st)
    if b is not None:
        y = y + b.astype(st)
    return y.astype(x.dtype), mean.astype(st), inv


@op("LpNormalization", 12, infer=same_infer)
def lp_norm(x, *, axis=-1, p=2):
    if p not in (1, 2):
        _unsupported("LpNormalization", f"p={p}", "p must be 1 or 2")
    a = normalize_axis(axis, x.ndim)
    norm = np.abs(x).sum(axis=a, keepdims=True) if p == 1 else np.sqrt(np.square(x).sum(axis=a, keepdims=True))
    return (x / norm).astype(x.dtype)


# ---------------------------------------------------------------------------------------
# Gemm, MatMul
# ---------------------------------------------------------------------------------------

def _gemm_infer(attrs, infos, consts):
    a, b = infos[0], infos[1]
    m = a.shape[1 if attrs.get("transA", 0) else 0] if a.shape is not None else None
    n = b.shape[0 if attrs.get("transB", 0) else 1] if b.shape is not None else None
    return [TensorInfo(a.dtype, (m, n))]


def _gemm_upgrade(opset, inputs, attrs):
    attrs = dict(attrs)
    attrs.pop("broadcast", None)   # opset < 7: C always broadcasts in the canonical form
    return inputs, attrs


# A float MatMul's or Gemm's constant B[K][N] in layout 9 (artifact.py LAYOUT_F32_P16: the panels of
# 16 columns that the optimised SGEMMs read in place, docs/kernels.md "Gemm / MatMul"): the plain
# layout's B is copied into those panels on every run (rows >= 48 with the planned buffer) or read
# with a stride of N floats per k. A rank-2 float32 B with N >= 16 (fewer columns: layout 9 is the
# plain bytes), Gemm with transB 0 (transB's dot-product kernel reads B's rows in place: in panels it
# would be the other kernel, other bytes). Measured one node at a time, this layout against the plain
# one (session 19, 1 thread, a Xeon with AVX-512; docs/kernels.md "Gemm / MatMul: B in layout 9"):
# 64x384x1536 0.88x, 64x1536x384 0.88x, 1x384x1536 0.54x, 26x512x6625 0.73x, 64x2048x1000 0.94x,
# 64x384x24 0.81x; small products (64x384x16, 200x16x64, 1000x64x32, 128x64x128, 3136x24x144) within
# the noise of 1.00x, none measurably slower.
P16_MIN_N = 16


def _mm_float_weight_layout(g, n) -> int:
    if len(n.inputs) < 2 or n.inputs[1] not in g.consts or (n.op == "Gemm" and int(n.attrs.get("transB", 0))):
        return 0
    name = n.inputs[1]
    w = np.asarray(g.consts[name])
    if w.dtype != np.float32 or w.ndim != 2 or w.shape[1] < P16_MIN_N:
        return 0
    # a B that another node reads otherwise (a tied embedding's Gather, transB's Gemm, an input 0)
    # stays plain: the exporter would store it twice
    for o in g.nodes:
        if o is not n and any(i == name and (k != 1 or o.op not in ("MatMul", "Gemm") or
                                             (o.op == "Gemm" and int(o.attrs.get("transB", 0))))
                              for k, i in enumerate(o.inputs)):
            return 0
    return LAYOUT_F32_P16


@op("Gemm", 6, infer=_gemm_infer, upgrade=_gemm_upgrade,
    quant=QuantRule("weighted", (ACT, WEIGHT, BIAS), weight_axis=lambda a: 0 if a.get("transB", 0) else 1),
    fp16=Fp16Rule(gemm_fp16, _gemm_fp16_why_not), float_weight_layout=_mm_float_weight_layout)
def gemm(a, b, c=None, *, alpha=1.0, beta=1.0, transA=0, transB=0):
    a = a.T if transA else a
    b = b.T if transB else b
    y = np.matmul(a, b.astype(a.dtype, copy=False))
    if alpha != 1.0:
        y = y * a.dtype.type(alpha)
    if c is not None and beta != 0.0:
        y = y + (c if beta == 1.0 else c * a.dtype.type(beta)).astype(a.dtype, copy=False)
    return y.astype(a.dtype, copy=False)


def _matmul_shape(sa, sb):
    from .registry import broadcast_shapes
    if sa is None or sb is None:
        return None
    a1, b1 = len(sa) == 1, len(sb) == 1
    sa = (1,) + tuple(sa) if a1 else tuple(sa)
    sb = tuple(sb) + (1,) if b1 else tuple(sb)
    batch = broadcast_shapes(sa[:-2], sb[:-2])
    return tuple(batch) + ((() if a1 else (sa[-2],)) + (() if b1 else (sb[-1],)))


def _matmul_infer(attrs, infos, consts):
    return [TensorInfo(infos[0].dtype, _matmul_shape(infos[0].shape, infos[1].shape))]


@op("MatMul", 7, infer=_matmul_infer,
    quant=QuantRule("weighted", (ACT, WEIGHT), weight_axis=-1, forms=("act_matmul",)),
    fp16=Fp16Rule(matmul_fp16, _matmul_fp16_why_not), float_weight_layout=_mm_float_weight_layout)
def matmul(a, b):
    return np.matmul(a, b)


# ---------------------------------------------------------------------------------------
# pools
# ---------------------------------------------------------------------------------------

def _pool_upgrade(name):
    def up(opset, inputs, attrs):
        _check_auto_pad(name, attrs.get("auto_pad", "NOTSET"))
        if "kernel_shape" not in attrs:
            raise UnsupportedOpError(f"{name} without kernel_shape is not a valid ONNX node")
        if attrs.get("storage_order", 0) not in (0, 1):
            _unsupported(name, f"storage_order={attrs['storage_order']}", "use 0 or 1")
        return inputs, attrs
    return up


def _pool_prepare(x, kernel_shape, strides, dilations, pads, auto_pad, ceil_mode, value):
    """Pad x so every window is in range; returns (xp, pb, out, s, d)."""
    k = list(kernel_shape)
    pb, pe, out, s, d = _geometry(x.shape[2:], k, strides, dilations, pads, auto_pad, ceil_mode)
    # extend (or crop) the end so that the last window fits exactly
    pe = [(out[i] - 1) * s[i] + (k[i] - 1) * d[i] + 1 - x.shape[2 + i] - pb[i] for i in range(len(k))]
    return _pad(x, pb, pe, value), pb, out, s, d


def _axis_slice(nd_total, axis, j, d, s, o):
    sl = [slice(None)] * nd_total
    sl[axis] = slice(j * d, j * d + (o - 1) * s + 1, s)
    return tuple(sl)


@op("MaxPool", 8, infer=_pool_infer, upgrade=_pool_upgrade("MaxPool"), quant=QuantRule("bytes"))
def max_pool(x, *, auto_pad="NOTSET", ceil_mode=0, dilations=None, kernel_shape=None, pads=None,
             storage_order=0, strides=None):
    low = -np.inf if x.dtype.kind == "f" else np.iinfo(x.dtype).min
    xp, pb, out, s, d = _pool_prepare(x, kernel_shape, strides, dilations, pads, auto_pad, ceil_mode, low)
    nd, ins, k = len(out), x.shape[2:], list(kernel_shape)
    # Separable: reduce the last spatial axis first, then the others, keeping for every partial
    # maximum the kernel offset on each reduced axis. A strict '>' keeps the first maximum in
    # row-major window order, as onnxruntime does.
    vals, offs = xp, []
    for ax in reversed(range(nd)):
        best = arg = None
        for j in range(k[ax]):
            sl = _axis_slice(xp.ndim, 2 + ax, j, d[ax], s[ax], out[ax])
            v = vals[sl]
            if best is None:
                best, arg = v.copy(), np.zeros(v.shape, np.int32)
                new_offs = [o[sl].copy() for o in offs]
                continue
            m = v > best
            np.copyto(best, v, where=m)
            np.copyto(arg, j, where=m)
            for no, o in zip(new_offs, offs):
                np.copyto(no, o[sl], where=m)
        vals, offs = best, [arg] + new_offs
    # flat input index of each maximum (padding never wins: it holds the lowest value)
    idx = np.arange(x.shape[0] * x.shape[1], dtype=np.int64).reshape(x.shape[:2] + (1,) * nd) * _prod(ins)
    for i in range(nd):
        pos = np.arange(out[i]).reshape((-1,) + (1,) * (nd - 1 - i)) * s[i] - pb[i] + offs[i] * d[i]
        pos = np.clip(pos, 0, ins[i] - 1)
        mult = _prod(ins[i + 1:]) if storage_order == 0 else _prod(ins[:i])
        idx = idx + pos.astype(np.int64) * mult
    return vals, idx


def _window_counts(ins, k, s, d, pb, pe, out, include_pad):
    """Number of summed elements per output position (outer product of per-axis counts)."""
    cnt = np.ones((), np.int64)
    for i in range(len(k)):
        pos = np.arange(out[i])[:, None] * s[i] - pb[i] + np.arange(k[i])[None, :] * d[i]
        lo, hi = (-pb[i], ins[i] + pe[i]) if include_pad else (0, ins[i])
        c = ((pos >= lo) & (pos < hi)).sum(axis=1)
        cnt = np.multiply.outer(cnt, c)
    return cnt


@op("AveragePool", 9, infer=lambda a, i, c: _pool_infer(a, i, c)[:1], upgrade=_pool_upgrade("AveragePool"),
    quant=QuantRule("avgpool"))
def average_pool(x, *, auto_pad="NOTSET", ceil_mode=0, count_include_pad=0, dilations=None, kernel_shape=None,
                 pads=None, strides=None):
    k = list(kernel_shape)
    pb0, pe0, _, _, _ = _geometry(x.shape[2:], k, strides, dilations, pads, auto_pad, ceil_mode)
    xp, pb, out, s, d = _pool_prepare(x, k, strides, dilations, pads, auto_pad, ceil_mode, 0)
    acc = xp
    for ax in reversed(range(len(k))):   # separable window sums, one axis at a time
        part = None
        for j in range(k[ax]):
            v = acc[_axis_slice(xp.ndim, 2 + ax, j, d[ax], s[ax], out[ax])]
            part = v.astype(x.dtype, copy=True) if part is None else np.add(part, v, out=part)
        acc = part
    cnt = _window_counts(x.shape[2:], k, s, d, pb0, pe0, out, count_include_pad)
    return (acc / cnt.astype(x.dtype)).astype(x.dtype)


def _global_infer(attrs, infos, consts):
    x = infos[0]
    shape = None if x.shape is None else tuple(x.shape[:2]) + (1,) * (len(x.shape) - 2)
    return [TensorInfo(x.dtype, shape)]


@op("GlobalAveragePool", 10, infer=_global_infer, quant=QuantRule("avgpool"))
def global_average_pool(x):
    return x.mean(axis=tuple(range(2, x.ndim)), keepdims=True).astype(x.dtype)


@op("GlobalMaxPool", 11, infer=_global_infer, quant=QuantRule("bytes"))
def global_max_pool(x):
    return x.max(axis=tuple(range(2, x.ndim)), keepdims=True)


# ---------------------------------------------------------------------------------------
# Resize, Upsample
# ---------------------------------------------------------------------------------------

_COORD_MODES = ("half_pixel", "half_pixel_symmetric", "pytorch_half_pixel", "align_corners", "asymmetric",
                "tf_half_pixel_for_nn", "tf_crop_and_resize")
_NEAREST_MODES = ("round_prefer_floor", "round_prefer_ceil", "floor", "ceil", "simple")
_F32 = np.float32


def _resize_plan(in_shape, roi, scales, sizes, axes, policy):
    """Output shape, per-axis float32 scales and roi (start, end) per axis.

    Entries are None where the input dim or the scales/sizes are unknown.
    """
    r = len(in_shape)
    ax = [normalize_axis(int(a), r) for a in axes] if axes else list(range(r))
    out, sc = list(in_shape), [_F32(1)] * r
    if sizes is not None and np.size(sizes):
        sz = as_ints(sizes)
        if len(sz) != len(ax):
            raise ValueError(f"sizes {sz} must have one entry per resized axis ({len(ax)})")
        if policy not in ("stretch", "not_larger", "not_smaller"):
            _unsupported("Resize", f"keep_aspect_ratio_policy={policy!r}")
        if policy == "stretch":
            for j, a in enumerate(ax):
                out[a] = sz[j]
                sc[a] = _F32(sz[j]) / _F32(in_shape[a]) if _int(in_shape[a]) else None
        else:
            if not all(_int(in_shape[a]) for a in ax):
                return [None if a in ax else in_shape[a] for a in range(r)], None, None
            ratios = [_F32(sz[j]) / _F32(in_shape[a]) for j, a in enumerate(ax)]
            s = min(ratios) if policy == "not_larger" else max(ratios)
            for a in ax:
                sc[a] = s
                out[a] = int(math.floor(float(s) * in_shape[a] + 0.5))
    elif scales is not None and np.size(scales):
        sv = np.asarray(scales, dtype=_F32).reshape(-1)
        if len(sv) != len(ax):
            raise ValueError(f"scales {sv.tolist()} must have one entry per resized axis ({len(ax)})")
        for j, a in enumerate(ax):
            sc[a] = sv[j]
            out[a] = int(_F32(in_shape[a]) * sv[j]) if _int(in_shape[a]) else (in_shape[a] if sv[j] == 1 else None)
    else:
        raise ValueError("Resize needs either scales or sizes")
    rois = [(0.0, 1.0)] * r
    if roi is not None and np.size(roi):
        rv = np.asarray(roi, dtype=_F32).reshape(-1)
        if len(rv) != 2 * len(ax):
            raise ValueError(f"roi has {len(rv)} values, expected {2 * len(ax)}")
        for j, a in enumerate(ax):
            rois[a] = (rv[j], rv[len(ax) + j])
    return out, sc, rois


def _source_coords(mode, n_out, n_in, scale, roi):
    """onnxruntime's float32 mapping from output index to input coordinate."""
    xr = np.arange(n_out, dtype=_F32)
    half = _F32(0.5)
    if mode == "half_pixel":
        return (xr + half) / scale - half
    if mode == "half_pixel_symmetric":
        adjustment = _F32(n_out) / (scale * _F32(n_in))
        center = _F32(n_in) / _F32(2)
        offset = center * (_F32(1) - adjustment)
        return (offset + (xr.astype(np.float64) + 0.5) / np.float64(scale) - 0.5).astype(_F32)
    if mode == "pytorch_half_pixel":
        return (xr + half) / scale - half if n_out > 1 else np.zeros(n_out, _F32)
    if mode == "align_corners":
        return np.zeros(n_out, _F32) if n_out == 1 else xr * _F32(n_in - 1) / _F32(n_out - 1)
    if mode == "asymmetric":
        return xr / scale
    if mode == "tf_half_pixel_for_nn":
        return (xr + half) / scale
    if mode == "tf_crop_and_resize":
        start, end = _F32(roi[0]), _F32(roi[1])
        if n_out > 1:
            return start * _F32(n_in - 1) + (xr * (end - start) * _F32(n_in - 1)) / _F32(n_out - 1)
        return np.full(n_out, 0.5 * (float(start) + float(end)) * (n_in - 1), dtype=_F32)
    _unsupported("Resize", f"coordinate_transformation_mode={mode!r}", f"use one of {', '.join(_COORD_MODES)}")


def _nearest_index(xo, nearest_mode, downsample):
    if nearest_mode == "simple":
        nearest_mode = "ceil" if downsample else "trunc"
    if nearest_mode == "round_prefer_floor":
        return np.where(xo == np.trunc(xo) + _F32(0.5), np.floor(xo), np.sign(xo) * np.floor(np.abs(xo) + 0.5))
    if nearest_mode == "round_prefer_ceil":
        return np.sign(xo) * np.floor(np.abs(xo) + 0.5)
    if nearest_mode == "floor":
        return np.floor(xo)
    if nearest_mode == "ceil":
        return np.ceil(xo)
    if nearest_mode == "trunc":
        return np.trunc(xo)
    _unsupported("Resize", f"nearest_mode={nearest_mode!r}", f"use one of {', '.join(_NEAREST_MODES[:4])}")


def _cubic_coeffs(s, a):
    a = _F32(a)
    s1, s2, s3 = s + 1, 1 - s, 2 - s
    return np.stack([((a * s1 - 5 * a) * s1 + 8 * a) * s1 - 4 * a,
                     ((a + 2) * s - (a + 3)) * s * s + 1,
                     ((a + 2) * s2 - (a + 3)) * s2 * s2 + 1,
                     ((a * s3 - 5 * a) * s3 + 8 * a) * s3 - 4 * a], axis=1).astype(_F32)


def _resample_axis(x, axis, n_out, scale, roi, mode, ctm, nearest_mode, cubic_a, exclude_outside, extrap):
    n_in = x.shape[axis]
    xo = _source_coords(ctm, n_out, n_in, scale, roi)
    bshape = [1] * x.ndim
    bshape[axis] = n_out
    outside = ((xo < 0) | (xo > _F32(n_in - 1))) if ctm == "tf_crop_and_resize" else None
    if mode == "nearest":
        idx = np.clip(_nearest_index(xo, nearest_mode, scale < 1).astype(np.int64), 0, n_in - 1)
        y = np.take(x, idx, axis=axis)
    elif mode == "linear":
        xc = np.clip(xo, 0, _F32(n_in - 1))
        i1 = np.minimum(xc.astype(np.int64), n_in - 1)
        i2 = np.minimum(i1 + 1, n_in - 1)
        w2 = np.where(i1 == i2, _F32(0.5), xc - i1).astype(_F32).reshape(bshape)
        w1 = np.where(i1 == i2, _F32(0.5), i2 - xc).astype(_F32).reshape(bshape)
        xf = x.astype(_F32, copy=False)
        y = np.take(xf, i1, axis=axis) * w1 + np.take(xf, i2, axis=axis) * w2
    elif mode == "cubic":
        base = np.floor(xo)
        coef = _cubic_coeffs((xo - base).astype(_F32), cubic_a)
        taps = base.astype(np.int64)[:, None] + np.arange(-1, 3)[None, :]
        if exclude_outside:
            coef = np.where((taps >= 0) & (taps < n_in), coef, _F32(0))
            coef = (coef / coef.sum(axis=1, keepdims=True)).astype(_F32)
        taps = np.clip(taps, 0, n_in - 1)
        xf = x.astype(_F32, copy=False)
        y = None
        for t in range(4):
            term = np.take(xf, taps[:, t], axis=axis) * coef[:, t].reshape(bshape)
            y = term if y is None else y + term
    else:
        _unsupported("Resize", f"mode={mode!r}", "use nearest, linear or cubic")
    if outside is not None and outside.any():
        y = np.where(outside.reshape(bshape), np.asarray(extrap, dtype=y.dtype), y)
    return y


def _resize_check(attrs, name="Resize"):
    mode = attrs.get("mode", "nearest")
    if mode not in ("nearest", "linear", "cubic"):
        _unsupported(name, f"mode={mode!r}", "use nearest, linear or cubic")
    ctm = attrs.get("coordinate_transformation_mode", "half_pixel")
    if ctm not in _COORD_MODES:
        _unsupported(name, f"coordinate_transformation_mode={ctm!r}", f"use one of {', '.join(_COORD_MODES)}")
    if attrs.get("nearest_mode", "round_prefer_floor") not in _NEAREST_MODES:
        _unsupported(name, f"nearest_mode={attrs['nearest_mode']!r}", f"use one of {', '.join(_NEAREST_MODES[:4])}")
    if attrs.get("antialias", 0) and mode != "nearest":
        _unsupported(name, f"antialias=1 with mode={mode!r}", "re-export with antialias=0")


def _resize_upgrade(opset, inputs, attrs):
    attrs = dict(attrs)
    if opset < 11:   # Resize-10: (X, scales), asymmetric coordinates, legacy nearest rounding
        inputs = [inputs[0], "", inputs[1]]
        attrs["coordinate_transformation_mode"] = "asymmetric"
        attrs["nearest_mode"] = "simple"
    _resize_check(attrs)
    return inputs, attrs


def _resize_infer(attrs, infos, consts):
    x = infos[0]
    if x.shape is None:
        return [TensorInfo(x.dtype, None)]
    get = lambda k: consts[k] if len(consts) > k else None  # noqa: E731
    given = lambda k: len(infos) > k and infos[k] is not None  # noqa: E731
    if (given(2) and get(2) is None and infos[2].shape != (0,)) or (given(3) and get(3) is None):
        # scales/sizes computed at run time: only the rank is known
        ax = attrs.get("axes")
        r = len(x.shape)
        axs = {normalize_axis(a, r) for a in ax} if ax else set(range(r))
        return [TensorInfo(x.dtype, tuple(None if i in axs else d for i, d in enumerate(x.shape)))]
    out, _, _ = _resize_plan(x.shape, None, get(2), get(3), attrs.get("axes"),
                             attrs.get("keep_aspect_ratio_policy", "stretch"))
    return [TensorInfo(x.dtype, tuple(out))]


@op("Resize", 13, infer=_resize_infer, upgrade=_resize_upgrade,
    quant=QuantRule("bytes", (ACT, PARAM, PARAM, PARAM)))
def resize(x, roi=None, scales=None, sizes=None, *, antialias=0, axes=None,
           coordinate_transformation_mode="half_pixel", cubic_coeff_a=-0.75, exclude_outside=0,
           extrapolation_value=0.0, keep_aspect_ratio_policy="stretch", mode="nearest",
           nearest_mode="round_prefer_floor"):
    _resize_check(dict(mode=mode, coordinate_transformation_mode=coordinate_transformation_mode,
                       nearest_mode=nearest_mode, antialias=antialias))
    out, sc, rois = _resize_plan(x.shape, roi, scales, sizes, axes, keep_aspect_ratio_policy)
    if tuple(out) == x.shape:   # onnxruntime copies when the shape does not change, whatever the scales
        return x.copy()
    y = x
    crop = coordinate_transformation_mode == "tf_crop_and_resize"
    for a in range(x.ndim):
        if out[a] == x.shape[a] and sc[a] == 1 and not crop:
            continue
        y = _resample_axis(y, a, out[a], sc[a], rois[a], mode, coordinate_transformation_mode, nearest_mode,
                           cubic_coeff_a, exclude_outside, extrapolation_value)
    if y.dtype != x.dtype:
        y = (np.clip(np.rint(y), np.iinfo(x.dtype).min, np.iinfo(x.dtype).max) if x.dtype.kind in "iu" else y)
        y = y.astype(x.dtype)
    return y


def _upsample_upgrade(opset, inputs, attrs):
    attrs = dict(attrs)
    if "scales" in attrs:            # opset 7: scales was an attribute
        inputs = [inputs[0], np.asarray(attrs.pop("scales"), dtype=np.float32)]
    if attrs.get("mode", "nearest") == "bilinear":
        attrs["mode"] = "linear"
    if attrs.get("mode", "nearest") not in ("nearest", "linear"):
        _unsupported("Upsample", f"mode={attrs['mode']!r}", "use nearest or linear")
    return inputs, attrs


@op("Upsample", 14, infer=lambda a, i, c: _resize_infer({}, [i[0], None, i[1]], [None, None, c[1]]),
    upgrade=_upsample_upgrade, quant=QuantRule("bytes", (ACT, PARAM)))
def upsample(x, scales, *, mode="nearest"):
    """Opset 7-9 Upsample: Resize with asymmetric coordinates and legacy nearest rounding."""
    return resize(x, None, scales, None, mode=mode, coordinate_transformation_mode="asymmetric",
                  nearest_mode="simple")


# ---------------------------------------------------------------------------------------
# Softmax, LogSoftmax, Hardmax
# ---------------------------------------------------------------------------------------

def _coerce_upgrade(opset, inputs, attrs):
    attrs = dict(attrs)
    if opset < 13:   # before 13 these ops flattened the input to 2-D at `axis` (default 1)
        attrs.setdefault("axis", 1)
        attrs["coerce_2d"] = 1
    return inputs, attrs


def _along(x, axis, coerce_2d, fn):
    a = normalize_axis(axis, x.ndim)
    if coerce_2d:
        y = fn(x.reshape(_prod(x.shape[:a]), -1), 1)
        return y.reshape(x.shape)
    return fn(x, a)


def _softmax(x, a):
    e = np.exp(x - x.max(axis=a, keepdims=True))
    return e / e.sum(axis=a, keepdims=True)


def _log_softmax(x, a):
    d = x - x.max(axis=a, keepdims=True)
    return d - np.log(np.exp(d).sum(axis=a, keepdims=True))


def _hardmax(x, a):
    idx = np.expand_dims(x.argmax(axis=a), a)
    y = np.zeros_like(x)
    np.put_along_axis(y, idx, 1, axis=a)
    return y


@op("Softmax", 15, infer=same_infer, upgrade=_coerce_upgrade, quant=QuantRule("softmax"))
def softmax(x, *, axis=-1, coerce_2d=0):
    return _along(x, axis, coerce_2d, _softmax).astype(x.dtype, copy=False)


@op("LogSoftmax", 16, infer=same_infer, upgrade=_coerce_upgrade)
def log_softmax(x, *, axis=-1, coerce_2d=0):
    return _along(x, axis, coerce_2d, _log_softmax).astype(x.dtype, copy=False)


@op("Hardmax", 17, infer=same_infer, upgrade=_coerce_upgrade)
def hardmax(x, *, axis=-1, coerce_2d=0):
    return _along(x, axis, coerce_2d, _hardmax)


# ---------------------------------------------------------------------------------------
# LSTM, GRU, RNN
# ---------------------------------------------------------------------------------------

def _sigmoid(x):
    return (1 / (1 + np.exp(-x))).astype(x.dtype, copy=False)


# name -> (function(x, alpha, beta), default alpha, default beta); None = not taken
_RNN_ACTS = {
    "sigmoid": (lambda x, a, b: _sigmoid(x), None, None),
    "tanh": (lambda x, a, b: np.tanh(x), None, None),
    "relu": (lambda x, a, b: np.maximum(x, 0), None, None),
    "affine": (lambda x, a, b: a * x + b, 1.0, 0.0),
    "leakyrelu": (lambda x, a, b: np.where(x >= 0, x, a * x), 0.01, None),
    "thresholdedrelu": (lambda x, a, b: np.where(x > a, x, 0), 1.0, None),
    "scaledtanh": (lambda x, a, b: a * np.tanh(b * x), 1.0, 1.0),
    "hardsigmoid": (lambda x, a, b: np.clip(a * x + b, 0, 1), 0.2, 0.5),
    "elu": (lambda x, a, b: np.where(x >= 0, x, a * (np.exp(x) - 1)), 1.0, None),
    "softsign": (lambda x, a, b: x / (1 + np.abs(x)), None, None),
    "softplus": (lambda x, a, b: np.log1p(np.exp(x)), None, None),
}
_RNN_DEFAULT_ACTS = {"LSTM": ["Sigmoid", "Tanh", "Tanh"], "GRU": ["Sigmoid", "Tanh"], "RNN": ["Tanh"]}


def _activations(opname, names, alphas, betas, n_dir):
    per = len(_RNN_DEFAULT_ACTS[opname])
    names = list(names) if names else _RNN_DEFAULT_ACTS[opname] * n_dir
    if len(names) != per * n_dir:
        raise ValueError(f"{opname}: {len(names)} activations given, {per * n_dir} expected")
    alphas, betas = list(alphas or []), list(betas or [])
    fns = []
    for nm in names:
        entry = _RNN_ACTS.get(nm.lower())
        if entry is None:
            _unsupported(opname, f"activation {nm!r}", f"supported: {', '.join(sorted(_RNN_ACTS))}")
        fn, da, db = entry
        a = (alphas.pop(0) if alphas else da) if da is not None else 0.0
        b = (betas.pop(0) if betas else db) if db is not None else 0.0
        fns.append(lambda x, fn=fn, a=np.float32(a), b=np.float32(b): fn(x, a, b).astype(x.dtype, copy=False))
    return [fns[d * per:(d + 1) * per] for d in range(n_dir)]


def _rnn_upgrade(opname):
    def up(opset, inputs, attrs):
        if attrs.get("direction", "forward") not in ("forward", "reverse", "bidirectional"):
            _unsupported(opname, f"direction={attrs['direction']!r}", "use forward, reverse or bidirectional")
        for nm in attrs.get("activations") or []:
            if nm.lower() not in _RNN_ACTS:
                _unsupported(opname, f"activation {nm!r}", f"supported: {', '.join(sorted(_RNN_ACTS))}")
        return inputs, attrs
    return up


def _reverse_in_sequence(x, lens):
    """x[t, b] -> x[lens[b]-1-t, b] for t < lens[b] (positions past the length stay)."""
    t = np.arange(x.shape[0])[:, None]
    idx = np.where(t < lens[None, :], lens[None, :] - 1 - t, t)
    return x[idx, np.arange(x.shape[1])[None, :]]


def _rnn_run(opname, cell, x, w, r, b, seq_lens, init_states, *, direction, layout, n_gates, hidden,
             clip, acts, extra=None):
    """Shared driver: layouts, directions, sequence lengths. cell(d, xw_t, states, acts) -> states."""
    if layout:
        x = x.swapaxes(0, 1)
        init_states = [None if s is None else s.swapaxes(0, 1) for s in init_states]
    n_dir = 2 if direction == "bidirectional" else 1
    t_len, batch, _ = x.shape
    h = r.shape[-1]
    if hidden and int(hidden) != h:
        raise ValueError(f"{opname}: hidden_size={hidden} does not match R's shape {list(r.shape)}")
    lens = (np.full(batch, t_len, np.int64) if seq_lens is None else np.asarray(seq_lens, np.int64))
    dt = x.dtype
    ys, finals = [], []
    for dirn in range(n_dir):
        reverse = direction == "reverse" or dirn == 1
        xs = _reverse_in_sequence(x, lens) if reverse else x
        xw = np.matmul(xs, w[dirn].T.astype(dt))                       # (T, B, gates*H)
        wb = b[dirn, :n_gates * h].astype(dt) if b is not None else np.zeros(n_gates * h, dt)
        rb = b[dirn, n_gates * h:].astype(dt) if b is not None else np.zeros(n_gates * h, dt)
        states = [np.zeros((batch, h), dt) if s is None else s[dirn].astype(dt) for s in init_states]
        y = np.zeros((t_len, batch, h), dt)
        for t in range(t_len):
            new = cell(dirn, xw[t], wb, rb, r[dirn].astype(dt), states, acts[dirn], clip, extra)
            live = (t < lens)[:, None]
            states = [np.where(live, n_, s) for n_, s in zip(new, states)]
            y[t] = np.where(live, new[0], 0)
        ys.append(_reverse_in_sequence(y, lens) if reverse else y)
        finals.append(states)
    y = np.stack(ys, axis=1)                                             # (T, dirs, B, H)
    outs = [np.stack([f[k] for f in finals], axis=0) for k in range(len(init_states))]
    if layout:
        y = y.transpose(2, 0, 1, 3)
        outs = [o.swapaxes(0, 1) for o in outs]
    return (y,) + tuple(outs)


def _clip(v, clip):
    return v if clip is None else np.clip(v, -clip, clip)


def _rnn_infer(n_states):
    def infer(attrs, infos, consts):
        x, w = infos[0], infos[1]
        nd = 2 if attrs.get("direction", "forward") == "bidirectional" else 1
        h = attrs.get("hidden_size")
        if h is None and len(infos) > 2 and infos[2] is not None and infos[2].shape is not None:
            h = infos[2].shape[-1]
        if x.shape is None:
            return [TensorInfo(x.dtype, None)] * (1 + n_states)
        if attrs.get("layout", 0):
            bsz, t = x.shape[0], x.shape[1]
            return [TensorInfo(x.dtype, (bsz, t, nd, h))] + [TensorInfo(x.dtype, (bsz, nd, h))] * n_states
        t, bsz = x.shape[0], x.shape[1]
        return [TensorInfo(x.dtype, (t, nd, bsz, h))] + [TensorInfo(x.dtype, (nd, bsz, h))] * n_states
    return infer


def _lstm_cell(d, xw, wb, rb, r, states, acts, clip, extra):
    p, input_forget = extra
    f, g, hfn = acts
    h_prev, c_prev = states
    gates = xw + np.matmul(h_prev, r.T) + (wb + rb)
    gi, go, gf, gc = np.split(gates, 4, axis=-1)
    if p is not None:
        pi, po, pf = np.split(p[d].astype(xw.dtype), 3)
        gi = gi + pi * c_prev
        gf = gf + pf * c_prev
    i = f(_clip(gi, clip))
    fg = 1 - i if input_forget else f(_clip(gf, clip))
    c = fg * c_prev + i * g(_clip(gc, clip))
    if p is not None:
        go = go + po * c
    o = f(_clip(go, clip))
    return [o * hfn(c), c]


@op("LSTM", 18, infer=_rnn_infer(2), upgrade=_rnn_upgrade("LSTM"))
def lstm(x, w, r, b=None, sequence_lens=None, initial_h=None, initial_c=None, p=None, *, activation_alpha=None,
         activation_beta=None, activations=None, clip=None, direction="forward", hidden_size=None,
         input_forget=0, layout=0):
    n_dir = 2 if direction == "bidirectional" else 1
    acts = _activations("LSTM", activations, activation_alpha, activation_beta, n_dir)
    return _rnn_run("LSTM", _lstm_cell, x, w, r, b, sequence_lens, [initial_h, initial_c], direction=direction,
                    layout=layout, n_gates=4, hidden=hidden_size, clip=clip, acts=acts, extra=(p, input_forget))


def _gru_cell(d, xw, wb, rb, r, states, acts, clip, lbr):
    f, g = acts
    (h_prev,) = states
    hsz = h_prev.shape[-1]
    xz, xr, xh = np.split(xw + wb, 3, axis=-1)
    hzr = np.matmul(h_prev, r[:2 * hsz].T) + rb[:2 * hsz]
    z = f(_clip(xz + hzr[:, :hsz], clip))
    rr = f(_clip(xr + hzr[:, hsz:], clip))
    if lbr:
        hh = g(_clip(xh + rr * (np.matmul(h_prev, r[2 * hsz:].T) + rb[2 * hsz:]), clip))
    else:
        hh = g(_clip(xh + np.matmul(rr * h_prev, r[2 * hsz:].T) + rb[2 * hsz:], clip))
    return [(1 - z) * hh + z * h_prev]


@op("GRU", 19, infer=_rnn_infer(1), upgrade=_rnn_upgrade("GRU"))
def gru(x, w, r, b=None, sequence_lens=None, initial_h=None, *, activation_alpha=None, activation_beta=None,
        activations=None, clip=None, direction="forward", hidden_size=None, layout=0, linear_before_reset=0):
    n_dir = 2 if direction == "bidirectional" else 1
    acts = _activations("GRU", activations, activation_alpha, activation_beta, n_dir)
    return _rnn_run("GRU", _gru_cell, x, w, r, b, sequence_lens, [initial_h], direction=direction, layout=layout,
                    n_gates=3, hidden=hidden_size, clip=clip, acts=acts, extra=linear_before_reset)


def _simple_rnn_cell(d, xw, wb, rb, r, states, acts, clip, extra):
    (h_prev,) = states
    return [acts[0](_clip(xw + np.matmul(h_prev, r.T) + (wb + rb), clip))]


@op("RNN", 20, infer=_rnn_infer(1), upgrade=_rnn_upgrade("RNN"))
def rnn(x, w, r, b=None, sequence_lens=None, initial_h=None, *, activation_alpha=None, activation_beta=None,
        activations=None, clip=None, direction="forward", hidden_size=None, layout=0):
    n_dir = 2 if direction == "bidirectional" else 1
    acts = _activations("RNN", activations, activation_alpha, activation_beta, n_dir)
    return _rnn_run("RNN", _simple_rnn_cell, x, w, r, b, sequence_lens, [initial_h], direction=direction,
                    layout=layout, n_gates=1, hidden=hidden_size, clip=clip, acts=acts)


# ---------------------------------------------------------------------------------------
# Dropout
# ---------------------------------------------------------------------------------------

def _dropout_upgrade(opset, inputs, attrs):
    attrs = dict(attrs)
    attrs.pop("is_test", None)
    if "ratio" in attrs:             # opset < 12: ratio was an attribute (irrelevant for inference)
        inputs = list(inputs[:1]) + [np.asarray(attrs.pop("ratio"), dtype=np.float32)]
    return inputs, attrs


def _dropout_infer(attrs, infos, consts):
    if len(consts) > 2 and consts[2] is not None and bool(np.asarray(consts[2])):
        _unsupported("Dropout", "training_mode=True", "export the model in inference mode")
    return [infos[0], TensorInfo(np.dtype(bool), infos[0].shape)]


@op("Dropout", 21, infer=_dropout_infer, upgrade=_dropout_upgrade, quant=QuantRule("bytes", (ACT, PARAM, PARAM)),
    view=True)
def dropout(data, ratio=None, training_mode=None, *, seed=None):
    if training_mode is not None and bool(np.asarray(training_mode)):
        _unsupported("Dropout", "training_mode=True", "export the model in inference mode")
    return data, np.ones(data.shape, dtype=bool)
