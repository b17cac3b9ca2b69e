"""Pre-quantised ONNX ops: QuantizeLinear / DequantizeLinear, DynamicQuantizeLinear, the
integer convolution and matmul families, and onnxruntime's com.microsoft DynamicQuantizeLSTM.

These ops appear in models that were quantised before they reach dsedge (QDQ models,
onnxruntime's dynamic quantisation, e.g. ddddocr's common_old.onnx). Their references
follow onnxruntime's CPU kernels exactly, because that is what such models were validated on:

  quantise      q = saturate(rint(x / scale) + zp)      division in float32, half to even
  dequantise    x = (q - zp) * scale                     in float32 (float16 scale: float16)
  dynamic       scale = (max(x, 0) - min(x, 0)) / 255 (1.0 when the range is empty),
                zp = rint(clamp(-min / scale, 0, 255)) — uint8, per tensor; a NaN element
                makes the range (scale) NaN, and a NaN zero point or quantised value is 0
                (onnxruntime leaves NaN out of the range, by its SIMD min/max: not portable)
  integer MAC   sum (a - za) * (b - zb) exact: products of int8/uint8 differences summed in
                float64 (exact below 2^53, far beyond any real K), returned as int32
  requantise    y = saturate(rint(float32(acc) * float32(sa * sb / sy)) + zy)   (QLinear*)

DynamicQuantizeLSTM (onnxruntime contrib op, domain com.microsoft): an ONNX LSTM whose W/R
are stored quantised and transposed — W [dirs, input, 4H], R [dirs, H, 4H], gate order
i, o, f, c along 4H — with per-direction (or per-column) scales and zero points. For each
direction, X (all time steps at once, shape [T*B, input]) is dynamically quantised to
uint8 as above and multiplied with W; at every step the previous hidden state [B, H] is
quantised the same way and multiplied with R; each product is scaled by
a_scale * w_scale[col] and accumulated in float; then the usual LSTM gates with bias
Wb + Rb, computed with onnxruntime's MLAS sigmoid/tanh approximations (`mlas_logistic`,
`mlas_tanh`), which the reference reproduces bit for bit.
"""
from __future__ import annotations

import numpy as np

from ..errors import UnsupportedOpError
from ..ir import TensorInfo
from .registry import ACT, BIAS, PARAM, WEIGHT, QuantRule, op  # noqa: F401

_INT_TYPES = {np.dtype(t) for t in (np.int8, np.uint8, np.int16, np.uint16, np.int32)}
# ONNX TensorProto element types for QuantizeLinear's `output_dtype` (opset 21).
_ONNX_INT = {2: np.uint8, 3: np.int8, 4: np.uint16, 5: np.int16}


def _range(dtype) -> tuple[int, int]:
    info = np.iinfo(dtype)
    return int(info.min), int(info.max)


def _per_axis(p: np.ndarray, ndim: int, axis: int, op_name: str) -> np.ndarray:
    """Reshape a 1-D per-axis scale/zero point so it broadcasts along `axis` of an `ndim` tensor."""
    p = np.asarray(p)
    if p.ndim == 0 or p.size == 1:
        return p.reshape(())
    if p.ndim != 1:
        raise UnsupportedOpError(f"{op_name}: scale/zero point of shape {list(p.shape)} (blocked "
                                 "quantisation) is not supported", hint="use per-tensor or per-axis parameters")
    shape = [1] * ndim
    shape[axis % ndim] = p.size
    return p.reshape(shape)


def _qdq_infer(out_dtype_of):
    def infer(attrs, infos, consts):
        return [TensorInfo(out_dtype_of(attrs, infos, consts), infos[0].shape)]
    return infer


def _q_out_dtype(attrs, infos, consts):
    if len(infos) > 2 and infos[2] is not None and infos[2].dtype is not None:
        return infos[2].dtype
    od = attrs.get("output_dtype", 0)
    return np.dtype(_ONNX_INT.get(od, np.uint8)) if od in (0, *_ONNX_INT) else None


def _drop_zero_block(opset, inputs, attrs):
    # block_size 0 means "not blocked": drop it, so that a non-zero value is reported by the
    # reader as an unsupported attribute naming the node
    if attrs.get("block_size", 0) == 0:
        attrs.pop("block_size", None)
    return inputs, attrs


@op("QuantizeLinear", 370, infer=_qdq_infer(_q_out_dtype), upgrade=_drop_zero_block)
def quantize_linear(x, y_scale, y_zero_point=None, *, axis=1, saturate=1, output_dtype=0):
    if y_zero_point is not None:
        qt = np.asarray(y_zero_point).dtype
    elif output_dtype in _ONNX_INT:
        qt = np.dtype(_ONNX_INT[output_dtype])
    elif output_dtype == 0:
        qt = np.dtype(np.uint8)
    else:
        raise UnsupportedOpError(f"QuantizeLinear: output type {output_dtype} (float8/int4) is not supported",
                                 hint="supported outputs: int8, uint8, int16, uint16")
    if qt not in _INT_TYPES or qt == np.int32:
        raise UnsupportedOpError(f"QuantizeLinear: output type {qt} is not supported",
                                 hint="supported outputs: int8, uint8, int16, uint16")
    x = np.asarray(x)
    scale = _per_axis(np.asarray(y_scale, dtype=np.float32), x.ndim, axis, "QuantizeLinear")
    zp = 0 if y_zero_point is None else _per_axis(y_zero_point, x.ndim, axis, "QuantizeLinear")
    # a NaN input gives the zero point (NaN quantises as 0.0; the spec leaves it open), as the C kernels
    with np.errstate(invalid="ignore", over="ignore", divide="ignore"):
        r = np.rint(x.astype(np.float32) / scale).astype(np.float64)
    q = np.where(np.isnan(r), 0.0, r) + np.asarray(zp, np.float64)
    lo, hi = _range(qt)
    return np.clip(q, lo, hi).astype(qt)


def _dq_out_dtype(attrs, infos, consts):
    return infos[1].dtype if infos[1] is not None and infos[1].dtype is not None else np.dtype(np.float32)


@op("DequantizeLinear", 371, infer=_qdq_infer(_dq_out_dtype), upgrade=_drop_zero_block)
def dequantize_linear(x, x_scale, x_zero_point=None, *, axis=1):
    x = np.asarray(x)
    if x.dtype not in _INT_TYPES:
        raise UnsupportedOpError(f"DequantizeLinear: input type {x.dtype} is not supported",
                                 hint="supported inputs: int8, uint8, int16, uint16, int32")
    scale = np.asarray(x_scale)
    out_t = scale.dtype if scale.dtype in (np.float16, np.float32) else np.dtype(np.float32)
    s = _per_axis(scale.astype(np.float32), x.ndim, axis, "DequantizeLinear")
    zp = 0 if x_zero_point is None else _per_axis(np.asarray(x_zero_point).astype(np.int64), x.ndim, axis,
                                                  "DequantizeLinear")
    diff = (x.astype(np.int64) - zp).astype(np.float32)
    return (diff * s).astype(out_t)


def dynamic_qparams(x: np.ndarray) -> tuple[np.float32, np.uint8]:
    """onnxruntime's dynamic uint8 parameters of a float tensor (range always contains 0)."""
    x = np.asarray(x, dtype=np.float32)
    lo = np.float32(min(float(x.min()), 0.0)) if x.size else np.float32(0)
    hi = np.float32(max(float(x.max()), 0.0)) if x.size else np.float32(0)
    with np.errstate(invalid="ignore", over="ignore", divide="ignore"):
        scale = np.float32(1.0) if hi == lo else np.float32((hi - lo) / np.float32(255))
        zp = np.rint(np.clip(np.float32(0) - lo / scale, np.float32(0), np.float32(255)))
    # NaN (a NaN input; -inf over an infinite scale) has no uint8 value: defined as 0, the
    # canonical NaN scale, so that every platform (and the C runtime) gives the same bytes
    return (np.float32(np.nan) if np.isnan(scale) else scale), np.uint8(0 if np.isnan(zp) else zp)


def _quant_u8(x: np.ndarray, scale, zp) -> np.ndarray:
    with np.errstate(invalid="ignore", over="ignore", divide="ignore"):
        q = np.rint(np.asarray(x, np.float32) / np.float32(scale)).astype(np.float64) + float(zp)
    return np.clip(np.nan_to_num(q, nan=0.0), 0, 255).astype(np.uint8)


def _dql_infer(attrs, infos, consts):
    return [TensorInfo(np.dtype(np.uint8), infos[0].shape), TensorInfo(np.dtype(np.float32), ()),
            TensorInfo(np.dtype(np.uint8), ())]


@op("DynamicQuantizeLinear", 372, infer=_dql_infer)
def dynamic_quantize_linear(x):
    scale, zp = dynamic_qparams(x)
    return _quant_u8(x, scale, zp), np.array(scale, np.float32), np.array(zp, np.uint8)


# -- integer matmul / conv --------------------------------------------------------------

def _centered(x, zp, axis: int | None = None) -> np.ndarray:
    """x - zp as float64 (exact); zp scalar, or 1-D along `axis`."""
    x = np.asarray(x).astype(np.float64)
    if zp is None:
        return x
    zp = np.asarray(zp).astype(np.float64)
    if zp.ndim == 0 or zp.size == 1:
        return x - zp.reshape(())
    shape = [1] * x.ndim
    shape[axis % x.ndim] = zp.size
    return x - zp.reshape(shape)


def _exact_int32(acc: np.ndarray) -> np.ndarray:
    return np.rint(acc).astype(np.int64).astype(np.int32)


def _matmul_centered(a, b, a_zp, b_zp):
    # a_zp: scalar or per-row of A ([M] along axis -2); b_zp: scalar or per-column ([N], axis -1)
    a = np.asarray(a)
    ac = _centered(a, a_zp, -2 if a.ndim >= 2 else -1) if a_zp is not None else a.astype(np.float64)
    bc = _centered(b, b_zp, -1)
    return np.matmul(ac, bc)


@op("MatMulInteger", 373)
def matmul_integer(a, b, a_zero_point=None, b_zero_point=None):
    return _exact_int32(_matmul_centered(a, b, a_zero_point, b_zero_point))


def _requant(acc, multiplier, y_zp, qt):
    """onnxruntime's MlasRequantizeOutput: rint(float32(acc) * float32 multiplier) + zp, saturated."""
    y = np.rint(np.asarray(acc).astype(np.float32) * multiplier).astype(np.float64)
    y = y + (0.0 if y_zp is None else np.asarray(y_zp, np.float64))
    lo, hi = _range(qt)
    return np.clip(y, lo, hi).astype(qt)


@op("QLinearMatMul", 374)
def qlinear_matmul(a, a_scale, a_zero_point, b, b_scale, b_zero_point, y_scale, y_zero_point):
    acc = _exact_int32(_matmul_centered(a, b, a_zero_point, b_zero_point))
    sa = np.asarray(a_scale, np.float32)
    sb = np.asarray(b_scale, np.float32)
    sa = sa.reshape(-1, 1) if sa.size > 1 else sa.reshape(())   # per row of A
    sb = sb.reshape(-1) if sb.size > 1 else sb.reshape(())       # per column of B
    mult = (sa * sb / np.asarray(y_scale, np.float32).reshape(())).astype(np.float32)
    return _requant(acc, mult, np.asarray(y_zero_point).reshape(()), np.asarray(y_zero_point).dtype)


def conv_pads(x_spatial, k_spatial, strides, dilations, pads, auto_pad):
    """Begin/end pads per spatial axis, ONNX semantics (auto_pad NOTSET/VALID/SAME_UPPER/SAME_LOWER)."""
    n = len(x_spatial)
    if auto_pad in ("NOTSET", "", None):
        p = list(pads) if pads else [0] * (2 * n)
        return p[:n], p[n:]
    if auto_pad == "VALID":
        return [0] * n, [0] * n
    if auto_pad not in ("SAME_UPPER", "SAME_LOWER"):
        raise UnsupportedOpError(f"auto_pad {auto_pad!r} is not supported",
                                 hint="use NOTSET, VALID, SAME_UPPER or SAME_LOWER")
    begin, end = [], []
    for xs, ks, s, d in zip(x_spatial, k_spatial, strides, dilations):
        out = -(-xs // s)
        total = max(0, (out - 1) * s + (ks - 1) * d + 1 - xs)
        small, big = total // 2, total - total // 2
        begin.append(small if auto_pad == "SAME_UPPER" else big)
        end.append(big if auto_pad == "SAME_UPPER" else small)
    return begin, end


def int_conv(xc: np.ndarray, wc: np.ndarray, *, group=1, strides=None, dilations=None, pads=None,
             auto_pad="NOTSET") -> np.ndarray:
    """N-d convolution of zero-point-centred float64 tensors (exact for integer data), im2col."""
    nsp = xc.ndim - 2
    strides = list(strides or [1] * nsp)
    dilations = list(dilations or [1] * nsp)
    ks = wc.shape[2:]
    pb, pe = conv_pads(xc.shape[2:], ks, strides, dilations, pads, auto_pad)
    xp = np.pad(xc, [(0, 0), (0, 0)] + list(zip(pb, pe)))
    N, C = xp.shape[:2]
    M = wc.shape[0]
    if C % group or M % group or wc.shape[1] != C // group:
        raise ValueError(f"input channels {C} / weight {list(wc.shape)} do not match group {group}")
    # windows of the dilated kernel extent, then subsample by dilation and stride
    ext = [(k - 1) * d + 1 for k, d in zip(ks, dilations)]
    win = np.lib.stride_tricks.sliding_window_view(xp, ext, axis=tuple(range(2, 2 + nsp)))
    sl = (slice(None), slice(None)) + tuple(slice(None, None, s) for s in strides) + \
        tuple(slice(None, None, d) for d in dilations)
    win = win[sl]                                     # N, C, *out, *ks
    out_sp = win.shape[2:2 + nsp]
    cg, mg = C // group, M // group
    outs = []
    for g in range(group):
        cols = win[:, g * cg:(g + 1) * cg]           # N, cg, *out, *ks
        cols = np.moveaxis(cols, 1, 1 + nsp)          # N, *out, cg, *ks
        cols = cols.reshape(N, int(np.prod(out_sp)), -1)
        wg = wc[g * mg:(g + 1) * mg].reshape(mg, -1)  # mg, cg*prod(ks)
        outs.append(np.matmul(cols, wg.T))            # N, P, mg
    y = np.concatenate(outs, axis=2)
    return np.moveaxis(y, 2, 1).reshape((N, M) + tuple(out_sp))


@op("ConvInteger", 375)
def conv_integer(x, w, x_zero_point=None, w_zero_point=None, *, auto_pad="NOTSET", dilations=None, group=1,
                 kernel_shape=None, pads=None, strides=None):
    xc = _centered(x, x_zero_point)
    wc = _centered(w, w_zero_point, 0)
    return _exact_int32(int_conv(xc, wc, group=group, strides=strides, dilations=dilations, pads=pads,
                                 auto_pad=auto_pad))


@op("QLinearConv", 376)
def qlinear_conv(x, x_scale, x_zero_point, w, w_scale, w_zero_point, y_scale, y_zero_point, B=None, *,
                 auto_pad="NOTSET", dilations=None, group=1, kernel_shape=None, pads=None, strides=None):
    xc = _centered(x, x_zero_point)
    wc = _centered(w, w_zero_point, 0)
    acc = _exact_int32(int_conv(xc, wc, group=group, strides=strides, dilations=dilations, pads=pads,
                                auto_pad=auto_pad)).astype(np.int64)
    if B is not None:
        acc = acc + np.asarray(B, np.int64).reshape((1, -1) + (1,) * (acc.ndim - 2))
    acc = acc.astype(np.int32)
    ws = np.asarray(w_scale, np.float32).reshape(-1)
    mult = (np.asarray(x_scale, np.float32).reshape(()) * ws / np.asarray(y_scale, np.float32).reshape(()))
    mult = mult.astype(np.float32).reshape((1, -1) + (1,) * (acc.ndim - 2)) if ws.size > 1 else mult.reshape(())
    return _requant(acc, mult, np.asarray(y_zero_point).reshape(()), np.asarray(y_zero_point).dtype)


# -- com.microsoft DynamicQuantizeLSTM -------------------------------------------------

# onnxruntime's LSTM kernels use MLAS's rational approximations of the logistic and tanh
# functions (Eigen's coefficients), evaluated with fused multiply-adds. The reference
# reproduces them bit for bit — a float32 product is exact in float64, so a float64
# multiply-add rounded once to float32 is the fused operation: dynamically quantised models
# re-quantise every step and would turn 1-ulp differences into visible ones.
_F = np.float32
_LOGISTIC_P = [_F(v) for v in (4.37031012579801e-11, 1.15627324459942e-07, 6.08574864600143e-05,
                               8.51377133304701e-03, 2.48287947061529e-01)]
_LOGISTIC_Q = [_F(v) for v in (6.10247389755681e-13, 5.76102136993427e-09, 6.29106785017040e-06,
                               1.70198817374094e-03, 1.16817656904453e-01, 9.93151921023180e-01)]
_TANH_P = [_F(v) for v in (-2.76076847742355e-16, 2.00018790482477e-13, -8.60467152213735e-11,
                           5.12229709037114e-08, 1.48572235717979e-05, 6.37261928875436e-04, 4.89352455891786e-03)]
_TANH_Q = [_F(v) for v in (1.19825839466702e-06, 1.18534705686654e-04, 2.26843463243900e-03, 4.89352518554385e-03)]


def _fma(a, b, c):
    return (np.asarray(a, np.float64) * b + c).astype(_F)


def _horner(v2, coeffs):
    acc = _fma(v2, coeffs[0], coeffs[1])
    for c in coeffs[2:]:
        acc = _fma(acc, v2, c)
    return acc


def mlas_logistic(x):
    v = np.clip(np.asarray(x, _F), _F(-18), _F(18))
    v2 = v * v
    return np.clip(_horner(v2, _LOGISTIC_P) * v / _horner(v2, _LOGISTIC_Q) + _F(0.5), _F(0), _F(1))


def mlas_tanh(x):
    v = np.clip(np.asarray(x, _F), _F(-9), _F(9))
    v2 = v * v
    return (_horner(v2, _TANH_P) * v / _horner(v2, _TANH_Q)).astype(_F)


_ACTS = {"sigmoid": mlas_logistic, "tanh": mlas_tanh, "relu": lambda x: np.maximum(x, _F(0))}


def _dyn_qgemm(a: np.ndarray, wq: np.ndarray, w_scale: np.ndarray, w_zp: np.ndarray) -> np.ndarray:
    """onnxruntime's quantised RNN GEMM: A [M, K] float quantised to uint8 on the fly,
    times W [K, N] int8/uint8 (scalar zero point), scaled per column; float32 result."""
    s, z = dynamic_qparams(a)
    aq = _quant_u8(a, s, z).astype(np.float64) - float(z)
    acc = (aq @ (wq.astype(np.float64) - float(w_zp))).astype(np.float32)   # exact integers
    return acc * (np.float32(s) * w_scale.astype(np.float32))


def _lstm_direction(x, wq, rq, ws, wz, rs, rz, bias, h, c, acts, clip, input_forget):
    T, B, _ = x.shape
    H = h.shape[-1]
    xw = _dyn_qgemm(x.reshape(T * B, -1), wq, ws, wz).reshape(T, B, 4 * H)
    f_act, g_act, h_act = acts
    ys = []
    for t in range(T):
        gates = xw[t] + _dyn_qgemm(h, rq, rs, rz)
        gates = gates + bias
        if clip is not None:
            gates = np.clip(gates, -clip, clip)
        i, o, f, cc = (gates[:, k * H:(k + 1) * H] for k in range(4))
        i = f_act(i)
        f = (np.float32(1) - i) if input_forget else f_act(f)
        cc = g_act(cc)
        c = (f * c + i * cc).astype(np.float32)
        o = f_act(o)
        h = (o * h_act(c)).astype(np.float32)
        ys.append(h)
    return np.stack(ys), h, c


@op("DynamicQuantizeLSTM", 377, domain="com.microsoft")
def dynamic_quantize_lstm(X, W, R, B=None, sequence_lens=None, initial_h=None, initial_c=None, P=None,
                          W_scale=None, W_zero_point=None, R_scale=None, R_zero_point=None, *,
                          activation_alpha=None, activation_beta=None, activations=None, clip=None,
                          direction="forward", hidden_size=None, input_forget=0):
    X = np.asarray(X, np.float32)
    T, Bt, _ = X.shape
    dirs = 2 if direction == "bidirectional" else 1
    H = int(hidden_size) if hidden_size else W.shape[2] // 4
    if direction not in ("forward", "reverse", "bidirectional"):
        raise UnsupportedOpError(f"DynamicQuantizeLSTM: direction {direction!r} is not valid")
    if P is not None:
        raise UnsupportedOpError("DynamicQuantizeLSTM: peephole weights (P) are not supported",
                                 hint="onnxruntime's quantiser never emits them; re-quantise without peepholes")
    if sequence_lens is not None and np.any(np.asarray(sequence_lens) != T):
        raise UnsupportedOpError("DynamicQuantizeLSTM: sequence_lens shorter than the sequence are not supported",
                                 hint="pad every sequence to the full length or drop sequence_lens")
    names = [a.lower() for a in (activations or ["Sigmoid", "Tanh", "Tanh"] * dirs)]
    if activation_alpha or activation_beta or any(a not in _ACTS for a in names):
        raise UnsupportedOpError(f"DynamicQuantizeLSTM: activations {activations} are not supported",
                                 hint="supported: Sigmoid, Tanh, Relu without alpha/beta")
    bias = np.zeros((dirs, 8 * H), np.float32) if B is None else np.asarray(B, np.float32)
    h0 = np.zeros((dirs, Bt, H), np.float32) if initial_h is None else np.asarray(initial_h, np.float32)
    c0 = np.zeros((dirs, Bt, H), np.float32) if initial_c is None else np.asarray(initial_c, np.float32)
    W_scale, R_scale = np.asarray(W_scale, np.float32), np.asarray(R_scale, np.float32)
    W_zero_point, R_zero_point = np.asarray(W_zero_point), np.asarray(R_zero_point)
    ys, hs, cs = [], [], []
    for d in range(dirs):
        rev = direction == "reverse" or d == 1
        xd = X[::-1] if rev else X
        # per-direction scale ([dirs]) or per-column ([dirs, 4H]); onnxruntime uses the first zero point
        ws, rs = W_scale.reshape(dirs, -1)[d], R_scale.reshape(dirs, -1)[d]
        wz, rz = W_zero_point.reshape(dirs, -1)[d, 0], R_zero_point.reshape(dirs, -1)[d, 0]
        b = bias[d, :4 * H] + bias[d, 4 * H:]
        y, h, c = _lstm_direction(xd, np.asarray(W[d]), np.asarray(R[d]), ws, int(wz), rs, int(rz), b, h0[d], c0[d],
                                  [_ACTS[a] for a in names[3 * d:3 * d + 3]],
                                  None if clip is None else np.float32(clip), input_forget)
        ys.append(y[::-1] if rev else y)
        hs.append(h)
        cs.append(c)
    Y = np.stack(ys, axis=1)            # T, dirs, B, H
    return Y, np.stack(hs), np.stack(cs)
