"""The AVX2 float32 AveragePool (runtimes/c/kernels/avx2/pool.c, dse_f32_avgpool__avx2) against the
REF kernel of the same library (DSE_LOAD_REF_KERNELS): REF's bytes exactly, for 1, 2 and 3 threads,
and onnxruntime's values within a float tolerance (1e-6 of the output's magnitude: the REF order of
the sum against onnxruntime's).

Shapes hit every tail: widths not a multiple of 8, odd sizes, pads on each side (asymmetric),
W strides 1, 2 (the shuffled phases; 2 taps: the hadd path, rows read in place or copied), 3 and 5 (the scalar phases), H strides, dilations, ceil_mode,
kernels wider or taller than the input plus padding allows, windows partly or wholly in the
padding, count_include_pad 0 and 1, 1-D and 2-D, row sums reused by later output rows (kept in
8 slots, more kernel rows than slots, 1 slot for wide rows), rapidocr/rec's 3x2/3x2 node. Inputs hold -0.0
(a sum of -0.0 taps stays -0.0 only in REF's order: +0.0 padding taps make it +0.0). 3-D pools
are left to REF, and a REF_FLOAT build (-DDSE_REF_FLOAT) lists only REF.
"""
from __future__ import annotations

import numpy as np
import pytest

from .test_kernels_f32_avx2 import AVX2, REF_KERNELS, check_variant, lib, lib_ref_float, run  # noqa: F401
from .test_kernels_f32_nn import make_node, ort, ref

CASES = [
    # x shape, kernel, strides, pads (begin..., end...), dilations, ceil_mode, compare with onnxruntime
    ((1, 384, 3, 80), (3, 2), (3, 2), (0, 0, 0, 0), (1, 1), 0, True),    # rapidocr/rec's node
    ((1, 3, 10, 10), (3, 3), (1, 1), (1, 1, 1, 1), (1, 1), 0, True),
    ((2, 3, 13, 23), (3, 3), (2, 2), (1, 1, 1, 1), (1, 1), 0, True),
    ((1, 2, 9, 37), (2, 5), (1, 1), (0, 2, 1, 0), (1, 1), 0, True),     # pads on one side each
    ((1, 3, 9, 10), (3, 2), (1, 2), (1, 0, 1, 1), (2, 1), 1, True),     # ceil_mode, H dilation
    ((1, 2, 11, 37), (2, 3), (2, 3), (0, 1, 1, 0), (1, 2), 1, True),    # W stride 3, W dilation
    ((1, 2, 8, 61), (3, 4), (2, 5), (1, 2, 1, 3), (1, 1), 0, True),     # W stride 5
    ((2, 3, 15), (4,), (2,), (2, 1), (1,), 1, True),                    # 1-D
    ((1, 5, 33), (3,), (1,), (1, 1), (2,), 0, True),                    # 1-D, dilation
    ((1, 1, 4, 4), (3, 3), (2, 2), (2, 2, 2, 2), (1, 1), 1, False),     # windows entirely in the padding
    ((1, 2, 2, 3), (4, 5), (1, 1), (1, 1, 1, 1), (1, 1), 0, True),      # kernel larger than the input
    ((1, 2, 1, 1), (3, 3), (1, 1), (1, 1, 1, 1), (1, 1), 0, True),      # one pixel
    ((1, 3, 7, 71), (3, 3), (1, 2), (0, 0, 0, 0), (1, 1), 0, True),
    ((3, 2, 12, 40), (3, 3), (2, 2), (1, 1, 1, 1), (2, 3), 0, True),    # W stride 2, odd W dilation
    ((1, 2, 20, 19), (9, 7), (1, 1), (4, 3, 4, 3), (1, 1), 0, True),    # many taps
    ((1, 4, 6, 130), (2, 2), (2, 2), (0, 0, 0, 0), (1, 1), 0, True),    # > 8 column blocks
    ((1, 2, 5, 9), (1, 1), (1, 1), (0, 0, 0, 0), (1, 1), 0, True),      # 1x1: a copy / 1
    ((1, 2, 7, 21), (2, 2), (2, 2), (1, 1, 0, 1), (1, 1), 1, True),     # the pair (hadd) path, left pad
    ((2, 3, 45), (2,), (2,), (0, 1), (1,), 1, True),                    # the pair path, 1-D, ceil_mode
    ((1, 2, 7, 600), (3, 3), (1, 1), (1, 1, 1, 1), (1, 1), 0, True),    # wide rows: one row-sum slot
    ((1, 2, 9, 30), (4, 3), (2, 3), (2, 1, 1, 1), (1, 1), 0, True),     # rows shared by output rows, W stride 3
]


@pytest.mark.parametrize("include_pad", [0, 1])
@pytest.mark.parametrize("case", CASES, ids=[f"avgpool{i}" for i in range(len(CASES))])
def test_avgpool_ref_bytes_and_onnxruntime(lib, case, include_pad):
    xs, k, s, p, d, cm, with_ort = case
    rng = np.random.default_rng(len(xs) * 31 + k[0] * 7 + s[-1])
    x = (rng.standard_normal(xs) * 3).astype(np.float32)
    x.ravel()[::5] = -0.0
    x.ravel()[::13] = 0.0
    if xs[-1] > 4:
        x[..., :3] = -0.0   # a whole window of -0.0 at the left edge
    attrs = dict(kernel_shape=list(k), strides=list(s), pads=list(p), dilations=list(d), ceil_mode=cm,
                 count_include_pad=include_pad)
    (r,) = ref("AveragePool", x, **attrs)
    art, feeds = make_node("AveragePool", [(x, False)], [("float32", r.shape)], attrs)
    o, rr = check_variant(lib, art, feeds, "dse_f32_avgpool__avx2", exact=True)
    assert o.tobytes() == r.tobytes()   # also the numpy reference's bytes (REF is bit-identical to it)
    if with_ort:
        (e,) = ort("AveragePool", [x], attrs)
        np.testing.assert_allclose(o, e, rtol=1e-6, atol=1e-6 * max(1.0, float(np.abs(e).max())))


def test_avgpool_nan_inf_like_ref(lib):
    """Infinities and NaN in the input: the same bytes as REF (inf - inf inside a window gives NaN)."""
    x = np.random.default_rng(3).standard_normal((1, 3, 9, 17)).astype(np.float32)
    x.ravel()[::17] = np.inf
    x.ravel()[::23] = -np.inf
    x.ravel()[::29] = np.nan
    for cip in (0, 1):
        attrs = dict(kernel_shape=[3, 2], strides=[2, 2], pads=[1, 0, 1, 1], dilations=[1, 1], ceil_mode=0,
                     count_include_pad=cip)
        (r,) = ref("AveragePool", x, **attrs)
        art, feeds = make_node("AveragePool", [(x, False)], [("float32", r.shape)], attrs)
        o, rr = check_variant(lib, art, feeds, "dse_f32_avgpool__avx2")
        assert np.array_equal(np.isnan(o), np.isnan(rr))
        m = ~np.isnan(rr)
        assert o[m].tobytes() == rr[m].tobytes()


def test_avgpool_3d_left_to_ref(lib):
    x = np.random.default_rng(2).standard_normal((1, 2, 4, 5, 6)).astype(np.float32)
    attrs = dict(kernel_shape=[2, 2, 2], strides=[1, 1, 1], pads=[0] * 6, count_include_pad=0)
    (r,) = ref("AveragePool", x, **attrs)
    art, feeds = make_node("AveragePool", [(x, False)], [("float32", r.shape)], attrs)
    o, ks = run(lib, art, feeds)
    assert ks == ["dse_f32_avgpool__ref"]
    assert o[0].tobytes() == r.tobytes()


def test_avgpool_ref_float_build_lists_only_ref(lib, lib_ref_float):
    x = np.random.default_rng(5).standard_normal((1, 4, 6, 20)).astype(np.float32)
    attrs = dict(kernel_shape=[3, 2], strides=[3, 2], pads=[0, 0, 0, 0], count_include_pad=0)
    (r,) = ref("AveragePool", x, **attrs)
    art, feeds = make_node("AveragePool", [(x, False)], [("float32", r.shape)], attrs)
    o, ks = run(lib_ref_float, art, feeds)
    assert ks == ["dse_f32_avgpool__ref"]
    rr, _ = run(lib, art, feeds, flags=REF_KERNELS)
    assert o[0].tobytes() == rr[0].tobytes() == r.tobytes()


# Windows that lie mostly in their padding (the kernel larger than the input, pads up to k - 1):
# each kernel (REF, AVX2) sums or compares only the taps inside the input and counts in O(1)
# (internal.h dse__tap_range); the bytes stay those of every tap in order (+0.0 padding taps).
BIG_PAD = [
    # x shape, kernel, pads
    ((1, 2, 2, 3), (41, 57), (40, 56, 40, 56)),
    ((1, 1, 3, 2), (9, 70), (5, 69, 8, 60)),        # asymmetric
    ((2, 3, 50), (300,), (299, 299)),               # 1-D
    ((1, 1, 5, 8), (3000, 1), (2999, 0, 2999, 0)),  # tall: AVX2's kernel rows in the padding are skipped
]


@pytest.mark.parametrize("op", ["AveragePool", "MaxPool"])
@pytest.mark.parametrize("case", BIG_PAD, ids=[f"bigpad{i}" for i in range(len(BIG_PAD))])
def test_windows_mostly_padding_numpy_bytes(lib, op, case):
    xs, k, p = case
    x = np.random.default_rng(sum(xs) + len(k)).standard_normal(xs).astype(np.float32)
    x.ravel()[::3] = -0.0            # windows whose inside taps are all -0.0: +0.0 with padding
    x.ravel()[::7] = 0.0
    for cip in ((0, 1) if op == "AveragePool" else (None,)):
        attrs = dict(kernel_shape=list(k), strides=[1] * len(k), pads=list(p), dilations=[1] * len(k), ceil_mode=0)
        if cip is not None:
            attrs["count_include_pad"] = cip
        r = ref(op, x, **attrs)[0]
        art, feeds = make_node(op, [(x, False)], [("float32", r.shape)], attrs)
        o, ks = run(lib, art, feeds)
        rr, rks = run(lib, art, feeds, flags=REF_KERNELS)
        assert o[0].tobytes() == rr[0].tobytes() == r.tobytes(), (ks, op, cip)
        if AVX2 and len(k) == 2 and k[1] == 1:   # the tall case: the AVX2 kernel (1 column)
            assert ks[0].endswith("__avx2"), ks


@pytest.mark.parametrize("op", ["AveragePool", "MaxPool"])
def test_window_of_200000_taps_over_one_pixel(lib, op):
    """A 1x1 image, kernel 200000 and pads 199999 on each side: 200000 outputs whose windows each
    hold the one pixel. Testing every tap took 4e10 steps (hours; the fuzzer's build gave up at
    10 s on 20000); the inside taps alone take 2e5. Values from the definition: MaxPool the
    pixel; AveragePool the pixel / 1 without the padding in the count (-0.0 becomes +0.0: the
    padding's +0.0 taps are summed), the pixel / 200000 with it."""
    K = 200_000
    attrs = dict(kernel_shape=[1, K], strides=[1, 1], pads=[0, K - 1, 0, K - 1])
    for v in (np.float32(2.5), np.float32(-0.0)):
        x = np.full((1, 1, 1, 1), v, np.float32)
        for cip in ((0, 1) if op == "AveragePool" else (None,)):
            a = dict(attrs, **({} if cip is None else {"count_include_pad": cip}))
            art, feeds = make_node(op, [(x, False)], [("float32", (1, 1, 1, K))], a)
            for flags in (0, REF_KERNELS):
                (o,), _ = run(lib, art, feeds, flags=flags)
                want = v if op == "MaxPool" else (v + np.float32(0.0)) / np.float32(K if cip else 1)
                assert o.tobytes() == np.full(K, want, np.float32).tobytes(), (op, cip, v, flags)
