"""Float 1x1 Conv weights in layout 8 ("F32 O32 panels", docs/format.md §4.4): the exporter's choice
(ops/nn.py `_conv_float_weight_layout`), the packing, the loader's checks, and the kernels that read
it: REF (any geometry: the same values in the same order, so REF's bytes of the plain-layout
artifact), AVX2's O32 path (kernels/avx2/conv.c: output channels in the lanes; every output one
float32 FMA chain over k ascending, then + bias, the clamp and the fused activation: the exact fma32
oracle, and the bytes of the SGEMM path on the plain-layout artifact) on 1, 2 and 3 threads.
NEON's reading (one SGEMM call per panel) runs under qemu in test_conv_o32_arm64_under_qemu."""
from __future__ import annotations

import dataclasses
import os
import shutil
import subprocess

import numpy as np
import pytest

from dsedge.artifact import LAYOUT_F32_O32, TensorRec, layout_ok, pack_weights, read, unpack_weights
from dsedge.errors import ModelError

from .test_kernels_f32_avx2 import (AVX2, REF_KERNELS, _conv2d_fma_chain, _make, planned_scratch, rnd, run,
                                    sum_tol)
from .test_kernels_f32_nn import make_node, ref

F32_ACT_HARDSWISH, F32_ACT_SILU = 1, 2   # INT act_fn (src/internal.h DSE_ACT_FN_*)


@pytest.fixture(scope="module")
def lib(tmp_path_factory):
    return _make(tmp_path_factory, "dse_avx2_build")


def _with_o32(art):
    """The artifact with its weight (tensor of input 1) in layout 8."""
    node = art.nodes[0]
    wi = node.inputs[1]
    t = art.tensors[wi]
    w = np.frombuffer(t.data, np.float32).reshape(t.shape)
    tensors = list(art.tensors)
    tensors[wi] = TensorRec.const(t.name, w, layout=LAYOUT_F32_O32)
    return dataclasses.replace(art, tensors=tuple(tensors))


def _case(xs, M, has_b, act, act_fn, seed):
    rng = np.random.default_rng(seed)
    x, w = rnd(rng, *xs), rnd(rng, M, xs[1], 1, 1, scale=0.5)
    b = rnd(rng, M) if has_b else None
    attrs = dict(kernel_shape=[1, 1], strides=[1, 1], pads=[0, 0, 0, 0], dilations=[1, 1], group=1)
    (r,) = ref("Conv", x, w, b, **attrs)
    cattrs = dict(attrs)
    if act:
        cattrs.update(act_min=act[0], act_max=act[1])
    if act_fn:
        cattrs.update(act_fn=act_fn)
    sc = planned_scratch("Conv", [xs, w.shape] + ([(M,)] if has_b else []), r.shape, attrs)
    art, feeds = make_node("Conv", [(x, False), (w, True)] + ([(b, True)] if has_b else []),
                           [("float32", r.shape)], cattrs, scratch=sc)
    (s_abs,) = ref("Conv", np.abs(x), np.abs(w), None if b is None else np.abs(b), **attrs)
    bound = 4 * (xs[1] + 1) * 2.0 ** -24 * s_abs.astype(np.float64)
    return art, feeds, (x, w, b), bound


# x shape, output channels, bias, clamp, fused activation function
CASES = [
    ((1, 13, 7, 7), 32, True, (0.0, 6.0), 0),        # 49 px: 16 tiles of 3 + 1; K = 13 (one chunk)
    ((1, 160, 7, 7), 96, True, None, 0),             # K = 160: chunks of 64, 64, 32
    ((1, 70, 5, 11), 64, False, None, 0),            # 55 px: a tail of 1
    ((1, 9, 2, 4), 32, True, (-1.0, 1.0), 0),        # 8 px: a tail of 2
    ((1, 1, 3, 3), 32, True, None, 0),               # K = 1: the planned scratch is too small: REF
    ((2, 20, 3, 5), 64, True, None, 0),              # 2 images
    ((1, 130, 12, 12), 32, True, None, F32_ACT_HARDSWISH),   # 144 px, HardSwish in the tile
    ((1, 33, 7, 7), 64, True, None, F32_ACT_SILU),   # SiLU after the transpose
    ((1, 200, 16, 16), 32, False, None, 0),          # 256 px: split over pixels with threads
]


@pytest.mark.parametrize("case", CASES, ids=[f"o32_{i}" for i in range(len(CASES))])
def test_o32_bytes(lib, case):
    xs, M, has_b, act, act_fn = case
    art, feeds, (x, w, b), bound = _case(xs, M, has_b, act, act_fn, seed=len(xs) * 1000 + M + xs[1])
    o32 = _with_o32(art)
    assert o32.tensors[o32.nodes[0].inputs[1]].layout == LAYOUT_F32_O32
    # REF reads layout 8: its bytes are those of the plain artifact
    (r_plain,), _ = run(lib, art, feeds, flags=REF_KERNELS)
    (r_o32,), rks = run(lib, o32, feeds, flags=REF_KERNELS)
    assert rks == ["dse_f32_conv__ref"]
    assert r_o32.tobytes() == r_plain.tobytes()
    if not AVX2:
        pytest.skip("no AVX2: the O32 path is not chosen")
    (o,), ks = run(lib, o32, feeds)
    if xs[1] * min(max(65536 // xs[1] // 16 * 16, 16), 256) < 32 * xs[2] * xs[3]:   # no scratch for O32 (the exporter
        assert ks == ["dse_f32_conv__ref"], ks                                       # does not choose layout 8 there)
        assert o.tobytes() == r_plain.tobytes()
        return
    assert ks == ["dse_f32_conv__avx2"], ks
    for t in (2, 3):
        (ot,), _ = run(lib, o32, feeds, threads=t)
        assert ot.tobytes() == o.tobytes(), f"{t} threads give other bytes"
    sum_tol(bound)(r_o32, o)
    # the exact oracle: one FMA chain over k, + bias, clamp (the activation functions: as the SGEMM path)
    (p,), _ = run(lib, art, feeds)
    if not act_fn:
        e = _conv2d_fma_chain(x, w, b, (1, 1), (0, 0, 0, 0), (1, 1), 1, act)
        bad = o.view(np.uint32) != e.view(np.uint32)
        assert not bad.any(), f"{int(bad.sum())} of {bad.size} outputs are not the FMA chain's bytes"
    if not (xs[0] > 1 and xs[2] * xs[3] < 16):   # (not the plain artifact's IMGS path: another tiling)
        assert p.tobytes() == o.tobytes(), "O32 and the SGEMM path give other bytes"


def test_o32_pack_roundtrip_and_rules():
    w = np.random.default_rng(0).standard_normal((64, 5, 1, 1)).astype(np.float32)
    data = pack_weights(w, LAYOUT_F32_O32)
    assert len(data) == w.nbytes
    p = np.frombuffer(data, np.float32)
    for r, k in [(0, 0), (31, 4), (32, 0), (45, 3), (63, 4)]:
        assert p[(r // 32 * 5 + k) * 32 + r % 32] == w[r, k, 0, 0]
    assert np.array_equal(unpack_weights(data, LAYOUT_F32_O32, w.shape), w)
    t = TensorRec.const("w", w, layout=LAYOUT_F32_O32)
    assert t.data == data and t.nbytes == w.nbytes and np.array_equal(t.array(), w)
    assert layout_ok(LAYOUT_F32_O32, "float32", 0, (64, 5, 1, 1))
    assert not layout_ok(LAYOUT_F32_O32, "float32", 0, (48, 5, 1, 1))
    assert not layout_ok(LAYOUT_F32_O32, "float16", 0, (64, 5, 1, 1))
    assert not layout_ok(LAYOUT_F32_O32, "float32", 1, (64, 5, 1, 1))
    assert not layout_ok(LAYOUT_F32_O32, "float32", 0, (64,))
    with pytest.raises(ModelError):
        TensorRec.const("w", w[:48], layout=LAYOUT_F32_O32)


def _load_error(lib, art):
    import ctypes as C
    from dsedge.runtime import _Error
    data = art.to_bytes()
    m, err = C.c_void_p(), _Error()
    st = lib.dse_model_load_ex(data, len(data), 0, C.byref(m), C.byref(err))
    if st == 0:
        lib.dse_model_free(m)
        return ""
    return err.message.decode()


def _flip_layout(art, layout):
    """The artifact's weight (input 1) relabelled as `layout`, bytes unchanged (the Python writer
    refuses such a tensor: set after its checks, to test the C loader's)."""
    t = art.tensors[art.nodes[0].inputs[1]]
    object.__setattr__(t, "layout", layout)
    return art


def test_o32_loader_refuses_bad_tensors(lib):
    art, feeds, _, _ = _case((1, 8, 3, 3), 32, True, None, 0, seed=1)
    assert _load_error(lib, _with_o32(art)) == ""
    # a first dimension that is not a multiple of 32
    art16, _, _, _ = _case((1, 8, 3, 3), 16, True, None, 0, seed=1)
    msg = _load_error(lib, _flip_layout(art16, LAYOUT_F32_O32))
    assert "layout 8 needs a first dimension that is a multiple of 32, not 16" in msg, msg
    # not float32: float16 weights
    rng = np.random.default_rng(1)
    x, w = rnd(rng, 1, 8, 3, 3), rnd(rng, 32, 8, 1, 1).astype(np.float16)
    attrs = dict(kernel_shape=[1, 1], strides=[1, 1], pads=[0, 0, 0, 0], dilations=[1, 1], group=1)
    a16, _ = make_node("Conv", [(x, False), (w, True)], [("float32", (1, 32, 3, 3))], attrs)
    msg = _load_error(lib, _flip_layout(a16, LAYOUT_F32_O32))
    assert "layout 8 needs a float32 constant" in msg, msg
    # a layout-8 weight of a Conv the optimised kernels do not take (3x3): REF runs it
    rng = np.random.default_rng(2)
    x, w3 = rnd(rng, 1, 4, 6, 6), rnd(rng, 32, 4, 3, 3)
    attrs = dict(kernel_shape=[3, 3], strides=[1, 1], pads=[1, 1, 1, 1], dilations=[1, 1], group=1)
    (r,) = ref("Conv", x, w3, None, **attrs)
    sc = planned_scratch("Conv", [x.shape, w3.shape], r.shape, attrs)
    a3, f3 = make_node("Conv", [(x, False), (w3, True)], [("float32", r.shape)], attrs, scratch=sc)
    (plain,), _ = run(lib, a3, f3, flags=REF_KERNELS)
    (o,), ks = run(lib, _with_o32(a3), f3)
    assert ks == ["dse_f32_conv__ref"], ks
    assert o.tobytes() == plain.tobytes()


def _mnv2_tail_onnx(path, hw=7):
    """A small float model: 1x1 convs on a 7x7 image (layout 8), a 3x3 conv and a 1x1 conv on a
    16-channel output (layout 0), HardSwish fused."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper
    rng = np.random.default_rng(3)
    inits = [numpy_helper.from_array(rnd(rng, 64, 32, 1, 1, scale=0.3), "w1"), numpy_helper.from_array(rnd(rng, 64), "b1"),
             numpy_helper.from_array(rnd(rng, 64, 64, 3, 3, scale=0.1), "w2"),
             numpy_helper.from_array(rnd(rng, 96, 64, 1, 1, scale=0.2), "w3"), numpy_helper.from_array(rnd(rng, 96), "b3"),
             numpy_helper.from_array(rnd(rng, 16, 96, 1, 1, scale=0.2), "w4")]
    nodes = [helper.make_node("Conv", ["x", "w1", "b1"], ["c1"], kernel_shape=[1, 1]),
             helper.make_node("HardSwish", ["c1"], ["h1"]),
             helper.make_node("Conv", ["h1", "w2"], ["c2"], kernel_shape=[3, 3], pads=[1, 1, 1, 1]),
             helper.make_node("Conv", ["c2", "w3", "b3"], ["c3"], kernel_shape=[1, 1]),
             helper.make_node("Relu", ["c3"], ["r3"]),
             helper.make_node("Conv", ["r3", "w4"], ["y"], kernel_shape=[1, 1])]
    g = helper.make_graph(nodes, "t", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 32, hw, hw])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 16, hw, hw])], inits)
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
    onnx.save(m, path)


def test_exporter_chooses_o32_for_small_images(tmp_path):
    """fp32 export: the 1x1 convs with 32k output channels on a 7x7 image get layout 8, the others
    layout 0; the runtime's outputs match onnxruntime's."""
    import dsedge
    import dsedge.runtime as R
    from dsedge.api import save_result
    ort = pytest.importorskip("onnxruntime")
    path = str(tmp_path / "m.onnx")
    _mnv2_tail_onnx(path)
    rng = np.random.default_rng(4)
    feeds = [{"x": rng.standard_normal((1, 32, 7, 7)).astype(np.float32)} for _ in range(2)]
    res = dsedge.quantize(path, feeds, precision="fp32", progress=False)
    dse = str(tmp_path / "m.dse")
    save_result(res, dse)
    art = read(open(dse, "rb").read())
    layouts = {}
    for n in art.nodes:
        w = art.tensors[n.inputs[1]]
        layouts[w.shape] = w.layout
    assert layouts[(64, 32, 1, 1)] == LAYOUT_F32_O32 and layouts[(96, 64, 1, 1)] == LAYOUT_F32_O32
    assert layouts[(64, 64, 3, 3)] == 0 and layouts[(16, 96, 1, 1)] == 0   # 3x3; 16 channels
    (e,) = ort.InferenceSession(path, providers=["CPUExecutionProvider"]).run(None, feeds[0])
    # an 8x8 image (64 pixels, a multiple of 16: the SGEMM's tiles fit): layout 0
    path8 = str(tmp_path / "m8.onnx")
    _mnv2_tail_onnx(path8, hw=8)
    f8 = [{"x": rng.standard_normal((1, 32, 8, 8)).astype(np.float32)} for _ in range(2)]
    save_result(dsedge.quantize(path8, f8, precision="fp32", progress=False), str(tmp_path / "m8.dse"))
    assert all(t.layout == 0 for t in read(open(tmp_path / "m8.dse", "rb").read()).tensors)
    for kernels in ("auto", "ref"):
        with R.Runtime(dse, threads=1, kernels=kernels) as rt:
            o = rt.run(feeds[0])["y"]
        np.testing.assert_allclose(o, e, rtol=1e-4, atol=1e-4 * float(np.abs(e).max()))
    # the .dse read back as IR (TensorRec.array unpacks layout 8) runs in the numpy interpreter
    from dsedge.export.dse import load_dse_graph
    from dsedge.interp import run as interp_run
    (v,) = interp_run(load_dse_graph(dse), feeds[0]).values()
    np.testing.assert_allclose(v, e, rtol=1e-4, atol=1e-4 * float(np.abs(e).max()))


def test_conv_o32_arm64_under_qemu(lib, tmp_path_factory):
    """arm64: the NEON float Conv reads layout 8 (one SGEMM call per panel of 32 channels): its bytes
    are those of the plain-layout artifact's NEON run and of this host's AVX2 O32 path (one FMA chain
    per output, the same epilogue); -ref runs REF on layout 8 with the plain artifact's bytes; 3
    threads give 1 thread's bytes."""
    from .test_kernels_neon import QEMU64, build_runner
    from .test_kernels_neon_f32 import _one
    if QEMU64 is None:
        pytest.skip("qemu-aarch64 not installed (apt-get install qemu-user)")
    exe = build_runner(tmp_path_factory.mktemp("o32_arm64_build"), "aarch64")
    tmp = tmp_path_factory.mktemp("o32_arm64_cases")
    for k, case in enumerate(c for c in CASES if c[4] != F32_ACT_SILU):   # (SiLU: each ISA's own sigmoid)
        xs, M, has_b, act, act_fn = case
        art, feeds, _, _ = _case(xs, M, has_b, act, act_fn, seed=77 + k)
        o32 = _with_o32(art)
        o, kern = _one(exe, tmp, o32, feeds)
        plain, pk = _one(exe, tmp, art, feeds)
        assert kern == pk == "dse_f32_conv__neon", (kern, pk)
        assert o.tobytes() == plain.tobytes(), f"case {k}: layout 8 and layout 0 give other bytes on NEON"
        o3, _ = _one(exe, tmp, o32, feeds, "-threads", "3")
        assert o3.tobytes() == o.tobytes(), f"case {k}: 3 threads give other bytes"
        r, rk = _one(exe, tmp, o32, feeds, "-ref")
        rp, _ = _one(exe, tmp, art, feeds, "-ref")
        assert rk == "dse_f32_conv__ref" and r.tobytes() == rp.tobytes()
        if AVX2:
            (h,), hk = run(lib, o32, feeds)
            if hk == ["dse_f32_conv__avx2"]:
                assert h.tobytes() == o.tobytes(), f"case {k}: NEON and AVX2 O32 give other bytes"
