"""Generate the golden cases of the int8 kernels (format: README.md in this folder).

The expected outputs come from an independent oracle written here with Python's exact
integers and fractions.Fraction -- never from dsedge.quant: direct loops over output pixels
and kernel taps (padding = "skip the tap", not zero-point folding), multipliers found by
exact search for the binade and Fraction's round-half-even, requantisation as
floor(acc*M/2^n + 1/2). Inputs are drawn from a seeded numpy generator.

    python tests/quant/golden/generate.py        # rewrites every *.json here
"""
from __future__ import annotations

import itertools
import json
import math
import os
from fractions import Fraction

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
rng = np.random.default_rng(20240607)
HALF = Fraction(1, 2)


# -- the oracle -------------------------------------------------------------------------------

def f32(v) -> float:
    """The float64 value of the float32 nearest to v (a stored scale)."""
    return float(np.float32(v))


def mult(real: float) -> tuple[int, int]:
    r = Fraction(real)
    assert r >= 0
    if r == 0:
        return 0, 62
    if r >= 2**30:
        return 2**30, 1
    e = 0
    while r >= Fraction(2) ** e:
        e += 1
    while r < Fraction(2) ** (e - 1):
        e -= 1
    n = 31 - e
    m = round(r * Fraction(2) ** n)          # Fraction.__round__: half to even
    if m == 2**31:
        m, n = 2**30, n - 1
    if n > 62:
        return 0, 62
    return m, n


def rq(acc: int, m: int, n: int, zp: int, qmin=-128, qmax=127) -> int:
    v = zp + math.floor(Fraction(acc * m, 2**n) + HALF)
    return max(qmin, min(qmax, v))


def rand_q(shape, lo=-128, hi=127, dtype=np.int8):
    return rng.integers(lo, hi + 1, size=shape).astype(dtype)


def arr(a) -> dict:
    a = np.asarray(a)
    return {"dtype": str(a.dtype), "shape": list(a.shape), "data": a.ravel().tolist()}


def hexs(v) -> str | list:
    if np.ndim(v):
        return [float(x).hex() for x in np.asarray(v, np.float64).ravel()]
    return float(v).hex()


def out_len(L, k, s, pb, pe, d=1, ceil=0):
    span = L + pb + pe - ((k - 1) * d + 1)
    o = (-(-span // s) if ceil else span // s) + 1
    if ceil and (o - 1) * s >= L + pb:
        o -= 1
    return o


def conv_oracle(x, zp, w, b, M, n, zpo, strides, pads, dil, group, qmin=-128, qmax=127):
    sp = x.ndim - 2
    N, C = x.shape[:2]
    O, Cg = w.shape[:2]
    ks = w.shape[2:]
    Og = O // group
    outs = [out_len(x.shape[2 + i], ks[i], strides[i], pads[i], pads[i + sp], dil[i]) for i in range(sp)]
    X, W = x.tolist(), w.tolist()
    y = np.zeros([N, O] + outs, np.int8)

    def at(a, idx):
        for i in idx:
            a = a[i]
        return a
    for b_, o in itertools.product(range(N), range(O)):
        g = o // Og
        for p in itertools.product(*[range(v) for v in outs]):
            acc = int(b[o])
            for ci in range(Cg):
                for kk in itertools.product(*[range(v) for v in ks]):
                    pos = [p[i] * strides[i] - pads[i] + kk[i] * dil[i] for i in range(sp)]
                    if all(0 <= pos[i] < x.shape[2 + i] for i in range(sp)):
                        acc += (at(X, [b_, g * Cg + ci] + pos) - zp) * at(W, [o, ci] + list(kk))
            assert -2**31 <= acc < 2**31
            y[(b_, o) + p] = rq(acc, int(M[o]), int(n[o]), zpo, qmin, qmax)
    return y


def conv_transpose_oracle(x, zp, w, b, M, n, zpo, strides, pads, dil, group, opad):
    sp = x.ndim - 2
    N, C = x.shape[:2]
    Og = w.shape[1]
    ks = w.shape[2:]
    Cg, O = C // group, Og * group
    outs = [(x.shape[2 + i] - 1) * strides[i] + (ks[i] - 1) * dil[i] + 1 + opad[i] - pads[i] - pads[i + sp]
            for i in range(sp)]
    acc = {}
    for b_, ci in itertools.product(range(N), range(C)):
        g = ci // Cg
        for p in itertools.product(*[range(v) for v in x.shape[2:]]):
            d = int(x[(b_, ci) + p]) - zp
            for oo in range(Og):
                for kk in itertools.product(*[range(v) for v in ks]):
                    q = tuple(p[i] * strides[i] - pads[i] + kk[i] * dil[i] for i in range(sp))
                    if all(0 <= q[i] < outs[i] for i in range(sp)):
                        key = (b_, g * Og + oo) + q
                        acc[key] = acc.get(key, 0) + d * int(w[(ci, oo) + kk])
    y = np.zeros([N, O] + outs, np.int8)
    for key in itertools.product(range(N), range(O), *[range(v) for v in outs]):
        o = key[1]
        y[key] = rq(acc.get(key, 0) + int(b[o]), int(M[o]), int(n[o]), zpo)
    return y


def matmul_oracle(x, zp, w, b, M, n, zpo):     # x (R, K), w (K, Nc)
    R, K = x.shape
    Nc = w.shape[1]
    X, W = x.tolist(), w.tolist()
    y = np.zeros((R, Nc), np.int8)
    for r, c in itertools.product(range(R), range(Nc)):
        acc = (0 if b is None else int(b[c])) + sum((X[r][k] - zp) * W[k][c] for k in range(K))
        y[r, c] = rq(acc, int(M[c]), int(n[c]), zpo)
    return y


# -- cases ------------------------------------------------------------------------------------

def write(name: str, case: dict) -> None:
    with open(os.path.join(HERE, name + ".json"), "w") as f:
        json.dump(case, f, separators=(",", ":"))
        f.write("\n")


def conv_case(name, desc, x_shape, w_shape, strides, pads, dil, group, zp_in, zp_out, s_in, s_w, s_out,
              x_lo=-128, x_hi=127, w_lim=127, bias_lim=5000, qmin=-128, qmax=127, w_lo=None):
    x = rand_q(x_shape, x_lo, x_hi)
    w = rand_q(w_shape, -w_lim if w_lo is None else w_lo, w_lim)
    O = w_shape[0]
    b = rng.integers(-bias_lim, bias_lim + 1, O).astype(np.int32)
    s_w = np.asarray(s_w if np.ndim(s_w) else [s_w] * O, np.float32)
    s_in, s_out = f32(s_in), f32(s_out)
    mn = [mult((s_in * float(s)) / s_out) for s in s_w]
    M = np.array([m for m, _ in mn], np.int64)
    n = np.array([k for _, k in mn], np.int64)
    y = conv_oracle(x, zp_in, w, b, M, n, zp_out, strides, pads, dil, group, qmin, qmax)
    write(name, {
        "kernel": "conv_int8", "description": desc,
        "derive": {"kind": "conv", "s_in": hexs(s_in), "s_w": hexs(s_w), "s_out": hexs(s_out)},
        "args": {"x_q": arr(x), "zp_in": zp_in, "w_q": arr(w), "bias_q": arr(b), "M": arr(M), "n": arr(n),
                 "zp_out": zp_out, "strides": strides, "pads": pads, "dilations": dil, "group": group,
                 "qmin": qmin, "qmax": qmax},
        "expected": arr(y)})


def gen_multipliers():
    reals = [0.5, 1.0, 3.0, 255.0, 1000.5, 2.0**29 * 1.75, 2.0**30, 1e12, 0.0,
             (1 - 2.0**-32), (1 - 2.0**-33) * 4, (1 - 2.0**-31) * 0.25,      # M = 2^31 -> 2^30, n-1
             (2.0**30 + 0.5) / 2.0**31, (2.0**30 + 1.5) / 2.0**31,           # ties to even
             (2.0**31 - 1.5) / 2.0**31,                                      # tie just below 2^31
             2.0**-32, 2.0**-33, (1 - 2.0**-40) * 2.0**-33, 2.0**-31 * 0.75, 1e-30,
             2.0**-20 * 2.0**-20, 2.0**4 / 2.0**-20]
    for _ in range(20):
        s_in, s_w, s_out = (f32(2.0 ** rng.uniform(-20, 4)) for _ in range(3))
        reals.append((s_in * s_w) / s_out)
    cases = [{"real": float(r).hex(), "M": mult(r)[0], "n": mult(r)[1]} for r in reals]
    write("multipliers", {"kernel": "quantize_multiplier",
                          "description": "real (float64, hex) -> (M, n); ties, M=2^31 -> 2^30, n>62, r>=2^30",
                          "cases": cases})


def gen_requantize():
    accs = np.array([0, 1, -1, 2**31 - 1, -2**31, 12345, -12345, 3, -3, 5, -5, 7, -7, 1 << 20, -(1 << 20),
                     99999999, -99999999, 2, -2, 6, -6, 4, -4, 12, -12, 20, -20], np.int64)
    pairs = [(2**30, 1), (2**30, 31), (2**30, 32), (2**30, 33), (3 * 2**29, 32), (2**31 - 1, 31), (1518500250, 40),
             (0, 62), (2**30, 62), (1610612736, 29), (1073741825, 45)]   # n = 31..33: exact ties
    acc = np.repeat(accs[:, None], len(pairs), 1)                # axis 1 = channel
    M = np.array([p[0] for p in pairs], np.int64)
    n = np.array([p[1] for p in pairs], np.int64)
    for zp, name in ((-128, "requantize_zp_m128"), (127, "requantize_zp_127"), (-3, "requantize_zp_m3")):
        y = np.array([[rq(int(acc[i, c]), int(M[c]), int(n[c]), zp) for c in range(len(pairs))]
                      for i in range(len(accs))], np.int8)
        write(name, {"kernel": "requantize", "description": f"ties (round half up), int32 extremes, zp {zp}",
                     "args": {"acc": arr(acc), "M": arr(M), "n": arr(n), "zp_out": zp, "qmin": -128, "qmax": 127,
                              "axis": 1}, "expected": arr(y)})


def gen_conv():
    conv_case("conv_basic_stride_dilation", "odd sizes, stride 2x1, dilation 1x2, asymmetric pads",
              (2, 3, 7, 9), (5, 3, 3, 3), [2, 1], [1, 0, 2, 1], [1, 2], 1, 5, -7, 0.02, 0.004, 0.05)
    conv_case("conv_zp_m128_to_127", "zp_in -128, zp_out 127, per-channel scales, pads with zp",
              (1, 4, 6, 5), (3, 4, 3, 3), [1, 1], [1, 1, 1, 1], [1, 1], 1, -128, 127, 0.1,
              [0.001, 0.003, 0.0007], 0.2)
    conv_case("conv_depthwise", "depthwise 3x3 stride 2, group = C = 6, odd input",
              (1, 6, 9, 7), (6, 1, 3, 3), [2, 2], [1, 1, 1, 1], [1, 1], 6, 3, 0, 0.05, 0.01, 0.02)
    conv_case("conv_grouped", "group 2, 2x3 kernel, dilation 2, stride 1x2",
              (2, 4, 8, 8), (6, 2, 2, 3), [1, 2], [0, 2, 1, 0], [2, 2], 2, -20, 10, 0.03, 0.02, 0.01)
    conv_case("conv_k4608", "K = 512*3*3 = 4608 >= 4096, extreme inputs (acc near K*255*127)",
              (1, 512, 3, 3), (2, 512, 3, 3), [1, 1], [0, 0, 0, 0], [1, 1], 1, 127, 0, 2.0**-8, 2.0**-9,
              2.0**4, x_lo=-128, x_hi=-120, w_lim=127, w_lo=118, bias_lim=0)
    conv_case("conv_multiplier_ge_1", "multipliers >= 1 (s_in*s_w > s_out), small inputs",
              (1, 2, 5, 5), (3, 2, 1, 1), [1, 1], [0, 0, 0, 0], [1, 1], 1, 0, -1, 2.0**4, [0.5, 0.07, 0.013], 0.9,
              x_lo=-3, x_hi=3, w_lim=3, bias_lim=2)
    conv_case("conv_scale_2m20", "scales 2^-20 (input) and 2^4 (output): n > 62 gives zp_out",
              (1, 2, 4, 4), (2, 2, 3, 3), [1, 1], [1, 1, 1, 1], [1, 1], 1, 0, 9, 2.0**-20, [2.0**-20, 2.0**-3],
              2.0**4)
    conv_case("conv_relu6_clamp", "fused ReLU6 as clamp [zp_out, zp_out + rint(6/s_out)]",
              (1, 3, 5, 6), (4, 3, 3, 3), [1, 1], [1, 1, 1, 1], [1, 1], 1, 0, -100, 0.05, 0.01, 0.04,
              qmin=-100, qmax=50)
    conv_case("conv_ties", "real multiplier exactly 1/2: every odd accumulator is a tie (half up)",
              (1, 2, 6, 7), (4, 2, 3, 3), [1, 1], [1, 1, 1, 1], [1, 1], 1, -1, 2, 0.5, 0.25, 0.25,
              x_lo=-6, x_hi=4, w_lim=3, bias_lim=3)
    conv_case("conv1d", "1-D convolution, stride 3, dilation 2, odd length",
              (2, 3, 31), (4, 3, 5), [3], [2, 1], [2], 1, -5, 4, 0.02, 0.008, 0.03)


def gen_conv_transpose():
    for name, desc, xs, ws, st, pads, dil, g, opad in [
        ("conv_transpose_s2", "stride 2, pads 1, output_padding 1", (1, 3, 4, 5), (3, 4, 3, 3), [2, 2],
         [1, 1, 1, 1], [1, 1], 1, [1, 1]),
        ("conv_transpose_grouped", "group 2, stride 3x2, dilation 2x1, asymmetric pads", (2, 4, 3, 4),
         (4, 2, 2, 3), [3, 2], [0, 1, 2, 0], [2, 1], 2, [0, 1])]:
        x, w = rand_q(xs), rand_q(ws, -127, 127)
        O = ws[1] * g
        b = rng.integers(-3000, 3001, O).astype(np.int32)
        s_in, s_out = f32(0.03), f32(0.2)
        s_w = np.asarray(2.0 ** rng.uniform(-9, -5, O), np.float32)
        mn = [mult((s_in * float(s)) / s_out) for s in s_w]
        M, n = np.array([a for a, _ in mn]), np.array([c for _, c in mn])
        zp_in, zp_out = 11, -9
        y = conv_transpose_oracle(x, zp_in, w, b, M, n, zp_out, st, pads, dil, g, opad)
        write(name, {"kernel": "conv_transpose_int8", "description": desc,
                     "derive": {"kind": "conv", "s_in": hexs(s_in), "s_w": hexs(s_w), "s_out": hexs(s_out)},
                     "args": {"x_q": arr(x), "zp_in": zp_in, "w_q": arr(w), "bias_q": arr(b), "M": arr(M),
                              "n": arr(n), "zp_out": zp_out, "strides": st, "pads": pads, "dilations": dil,
                              "group": g, "output_padding": opad}, "expected": arr(y)})


def gen_gemm():
    for trans_b in (0, 1):
        x = rand_q((5, 37))
        w = rand_q((37, 7) if not trans_b else (7, 37), -127, 127)
        b = rng.integers(-10000, 10001, 7).astype(np.int32)
        s_in, s_out = f32(0.07), f32(0.5)
        s_w = np.asarray(2.0 ** rng.uniform(-10, -4, 7), np.float32)
        mn = [mult((s_in * float(s)) / s_out) for s in s_w]
        M, n = np.array([a for a, _ in mn]), np.array([c for _, c in mn])
        y = matmul_oracle(x, -50, w.T if trans_b else w, b, M, n, 20)
        write(f"gemm_transb{trans_b}", {
            "kernel": "gemm_int8", "description": f"Gemm transB={trans_b}, per-channel along axis {0 if trans_b else 1}",
            "derive": {"kind": "conv", "s_in": hexs(s_in), "s_w": hexs(s_w), "s_out": hexs(s_out)},
            "args": {"x_q": arr(x), "zp_in": -50, "w_q": arr(w), "bias_q": arr(b), "M": arr(M), "n": arr(n),
                     "zp_out": 20, "trans_b": trans_b}, "expected": arr(y)})
    x = rand_q((2, 3, 4100))
    w = rand_q((4100, 3), -127, 127)
    s_in, s_out = f32(2.0**-6), f32(2.0**2)
    s_w = np.asarray([2.0**-7, 2.0**-10, 2.0**-13], np.float32)
    mn = [mult((s_in * float(s)) / s_out) for s in s_w]
    M, n = np.array([a for a, _ in mn]), np.array([c for _, c in mn])
    y = matmul_oracle(x.reshape(6, 4100), 1, w, None, M, n, -2).reshape(2, 3, 3)
    write("matmul_k4100", {
        "kernel": "matmul_int8", "description": "MatMul, 3-D input, K = 4100, constant right operand, no bias",
        "derive": {"kind": "conv", "s_in": hexs(s_in), "s_w": hexs(s_w), "s_out": hexs(s_out)},
        "args": {"x_q": arr(x), "zp_in": 1, "w_q": arr(w), "bias_q": None, "M": arr(M), "n": arr(n),
                 "zp_out": -2}, "expected": arr(y)})


def gen_elementwise():
    for kernel, sign in (("add_int8", 1), ("sub_int8", -1)):
        for tag, (sa, sb, so, za, zb, zo) in {
                "diff_scales": (0.05, 0.003, 0.06, -128, 127, 5),
                "ge1": (2.0**4, 2.0**-20, 2.0**2, 3, -3, -128),
                "equal": (0.1, 0.1, 0.1, 0, 0, 127),
                "ties": (0.5, 0.5, 1.0, -60, 60, 0)}.items():
            a, b = rand_q((2, 3, 5)), rand_q((3, 1))
            ra, rb = (f32(sa) / f32(so)), (f32(sb) / f32(so))
            big, small = max(ra, rb), min(ra, rb)
            mb, n = mult(big)
            ms = 0 if mb == 0 else min(round(Fraction(small) * 2**n), 2**31 - 1)
            Ma, Mb = (mb, ms) if ra >= rb else (ms, mb)
            A, B = np.broadcast_arrays(a, b)
            y = np.array([max(-128, min(127, zo + math.floor(Fraction((int(p) - za) * Ma + sign * (int(q) - zb) * Mb,
                                                                       2**n) + HALF)))
                          for p, q in zip(A.ravel(), B.ravel())], np.int8).reshape(A.shape)
            write(f"{kernel[:3]}_{tag}", {
                "kernel": kernel, "description": f"{kernel} broadcasting (2,3,5)x(3,1), {tag}",
                "derive": {"kind": "add", "s_a": hexs(f32(sa)), "s_b": hexs(f32(sb)), "s_out": hexs(f32(so))},
                "args": {"a_q": arr(a), "za": za, "b_q": arr(b), "zb": zb, "Ma": Ma, "Mb": Mb, "n": n, "zp_out": zo},
                "expected": arr(y)})
    for tag, (sa, sb, so, za, zb, zo) in {"basic": (0.05, 0.02, 0.01, -128, 127, 0),
                                          "ge1": (0.5, 2.0**4, 0.25, 1, -1, -128),
                                          "ties": (0.5, 0.25, 0.25, 0, 0, 0)}.items():
        a, b = rand_q((4, 1, 3)), rand_q((5, 1))
        M, n = mult((f32(sa) * f32(sb)) / f32(so))
        A, B = np.broadcast_arrays(a, b)
        y = np.array([rq((int(p) - za) * (int(q) - zb), M, n, zo) for p, q in zip(A.ravel(), B.ravel())],
                     np.int8).reshape(A.shape)
        write(f"mul_{tag}", {"kernel": "mul_int8", "description": f"Mul broadcasting (4,1,3)x(5,1), {tag}",
                             "derive": {"kind": "mul", "s_a": hexs(f32(sa)), "s_b": hexs(f32(sb)),
                                        "s_out": hexs(f32(so))},
                             "args": {"a_q": arr(a), "za": za, "b_q": arr(b), "zb": zb, "M": M, "n": n, "zp_out": zo},
                             "expected": arr(y)})


def gen_pool():
    for name, xs, k, st, pads, cip, ceil in [
            ("avgpool_cip0", (2, 3, 7, 6), [3, 3], [2, 2], [1, 1, 1, 1], 0, 0),
            ("avgpool_cip1", (2, 3, 7, 6), [3, 3], [2, 2], [1, 1, 1, 1], 1, 0),
            ("avgpool_cip1_ceil", (1, 2, 5, 5), [3, 2], [2, 2], [1, 0, 0, 1], 1, 1),
            ("avgpool_cip0_ceil_1d", (1, 3, 10), [4], [3], [2, 0], 0, 1),
            ("avgpool_ties", (1, 3, 6, 7), [2, 2], [1, 1], [0, 0, 0, 0], 1, 0)]:
        x = rand_q(xs)
        zp_in, zp_out, s_in, s_out = -128, 127, f32(0.1), f32(0.02)
        if name == "avgpool_ties":           # s_in == s_out, count 4: acc/4, ties at acc = 2 mod 4
            x = rand_q(xs, -60, 60)
            zp_in, zp_out, s_in, s_out = 0, 0, f32(0.1), f32(0.1)
        sp = len(k)
        outs = [out_len(xs[2 + i], k[i], st[i], pads[i], pads[i + sp], 1, ceil) for i in range(sp)]
        y = np.zeros(list(xs[:2]) + outs, np.int8)
        mults = {}
        for idx in itertools.product(range(xs[0]), range(xs[1]), *[range(o) for o in outs]):
            p = idx[2:]
            starts = [p[i] * st[i] - pads[i] for i in range(sp)]
            if cip:
                cnt = math.prod(min(starts[i] + k[i], xs[2 + i] + pads[i + sp]) - starts[i] for i in range(sp))
            else:
                cnt = math.prod(min(starts[i] + k[i], xs[2 + i]) - max(starts[i], 0) for i in range(sp))
            acc = 0
            for kk in itertools.product(*[range(v) for v in k]):
                pos = tuple(starts[i] + kk[i] for i in range(sp))
                if all(0 <= pos[i] < xs[2 + i] for i in range(sp)):
                    acc += int(x[idx[:2] + pos]) - zp_in
            mults[cnt] = mult(s_in / (s_out * cnt))
            y[idx] = rq(acc, *mults[cnt], zp_out)
        write(name, {"kernel": "avgpool_int8", "description": f"{name}: k={k} s={st} pads={pads}",
                     "derive": {"kind": "avgpool", "s_in": hexs(s_in), "s_out": hexs(s_out)},
                     "args": {"x_q": arr(x), "zp_in": zp_in, "kernel_shape": k, "strides": st, "pads": pads,
                              "count_include_pad": cip, "mults": [[c, m, s] for c, (m, s) in sorted(mults.items())],
                              "zp_out": zp_out, "ceil_mode": ceil}, "expected": arr(y)})
    x = rand_q((2, 5, 3, 7))
    M, n = mult(f32(0.05) / (f32(0.01) * 21))
    y = np.array([[rq(sum(int(v) + 3 for v in x[i, c].ravel()), M, n, -1) for c in range(5)] for i in range(2)],
                 np.int8).reshape(2, 5, 1, 1)
    write("global_avgpool", {"kernel": "global_avgpool_int8", "description": "GlobalAveragePool 3x7 (count 21)",
                             "derive": {"kind": "avgpool", "s_in": hexs(f32(0.05)), "s_out": hexs(f32(0.01)),
                                        "count": 21},
                             "args": {"x_q": arr(x), "zp_in": -3, "M": M, "n": n, "zp_out": -1}, "expected": arr(y)})
    for name, xs, k, st, pads, dil, ceil in [
            ("maxpool_pad", (1, 2, 7, 6), [3, 3], [2, 2], [1, 1, 1, 1], [1, 1], 0),
            ("maxpool_dil_ceil", (2, 2, 9, 8), [2, 3], [2, 3], [0, 1, 1, 2], [2, 1], 1)]:
        x = rand_q(xs, -128, -100)             # all negative: zero-point padding would win
        sp = len(k)
        outs = [out_len(xs[2 + i], k[i], st[i], pads[i], pads[i + sp], dil[i], ceil) for i in range(sp)]
        y = np.zeros(list(xs[:2]) + outs, np.int8)
        for idx in itertools.product(range(xs[0]), range(xs[1]), *[range(o) for o in outs]):
            vals = [-128]
            for kk in itertools.product(*[range(v) for v in k]):
                pos = tuple(idx[2 + i] * st[i] - pads[i] + kk[i] * dil[i] for i in range(sp))
                if all(0 <= pos[i] < xs[2 + i] for i in range(sp)):
                    vals.append(int(x[idx[:2] + pos]))
            y[idx] = max(vals)
        write(name, {"kernel": "maxpool_int8", "description": f"{name}: negative inputs, padding must not win",
                     "args": {"x_q": arr(x), "kernel_shape": k, "strides": st, "pads": pads, "dilations": dil,
                              "ceil_mode": ceil}, "expected": arr(y)})


def gen_misc():
    # ReduceMean over axes (1, 3), keepdims 0
    x = rand_q((2, 4, 3, 5))
    M, n = mult(f32(0.2) / (f32(0.3) * 20))
    y = np.array([[rq(sum(int(x[a, c, b, d]) - 7 for c in range(4) for d in range(5)), M, n, 3) for b in range(3)]
                  for a in range(2)], np.int8)
    write("mean_axes13", {"kernel": "mean_int8", "description": "ReduceMean axes (1,3), keepdims 0, count 20",
                          "derive": {"kind": "avgpool", "s_in": hexs(f32(0.2)), "s_out": hexs(f32(0.3)), "count": 20},
                          "args": {"x_q": arr(x), "zp_in": 7, "axes": [1, 3], "keepdims": 0, "M": M, "n": n,
                                   "zp_out": 3}, "expected": arr(y)})
    # Concat: input 0 shares the output qparams, inputs 1, 2 are requantised
    xs = [rand_q((2, 3, 4)), rand_q((2, 1, 4)), rand_q((2, 2, 4))]
    qp = [(0.1, -5), (0.02, 100), (0.7, 0)]
    s_out, zp_out = 0.1, -5
    rescales, parts = [], []
    for x, (s, z) in zip(xs, qp):
        if (s, z) == (s_out, zp_out):
            rescales.append(None)
            parts.append(x)
        else:
            m, k = mult(f32(s) / f32(s_out))
            rescales.append([m, k])
            parts.append(np.vectorize(lambda v: rq(int(v) - z, m, k, zp_out))(x).astype(np.int8))
    write("concat_requant", {"kernel": "concat_int8", "description": "Concat axis 1; input 0 copied, 1 and 2 rescaled",
                             "derive": {"kind": "rescale", "s_in": [hexs(f32(s)) for s, _ in qp],
                                        "s_out": hexs(f32(s_out))},
                             "args": {"xs": [arr(x) for x in xs], "zps_in": [z for _, z in qp], "axis": 1,
                                      "rescales": rescales, "zp_out": zp_out},
                             "expected": arr(np.concatenate(parts, 1))})
    # table: sigmoid, zp_in 127 / zp_out -128
    s_in, zp_in, s_out, zp_out = f32(0.06), 127, f32(1 / 256), -128
    table = np.array([max(-128, min(127, zp_out + round((1 / (1 + math.exp(-s_in * (q - zp_in)))) / s_out)))
                      for q in range(-128, 128)], np.int8)
    x = rand_q((3, 17))
    write("table_sigmoid", {"kernel": "table_int8", "description": "sigmoid table (float64, rint half even)",
                            "derive": {"kind": "table", "f": "sigmoid", "s_in": hexs(s_in), "zp_in": zp_in,
                                       "s_out": hexs(s_out), "zp_out": zp_out},
                            "args": {"x_q": arr(x), "table": arr(table)}, "expected": arr(table[x.astype(int) + 128])})
    # softmax
    s_in = f32(0.05)
    e = np.array([round(2**20 * math.exp(-s_in * d)) for d in range(256)], np.int32)
    x = rand_q((3, 4, 11))
    y = np.zeros_like(x)
    for i, j in itertools.product(range(3), range(4)):
        row = [int(v) for v in x[i, j]]
        es = [int(e[max(row) - v]) for v in row]
        S = sum(es)
        y[i, j] = [min(127, -128 + math.floor(Fraction(256 * v, S) + HALF)) for v in es]
    write("softmax_axis_m1", {"kernel": "softmax_int8", "description": "softmax over 11, output (1/256, -128)",
                              "derive": {"kind": "softmax", "s_in": hexs(s_in)},
                              "args": {"x_q": arr(x), "table": arr(e), "axis": -1}, "expected": arr(y)})
    # requantize_int8 (pure rescale), multiplier >= 1
    x = rand_q((4, 9))
    m, k = mult(f32(0.3) / f32(0.07))
    y = np.vectorize(lambda v: rq(int(v) + 100, m, k, 50))(x).astype(np.int8)
    write("rescale_ge1", {"kernel": "requantize_int8", "description": "rescale s 0.3 -> 0.07 (multiplier > 1)",
                          "derive": {"kind": "rescale", "s_in": [hexs(f32(0.3))], "s_out": hexs(f32(0.07))},
                          "args": {"x_q": arr(x), "zp_in": -100, "M": m, "n": k, "zp_out": 50}, "expected": arr(y)})


if __name__ == "__main__":
    gen_multipliers()
    gen_requantize()
    gen_conv()
    gen_conv_transpose()
    gen_gemm()
    gen_elementwise()
    gen_pool()
    gen_misc()
    print("golden cases written to", HERE)
