"""A float Conv with a fused activation function (INT `act_fn`, docs/kernels.md "Fused activation";
the exporter's `_fuse_act_fn`): the one node gives exactly the bytes of the Conv followed by the
separate float32 HardSwish node, on every kernel and path that may take a float Conv.

Each case is built twice over the same weights, inputs and planned scratch: Conv -> HardSwish (two
nodes) and Conv{act_fn = 1} (one node). Both run in one library with the same kernel choice (the
Conv's arithmetic is the same, the HardSwish kernels are exact: REF's bytes), so the outputs must be
identical bytes: with the optimised kernels (AVX2: GEMM, DW8, DW, BAND1, BANDS, IM2COL and
Winograd), with the REF kernels (DSE_LOAD_REF_KERNELS), on 1 and 3 threads, for the fp16-arithmetic
REF kernel, and under qemu-aarch64 for the NEON kernels (their REF too). The inputs hold values
around the HardSwish knees (-3, 3), a NaN and an infinity (the fused output's NaN is canonical,
as the separate node writes it). A kernel that does not apply the function must refuse the node:
the loader never ignores `act_fn`.
"""
from __future__ import annotations

import subprocess

import numpy as np
import pytest

from dsedge.artifact import Artifact, NodeRec, TensorRec, op_id

from .test_kernels_f32_avx2 import AVX2, CONV_CASES, REF_KERNELS, _wino_plan_of, lib, planned_scratch, rnd, run  # noqa: F401
from .test_kernels_f32_nn import make_node, ref

HSWISH = 1   # DSE_ACT_FN_HARDSWISH


def conv_pair(case, seed, special=True, w16=False, fp16_arith=False, direct=False):
    """(two-node artifact, fused artifact, feeds); direct: only the direct kernel's scratch planned
    (the Winograd variant leaves the node to dse_f32_conv__avx2)."""
    xs, ws, s, p, d, g, has_b, act = case
    rng = np.random.default_rng(seed)
    x, w = rnd(rng, *xs, scale=3.0), rnd(rng, *ws, scale=0.5)
    if special:   # a NaN and an infinity (each reaches the outputs whose window holds it)
        x.reshape(-1)[x.size // 3] = np.nan
        x.reshape(-1)[2 * x.size // 3] = np.inf
    b = rnd(rng, ws[0]) if has_b else None
    attrs = dict(kernel_shape=list(ws[2:]), strides=list(s), pads=list(p), dilations=list(d), group=g)
    (r,) = ref("Conv", x, w, b, **attrs)
    sc = planned_scratch("Conv", [xs, ws] + ([ws[:1]] if has_b else []), r.shape, attrs, direct=direct)
    cattrs = dict(attrs)
    if act:
        cattrs.update(act_min=float(act[0]), act_max=float(act[1]))
    if fp16_arith:
        cattrs["fp16_arith"] = 1
    wc = w.astype(np.float16) if w16 else w
    bc = None if b is None else (b.astype(np.float16) if w16 else b)
    ins = [(x, False), (wc, True)] + ([(bc, True)] if has_b else [])
    fused, feeds = make_node("Conv", ins, [("float32", r.shape)], {**cattrs, "act_fn": HSWISH}, scratch=sc)
    single, _ = make_node("Conv", ins, [("float32", r.shape)], cattrs, scratch=sc)
    pair = _append_unary(single, "HardSwish")
    return pair, fused, feeds


def _append_unary(art: Artifact, op: str) -> Artifact:
    """The artifact with a float32 unary node after its only node, its output the new graph output
    (placed after the other tensors; the scratch region moved after it)."""
    (node,) = art.nodes
    (yi,) = node.outputs
    y = art.tensors[yi]
    off = art.scratch_offset
    t = TensorRec.arena("z", "float32", y.shape, off)
    off += -(-max(t.nbytes, 1) // 64) * 64
    tensors = art.tensors + (t,)
    zi = len(tensors) - 1
    nodes = (node, NodeRec(op_id(op), (yi,), (zi,), {}, name=op.lower()))
    return Artifact(tensors=tensors, nodes=nodes, inputs=art.inputs, outputs=(zi,),
                    arena_size=off + -(-art.scratch_size // 64) * 64, scratch_offset=off, scratch_size=art.scratch_size)


def _same(a, b, what):
    a, b = a.view(np.uint32), b.view(np.uint32)
    assert a.shape == b.shape
    bad = a != b
    assert not bad.any(), f"{what}: {int(bad.sum())} of {a.size} elements differ"


def _wino(case):
    xs, ws, s, p, d, g = case[:6]
    (r,) = ref("Conv", np.zeros(xs, np.float32), np.zeros(ws, np.float32), None, kernel_shape=list(ws[2:]),
               strides=list(s), pads=list(p), dilations=list(d), group=g)
    return bool(_wino_plan_of(xs, ws, s, d, g, r.shape))


def _cases():
    """Every CONV_CASES path of the direct kernel (a case the Winograd variant would take planned
    with the direct kernel's scratch only), then the Winograd variant."""
    out = [pytest.param(c, False, id=f"conv{k}") for k, c in enumerate(CONV_CASES)]
    out += [pytest.param(c, True, id=f"wino{k}") for k, c in enumerate(WINO_CASES + [c for c in CONV_CASES if _wino(c)])]
    return out


# 3x3 stride-1 convs the Winograd variant takes (planned with its scratch)
WINO_CASES = [
    ((1, 16, 20, 22), (24, 16, 3, 3), (1, 1), (1, 1, 1, 1), (1, 1), 1, True, None),
    ((2, 8, 17, 15), (12, 8, 3, 3), (1, 1), (0, 1, 1, 0), (1, 1), 1, True, (0.0, 6.0)),
    ((1, 32, 14, 14), (8, 32, 3, 3), (1, 1), (1, 1, 1, 1), (1, 1), 1, False, None),
]


@pytest.mark.parametrize("case,wino", _cases())
def test_conv_hardswish_fused_same_bytes(lib, case, wino):   # noqa: F811
    assert _wino(case) or not wino
    pair, fused, feeds = conv_pair(case, 31 * case[1][0] + len(case[0]), direct=not wino)
    out_p, kp = run(lib, pair, feeds)
    out_f, kf = run(lib, fused, feeds)
    assert len(kf) == 1 and kp[0] == kf[0], (kp, kf)
    if AVX2:
        assert kf[0] == ("dse_f32_conv_wino__avx2" if wino else "dse_f32_conv__avx2"), kf
    _same(out_f[0], out_p[0], "optimised")
    nan = np.isnan(out_f[0])
    assert (out_f[0].view(np.uint32)[nan] == 0x7FC00000).all()   # (a strided conv may skip the NaN)
    if np.prod(case[0][2:]) > 1:   # (on a 1x1 image every output reads the NaN or the infinity)
        assert np.isfinite(out_f[0]).sum() > out_f[0].size // 2
    for t in (3,):
        out_t, _ = run(lib, fused, feeds, threads=t)
        _same(out_t[0], out_f[0], f"{t} threads")
    rp, rkp = run(lib, pair, feeds, flags=REF_KERNELS)
    rf, rkf = run(lib, fused, feeds, flags=REF_KERNELS)
    assert rkf == ["dse_f32_conv__ref"], rkf
    _same(rf[0], rp[0], "REF")


@pytest.mark.parametrize("k", [0, 3, 8, 22])
def test_conv_hardswish_fused_fp16_arith(lib, k):   # noqa: F811
    """fp16 arithmetic (binary16 weights, INT fp16_arith): REF's binary16 kernel applies the function
    to its float32 result, as the separate float32 node does; on x86 the optimised float32 kernels
    run it widened (the same pair of bytes either way)."""
    pair, fused, feeds = conv_pair(CONV_CASES[k], 77 + k, w16=True, fp16_arith=True)
    for flags in (0, REF_KERNELS):
        out_p, kp = run(lib, pair, feeds, flags=flags)
        out_f, kf = run(lib, fused, feeds, flags=flags)
        assert kp[0] == kf[0]
        if flags:
            assert kf == ["dse_f32_conv_fp16__ref"], kf
        _same(out_f[0], out_p[0], f"flags {flags}")


def test_act_fn_refused_where_not_applied(lib):   # noqa: F811
    """A kernel that does not apply the function refuses the node (the loader tries the next one; the
    message names act_fn): a Gemm, and an unknown code on a Conv."""
    import ctypes as C
    from dsedge.runtime import _Error
    rng = np.random.default_rng(1)
    a, b = rnd(rng, 3, 5), rnd(rng, 5, 4)
    gemm, _ = make_node("Gemm", [(a, False), (b, True)], [("float32", (3, 4))],
                        dict(transA=0, transB=0, alpha=1.0, beta=1.0, act_fn=HSWISH))
    x, w = rnd(rng, 1, 2, 5, 5), rnd(rng, 3, 2, 1, 1)
    conv, _ = make_node("Conv", [(x, False), (w, True)], [("float32", (1, 3, 5, 5))],
                        dict(kernel_shape=[1, 1], strides=[1, 1], pads=[0, 0, 0, 0], dilations=[1, 1], group=1, act_fn=7),
                        scratch=planned_scratch("Conv", [x.shape, w.shape], (1, 3, 5, 5),
                                                dict(kernel_shape=[1, 1], strides=[1, 1], pads=[0, 0, 0, 0],
                                                     dilations=[1, 1], group=1)))
    for art in (gemm, conv):
        for flags in (0, REF_KERNELS):
            data = art.to_bytes()
            raw = np.zeros(len(data) + 64, np.uint8)
            start = (-raw.ctypes.data) % 64
            raw[start:start + len(data)] = np.frombuffer(data, np.uint8)
            m, err = C.c_void_p(), _Error()
            st = lib.dse_model_load_ex(raw.ctypes.data + start, len(data), flags, C.byref(m), C.byref(err))
            if st == 0:
                lib.dse_model_free(m)
            assert st != 0 and "act_fn" in err.message.decode(), err.message.decode()


# -- NEON under qemu-aarch64 ----------------------------------------------------------------------

NEON_CASES = [0, 3, 5, 8, 9, 10, 13, 18, 21, 22]   # GEMM, BAND1-like, strided, DW (stride 1, 2), dilated, 1-D, 3-D


def test_neon_conv_hardswish_fused_same_bytes(tmp_path_factory):
    from .test_kernels_neon import QEMU64, build_runner
    from .test_kernels_neon_f32 import run_cases, write_cases
    if QEMU64 is None:
        pytest.skip("qemu-aarch64 not installed (apt-get install qemu-user)")
    exe = build_runner(tmp_path_factory.mktemp("act_fn_neon_build"), "aarch64")
    cases = []
    for k in NEON_CASES + [None]:
        c = CONV_CASES[k] if k is not None else WINO_CASES[0]
        pair, fused, feeds = conv_pair(c, 5 + (k or 0))
        shape = np.zeros(pair.tensors[pair.outputs[0]].shape, np.float32)
        cases += [(pair, feeds, shape), (fused, feeds, shape)]
    written = write_cases(tmp_path_factory.mktemp("act_fn_neon_cases"), cases)
    for args, stem in (((), "dse_f32_conv__neon"), (("-ref",), "dse_f32_conv__ref"), (("-threads", "3"), "dse_f32_conv__neon")):
        outs, kernels = run_cases(exe, written, *args)
        for i in range(0, len(cases), 2):
            assert kernels[i] == kernels[i + 1] == stem, (args, kernels[i:i + 2])
            _same(outs[i + 1], outs[i], f"NEON {args} case {i // 2}")
            assert (outs[i + 1].view(np.uint32)[np.isnan(outs[i + 1])] == 0x7FC00000).all()
