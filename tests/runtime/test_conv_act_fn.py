"""A float Conv with a fused activation function (INT `act_fn`, docs/kernels.md "Fused activation";
the exporter's `_fuse_act_fn`): the one node gives exactly the bytes of the Conv followed by the
separate float32 nodes, HardSwish (1), SiLU (2: Sigmoid then Mul) or GELU (3: Div by sqrt 2, Erf, Add
1, Mul, Mul by 0.5), on every kernel and path that may take a float Conv.

Each case is built twice over the same weights, inputs and planned scratch: Conv -> HardSwish (or
Conv -> Sigmoid -> Mul, Mul's operands in either order) and Conv{act_fn} (one node). Both run in one
library with the same kernel choice (the Conv's arithmetic is the same; the HardSwish kernels are
exact, and SiLU's is the Sigmoid kernel the loader picks on that ISA: the vectorised one with the
optimised Conv kernels, mathf.c's with REF's), so the outputs must be identical bytes: with the
optimised kernels (AVX2: GEMM, DW8, DW, BAND1, BANDS, IM2COL and Winograd), with the REF kernels
(DSE_LOAD_REF_KERNELS), on 1 and 3 threads, for the fp16-arithmetic REF kernel, and under
qemu-aarch64 for the NEON kernels (their REF too). The inputs hold values around the HardSwish
knees (-3, 3), a NaN, an infinity and, for SiLU, magnitudes where the sigmoid saturates (the fused
output's NaN is canonical, as the separate node writes it). A kernel that does not apply the
function (with those bytes) must refuse the node: the loader never ignores `act_fn`.
"""
from __future__ import annotations

import subprocess

import numpy as np
import pytest

from dsedge.artifact import Artifact, NodeRec, TensorRec, op_id

from .test_kernels_f32_avx2 import AVX2, CONV_CASES, REF_KERNELS, _wino_plan_of, lib, planned_scratch, rnd, run  # noqa: F401
from .test_kernels_f32_nn import make_node, ref

HSWISH, SILU, GELU = 1, 2, 3   # DSE_ACT_FN_HARDSWISH, DSE_ACT_FN_SILU, DSE_ACT_FN_GELU
FNS = (HSWISH, SILU, GELU)


def conv_pair(case, seed, special=True, w16=False, fp16_arith=False, direct=False, fn=HSWISH):
    """(unfused artifact, fused artifact, feeds); direct: only the direct kernel's scratch planned
    (the Winograd variant leaves the node to dse_f32_conv__avx2). fn: the act_fn (SiLU: Mul(y, s)
    for an even seed, Mul(s, y) for an odd one)."""
    xs, ws, s, p, d, g, has_b, act = case
    rng = np.random.default_rng(seed)
    x, w = rnd(rng, *xs, scale=3.0), rnd(rng, *ws, scale=0.5)
    if fn in (SILU, GELU):   # every 11th input larger: sums where the sigmoid / erf saturates (exp's clamps at -104, 88.7)
        v = x.reshape(-1)
        v[::11] *= rng.choice(np.float32([3, 10, 30, 1e3]), v[::11].size)
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
    fused, feeds = make_node("Conv", ins, [("float32", r.shape)], {**cattrs, "act_fn": fn}, scratch=sc)
    single, _ = make_node("Conv", ins, [("float32", r.shape)], cattrs, scratch=sc)
    pair = _append_act(single, fn, swap=seed % 2 == 1)
    return pair, fused, feeds


def _append_act(art: Artifact, fn: int, swap: bool = False) -> Artifact:
    """The artifact with the separate float32 nodes of act_fn `fn` after its only node (HardSwish;
    SiLU: Sigmoid, then Mul(y, s), or Mul(s, y) with swap), their output the new graph output
    (placed after the other tensors; the scratch region moved after them)."""
    (node,) = art.nodes
    (yi,) = node.outputs
    y = art.tensors[yi]
    off = art.scratch_offset
    tensors, nodes = art.tensors, [node]
    if fn == GELU:   # y * (1 + erf(y / sqrt 2)) * 0.5 as PyTorch exports it (operands swapped with swap)
        c = {}
        for cname, v in (("sqrt2", np.sqrt(2.0)), ("one", 1.0), ("half", 0.5)):
            tensors += (TensorRec.const(cname, np.array(v, np.float32)),)
            c[cname] = len(tensors) - 1
        o = (lambda a, b: (b, a)) if swap else (lambda a, b: (a, b))
        prev = None
        for name, op, ins in (("d", "Div", lambda p: (yi, c["sqrt2"])), ("e", "Erf", lambda p: (p,)),
                              ("a", "Add", lambda p: o(p, c["one"])), ("m", "Mul", lambda p: o(yi, p)),
                              ("z", "Mul", lambda p: o(p, c["half"]))):
            t = TensorRec.arena(name, "float32", y.shape, off)
            off += -(-max(t.nbytes, 1) // 64) * 64
            tensors += (t,)
            nodes.append(NodeRec(op_id(op), ins(prev), (len(tensors) - 1,), {}, name=f"{op.lower()}_{name}"))
            prev = len(tensors) - 1
    for name, op in (() if fn == GELU else (("z", "HardSwish"),) if fn == HSWISH else (("s", "Sigmoid"), ("z", "Mul"))):
        t = TensorRec.arena(name, "float32", y.shape, off)
        off += -(-max(t.nbytes, 1) // 64) * 64
        tensors += (t,)
        ins = (yi,) if op != "Mul" else ((yi, len(tensors) - 2) if not swap else (len(tensors) - 2, yi))
        nodes.append(NodeRec(op_id(op), ins, (len(tensors) - 1,), {}, name=op.lower()))
    return Artifact(tensors=tensors, nodes=tuple(nodes), inputs=art.inputs, outputs=(len(tensors) - 1,),
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
    out += [pytest.param(c, False, id=f"dw3_{k}") for k, c in enumerate(DW3_ACT_CASES)]
    out += [pytest.param(c, True, id=f"wino{k}") for k, c in enumerate(WINO_CASES + [c for c in CONV_CASES if _wino(c)])]
    return out


# depthwise 3x3 convs of the DW3 path (kernels/avx2/dwconv.c: HardSwish in the tile's epilogue, SiLU over
# the plane after): rows of less than a vector, the row tail, stride 2, the row tiles' last one, a clamp
DW3_ACT_CASES = [
    ((2, 9, 7, 5), (9, 1, 3, 3), (1, 1), (1, 1, 1, 1), (1, 1), 9, True, None),
    ((1, 8, 19, 17), (8, 1, 3, 3), (1, 1), (0, 1, 2, 0), (1, 1), 8, True, (0.0, 6.0)),
    ((1, 3, 11, 56), (3, 1, 3, 3), (2, 2), (1, 1, 1, 1), (1, 1), 3, False, None),
    ((1, 9, 9, 13), (9, 1, 3, 3), (2, 1), (2, 0, 1, 1), (1, 1), 9, True, (0.0, 6.0)),
]

# 3x3 stride-1 convs the Winograd variant takes (planned with its scratch)
WINO_CASES = [
    ((1, 16, 20, 22), (24, 16, 3, 3), (1, 1), (1, 1, 1, 1), (1, 1), 1, True, None),
    ((2, 8, 17, 15), (12, 8, 3, 3), (1, 1), (0, 1, 1, 0), (1, 1), 1, True, (0.0, 6.0)),
    ((1, 32, 14, 14), (8, 32, 3, 3), (1, 1), (1, 1, 1, 1), (1, 1), 1, False, None),
    ((1, 64, 40, 37), (8, 64, 3, 3), (1, 1), (1, 1, 1, 1), (1, 1), 1, True, None),   # 2 blocks of tiles: rows split
    ((1, 1024, 6, 36), (4, 1024, 3, 3), (1, 1), (1, 1, 1, 1), (1, 1), 1, False, None),   # blocks of 16 tiles in a row of 18
]


def _load_status(lib, art, flags):   # noqa: F811
    """(status, message) of loading the artifact (the model freed)."""
    import ctypes as C
    from dsedge.runtime import _Error
    data = art.to_bytes()
    raw = np.zeros(len(data) + 64, np.uint8)
    start = (-raw.ctypes.data) % 64
    raw[start:start + len(data)] = np.frombuffer(data, np.uint8)
    m, err = C.c_void_p(), _Error()
    st = lib.dse_model_load_ex(raw.ctypes.data + start, len(data), flags, C.byref(m), C.byref(err))
    if st == 0:
        lib.dse_model_free(m)
    return st, err.message.decode()


@pytest.mark.parametrize("case,wino", _cases())
def test_conv_act_fn_fused_same_bytes(lib, case, wino):   # noqa: F811
    assert _wino(case) or not wino
    for fn in FNS:
        pair, fused, feeds = conv_pair(case, 31 * case[1][0] + len(case[0]) + fn, direct=not wino, fn=fn)
        out_p, kp = run(lib, pair, feeds)
        out_f, kf = run(lib, fused, feeds)
        assert len(kf) == 1 and kp[0] == kf[0], (fn, kp, kf)
        if AVX2:
            assert kf[0] == ("dse_f32_conv_wino__avx2" if wino else "dse_f32_conv__avx2"), kf
            if fn == SILU:
                assert kp[1] == "dse_f32_sigmoid__avx2", kp
        _same(out_f[0], out_p[0], f"act_fn {fn} optimised")
        nan = np.isnan(out_f[0])
        assert (out_f[0].view(np.uint32)[nan] == 0x7FC00000).all()   # (a strided conv may skip the NaN)
        if np.prod(case[0][2:]) > 1:   # (on a 1x1 image every output reads the NaN or the infinity)
            assert np.isfinite(out_f[0]).sum() > out_f[0].size // 2
        for t in (3,):
            out_t, _ = run(lib, fused, feeds, threads=t)
            _same(out_t[0], out_f[0], f"act_fn {fn} {t} threads")
        rp, rkp = run(lib, pair, feeds, flags=REF_KERNELS)
        rf, rkf = run(lib, fused, feeds, flags=REF_KERNELS)
        assert rkf == ["dse_f32_conv__ref"], rkf
        _same(rf[0], rp[0], f"act_fn {fn} REF")


# SiLU on chosen values: an identity 1x1 Conv (weight 1, no bias) gives them to the sigmoid as they are
SILU_X = np.float32([0.0, -0.0, 1e-45, -1e-45, 1e-38, -1e-38, 1e-7, -1e-7, 0.5, -0.5, 1.0, -1.0, 3.0, -3.0, 8.0,
                     -8.0, 15.9, -15.9, 16.7, -16.7, 30.0, -30.0, 80.0, -80.0, 86.9, -86.9, 87.4, -87.4, 88.5,
                     -88.5, 88.72283935546875, -88.72283935546875, 88.73, -88.73, 95.0, -95.0, 103.3, -103.3,
                     103.97, -103.97, 104.0, -104.0, 104.1, -104.1, 110.0, -110.0, 1e4, -1e4, 3.4e38, -3.4e38,
                     np.inf, -np.inf, np.nan, -np.nan, 2.5, -2.5, 0.1, -0.1, 6.0, -6.0, 40.0, -40.0, 50.0, -50.0,
                     12.3, -12.3, 0.75])


def test_conv_silu_special_values(lib):   # noqa: F811
    """Every float32 range of the sigmoid (its exp clamps at -104 and 88.72, subnormal results,
    saturation to 0 and 1, infinities, NaN of either sign) through the fused SiLU of the AVX2 GEMM
    path (vector lanes and the tail) and of REF: the separate Sigmoid and Mul nodes' bytes."""
    x = SILU_X.reshape(1, 1, 1, -1)
    attrs = dict(kernel_shape=[1, 1], strides=[1, 1], pads=[0, 0, 0, 0], dilations=[1, 1], group=1)
    ins = [(x, False), (np.ones((1, 1, 1, 1), np.float32), True)]
    sc = planned_scratch("Conv", [x.shape, (1, 1, 1, 1)], x.shape, attrs)
    fused, feeds = make_node("Conv", ins, [("float32", x.shape)], {**attrs, "act_fn": SILU}, scratch=sc)
    single, _ = make_node("Conv", ins, [("float32", x.shape)], attrs, scratch=sc)
    for swap in (False, True):
        pair = _append_act(single, SILU, swap=swap)
        for flags in (0, REF_KERNELS):
            out_p, _ = run(lib, pair, feeds, flags=flags)
            out_f, _ = run(lib, fused, feeds, flags=flags)
            _same(out_f[0], out_p[0], f"swap {swap} flags {flags}")
            y = out_f[0].reshape(-1)
            assert (y.view(np.uint32)[np.isnan(y)] == 0x7FC00000).all() and np.isnan(y).sum() == 3   # NaN, -NaN, -inf*0
            xd = x.reshape(-1).astype(np.float64)
            with np.errstate(over="ignore", invalid="ignore"):
                want = xd / (1 + np.exp(-xd))
            ok = np.isfinite(want) & (np.abs(want) > 1e-30)   # (subnormal results: a few ulp of 2^-149)
            np.testing.assert_allclose(y[ok], want[ok], rtol=1e-6)


@pytest.mark.parametrize("k", [0, 3, 8, 22])
def test_conv_act_fn_fused_fp16_arith(lib, k):   # noqa: F811
    """fp16 arithmetic (binary16 weights, INT fp16_arith): REF's binary16 kernel applies the function
    to its float32 result, as the separate float32 nodes do (REF kernels). Without the REF flag on
    AVX2, HardSwish gives the same pair of bytes, but SiLU is refused: the binary16 kernel's sigmoid
    is REF's, not that of the AVX2 Sigmoid kernel the separate node would run."""
    for fn in FNS:
        pair, fused, feeds = conv_pair(CONV_CASES[k], 77 + k, w16=True, fp16_arith=True, fn=fn)
        for flags in (0, REF_KERNELS):
            if fn in (SILU, GELU) and not flags and AVX2:
                st, msg = _load_status(lib, fused, flags)
                assert st != 0 and "act_fn" in msg, msg
                continue
            out_p, kp = run(lib, pair, feeds, flags=flags)
            out_f, kf = run(lib, fused, feeds, flags=flags)
            assert kp[0] == kf[0]
            if flags:
                assert kf == ["dse_f32_conv_fp16__ref"], kf
            _same(out_f[0], out_p[0], f"act_fn {fn} flags {flags}")


def test_act_fn_refused_where_not_applied(lib):   # noqa: F811
    """A kernel that does not apply the function refuses the node (the loader tries the next one; the
    message names act_fn): a Gemm, an unknown code on a Conv, and, on AVX2, SiLU on a Conv with
    float16 weights stored as such (left to REF, whose sigmoid is not the AVX2 Sigmoid kernel's;
    with the REF flag it runs)."""
    rng = np.random.default_rng(1)
    a, b = rnd(rng, 3, 5), rnd(rng, 5, 4)
    gemm, _ = make_node("Gemm", [(a, False), (b, True)], [("float32", (3, 4))],
                        dict(transA=0, transB=0, alpha=1.0, beta=1.0, act_fn=HSWISH))
    x, w = rnd(rng, 1, 2, 5, 5), rnd(rng, 3, 2, 1, 1)
    attrs = dict(kernel_shape=[1, 1], strides=[1, 1], pads=[0, 0, 0, 0], dilations=[1, 1], group=1)
    sc = planned_scratch("Conv", [x.shape, w.shape], (1, 3, 5, 5), attrs)
    conv, _ = make_node("Conv", [(x, False), (w, True)], [("float32", (1, 3, 5, 5))], dict(attrs, act_fn=7), scratch=sc)
    for art in (gemm, conv):
        for flags in (0, REF_KERNELS):
            st, msg = _load_status(lib, art, flags)
            assert st != 0 and "act_fn" in msg, msg
    conv16, _ = make_node("Conv", [(x, False), (w.astype(np.float16), True)], [("float32", (1, 3, 5, 5))],
                          dict(attrs, act_fn=SILU), scratch=sc)
    st, msg = _load_status(lib, conv16, 0)
    assert (st != 0 and "act_fn" in msg) if AVX2 else st == 0, msg
    assert _load_status(lib, conv16, REF_KERNELS)[0] == 0


# -- NEON under qemu-aarch64 ----------------------------------------------------------------------

NEON_CASES = [0, 3, 5, 8, 9, 10, 13, 18, 21, 22]   # GEMM, BAND1-like, strided, DW (stride 1, 2), dilated, 1-D, 3-D


def test_neon_conv_act_fn_fused_same_bytes(tmp_path_factory):
    """HardSwish and SiLU (the NEON Sigmoid kernel's bytes; REF's with -ref) on the NEON paths, and
    SiLU on the chosen values (SILU_X through an identity 1x1 Conv)."""
    from .test_kernels_neon import QEMU64, build_runner
    from .test_kernels_neon_f32 import run_cases, write_cases
    if QEMU64 is None:
        pytest.skip("qemu-aarch64 not installed (apt-get install qemu-user)")
    exe = build_runner(tmp_path_factory.mktemp("act_fn_neon_build"), "aarch64")
    cases = []
    for k in NEON_CASES + [None]:
        c = CONV_CASES[k] if k is not None else WINO_CASES[0]
        for fn in FNS:
            pair, fused, feeds = conv_pair(c, 5 + (k or 0) + fn, fn=fn)
            shape = np.zeros(pair.tensors[pair.outputs[0]].shape, np.float32)
            cases += [(pair, feeds, shape), (fused, feeds, shape)]
    x = SILU_X.reshape(1, 1, 1, -1)
    attrs = dict(kernel_shape=[1, 1], strides=[1, 1], pads=[0, 0, 0, 0], dilations=[1, 1], group=1)
    ins = [(x, False), (np.ones((1, 1, 1, 1), np.float32), True)]
    sc = planned_scratch("Conv", [x.shape, (1, 1, 1, 1)], x.shape, attrs)
    fused, feeds = make_node("Conv", ins, [("float32", x.shape)], {**attrs, "act_fn": SILU}, scratch=sc)
    single, _ = make_node("Conv", ins, [("float32", x.shape)], attrs, scratch=sc)
    cases += [(_append_act(single, SILU, swap=True), feeds, np.zeros(x.shape, np.float32)),
              (fused, feeds, np.zeros(x.shape, np.float32))]
    written = write_cases(tmp_path_factory.mktemp("act_fn_neon_cases"), cases)
    for args, stem in (((), "dse_f32_conv__neon"), (("-ref",), "dse_f32_conv__ref"), (("-threads", "3"), "dse_f32_conv__neon")):
        outs, kernels = run_cases(exe, written, *args)
        for i in range(0, len(cases), 2):
            assert kernels[i] == kernels[i + 1] == stem, (args, kernels[i:i + 2])
            _same(outs[i + 1], outs[i], f"NEON {args} case {i // 2}")
            assert (outs[i + 1].view(np.uint32)[np.isnan(outs[i + 1])] == 0x7FC00000).all()
