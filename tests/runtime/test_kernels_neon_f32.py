"""The arm64 NEON float32 kernels (runtimes/c/kernels/neon/{sgemm,conv_f32,gemm_f32}.c, listed in
src/kernels_arm64.inc) under qemu-aarch64, against a float64 numpy oracle and the REF kernels of
the same build (the runner's -ref: DSE_LOAD_REF_KERNELS).

Tolerance (src/neon_f32.h, docs/kernels.md "Optimised float variants"): each output is a chain of
fused multiply-adds, so per element |neon - exact| <= 2 (K + 1) 2^-24 S and |neon - ref| <=
4 (K + 1) 2^-24 S, S the sum of the absolute values of the terms and of bias / C (Gemm: K + 3,
for alpha and beta's roundings). Shapes hit every tail: channels 1..17, K not a multiple of
4/8/16, pixels not a multiple of the 8-column tile, padding, strides, dilation, groups, depthwise
with a multiplier, kernels 1/3/5/7, batch > 1, 1-D and 3-D, Gemm transA/transB with alpha/beta
and every C broadcast form, MatMul batched and broadcast, fused clamps. One aarch64 build of the
library and runtimes/c/tests/run_cases.c (shared with tests/runtime/test_kernels_neon.py's
builder, zig's cache makes it cheap) runs every case in one process: the NEON kernel must be
chosen, with -ref the REF kernel, and 3 threads give 1 thread's bytes; on an AVX2 host the AVX2
float kernels give the NEON bytes (the same arithmetic per element).
"""
from __future__ import annotations

import subprocess

import numpy as np
import pytest

from .test_kernels_f32_avx2 import AVX2, _make, planned_scratch as planned, rnd, run as run_host
from .test_kernels_f32_nn import make_node
from .test_kernels_neon import QEMU64, _compiler, _sources, build_runner, FLAGS  # noqa: F401  (skips without qemu)

U = 2.0 ** -24
pytestmark = pytest.mark.skipif(QEMU64 is None, reason="qemu-aarch64 not installed (apt-get install qemu-user)")


# -- float64 oracles ----------------------------------------------------------------------------

def conv64(x, w, b, strides, pads, dil, group):
    """ONNX Conv in float64 (explicit pads: all begins then all ends)."""
    x, w = x.astype(np.float64), w.astype(np.float64)
    nd = x.ndim - 2
    xp = np.pad(x, [(0, 0), (0, 0)] + [(pads[i], pads[nd + i]) for i in range(nd)])
    N, C, M = x.shape[0], x.shape[1], w.shape[0]
    cg, mg, ks = C // group, M // group, w.shape[2:]
    out = [(xp.shape[2 + i] - (ks[i] - 1) * dil[i] - 1) // strides[i] + 1 for i in range(nd)]
    y = np.zeros((N, M, *out))
    for tap in np.ndindex(*ks):
        sl = tuple(slice(tap[i] * dil[i], tap[i] * dil[i] + (out[i] - 1) * strides[i] + 1, strides[i]) for i in range(nd))
        xs = xp[(slice(None), slice(None)) + sl]
        for g in range(group):
            wg = w[(slice(g * mg, (g + 1) * mg), slice(None)) + tuple(tap)]   # mg x cg
            y[:, g * mg:(g + 1) * mg] += np.einsum("nc...,mc->nm...", xs[:, g * cg:(g + 1) * cg], wg)
    if b is not None:
        y += b.astype(np.float64).reshape(1, -1, *[1] * nd)
    return y


def clip64(y, act):
    return y if act is None else np.minimum(np.maximum(y, act[0]), act[1])


# -- cases: (artifact, feeds, exact float64 output, error scale S * K-factor, kernel stem) -------

CONV_CASES = [
    # x shape, w shape, strides, pads, dilations, group, bias, act
    # GEMM (1x1 unit stride, straight on NCHW)
    ((2, 13, 7, 9), (11, 13, 1, 1), (1, 1), (0, 0, 0, 0), (1, 1), 1, True, (0.0, 6.0)),     # 63 px, batch 2
    ((1, 5, 4, 4), (17, 5, 1, 1), (1, 1), (0, 0, 0, 0), (1, 1), 1, False, None),            # 17 channels
    ((1, 1, 3, 5), (1, 1, 1, 1), (1, 1), (0, 0, 0, 0), (1, 1), 1, True, None),              # K = 1, P = 15
    ((1, 70, 17, 19), (40, 70, 1, 1), (1, 1), (0, 0, 0, 0), (1, 1), 1, True, None),         # 40 rows: B packed
    ((1, 12, 5, 7), (6, 4, 1, 1), (1, 1), (0, 0, 0, 0), (1, 1), 3, True, None),             # groups
    ((2, 6, 9), (7, 6, 1), (1,), (0, 0), (1,), 1, True, (-0.5, 0.5)),                        # 1-D
    ((2, 37, 1, 1), (13, 37, 1, 1), (1, 1), (0, 0, 0, 0), (1, 1), 1, True, (0.0, 6.0)),     # 1x1 image: dot
    # DW (one input channel per group)
    ((1, 13, 9, 23), (13, 1, 3, 3), (1, 1), (1, 1, 1, 1), (1, 1), 13, True, (0.0, 6.0)),
    ((2, 5, 14, 31), (5, 1, 3, 3), (2, 2), (0, 1, 1, 0), (1, 1), 5, True, None),            # stride 2
    ((1, 4, 12, 40), (4, 1, 3, 3), (2, 2), (0, 0, 1, 1), (1, 1), 4, True, None),            # stride 2, end padding
    ((1, 3, 7, 29), (3, 1, 3, 3), (3, 3), (1, 1, 1, 1), (1, 1), 3, True, None),             # stride 3: gathered
    ((2, 3, 13, 14), (3, 1, 5, 5), (1, 1), (4, 4, 4, 4), (2, 2), 3, False, None),           # 5x5 dilated
    ((1, 4, 6, 5), (8, 1, 3, 3), (1, 1), (1, 1, 1, 1), (1, 1), 4, True, None),              # multiplier 2
    ((1, 3, 8, 30), (6, 1, 5, 5), (1, 1), (2, 2, 2, 2), (1, 1), 3, True, None),             # multiplier 2, 5x5
    ((1, 4, 7, 7), (4, 1, 7, 7), (1, 1), (0, 0, 0, 0), (1, 1), 4, True, None),              # 7x7, one output
    ((1, 17, 16, 16), (17, 1, 3, 3), (1, 1), (0, 0, 0, 0), (1, 1), 17, True, (0.0, np.inf)),  # no padding
    ((1, 2, 5, 80), (2, 1, 1, 7), (1, 1), (0, 3, 0, 3), (1, 10), 2, True, None),            # 1x7, wide dilation
    ((1, 1, 9, 11), (3, 1, 3, 3), (1, 1), (1, 1, 1, 1), (1, 1), 1, True, None),             # 1 input channel, 3 out
    ((1, 4, 37), (4, 1, 5), (1,), (2, 2), (2,), 4, False, None),                             # 1-D depthwise
    ((2, 3, 40), (3, 1, 5), (2,), (2, 1), (1,), 3, True, (-1.0, 1.0)),                      # 1-D, stride 2
    # IM2COL
    ((1, 5, 11, 13), (7, 5, 3, 3), (1, 1), (1, 1, 1, 1), (1, 1), 1, True, (-1.0, 1.0)),     # K = 45
    ((2, 3, 12, 17), (4, 3, 3, 3), (1, 1), (2, 0, 1, 3), (2, 2), 1, True, None),            # dilation, odd pads
    ((1, 3, 17, 19), (5, 3, 3, 3), (2, 2), (1, 0, 2, 1), (1, 1), 1, True, None),            # strided
    ((2, 4, 15, 16), (6, 2, 5, 3), (2, 3), (2, 1, 2, 0), (1, 2), 2, True, None),            # groups, 5x3
    ((1, 6, 10, 21), (6, 2, 3, 3), (1, 2), (1, 1, 1, 1), (1, 1), 3, False, (0.0, np.inf)),   # groups
    ((1, 7, 9, 11), (9, 7, 1, 1), (2, 2), (0, 0, 0, 0), (1, 1), 1, True, None),             # 1x1 strided
    ((1, 2, 15, 14), (3, 2, 7, 7), (2, 2), (3, 3, 3, 3), (1, 1), 1, True, None),            # 7x7 stem-like
    ((1, 4, 12, 13), (16, 4, 5, 5), (2, 2), (2, 2, 2, 2), (1, 1), 1, False, None),          # 5x5, K = 100
    ((1, 300, 10, 30), (8, 300, 3, 3), (1, 1), (1, 1, 1, 1), (1, 1), 1, True, None),        # K = 2700: tiles of 16
    ((1, 3, 33, 34), (16, 3, 3, 3), (2, 2), (1, 1, 1, 1), (1, 1), 1, True, (0.0, 6.0)),     # a stem
    ((1, 16, 20, 20), (33, 16, 3, 3), (1, 1), (1, 1, 1, 1), (1, 1), 1, True, None),         # 33 rows, 400 px
    ((2, 3, 29), (4, 3, 3), (2,), (1, 2), (1,), 1, True, None),                              # 1-D
    ((1, 2, 4, 5, 6), (3, 2, 2, 3, 2), (1, 2, 1), (0, 1, 1, 1, 0, 0), (1, 1, 2), 1, True, None),  # 3-D
    ((1, 2, 3, 5, 17), (2, 1, 2, 3, 3), (1, 1, 1), (1, 1, 1, 0, 1, 1), (1, 1, 1), 2, True, None),  # 3-D depthwise
    # IMGS (group 1, batches of images of < 16 output pixels: tiles across the images)
    ((6, 20, 4), (16, 20, 3), (1,), (1, 1), (1,), 1, True, None),                             # silero-like
    ((3, 1, 576), (7, 1, 256), (128,), (0, 0), (1,), 1, False, None),                        # STFT-like (one channel)
    ((5, 8, 1), (6, 8, 3), (1,), (1, 1), (1,), 1, True, (0.0, 6.0)),                         # P = 1
    ((70, 3, 3), (4, 3, 2), (1,), (0, 0), (1,), 1, True, None),                              # two tiles
    ((3, 4, 3, 3), (9, 4, 2, 2), (2, 1), (1, 0, 0, 1), (1, 1), 1, True, None),               # 2-D
]


def conv_case(case, seed):
    xs, ws, s, p, d, g, has_b, act = case
    rng = np.random.default_rng(seed)
    x, w = rnd(rng, *xs), rnd(rng, *ws, scale=0.5)
    b = rnd(rng, ws[0]) if has_b else None
    exact = clip64(conv64(x, w, b, s, p, d, g), act)
    S = conv64(np.abs(x), np.abs(w), None if b is None else np.abs(b), s, p, d, g)
    attrs = dict(kernel_shape=list(ws[2:]), strides=list(s), pads=list(p), dilations=list(d), group=g)
    sc = planned("Conv", [xs, ws] + ([ws[:1]] if has_b else []), exact.shape, attrs)
    if act:
        attrs.update(act_min=float(act[0]), act_max=float(act[1]))
    art, feeds = make_node("Conv", [(x, False), (w, True)] + ([(b, True)] if has_b else []),
                           [("float32", exact.shape)], attrs, scratch=sc)
    K = int(np.prod(ws[1:]))
    return art, feeds, exact, (K + 1) * U * S, "conv"


GEMM_CASES = [
    # M, K, N, transA, transB, alpha, beta, C shape ("none" = absent), act
    (3, 5, 4, 0, 0, 1.0, 1.0, (4,), None),
    (13, 37, 21, 1, 0, 0.5, 2.0, (13, 1), (0.0, np.inf)),    # transA, C a column
    (7, 33, 6, 0, 1, 1.0, 0.5, (1, 6), None),                # transB, K % 4 = 1
    (1, 1000, 37, 0, 1, 1.0, 1.0, (37,), None),              # matrix-vector (a classifier)
    (2, 17, 9, 0, 1, 1.25, 1.0, (2, 9), (-1.0, 1.0)),
    (5, 3, 17, 0, 1, 1.0, 1.0, (), None),                    # C a scalar, K < 4
    (1, 64, 100, 0, 0, 1.0, 1.0, "none", None),
    (20, 9, 35, 0, 0, 2.0, 0.0, (20, 35), None),             # beta 0: C unread
    (61, 300, 150, 0, 0, 1.0, 1.0, (150,), (0.0, np.inf)),   # B packed, chunks of 208 columns
    (50, 37, 21, 1, 0, 1.0, 1.0, "none", None),              # transA, 50 rows
    (9, 16, 7, 0, 0, -1.0, -0.5, (9, 7), None),
    (6, 4, 3, 0, 1, 1.0, 1.0, (1,), None),
]


def gemm_case(case):
    M, K, N, ta, tb, alpha, beta, cs, act = case
    rng = np.random.default_rng(M * K + N)
    a = rnd(rng, *((K, M) if ta else (M, K)))
    b = rnd(rng, *((N, K) if tb else (K, N)))
    c = None if cs == "none" else rnd(rng, *cs)
    A, B = (a.T if ta else a).astype(np.float64), (b.T if tb else b).astype(np.float64)
    exact = alpha * (A @ B)
    S = abs(alpha) * (np.abs(A) @ np.abs(B))
    if c is not None and beta != 0.0:
        exact = exact + beta * np.broadcast_to(c.astype(np.float64), exact.shape)
        S = S + abs(beta) * np.abs(np.broadcast_to(c.astype(np.float64), exact.shape))
    attrs = dict(transA=ta, transB=tb, alpha=alpha, beta=beta)
    sc = planned("Gemm", [a.shape, b.shape] + ([] if c is None else [c.shape]), exact.shape, attrs)
    if act:
        attrs.update(act_min=float(act[0]), act_max=float(act[1]))
    art, feeds = make_node("Gemm", [(a, False), (b, True)] + ([] if c is None else [(c, True)]),
                           [("float32", exact.shape)], attrs, scratch=sc)
    return art, feeds, clip64(exact, act), (K + 3) * U * S, "gemm"


MATMUL_CASES = [
    # A shape, B shape, B constant
    ((3, 4), (4, 5), True),
    ((2, 3, 7, 19), (19, 33), True),         # batched A, constant B
    ((2, 1, 3, 4), (5, 4, 2), True),         # broadcast batch axes
    ((4,), (4, 17), True),                   # 1-D A
    ((2, 3, 37), (37,), True),               # 1-D B: N = 1, the dot-product tile
    ((9,), (9,), True),
    ((1, 3, 17, 8), (1, 3, 8, 17), False),   # attention: both activations
    ((3, 1, 2, 9), (1, 4, 9, 3), False),
    ((2, 50, 300), (300, 150), True),        # B packed
    ((1, 2, 49, 40), (1, 2, 40, 131), False),
]


def matmul_case(case, act=(-2.0, 2.5)):
    sa, sb, const_b = case
    rng = np.random.default_rng(len(sa) * 10 + sb[-1])
    a, b = rnd(rng, *sa), rnd(rng, *sb)
    exact = np.matmul(a.astype(np.float64), b.astype(np.float64))
    S = np.matmul(np.abs(a).astype(np.float64), np.abs(b).astype(np.float64))
    sc = planned("MatMul", [a.shape, b.shape], exact.shape, {})
    art, feeds = make_node("MatMul", [(a, False), (b, const_b)], [("float32", exact.shape)],
                           dict(act_min=act[0], act_max=act[1]), scratch=sc)
    return art, feeds, clip64(exact, act), (sa[-1] + 1) * U * S, "matmul"


def all_cases():
    cases = [conv_case(c, 100 * k + 7) for k, c in enumerate(CONV_CASES)]
    cases += [gemm_case(c) for c in GEMM_CASES]
    cases += [matmul_case(c) for c in MATMUL_CASES]
    return cases


# -- running them -------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def arm64(tmp_path_factory):
    return build_runner(tmp_path_factory.mktemp("neon_f32_build"), "aarch64")


@pytest.fixture(scope="module")
def written(tmp_path_factory):
    return write_cases(tmp_path_factory.mktemp("neon_f32_cases"), all_cases())


def write_cases(d, cases):
    """Each case's artifact and inputs as files in d, and the runner's input lines:
    (d, lines, cases) for run_cases (a case is (artifact, feeds, an array of the output's shape, ...))."""
    lines = []
    for k, (art, feeds, *_rest) in enumerate(cases):
        (d / f"m{k}.dse").write_bytes(art.to_bytes())
        ins = []
        for i, f in enumerate(feeds):
            (d / f"m{k}.in{i}").write_bytes(np.ascontiguousarray(f).tobytes())
            ins.append(str(d / f"m{k}.in{i}"))
        lines.append(" ".join([str(d / f"m{k}.dse"), str(d / f"m{k}.out"), *ins]))
    return d, lines, cases


def run_cases(exe, written, *args, cpu="max"):
    """(outputs, kernel names) of every case run by the aarch64 runner with args (qemu -cpu cpu)."""
    d, lines, cases = written
    for k in range(len(cases)):
        (d / f"m{k}.out").unlink(missing_ok=True)
    r = subprocess.run([QEMU64, "-cpu", cpu, str(exe), *args], input="\n".join(lines) + "\n", capture_output=True,
                       text=True, timeout=600)
    assert r.returncode == 0, r.stderr
    kernels = [ln.split()[0] for ln in r.stdout.splitlines()]
    assert len(kernels) == len(cases)
    outs = [np.frombuffer((d / f"m{k}.out").read_bytes(), np.float32).reshape(c[2].shape) for k, c in enumerate(cases)]
    return outs, kernels


@pytest.fixture(scope="module")
def results(arm64, written):
    return run_cases(arm64, written), run_cases(arm64, written, "-ref")


def test_neon_f32_chosen_and_within_tolerance(results, written):
    """Every case runs its NEON float kernel, within 2 (K + 1) 2^-24 S of the float64 oracle."""
    (outs, kernels), _ = results
    bad = []
    for k, (o, kern, case) in enumerate(zip(outs, kernels, written[2])):
        exact, scale, stem = case[2], case[3], case[4]
        if kern != f"dse_f32_{stem}__neon":
            bad.append(f"case {k}: {stem} ran {kern}")
            continue
        err = np.abs(o.astype(np.float64) - exact)
        if (err > 2 * scale).any():
            bad.append(f"case {k} ({stem}): {(err > 2 * scale).sum()} elements off, max error {err.max():.3g}")
    assert not bad, "\n".join(bad)


def test_neon_f32_against_ref(results, written):
    """-ref (DSE_LOAD_REF_KERNELS) runs the REF kernels; NEON is within 4 (K + 1) 2^-24 S of them
    (and the clamps hold exactly)."""
    (outs, _), (refs, rkernels) = results
    for k, (o, r, rk, case) in enumerate(zip(outs, refs, rkernels, written[2])):
        assert rk == f"dse_f32_{case[4]}__ref", (k, rk)
        err = np.abs(o.astype(np.float64) - r.astype(np.float64))
        assert (err <= 4 * case[3]).all(), f"case {k}: max error {err.max():.3g} against REF"


def test_neon_f32_threads_same_bytes(arm64, written, results):
    """3 threads give 1 thread's bytes (each output element is computed by one part in one order)."""
    (outs, _), _ = results
    touts, _ = run_cases(arm64, written, "-threads", "3")
    for k, (a, b) in enumerate(zip(outs, touts)):
        assert a.tobytes() == b.tobytes(), f"case {k}: 3 threads give other bytes"


def test_neon_f32_same_bytes_as_avx2(results, written, tmp_path_factory):
    """The NEON and the AVX2 float kernels do the same arithmetic per element (an FMA chain in
    REF's k order, padding taps as 0 * w; the dot-product tiles' 8 partial sums and their
    pairwise sum; REF's epilogue): on this host's AVX2 build, every case gives the NEON bytes."""
    if not AVX2:
        pytest.skip("the host has no AVX2+FMA")
    L = _make(tmp_path_factory, "dse_avx2_build")
    (outs, _), _ = results
    bad = []
    for k, (o, case) in enumerate(zip(outs, written[2])):
        (h,), ks = run_host(L, case[0], case[1])
        if ks[0] == "dse_f32_conv_wino__avx2":   # x86's Winograd variant (other arithmetic): the direct one
            (h,), ks = run_host(L, _direct_scratch_only(case[0]), case[1])
        if ks[0] != f"dse_f32_{case[4]}__avx2" or h.tobytes() != o.tobytes():
            bad.append(f"case {k}: {ks[0]}, {int((h.view(np.uint32) != o.view(np.uint32)).sum())} elements differ")
    assert not bad, "\n".join(bad)


def _direct_scratch_only(art):
    """A one-node Conv artifact with only the direct float Conv's scratch planned (as exported
    before the AVX2 Winograd variant), so the host runs the direct AVX2 kernel."""
    import dataclasses
    n = art.nodes[0]
    attrs = {k: (list(v) if isinstance(v, tuple) else v) for k, v in n.attrs
             if k in ("kernel_shape", "strides", "pads", "dilations", "group")}
    sc = planned("Conv", [art.tensors[i].shape for i in n.inputs if i >= 0], art.tensors[n.outputs[0]].shape, attrs,
                 direct=True)
    return dataclasses.replace(art, scratch_size=sc, arena_size=max(art.scratch_offset + -(-sc // 64) * 64, 64))


def _one(exe, tmp_path, art, feeds, *args):
    model, out = tmp_path / "one.dse", tmp_path / "one.out"
    model.write_bytes(art.to_bytes())
    ins = []
    for i, f in enumerate(feeds):
        (tmp_path / f"one.in{i}").write_bytes(np.ascontiguousarray(f).tobytes())
        ins.append(str(tmp_path / f"one.in{i}"))
    r = subprocess.run([QEMU64, "-cpu", "max", str(exe), *args], input=" ".join([str(model), str(out), *ins]) + "\n",
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    return np.frombuffer(out.read_bytes(), np.float32), r.stdout.split()[0]


def test_neon_f32_left_to_ref(arm64, tmp_path):
    """What the NEON kernels do not take runs REF: float16 weights (Conv) and B (Gemm, MatMul),
    Gemm with transA and transB, and a general conv whose artifact planned no scratch."""
    rng = np.random.default_rng(9)
    x, w = rnd(rng, 1, 3, 9, 9), rnd(rng, 4, 3, 3, 3)
    attrs = dict(kernel_shape=[3, 3], strides=[1, 1], pads=[1, 1, 1, 1], dilations=[1, 1], group=1)
    want = conv64(x, w, None, [1, 1], [1, 1, 1, 1], [1, 1], 1)
    sc = planned("Conv", [x.shape, w.shape], want.shape, attrs)
    for wt, scratch in ((w.astype(np.float16), sc), (w, 0)):
        art, feeds = make_node("Conv", [(x, False), (wt, True)], [("float32", want.shape)], attrs, scratch=scratch)
        o, kern = _one(arm64, tmp_path, art, feeds)
        assert kern == "dse_f32_conv__ref"
        np.testing.assert_allclose(o.reshape(want.shape), conv64(x, wt.astype(np.float32), None, [1, 1], [1, 1, 1, 1],
                                                                 [1, 1], 1), rtol=1e-5, atol=1e-5)
    a, b = rnd(rng, 5, 3), rnd(rng, 4, 5)
    for bb, ga in ((b, dict(transA=1, transB=1, alpha=1.0, beta=1.0)),
                   (b.T.astype(np.float16), dict(transA=1, transB=0, alpha=1.0, beta=1.0))):
        art, feeds = make_node("Gemm", [(a, False), (bb, True)], [("float32", (3, 4))], ga)
        o, kern = _one(arm64, tmp_path, art, feeds)
        assert kern == "dse_f32_gemm__ref"
        B = bb.astype(np.float64).T if ga["transB"] else bb.astype(np.float64)
        np.testing.assert_allclose(o.reshape(3, 4), a.T.astype(np.float64) @ B, rtol=1e-5, atol=1e-5)
    m1, m2 = rnd(rng, 2, 6), rnd(rng, 6, 3).astype(np.float16)
    art, feeds = make_node("MatMul", [(m1, False), (m2, True)], [("float32", (2, 3))], {})
    o, kern = _one(arm64, tmp_path, art, feeds)
    assert kern == "dse_f32_matmul__ref"


@pytest.mark.slow   # a second whole aarch64 build of the library (about 30 s cold)
def test_neon_f32_ref_float_build(tmp_path, written):
    """A build with -DDSE_REF_FLOAT leaves the NEON float kernels out: REF runs every case (the
    int8 NEON kernels stay; tests/runtime/test_kernels_neon.py)."""
    exe = build_runner(tmp_path, "aarch64", ref_float=True)   # test_kernels_neon_ew's build: shared objects
    _, kernels = run_cases(exe, written)
    assert all(k.endswith("__ref") for k in kernels), sorted(set(kernels))
