"""Integer reference kernels: the executable spec of every int8 op (docs/quant-arith.md).

Pure functions over int8 / int32 numpy arrays with explicit integer parameters (multipliers
M, shifts n, zero points, clamp bounds) derived once by dsedge/quant/arith.py. The C runtime
must reproduce these outputs byte for byte.

Layouts follow ONNX: activations NC<spatial> (1-D, 2-D or N-D), Conv weights O I/g <k...>,
ConvTranspose weights I O/g <k...>; `pads` is ONNX's [begin..., end...].

Exactness: dot products are summed exactly. They are evaluated as float64 BLAS matmuls of
small integers, which is exact because every partial sum is an integer below 2^53 (a product
is at most 128*127 < 2^14 and K < 2^39); nothing is ever summed in float32. The accumulator
semantics are int32: an accumulator outside int32 raises (the export proves it cannot happen,
see arith.accumulator_bound_ok), since C would overflow there.

Weighted ops compute acc = sum_k x_q*w_q + (bias_q - zp_in * sum_k w_q) (zero point folded
into the bias, padding filled with zp_in so the fold stays exact); ConvTranspose subtracts
zp_in from the input instead (its taps per output pixel vary, so no fold). Every result goes
through the one requantisation rule, arith.requantize.
"""
from __future__ import annotations

import math

import numpy as np

from ..ops.nn import conv_windows
from .arith import INT32_MAX, INT32_MIN, QMAX, QMIN, fold_zero_point, requantize, requantize_wide

__all__ = [
    "conv_int8", "conv_transpose_int8", "gemm_int8", "matmul_int8", "matmul_act_int8", "add_int8", "sub_int8",
    "mul_int8", "table_int8", "avgpool_counts", "avgpool_int8", "global_avgpool_int8",
    "mean_int8", "concat_int8", "maxpool_int8", "requantize_int8", "softmax_int8",
    "resize_nearest_int8", "pool_output_size", "dequantize_acc", "dynamic_rescale",
]


def dequantize_acc(acc, scale, axis: int):
    """Float output of a weighted op (docs/quant-arith.md, "float output"): y = float32(acc) *
    scale[c], scale[c] = float32(s_in * s_w[c]) (float64 product rounded once); acc converts
    to float32 with round-to-nearest-even, the multiply is one float32 rounding."""
    a = np.asarray(acc, np.int64).astype(np.float32)
    shape = [1] * a.ndim
    shape[axis % a.ndim] = -1
    return a * np.asarray(scale, np.float32).reshape(shape)


def dynamic_rescale(acc, out_scale, bias, axis: int):
    """Float result of a dynamically quantised weighted op (docs/quant-arith.md §12):
    y = float32(acc) * out_scale[c] + bias[c], two float32 roundings in that order (no FMA)."""
    y = dequantize_acc(acc, out_scale, axis)
    shape = [1] * y.ndim
    shape[axis % y.ndim] = -1
    return (y + np.asarray(bias, np.float32).reshape(shape)).astype(np.float32)


def _check_acc(acc, what: str):
    if acc.size and (acc.max() > INT32_MAX or acc.min() < INT32_MIN):
        raise ValueError(f"{what}: int32 accumulator overflow (the export must keep this layer float)")


def _spatial(v, sp: int, default: int, name: str) -> list[int]:
    if v is None:
        return [default] * sp
    v = [int(a) for a in v]
    if len(v) != sp:
        raise ValueError(f"{name} must have {sp} entries, got {v}")
    return v


def _pads(pads, sp: int) -> list[int]:
    if pads is None:
        return [0] * (2 * sp)
    pads = [int(p) for p in pads]
    if len(pads) != 2 * sp or min(pads) < 0:
        raise ValueError(f"pads must be {2 * sp} non-negative numbers, got {pads}")
    return pads


# -- weighted ops -----------------------------------------------------------------------------

def conv_int8(x_q, zp_in, w_q, bias_q, M, n, zp_out, strides=None, pads=None, dilations=None,
              group: int = 1, qmin: int = QMIN, qmax: int = QMAX, acc_only: bool = False, wide: bool = False):
    """int8 Conv (NC<spatial>, weights O I/g <k>), per-output-channel M/n, padding = zp_in.
    Covers plain, grouped and depthwise convolution in 1-D, 2-D and N-D. `wide`: int16 x and an
    int64 accumulator (A16W8, docs/quant-arith.md §15): no int32 check, int16 output."""
    x, w = np.asarray(x_q), np.asarray(w_q)
    sp = x.ndim - 2
    strides = _spatial(strides, sp, 1, "strides")
    dilations = _spatial(dilations, sp, 1, "dilations")
    pads = _pads(pads, sp)
    N, C = x.shape[:2]
    O, Cg = w.shape[:2]
    kernel = list(w.shape[2:])
    if C != Cg * group or O % group:
        raise ValueError(f"conv_int8: input channels {C}, weight {w.shape}, group {group} do not agree")
    Og, Kk = O // group, math.prod(kernel)
    xp = np.pad(x.astype(np.float64), [(0, 0), (0, 0)] + [(pads[i], pads[i + sp]) for i in range(sp)],
                constant_values=float(zp_in))
    win = conv_windows(xp, kernel, strides, dilations)         # N, C, *out, *k
    out_sp = win.shape[2:2 + sp]
    P = math.prod(out_sp)
    win = win.reshape((N, group, Cg) + out_sp + tuple(kernel))
    order = [1, 0] + list(range(3, 3 + sp)) + [2] + list(range(3 + sp, 3 + 2 * sp))
    cols = win.transpose(order).reshape(group, N * P, Cg * Kk)
    wg = w.astype(np.float64).reshape(group, Og, Cg * Kk)
    acc = np.matmul(cols, wg.transpose(0, 2, 1))               # G, N*P, Og (exact integers)
    acc = acc.reshape(group, N, P, Og).transpose(1, 0, 3, 2).reshape((N, O) + out_sp).astype(np.int64)
    fb = fold_zero_point(bias_q, zp_in, w, 0).astype(np.int64)
    acc = acc + fb.reshape((1, O) + (1,) * sp)
    if wide:
        return acc if acc_only else requantize_wide(acc, M, n, zp_out, qmin, qmax, axis=1)
    _check_acc(acc, "conv_int8")
    if acc_only:
        return acc
    return requantize(acc, M, n, zp_out, qmin, qmax, axis=1)


def conv_transpose_int8(x_q, zp_in, w_q, bias_q, M, n, zp_out, strides=None, pads=None,
                        dilations=None, group: int = 1, output_padding=None,
                        qmin: int = QMIN, qmax: int = QMAX, acc_only: bool = False):
    """int8 ConvTranspose (weights I O/g <k>), per-output-channel M/n (axis 1 of the weight).
    `pads`/`output_padding` must be explicit (auto_pad and output_shape are resolved by the
    importer). acc = bias_q + sum (x_q - zp_in) * w_q over the taps that reach each pixel."""
    x, w = np.asarray(x_q), np.asarray(w_q)
    sp = x.ndim - 2
    strides = _spatial(strides, sp, 1, "strides")
    dilations = _spatial(dilations, sp, 1, "dilations")
    output_padding = _spatial(output_padding, sp, 0, "output_padding")
    pads = _pads(pads, sp)
    N, C = x.shape[:2]
    Cw, Og = w.shape[:2]
    kernel = list(w.shape[2:])
    if Cw != C or C % group:
        raise ValueError(f"conv_transpose_int8: input channels {C}, weight {w.shape}, group {group} do not agree")
    Cg, O = C // group, Og * group
    in_sp = x.shape[2:]
    full = [(in_sp[i] - 1) * strides[i] + (kernel[i] - 1) * dilations[i] + 1 + output_padding[i]
            for i in range(sp)]
    d = (x.astype(np.int64) - int(zp_in)).astype(np.float64)
    d = d.reshape(N, group, Cg, -1).transpose(1, 0, 3, 2)      # G, N, Pin, Cg
    wg = w.astype(np.float64).reshape(group, Cg, Og * math.prod(kernel))
    contrib = np.matmul(d, wg[:, None]).reshape((group, N) + tuple(in_sp) + (Og,) + tuple(kernel))
    buf = np.zeros((group, N) + tuple(full) + (Og,), dtype=np.float64)
    for kk in np.ndindex(*kernel):
        dst = (slice(None), slice(None)) + tuple(
            slice(kk[i] * dilations[i], kk[i] * dilations[i] + (in_sp[i] - 1) * strides[i] + 1, strides[i])
            for i in range(sp))
        buf[dst] += contrib[(Ellipsis,) + tuple(kk)]
    crop = (slice(None), slice(None)) + tuple(slice(pads[i], full[i] - pads[i + sp]) for i in range(sp))
    buf = buf[crop]                                              # G, N, *out, Og
    out_sp = buf.shape[2:2 + sp]
    acc = np.moveaxis(buf, -1, 2).transpose([1, 0] + list(range(2, 3 + sp))).reshape((N, O) + out_sp)
    acc = acc.astype(np.int64)
    if bias_q is not None:
        acc = acc + np.asarray(bias_q, np.int64).reshape((1, O) + (1,) * sp)
    _check_acc(acc, "conv_transpose_int8")
    if acc_only:
        return acc
    return requantize(acc, M, n, zp_out, qmin, qmax, axis=1)


def matmul_int8(x_q, zp_in, w_q, bias_q, M, n, zp_out, qmin: int = QMIN, qmax: int = QMAX,
                acc_only: bool = False, wide: bool = False):
    """int8 MatMul with a constant 2-D right operand w (K, N): per-column (axis -1) M/n;
    `bias_q` (int32[N] or None) is a fused following Add. `wide`: as conv_int8 (A16W8)."""
    x, w = np.asarray(x_q), np.asarray(w_q)
    if w.ndim != 2 or x.shape[-1] != w.shape[0]:
        raise ValueError(f"matmul_int8: need x (..., K) and w (K, N), got {x.shape} and {w.shape}")
    acc = np.matmul(x.astype(np.float64), w.astype(np.float64)).astype(np.int64)
    acc = acc + fold_zero_point(bias_q, zp_in, w, 1).astype(np.int64)
    if wide:
        return acc if acc_only else requantize_wide(acc, M, n, zp_out, qmin, qmax, axis=-1)
    _check_acc(acc, "matmul_int8")
    if acc_only:
        return acc
    return requantize(acc, M, n, zp_out, qmin, qmax, axis=-1)


def matmul_act_int8(a_q, za, b_q, zb, M, n, zp_out, qmin: int = QMIN, qmax: int = QMAX,
                    acc_only: bool = False):
    """int8 MatMul of two activations (docs/quant-arith.md §14), numpy/ONNX MatMul semantics
    (1-D operands, broadcast batch axes): acc = sum_k (a - za)(b - zb), exact in int64 (the
    kernel's int32 accumulator, |acc| <= K * 255 * 255 < 2^31 for K <= 33025), then the
    requantisation rule with one (M, n) of (s_a * s_b) / s_out; `acc_only` returns acc."""
    a = np.asarray(a_q, np.int64) - int(za)
    b = np.asarray(b_q, np.int64) - int(zb)
    acc = np.matmul(a, b)
    _check_acc(acc, "matmul_act_int8")
    if acc_only:
        return acc
    return requantize(acc, M, n, zp_out, qmin, qmax)


def gemm_int8(x_q, zp_in, w_q, bias_q, M, n, zp_out, trans_b: int = 0,
              qmin: int = QMIN, qmax: int = QMAX, acc_only: bool = False, wide: bool = False):
    """int8 Gemm y = x @ op(w) + bias (transA=0; alpha/beta folded into the scales): the
    per-channel axis of w is 0 (rows) when trans_b else 1 (columns)."""
    w = np.asarray(w_q)
    return matmul_int8(x_q, zp_in, w.T if trans_b else w, bias_q, M, n, zp_out, qmin, qmax, acc_only, wide)


# -- elementwise ------------------------------------------------------------------------------

def _add_sub(a, za, b, zb, Ma, Mb, n, zp_out, qmin, qmax, sign):
    a = np.asarray(a, np.int64) - int(za)
    b = np.asarray(b, np.int64) - int(zb)
    t = a * int(Ma) + sign * (b * int(Mb))                     # |t| < 2^40
    y = (t + (1 << (int(n) - 1))) >> int(n)
    return np.clip(y + int(zp_out), qmin, qmax).astype(np.int8)


def add_int8(a_q, za, b_q, zb, Ma, Mb, n, zp_out, qmin: int = QMIN, qmax: int = QMAX):
    """int8 Add (broadcasting): ((a-za)*Ma + (b-zb)*Mb + 2^(n-1)) >> n, + zp_out, clamp."""
    return _add_sub(a_q, za, b_q, zb, Ma, Mb, n, zp_out, qmin, qmax, 1)


def sub_int8(a_q, za, b_q, zb, Ma, Mb, n, zp_out, qmin: int = QMIN, qmax: int = QMAX):
    """int8 Sub (broadcasting): ((a-za)*Ma - (b-zb)*Mb + 2^(n-1)) >> n, + zp_out, clamp."""
    return _add_sub(a_q, za, b_q, zb, Ma, Mb, n, zp_out, qmin, qmax, -1)


def mul_int8(a_q, za, b_q, zb, M, n, zp_out, qmin: int = QMIN, qmax: int = QMAX):
    """int8 Mul (broadcasting): (a-za)*(b-zb) in int32, requantised with s_a*s_b/s_out."""
    p = (np.asarray(a_q, np.int64) - int(za)) * (np.asarray(b_q, np.int64) - int(zb))
    return requantize(p, M, n, zp_out, qmin, qmax)


def table_int8(x_q, table):
    """Unary op by table lookup: y = table[x + 128] (table from arith.make_table)."""
    table = np.asarray(table, dtype=np.int8)
    if table.shape != (256,):
        raise ValueError(f"table_int8: need a 256-entry table, got shape {table.shape}")
    return table[np.asarray(x_q, np.int16) + 128]


def requantize_int8(x_q, zp_in, M, n, zp_out, qmin: int = QMIN, qmax: int = QMAX):
    """Rescale an int8 tensor to other qparams: requantise (x - zp_in) with s_in/s_out."""
    return requantize(np.asarray(x_q, np.int64) - int(zp_in), M, n, zp_out, qmin, qmax)


def concat_int8(xs, zps_in, axis: int, rescales, zp_out):
    """int8 Concat: input i is copied when rescales[i] is None (same (scale, zp) as the output),
    else requantised with rescales[i] = (M, n) from arith.rescale_multiplier(s_i, s_out)."""
    parts = [np.asarray(x, np.int8) if r is None else requantize_int8(x, z, r[0], r[1], zp_out)
             for x, z, r in zip(xs, zps_in, rescales)]
    return np.concatenate(parts, axis=axis)


def softmax_int8(x_q, table, axis: int = -1):
    """int8 Softmax with fixed output qparams (1/256, -128): d = max - x (0..255), e = table[d]
    (arith.softmax_table(s_in), fixed point 2^20), S = sum e (int64), y = -128 +
    floor((512*e + S) / (2*S)) clamped to 127 (round half up of 256*e/S; non-negative
    operands, so C's truncating division gives the same result)."""
    x = np.asarray(x_q, np.int64)
    d = x.max(axis=axis, keepdims=True) - x
    e = np.asarray(table, np.int64)[d]
    S = e.sum(axis=axis, keepdims=True)
    y = (512 * e + S) // (2 * S) - 128
    return np.minimum(y, QMAX).astype(np.int8)


# -- pooling and reductions -------------------------------------------------------------------

def pool_output_size(in_size: int, k: int, s: int, pb: int, pe: int, d: int = 1, ceil_mode: int = 0) -> int:
    """ONNX pooling output length; with ceil_mode a window must start inside input + pad_begin."""
    span = in_size + pb + pe - ((k - 1) * d + 1)
    out = (-(-span // s) if ceil_mode else span // s) + 1
    if ceil_mode and (out - 1) * s >= in_size + pb:
        out -= 1
    return out


def _pool_geometry(x, kernel, strides, pads, dilations, ceil_mode):
    sp = x.ndim - 2
    kernel = [int(k) for k in kernel]
    strides = _spatial(strides, sp, 1, "strides")
    dilations = _spatial(dilations, sp, 1, "dilations")
    pads = _pads(pads, sp)
    outs = [pool_output_size(x.shape[2 + i], kernel[i], strides[i], pads[i], pads[i + sp],
                             dilations[i], ceil_mode) for i in range(sp)]
    # extra end padding so that ceil_mode windows fit
    extra = [max(0, (outs[i] - 1) * strides[i] + (kernel[i] - 1) * dilations[i] + 1
                 - (x.shape[2 + i] + pads[i] + pads[i + sp])) for i in range(sp)]
    return sp, kernel, strides, dilations, pads, outs, extra


def avgpool_counts(in_spatial, kernel_shape, strides, pads, count_include_pad: int, ceil_mode: int = 0):
    """Divisor of every output position of AveragePool (onnxruntime's rule): with
    count_include_pad the window clipped to the padded extent, else to the input."""
    sp = len(in_spatial)
    strides = _spatial(strides, sp, 1, "strides")
    pads = _pads(pads, sp)
    per_axis = []
    for i in range(sp):
        L, k, s = int(in_spatial[i]), int(kernel_shape[i]), strides[i]
        o = pool_output_size(L, k, s, pads[i], pads[i + sp], 1, ceil_mode)
        start = np.arange(o) * s - pads[i]
        end = np.minimum(start + k, L + pads[i + sp])
        cnt = end - start if count_include_pad else np.minimum(end, L) - np.maximum(start, 0)
        per_axis.append(cnt.astype(np.int64))
    out = np.ones((), dtype=np.int64)
    for c in per_axis:
        out = np.multiply.outer(out, c)
    return out


def avgpool_int8(x_q, zp_in, kernel_shape, strides, pads, count_include_pad: int, mults, zp_out,
                 ceil_mode: int = 0, qmin: int = QMIN, qmax: int = QMAX):
    """int8 AveragePool: sum (x - zp_in) over the window (padding contributes 0) in int32,
    then requantise with the (M, n) of the window's count: `mults` = {count: (M, n)} from
    arith.avgpool_multipliers(s_in, s_out, avgpool_counts(...)). No integer division."""
    x = np.asarray(x_q)
    sp, kernel, strides, dil, pads, outs, extra = _pool_geometry(x, kernel_shape, strides, pads, None, ceil_mode)
    d = np.asarray(x, np.int64) - int(zp_in)
    dp = np.pad(d, [(0, 0), (0, 0)] + [(pads[i], pads[i + sp] + extra[i]) for i in range(sp)])
    win = conv_windows(dp, kernel, strides, dil)
    acc = win.sum(axis=tuple(range(-sp, 0)))[(Ellipsis,) + tuple(slice(0, o) for o in outs)]
    counts = avgpool_counts(x.shape[2:], kernel, strides, pads, count_include_pad, ceil_mode)
    try:
        M = np.vectorize(lambda c: mults[int(c)][0], otypes=[np.int64])(counts)
        n = np.vectorize(lambda c: mults[int(c)][1], otypes=[np.int64])(counts)
    except KeyError as e:
        raise ValueError(f"avgpool_int8: no multiplier for window count {e.args[0]}") from None
    _check_acc(acc, "avgpool_int8")
    return requantize(acc, M, n, zp_out, qmin, qmax)


def global_avgpool_int8(x_q, zp_in, M, n, zp_out, qmin: int = QMIN, qmax: int = QMAX):
    """int8 GlobalAveragePool: one count (the spatial size), (M, n) for s_in/(s_out*count)."""
    x = np.asarray(x_q)
    return mean_int8(x, zp_in, tuple(range(2, x.ndim)), 1, M, n, zp_out, qmin, qmax)


def mean_int8(x_q, zp_in, axes, keepdims: int, M, n, zp_out, qmin: int = QMIN, qmax: int = QMAX):
    """int8 ReduceMean over `axes`: sum (x - zp_in) in int32, (M, n) for s_in/(s_out*count)."""
    acc = (np.asarray(x_q, np.int64) - int(zp_in)).sum(axis=tuple(axes), keepdims=bool(keepdims))
    _check_acc(acc, "mean_int8")
    return requantize(acc, M, n, zp_out, qmin, qmax)


def maxpool_int8(x_q, kernel_shape, strides=None, pads=None, dilations=None, ceil_mode: int = 0):
    """int8 MaxPool (byte-moving, output shares the input's qparams). Padding is -128, the
    int8 minimum, not zp: it can only win in a window whose real elements are all -128 (same
    result), so it acts as ONNX's ignored padding; zp would wrongly win over negative reals."""
    x = np.asarray(x_q, np.int8)
    sp, kernel, strides, dil, pads, outs, extra = _pool_geometry(x, kernel_shape, strides, pads, dilations, ceil_mode)
    xp = np.pad(x, [(0, 0), (0, 0)] + [(pads[i], pads[i + sp] + extra[i]) for i in range(sp)],
                constant_values=QMIN)
    win = conv_windows(xp, kernel, strides, dil)
    return win.max(axis=tuple(range(-sp, 0)))[(Ellipsis,) + tuple(slice(0, o) for o in outs)]


# -- nearest resize ---------------------------------------------------------------------------

def _nearest_index(out_len: int, in_len: int, scale: np.float32, mode: str, nearest: str):
    i = np.arange(out_len, dtype=np.float32)
    f32 = np.float32
    if mode == "half_pixel":
        xo = (i + f32(0.5)) / scale - f32(0.5)
    elif mode == "pytorch_half_pixel":
        xo = (i + f32(0.5)) / scale - f32(0.5) if out_len > 1 else np.zeros_like(i)
    elif mode == "asymmetric":
        xo = i / scale
    elif mode == "align_corners":
        xo = i * f32(in_len - 1) / f32(out_len - 1) if out_len > 1 else np.zeros_like(i)
    elif mode == "tf_half_pixel_for_nn":
        xo = (i + f32(0.5)) / scale
    else:
        raise ValueError(f"resize_nearest_int8: unsupported coordinate_transformation_mode {mode!r}")
    xo = xo.astype(np.float32)
    if nearest == "round_prefer_floor":
        r = np.where(xo == np.floor(xo) + f32(0.5), np.floor(xo), np.round(xo))
    elif nearest == "round_prefer_ceil":
        r = np.where(xo == np.floor(xo) + f32(0.5), np.ceil(xo), np.round(xo))
    elif nearest == "floor":
        r = np.floor(xo)
    elif nearest == "ceil":
        r = np.ceil(xo)
    else:
        raise ValueError(f"resize_nearest_int8: unsupported nearest_mode {nearest!r}")
    return np.clip(r, 0, in_len - 1).astype(np.int64)


def resize_nearest_int8(x_q, out_shape=None, scales=None, coordinate_transformation_mode: str = "half_pixel",
                        nearest_mode: str = "round_prefer_floor"):
    """int8 nearest Resize (byte-moving): ONNX's float32 index arithmetic per axis. Give the
    output shape (scale = out/in in float32) or float32 `scales` (out = floor(in * scale))."""
    x = np.asarray(x_q)
    if scales is not None:
        scales = np.asarray(scales, np.float32)
        out_shape = [int(np.floor(np.float32(x.shape[i]) * scales[i])) for i in range(x.ndim)]
    else:
        out_shape = [int(s) for s in out_shape]
        scales = np.array([np.float32(o) / np.float32(i) for o, i in zip(out_shape, x.shape)], np.float32)
    y = x
    for ax in range(x.ndim):
        if out_shape[ax] == x.shape[ax] and scales[ax] == 1:
            continue
        idx = _nearest_index(out_shape[ax], x.shape[ax], scales[ax], coordinate_transformation_mode, nearest_mode)
        y = np.take(y, idx, axis=ax)
    return y
