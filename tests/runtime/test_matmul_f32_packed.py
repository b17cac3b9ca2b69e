"""Float32 MatMul / Gemm constant B in layout 9 ("F32 P16 panels", docs/format.md §4.4): the packing,
the loader's checks, the exporter's choice (ops/nn.py `_mm_float_weight_layout`), and the kernels that
read it: REF (any shape, Gemm transB too: the same values in the same order, so REF's bytes of the
plain-layout artifact) and the optimised SGEMMs (kernels/ref/loops.c dse_f32_sgemm_batched: whole panels
read in place as the kernel's packed panels of 16, the last N % 16 columns row-major; every output the
same FMA chain as with B plain, so the plain artifact's bytes on the same ISA) on 1, 2 and 3 threads.
NEON's reading runs under qemu in test_matmul_p16_arm64_under_qemu."""
from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from dsedge.artifact import LAYOUT_F32_P16, TensorRec, layout_ok, pack_weights, read, unpack_weights
from dsedge.errors import ModelError

from .test_conv_o32 import _flip_layout, _load_error
from .test_kernels_f32_avx2 import AVX2, REF_KERNELS, _make, planned_scratch, rnd, run
from .test_kernels_f32_nn import make_node, ref


@pytest.fixture(scope="module")
def lib(tmp_path_factory):
    return _make(tmp_path_factory, "dse_avx2_build")


def _with_p16(art, keep_scratch=False):
    """The artifact with its B (tensor of input 1) in layout 9, and without the plain layout's packing
    buffer (the exporter plans none for it: the kernels report no scratch, and the loader refuses an
    arena planned larger than the nodes' kernels use)."""
    wi = art.nodes[0].inputs[1]
    t = art.tensors[wi]
    w = np.frombuffer(t.data, np.float32).reshape(t.shape)
    tensors = list(art.tensors)
    tensors[wi] = TensorRec.const(t.name, w, layout=LAYOUT_F32_P16)
    if keep_scratch:
        return dataclasses.replace(art, tensors=tuple(tensors))
    return dataclasses.replace(art, tensors=tuple(tensors), scratch_size=0, arena_size=max(art.scratch_offset, 64))


def _matmul_case(sa, sb, act, seed, scratch=True):
    rng = np.random.default_rng(seed)
    a, b = rnd(rng, *sa), rnd(rng, *sb)
    (r,) = ref("MatMul", a, b)
    sc = planned_scratch("MatMul", [a.shape, b.shape], r.shape, {}) if scratch else 0
    attrs = dict(act_min=act[0], act_max=act[1]) if act else {}
    return make_node("MatMul", [(a, False), (b, True)], [("float32", r.shape)], attrs, scratch=sc)


def _gemm_case(M, K, N, ta, tb, alpha, beta, cs, act, seed):
    rng = np.random.default_rng(seed)
    a = rnd(rng, *((K, M) if ta else (M, K)))
    b = rnd(rng, *((N, K) if tb else (K, N)))
    c = None if cs is None else rnd(rng, *cs)
    attrs = dict(transA=ta, transB=tb, alpha=alpha, beta=beta)
    (r,) = ref("Gemm", a, b, c, **attrs)
    cattrs = dict(attrs)
    if act:
        cattrs.update(act_min=act[0], act_max=act[1])
    sc = planned_scratch("Gemm", [a.shape, b.shape] + ([] if c is None else [c.shape]), r.shape, attrs)
    return make_node("Gemm", [(a, False), (b, True)] + ([] if c is None else [(c, True)]), [("float32", r.shape)],
                     cattrs, scratch=sc)


# A shape, B shape, clamp: every tail of the panels (N % 16 of 0, 1..8, 9..15; N < 16), odd K, M = 1,
# M not a multiple of 6 (the AVX2 row blocks) and >= 48 (where plain B is packed per run), batches with
# a 2-D constant B, B over the pack chunk (K = 384: chunks of 160 columns)
MATMUL_CASES = [
    ((1, 64, 384), (384, 1536), None),     # MiniLM's FFN: 96 whole panels
    ((64, 384), (384, 392), (-1.0, 1.0)),  # 24 panels + a tail of 8
    ((50, 37), (37, 41), None),            # K odd, 2 panels + 9
    ((1, 33), (33, 100), None),            # M = 1: 6 panels + 4
    ((7, 16), (16, 16), None),             # one panel
    ((13, 5), (5, 15), None),              # N < 16: the plain bytes
    ((2, 3, 11, 19), (19, 47), (0.0, np.inf)),   # batches sharing B; 2 panels + 15
    ((2, 60, 300), (300, 150), None),      # >= 48 rows per batch: plain B packed per run
    ((1, 9), (9, 1), None),                # N = 1: the dot-product kernel, plain bytes
    ((20, 300), (300, 1003), None),        # B over 1 MiB: parts of columns
    ((97,), (97, 33), None),               # 1-D A
]


@pytest.mark.parametrize("case", MATMUL_CASES, ids=[f"mm{i}" for i in range(len(MATMUL_CASES))])
def test_matmul_p16_bytes(lib, case):
    sa, sb, act = case
    art, feeds = _matmul_case(sa, sb, act, seed=sum(sa) * 7 + sb[-1])
    _check_bytes(lib, art, feeds, "dse_f32_matmul__ref", "dse_f32_matmul__avx2")


GEMM_CASES = [
    # M, K, N, transA, transB, alpha, beta, C shape (None: absent), clamp
    (64, 384, 1536, 0, 0, 1.0, 1.0, (1536,), None),
    (61, 300, 150, 0, 0, 1.0, 1.0, (150,), (0.0, np.inf)),
    (13, 37, 21, 1, 0, 0.5, 2.0, (13, 1), None),       # transA, alpha, beta, C by rows
    (20, 9, 35, 0, 0, 2.0, 0.0, (20, 35), None),       # beta 0: C unused
    (7, 260, 1030, 1, 0, 1.0, 0.5, (7, 1030), None),   # a tail of 6, C full
    (1, 64, 100, 0, 0, 1.0, 1.0, None, None),
    (5, 17, 33, 0, 0, 1.0, 1.0, (1, 1), (-1.0, 1.0)),  # C a scalar in a 2-D tensor
]


@pytest.mark.parametrize("case", GEMM_CASES, ids=[f"gemm{i}" for i in range(len(GEMM_CASES))])
def test_gemm_p16_bytes(lib, case):
    art, feeds = _gemm_case(*case, seed=case[0] * 100 + case[2])
    _check_bytes(lib, art, feeds, "dse_f32_gemm__ref", "dse_f32_gemm__avx2")


def _check_bytes(lib, art, feeds, ref_kernel, avx2_kernel):
    p16 = _with_p16(art)
    assert p16.tensors[p16.nodes[0].inputs[1]].layout == LAYOUT_F32_P16
    (r_plain,), _ = run(lib, art, feeds, flags=REF_KERNELS)
    (r_p16,), rks = run(lib, p16, feeds, flags=REF_KERNELS)
    assert rks == [ref_kernel]
    assert r_p16.tobytes() == r_plain.tobytes(), "REF on layout 9 is not REF on plain"
    (plain,), pks = run(lib, art, feeds)
    for t in (1, 2, 3):
        (o,), ks = run(lib, p16, feeds, threads=t)
        assert ks == pks, (ks, pks)
        if AVX2:
            assert ks == [avx2_kernel], ks
        bad = o.view(np.uint32) != plain.view(np.uint32)
        assert not bad.any(), f"{t} threads: {int(bad.sum())} of {bad.size} outputs differ from the plain layout's"


def test_gemm_transb_p16_runs_ref(lib):
    """A layout-9 B of a Gemm with transB (stored [N][K]): the optimised variants refuse it (their
    transB kernel reads B's rows of k), REF reads it with the plain artifact's REF bytes."""
    for case in [(9, 33, 40, 0, 1, 1.0, 0.5, (1, 40), None), (1, 100, 7, 0, 1, 1.0, 1.0, (7,), (0.0, 1.0))]:
        art, feeds = _gemm_case(*case, seed=5)
        (plain,), _ = run(lib, art, feeds, flags=REF_KERNELS)
        (o,), ks = run(lib, _with_p16(art), feeds)
        assert ks == ["dse_f32_gemm__ref"], ks
        assert o.tobytes() == plain.tobytes()


def test_ref_float_build_reads_p16(tmp_path_factory):
    """`make REF_FLOAT=1` (no optimised float variant): REF takes layout 9, the plain artifact's bytes."""
    L = _make(tmp_path_factory, "dse_ref_float_build", "REF_FLOAT=1")
    for art, feeds in (_matmul_case((2, 20, 37), (37, 50), None, seed=3),
                       _gemm_case(7, 260, 1030, 1, 0, 1.0, 0.5, (7, 1030), None, seed=3)):
        (plain,), _ = run(L, art, feeds)
        (o,), ks = run(L, _with_p16(art), feeds, threads=2)
        assert ks[0].endswith("__ref"), ks
        assert o.tobytes() == plain.tobytes()


def test_p16_pack_roundtrip_and_rules():
    w = np.random.default_rng(0).standard_normal((5, 37)).astype(np.float32)
    data = pack_weights(w, LAYOUT_F32_P16)
    assert len(data) == w.nbytes
    p = np.frombuffer(data, np.float32)
    for r, c in [(0, 0), (4, 15), (0, 16), (3, 31), (0, 32), (4, 36), (2, 33)]:
        idx = (c // 16 * 5 + r) * 16 + c % 16 if c < 32 else 32 * 5 + r * 5 + c - 32
        assert p[idx] == w[r, c], (r, c)
    assert np.array_equal(unpack_weights(data, LAYOUT_F32_P16, w.shape), w)
    t = TensorRec.const("w", w, layout=LAYOUT_F32_P16)
    assert t.data == data and t.nbytes == w.nbytes and np.array_equal(t.array(), w)
    small = w[:, :15]
    assert pack_weights(small, LAYOUT_F32_P16) == np.ascontiguousarray(small).tobytes()   # N < 16: plain bytes
    assert layout_ok(LAYOUT_F32_P16, "float32", 0, (5, 37))
    assert not layout_ok(LAYOUT_F32_P16, "float32", 0, (2, 5, 37))
    assert not layout_ok(LAYOUT_F32_P16, "float16", 0, (5, 37))
    assert not layout_ok(LAYOUT_F32_P16, "float32", 1, (5, 37))
    with pytest.raises(ModelError):
        TensorRec.const("w", w.reshape(1, 5, 37), layout=LAYOUT_F32_P16)


def test_p16_loader_refuses_bad_tensors(lib):
    art, feeds = _matmul_case((4, 8), (8, 20), None, seed=1)
    assert _load_error(lib, _with_p16(art)) == ""
    # not rank 2: a batched constant B
    art3, _ = _matmul_case((2, 4, 8), (2, 8, 20), None, seed=1)
    msg = _load_error(lib, _flip_layout(art3, LAYOUT_F32_P16))
    assert "layout 9 needs a float32 constant of rank 2" in msg, msg
    # not float32: a float16 B
    rng = np.random.default_rng(1)
    a, b = rnd(rng, 4, 8), rnd(rng, 8, 20).astype(np.float16)
    a16, _ = make_node("MatMul", [(a, False), (b, True)], [("float32", (4, 20))], {})
    msg = _load_error(lib, _flip_layout(a16, LAYOUT_F32_P16))
    assert "layout 9 needs a float32 constant" in msg, msg
    # an activation (arena tensor) in layout 9
    a2, _ = make_node("MatMul", [(rnd(rng, 4, 8), False), (rnd(rng, 8, 20), False)], [("float32", (4, 20))], {})
    msg = _load_error(lib, _flip_layout(a2, LAYOUT_F32_P16))
    assert "layout 9 needs a float32 constant" in msg, msg
    # a layout-9 artifact that still plans the packing buffer: more scratch than its kernels use
    big, _ = _matmul_case((64, 384), (384, 392), None, seed=1)
    msg = _load_error(lib, _with_p16(big, keep_scratch=True))
    assert "exceeds" in msg and "scratch need" in msg, msg
    # a layout id past this runtime's (an older runtime refuses layout 9 the same way)
    msg = _load_error(lib, _flip_layout(_matmul_case((4, 8), (8, 20), None, seed=1)[0], 10))
    assert "bad storage/quantisation/layout/rank byte" in msg, msg
    # a layout-9 tensor read by a node whose kernel does not read it (an Add): refused
    x = rnd(rng, 8, 20)
    aa, _ = make_node("Add", [(x, False), (x + 1, True)], [("float32", (8, 20))], {})
    msg = _load_error(lib, _flip_layout(aa, LAYOUT_F32_P16))
    assert "is in packed layout 9, which" in msg, msg


def _mlp_onnx(path):
    """A small float model: MatMul (B 24x40: layout 9), Gemm transB 0 with C (B 40x33: layout 9), Gemm
    transB 1 (layout 0), MatMul with 8 columns (layout 0), a B that an Add also reads (layout 0)."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper
    rng = np.random.default_rng(3)
    inits = [numpy_helper.from_array(rnd(rng, 24, 40, scale=0.3), "w1"),
             numpy_helper.from_array(rnd(rng, 40, 33, scale=0.2), "w2"), numpy_helper.from_array(rnd(rng, 33), "c2"),
             numpy_helper.from_array(rnd(rng, 20, 33, scale=0.2), "w3"),
             numpy_helper.from_array(rnd(rng, 20, 8, scale=0.2), "w4"),
             numpy_helper.from_array(rnd(rng, 8, 16, scale=0.2), "w5")]
    nodes = [helper.make_node("MatMul", ["x", "w1"], ["m1"]),
             helper.make_node("Relu", ["m1"], ["r1"]),
             helper.make_node("Gemm", ["r1", "w2", "c2"], ["g2"], alpha=0.5, beta=2.0),
             helper.make_node("Gemm", ["g2", "w3"], ["g3"], transB=1),
             helper.make_node("MatMul", ["g3", "w4"], ["m4"]),
             helper.make_node("MatMul", ["m4", "w5"], ["m5"]),
             helper.make_node("Add", ["m5", "w5"], ["y"])]
    g = helper.make_graph(nodes, "t", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [8, 24])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, [8, 16])], inits)
    onnx.save(helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)]), path)


def test_exporter_chooses_p16(tmp_path):
    """fp32 export: the MatMul's and the transB-0 Gemm's B of 16 or more columns get layout 9, the
    others layout 0; the runtime's outputs (optimised and REF) and the .dse read back into the numpy
    interpreter (TensorRec.array unpacks layout 9) match onnxruntime's."""
    import dsedge
    import dsedge.runtime as R
    from dsedge.api import save_result
    from dsedge.export.dse import load_dse_graph
    from dsedge.interp import run as interp_run
    ort = pytest.importorskip("onnxruntime")
    path = str(tmp_path / "m.onnx")
    _mlp_onnx(path)
    rng = np.random.default_rng(4)
    feeds = [{"x": rng.standard_normal((8, 24)).astype(np.float32)} for _ in range(2)]
    dse = str(tmp_path / "m.dse")
    save_result(dsedge.quantize(path, feeds, precision="fp32", progress=False), dse)
    art = read(open(dse, "rb").read())
    layouts = {art.tensors[n.inputs[1]].shape: art.tensors[n.inputs[1]].layout for n in art.nodes if len(n.inputs) > 1}
    assert layouts[(24, 40)] == LAYOUT_F32_P16 and layouts[(40, 33)] == LAYOUT_F32_P16, layouts
    assert layouts[(20, 33)] == 0 and layouts[(20, 8)] == 0 and layouts[(8, 16)] == 0, layouts
    assert sum(t.shape == (8, 16) for t in art.tensors if t.data is not None) == 1   # stored once
    # no packing buffer planned for the layout-9 nodes (K = 24, 40): the largest is the plain
    # 20 x 8 MatMul's, 4 * K * 256 bytes (dse__sgemm_pack_floats(20))
    assert art.scratch_size == 4 * 20 * 256, art.scratch_size
    (e,) = ort.InferenceSession(path, providers=["CPUExecutionProvider"]).run(None, feeds[0])
    outs = {}
    for kernels in ("auto", "ref"):
        with R.Runtime(dse, threads=1, kernels=kernels) as rt:
            outs[kernels] = rt.run(feeds[0])["y"]
        np.testing.assert_allclose(outs[kernels], e, rtol=1e-4, atol=1e-4 * float(np.abs(e).max()))
    (v,) = interp_run(load_dse_graph(dse), feeds[0]).values()
    np.testing.assert_allclose(v, e, rtol=1e-5, atol=1e-5 * float(np.abs(e).max()))


ARM_CASES = [(((1, 64, 384), (384, 392), None), "mm"), (((50, 37), (37, 41), (-1.0, 1.0)), "mm"),
             (((1, 33), (33, 100), None), "mm"), (((2, 3, 11, 19), (19, 47), None), "mm"),
             (((2, 60, 300), (300, 150), None), "mm"), (((20, 300), (300, 1003), None), "mm"),
             ((64, 384, 1536, 0, 0, 1.0, 1.0, (1536,), None), "gemm"), ((13, 37, 21, 1, 0, 0.5, 2.0, (13, 1), None), "gemm"),
             ((9, 33, 40, 0, 1, 1.0, 0.5, (1, 40), None), "gemm_tb")]


def test_matmul_p16_arm64_under_qemu(lib, tmp_path_factory):
    """arm64: the NEON float MatMul and Gemm read layout 9 (8 columns of a 16-column panel per tile, in
    place): the plain-layout artifact's NEON bytes on 1 and 3 threads; -ref: REF on layout 9 gives the
    plain artifact's REF bytes; a transB Gemm's layout-9 B runs REF."""
    from .test_kernels_neon import QEMU64, build_runner
    from .test_kernels_neon_f32 import _one
    if QEMU64 is None:
        pytest.skip("qemu-aarch64 not installed (apt-get install qemu-user)")
    exe = build_runner(tmp_path_factory.mktemp("p16_arm64_build"), "aarch64")
    tmp = tmp_path_factory.mktemp("p16_arm64_cases")
    for k, (case, kind) in enumerate(ARM_CASES):
        art, feeds = _matmul_case(*case, seed=k) if kind == "mm" else _gemm_case(*case, seed=k)
        p16 = _with_p16(art)
        o, kern = _one(exe, tmp, p16, feeds)
        plain, pk = _one(exe, tmp, art, feeds)
        want = {"mm": "dse_f32_matmul__neon", "gemm": "dse_f32_gemm__neon", "gemm_tb": "dse_f32_gemm__ref"}[kind]
        assert kern == want and pk.startswith(want.split("__")[0]), (kern, pk)
        r, rk = _one(exe, tmp, p16, feeds, "-ref")
        rp, _ = _one(exe, tmp, art, feeds, "-ref")
        assert rk.endswith("__ref") and r.tobytes() == rp.tobytes(), f"case {k}: REF on layout 9 differs"
        if kind == "gemm_tb":
            assert o.tobytes() == rp.tobytes()
            continue
        assert o.tobytes() == plain.tobytes(), f"case {k}: layout 9 and layout 0 give other bytes on NEON"
        o3, _ = _one(exe, tmp, p16, feeds, "-threads", "3")
        assert o3.tobytes() == o.tobytes(), f"case {k}: 3 threads give other bytes"
