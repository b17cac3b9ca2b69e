"""The AVX2 float32 kernel variants (runtimes/c/kernels/avx2/*.c, listed in src/kernels_x86.inc)
against the REF kernels of the same library (DSE_LOAD_REF_KERNELS) and onnxruntime.

Tolerances (docs/kernels.md, "Optimised float variants"):
  * REF's bytes exactly: Relu, LeakyRelu, HardSigmoid, HardSwish, Neg, Abs, Sqrt, Reciprocal,
    Clip, Add (with its clamp), Sub, Mul, Div, MaxPool;
  * sums (Conv, Gemm, MatMul): FMA instead of a rounded product then a rounded sum, so per
    element |avx2 - ref| <= 4 (K + 1) 2^-24 S, S = sum_k |a_k b_k| + |bias| (+ |C|), K the
    length of the sum (both sums are within (K+1)·2^-24·S·(1+tiny) of the exact one);
  * Exp, Sigmoid, Tanh, Erf: ulps of the float32 result against float64 numpy, measured over a
    sweep of float32 bit patterns (the full 2^32 sweep is documented in docs/kernels.md);
  * Softmax/LogSoftmax: relative 2e-6 of the largest output (exp and the order of the sum).
Shapes hit every tail: odd channel counts, widths not a multiple of 8 or 16, padding, strides,
dilation, groups, batch. Each variant's output is also compared for 1, 2 and 3 threads (the same
bytes), and a library built with REF_FLOAT=1 (-DDSE_REF_FLOAT) must give REF's bytes with only
REF float kernels chosen. The tests that need the AVX2 variants skip on a CPU without AVX2+FMA.
"""
from __future__ import annotations

import ctypes as C
import os
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from tests.runtime._make import make, make_checked   # one shared build per configuration

from dsedge.artifact import Artifact, NodeRec, TensorRec, op_id
from dsedge.export.scratch import _conv_f32_direct, conv_f32_wino_plan, scratch_bytes
from dsedge.runtime import _Error, _SessionOptions, _declare

from .test_kernels_f32_nn import make_node, ort, ref

ROOT = Path(__file__).resolve().parents[2]
CDIR = Path(os.environ.get("DSEDGE_C_SRC") or ROOT / "runtimes" / "c")
CC = os.environ.get("CC") or shutil.which("cc") or shutil.which("gcc") or shutil.which("clang")
pytestmark = pytest.mark.skipif(CC is None or shutil.which("make") is None, reason="no C compiler or make")


def _cpu_has_avx2() -> bool:
    try:
        flags = next(line for line in open("/proc/cpuinfo") if line.startswith("flags")).split()
    except (OSError, StopIteration):
        return False
    return all(f in flags for f in ("avx2", "fma", "f16c"))


AVX2 = _cpu_has_avx2() and os.uname().machine in ("x86_64", "amd64")
needs_avx2 = pytest.mark.skipif(not AVX2, reason="n/a: the CPU has no AVX2+FMA (the AVX2 variants are not chosen)")
REF_KERNELS = 2   # DSE_LOAD_REF_KERNELS
NO_AVX512 = 8     # DSE_LOAD_NO_AVX512: the AVX2 variants on an AVX-512 CPU


def _cpu_has_avx512() -> bool:
    try:
        flags = next(line for line in open("/proc/cpuinfo") if line.startswith("flags")).split()
    except (OSError, StopIteration):
        return False
    return all(f in flags for f in ("avx512f", "avx512bw", "avx512vl", "avx512_vnni"))


AVX512 = AVX2 and _cpu_has_avx512()
# The float kernels with the SGEMM (and O32's tiles) on 512-bit vectors (kernels/avx512vnni/sgemm.c),
# chosen before the AVX2 ones on AVX-512 CPUs: the AVX2 ones' bytes.
# The float Exp, Sigmoid, Tanh, Erf on 16 lanes (kernels/avx512vnni/act_quantize.c): the same.
WIDE_F32 = {f"dse_f32_{k}__avx512vnni": f"dse_f32_{k}__avx2"
            for k in ("conv", "conv_wino", "gemm", "matmul", "exp", "sigmoid", "tanh", "erf")}


def _make(tmp_path_factory, name, *extra):
    out = make_checked(CC, "libdsedge.so", args=extra)
    L = C.CDLL(str(out / "libdsedge.so"))
    _declare(L)
    return L


@pytest.fixture(scope="module")
def lib(tmp_path_factory):
    return _make(tmp_path_factory, "dse_avx2_build")


@pytest.fixture(scope="module")
def lib_ref_float(tmp_path_factory):
    return _make(tmp_path_factory, "dse_ref_float_build", "REF_FLOAT=1")


def run(L, art, feeds, flags=0, threads=1):
    """(outputs, kernel name per node) of the artifact in library L. Where the 512-bit float kernels ran
    (WIDE_F32: an AVX-512 CPU), the same load without them (DSE_LOAD_NO_AVX512) must choose the AVX2
    kernel at each of those nodes and give the same bytes; the names returned are the AVX2 ones, so that
    every test of the AVX2 float kernels also checks the 512-bit ones where the CPU has them."""
    outs, kernels = _run1(L, art, feeds, flags, threads)
    if any(k in WIDE_F32 for k in kernels):
        outs2, kernels2 = _run1(L, art, feeds, flags | NO_AVX512, threads)
        for k, k2 in zip(kernels, kernels2):
            assert k2 == WIDE_F32.get(k, k2), (kernels, kernels2)
        for a, b in zip(outs, outs2):
            assert a.tobytes() == b.tobytes(), \
                f"512-bit float kernels: {int((a.view(np.uint8) != b.view(np.uint8)).sum())} bytes differ from AVX2's"
        kernels = [WIDE_F32.get(k, k) for k in kernels]
    return outs, kernels


def _run1(L, art, feeds, flags, threads):
    data = art.to_bytes()
    raw = np.zeros(len(data) + 64, np.uint8)
    start = (-raw.ctypes.data) % 64
    raw[start:start + len(data)] = np.frombuffer(data, np.uint8)
    m, s, err = C.c_void_p(), C.c_void_p(), _Error()
    st = L.dse_model_load_ex(raw.ctypes.data + start, len(data), flags, C.byref(m), C.byref(err))
    assert st == 0, err.message.decode()
    try:
        kernels = [L.dse_model_node_kernel(m, k).decode() for k in range(L.dse_model_node_count(m))]
        opt = _SessionOptions(C.sizeof(_SessionOptions), threads)
        assert L.dse_session_create_ex(m, None, 0, C.byref(opt), C.byref(s), C.byref(err)) == 0, err.message.decode()
        for i, a in enumerate(feeds):
            assert L.dse_session_set_input(s, i, a.ctypes.data, a.nbytes, C.byref(err)) == 0, err.message.decode()
        assert L.dse_session_run(s, C.byref(err)) == 0, err.message.decode()
        outs = []
        for i, oi in enumerate(art.outputs):
            t = art.tensors[oi]
            p, nb = C.c_void_p(), C.c_size_t()
            L.dse_session_get_output(s, i, C.byref(p), C.byref(nb))
            buf = (C.c_uint8 * nb.value).from_address(p.value) if nb.value else b""
            outs.append(np.frombuffer(bytes(buf), dtype=t.dtype).reshape(t.shape).copy())
        return outs, kernels
    finally:
        if s.value:
            L.dse_session_free(s)
        L.dse_model_free(m)


class _N:   # the exporter's view of a node, for its scratch formula
    def __init__(self, op, inputs, outputs, attrs):
        self.op, self.inputs, self.outputs, self.attrs = op, inputs, outputs, attrs


def planned_scratch(op, shapes_in, shape_out, attrs, direct=False):
    """The exporter's scratch for a one-node artifact; direct: a float Conv's plan without the
    Winograd variant's part (what an export before it planned)."""
    names = [f"i{k}" for k in range(len(shapes_in))]
    shapes = {n: tuple(s) for n, s in zip(names, shapes_in)}
    shapes["y"] = tuple(shape_out)
    if direct:
        return _conv_f32_direct(_N(op, names, ["y"], attrs), shapes)
    return scratch_bytes(_N(op, names, ["y"], attrs), shapes, "float32")


def check_variant(L, art, feeds, kernel, *, exact=False, tol=None):
    """The variant runs (when the CPU has it), agrees with REF (bytes, or within tol(ref, opt)), and
    gives the same bytes with 1, 2 and 3 threads. Returns (opt, ref) of output 0."""
    o, ks = run(L, art, feeds)
    r, rks = run(L, art, feeds, flags=REF_KERNELS)
    assert all(k.endswith("__ref") for k in rks), rks
    if AVX2:
        assert ks[0] == kernel, (ks, kernel)
    for a, b in zip(o, r):
        if exact:
            assert a.tobytes() == b.tobytes(), f"{int((a.view(np.uint32) != b.view(np.uint32)).sum())} elements differ"
        elif tol is not None:
            tol(b, a)
    for t in (2, 3):
        ot, _ = run(L, art, feeds, threads=t)
        for a, b in zip(o, ot):
            assert a.tobytes() == b.tobytes(), f"{t} threads give other bytes"
    return o[0], r[0]


def sum_tol(bound):
    """tol(ref, opt): |opt - ref| <= bound (float64 array broadcastable to the output)."""
    def f(r, o):
        d = np.abs(o.astype(np.float64) - r.astype(np.float64))
        bad = d > bound
        assert not bad.any(), f"{bad.sum()} elements over the bound: max excess {(d - bound).max()}"
    return f


def rnd(rng, *shape, scale=1.0):
    return (rng.standard_normal(shape) * scale).astype(np.float32)


# ------------------------------------------------------------------------------------------
# Conv: every path of dse__conv_f32_plan (GEMM, DW, BAND1, BANDS, IM2COL)
# ------------------------------------------------------------------------------------------

CONV_CASES = [
    # x shape, w shape, strides, pads, dilations, group, bias, act
    ((2, 13, 7, 9), (11, 13, 1, 1), (1, 1), (0, 0, 0, 0), (1, 1), 1, True, (0.0, 6.0)),          # GEMM, 63 px
    ((1, 5, 4, 4), (17, 5, 1, 1), (1, 1), (0, 0, 0, 0), (1, 1), 1, False, None),                 # GEMM, 16 px
    ((1, 7, 9, 11), (9, 7, 1, 1), (2, 2), (0, 0, 0, 0), (1, 1), 1, True, None),                  # 1x1 strided: BANDS
    ((1, 5, 11, 13), (7, 5, 3, 3), (1, 1), (1, 1, 1, 1), (1, 1), 1, True, (-1.0, 1.0)),          # BAND1
    ((2, 3, 12, 17), (4, 3, 3, 3), (1, 1), (2, 0, 1, 3), (2, 2), 1, True, None),                 # BAND1, dilation
    ((1, 3, 17, 19), (5, 3, 3, 3), (2, 2), (1, 0, 2, 1), (1, 1), 1, True, None),                 # BANDS
    ((2, 4, 15, 16), (6, 2, 5, 3), (2, 3), (2, 1, 2, 0), (1, 2), 2, True, None),                 # BANDS, groups
    ((1, 6, 10, 21), (6, 2, 3, 3), (1, 2), (1, 1, 1, 1), (1, 1), 3, False, (0.0, np.inf)),       # groups
    ((1, 13, 9, 23), (13, 1, 3, 3), (1, 1), (1, 1, 1, 1), (1, 1), 13, True, (0.0, 6.0)),         # DW8, OW 23
    ((1, 13, 5, 37), (13, 1, 3, 3), (1, 1), (1, 1, 1, 1), (1, 1), 13, True, (0.0, 6.0)),         # DW, OW 37
    ((1, 5, 14, 31), (5, 1, 3, 3), (2, 2), (0, 1, 1, 0), (1, 1), 5, True, None),                 # DW8 stride 2
    ((1, 5, 14, 41), (5, 1, 3, 3), (2, 2), (0, 1, 1, 0), (1, 1), 5, True, None),                 # DW8 stride 2, OW 21
    ((1, 5, 6, 133), (5, 1, 3, 3), (2, 2), (0, 1, 1, 0), (1, 1), 5, True, None),                 # DW stride 2, OW 67
    ((1, 3, 116, 110), (3, 1, 3, 3), (2, 2), (1, 1, 1, 1), (1, 1), 3, False, None),              # DW stride 2, OW 55: planes > 320 KiB
    ((2, 3, 13, 14), (3, 1, 5, 5), (1, 1), (4, 4, 4, 4), (2, 2), 3, False, None),                # DW dilated
    ((1, 3, 7, 7), (3, 1, 3, 3), (3, 3), (1, 1, 1, 1), (1, 1), 3, True, None),                   # DW8 stride 3
    ((2, 13, 6, 5), (13, 1, 3, 3), (1, 1), (1, 1, 1, 1), (1, 1), 13, True, (0.0, 6.0)),          # DW8, 5 channels left
    ((1, 20, 11, 13), (20, 1, 5, 5), (2, 1), (2, 1, 2, 3), (1, 2), 20, False, None),             # DW8 5x5 dilated
    ((1, 4, 6, 5), (8, 1, 3, 3), (1, 1), (1, 1, 1, 1), (1, 1), 4, True, None),                   # multiplier 2
    ((1, 300, 10, 30), (8, 300, 3, 3), (1, 1), (1, 1, 1, 1), (1, 1), 1, True, None),             # several bands
    ((1, 200, 9, 20), (5, 200, 3, 3), (2, 2), (1, 1, 1, 1), (1, 1), 1, False, None),             # bands, strided
    ((2, 3, 29), (4, 3, 3), (2,), (1, 2), (1,), 1, True, None),                                  # 1-D
    ((1, 4, 37), (4, 1, 5), (1,), (2, 2), (2,), 4, False, None),                                 # 1-D depthwise
    ((1, 2, 4, 5, 6), (3, 2, 2, 3, 2), (1, 2, 1), (0, 1, 1, 1, 0, 0), (1, 1, 2), 1, True, None),  # 3-D: IM2COL
    ((1, 3, 33, 34), (16, 3, 3, 3), (2, 2), (1, 1, 1, 1), (1, 1), 1, True, (0.0, 6.0)),          # a stem
    ((2, 37, 1, 1), (13, 37, 1, 1), (1, 1), (0, 0, 0, 0), (1, 1), 1, True, (0.0, 6.0)),          # 1x1 image: dot
    ((1, 120, 1, 1), (32, 120, 1, 1), (1, 1), (0, 0, 0, 0), (1, 1), 1, False, None),             # dot, K % 8 == 0
    # 1x1 (GEMM; strided: BANDS): long K, many row blocks, every tail width, groups, batch 2
    ((1, 300, 7, 7), (200, 300, 1, 1), (1, 1), (0, 0, 0, 0), (1, 1), 1, True, None),            # P 49: tails of 1 column
    ((2, 520, 9, 11), (100, 520, 1, 1), (2, 2), (0, 0, 0, 0), (1, 1), 1, True, (0.0, 6.0)),     # strided (BANDS), batch 2
    ((1, 37, 13, 11), (19, 37, 1, 1), (1, 1), (0, 0, 0, 0), (1, 1), 1, False, None),            # K 37, M 19, P 143
    ((1, 24, 6, 10), (36, 12, 1, 1), (1, 1), (0, 0, 0, 0), (1, 1), 2, True, None),              # groups: 18 rows each
    ((1, 40, 3, 5), (13, 40, 1, 1), (1, 1), (0, 0, 0, 0), (1, 1), 1, True, None),               # P 15: one panel of 15
    ((1, 9, 18, 17), (12, 9, 1, 1), (3, 2), (0, 0, 0, 0), (1, 1), 1, True, None),               # strided 3 x 2, OW 9
    ((1, 130, 12, 12), (14, 130, 3, 3), (2, 2), (1, 1, 1, 1), (1, 1), 1, True, None),           # BANDS: one band of 6 rows
    ((1, 300, 9, 20), (7, 300, 3, 3), (2, 2), (1, 1, 1, 1), (1, 1), 1, True, None),             # BANDT 3x3: bands of 2, 2, 1 rows, planes of 20
    ((1, 200, 12, 32), (6, 200, 3, 3), (2, 2), (1, 1, 1, 1), (1, 1), 1, True, (0.0, 6.0)),      # BANDT 3x3: planes of 32, aligned
    ((2, 40, 11, 21), (10, 20, 3, 3), (2, 2), (0, 1, 2, 1), (1, 1), 2, True, (-0.5, 0.5)),       # BANDS or BANDT: groups, uneven pads
] + [   # IMGS: group 1, batches of images with < 16 output pixels each (tiles across the images)
    ((16, 129, 4), (128, 129, 3), (1,), (1, 1), (1,), 1, True, None),                            # silero-like, P = 4
    ((3, 1, 576), (7, 1, 256), (128,), (0, 0), (1,), 1, False, (0.0, np.inf)),                   # STFT-like, P = 3
    ((5, 8, 1), (6, 8, 3), (1,), (1, 1), (1,), 1, True, (0.0, 6.0)),                             # P = 1
    ((40, 6, 2), (5, 6, 1), (1,), (0, 0), (1,), 1, True, None),                                  # 1x1 (GEMM per image), 80 columns
    ((70, 3, 3), (4, 3, 2), (1,), (0, 0), (1,), 1, True, None),                                  # 140 columns: two tiles
    ((4, 3, 6), (5, 3, 3), (1,), (2, 2), (2,), 1, True, None),                                   # dilated, padded, P = 6
    ((3, 4, 3, 3), (9, 4, 2, 2), (2, 1), (1, 0, 0, 1), (1, 1), 1, True, None),                   # 2-D, P = 6
    ((2, 2, 2, 3, 3), (3, 2, 2, 2, 2), (1, 1, 1), (0, 0, 0, 1, 1, 1), (1, 1, 1), 1, True, None),   # 3-D, P = 9
    ((3, 40, 2, 2), (700, 40, 1, 1), (1, 1), (0, 0, 0, 0), (1, 1), 1, True, None),               # M = 700: TW 80
]
IMGS_CASES = CONV_CASES[-9:]


def _conv_case(case, seed, direct_scratch=False):
    """direct_scratch: plan only the direct kernel's scratch (an artifact exported before the
    Winograd variant)."""
    xs, ws, s, p, d, g, has_b, act = case
    rng = np.random.default_rng(seed)
    x, w = rnd(rng, *xs), rnd(rng, *ws, scale=0.5)
    b = rnd(rng, ws[0]) if has_b else None
    attrs = dict(kernel_shape=list(ws[2:]), strides=list(s), pads=list(p), dilations=list(d), group=g)
    (r,) = ref("Conv", x, w, b, **attrs)
    cattrs = dict(attrs)
    if act:
        cattrs.update(act_min=act[0], act_max=act[1])
    sc = planned_scratch("Conv", [xs, ws] + ([ws[:1]] if has_b else []), r.shape, attrs, direct=direct_scratch)
    art, feeds = make_node("Conv", [(x, False), (w, True)] + ([(b, True)] if has_b else []),
                           [("float32", r.shape)], cattrs, scratch=sc)
    # S = sum |x w| + |b| per output element: the sums' error scale
    (s_abs,) = ref("Conv", np.abs(x), np.abs(w), None if b is None else np.abs(b), **attrs)
    K = int(np.prod(ws[1:]))
    return art, feeds, attrs, (x, w, b), r, act, 4 * (K + 1) * 2.0 ** -24 * s_abs.astype(np.float64)


def _wino_plan_of(xs, ws, s, d, g, yshape):
    """The Winograd variant's plan for a conv (None: the direct kernel takes it)."""
    if len(xs) != 4 or g != 1 or list(ws[2:]) != [3, 3] or any(v != 1 for v in tuple(s) + tuple(d)):
        return None
    return conv_f32_wino_plan(xs[0], xs[1], ws[0], yshape[2], yshape[3])


@pytest.mark.parametrize("case", CONV_CASES, ids=[f"conv{i}" for i in range(len(CONV_CASES))])
def test_conv(lib, case):
    """The direct AVX2 kernel on every path; a 3x3 stride-1 case that the Winograd variant takes
    runs the direct kernel when the artifact planned only its scratch (an older export)."""
    art, feeds, attrs, (x, w, b), r, act, bound = _conv_case(case, len(case[0]) * 100 + case[1][0])
    if _wino_plan_of(case[0], case[1], case[2], case[4], case[5], r.shape):
        art, feeds, *_ = _conv_case(case, len(case[0]) * 100 + case[1][0], direct_scratch=True)
    o, _ = check_variant(lib, art, feeds, "dse_f32_conv__avx2", tol=sum_tol(bound))
    if act:
        r = np.clip(r, act[0], act[1])
    (e,) = ort("Conv", [x, w, b], attrs)
    if act:
        e = np.clip(e, act[0], act[1])
    scale = float(np.abs(r).max())
    np.testing.assert_allclose(o, e, rtol=1e-5, atol=1e-5 * scale)
    np.testing.assert_allclose(o, r, rtol=1e-5, atol=1e-5 * scale)


def fma32(a, b, c):
    """float32 fma(a, b, c) (one rounding) elementwise, in float64 arithmetic: a*b is exact in
    float64, p + c is rounded once to float64 and its error t is exact (TwoSum); rounding that
    float64 to float32 is then wrong only on an exact float32 tie with t != 0, which is corrected."""
    p = a.astype(np.float64) * b.astype(np.float64)
    c = np.broadcast_to(c, p.shape).astype(np.float64)
    s = p + c
    bb = s - p
    t = (p - (s - bb)) + (c - bb)
    r = s.astype(np.float32)
    up = np.nextafter(r, np.float32(np.inf))
    dn = np.nextafter(r, np.float32(-np.inf))
    r64 = r.astype(np.float64)
    tie_up = (s > r64) & ((r64 + up.astype(np.float64)) / 2 == s)    # s halfway between r and up
    tie_dn = (s < r64) & ((r64 + dn.astype(np.float64)) / 2 == s)
    r = np.where(tie_up & (t > 0), up, r)
    r = np.where(tie_dn & (t < 0), dn, r)
    return r.astype(np.float32)


def _conv2d_fma_chain(x, w, b, s, p, d, g, act):
    """A 2-D conv as the direct optimised kernels state it: per output, one float32 FMA chain over
    the taps (c, kh, kw) ascending from +0, the zero padding multiplied in, then + bias (float32),
    then the clamp."""
    xp = np.pad(x, ((0, 0), (0, 0), (p[0], p[2]), (p[1], p[3])))
    N = x.shape[0]
    M, cg, KH, KW = w.shape
    mg = M // g
    OH = (xp.shape[2] - d[0] * (KH - 1) - 1) // s[0] + 1
    OW = (xp.shape[3] - d[1] * (KW - 1) - 1) // s[1] + 1
    y = np.zeros((N, M, OH, OW), np.float32)
    for grp in range(g):
        acc = np.zeros((N, mg, OH, OW), np.float32)
        for c in range(cg):
            for kh in range(KH):
                for kw in range(KW):
                    a = w[grp * mg:(grp + 1) * mg, c, kh, kw][None, :, None, None]
                    xs = xp[:, grp * cg + c, kh * d[0]:kh * d[0] + s[0] * (OH - 1) + 1:s[0],
                            kw * d[1]:kw * d[1] + s[1] * (OW - 1) + 1:s[1]]
                    acc = fma32(a, xs[:, None], acc)
        y[:, grp * mg:(grp + 1) * mg] = acc
    if b is not None:
        y = (y + b[None, :, None, None]).astype(np.float32)
    if act:
        y = np.clip(y, np.float32(act[0]), np.float32(act[1])).astype(np.float32)
    return y


def test_fma32_oracle():
    """fma32 against exact rational arithmetic on random and constructed tie cases."""
    from fractions import Fraction
    rng = np.random.default_rng(5)
    a = rng.standard_normal(300).astype(np.float32)
    b = rng.standard_normal(300).astype(np.float32)
    c = rng.standard_normal(300).astype(np.float32)
    # ties: c = 1, a*b = 2^-24 (+ a tiny part): the exact sum is just above the midpoint 1 + 2^-24
    a[:2] = np.float32(2.0 ** -12)
    b[:2] = np.float32(2.0 ** -12) * np.float32(1 + 2.0 ** -23)
    c[:2] = np.float32(1.0)
    r = fma32(a, b, c)
    for ai, bi, ci, ri in zip(a, b, c, r):
        exact = Fraction(float(ai)) * Fraction(float(bi)) + Fraction(float(ci))
        cands = [np.nextafter(ri, np.float32(-np.inf)), ri, np.nextafter(ri, np.float32(np.inf))]
        errs = [abs(Fraction(float(v)) - exact) for v in cands]
        assert errs[1] <= min(errs), (ai, bi, ci, ri)
    assert r[0] == np.nextafter(np.float32(1.0), np.float32(2.0))   # double rounding would give 1.0


# 2-D convs on the GEMM (1x1) and BANDS / BANDT (strided) paths (not a 1x1 image: the dot-product
# kernel, 8 partial sums; not depthwise: DW / DW8)
CHAIN_CASES = [c for c in CONV_CASES[:-len(IMGS_CASES)]
               if len(c[0]) == 4 and tuple(c[0][2:]) != (1, 1) and not (c[5] == c[0][1] and c[1][1] == 1)
               and (list(c[1][2:]) == [1, 1] or max(c[2]) > 1)]


@pytest.mark.parametrize("case", CHAIN_CASES, ids=[f"chain{i}" for i in range(len(CHAIN_CASES))])
def test_conv_bytes_are_one_fma_chain(lib, case):
    """1x1 convs (GEMM) and strided ones (BANDS, BANDT): every output's bytes are those of one float32
    FMA chain over the taps (c, kh, kw) ascending, then + bias, then the clamp (an exact oracle, fma32),
    on 1, 2 and 3 threads (check_variant)."""
    xs, ws, s, p, d, g, has_b, act = case
    art, feeds, attrs, (x, w, b), r, act, bound = _conv_case(case, len(xs) * 100 + ws[0])
    o, _ = check_variant(lib, art, feeds, "dse_f32_conv__avx2", tol=sum_tol(bound))
    if not AVX2:
        pytest.skip("no AVX2: REF's bytes are not an FMA chain")
    e = _conv2d_fma_chain(x, w, b, s, p, d, g, act)
    diff = int((o.view(np.uint32) != e.view(np.uint32)).sum())
    assert diff == 0, f"{diff} of {o.size} outputs differ from the FMA chain"


@pytest.mark.parametrize("case", IMGS_CASES, ids=[f"imgs{i}" for i in range(len(IMGS_CASES))])
def test_conv_imgs_gives_each_images_bytes(lib, case):
    """The IMGS path (tiles across a batch of small images) computes every output element as the
    per-image paths do (one FMA chain over k in REF's tap order, then bias, then the clamp): the
    batch's bytes equal those of each image run alone (batch 1: BANDS, BAND1, GEMM or IM2COL), and
    an artifact planned without IMGS's scratch (an older export) runs those paths with the same bytes."""
    xs, ws, s, p, d, g, has_b, act = case
    rng = np.random.default_rng(xs[0] * 7 + ws[0])
    x, w = rnd(rng, *xs), rnd(rng, *ws, scale=0.5)
    b = rnd(rng, ws[0]) if has_b else None
    attrs = dict(kernel_shape=list(ws[2:]), strides=list(s), pads=list(p), dilations=list(d), group=g)
    cattrs = dict(attrs, **(dict(act_min=act[0], act_max=act[1]) if act else {}))
    (r,) = ref("Conv", x, w, b, **attrs)

    def one(xb, direct=False):
        (rb,) = ref("Conv", xb, w, b, **attrs)
        sc = planned_scratch("Conv", [xb.shape, ws] + ([ws[:1]] if has_b else []), rb.shape, attrs, direct=direct)
        art, feeds = make_node("Conv", [(xb, False), (w, True)] + ([(b, True)] if has_b else []),
                               [("float32", rb.shape)], cattrs, scratch=sc)
        (o,), ks = run(lib, art, feeds)
        return o, ks[0], sc

    batch, kern, sc = one(x)
    if AVX2:
        assert kern == "dse_f32_conv__avx2", kern
    alone = np.concatenate([one(x[i:i + 1])[0] for i in range(xs[0])])
    assert batch.tobytes() == alone.tobytes(), f"{int((batch.view(np.uint32) != alone.view(np.uint32)).sum())} elements differ"
    older, _, sc_old = one(x, direct=True)
    assert sc_old <= sc and older.tobytes() == batch.tobytes()


@pytest.mark.parametrize("xs,s", [((1, 9, 7, 23), (1, 1)), ((1, 9, 8, 41), (2, 2))], ids=["s1", "s2"])
def test_conv_dw8_with_an_older_plan_runs_dw(lib, xs, s):
    """A depthwise conv that takes DW8 now (OW 16 to 31, or strided to 63) but whose artifact
    planned DW's scratch only (written before DW8 took those widths) still runs the AVX2 kernel,
    on the DW path, with the same arithmetic."""
    C = xs[1]
    ws = (C, 1, 3, 3)
    rng = np.random.default_rng(5)
    x, w, b = rnd(rng, *xs), rnd(rng, *ws, scale=0.5), rnd(rng, C)
    attrs = dict(kernel_shape=[3, 3], strides=list(s), pads=[1, 1, 1, 1], dilations=[1, 1], group=C)
    (r,) = ref("Conv", x, w, b, **attrs)
    new = planned_scratch("Conv", [xs, ws, ws[:1]], r.shape, attrs)
    ph, pw = xs[2] + 2, xs[3] + 2
    old = 8 * 9 + 4 * (ph * s[1] * -(-pw // s[1]) + 8)   # the DW path's formula
    assert new == 4 * 8 * (ph * pw + r.shape[2] * r.shape[3]) > old   # DW8's, planned today
    art, feeds = make_node("Conv", [(x, False), (w, True), (b, True)], [("float32", r.shape)], attrs, scratch=old)
    (s_abs,) = ref("Conv", np.abs(x), np.abs(w), np.abs(b), **attrs)
    o, _ = check_variant(lib, art, feeds, "dse_f32_conv__avx2", tol=sum_tol(10 * 2.0 ** -24 * s_abs.astype(np.float64)))
    np.testing.assert_allclose(o, r, rtol=1e-5, atol=1e-5 * float(np.abs(r).max()))


@pytest.mark.parametrize("xs,ws,s", [((1, 256, 40, 40), (24, 256, 3, 3), (2, 2)), ((2, 300, 30, 30), (17, 300, 1, 1), (2, 2))],
                         ids=["3x3s2", "1x1s2"])
def test_conv_bands_older_plan_same_bytes(lib, xs, ws, s, monkeypatch):
    """Strided convs (BANDS/BANDT) run in bands of DSE_CONV_BANDS_FLOATS (262144) floats; an artifact
    planned with the bands of before (65536 floats: many more bands here) still runs the x86 kernel,
    in those smaller bands, with the same bytes (the bands change which outputs a pass computes, not
    their sums)."""
    import dsedge.export.scratch as sch
    rng = np.random.default_rng(11)
    x, w, b = rnd(rng, *xs), rnd(rng, *ws, scale=0.5), rnd(rng, ws[0])
    k = ws[2]
    attrs = dict(kernel_shape=[k, k], strides=list(s), pads=[k // 2] * 4, dilations=[1, 1], group=1)
    (r,) = ref("Conv", x, w, b, **attrs)
    shapes = [xs, ws, ws[:1]]
    new = planned_scratch("Conv", shapes, r.shape, attrs)
    monkeypatch.setattr(sch, "CONV_BANDS_FLOATS", 65536)
    old = planned_scratch("Conv", shapes, r.shape, attrs)
    assert old < new
    (s_abs,) = ref("Conv", np.abs(x), np.abs(w), np.abs(b), **attrs)
    outs = []
    for sc in (new, old):
        art, feeds = make_node("Conv", [(x, False), (w, True), (b, True)], [("float32", r.shape)], attrs, scratch=sc)
        o, _ = check_variant(lib, art, feeds, "dse_f32_conv__avx2", tol=sum_tol(4 * (w[0].size + 1) * 2.0 ** -24 * s_abs.astype(np.float64)))
        outs.append(o)
    assert outs[0].tobytes() == outs[1].tobytes()


def fma_f32(a, b, c):
    """float32 fma(a, b, c) = a*b + c rounded once (round to nearest even), elementwise, from float64:
    a*b is exact in float64, the sum's rounding error e is TwoSum's (s + e = a*b + c exactly), and
    rounding s to float32 is the correctly rounded result unless s is a float32 midpoint with e != 0
    (a double rounding), then e decides the side."""
    with np.errstate(invalid="ignore", over="ignore"):
        p, c64 = a.astype(np.float64) * b.astype(np.float64), np.asarray(c, np.float64)
        s = p + c64
        bb = s - p
        e = (p - (s - bb)) + (c64 - bb)
        r = s.astype(np.float32)
        r64 = r.astype(np.float64)
        nb = np.nextafter(r, np.where(s > r64, np.float32(np.inf), np.float32(-np.inf)))
        tie = np.isfinite(s) & (s != r64) & (s == (r64 + nb.astype(np.float64)) / 2) & (e != 0)
        return np.where(tie & (np.sign(e) == np.sign(s - r64)), nb, r).astype(np.float32)


def dw3x3_fma_chain(x, w, b, strides, pads, act):
    """The AVX2 float depthwise 3x3 Conv's bytes (kernels/avx2/dwconv.c, as conv.c's DW and DW8 paths):
    per output, one float32 FMA chain from +0 over the taps (kh, kw) in order, the taps in the zero
    padding included (w * 0), then + bias, then max(lo, .) and min(hi, .) as vmaxps/vminps (NaN kept)."""
    N, C, H, W = x.shape
    (sh, sw), (pt, pl, pb, pr) = strides, pads
    xp = np.zeros((N, C, H + pt + pb, W + pl + pr), np.float32)
    xp[:, :, pt:pt + H, pl:pl + W] = x
    OH, OW = (H + pt + pb - 3) // sh + 1, (W + pl + pr - 3) // sw + 1
    acc = np.zeros((N, C, OH, OW), np.float32)
    for kh in range(3):
        for kw in range(3):
            tap = xp[:, :, kh:kh + sh * (OH - 1) + 1:sh, kw:kw + sw * (OW - 1) + 1:sw]
            acc = fma_f32(np.broadcast_to(w[:, 0, kh, kw].reshape(1, C, 1, 1), acc.shape), tap, acc)
    y = acc + b.reshape(1, C, 1, 1) if b is not None else acc
    if act:
        lo, hi = np.float32(act[0]), np.float32(act[1])
        y = np.where(lo > y, lo, y)
        y = np.where(hi < y, hi, y)
    return y.astype(np.float32)


# Depthwise 3x3 convs for the DW3 path (kernels/avx2/dwconv.c): x shape, strides, pads (t, l, b, r), bias, act.
# Widths 1..17 (rows of less than one vector, one and a bit, the vector tail), 56 and 112 (mobilenet_v2's),
# odd and even heights (the tiles of 8 / 2 rows and the last tile ending at the last row), strides 1 and 2
# on each axis, pads 0, 1, 2 and asymmetric, 1, 3, 8, 9 channels, batch 2.
DW3_CASES = [((1 + (w % 5 == 0), (3, 8, 9)[w % 3], 5 + 2 * (w % 4), w), s, p, w % 2 == 0, (0.0, 6.0) if w % 3 else None)
             for w, s, p in [(1, (1, 1), (1, 1, 1, 1)), (2, (2, 2), (1, 1, 1, 1)), (3, (1, 1), (0, 0, 0, 0)),
                             (4, (1, 2), (2, 2, 2, 2)), (5, (2, 1), (0, 1, 2, 0)), (6, (1, 1), (1, 2, 0, 1)),
                             (7, (1, 1), (1, 1, 1, 1)), (7, (2, 2), (1, 1, 1, 1)), (8, (1, 1), (1, 1, 1, 1)),
                             (8, (2, 2), (0, 0, 1, 1)), (9, (1, 1), (1, 0, 1, 2)), (9, (2, 2), (2, 2, 2, 2)),
                             (10, (1, 1), (0, 0, 0, 0)), (10, (2, 1), (1, 1, 1, 1)), (11, (1, 2), (1, 1, 1, 1)),
                             (12, (1, 1), (2, 2, 2, 2)), (13, (2, 2), (1, 0, 0, 1)), (14, (1, 1), (1, 1, 1, 1)),
                             (14, (2, 2), (1, 1, 1, 1)), (15, (1, 1), (0, 2, 1, 0)), (16, (2, 2), (0, 1, 0, 1)),
                             (16, (1, 1), (1, 1, 1, 1)), (17, (1, 1), (1, 1, 1, 1)), (17, (2, 2), (2, 1, 0, 2)),
                             (56, (1, 1), (1, 1, 1, 1)), (56, (2, 2), (1, 1, 1, 1)), (57, (2, 2), (0, 0, 1, 1)),
                             (112, (2, 2), (1, 1, 1, 1)), (112, (1, 1), (0, 2, 2, 0))]
] + [((1, 1, 13, 21), (2, 2), (1, 1, 1, 1), True, None),   # 1 channel (stride 2: not the Winograd variant's)
     ((2, 3, 17, 23), (1, 1), (1, 1, 1, 1), True, (0.0, 6.0)),   # 17 output rows: 8 + 8 + a tile ending at the last
     ((1, 3, 11, 9), (2, 2), (1, 1, 1, 1), False, (-1.0, 1.0))]   # 6 output rows of 5 columns


@pytest.mark.parametrize("case", DW3_CASES, ids=[f"dw3_{i}" for i in range(len(DW3_CASES))])
def test_conv_dw3_bytes(lib, case):
    """The depthwise 3x3 path that reads the planes in place (DW3, kernels/avx2/dwconv.c) gives the
    bytes of its arithmetic (conv.c's DW and DW8 paths': one FMA chain per output in REF's tap order,
    padding taps included, then bias, then the clamp), emulated exactly in numpy (dw3x3_fma_chain;
    NaN compared as NaN), for 1, 2 and 3 threads, and agrees with REF within the sums' bound; the
    inputs hold a NaN and an infinity (each reaching the outputs whose window holds it)."""
    xs, s, p, has_b, act = case
    C = xs[1]
    rng = np.random.default_rng(sum(xs) * 7 + s[0] + 3 * p[1])
    x, w = rnd(rng, *xs, scale=3.0), rnd(rng, C, 1, 3, 3, scale=0.5)
    x.reshape(-1)[x.size // 3] = np.nan
    x.reshape(-1)[2 * x.size // 3] = np.inf
    b = rnd(rng, C) if has_b else None
    attrs = dict(kernel_shape=[3, 3], strides=list(s), pads=list(p), dilations=[1, 1], group=C)
    (r,) = ref("Conv", x, w, b, **attrs)
    cattrs = dict(attrs, **(dict(act_min=act[0], act_max=act[1]) if act else {}))
    sc = planned_scratch("Conv", [xs, w.shape] + ([(C,)] if has_b else []), r.shape, attrs)
    art, feeds = make_node("Conv", [(x, False), (w, True)] + ([(b, True)] if has_b else []),
                           [("float32", r.shape)], cattrs, scratch=sc)
    (s_abs,) = ref("Conv", np.nan_to_num(np.abs(x), posinf=0.0), np.abs(w), None if b is None else np.abs(b), **attrs)
    bound = 4 * 10 * 2.0 ** -24 * s_abs.astype(np.float64)

    def tol(rf, o):   # REF within the bound where finite; NaN and infinities at the same places
        fin = np.isfinite(rf)
        assert (np.isnan(o) == np.isnan(rf)).all() and (o[np.isinf(rf)] == rf[np.isinf(rf)]).all()
        sum_tol(bound[fin])(rf[fin], o[fin])

    o, _ = check_variant(lib, art, feeds, "dse_f32_conv__avx2", tol=tol)
    if not AVX2:
        return
    e = dw3x3_fma_chain(x, w, b, s, p, act)
    nan = np.isnan(e)
    assert (np.isnan(o) == nan).all(), "NaN elsewhere"
    bad = o.view(np.uint32)[~nan] != e.view(np.uint32)[~nan]
    assert not bad.any(), f"{int(bad.sum())} of {o.size} elements differ from the FMA chain"
    assert np.isfinite(o).sum() > o.size // 2


def test_fma_f32_emulation():
    """fma_f32 (the oracle above) is the correctly rounded a*b + c: where rounding through float64
    first is wrong (a*b + c just below a float32 midpoint, rounded onto it by float64, then to even
    upwards), and on random triples against exact rational arithmetic (ties to even)."""
    from fractions import Fraction as F
    a, b, c = np.float32(1 + 2.0 ** -23), np.float32(2.0 ** -24 * (1 - 2.0 ** -23)), np.float32(1 + 2.0 ** -23)
    # exact: 1 + 2^-23 + 2^-24 - 2^-70; float64: 1 + 2^-23 + 2^-24, a midpoint, to even: 1 + 2^-22
    assert np.float32(float(a) * float(b) + float(c)) == np.float32(1 + 2.0 ** -22)
    assert fma_f32(np.float32([a]), np.float32([b]), np.float32([c]))[0] == c
    rng = np.random.default_rng(0)
    xa, xb = rnd(rng, 400), rnd(rng, 400)
    xc = np.concatenate([rnd(rng, 200), -(xa[200:] * xb[200:])])   # half with cancellation
    got = fma_f32(xa, xb, xc)
    for i in range(400):
        ex = F(float(xa[i])) * F(float(xb[i])) + F(float(xc[i]))
        cands = [np.nextafter(got[i], np.float32(-np.inf)), got[i], np.nextafter(got[i], np.float32(np.inf))]
        best = min(cands, key=lambda v: (abs(F(float(v)) - ex), int(np.float32(v).view(np.uint32)) & 1))
        assert got[i] == best, i


def test_conv_fp16_weights_and_unplanned_scratch_run_ref(lib):
    """float16 weights are left to REF; so is an artifact planned before the variant's scratch
    (scratch 0: written by an older exporter)."""
    rng = np.random.default_rng(3)
    x, w = rnd(rng, 1, 3, 9, 9), rnd(rng, 4, 3, 3, 3)
    attrs = dict(kernel_shape=[3, 3], strides=[1, 1], pads=[1, 1, 1, 1], dilations=[1, 1], group=1)
    (r,) = ref("Conv", x, w, **attrs)
    sc = planned_scratch("Conv", [x.shape, w.shape], r.shape, attrs)
    assert sc > 0
    art, feeds = make_node("Conv", [(x, False), (w.astype(np.float16), True)], [("float32", r.shape)], attrs, scratch=sc)
    _, ks = run(lib, art, feeds)
    assert ks == ["dse_f32_conv__ref"]
    art, feeds = make_node("Conv", [(x, False), (w, True)], [("float32", r.shape)], attrs, scratch=0)
    (o,), ks = run(lib, art, feeds)
    assert ks == ["dse_f32_conv__ref"]
    (oref,), _ = run(lib, art, feeds, flags=REF_KERNELS)
    assert o.tobytes() == oref.tobytes()


@needs_avx2
def test_fp16_weights_in_layout5_are_widened_at_load(lib):
    """fp16 weights in layout 5 (docs/format.md §4.4) are widened to float32 once by the loader,
    exactly: the AVX2 kernel takes them (not REF, as for float16 weights in layout 0 above) and
    gives the bytes of the same node with the widened float32 weights, with the optimised and
    with the reference kernels. A layout-5 tensor that is not float16 is refused."""
    import dataclasses
    import zlib
    rng = np.random.default_rng(4)
    x, w = rnd(rng, 1, 3, 9, 9), rnd(rng, 4, 3, 3, 3)
    w16 = w.astype(np.float16)
    attrs = dict(kernel_shape=[3, 3], strides=[1, 1], pads=[1, 1, 1, 1], dilations=[1, 1], group=1)
    (r,) = ref("Conv", x, w16.astype(np.float32), **attrs)
    sc = planned_scratch("Conv", [x.shape, w.shape], r.shape, attrs)
    art16, feeds = make_node("Conv", [(x, False), (w16, True)], [("float32", r.shape)], attrs, scratch=sc)
    art16 = dataclasses.replace(art16, tensors=tuple(dataclasses.replace(t, layout=5) if t.dtype == "float16" else t
                                                     for t in art16.tensors))
    art32, _ = make_node("Conv", [(x, False), (w16.astype(np.float32), True)], [("float32", r.shape)], attrs, scratch=sc)
    for flags, kernel in ((0, "dse_f32_conv_wino__avx2"), (REF_KERNELS, "dse_f32_conv__ref")):   # 3x3 stride 1
        (o16,), k16 = run(lib, art16, feeds, flags=flags)
        (o32,), k32 = run(lib, art32, feeds, flags=flags)
        assert k16 == k32 == [kernel]
        assert o16.tobytes() == o32.tobytes()
    np.testing.assert_allclose(o16, r, rtol=1e-5, atol=1e-5 * float(np.abs(r).max()))
    data = bytearray(art16.to_bytes())
    rec = bytes([2, 0, 5, 4, 4, 3, 3, 3])     # the weight's record: float16, CONST, layout 5, rank 4, 4x3x3x3
    assert data.count(rec) == 1
    at = data.index(rec)
    data[at] = 1                               # float32 claiming layout 5
    tables = int.from_bytes(data[24:32], "little")
    data[60:64] = zlib.crc32(bytes(data[:60]) + bytes(data[64:64 + tables])).to_bytes(4, "little")
    raw = np.zeros(len(data) + 64, np.uint8)
    start = (-raw.ctypes.data) % 64
    raw[start:start + len(data)] = np.frombuffer(bytes(data), np.uint8)
    m, err = C.c_void_p(), _Error()
    st = lib.dse_model_load_ex(raw.ctypes.data + start, len(data), 0, C.byref(m), C.byref(err))
    if st == 0:
        lib.dse_model_free(m)
    assert st != 0 and "layout 5 needs a float16 constant" in err.message.decode(), err.message.decode()


def _three_node_artifact(r_at_scratch: bool):
    """x -> Relu -> r; x -> Conv 3x3 -> c; Add(r, c) -> y, with r (live while the Conv runs, not
    its operand) placed inside the plan's scratch region or not."""
    rng = np.random.default_rng(5)
    x, w = rnd(rng, 1, 2, 6, 6), rnd(rng, 2, 2, 3, 3)
    attrs = dict(kernel_shape=[3, 3], strides=[1, 1], pads=[1, 1, 1, 1], dilations=[1, 1], group=1)
    sc = planned_scratch("Conv", [x.shape, w.shape], x.shape, attrs)
    nb = -(-x.nbytes // 64) * 64
    off_x, off_y, off_c = 0, nb, 2 * nb
    s_off = 3 * nb
    off_r = s_off if r_at_scratch else s_off + -(-sc // 64) * 64
    t = [TensorRec.arena("x", "float32", x.shape, off_x), TensorRec.const("w", w),
         TensorRec.arena("r", "float32", x.shape, off_r), TensorRec.arena("c", "float32", x.shape, off_c),
         TensorRec.arena("y", "float32", x.shape, off_y)]
    nodes = (NodeRec(op_id("Relu"), (0,), (2,), {}, name="relu"),
             NodeRec(op_id("Conv"), (0, 1), (3,), attrs, name="conv"),
             NodeRec(op_id("Add"), (2, 3), (4,), {}, name="add"))
    end = max(off_r + nb, s_off + sc)
    art = Artifact(tensors=tuple(t), nodes=nodes, inputs=(0,), outputs=(4,), arena_size=-(-end // 64) * 64,
                   scratch_offset=s_off, scratch_size=sc)
    (cv,) = ref("Conv", x, w, **attrs)
    return art, [x], np.maximum(x, 0) + cv


def test_conv_refuses_scratch_with_a_live_tensor(lib):
    """dse__scratch_free: the variant must not take scratch bytes where a live tensor lies (an
    artifact planned before it existed); REF runs the node and the result is right."""
    for at_scratch in (True, False):
        art, feeds, want = _three_node_artifact(at_scratch)
        (o,), ks = run(lib, art, feeds)
        if at_scratch or not AVX2:
            assert ks[1] == "dse_f32_conv__ref", ks
        else:
            assert ks[1] == "dse_f32_conv_wino__avx2", ks
        np.testing.assert_allclose(o, want, rtol=1e-5, atol=1e-5)


# ------------------------------------------------------------------------------------------
# Conv 3x3 stride 1: Winograd F(2x2, 3x3) (dse_f32_conv_wino__avx2, kernels/avx2/winograd.c)
# ------------------------------------------------------------------------------------------

WINO_CASES = [
    # x shape, M, pads (top, left, bottom, right), bias, act
    ((1, 5, 11, 13), 7, (1, 1, 1, 1), True, (-1.0, 1.0)),       # odd H and W: partial last tiles
    ((2, 3, 12, 17), 4, (2, 0, 1, 3), True, None),              # batch 2, asymmetric pads
    ((1, 16, 16, 16), 8, (0, 0, 0, 0), False, None),            # no padding, even
    ((1, 13, 7, 9), 11, (0, 2, 1, 1), True, (0.0, 6.0)),        # Cin, Cout not multiples of 8
    ((1, 9, 2, 40), 6, (1, 1, 1, 1), False, None),              # H = 2: one tile row
    ((2, 8, 9, 3), 5, (1, 1, 1, 1), True, None),                # W = 3
    ((2, 24, 7, 7), 40, (1, 1, 1, 1), True, (0.0, np.inf)),     # resnet's last stage, small
    ((1, 32, 40, 36), 12, (1, 1, 1, 1), True, None),            # 2 blocks of 256 tiles, split mid-row
    ((1, 64, 30, 50), 70, (2, 2, 2, 2), False, (-2.0, 2.0)),    # 3 blocks of 128 tiles, pad 2
    ((1, 300, 10, 30), 8, (1, 1, 1, 1), True, None),            # C 300: blocks of 16 tiles
    ((1, 2000, 6, 8), 4, (1, 1, 1, 1), True, None),             # K = 18000
    ((1, 9, 1, 40), 6, (1, 1, 1, 1), True, None),               # H = 1: the direct kernel (cost)
    ((2, 4, 1, 1), 3, (1, 1, 1, 1), True, None),                # 1x1 images: the direct kernel
    ((1, 8, 5, 5), 8, (0, 0, 0, 0), True, None),                # 3x3 output: the direct kernel
]


def _conv3x3_f64(x, w, b, pads):
    """Float64 3x3 stride-1 conv, and S_W: per output, sum_c (sum |w_mc|) (sum of |x_c| over its
    3x3 window) + |b| (the Winograd bound's scale, winograd.c's header)."""
    pt, pl, pb, pr = pads
    xp = np.pad(x.astype(np.float64), ((0, 0), (0, 0), (pt, pb), (pl, pr)))
    N, C, H, W = xp.shape
    OH, OW = H - 2, W - 2
    y = np.zeros((N, w.shape[0], OH, OW))
    win = np.zeros((N, C, OH, OW))
    for kh in range(3):
        for kw in range(3):
            patch = xp[:, :, kh:kh + OH, kw:kw + OW]
            y += np.einsum("mc,nchw->nmhw", w[:, :, kh, kw].astype(np.float64), patch)
            win += np.abs(patch)
    sw = np.einsum("mc,nchw->nmhw", np.abs(w.astype(np.float64)).sum(axis=(2, 3)), win)
    if b is not None:
        y += b.astype(np.float64)[None, :, None, None]
        sw += np.abs(b.astype(np.float64))[None, :, None, None]
    return y, sw


@pytest.mark.parametrize("case", WINO_CASES, ids=[f"wino{i}" for i in range(len(WINO_CASES))])
def test_conv_winograd(lib, case):
    """The kernel the plan names (Winograd where dse__conv_f32_wino_plan takes the node) within
    |y - exact| <= 4 (C + 12) 2^-24 S_W of float64, the same bytes for 1, 2 and 3 threads; with
    the scratch of an older export (the direct kernel's plan only) the direct AVX2 kernel runs."""
    xs, M, pads, has_b, act = case
    rng = np.random.default_rng(sum(xs) * 31 + M)
    C = xs[1]
    x, w = rnd(rng, *xs), rnd(rng, M, C, 3, 3, scale=0.5)
    b = rnd(rng, M) if has_b else None
    attrs = dict(kernel_shape=[3, 3], strides=[1, 1], pads=[pads[0], pads[1], pads[2], pads[3]], dilations=[1, 1], group=1)
    exact, s_w = _conv3x3_f64(x, w, b, pads)
    cattrs = dict(attrs)
    if act:
        cattrs.update(act_min=act[0], act_max=act[1])
        exact = np.clip(exact, act[0], act[1])
    shapes_in = [xs, w.shape] + ([b.shape] if has_b else [])
    inputs = [(x, False), (w, True)] + ([(b, True)] if has_b else [])
    plan = conv_f32_wino_plan(xs[0], C, M, exact.shape[2], exact.shape[3])
    kernel = "dse_f32_conv_wino__avx2" if plan else "dse_f32_conv__avx2"
    sc = planned_scratch("Conv", shapes_in, exact.shape, attrs)
    if plan:
        assert sc >= plan["bytes"]
    art, feeds = make_node("Conv", inputs, [("float32", exact.shape)], cattrs, scratch=sc)
    bound = 4 * (C + 12) * 2.0 ** -24 * s_w
    o, r = check_variant(lib, art, feeds, kernel)
    sum_tol(bound)(exact, o)
    sum_tol(4 * (9 * C + 1) * 2.0 ** -24 * s_w)(exact, r)       # REF: its own (K + 1) u S <= that
    if plan:   # an artifact planned before the variant: the direct kernel
        sc0 = planned_scratch("Conv", shapes_in, exact.shape, attrs, direct=True)
        assert sc0 < plan["bytes"]
        art0, feeds0 = make_node("Conv", inputs, [("float32", exact.shape)], cattrs, scratch=sc0)
        o0, _ = check_variant(lib, art0, feeds0, "dse_f32_conv__avx2")
        sum_tol(4 * (9 * C + 1) * 2.0 ** -24 * s_w)(exact, o0)


# ------------------------------------------------------------------------------------------
# Gemm, MatMul
# ------------------------------------------------------------------------------------------

GEMM_CASES = [
    # M, K, N, transA, transB, alpha, beta, C shape ("none" = absent), act
    (3, 5, 4, 0, 0, 1.0, 1.0, (4,), None),
    (13, 37, 21, 1, 0, 0.5, 2.0, (13, 1), (0.0, np.inf)),
    (7, 33, 6, 0, 1, 1.0, 0.5, (1, 6), None),
    (1, 1000, 37, 0, 1, 1.0, 1.0, (37,), None),          # matrix-vector, transB (a classifier)
    (2, 17, 9, 0, 1, 1.25, 1.0, (2, 9), (-1.0, 1.0)),
    (1, 64, 100, 0, 0, 1.0, 1.0, "none", None),
    (20, 9, 35, 0, 0, 2.0, 0.0, (20, 35), None),
    (61, 300, 150, 0, 0, 1.0, 1.0, (150,), (0.0, np.inf)),   # B packed (>= 48 rows), chunks of 96 columns
    (50, 37, 21, 1, 0, 1.0, 1.0, "none", None),
    # B over 1 MiB and wide: parts of columns (each reads its part of B once), with a column tail
    (20, 300, 1003, 0, 1, 1.0, 1.0, (1003,), (0.0, np.inf)),
    (7, 260, 1030, 1, 0, 1.0, 0.5, (7, 1030), None),
]


@pytest.mark.parametrize("case", GEMM_CASES, ids=[f"gemm{i}" for i in range(len(GEMM_CASES))])
def test_gemm(lib, case):
    M, K, N, ta, tb, alpha, beta, cs, act = case
    rng = np.random.default_rng(M * K + N)
    a = rnd(rng, *((K, M) if ta else (M, K)))
    b = rnd(rng, *((N, K) if tb else (K, N)))
    c = None if cs == "none" else rnd(rng, *cs)
    attrs = dict(transA=ta, transB=tb, alpha=alpha, beta=beta)
    (r,) = ref("Gemm", a, b, c, **attrs)
    (e,) = ort("Gemm", [a, b, c], attrs)
    cattrs = dict(attrs)
    if act:
        cattrs.update(act_min=act[0], act_max=act[1])
        r, e = np.clip(r, *act), np.clip(e, *act)
    sc = planned_scratch("Gemm", [a.shape, b.shape] + ([] if c is None else [c.shape]), r.shape, attrs)
    art, feeds = make_node("Gemm", [(a, False), (b, True)] + ([] if c is None else [(c, True)]),
                           [("float32", r.shape)], cattrs, scratch=sc)
    A, B = (a.T if ta else a).astype(np.float64), (b.T if tb else b).astype(np.float64)
    s_abs = abs(alpha) * (np.abs(A) @ np.abs(B)) + (0 if c is None else abs(beta) * np.abs(np.broadcast_to(c, r.shape)))
    o, _ = check_variant(lib, art, feeds, "dse_f32_gemm__avx2", tol=sum_tol(4 * (K + 3) * 2.0 ** -24 * s_abs))
    np.testing.assert_allclose(o, e, rtol=1e-5, atol=1e-5 * float(np.abs(r).max()))


def test_gemm_left_to_ref(lib):
    rng = np.random.default_rng(9)
    a, b = rnd(rng, 5, 3), rnd(rng, 4, 5)
    for bb, attrs in ((b, dict(transA=1, transB=1, alpha=1.0, beta=1.0)),
                      (b.T.astype(np.float16), dict(transA=1, transB=0, alpha=1.0, beta=1.0))):
        (r,) = ref("Gemm", a, bb.astype(np.float32), None, **attrs)
        art, feeds = make_node("Gemm", [(a, False), (bb, True)], [("float32", r.shape)], attrs)
        (o,), ks = run(lib, art, feeds)
        assert ks == ["dse_f32_gemm__ref"]
        np.testing.assert_allclose(o, r, rtol=1e-5, atol=1e-6)


MATMUL_CASES = [
    ((3, 4), (4, 5), True),
    ((2, 3, 7, 19), (19, 33), True),
    ((2, 1, 3, 4), (5, 4, 2), True),
    ((4,), (4, 17), True),
    ((2, 3, 37), (37,), True),            # N = 1: the dot-product kernel
    ((9,), (9,), True),
    ((1, 3, 17, 8), (1, 3, 8, 17), False),   # attention: both activations
    ((1, 128, 64), (64, 96), True),
    ((3, 1, 2, 9), (1, 4, 9, 3), False),
    ((2, 50, 300), (300, 150), True),      # B packed (>= 48 rows)
    ((1, 2, 49, 40), (1, 2, 40, 131), False),
    # B packed, one batch, threads: parts of whole panels of 16 columns, not of packing chunks
    # (K = 384: chunks of 160; 2 threads: 4 parts of 112 columns, the last 56 with a tail of 8;
    # 1 thread: 320 columns as 2 equal chunks, then 72); MiniLM's projections, 64 x 384 x 384
    ((1, 64, 384), (384, 392), True),
    ((1, 60, 384), (384, 1000), True),     # 2 threads: parts of 256 columns, each in 2 chunks of 128
]


@pytest.mark.parametrize("case", MATMUL_CASES, ids=[f"matmul{i}" for i in range(len(MATMUL_CASES))])
def test_matmul(lib, case):
    sa, sb, const_b = case
    rng = np.random.default_rng(len(sa) * 10 + sb[-1])
    a, b = rnd(rng, *sa), rnd(rng, *sb)
    (r,) = ref("MatMul", a, b)
    (e,) = ort("MatMul", [a, b], {})
    sc = planned_scratch("MatMul", [a.shape, b.shape], r.shape, {})
    art, feeds = make_node("MatMul", [(a, False), (b, const_b)], [("float32", r.shape)], dict(act_min=-2.0, act_max=2.5),
                           scratch=sc)
    K = sa[-1]
    s_abs = np.matmul(np.abs(a).astype(np.float64), np.abs(b).astype(np.float64))
    o, _ = check_variant(lib, art, feeds, "dse_f32_matmul__avx2", tol=sum_tol(4 * (K + 1) * 2.0 ** -24 * s_abs))
    np.testing.assert_allclose(o, np.clip(e, -2.0, 2.5), rtol=1e-5, atol=1e-5 * float(np.abs(r).max()))


# ------------------------------------------------------------------------------------------
# elementwise
# ------------------------------------------------------------------------------------------

def _specials(n, rng, scale=4.0):
    """n float32 values with the awkward ones first: zeros of both signs, infinities, NaN,
    subnormals, the largest and smallest normals, then normal noise."""
    sp = np.array([0.0, -0.0, np.inf, -np.inf, np.nan, 1e-45, -1e-45, 1.1754942e-38, -1.1754942e-38,
                   3.4028235e38, -3.4028235e38, 1.0, -1.0, 0.5, -0.5, 88.7, -88.7, 104.0, -104.0], np.float32)
    x = (rng.standard_normal(max(n, 1)) * scale).astype(np.float32)
    x[:min(n, len(sp))] = sp[:min(n, len(sp))]
    return x[:n]


EXACT_UNARY = [("Relu", {}), ("LeakyRelu", dict(alpha=0.1)), ("HardSigmoid", dict(alpha=0.3, beta=0.4)),
               ("HardSwish", {}), ("Neg", {}), ("Abs", {}), ("Sqrt", {}), ("Reciprocal", {})]


@pytest.mark.parametrize("n", [1, 7, 8, 9, 37, 1000])
@pytest.mark.parametrize("op,attrs", EXACT_UNARY, ids=[o for o, _ in EXACT_UNARY])
def test_unary_exact(lib, op, attrs, n):
    x = _specials(n, np.random.default_rng(n)).reshape(1, n)
    art, feeds = make_node(op, [(x, False)], [("float32", x.shape)], attrs)
    check_variant(lib, art, feeds, f"dse_f32_{op.lower()}__avx2", exact=True)


@pytest.mark.parametrize("bounds", [(-1.0, 2.0), (None, 0.5), (0.0, None), (None, None), (np.nan, 1.0), (3.0, 1.0)])
def test_clip_exact(lib, bounds):
    x = _specials(45, np.random.default_rng(1)).reshape(5, 9)
    ins = [(x, False)] + [None if v is None else (np.array(v, np.float32), True) for v in bounds]
    art, feeds = make_node("Clip", ins, [("float32", x.shape)], {})
    check_variant(lib, art, feeds, "dse_f32_clip__avx2", exact=True)


# max ulp error of the AVX2 functions over the sweep (docs/kernels.md states the full-sweep figures)
APPROX_ULPS = {"Exp": 2.0, "Sigmoid": 3.0, "Tanh": 2.0, "Erf": 2.0}


def _ulp_of(v: np.ndarray) -> np.ndarray:
    """The float32 ulp at |v| (float64 v): 2^(e-23) for normal v, 2^-149 below."""
    a = np.abs(v)
    e = np.floor(np.log2(np.where(a >= 2.0 ** -126, a, 1.0)))
    return np.where(a >= 2.0 ** -126, 2.0 ** (e - 23), 2.0 ** -149)


def _exact(op, x):
    from scipy.special import erf as serf, expit
    x = x.astype(np.float64)
    with np.errstate(over="ignore", invalid="ignore"):
        return {"Exp": np.exp, "Sigmoid": expit, "Tanh": np.tanh, "Erf": serf}[op](x)


def sweep_input(op):
    """Every 4099th float32 bit pattern (~1M values, all exponents and both signs) plus specials."""
    bits = np.arange(0, 2 ** 32, 4099, dtype=np.uint64).astype(np.uint32)
    x = bits.view(np.float32)
    return np.concatenate([_specials(19, np.random.default_rng(0)), x[np.isfinite(x)]]).reshape(1, -1)


def check_approx(op, x, o):
    """The output o of a polynomial kernel on x: within APPROX_ULPS of float64, NaN canonical,
    overflow to inf, signs of zero kept by the odd functions."""
    o, x = o.ravel(), x.ravel()
    nan = np.isnan(x)
    assert (o[nan].view(np.uint32) == 0x7FC00000).all(), "NaN must give the canonical NaN"
    ex = _exact(op, x[~nan])
    got = o[~nan].astype(np.float64)
    with np.errstate(over="ignore"):
        ex32 = ex.astype(np.float32)
    over = np.isinf(ex32)
    assert (got[over] == ex32[over]).all(), "float32 overflow must give inf"
    err = np.abs(got[~over] - ex[~over]) / _ulp_of(ex[~over])
    worst = int(np.argmax(err))
    assert err.max() <= APPROX_ULPS[op], f"{err.max():.3f} ulp at x = {x[~nan][~over][worst]!r}"
    z = x == 0
    if op in ("Tanh", "Erf"):
        assert (np.signbit(o[z]) == np.signbit(x[z])).all(), "odd functions keep the sign of zero"


@pytest.mark.parametrize("op", list(APPROX_ULPS))
def test_unary_approx_sweep(lib, op):
    """sweep_input's values: ulp error against float64, NaN canonical, signs of zero kept, overflow
    to inf (check_approx)."""
    pytest.importorskip("scipy")
    x = sweep_input(op)
    art, feeds = make_node(op, [(x, False)], [("float32", x.shape)], {})
    o, r = check_variant(lib, art, feeds, f"dse_f32_{op.lower()}__avx2")
    check_approx(op, x, o)


BINARY_CASES = [((3, 5, 7), (3, 5, 7)), ((2, 13, 6, 9), (1, 13, 1, 1)), ((1, 17, 33), (33,)), ((4, 1, 9), (1, 6, 1)),
                ((7,), ()), ((), (11,)), ((2, 3, 1, 19), (3, 8, 1)), ((1, 1), (1, 1)), ((5, 1000), (5, 1))]


@pytest.mark.parametrize("op", ["Add", "Sub", "Mul", "Div"])
@pytest.mark.parametrize("sa,sb", BINARY_CASES, ids=[f"{a}x{b}" for a, b in BINARY_CASES])
def test_binary_exact(lib, op, sa, sb):
    rng = np.random.default_rng(len(sa) + len(sb))
    a = _specials(int(np.prod(sa)), rng).reshape(sa)
    b = _specials(int(np.prod(sb)), np.random.default_rng(7)).reshape(sb)[..., ::-1].copy() if sb else np.float32(0.75)
    b = np.asarray(b, np.float32)
    y = np.broadcast_shapes(a.shape, b.shape)
    attrs = dict(act_min=-1.5, act_max=np.inf) if op == "Add" else {}
    art, feeds = make_node(op, [(a, False), (b, len(sb) < 2)], [("float32", y)], attrs)
    check_variant(lib, art, feeds, f"dse_f32_{op.lower()}__avx2", exact=True)


# ------------------------------------------------------------------------------------------
# Softmax, MaxPool
# ------------------------------------------------------------------------------------------

def _softmax_tol(r, o):
    scale = float(np.nanmax(np.abs(r)))
    np.testing.assert_allclose(o, r, rtol=2e-6, atol=2e-6 * scale)


SOFTMAX_CASES = [((1, 1), 1, 0), ((3, 7), 1, 0), ((2, 8), 1, 0), ((5, 33), 1, 0), ((2, 1000), 1, 0),
                 ((2, 5, 8), 1, 0), ((3, 4, 9), 1, 0), ((2, 6, 17), 1, 0), ((2, 3, 4, 5), 1, 1)]


@pytest.mark.parametrize("op", ["Softmax", "LogSoftmax"])
@pytest.mark.parametrize("shape,axis,c2", SOFTMAX_CASES, ids=[str(c) for c in SOFTMAX_CASES])
def test_softmax(lib, op, shape, axis, c2):
    x = (np.random.default_rng(len(shape)).standard_normal(shape) * 6).astype(np.float32)
    art, feeds = make_node(op, [(x, False)], [("float32", x.shape)], dict(axis=axis, coerce_2d=c2))
    o, r = check_variant(lib, art, feeds, f"dse_f32_{op.lower()}__avx2", tol=_softmax_tol)
    if not c2:
        (e,) = ort(op, [x], dict(axis=axis))
        _softmax_tol(e, o)


def test_softmax_short_stride_left_to_ref(lib):
    x = np.random.default_rng(0).standard_normal((2, 5, 3)).astype(np.float32)
    art, feeds = make_node("Softmax", [(x, False)], [("float32", x.shape)], dict(axis=1, coerce_2d=0))
    _, ks = run(lib, art, feeds)
    assert ks == ["dse_f32_softmax__ref"]


MAXPOOL_CASES = [
    # x shape, kernel, strides, pads, dilations, ceil_mode
    ((1, 3, 10, 10), (5, 5), (1, 1), (2, 2, 2, 2), (1, 1), 0),
    ((2, 2, 13, 23), (3, 3), (2, 2), (1, 1, 1, 1), (1, 1), 0),
    ((1, 3, 9, 10), (3, 2), (1, 2), (1, 0, 1, 1), (2, 1), 1),
    ((1, 2, 11, 37), (2, 3), (2, 1), (0, 1, 1, 0), (1, 2), 1),
    ((2, 3, 15), (4,), (2,), (2, 1), (1,), 1),
    ((1, 2, 7, 71), (3, 3), (1, 2), (0, 0, 0, 0), (1, 1), 0),
    ((1, 1, 4, 4), (3, 3), (2, 2), (2, 2, 2, 2), (1, 1), 1),     # windows entirely in the padding
    ((1, 2, 20, 19), (9, 3), (1, 1), (4, 1, 4, 1), (1, 1), 0),    # more kernel rows than kept rows (8)
    ((1, 3, 17, 17), (13, 13), (1, 1), (6, 6, 6, 6), (1, 1), 0),  # SPPF-like
    ((1, 2, 12, 40), (3, 3), (2, 2), (1, 1, 1, 1), (2, 3), 0),    # W stride 2, odd W dilation
]


@pytest.mark.parametrize("case", MAXPOOL_CASES, ids=[f"pool{i}" for i in range(len(MAXPOOL_CASES))])
def test_maxpool_exact(lib, case):
    xs, k, s, p, d, cm = case
    x = _specials(int(np.prod(xs)), np.random.default_rng(len(xs) + k[0])).reshape(xs)
    x.ravel()[::7] = -0.0
    x.ravel()[::11] = 0.0
    attrs = dict(kernel_shape=list(k), strides=list(s), pads=list(p), dilations=list(d), ceil_mode=cm,
                 auto_pad="NOTSET", storage_order=0)
    r = ref("MaxPool", np.nan_to_num(x), kernel_shape=list(k), strides=list(s), pads=list(p), dilations=list(d),
               ceil_mode=cm)[0]
    art, feeds = make_node("MaxPool", [(x, False)], [("float32", r.shape)], attrs)
    check_variant(lib, art, feeds, "dse_f32_maxpool__avx2", exact=True)


def test_maxpool_left_to_ref(lib):
    x = np.random.default_rng(2).standard_normal((1, 2, 9, 9)).astype(np.float32)
    attrs = dict(kernel_shape=[3, 3], strides=[3, 3], pads=[0, 0, 0, 0], dilations=[1, 1], ceil_mode=0)
    art, feeds = make_node("MaxPool", [(x, False)], [("float32", (1, 2, 3, 3))], attrs)
    _, ks = run(lib, art, feeds)
    assert ks == ["dse_f32_maxpool__ref"]


# ------------------------------------------------------------------------------------------
# the REF_FLOAT build
# ------------------------------------------------------------------------------------------

def test_ref_float_build_gives_ref_bytes(lib, lib_ref_float):
    """make REF_FLOAT=1 (-DDSE_REF_FLOAT): only REF float kernels are listed; each output is the
    default build's REF bytes (DSE_LOAD_REF_KERNELS)."""
    cases = []
    art, feeds, *_ = _conv_case(CONV_CASES[5], 1)
    cases.append((art, feeds))
    art, feeds, *_ = _conv_case(CONV_CASES[3], 1)   # 3x3 stride 1: Winograd in the default build
    cases.append((art, feeds))
    x = _specials(100, np.random.default_rng(4)).reshape(4, 25)
    for op in ("Sigmoid", "Tanh", "Relu"):
        cases.append(make_node(op, [(x, False)], [("float32", x.shape)], {}))
    a, b = rnd(np.random.default_rng(6), 7, 33), rnd(np.random.default_rng(7), 33, 9)
    cases.append(make_node("MatMul", [(a, False), (b, True)], [("float32", (7, 9))], {}))
    for art, feeds in cases:
        o, ks = run(lib_ref_float, art, feeds)
        assert all(k.endswith("__ref") for k in ks), ks
        r, _ = run(lib, art, feeds, flags=REF_KERNELS)
        assert all(p.tobytes() == q.tobytes() for p, q in zip(o, r))


# ------------------------------------------------------------------------------------------
# whole zoo models in float32
# ------------------------------------------------------------------------------------------

ZOO = {"mobilenet_v2": {"input_size": 96}, "yolo_detector": {"input_size": 160},
       "transformer_encoder": {"seq": 32, "dim": 64, "layers": 2}}


@pytest.mark.slow
@pytest.mark.parametrize("name", list(ZOO))
def test_zoo_model_fp32(name, tmp_path):
    """The fp32 `.dse` of a zoo model through dsedge.Runtime: the optimised kernels (AVX2 where
    the CPU has it) against the REF kernels and onnxruntime, within 1e-4 of the output's range;
    the AVX2 float kernels are the ones chosen for its Conv/Gemm/MatMul nodes."""
    import onnx
    import onnxruntime as ort_
    import dsedge
    import dsedge.zoo as zoo
    from dsedge.api import save_result
    m = zoo.build(name, **ZOO[name])
    src = tmp_path / "m.onnx"
    onnx.save(m, src)
    feeds = zoo.random_feeds(m, 3, 0)
    calib = [{k: v[i] for k, v in feeds.items()} for i in range(2)]
    feed = {k: v[2] for k, v in feeds.items()}
    save_result(dsedge.quantize(str(src), calib, precision="fp32", progress=False), tmp_path / "m.dse")
    so = ort_.SessionOptions()
    so.log_severity_level = 3
    want = ort_.InferenceSession(str(src), so, providers=["CPUExecutionProvider"]).run(None, feed)
    with dsedge.Runtime(tmp_path / "m.dse") as rt, dsedge.Runtime(tmp_path / "m.dse", kernels="ref") as rr, \
            dsedge.Runtime(tmp_path / "m.dse", kernels="no-avx512") as r2:
        got, ref_out, got2 = rt.run(feed), rr.run(feed), r2.run(feed)
        ks, ks2 = rt.kernels(), r2.kernels()
    if AVX2:   # the 512-bit kernels on an AVX-512 CPU, with the AVX2 ones' bytes
        heavy = [k for k in ks if k.startswith(("dse_f32_conv_", "dse_f32_gemm_", "dse_f32_matmul_"))]
        assert heavy and all(k.endswith("__avx512vnni" if AVX512 else "__avx2") for k in heavy), heavy
        assert all(k.endswith("__avx2") for k in ks2 if k.startswith(("dse_f32_conv_", "dse_f32_gemm_", "dse_f32_matmul_")))
        assert all(got[k].tobytes() == got2[k].tobytes() for k in got)
    for w, (k, g), r in zip(want, got.items(), ref_out.values()):
        scale = float(np.abs(w).max()) or 1.0
        assert np.abs(g - w).max() <= 1e-4 * scale, (k, float(np.abs(g - w).max() / scale))
        assert np.abs(g - r).max() <= 1e-4 * scale, (k, float(np.abs(g - r).max() / scale))


TRANSPOSE_CASES = [
    # shape, perm, dtype
    ((1, 3, 85, 12, 13), (0, 1, 3, 4, 2), np.float32),   # a detection head: channels last
    ((2, 19, 21), (0, 2, 1), np.int32),                    # edges of every 8 x 8 block
    ((9, 2, 17), (2, 1, 0), np.float32),                   # q not next to the last axis
    ((8, 8), (1, 0), np.float32),
    ((11, 40, 5), (1, 2, 0), np.float32),                  # 200 x 11 planes: 3 columns left over
]


@pytest.mark.parametrize("case", TRANSPOSE_CASES, ids=[f"tr{i}" for i in range(len(TRANSPOSE_CASES))])
def test_transpose_blocks(lib, case):
    shape, perm, dt = case
    rng = np.random.default_rng(len(shape) * 7 + shape[1])
    x = (rng.standard_normal(shape) * 100).astype(dt)
    y = np.transpose(x, perm)
    art, feeds = make_node("Transpose", [(x, False)], [(np.dtype(dt).name, y.shape)], dict(perm=list(perm)))
    o, _ = check_variant(lib, art, feeds, "dse_any_transpose__avx2", exact=True)
    assert o.tobytes() == np.ascontiguousarray(y).tobytes()


def test_transpose_left_to_ref(lib):
    """The innermost axis stays (a run per row), or 1-byte elements: REF's walk."""
    for shape, perm, dt in [((4, 9, 16), (1, 0, 2), np.float32), ((16, 24), (1, 0), np.int8)]:
        x = np.arange(np.prod(shape)).reshape(shape).astype(dt)
        art, feeds = make_node("Transpose", [(x, False)], [(np.dtype(dt).name, np.transpose(x, perm).shape)],
                               dict(perm=list(perm)))
        _, ks = run(lib, art, feeds)
        assert ks == ["dse_any_transpose__ref"], (shape, ks)


# ------------------------------------------------------------------------------------------
# LayerNormalization over threads (REF kernel, groups of 4 rows per part)
# ------------------------------------------------------------------------------------------

@pytest.mark.parametrize("shape,bias,stats", [((1, 64, 384), True, False),   # MiniLM's: 16 groups, 2 threads
                                              ((2, 37, 300), False, True),   # 74 rows: a last group of 2
                                              ((3, 5, 7), True, True)])      # too small to split: one part
def test_layernorm_threads(lib, shape, bias, stats):
    """The REF LayerNormalization split into groups of 4 rows over 1, 2 and 3 threads gives the same
    bytes, and onnxruntime's values (with the Mean and InvStdDev outputs)."""
    from .test_kernels_f32_nn import close
    rng = np.random.default_rng(sum(shape))
    x = rnd(rng, *shape) * 3 + 1
    sc, b = rnd(rng, shape[-1]), (rnd(rng, shape[-1]) if bias else None)
    r = ref("LayerNormalization", x, sc, b, axis=2, epsilon=1e-5)
    outs = [("float32", r[0].shape)] + ([("float32", r[1].shape), ("float32", r[2].shape)] if stats else [])
    ins = [(x, False), (sc, True)] + ([(b, True)] if bias else [])
    art, feeds = make_node("LayerNormalization", ins, outs, dict(axis=2, epsilon=1e-5, stash_type=1))
    o1, ks = run(lib, art, feeds)
    assert ks == ["dse_f32_layernorm__ref"]
    for t in (2, 3):
        ot, _ = run(lib, art, feeds, threads=t)
        for a, c in zip(o1, ot):
            assert a.tobytes() == c.tobytes(), f"{t} threads give other bytes"
    e = ort("LayerNormalization", [x, sc, b], dict(axis=2, epsilon=1e-5), n_out=3 if stats else 1)
    for c, ee in zip(o1, e):
        close(c, ee)
