"""The frozen integer arithmetic of dsedge (DESIGN.md §3, spec: docs/quant-arith.md).

Everything here is pure numpy on scalars/arrays, no graph code. It derives the integer
parameters that the int8 kernels (dsedge/quant/intref.py, later the C runtime) consume:

  * fixed-point multipliers: a positive real r is stored as (M, n) with r ~= M * 2^-n,
    M in [2^30, 2^31), n in [1, 62], M from frexp of the float64 value with round-half-even;
    M == 2^31 becomes (2^30, n-1). r below the n <= 62 range is stored as (0, 62), which the
    requantisation rule maps to exactly zp_out; r >= 2^30 is stored as the saturating
    (2^30, 1) (every non-zero accumulator then saturates, as it would with the exact r).
  * requantisation: y = clamp(zp_out + ((int64)acc * M + 2^(n-1)) >> n, qmin, qmax)
    (round half up, i.e. towards +inf; arithmetic shift).
  * activation (asymmetric int8, 0 exactly representable) and weight (symmetric int8 per
    output channel, [-127, 127]) quantisation parameters, int32 bias, zero-point folding and
    the accumulator overflow proof, 256-entry tables for unary functions, and the parameter
    derivation of Add/Sub (one shared n), Mul, average pooling (one multiplier per window
    count), rescale (Concat), softmax (an exp table) and fused activation clamps.

All reals are derived in float64 from the stored float32 scales, in the evaluation order
written in each function (IEEE double, no fused multiply-add): that order is part of the spec.
"""
from __future__ import annotations

import math
from typing import Callable

import numpy as np

from ..errors import ModelError

INT32_MAX = 2**31 - 1
INT32_MIN = -(2**31)
QMIN, QMAX = -128, 127          # int8 activations
WMAX = 127                      # symmetric int8 weights: [-127, 127]
W4MAX = 7                       # symmetric int4 weights (W4A8): [-7, 7] (never -8)
W7MAX = 63                      # 7-bit weights (weight_bits=7): int8 codes in [-63, 63], so that every
                                # u8 x s8 pair sum fits int16 (vpmaddubsw exact: kernels/avx2/conv_i8_w7.c)
W4_MUL_MAX = 18                 # W4A8 group multipliers m in [1, 18]: |m * q| <= 126 (docs/quant-arith.md §13)
W4_GROUPS = (0, 32, 64)         # W4A8 group sizes along K (0: one scale per output channel)
WEIGHT_SCALE_FLOOR = 2.0**-40   # smallest weight scale (DESIGN.md §3, degenerate ranges)
ACT_SCALE_FLOOR = 2.0**-40      # scale of an activation whose calibrated range is [0, 0]
M_ZERO = (0, 62)                # (M, n) of a multiplier too small to matter: y == zp_out
M_SATURATE = (2**30, 1)         # (M, n) of a multiplier >= 2^30: any acc != 0 saturates
SOFTMAX_ONE = 2**20             # fixed-point 1.0 of the softmax exp table
SOFTMAX_SCALE, SOFTMAX_ZP = 1.0 / 256.0, -128   # the fixed output qparams of softmax_int8


def _pfx(where: str) -> str:
    return f"{where}: " if where else ""


# -- multipliers and requantisation -----------------------------------------------------------

def _quantize_multiplier_scalar(r: float) -> tuple[int, int]:
    r = float(r)
    if not math.isfinite(r) or r < 0:
        raise ValueError(f"multiplier must be finite and >= 0, got {r!r}")
    if r == 0.0:
        return M_ZERO
    if r >= 2.0**30:
        return M_SATURATE
    mant, e = math.frexp(r)                    # r = mant * 2^e, mant in [0.5, 1)
    m = int(np.rint(math.ldexp(mant, 31)))     # exact scaling, round half to even
    n = 31 - e
    if m == 2**31:
        m, n = 2**30, n - 1
    if n > 62:
        return M_ZERO
    return m, n


def quantize_multiplier(real):
    """(M, n) with real ~= M * 2^-n (see module docstring). Scalar in -> Python ints out;
    array in -> two int64 arrays of the same shape."""
    if np.ndim(real) == 0:
        return _quantize_multiplier_scalar(float(real))
    r = np.asarray(real, dtype=np.float64)
    pairs = [_quantize_multiplier_scalar(v) for v in r.ravel()]
    m = np.array([p[0] for p in pairs], dtype=np.int64).reshape(r.shape)
    n = np.array([p[1] for p in pairs], dtype=np.int64).reshape(r.shape)
    return m, n


def _along(v, axis: int | None, ndim: int):
    """Reshape a per-channel 1-D array so it broadcasts along `axis` of an ndim array."""
    v = np.asarray(v, dtype=np.int64)
    if v.ndim == 0 or axis is None:
        return v
    shape = [1] * ndim
    shape[axis % ndim] = v.size
    return v.reshape(shape)


def requantize(acc, M, n, zp_out, qmin: int = QMIN, qmax: int = QMAX, axis: int | None = None):
    """y = clamp(zp_out + ((acc * M + 2^(n-1)) >> n), qmin, qmax) as int8.

    `acc` holds integers with |acc| <= 2^31 (an int32 accumulator, or an Add/Mul term sum
    that fits); M, n are scalars or 1-D per-channel arrays broadcast along `axis` of acc."""
    acc = np.asarray(acc, dtype=np.int64)
    if acc.size and int(np.abs(acc).max()) > 2**31:
        raise ValueError("requantize: accumulator outside the int32 range")
    M, n = _along(M, axis, acc.ndim), _along(n, axis, acc.ndim)
    if np.any(n < 1) or np.any(n > 62) or np.any(M < 0) or np.any(M >= 2**31):
        raise ValueError("requantize: need 0 <= M < 2^31 and 1 <= n <= 62")
    y = (acc * M + (np.int64(1) << (n - 1))) >> n
    return np.clip(y + int(zp_out), qmin, qmax).astype(np.int8)


def rescale_multiplier(s_in, s_out):
    """(M, n) of a pure rescale (Concat input, requantize_int8): real = s_in / s_out."""
    return quantize_multiplier(np.float64(np.float32(s_in)) / np.float64(np.float32(s_out)))


def conv_multipliers(s_in, s_w, s_out):
    """Per-channel (M, n) of a weighted op: real[c] = (s_in * s_w[c]) / s_out in float64."""
    s_w = np.asarray(s_w, dtype=np.float32).astype(np.float64)
    real = (np.float64(np.float32(s_in)) * s_w) / np.float64(np.float32(s_out))
    return quantize_multiplier(real)


def mul_multiplier(s_a, s_b, s_out):
    """(M, n) of Mul: real = (s_a * s_b) / s_out in float64."""
    f = lambda s: np.float64(np.float32(s))  # noqa: E731
    return quantize_multiplier((f(s_a) * f(s_b)) / f(s_out))


def add_params(s_a, s_b, s_out):
    """(M_a, M_b, n) of Add/Sub: one shared n, taken from the larger of the two reals
    r_a = s_a / s_out, r_b = s_b / s_out; the smaller gets M = rint(r * 2^n) (< 2^31, maybe
    < 2^30 or 0). Both M are 0 when the larger multiplier is below the n <= 62 range."""
    f = lambda s: np.float64(np.float32(s))  # noqa: E731
    ra, rb = f(s_a) / f(s_out), f(s_b) / f(s_out)
    big_first = ra >= rb
    big, small = (ra, rb) if big_first else (rb, ra)
    m_big, n = _quantize_multiplier_scalar(big)
    m_small = min(int(np.rint(math.ldexp(float(small), n))), 2**31 - 1)
    if m_big == 0:
        m_small = 0
    return (m_big, m_small, n) if big_first else (m_small, m_big, n)


def avgpool_multipliers(s_in, s_out, counts) -> dict[int, tuple[int, int]]:
    """{count: (M, n)} for average pooling / mean: real = s_in / (s_out * count) in float64."""
    f = lambda s: np.float64(np.float32(s))  # noqa: E731
    out = {}
    for c in sorted({int(c) for c in np.asarray(counts).ravel()}):
        if c < 1:
            raise ValueError(f"window count must be >= 1, got {c}")
        out[c] = _quantize_multiplier_scalar(f(s_in) / (f(s_out) * np.float64(c)))
    return out


def activation_clamp(kind: str | None, s_out, zp_out) -> tuple[int, int]:
    """(qmin, qmax) of the requantised output for a fused activation: None, 'Relu', 'Relu6'.
    ReLU clamps at the quantised 0 (= zp_out); ReLU6 also at zp_out + rint(6 / s_out)."""
    zp_out = int(zp_out)
    if kind is None:
        return QMIN, QMAX
    if kind == "Relu":
        return max(QMIN, zp_out), QMAX
    if kind == "Relu6":
        top = zp_out + int(np.rint(6.0 / np.float64(np.float32(s_out))))
        return max(QMIN, zp_out), min(QMAX, top)
    raise ValueError(f"unknown fused activation {kind!r} (expected None, 'Relu' or 'Relu6')")


# -- quantisation parameters ------------------------------------------------------------------

def choose_activation_qparams(lo, hi, *, where: str = "") -> tuple[np.float32, int]:
    """Asymmetric int8 (scale, zp) for the calibrated range [lo, hi], widened to contain 0.

    scale = float32((hi - lo) / 255) (float64 arithmetic), at least ACT_SCALE_FLOOR (so a
    [0, 0] range gets a tiny positive scale, never 0 or NaN); zp = clamp(rint(-128 - lo/scale))
    so the real 0 is exactly the integer zp."""
    lo, hi = float(lo), float(hi)
    if not (math.isfinite(lo) and math.isfinite(hi)):
        raise ModelError(f"{_pfx(where)}calibration saw a non-finite value (range [{lo}, {hi}])",
                         hint="check the model and the calibration feeds for NaN/inf")
    if lo > hi:
        raise ValueError(f"{_pfx(where)}empty range [{lo}, {hi}]")
    lo, hi = min(lo, 0.0), max(hi, 0.0)
    scale = np.float32((hi - lo) / 255.0)
    if not scale >= ACT_SCALE_FLOOR:
        scale = np.float32(ACT_SCALE_FLOOR)
    zp = int(np.clip(np.rint(-128.0 - lo / np.float64(scale)), QMIN, QMAX))
    return scale, zp


def accumulator_headroom(K: int) -> int:
    """Largest |bias_q| that keeps K*255*127 + |bias_q| < 2^31 (negative: no int8 layer)."""
    return INT32_MAX - int(K) * 255 * 127


def accumulator_bound_ok(K: int, bias_q=None, wmax: int = WMAX) -> bool:
    """The export-time proof that an int8 layer cannot overflow its int32 accumulator:
    K*255*wmax + max|bias_q| < 2^31 (K = products summed per output; wmax = the largest
    |weight| the kernel multiplies: 127 for int8, 7 for per-channel int4, 7*18 with groups)."""
    b = 0 if bias_q is None or np.size(bias_q) == 0 else int(np.abs(np.asarray(bias_q, np.int64)).max())
    return int(K) * 255 * int(wmax) + b < 2**31


ACT_MATMUL_MAX_K = 33025        # MatMul of two int8 activations: K * 255 * 255 < 2^31 (docs/quant-arith.md §14)


def act_matmul_bound_ok(K: int) -> bool:
    """The overflow proof of a MatMul of two int8 activations: every product (qa - za)(qb - zb)
    has |.| <= 255 * 255, so K * 255 * 255 < 2^31 (K <= 33025) bounds every partial sum."""
    return 0 <= int(K) and int(K) * 255 * 255 < 2**31


def act_matmul_out_scale(s_a, s_b) -> np.float32:
    """Float output of a MatMul of two activations: float32(float64(s_a) * float64(s_b)), one
    rounding (the weighted ops' float-output scale with s_b for s_w[c])."""
    return np.float32(np.float64(np.float32(s_a)) * np.float64(np.float32(s_b)))


# -- A16W8: int16 activations, int8 weights (docs/quant-arith.md §15) ---------------------------

A16_QMIN, A16_QMAX = -32768, 32767     # int16 activations: symmetric (zp 0), QuantizeLinear's full range
A16_MAX_K = 1 << 24                    # products per output of an A16W8 layer (the C check refuses more)


def choose_a16_qparams(lo, hi, *, where: str = "") -> tuple[np.float32, int]:
    """Symmetric int16 (scale, 0) for the calibrated range [lo, hi]: scale = float32(max(|lo|, |hi|)
    / 32767) (float64 inside), at least ACT_SCALE_FLOOR; zero point 0 (TFLite 16x8, onnxruntime
    A16W8)."""
    lo, hi = float(lo), float(hi)
    if not (math.isfinite(lo) and math.isfinite(hi)):
        raise ModelError(f"{_pfx(where)}calibration saw a non-finite value (range [{lo}, {hi}])",
                         hint="check the model and the calibration feeds for NaN/inf")
    scale = np.float32(max(abs(lo), abs(hi)) / 32767.0)
    if not scale >= ACT_SCALE_FLOOR:
        scale = np.float32(ACT_SCALE_FLOOR)
    return scale, 0


def quantize16(x, s, zp: int = 0, qmin: int = A16_QMIN, qmax: int = A16_QMAX):
    """ONNX QuantizeLinear to int16: clamp(rint(float32(x) / float32(s)) + zp) (half to even)."""
    q = np.rint(np.asarray(x, dtype=np.float32) / np.float32(s)).astype(np.float64) + int(zp)
    return np.clip(q, qmin, qmax).astype(np.int16)


def a16_bound_ok(K: int) -> bool:
    """An A16W8 accumulator is int64: |acc| <= |bias_q| + K * 32768 * 127 < 2^31 + 2^46 for
    K <= 2^24 (A16_MAX_K), far inside int64; the layer is refused above that K."""
    return 0 <= int(K) <= A16_MAX_K


def quantize_weight_a16(w, axis: int, s_in=None, bias=None, *, where: str = ""):
    """int8 symmetric per-channel weights of an A16W8 layer: §4's rule with the accumulator bound
    of int64 accumulation, so the bias bound is only int32's (bias_q stays int32): s[c] = max(absmax[c]
    / 127, |b[c]| / (s_in * (2^31 - 1)), 2^-40), w_q = clamp(rint(w / s[c]), -127, 127)."""
    w = np.asarray(w)
    if w.dtype.kind == "f" and not np.all(np.isfinite(w)):
        raise ModelError(f"{_pfx(where)}weights contain NaN or inf")
    ax = axis % w.ndim
    C = w.shape[ax]
    K = w.size // C if C else 0
    red = tuple(i for i in range(w.ndim) if i != ax)
    absmax = np.abs(w).max(axis=red).astype(np.float64) if w.size else np.zeros(C)
    s = _channel_scales(absmax / float(WMAX), K, 0, s_in, bias, "A16W8 weight scales")   # wmax 0: B = 2^31-1
    shp = [1] * w.ndim
    shp[ax] = C
    w_q = np.clip(np.rint(w.astype(np.float64) / s.astype(np.float64).reshape(shp)), -WMAX, WMAX).astype(np.int8)
    return w_q, s


def requantize_wide(acc, M, n, zp_out: int = 0, qmin: int = A16_QMIN, qmax: int = A16_QMAX, axis: int | None = None):
    """§3's rule on an int64 accumulator, evaluated exactly (as with unbounded integers), to int16:
    y = clamp(zp_out + floor((acc * M + 2^(n-1)) / 2^n), qmin, qmax). acc * M may exceed int64, so
    (docs/quant-arith.md §15, the C kernel does the same):
      n >= 32: acc = a1 * 2^32 + a0 (a1 = acc >> 32, a0 in [0, 2^32)):
               y = (a1 * M + ((a0 * M + 2^(n-1)) >> 32)) >> (n - 32)   (a0*M + 2^(n-1) < 2^64, unsigned)
      n <  32: acc clamped to [-2^31, 2^31] first (M >= 2^30 there, so |acc| >= 2^31 saturates
               any int16 output either way), then the ordinary rule in int64."""
    acc = np.asarray(acc, dtype=np.int64)
    M, n = _along(M, axis, acc.ndim), _along(n, axis, acc.ndim)
    if np.any(n < 1) or np.any(n > 62) or np.any(M < 0) or np.any(M >= 2**31):
        raise ValueError("requantize_wide: need 0 <= M < 2^31 and 1 <= n <= 62")
    M, n = np.broadcast_to(M, acc.shape), np.broadcast_to(n, acc.shape)
    big = n >= 32
    a1 = acc >> 32
    a0 = (acc & np.int64(0xFFFFFFFF)).astype(np.uint64)
    nb = np.where(big, n, 32)
    low = (a0 * M.astype(np.uint64) + (np.uint64(1) << (nb - 1).astype(np.uint64))) >> np.uint64(32)
    y_big = (a1 * M + low.astype(np.int64)) >> (nb - 32)
    ac = np.clip(acc, -(2**31), 2**31)
    ns = np.where(big, 1, n)
    y_small = (ac * M + (np.int64(1) << (ns - 1))) >> ns
    y = np.where(big, y_big, y_small)
    return np.clip(y + int(zp_out), qmin, qmax).astype(np.int16)


def w4_wmax(group: int) -> int:
    """The largest |effective weight| m*q of a W4A8 layer: 7 per channel, 7*18 with groups."""
    return W4MAX * (W4_MUL_MAX if group else 1)


def weight_rows(w, axis: int) -> np.ndarray:
    """The W[C][K] view of a weight: its per-channel axis first, the rest flattened in order
    (Conv [O, C/g, k...] -> [O, C/g*k...]; Gemm transB=1 [N, K] as is; [K, N] -> its transpose)."""
    w = np.asarray(w)
    return np.moveaxis(w, axis % w.ndim, 0).reshape(w.shape[axis % w.ndim], -1)


def rows_to_weight(r, axis: int, shape) -> np.ndarray:
    """The inverse of `weight_rows`."""
    ax = axis % len(shape)
    moved = (shape[ax],) + tuple(d for i, d in enumerate(shape) if i != ax)
    return np.ascontiguousarray(np.moveaxis(np.asarray(r).reshape(moved), 0, ax))


def quantize_weight_int4(w, axis: int, s_in=None, bias=None, group: int = 0, *, where: str = "", codes=None):
    """W4A8 weights (docs/quant-arith.md §13): (q int8 codes in [-7, 7] in w's shape, channel
    scales float32[C], group multipliers int8[C, ceil(K/group)] in [1, 18] or None).

    Per channel (group 0): s[c] = max(absmax[c] / 7, |b[c]| / (s_in * B), 2^-40), B the
    headroom 2^31-1 - K*255*7; q = clamp(rint(w / s[c]), -7, 7): real = s[c] * q.
    Groups of `group` consecutive k of the W[C][K] view: s[c] = max(absmax[c] / 126, ...) (B with
    7*18), m[c, g] = clamp(ceil(absmax[c, g] / (7 s[c])), 1, 18) in float64, q = clamp(rint(w /
    (s[c] * m[c, g])), -7, 7): real = s[c] * m[c, g] * q, so the kernel's sum of m * (partial sum
    of group g) is exactly the int8 sum with weights m*q (|m*q| <= 126) on the channel scale.
    `codes`: int4 codes chosen elsewhere (Hessian-aware rounding) on these scales, used as they are."""
    w = np.asarray(w)
    if w.dtype.kind == "f" and not np.all(np.isfinite(w)):
        raise ModelError(f"{_pfx(where)}weights contain NaN or inf")
    if group not in W4_GROUPS:
        raise ModelError(f"{_pfx(where)}W4A8 group size {group} is not one of {W4_GROUPS}")
    ax = axis % w.ndim
    rows = weight_rows(w, ax).astype(np.float64)
    C, K = rows.shape
    wmax = w4_wmax(group)
    absmax = np.abs(rows).max(axis=1) if rows.size else np.zeros(C)
    s = _channel_scales(absmax / float(wmax), K, wmax, s_in, bias, "int4 weight scales")
    s64 = s.astype(np.float64)[:, None]
    mul = None
    if group:
        G = -(-K // group) if K else 0
        pad = np.zeros((C, G * group))
        pad[:, :K] = np.abs(rows)
        gmax = pad.reshape(C, G, group).max(axis=2)
        mul = np.clip(np.ceil(gmax / (W4MAX * s64)), 1, W4_MUL_MAX).astype(np.int8)
        step = s64 * np.repeat(mul.astype(np.float64), group, axis=1)[:, :K]
    else:
        step = np.broadcast_to(s64, rows.shape)
    if codes is not None:
        q = np.clip(weight_rows(np.asarray(codes), ax), -W4MAX, W4MAX).astype(np.int8)
    else:
        q = np.clip(np.rint(rows / step), -W4MAX, W4MAX).astype(np.int8)
    return rows_to_weight(q, ax, w.shape), s, mul


def w4_effective(q, axis: int, mul, group: int) -> np.ndarray:
    """The int8 weights m*q (in q's shape) that a W4A8 layer's arithmetic equals: q itself per
    channel, each group's codes times its multiplier with groups."""
    if not group or mul is None:
        return np.asarray(q, np.int8)
    r = weight_rows(q, axis).astype(np.int16)
    K = r.shape[1]
    r = r * np.repeat(np.asarray(mul, np.int16), group, axis=1)[:, :K]
    return rows_to_weight(r.astype(np.int8), axis, np.shape(q))


def quantize_weight_per_channel(w, axis: int, s_in=None, bias=None, *, where: str = "", wmax: int = WMAX):
    """Symmetric per-channel int8 weights: (w_q int8 in [-wmax, wmax], scales float32[C]); wmax 127,
    or W7MAX (63) for 7-bit weights (the same int8 arithmetic, weights on a 63-step grid).

    scale[c] = max(absmax[c] / 127, |b[c]| / (s_in * B), 2^-40) in float64, rounded to
    float32 and nudged up (nextafter) until bias_q fits, where B = the accumulator headroom
    2^31-1 - K*255*127 (K = w.size / C) when that is >= 2^30, else 2^31-1 (such a layer fails
    accumulator_bound_ok and stays float anyway). w_q = clamp(rint(w / scale), -127, 127)."""
    w = np.asarray(w)
    s = per_channel_scales(w, axis, s_in, bias, where=where, wmax=wmax)
    ax = axis % w.ndim
    shp = [1] * w.ndim
    shp[ax] = w.shape[ax]
    w_q = np.clip(np.rint(w.astype(np.float64) / s.astype(np.float64).reshape(shp)), -wmax, wmax).astype(np.int8)
    return w_q, s


def per_channel_scales(w, axis: int, s_in=None, bias=None, *, where: str = "", wmax: int = WMAX):
    """The float32[C] scales of `quantize_weight_per_channel` (without quantising w)."""
    w = np.asarray(w)
    if w.dtype.kind == "f" and not np.all(np.isfinite(w)):       # other dtypes are finite
        raise ModelError(f"{_pfx(where)}weights contain NaN or inf")
    ax = axis % w.ndim
    C = w.shape[ax]
    K = w.size // C if C else 0
    red = tuple(i for i in range(w.ndim) if i != ax)
    # abs and max are exact in any float dtype: no float64 copy of the weights is needed
    absmax = np.abs(w).max(axis=red).astype(np.float64) if w.size else np.zeros(C)
    return _channel_scales(absmax / float(wmax), K, WMAX, s_in, bias, "per-channel weight scales")


def _channel_scales(need, K: int, wmax: int, s_in, bias, what: str) -> np.ndarray:
    """float32[C] weight scales from `need` (absmax / wmax per channel, float64): at least
    |b[c]| / (s_in * B) so that bias_q fits beside K products of |weight| <= wmax (B = the headroom
    2^31-1 - K*255*wmax when that is >= 2^30, else 2^31-1: such a layer stays float anyway), and
    2^-40; rounded to float32 and nudged up (nextafter) until the bias bound holds."""
    C = len(need)
    bound = np.zeros(C)
    if bias is not None:
        if s_in is None:
            raise ValueError(f"{what}: bias given without s_in")
        b = np.abs(np.asarray(bias, dtype=np.float32).astype(np.float64)).reshape(C)
        room = INT32_MAX - int(K) * 255 * int(wmax)
        B = float(room if room >= 2**30 else INT32_MAX)
        bound = b / (np.float64(np.float32(s_in)) * B)
        need = np.maximum(need, bound)
    s = np.maximum(need, WEIGHT_SCALE_FLOOR).astype(np.float32)
    if bias is not None:  # float32 rounding may have gone below the bias bound
        for c in range(C):
            while np.float64(s[c]) < bound[c]:
                s[c] = np.nextafter(s[c], np.float32(np.inf))
    return s


def quantize_bias(b, s_in, s_w, *, where: str = ""):
    """int32 bias_q[c] = rint(b[c] / (s_in * s_w[c])) in float64; out of int32 is an error."""
    b64 = np.asarray(b, dtype=np.float32).astype(np.float64)
    denom = np.float64(np.float32(s_in)) * np.asarray(s_w, dtype=np.float32).astype(np.float64)
    q = np.rint(b64 / denom)
    if not np.all(np.isfinite(q)) or (q.size and np.abs(q).max() > INT32_MAX):
        raise ModelError(f"{_pfx(where)}quantised bias does not fit int32",
                         hint="keep this layer in float, or widen the weight scale")
    return q.astype(np.int32)


def fold_zero_point(bias_q, zp_in, w_q, axis: int, *, where: str = ""):
    """int32 folded bias: bias_q[c] - zp_in * sum(w_q[c]) (computed in int64, range-checked)."""
    w = np.asarray(w_q, dtype=np.int64)
    ax = axis % w.ndim
    s = w.sum(axis=tuple(i for i in range(w.ndim) if i != ax))
    b = np.zeros_like(s) if bias_q is None else np.asarray(bias_q, dtype=np.int64).reshape(s.shape)
    f = b - int(zp_in) * s
    if f.size and (f.max() > INT32_MAX or f.min() < INT32_MIN):
        raise ModelError(f"{_pfx(where)}folded bias (bias - zp_in * sum(w)) does not fit int32",
                         hint="keep this layer in float")
    return f.astype(np.int32)


# -- elementwise quantise / dequantise and tables ---------------------------------------------

def quantize(x, s, zp, qmin: int = QMIN, qmax: int = QMAX):
    """ONNX QuantizeLinear: clamp(rint(float32(x) / float32(s)) + zp) as int8 (half to even); a NaN
    gives zp (as the C kernels: NaN quantises as 0.0)."""
    with np.errstate(invalid="ignore", over="ignore", divide="ignore"):
        r = np.rint(np.asarray(x, dtype=np.float32) / np.float32(s)).astype(np.float64)
    return np.clip(np.where(np.isnan(r), 0.0, r) + int(zp), qmin, qmax).astype(np.int8)


def dequantize(q, s, zp):
    """ONNX DequantizeLinear: float32(q - zp) * float32(s)."""
    return (np.asarray(q, dtype=np.int32) - np.int32(zp)).astype(np.float32) * np.float32(s)


def fake_quantize_(x: np.ndarray, s, zp) -> None:
    """float32 x through int8 in place: the values of dequantize(quantize(x, s, zp), s, zp),
    without the int8 and float64 temporaries (the codes are small integers, exact in float32)."""
    s32 = np.float32(s)
    np.divide(x, s32, out=x)
    np.rint(x, out=x)
    x += np.float32(zp)
    np.clip(x, QMIN, QMAX, out=x)
    x -= np.float32(zp)
    x *= s32


def make_table(f: Callable[[np.ndarray], np.ndarray], s_in, zp_in, s_out, zp_out,
               qmin: int = QMIN, qmax: int = QMAX, *, where: str = ""):
    """256-entry int8 table, entry q + 128 = clamp(zp_out + rint(f(s_in*(q-zp_in)) / s_out)),
    evaluated in float64 (f receives and returns float64 arrays)."""
    q = np.arange(-128, 128, dtype=np.int64)
    x = np.float64(np.float32(s_in)) * (q - int(zp_in)).astype(np.float64)
    with np.errstate(all="ignore"):
        y = np.asarray(f(x), dtype=np.float64)
    if y.shape != x.shape:
        raise ModelError(f"{_pfx(where)}the function tabulated for int8 is not elementwise "
                         f"(256 inputs give shape {y.shape})")
    if np.any(np.isnan(y)):
        raise ModelError(f"{_pfx(where)}the function tabulated for int8 gives NaN on the input range")
    v = np.rint(y / np.float64(np.float32(s_out)))
    return np.clip(v + int(zp_out), qmin, qmax).astype(np.int8)


def softmax_table(s_in):
    """int32[256] exp table of softmax_int8: e[d] = rint(2^20 * exp(-s_in * d)), d = 0..255."""
    d = np.arange(256, dtype=np.float64)
    return np.rint(SOFTMAX_ONE * np.exp(-np.float64(np.float32(s_in)) * d)).astype(np.int32)


# -- uint8 <-> int8 (QDQ export) -------------------------------------------------------------

def int8_to_uint8(q, zp):
    """Exact map to uint8 for QDQ export: q + 128, zp + 128 (same scale, same reals)."""
    return (np.asarray(q, dtype=np.int16) + 128).astype(np.uint8), int(zp) + 128


def uint8_to_int8(q, zp):
    """Exact inverse of int8_to_uint8: q - 128, zp - 128."""
    return (np.asarray(q, dtype=np.int16) - 128).astype(np.int8), int(zp) - 128


# -- dynamic quantisation (docs/quant-arith.md §12) ------------------------------------------

def dynamic_qparams(x) -> tuple[np.float32, int]:
    """Per-inference (scale, int8 zero point) of a float32 activation, ONNX
    DynamicQuantizeLinear's arithmetic in float32 (what onnxruntime computes), mapped to int8:
    lo = min(min(x), 0), hi = max(max(x), 0); s = float32(hi - lo) / 255 (float32 ops);
    s = 1 when that is not > 0 (x all zero, or a range below float32's resolution);
    zp_u8 = rint(clamp(0 - lo / s, 0, 255)) (float32 division, half to even); zp = zp_u8 - 128.
    NaN in x: unspecified (the C runtime ignores NaN in min/max; numpy propagates it)."""
    x = np.asarray(x, np.float32)
    lo = np.minimum(np.float32(x.min()) if x.size else np.float32(0), np.float32(0))
    hi = np.maximum(np.float32(x.max()) if x.size else np.float32(0), np.float32(0))
    with np.errstate(all="ignore"):
        s = np.float32(np.float32(hi - lo) / np.float32(255))
        if not (s > 0) or not np.isfinite(s):
            s = np.float32(1)
        z = np.float32(np.float32(0) - np.float32(lo / s))
    z = np.float32(min(max(z, np.float32(0)), np.float32(255)))
    return s, int(np.rint(z)) - 128


def dynamic_out_scale(s_in, s_w) -> np.ndarray:
    """float32(s_in * s_w[c]): one float32 multiply (== the float64 product rounded once)."""
    return (np.float32(s_in) * np.asarray(s_w, np.float32)).astype(np.float32)
