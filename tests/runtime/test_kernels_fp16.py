"""fp16 arithmetic (docs/quant-arith.md §16): float Conv, Gemm and MatMul nodes with INT
`fp16_arith` = 1 and float16 weights (layout 5), computed in binary16.

* REF (runtimes/c/kernels/ref/fp16_arith.c) against an exact oracle written here with
  `fractions.Fraction`: each step's a·b + c formed exactly and rounded once to binary16 by
  `round16` (round to nearest even on the exact rational, subnormals, overflow to inf), on cases
  that hit subnormal results, overflow to inf, inf/NaN inputs, x overflowing binary16, signed
  zeros (bias -0, products -0, padded taps), exact ties, groups/depthwise, strides/dilations/pads,
  Gemm transB 0/1 with and without C, MatMul with batch axes: the bytes must be equal;
  1 and 3 threads give the same bytes.
* The host's default kernels take these nodes widened (AVX2 float32 kernels on float32 copies of
  the weights); forced REF gives the binary16 bytes.
* arm64 under qemu-aarch64: with `-cpu max` (FEAT_FP16) the NEON fp16 kernels
  (kernels/neon_fp16/fp16_arith.c) are chosen and give REF's bytes (the host REF's, and the
  arm64 build's own REF) on shapes that hit every tail, with 1 and 3 threads; with `-cpu
  cortex-a53` (no FP16) the NEON float32 kernels take the nodes (widened).
"""
from __future__ import annotations

import dataclasses
import math
from fractions import Fraction

import numpy as np
import pytest

from dsedge.artifact import CONST, LAYOUT_F16W

from .test_kernels_f32_avx2 import (AVX2, REF_KERNELS, lib, lib_ref_float, planned_scratch as planned, rnd,  # noqa: F401
                                    run)   # (lib, lib_ref_float: fixtures)
from .test_kernels_f32_nn import make_node
from .test_kernels_neon import QEMU64, build_runner
from .test_kernels_neon_f32 import conv64, run_cases

QNAN = np.uint32(0x7FC00000)
needs_qemu = pytest.mark.skipif(QEMU64 is None, reason="qemu-aarch64 not installed (apt-get install qemu-user)")


# -- the exact oracle ---------------------------------------------------------------------------

def round16(v: Fraction) -> float:
    """The exact rational v (not 0) rounded to binary16, nearest even, as a float (±inf on overflow)."""
    a = abs(v)
    e = a.numerator.bit_length() - a.denominator.bit_length()   # 2^e <= a < 2^(e+1) after the fix below
    if Fraction(2) ** e > a:
        e -= 1
    ue = max(e, -14) - 10                                         # the binary16 ulp's exponent at a
    q = a / Fraction(2) ** ue
    n, r = divmod(q.numerator, q.denominator)
    r = Fraction(r, q.denominator)
    if r > Fraction(1, 2) or (r == Fraction(1, 2) and n % 2):
        n += 1
    m = math.ldexp(n, ue)
    if m > 65504.0:
        m = math.inf
    return -m if v < 0 else m


def h(x: float) -> float:
    """A float (float32 value) rounded to binary16; zeros keep their sign, inf/NaN stay."""
    if x == 0 or not math.isfinite(x):
        return x
    return round16(Fraction(x))


def fma16(a: float, b: float, c: float) -> float:
    """a·b + c (binary16 values) exact, rounded once; IEEE 754 zero signs and inf/NaN."""
    if not (math.isfinite(a) and math.isfinite(b) and math.isfinite(c)):
        return float(a) * float(b) + float(c)   # inf·0 = NaN, inf - inf = NaN, else the infinity: as IEEE fma
    s = Fraction(a) * Fraction(b) + Fraction(c)
    if s != 0:
        return round16(s)
    prod_neg = math.copysign(1.0, a) * math.copysign(1.0, b) < 0
    neg = (a == 0 or b == 0) and prod_neg and c == 0 and math.copysign(1.0, c) < 0
    return -0.0 if neg else 0.0


def finish(acc: np.ndarray, act) -> np.ndarray:
    """float32(acc), the clamp, NaN as 0x7FC00000."""
    y = acc.astype(np.float32)
    if act is not None:
        y = np.where(y < np.float32(act[0]), np.float32(act[0]), y)
        y = np.where(y > np.float32(act[1]), np.float32(act[1]), y)
    y = np.ascontiguousarray(y, np.float32)
    y.view(np.uint32)[np.isnan(y)] = QNAN
    return y


def conv16(x, w, b, strides, pads, dil, group, act=None):
    """§16's Conv: per output, acc = h(b), then fma16 over (c, kernel offsets), padded taps +0."""
    xh = np.vectorize(h, otypes=[np.float64])(x.astype(np.float64))
    nd = x.ndim - 2
    N, C, M, ks = x.shape[0], x.shape[1], w.shape[0], w.shape[2:]
    cg, mg = C // group, M // group
    out = [(x.shape[2 + i] + pads[i] + pads[nd + i] - (ks[i] - 1) * dil[i] - 1) // strides[i] + 1 for i in range(nd)]
    y = np.zeros((N, M, *out))
    for n in range(N):
        for m in range(M):
            g = m // mg
            for o in np.ndindex(*out):
                acc = float(b[m]) if b is not None else 0.0
                for c in range(cg):
                    for tap in np.ndindex(*ks):
                        pos = [o[i] * strides[i] - pads[i] + tap[i] * dil[i] for i in range(nd)]
                        inside = all(0 <= pos[i] < x.shape[2 + i] for i in range(nd))
                        xv = xh[(n, g * cg + c, *pos)] if inside else 0.0
                        acc = fma16(xv, float(w[(m, c, *tap)]), acc)
                y[(n, m, *o)] = acc
    return finish(y, act)


def gemm16(a, B, bias, act=None):
    """§16's Gemm/MatMul rows: a (R, K) float32, B (K, N) float16, bias [N] float16 or None."""
    ah = np.vectorize(h, otypes=[np.float64])(a.astype(np.float64))
    R, K = ah.shape
    N = B.shape[1]
    y = np.zeros((R, N))
    for i in range(R):
        for j in range(N):
            acc = float(bias[j]) if bias is not None else 0.0
            for k in range(K):
                acc = fma16(ah[i, k], float(B[k, j]), acc)
            y[i, j] = acc
    return finish(y, act)


def test_oracle_rounding():
    """The oracle's rounding on known binary16 facts (so that a wrong oracle cannot pass)."""
    assert h(65519.0) == 65504.0 and h(65520.0) == math.inf and h(-65520.0) == -math.inf
    assert h(1 + 2.0 ** -11) == 1.0 and h(1 + 3 * 2.0 ** -11) == 1 + 2.0 ** -9     # ties to even
    assert h(2.0 ** -25) == 0.0 and h(3 * 2.0 ** -26) == 2.0 ** -24 and h(2.0 ** -24 * 1.5) == 2.0 ** -23
    assert h(2.0 ** -14 - 2.0 ** -26) == 2.0 ** -14                                  # up into the normals
    for v in np.random.default_rng(0).standard_normal(2000).astype(np.float32) * np.float32(300):
        assert h(float(v)) == float(np.float32(v).astype(np.float16))               # numpy: exact from float32
    assert fma16(2.0 ** -11, 1.0, 1.0) == 1.0 and fma16(2.0 ** -11, 1.0, 1 + 2.0 ** -10) == 1 + 2.0 ** -9
    assert math.copysign(1, fma16(-0.0, 1.0, -0.0)) < 0 and math.copysign(1, fma16(0.0, 1.0, -0.0)) > 0
    assert math.copysign(1, fma16(2.0, 3.0, -6.0)) > 0 and fma16(256.0, 256.0, 0.0) == math.inf
    assert math.isnan(fma16(math.inf, 0.0, 1.0)) and math.isnan(fma16(math.inf, 1.0, -math.inf))


# -- artifacts ------------------------------------------------------------------------------------

def fp16_node(op, inputs, out_shape, attrs, scratch=0, mark=1):
    """A one-node artifact; float16 constants in layout 5 (fp16 weights), INT fp16_arith = mark."""
    attrs = dict(attrs, **({"fp16_arith": mark} if mark is not None else {}))
    art, feeds = make_node(op, inputs, [("float32", out_shape)], attrs, scratch=scratch)
    tensors = tuple(dataclasses.replace(t, layout=LAYOUT_F16W) if t.storage == CONST and t.dtype == "float16" else t
                    for t in art.tensors)
    return dataclasses.replace(art, tensors=tensors), feeds


def conv_art(x, w, b, s, p, d, g, act=None, mark=1):
    attrs = dict(kernel_shape=list(w.shape[2:]), strides=list(s), pads=list(p), dilations=list(d), group=g)
    out = conv64(x, w.astype(np.float32), None, s, p, d, g).shape
    sc = planned("Conv", [x.shape, w.shape] + ([b.shape] if b is not None else []), out, attrs)
    if act:
        attrs.update(act_min=float(act[0]), act_max=float(act[1]))
    return fp16_node("Conv", [(x, False), (w, True)] + ([(b, True)] if b is not None else []), out, attrs, sc, mark)


def gemm_art(a, bm, c, tb, act=None, mark=1):
    N = bm.shape[0] if tb else bm.shape[1]
    attrs = dict(transA=0, transB=tb, alpha=1.0, beta=1.0)
    sc = planned("Gemm", [a.shape, bm.shape] + ([c.shape] if c is not None else []), (a.shape[0], N), attrs)
    if act:
        attrs.update(act_min=float(act[0]), act_max=float(act[1]))
    return fp16_node("Gemm", [(a, False), (bm, True)] + ([(c, True)] if c is not None else []), (a.shape[0], N), attrs,
                     sc, mark)


def matmul_art(a, bm, act=None):
    out = (*a.shape[:-1], bm.shape[1])
    sc = planned("MatMul", [a.shape, bm.shape], out, {})
    return fp16_node("MatMul", [(a, False), (bm, True)], out, dict(act_min=act[0], act_max=act[1]) if act else {}, sc)


def h16(rng, *shape, scale=1.0):
    return (rng.standard_normal(shape) * scale).astype(np.float16)


# -- the REF cases (small: the oracle is exact rational arithmetic) --------------------------------

def special_x(rng, shape):
    """float32 x with the special values: ±0, subnormal-range, overflowing, inf, NaN, exact ties."""
    x = rnd(rng, *shape)
    flat = x.reshape(-1)
    vals = [0.0, -0.0, -0.0, 2.0 ** -20, -3 * 2.0 ** -25, 65519.0, 65520.0, -7e4, np.inf, -np.inf, np.nan,
            1 + 2.0 ** -11, 1 + 3 * 2.0 ** -11, 2.0 ** -14 - 2.0 ** -26, 300.0]
    idx = rng.choice(flat.size, size=min(len(vals), flat.size), replace=False)
    flat[idx] = np.array(vals[:len(idx)], np.float32)
    return x


def ref_cases():
    rng = np.random.default_rng(16)
    cases = []   # (name, artifact, feeds, expected float32 bytes)

    def conv(name, x, w, b, s, p, d, g, act=None):
        art, feeds = conv_art(x, w, b, s, p, d, g, act)
        cases.append((name, art, feeds, conv16(x, w, b, s, p, d, g, act)))

    x = rnd(rng, 1, 3, 6, 7)
    conv("3x3 pads bias", x, h16(rng, 4, 3, 3, 3, scale=0.5), h16(rng, 4), (1, 1), (1, 1, 1, 1), (1, 1), 1, (-1.0, 2.0))
    conv("specials", special_x(rng, (1, 2, 5, 6)), h16(rng, 3, 2, 3, 3), h16(rng, 3), (1, 1), (1, 0, 2, 1), (1, 1), 1)
    conv("strided dilated", rnd(rng, 2, 2, 9, 8), h16(rng, 3, 2, 3, 2), None, (2, 3), (2, 1, 0, 2), (2, 1), 1)
    conv("groups", rnd(rng, 1, 6, 5, 5), h16(rng, 4, 3, 3, 3), h16(rng, 4), (1, 1), (1, 1, 1, 1), (1, 1), 2)
    conv("depthwise", rnd(rng, 1, 5, 6, 6), h16(rng, 10, 1, 3, 3), h16(rng, 10), (2, 2), (1, 1, 1, 1), (1, 1), 5)
    conv("1-D", rnd(rng, 2, 3, 11), h16(rng, 2, 3, 4), h16(rng, 2), (2,), (3, 1), (1,), 1, (0.0, np.inf))
    conv("3-D", rnd(rng, 1, 2, 3, 4, 4), h16(rng, 2, 2, 2, 2, 3), None, (1, 2, 1), (1, 0, 1, 0, 1, 1), (1, 1, 1), 1)
    # signed zeros: x all -0; weights +1 / +0 give -0 products, -1 gives +0: with bias -0 a sum stays -0
    # until a +0 term, so the padded taps (x = +0) turn the border outputs to +0 and the interior stays -0
    xz = np.full((1, 2, 4, 4), -0.0, np.float32)
    wz = np.stack([np.ones((2, 3, 3)), np.zeros((2, 3, 3)), np.resize([1.0, -1.0], (2, 3, 3))]).astype(np.float16)
    for name, bz, pz in (("signed zeros", [-0.0, -0.0, -0.0], (1, 1, 1, 1)), ("signed zeros bias +0", [0.0, -0.0, -0.0], (1, 0, 0, 1)),
                         ("signed zeros unpadded", [-0.0, -0.0, -0.0], (0, 0, 0, 0))):
        conv(name, xz, wz, np.array(bz, np.float16), (1, 1), pz, (1, 1), 1)
    want = cases[-3][3]
    assert np.signbit(want[0, 0, 1:3, 1:3]).all() and not np.signbit(want[0, 0, 0]).any() and not np.signbit(want[0, 2]).any()
    # subnormal results: products and sums below 2^-14
    conv("subnormals", (rnd(rng, 1, 2, 4, 4) * np.float32(2.0 ** -8)), h16(rng, 2, 2, 2, 2, scale=2.0 ** -6),
         np.array([2.0 ** -24, -(2.0 ** -20)], np.float16), (1, 1), (0, 0, 0, 0), (1, 1), 1)
    # overflow: a running sum above 65504 becomes inf; then inf - inf = NaN
    conv("overflow", np.full((1, 1, 2, 3), 250.0, np.float32), np.array([[[[300.0, -300.0]]], [[[300.0, 300.0]]]], np.float16),
         np.array([0.0, 65504.0], np.float16), (1, 1), (0, 0, 0, 0), (1, 1), 1)

    def gemm(name, a, bm, c, tb, act=None):
        art, feeds = gemm_art(a, bm, c, tb, act)
        cases.append((name, art, feeds, gemm16(a, bm.T if tb else bm, c, act)))

    gemm("gemm C", rnd(rng, 3, 9), h16(rng, 9, 5), h16(rng, 5), 0)
    gemm("gemm transB", special_x(rng, (4, 7)), h16(rng, 6, 7), None, 1, (-2.0, 2.0))
    gemm("gemm transB C", rnd(rng, 2, 5), h16(rng, 3, 5), np.array([-0.0, 65504.0, 2.0 ** -24], np.float16), 1)
    # exact ties: 1 + 2^-11 stays 1, (1 + 2^-10) + 2^-11 goes up; 2048 + 1 stays, 2050 + 1 goes up
    gemm("ties", np.array([[2.0 ** -11, 1.0]], np.float32), np.array([[1.0] * 4, [0.0] * 4], np.float16),
         np.array([1.0, 1 + 2.0 ** -10, 2048.0, 2050.0], np.float16), 0)
    gemm("ties 2", np.array([[1.0, 1.0]], np.float32), np.array([[1.0, 1.0], [0.0, 0.0]], np.float16),
         np.array([2048.0, 2050.0], np.float16), 0)

    def matmul(name, a, bm, act=None):
        art, feeds = matmul_art(a, bm, act)
        R = int(np.prod(a.shape[:-1]))
        want = gemm16(a.reshape(R, a.shape[-1]), bm, None, act).reshape(*a.shape[:-1], bm.shape[1])
        cases.append((name, art, feeds, want))

    matmul("matmul batch", rnd(rng, 2, 3, 4, 6), h16(rng, 6, 5), (-1.5, 1.5))
    matmul("matmul 1-D", special_x(rng, (9,)), h16(rng, 9, 4))
    return cases


REF_CASES = ref_cases()


@pytest.mark.parametrize("k", range(len(REF_CASES)), ids=[c[0] for c in REF_CASES])
def test_ref_exact(lib, k):
    """Forced REF runs the binary16 kernel and gives the oracle's bytes, with 1 and 3 threads."""
    name, art, feeds, want = REF_CASES[k]
    stem = {1: "conv", 6: "gemm", 7: "matmul"}[art.nodes[0].op]
    for threads in (1, 3):
        (y,), ks = run(lib, art, feeds, flags=REF_KERNELS, threads=threads)
        assert ks == [f"dse_f32_{stem}_fp16__ref"], ks
        bad = np.flatnonzero(y.view(np.uint32).reshape(-1) != want.view(np.uint32).reshape(-1))
        assert not bad.size, f"{name}, {threads} threads: {bad.size} elements differ, first {bad[:5]}: " \
                             f"{y.reshape(-1)[bad[:5]]} != {want.reshape(-1)[bad[:5]]}"


def test_ref_threads_split(lib):
    """A node large enough to be split over 3 threads gives 1 thread's bytes."""
    rng = np.random.default_rng(3)
    for art, feeds in (conv_art(rnd(rng, 1, 8, 20, 20), h16(rng, 16, 8, 3, 3, scale=0.3), h16(rng, 16), (1, 1),
                                (1, 1, 1, 1), (1, 1), 1),
                       gemm_art(rnd(rng, 64, 100), h16(rng, 100, 70, scale=0.3), h16(rng, 70), 0)):
        (a,), _ = run(lib, art, feeds, flags=REF_KERNELS)
        (b,), _ = run(lib, art, feeds, flags=REF_KERNELS, threads=3)
        assert a.tobytes() == b.tobytes()


def test_host_default_is_widened(lib):
    """On an AVX2 host the default kernels are the AVX2 float32 ones (widened: the float32 result of the
    float16 weights); forced REF gives the binary16 bytes, which differ. (Without AVX2 no optimised
    float32 kernel exists and REF's binary16 is the default.)"""
    if not AVX2:
        pytest.skip("n/a: no AVX2 float32 kernels on this CPU")
    rng = np.random.default_rng(5)
    x, w, b = rnd(rng, 1, 16, 9, 9), h16(rng, 8, 16, 3, 3, scale=0.2), h16(rng, 8)
    art, feeds = conv_art(x, w, b, (1, 1), (1, 1, 1, 1), (1, 1), 1)
    (y,), ks = run(lib, art, feeds)
    (r,), rks = run(lib, art, feeds, flags=REF_KERNELS)
    assert rks == ["dse_f32_conv_fp16__ref"] and ks[0] in ("dse_f32_conv__avx2", "dse_f32_conv_wino__avx2"), ks
    want = conv64(x, w.astype(np.float32), b.astype(np.float32), (1, 1), (1, 1, 1, 1), (1, 1), 1)
    np.testing.assert_allclose(y, want, rtol=1e-5, atol=1e-5)
    assert np.abs(r - want).max() > 1e-4 > np.abs(y - want).max()   # binary16 sums are visibly coarser
    for art, feeds, kern in ((*gemm_art(rnd(rng, 3, 40), h16(rng, 40, 9), h16(rng, 9), 0), "gemm"),
                             (*matmul_art(rnd(rng, 2, 5, 40), h16(rng, 40, 9)), "matmul")):
        (_,), ks = run(lib, art, feeds)
        (_,), rks = run(lib, art, feeds, flags=REF_KERNELS)
        assert rks == [f"dse_f32_{kern}_fp16__ref"] and ks == [f"dse_f32_{kern}__avx2"]


def test_ref_float_build_runs_binary16(lib_ref_float):
    """A -DDSE_REF_FLOAT build (no optimised float32 kernels) runs the REF binary16 kernels by default."""
    for name, art, feeds, want in REF_CASES[:1] + REF_CASES[-4:]:
        (y,), ks = run(lib_ref_float, art, feeds)
        assert ks[0].endswith("_fp16__ref") and y.tobytes() == want.tobytes(), (name, ks)


def test_ref_refuses_what_16_excludes(lib):
    """Nodes outside §16 keep float32 arithmetic (the float32 REF kernel): no fp16_arith, fp16_arith 0,
    float32 weights, Gemm with transA / alpha / C of shape [M, N]; a MatMul with an activation B."""
    rng = np.random.default_rng(7)
    x, w = rnd(rng, 1, 2, 4, 4), h16(rng, 3, 2, 3, 3)
    for mark, ww in ((None, w), (0, w), (1, w.astype(np.float32))):
        art, feeds = conv_art(x, ww, None, (1, 1), (1, 1, 1, 1), (1, 1), 1, mark=mark)
        assert run(lib, art, feeds, flags=REF_KERNELS)[1] == ["dse_f32_conv__ref"], (mark, ww.dtype)
    a, bm = rnd(rng, 3, 4), h16(rng, 4, 5)
    for attrs, c in ((dict(transA=1), None), (dict(alpha=2.0), None), (dict(beta=0.5), h16(rng, 5)),
                     ({}, h16(rng, 3, 5))):
        aa = a.T.copy() if attrs.get("transA") else a
        full = dict(dict(transA=0, transB=0, alpha=1.0, beta=1.0), **attrs)
        art, feeds = fp16_node("Gemm", [(aa, False), (bm, True)] + ([(c, True)] if c is not None else []), (3, 5), full)
        assert run(lib, art, feeds, flags=REF_KERNELS)[1] == ["dse_f32_gemm__ref"], attrs
    art, feeds = fp16_node("MatMul", [(a, False), (bm.astype(np.float32), False)], (3, 5), {})
    assert run(lib, art, feeds, flags=REF_KERNELS)[1] == ["dse_f32_matmul__ref"]


# -- arm64: the NEON fp16 kernels under qemu ---------------------------------------------------

NEON_CONV = [
    # x shape, w shape, strides, pads, dilations, group, bias, act
    ((1, 13, 7, 9), (11, 13, 1, 1), (1, 1), (0, 0, 0, 0), (1, 1), 1, True, (0.0, 6.0)),     # 1x1, 63 px
    ((2, 1, 3, 5), (1, 1, 1, 1), (1, 1), (0, 0, 0, 0), (1, 1), 1, True, None),              # K = 1, batch 2
    ((1, 5, 11, 13), (7, 5, 3, 3), (1, 1), (1, 1, 1, 1), (1, 1), 1, True, (-1.0, 1.0)),     # K = 45
    ((2, 3, 12, 17), (4, 3, 3, 3), (1, 1), (2, 0, 1, 3), (2, 2), 1, False, None),           # dilation, odd pads
    ((1, 3, 17, 19), (5, 3, 3, 3), (2, 2), (1, 0, 2, 1), (1, 1), 1, True, None),            # strided
    ((2, 4, 15, 16), (6, 2, 5, 3), (2, 3), (2, 1, 2, 0), (1, 2), 2, True, None),            # groups, 5x3
    ((1, 13, 9, 23), (13, 1, 3, 3), (1, 1), (1, 1, 1, 1), (1, 1), 13, True, (0.0, 6.0)),    # depthwise
    ((1, 4, 6, 5), (8, 1, 3, 3), (1, 1), (1, 1, 1, 1), (1, 1), 4, True, None),              # multiplier 2
    ((1, 64, 10, 30), (9, 64, 3, 3), (1, 1), (1, 1, 1, 1), (1, 1), 1, True, None),          # K = 576: several tiles
    ((2, 3, 29), (4, 3, 3), (2,), (1, 2), (1,), 1, True, None),                              # 1-D
    ((1, 2, 4, 5, 6), (3, 2, 2, 3, 2), (1, 2, 1), (0, 1, 1, 1, 0, 0), (1, 1, 2), 1, True, None),  # 3-D
]
NEON_GEMM = [(1, 1, 1, 0, True), (3, 5, 4, 0, True), (13, 37, 21, 0, False), (7, 33, 6, 1, True),
             (5, 8, 17, 1, False), (9, 16, 16, 1, True), (6, 300, 35, 0, True), (2, 17, 9, 1, False)]   # M, K, N, transB, C
NEON_MATMUL = [((3, 4), (4, 5)), ((2, 3, 7, 19), (19, 33)), ((4,), (4, 17)), ((2, 50, 30), (30, 1))]


def neon_cases(host_lib):
    """(art, feeds, REF output from the host library, None, stem): run_cases' tuple form; then the REF
    cases (special values, signed zeros, ties) with the exact oracle's output."""
    rng = np.random.default_rng(64)
    arts = []
    for xs, ws, s, p, d, g, has_b, act in NEON_CONV:
        arts.append((*conv_art(special_x(rng, xs) if xs[1] == 5 else rnd(rng, *xs), h16(rng, *ws, scale=0.5),
                               h16(rng, ws[0]) if has_b else None, s, p, d, g, act), "conv"))
    for M, K, N, tb, has_c in NEON_GEMM:
        arts.append((*gemm_art(rnd(rng, M, K), h16(rng, *((N, K) if tb else (K, N)), scale=0.5),
                               h16(rng, N) if has_c else None, tb, (-3.0, 3.0) if M == 13 else None), "gemm"))
    for sa, sb in NEON_MATMUL:
        arts.append((*matmul_art(rnd(rng, *sa), h16(rng, *sb, scale=0.5)), "matmul"))
    cases = []
    for art, feeds, stem in arts:
        (want,), ks = run(host_lib, art, feeds, flags=REF_KERNELS)
        assert ks == [f"dse_f32_{stem}_fp16__ref"]
        cases.append((art, feeds, want, None, stem))
    stems = {1: "conv", 6: "gemm", 7: "matmul"}   # and the special-value cases with the oracle's bytes
    return cases + [(art, feeds, want, None, stems[art.nodes[0].op]) for _, art, feeds, want in REF_CASES]


@pytest.fixture(scope="module")
def arm64(tmp_path_factory):
    if QEMU64 is None:
        pytest.skip("qemu-aarch64 not installed")
    return build_runner(tmp_path_factory.mktemp("fp16_build"), "aarch64")


@pytest.fixture(scope="module")
def written(tmp_path_factory, lib):
    return write_cases(tmp_path_factory.mktemp("fp16_cases"), neon_cases(lib))


def write_cases(d, cases):
    """The cases as files in d, for run_cases: (d, input lines, cases)."""
    lines = []
    for k, (art, feeds, *_rest) in enumerate(cases):
        (d / f"m{k}.dse").write_bytes(art.to_bytes())
        ins = []
        for i, f in enumerate(feeds):
            (d / f"m{k}.in{i}").write_bytes(np.ascontiguousarray(f).tobytes())
            ins.append(str(d / f"m{k}.in{i}"))
        lines.append(" ".join([str(d / f"m{k}.dse"), str(d / f"m{k}.out"), *ins]))
    return d, lines, cases


def _diff(outs, cases):
    return [f"case {k} ({c[4]}): {int((o.view(np.uint32) != c[2].view(np.uint32)).sum())} elements differ"
            for k, (o, c) in enumerate(zip(outs, cases)) if o.tobytes() != c[2].tobytes()]


@needs_qemu
@pytest.mark.parametrize("threads", ["1", "3"])
def test_neon_fp16_exact(arm64, written, threads):
    """-cpu max (FEAT_FP16): the NEON fp16 kernels run every case and give the host REF's bytes."""
    outs, kernels = run_cases(arm64, written, "-threads", threads)
    assert kernels == [f"dse_f32_{c[4]}_fp16__neon_fp16" for c in written[2]], kernels
    bad = _diff(outs, written[2])
    assert not bad, "\n".join(bad)


@needs_qemu
def test_neon_fp16_arm64_ref(arm64, written):
    """The arm64 build's forced REF gives the same bytes as the host's REF (portable C)."""
    outs, kernels = run_cases(arm64, written, "-ref")
    assert all(k.endswith("_fp16__ref") for k in kernels), kernels
    bad = _diff(outs, written[2])
    assert not bad, "\n".join(bad)


@needs_qemu
def test_neon_without_fp16_is_widened(arm64, written):
    """-cpu cortex-a53 (no FEAT_FP16): the NEON float32 kernels take the nodes (widened)."""
    _, kernels = run_cases(arm64, written, cpu="cortex-a53")
    assert kernels == [f"dse_f32_{c[4]}__neon" for c in written[2]], kernels


@needs_qemu
def test_neon_fp16_conv_without_scratch_stays_binary16(arm64, tmp_path, lib):
    """A Conv whose artifact planned no scratch (the NEON fp16 kernel needs its im2col block) runs REF's
    binary16 on a core with FP16: the NEON float32 Conv, which takes a 1x1 conv without scratch (x read in
    place), refuses fp16-arithmetic nodes there. Without FP16 the 1x1 conv runs NEON float32 (widened); the
    3x3 one needs scratch on that path too, so REF, the next row, runs it in binary16."""
    rng = np.random.default_rng(11)
    x = rnd(rng, 1, 3, 7, 6)
    arts = [conv_art(x, h16(rng, 4, 3, 1, 1), h16(rng, 4), (1, 1), (0, 0, 0, 0), (1, 1), 1),
            conv_art(x, h16(rng, 4, 3, 3, 3), h16(rng, 4), (1, 1), (1, 1, 1, 1), (1, 1), 1)]
    cases = []
    for art, feeds in arts:
        art = dataclasses.replace(art, scratch_size=0, arena_size=art.scratch_offset)
        (want,), _ = run(lib, art, feeds, flags=REF_KERNELS)
        cases.append((art, feeds, want, None, "conv"))
    cases = write_cases(tmp_path, cases)
    outs, kernels = run_cases(arm64, cases)
    assert kernels == ["dse_f32_conv_fp16__ref"] * 2 and not _diff(outs, cases[2])
    assert run_cases(arm64, cases, cpu="cortex-a53")[1] == ["dse_f32_conv__neon", "dse_f32_conv_fp16__ref"]


def test_export_end_to_end(lib):
    """An IR Conv with attribute fp16_arith = 1 and fp16 weights (round_fp16) exported by dsedge's
    exporter: float16 constants in layout 5, INT fp16_arith = 1 on the node; the C REF kernel takes it
    and gives the oracle's bytes."""
    from dsedge.export.dse import export
    from dsedge.ir import Graph, Node, TensorInfo
    from dsedge.ops.half import FP16_ARITH
    from dsedge.quant.quantize import round_fp16
    rng = np.random.default_rng(21)
    g = Graph(inputs=["x"], outputs=["y"])
    g.info["x"] = TensorInfo(np.dtype(np.float32), (1, 3, 6, 7))
    g.consts["w"], g.consts["b"] = rnd(rng, 4, 3, 3, 3), rnd(rng, 4)
    g.nodes = [Node("Conv", ["x", "w", "b"], ["y"], {"kernel_shape": [3, 3], "pads": [1, 1, 1, 1], FP16_ARITH: 1},
                    name="c")]
    round_fp16(g, ["w", "b"])
    art = export(g).artifact
    assert sorted((t.dtype, t.layout) for t in art.tensors if t.storage == CONST) == [("float16", LAYOUT_F16W)] * 2
    assert dict(art.nodes[0].attrs)["fp16_arith"] == 1
    x = special_x(rng, (1, 3, 6, 7))
    (y,), ks = run(lib, art, [x], flags=REF_KERNELS)
    want = conv16(x, g.consts["w"].astype(np.float16), g.consts["b"].astype(np.float16), (1, 1), (1, 1, 1, 1), (1, 1), 1)
    assert ks == ["dse_f32_conv_fp16__ref"] and y.tobytes() == want.reshape(y.shape).tobytes()
