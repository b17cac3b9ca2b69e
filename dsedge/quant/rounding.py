"""Weight rounding chosen by the layer's output error (Hessian-aware rounding, GPTQ-style).

Rounding each int8 weight to nearest (`rint(w / s)`) minimises the error of every weight on
its own, not the error of the layer's output, which is what the model sees. For an output
channel with weights w (K values, scale s, integer codes q) and the layer's int8 input
patches x (what the int8 kernel multiplies: the calibrated input quantised and dequantised),
the output error is (s*q - w) . x, and its mean square over the calibration data is

    e(q) = d^T H d,   d = s*q - w,   H = E[x x^T] - mu mu^T   (mu = E[x])

The mean part mu mu^T is dropped when bias correction is on: the bias correction removes
the mean output shift d . mu exactly (it is computed here from d and mu, for the rounding
actually chosen). Nearest rounding minimises e only when H is diagonal; neighbouring pixels
and correlated channels make it far from diagonal, and a weight rounded up can be paid back
by its correlated neighbours rounded down.

Algorithm (Frantar et al., "GPTQ", 2022, itself OBQ's greedy step): the codes are chosen
one input column k at a time, in order of decreasing H[k, k]; each column is rounded to
nearest and its rounding error is propagated to the not-yet-rounded columns through the
Cholesky factor U of H^-1 (the optimal linear compensation for the error just made):

    q_k = clamp(rint(v_k), -127, 127);  v_j -= (v_k - q_k) / U[k,k] * U[k,j]   (j after k)

where v = w / s, so every code stays an int8 value on the channel's own grid and the
channel scales (abs-max / 127) do not change: the integer arithmetic, the scales, the
multipliers and the kernels are those of nearest rounding (docs/quant-arith.md); only the
stored int8 values differ. Columns are processed in blocks of 32 with one matrix product
per block for the rest (GPTQ's lazy batch update). H gets a ridge of `damp` times its mean
diagonal (numerical safety, and shrinkage where few patches were seen); a column never seen
non-zero gets H[k,k] = 1. The input quantisation noise in x (about s_x^2/12 per element)
adds a data-given ridge of its own.

Cost: H is accumulated in the measurement pass over the evaluation feeds (rows per feed
capped at max(2K, 1024), taken at a fixed stride); the rounding costs O(K^3 + C*K^2) per
group. Layers with K > `max_k` keep nearest rounding (the cost grows as K^3 while the
rounding error's share of a wide layer's output error shrinks), and so does ConvTranspose.
Grouped and depthwise convolutions solve one problem per group, batched.
"""
from __future__ import annotations

import math

import numpy as np

from ..ir import Graph, Node
from ..ops.nn import conv_windows
from . import arith, kinds

ROWS_PER_K = 2          # patches kept per feed: at most max(ROWS_PER_K * K, MIN_ROWS)
MIN_ROWS = 1024
BLOCK = 32              # GPTQ lazy-update block width
DAMP = 0.01             # ridge, relative to the mean diagonal of H


def eligible(g: Graph, n: Node, max_k: int) -> bool:
    """Whether node n's weights get Hessian-aware rounding (a weighted int8 candidate)."""
    if n.op not in ("Conv", "Gemm", "MatMul"):
        return False
    w = g.consts.get(n.inputs[1]) if len(n.inputs) > 1 else None
    if w is None or w.dtype.kind != "f" or w.ndim < 2:
        return False
    if n.op == "MatMul" and w.ndim != 2:
        return False
    return 1 < kinds.reduction_size(g, n) <= max_k


def patches(g: Graph, n: Node, x: np.ndarray, w: np.ndarray, max_rows: int | None = None) -> np.ndarray:
    """(G, rows, K): the input vectors each output value is a dot product with (im2col of a
    Conv's input, padding 0; the rows of a Gemm/MatMul input), in the weights' K order.
    With max_rows, a Conv's output positions are first thinned by one odd step per spatial
    axis (so no full im2col copy is made) to about max_rows."""
    x = np.asarray(x)
    if n.op == "Conv":
        sp = w.ndim - 2
        k = list(w.shape[2:])
        st = list(n.attrs.get("strides") or [1] * sp)
        dl = list(n.attrs.get("dilations") or [1] * sp)
        pads = kinds.explicit_pads(n, x.shape, w.shape[2:])
        xp = np.pad(x, [(0, 0), (0, 0)] + [(pads[i], pads[i + sp]) for i in range(sp)])
        win = conv_windows(xp, k, st, dl)                              # N, C, *out, *k
        if max_rows and x.shape[0] * math.prod(win.shape[2:2 + sp]) > 2 * max_rows:
            step = math.ceil((x.shape[0] * math.prod(win.shape[2:2 + sp]) / max_rows) ** (1.0 / sp))
            step += 1 - step % 2   # odd: coprime with the power-of-two strides and upsamplings
            # of CNNs, so the kept positions cycle through every phase (an even step would keep
            # one phase of a stride-2 / nearest-upsampled grid only and bias E[x x^T])
            win = win[(slice(None), slice(None)) + (slice(None, None, step),) * sp]
        G = int(n.attrs.get("group", 1))
        N, C = x.shape[:2]
        out_sp = win.shape[2:2 + sp]
        win = win.reshape((N, G, C // G) + tuple(out_sp) + tuple(k))
        order = [1, 0] + list(range(3, 3 + sp)) + [2] + list(range(3 + sp, 3 + 2 * sp))
        return win.transpose(order).reshape(G, -1, (C // G) * math.prod(k))
    K = w.shape[1] if (n.op == "Gemm" and n.attrs.get("transB", 0)) else w.shape[0]
    return x.reshape(1, -1, K)


def weight_rows(n: Node, w: np.ndarray) -> np.ndarray:
    """Weights as (G, C/G, K): one row per output channel, K in the order of `patches`."""
    if n.op == "Conv":
        G = int(n.attrs.get("group", 1))
        return w.reshape(G, w.shape[0] // G, -1)
    if n.op == "Gemm" and n.attrs.get("transB", 0):
        return w[None]
    return w.T[None]


def rows_to_weight(n: Node, r: np.ndarray, shape) -> np.ndarray:
    if n.op == "Conv":
        return r.reshape(shape)
    if n.op == "Gemm" and n.attrs.get("transB", 0):
        return r[0]
    return r[0].T


class HessianStats:
    """Streaming E[x x^T] (float32 sums) and E[x] (float64) of a weighted node's int8 input
    patches, per group."""

    def __init__(self):
        self.H = None
        self.S = None
        self.rows = 0

    @staticmethod
    def cap(K: int, groups: int = 1) -> int:
        """Patches kept per feed and group: at least MIN_ROWS for one group, and MIN_ROWS in
        all for many (a depthwise layer's 9x9 problems need far fewer than 1024 rows each)."""
        if groups <= 1:
            return max(ROWS_PER_K * K, MIN_ROWS)
        return max(2 * ROWS_PER_K * K, -(-MIN_ROWS // groups))

    def add(self, cols: np.ndarray, qparams=None) -> None:
        """Add a feed's patches (G, rows, K). qparams (scale, zero point): the patches are of
        the float input, which the int8 node sees quantised with these (done here, on the
        kept rows only; padding zeros stay 0, as 0 is exact in int8)."""
        G, R, K = cols.shape
        cap = self.cap(K, G)
        if R > cap:   # a fixed stride over the positions: deterministic, spread over the image
            cols = cols[:, np.linspace(0, R - 1, cap).astype(np.int64)]
        c = np.array(cols, dtype=np.float32, order="C")   # a copy: quantised in place
        if qparams is not None:
            arith.fake_quantize_(c, *qparams)
        H = np.matmul(c.transpose(0, 2, 1), c)                       # float32, summed over <= 8 feeds
        S = c.sum(axis=1, dtype=np.float64)
        if self.H is None:
            self.H, self.S = H, S
        else:
            self.H += H
            self.S += S
        self.rows += c.shape[1]


def gptq(v: np.ndarray, H: np.ndarray, damp: float = DAMP, qmax: int = arith.WMAX) -> np.ndarray:
    """Integer codes for v (G, C, K) (weights in units of their channel scale) minimising
    sum_c (q_c - v_c)^T H_g (q_c - v_c) greedily (see the module docstring); H (G, K, K).
    Returns float64 codes (G, C, K). Working memory: two float64 copies of v and a few of H."""
    G, C, K = v.shape
    idx = np.arange(K)
    diag = H[:, idx, idx].copy()
    diag[diag <= 0] = 1.0                                          # a column never seen non-zero
    perm = np.argsort(-diag, axis=1, kind="stable")               # GPTQ's "act order"
    Hp = H[np.arange(G)[:, None, None], perm[:, :, None], perm[:, None, :]]   # one copy
    dp = np.take_along_axis(diag, perm, 1)
    Hp[:, idx, idx] = dp + damp * np.mean(diag, axis=1, keepdims=True)
    try:   # H = A A^T with A upper triangular: the Cholesky factor of H in reversed order
        A = np.linalg.cholesky(Hp[:, ::-1, ::-1])[:, ::-1, ::-1]
    except np.linalg.LinAlgError:
        return np.clip(np.rint(v), -qmax, qmax)
    del Hp
    # (q - v)^T H (q - v) = |A^T (q - v)|^2 with A^T lower triangular: choosing q_k in column
    # order, row k of A^T gives the best continuous q_k given q_0..q_{k-1} (GPTQ's update,
    # written as a forward substitution: Babai's nearest-plane step).
    A /= A[:, idx, idx][:, None, :]                                # in place: column j by A[j, j]
    M = A.transpose(0, 2, 1)                                       # unit lower triangular
    del A
    # (G, K, C), permuted: a column is a row; column j is replaced by its code once chosen
    Vt = np.take_along_axis(np.asarray(v, np.float64).transpose(0, 2, 1), perm[:, :, None], 1)
    D = np.zeros_like(Vt)                                         # q - v, column by column
    for b0 in range(0, K, BLOCK):
        b1 = min(b0 + BLOCK, K)
        T = Vt[:, b0:b1] - (np.matmul(M[:, b0:b1, :b0], D[:, :b0]) if b0 else 0.0)
        for j in range(b0, b1):
            t = T[:, j - b0]
            if j > b0:   # elementwise: a threaded BLAS call this small costs more than it saves
                t = t - np.einsum("gk,gkc->gc", M[:, j, b0:j], D[:, b0:j])
            q = np.clip(np.rint(t), -qmax, qmax)
            D[:, j] = q - Vt[:, j]
            Vt[:, j] = q
    del D, M
    out = np.empty_like(Vt)
    np.put_along_axis(out, np.broadcast_to(perm[:, :, None], Vt.shape), Vt, 1)
    return out.transpose(0, 2, 1)


def choose(g: Graph, n: Node, st: HessianStats, centered: bool, w4_group: int | None = None, wmax: int = arith.WMAX):
    """(w_q int8 in the weight's shape, the absmax scales it is on, bias shift float64[C])
    for node n, or None. The shift is the mean output change E[conv(x, s*q - w)] (what
    bias correction subtracts). `w4_group` not None: int4 codes in [-7, 7] for a W4A8 node
    (arith.quantize_weight_int4's scales; with groups each code's unit is s[c] * m[c, g], and
    the codes are chosen in those units: the metric ignores that units differ across groups)."""
    if st.H is None or st.rows == 0:
        return None
    w = g.consts[n.inputs[1]]
    axis = kinds.weight_axis(n, w)
    wr = weight_rows(n, w)                                        # a view of w (its dtype)
    G, Cg, K = wr.shape
    qmax = wmax          # 127, or 63 for 7-bit weights
    if w4_group is not None:
        _, s, mul = arith.quantize_weight_int4(w, axis, group=w4_group)
        step = np.broadcast_to(s.astype(np.float64)[:, None], (G * Cg, K))
        if w4_group:
            step = step * np.repeat(mul.astype(np.float64), w4_group, axis=1)[:, :K]
        sr = np.ascontiguousarray(step).reshape(G, Cg, K)
        qmax = arith.W4MAX
    else:
        s = arith.per_channel_scales(w, axis, wmax=wmax)
        sr = s.astype(np.float64).reshape(G, Cg)[:, :, None]
    mu = st.S / st.rows
    H = st.H.astype(np.float64)
    st.H = None                                                   # the float32 sums are not needed again
    H /= st.rows
    if centered:   # H - mu mu^T, in row blocks (no (G, K, K) temporary)
        for r in range(0, K, 256):
            H[:, r:r + 256] -= mu[:, r:r + 256, None] * mu[:, None, :]
    q = gptq(wr / sr, H, qmax=qmax)
    del H
    # shift = (s*q - w) . mu per channel, without materialising s*q - w
    if w4_group is not None:
        shift = (np.matmul(sr * q, mu[:, :, None])[..., 0] - np.matmul(wr, mu[:, :, None])[..., 0]).reshape(-1)
    else:
        shift = (sr[:, :, 0] * np.matmul(q, mu[:, :, None])[..., 0] - np.matmul(wr, mu[:, :, None])[..., 0]).reshape(-1)
    q8 = q.astype(np.int8)
    del q
    return rows_to_weight(n, q8, w.shape), s, shift
