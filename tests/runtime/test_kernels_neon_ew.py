"""The arm64 NEON float32 elementwise kernels (runtimes/c/kernels/neon/{unary,binary,softmax}.c,
listed in src/kernels_arm64.inc) under qemu-aarch64, against the REF kernels of the same build (the
runner's -ref), the host's AVX2 build and a float64 oracle.

  * exact kernels (Relu, LeakyRelu, HardSigmoid, HardSwish, Neg, Abs, Sqrt, Reciprocal, Clip, Add
    with its clamp, Sub, Mul, Div): REF's bytes, canonical NaN;
  * the Elementwise program (kernels/neon/elementwise.c; every step kind, in place, float and int8
    output): REF's bytes, the host AVX2 build's too;
  * polynomial kernels (Exp, Sigmoid, Tanh, Erf; src/vec_mathf.h, shared with AVX2) and Softmax,
    LogSoftmax (with that exp): the host AVX2 build's bytes on every case; Exp..Erf within the
    documented ulps of float64 over a sweep of every 4099th float32 bit pattern
    (test_kernels_f32_avx2.check_approx), Softmax within 2e-6 of the largest output of REF.
Inputs hold NaN, +-inf, +-0, subnormals, the largest floats; sizes 1, 7, 8, 9, 33, 1037 and 40000
(split over threads); broadcasting shapes; outputs planned over their input (in place). Every case
runs in one qemu process per configuration (runtimes/c/tests/run_cases.c, the helpers of
test_kernels_neon_f32.py): the NEON kernel must be chosen (REF for what its check leaves to REF),
with -ref the REF kernel, 3 threads and an ARMv8.0 core (cortex-a53) give the same bytes. A
-DDSE_REF_FLOAT build keeps the exact kernels and runs REF for the others.
"""
from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from dsedge.artifact import op_id
from dsedge.ops.fused import encode_float_program

from .test_kernels_f32_avx2 import (AVX2, APPROX_ULPS, BINARY_CASES, SOFTMAX_CASES, _make, _softmax_tol, _specials,
                                    check_approx, run as run_host, sweep_input)
from .test_kernels_f32_nn import make_node
from .test_kernels_neon import QEMU64, build_runner
from .test_kernels_neon_f32 import run_cases, write_cases

pytestmark = pytest.mark.skipif(QEMU64 is None, reason="qemu-aarch64 not installed (apt-get install qemu-user)")

EXACT_UNARY = [("Relu", {}), ("LeakyRelu", dict(alpha=0.1)), ("HardSigmoid", dict(alpha=0.3, beta=0.4)),
               ("HardSwish", {}), ("Neg", {}), ("Abs", {}), ("Sqrt", {}), ("Reciprocal", {})]
SIZES = [1, 7, 8, 9, 33, 1037]
BIG = 40000   # > 2 parts of 16384: split over 3 threads
CLIP_BOUNDS = [(-1.0, 2.0), (None, 0.5), (0.0, None), (None, None), (np.nan, 1.0), (3.0, 1.0), (-0.0, 0.0)]


def _v(k):
    return ("v", k)


def _c(j):
    return ("c", j)


# Elementwise programs (kernels/neon/elementwise.c): every step kind, HardSwish written as arithmetic
EW_CONSTS = (np.float32(3), np.float32(0), np.float32(6), np.float32(-0.5), np.float32(0.25))
EW_PROGRAMS = [
    ((("Add", (_v(0), _c(0)), {}), ("Clip", (_v(1), _c(1), _c(2)), {}), ("Mul", (_v(0), _v(2)), {}),
      ("Div", (_v(3), _c(2)), {})), 4),
    ((("Sub", (_c(3), _v(0)), {}), ("Max", (_v(1), _v(0)), {}), ("Min", (_v(2), _c(4)), {}), ("Neg", (_v(3),), {}),
      ("Abs", (_v(0),), {}), ("Sqrt", (_v(5),), {}), ("Reciprocal", (_v(6),), {}), ("Relu", (_v(0),), {}),
      ("HardSwish", (_v(0),), {}), ("LeakyRelu", (_v(0),), {"alpha": 0.1}),
      ("HardSigmoid", (_v(0),), {"alpha": 0.3, "beta": 0.6}), ("Floor", (_v(0),), {}), ("Sign", (_v(0),), {}),
      ("Add", (_v(4), _v(8)), {}), ("Add", (_v(14), _v(11)), {}), ("Mul", (_v(15), _v(12)), {})), 16),
    ((("Clip", (_v(0), _c(1), None), {}), ("Max", (_c(1), _v(1)), {}), ("Min", (_v(0), _c(1)), {}),
      ("Sub", (_v(2), _v(3)), {})), 4),
]


def _dsedge(art):
    """make_node's artifact (made for a placeholder op: it knows the standard domain only) as an Elementwise node."""
    n = art.nodes[0]
    return dataclasses.replace(art, nodes=(dataclasses.replace(n, op=op_id("Elementwise", "dsedge")),))


def _kern(case, isa):
    """The kernel a case's node runs on `isa` (the int8 Elementwise's name for kind ewprog_i8)."""
    return f"dse_{'i8' if case[4] == 'ewprog_i8' else 'f32'}_{case[3]}__{isa}"


def _case(art, feeds, shape, stem, kind, x=None, op=None):
    """(artifact, feeds, array of the output's shape, kernel stem, 'exact' | 'poly' | program want, x, op)"""
    return art, feeds, np.empty(shape, np.float32), stem, kind, x, op


def _in_place(art):
    """The one-node artifact with its output planned at its first input's bytes (same shape)."""
    n = art.nodes[0]
    t = list(art.tensors)
    t[n.outputs[0]] = dataclasses.replace(t[n.outputs[0]], offset=t[n.inputs[0]].offset)
    end = max(x.offset + x.nbytes for x in t if x.storage == t[n.outputs[0]].storage)
    size = max(64, -(-end // 64) * 64)
    return dataclasses.replace(art, tensors=tuple(t), arena_size=size, scratch_offset=0)


def _unary(op, attrs, x, place=False):
    art, feeds = make_node(op, [(x, False)], [("float32", x.shape)], attrs)
    return (_in_place(art) if place else art), feeds


def all_cases():
    cases = []
    for op, attrs in EXACT_UNARY:
        for n in SIZES + [BIG]:
            x = _specials(n, np.random.default_rng(n)).reshape(1, n)
            cases.append(_case(*_unary(op, attrs, x), x.shape, op.lower(), "exact"))
        x = _specials(45, np.random.default_rng(5)).reshape(5, 9)
        cases.append(_case(*_unary(op, attrs, x, place=True), x.shape, op.lower(), "exact"))
    for k, bounds in enumerate(CLIP_BOUNDS):
        n = (BIG, 45, 33, 1037, 19, 21, 64)[k]   # every special value (the first 19) in each
        x = _specials(n, np.random.default_rng(1)).reshape(1, n)
        ins = [(x, False)] + [None if v is None else (np.array(v, np.float32), True) for v in bounds]
        art, feeds = make_node("Clip", ins, [("float32", x.shape)], {})
        cases.append(_case(_in_place(art) if k == 1 else art, feeds, x.shape, "clip", "exact"))
    for op in APPROX_ULPS:
        x = sweep_input(op)
        cases.append(_case(*_unary(op, {}, x), x.shape, op.lower(), "poly", x, op))
        for n in SIZES[:-1]:
            x = _specials(n, np.random.default_rng(n + 100), scale=20.0).reshape(1, n)
            cases.append(_case(*_unary(op, {}, x, place=n == 9), x.shape, op.lower(), "poly", x, op))
    for op in ["Add", "Sub", "Mul", "Div"]:
        for sa, sb in BINARY_CASES + [((2, BIG), (BIG,)), ((3, 45), (45,))]:
            a = _specials(int(np.prod(sa)), np.random.default_rng(len(sa) + len(sb))).reshape(sa)
            b = _specials(int(np.prod(sb)), np.random.default_rng(7)).reshape(sb)[..., ::-1].copy() if sb else \
                np.float32(0.75)
            b = np.asarray(b, np.float32)
            y = np.broadcast_shapes(a.shape, b.shape)
            attrs = dict(act_min=-1.5, act_max=np.inf) if op == "Add" and sa != (7,) else {}
            art, feeds = make_node(op, [(a, False), (b, len(sb) < 2)], [("float32", y)], attrs)
            if sa == (3, 45):
                art = _in_place(art)
            cases.append(_case(art, feeds, y, op.lower(), "exact"))
    for prog, result in EW_PROGRAMS:   # exact: REF's bytes
        for k in range(1, result + 1):   # every step as the result (whole blocks and a short one), the last
            enc = encode_float_program({"program": prog, "consts": EW_CONSTS, "result": k})   # also long and in place
            for n in ((200,) if k < result else (7, 128, 1037, BIG)):
                x = _specials(n, np.random.default_rng(n + k), scale=6.0).reshape(1, n)
                art, feeds = make_node("Relu", [(x, False)], [("float32", x.shape)], enc)
                art = _dsedge(art)
                cases.append(_case(_in_place(art) if n == 1037 else art, feeds, x.shape, "elementwise", "exact"))
        x = _specials(1040, np.random.default_rng(3), scale=6.0).reshape(1, 1040)
        enc = encode_float_program({"program": prog, "consts": EW_CONSTS, "result": result})
        art, feeds = make_node("Relu", [(x, False)], [("int8", x.shape)], dict(enc, q_scale=0.03, q_zp=-7))
        cases.append(_case(_dsedge(art), feeds, (1, 260), "elementwise", "ewprog_i8"))   # 1040 int8 = 260 floats
    for op in ["Softmax", "LogSoftmax"]:
        for shape, axis, c2 in SOFTMAX_CASES + [((64, 1000), 1, 0), ((2, 37, 20), 1, 0), ((3, 2, 9), 2, 0)]:
            x = (np.random.default_rng(len(shape)).standard_normal(shape) * 6).astype(np.float32)
            x.reshape(-1)[::7] = -np.inf   # exp(-inf - max) = 0
            x.reshape(-1)[3::11] *= 1e4    # large magnitudes
            art, feeds = make_node(op, [(x, False)], [("float32", x.shape)], dict(axis=axis, coerce_2d=c2))
            cases.append(_case(art, feeds, x.shape, op.lower(), "softmax"))
        x = np.random.default_rng(0).standard_normal((2, 5, 3)).astype(np.float32)   # lines strided by 3: REF
        art, feeds = make_node(op, [(x, False)], [("float32", x.shape)], dict(axis=1, coerce_2d=0))
        cases.append(_case(art, feeds, x.shape, op.lower(), "ref"))
    return cases


# -- running them -------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def arm64(tmp_path_factory):
    return build_runner(tmp_path_factory.mktemp("neon_ew_build"), "aarch64")


@pytest.fixture(scope="module")
def written(tmp_path_factory):
    return write_cases(tmp_path_factory.mktemp("neon_ew_cases"), all_cases())


@pytest.fixture(scope="module")
def results(arm64, written):
    return run_cases(arm64, written), run_cases(arm64, written, "-ref")


def _differ(a, b):
    return int((a.view(np.uint32) != b.view(np.uint32)).sum())


def test_neon_ew_chosen_and_exact(results, written):
    """Every case runs its NEON kernel (-ref: the REF one; a Softmax with lines strided by 3: REF in
    both); the exact kernels give REF's bytes with NaN canonical; Softmax is within 2e-6 of REF."""
    (outs, kernels), (refs, rkernels) = results
    bad = []
    for k, (o, r, kern, rk, case) in enumerate(zip(outs, refs, kernels, rkernels, written[2])):
        stem, kind = case[3], case[4]
        if kern != _kern(case, 'ref' if kind == 'ref' else 'neon') or rk != _kern(case, "ref"):
            bad.append(f"case {k}: {stem} ran {kern} / {rk}")
        elif kind in ("exact", "ewprog_i8"):
            if o.tobytes() != r.tobytes():
                bad.append(f"case {k} ({stem}): {_differ(o, r)} elements differ from REF")
            if kind == "exact" and not (o.view(np.uint32)[np.isnan(o)] == 0x7FC00000).all():
                bad.append(f"case {k} ({stem}): NaN not canonical")
        elif kind == "softmax":   # NaN lines (a NaN, +inf or only -inf in them) canonical as REF's
            nan = np.isnan(r)
            if not (np.array_equal(np.isnan(o), nan) and (o.view(np.uint32)[nan] == 0x7FC00000).all()):
                bad.append(f"case {k} ({stem}): NaN outputs differ from REF's or are not canonical")
            elif not np.array_equal(np.isinf(o), np.isinf(r)) or (o[np.isinf(r)] != r[np.isinf(r)]).any():
                bad.append(f"case {k} ({stem}): infinities differ from REF's")   # LogSoftmax of -inf
            elif np.isfinite(r).any():
                _softmax_tol(r[np.isfinite(r)], o[np.isfinite(r)])
    assert not bad, "\n".join(bad)


def test_neon_ew_polynomials_within_ulps(results, written):
    """Exp, Sigmoid, Tanh, Erf on NEON: within the documented ulps of float64 (the same bounds as
    AVX2), NaN canonical, overflow to inf, the sign of zero kept by the odd functions."""
    pytest.importorskip("scipy")
    (outs, _), _ = results
    for o, case in zip(outs, written[2]):
        if case[4] == "poly":
            check_approx(case[6], case[5], o)


def test_neon_ew_same_bytes_as_avx2(results, written, tmp_path_factory):
    """The polynomial kernels of NEON and AVX2 are one template (src/vec_mathf.h) with the same
    operations, and Softmax sums in the same order: this host's AVX2 build gives the NEON bytes on
    every case (the exact kernels too)."""
    if not AVX2:
        pytest.skip("the host has no AVX2+FMA")
    L = _make(tmp_path_factory, "dse_avx2_build")
    (outs, _), _ = results
    bad = []
    for k, (o, case) in enumerate(zip(outs, written[2])):
        (h,), ks = run_host(L, case[0], case[1])
        if ks[0] != _kern(case, 'ref' if case[4] == 'ref' else 'avx2') or h.tobytes() != o.tobytes():
            bad.append(f"case {k}: {ks[0]}, {_differ(h, o)} elements differ")
    assert not bad, "\n".join(bad)


def test_neon_ew_threads_and_armv8_0_same_bytes(arm64, written, results):
    """3 threads give 1 thread's bytes (the 40000-element cases are split in parts), and an ARMv8.0
    core (qemu -cpu cortex-a53) runs the same NEON kernels with the same bytes."""
    (outs, kernels), _ = results
    touts, _ = run_cases(arm64, written, "-threads", "3")
    aouts, akernels = run_cases(arm64, written, cpu="cortex-a53")
    assert akernels == kernels
    for k, (a, b, c) in enumerate(zip(outs, touts, aouts)):
        assert a.tobytes() == b.tobytes(), f"case {k}: 3 threads give other bytes"
        assert a.tobytes() == c.tobytes(), f"case {k}: cortex-a53 gives other bytes"


@pytest.mark.slow   # a second whole aarch64 build of the library (about 30 s cold)
def test_neon_ew_ref_float_build(tmp_path, written, results):
    """-DDSE_REF_FLOAT: the exact NEON kernels stay (REF's bytes), the polynomial ones and Softmax
    are left out (REF runs them)."""
    exe = build_runner(tmp_path, "aarch64", ref_float=True)   # test_kernels_neon_f32's build: shared objects
    outs, kernels = run_cases(exe, written)
    _, (refs, _) = results
    for k, (o, r, kern, case) in enumerate(zip(outs, refs, kernels, written[2])):
        assert kern == _kern(case, 'neon' if case[4] in ('exact', 'ewprog_i8') else 'ref'), (k, kern)
        assert o.tobytes() == r.tobytes(), f"case {k}: not REF's bytes"
