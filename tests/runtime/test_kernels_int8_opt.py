"""Packed int8 weights (layouts 1 and 2) and the optimised int8 kernels, byte for byte.

Layouts (docs/format.md §4.4): the writer packs and the reader unpacks (`TensorRec.array()`),
the exporter packs exactly the weights of int8 Conv with group 1, Gemm and MatMul, the C
loader accepts them only for int8 constants of the right rank, size and zero padding and only
where a kernel reads them.

Kernels: every int8 Conv / Gemm / MatMul case runs as a one-node `.dse` (scratch planned by
dsedge/export/scratch.py) with each weight layout, once with the kernels the CPU gets
(`kernels/avx2/` on x86-64 with AVX2, the arm64 variants there) and once with
DSE_LOAD_REF_KERNELS; both must equal dsedge/quant/intref.py exactly. The sizes hit every
tail of the vector code: channel counts 1..17, K not a multiple of 4/8/16 and K > 4096,
padding, strides 1-3, dilation, kernels 1/3/5/7, batch > 1, zero points -128/127,
multipliers >= 1 and the extremes, qmin/qmax clamps, float_out, GEMM tiles of more than
256 columns, depthwise with widths around the 16-output vector, 1-D and 3-D convs. When the
CPU has AVX2 the test also asserts that the AVX2 kernel (not a silent fallback) ran the
packed cases. One zoo model, quantised and exported as a user would, must give the same bytes
with both kernel sets.
"""
from __future__ import annotations

import ctypes as C
import os
import platform
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from tests.runtime._make import make, make_checked   # one shared build per configuration

from dsedge.artifact import (Artifact, NodeRec, TensorAttr, TensorRec, op_id, pack_weights, read, unpack_weights)
from dsedge.errors import ModelError
from dsedge.export.scratch import conv_i8_imgs_tile, conv_i8_plan, packed_gemm_plan
from dsedge.quant import arith, intref
from dsedge.runtime import _Error, _declare

ROOT = Path(__file__).resolve().parents[2]
CDIR = ROOT / "runtimes" / "c"
CC = os.environ.get("CC") or shutil.which("cc") or shutil.which("gcc") or shutil.which("clang")
pytestmark = pytest.mark.skipif(CC is None or shutil.which("make") is None, reason="no C compiler or make")


def _cpu_has_avx2() -> bool:
    if platform.machine() not in ("x86_64", "AMD64"):
        return False
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return " avx2" in flags and " fma" in flags


AVX2 = _cpu_has_avx2()
LOAD_REF = 2   # DSE_LOAD_REF_KERNELS


def _cpu_has_vnni() -> bool:
    """AVX-VNNI or AVX512-VNNI (+VL/BW): the loader would pick the VNNI int8 Conv/Gemm/MatMul."""
    try:
        flags = Path("/proc/cpuinfo").read_text() if platform.machine() in ("x86_64", "AMD64") else ""
    except OSError:
        return False
    return " avx_vnni" in flags or all(f" {f}" in flags for f in ("avx512_vnni", "avx512vl", "avx512bw"))


# On a VNNI CPU this file tests the AVX2 kernels on a build with VNNI hidden (make EMULATE_VNNI=0;
# the VNNI kernels have their own tests, tests/runtime/test_kernels_vnni.py).
VNNI = _cpu_has_vnni()


@pytest.fixture(scope="module")
def lib(tmp_path_factory):
    prebuilt = os.environ.get("DSE_TEST_LIBDSEDGE")   # e.g. a sanitizer build (run with LD_PRELOAD=libasan)
    if prebuilt:
        path = prebuilt
    else:
        path = str(make_checked(CC, "libdsedge.so", args=("EMULATE_VNNI=0",) if VNNI else ()) / "libdsedge.so")
    L = C.CDLL(path)
    _declare(L)
    L.dse_model_node_kernel.argtypes, L.dse_model_node_kernel.restype = [C.c_void_p, C.c_size_t], C.c_char_p
    return L


def load(lib, data: bytes, flags: int = 0):
    raw = np.zeros(len(data) + 64, np.uint8)
    start = (-raw.ctypes.data) % 64
    raw[start:start + len(data)] = np.frombuffer(data, np.uint8)
    m, err = C.c_void_p(), _Error()
    st = lib.dse_model_load_ex(raw.ctypes.data + start, len(data), flags, C.byref(m), C.byref(err))
    return st, err.message.decode(), m, raw


def run_c(lib, art: Artifact, feeds, outs, flags: int = 0):
    """(outputs, kernel name per node)"""
    st, msg, m, keep = load(lib, art.to_bytes(), flags)
    assert st == 0, msg
    s, err = C.c_void_p(), _Error()
    try:
        kernels = [lib.dse_model_node_kernel(m, k).decode() for k in range(lib.dse_model_node_count(m))]
        assert lib.dse_session_create(m, None, 0, C.byref(s), C.byref(err)) == 0, err.message
        for i, a in enumerate(feeds):
            a = np.ascontiguousarray(a)
            assert lib.dse_session_set_input(s, i, a.ctypes.data, a.nbytes, C.byref(err)) == 0, err.message
        assert lib.dse_session_run(s, C.byref(err)) == 0, err.message
        res = []
        for i, (dt, shape) in enumerate(outs):
            p, n = C.c_void_p(), C.c_size_t()
            assert lib.dse_session_get_output(s, i, C.byref(p), C.byref(n)) == 0
            res.append(np.frombuffer(C.string_at(p, n.value), dt).reshape(shape).copy())
        return res, kernels
    finally:
        lib.dse_session_free(s)
        lib.dse_model_free(m)
        del keep


# -- one-node artifacts -------------------------------------------------------------------------

class Net:
    def __init__(self):
        self.tensors, self.inputs, self.feeds, self.outs, self.arena = [], [], [], [], 0

    def _arena(self, name, dtype, shape):
        t = TensorRec.arena(name, dtype, shape, self.arena)
        self.arena += -(-t.nbytes // 64) * 64
        self.tensors.append(t)
        return len(self.tensors) - 1

    def inp(self, a):
        a = np.ascontiguousarray(a)
        i = self._arena(f"in{len(self.inputs)}", a.dtype.name, a.shape)
        self.inputs.append(i)
        self.feeds.append(a)
        return i

    def const(self, a, dtype=None, layout=0):
        self.tensors.append(TensorRec.const(f"c{len(self.tensors)}", np.asarray(a), dtype=dtype, layout=layout))
        return len(self.tensors) - 1

    def tattr(self, a, dtype):
        return TensorAttr(self.const(np.asarray(a).astype(dtype), dtype))

    def out(self, dtype, shape):
        self.outs.append((np.dtype(dtype), tuple(shape)))
        return self._arena(f"out{len(self.outs) - 1}", np.dtype(dtype).name, shape)

    def build(self, op, ins, outs, attrs, scratch=0):
        node = NodeRec(op_id(op), tuple(ins), tuple(outs), attrs, name=op.lower())
        off = self.arena
        return Artifact(tuple(self.tensors), (node,), tuple(self.inputs), tuple(outs), off + scratch, off, scratch)


def weighted_attrs(net, zp_in, zp_out, M, n, qmin=-128, qmax=127, out_scale=None, act=None):
    a = dict(zp_in=zp_in, zp_out=zp_out, qmin=qmin, qmax=qmax, float_out=int(out_scale is not None))
    if out_scale is not None:
        a["out_scale"] = net.tattr(out_scale, "float32")
        a["act_min"], a["act_max"] = act if act else (float("-inf"), float("inf"))
    else:
        a["M"], a["shift"] = net.tattr(M, "int32"), net.tattr(n, "int32")
    return a


def rng_mults(rng, C, lo=-20, hi=4):
    M, n = arith.quantize_multiplier(2.0 ** rng.uniform(lo, hi, C))
    return M.astype(np.int64), n.astype(np.int64)


def rand_i8(rng, shape, lo=-128, hi=127):
    return rng.integers(lo, hi + 1, shape).astype(np.int8)


def rand_w(rng, shape):
    return rng.integers(-127, 128, shape).astype(np.int8)


def rand_bias(rng, C, K, big=False):
    room = arith.accumulator_headroom(K)
    lim = room if big else min(room, 1 << 20)
    return rng.integers(-lim, lim + 1, C).astype(np.int64)


def ONES(C):
    """out_scale 1.0: a float_out node then returns its int32 accumulators (exact below 2^24)."""
    return np.ones(C, np.float32)


def float_ref(acc, scale, axis, act):
    y = intref.dequantize_acc(acc, scale, axis)
    if act:
        y = np.minimum(np.maximum(y, np.float32(act[0])), np.float32(act[1]))
    return y


def check_both(lib, art, feeds, outs, ref, want_opt=None):
    """Optimised and REF kernels both give `ref`'s bytes; returns the optimised run's kernel names."""
    want = np.ascontiguousarray(ref).tobytes()
    got_opt, k_opt = run_c(lib, art, feeds, outs)
    got_ref, k_ref = run_c(lib, art, feeds, outs, LOAD_REF)
    assert all(k.endswith("__ref") for k in k_ref), k_ref
    assert got_ref[0].tobytes() == want, f"REF: {int((got_ref[0] != ref).sum())} of {ref.size} differ"
    assert got_opt[0].tobytes() == want, f"{k_opt}: {int((got_opt[0] != ref).sum())} of {ref.size} differ"
    if want_opt and AVX2:
        assert k_opt[0].endswith(want_opt), k_opt
    return k_opt


def conv_case(x, w, bias, zp_in, M, n, zp_out, strides, pads, dil, group, layout, qmin=-128, qmax=127,
              out_scale=None, act=None, scratch=True):
    net = Net()
    ref = intref.conv_int8(x, zp_in, w, bias, M, n, zp_out, strides, pads, dil, group, qmin, qmax,
                           acc_only=out_scale is not None)
    if out_scale is not None:
        ref = float_ref(ref, out_scale, 1, act)
    xi, wi, bi = net.inp(x), net.const(w, layout=layout), net.const(bias.astype(np.int32))
    yi = net.out(ref.dtype, ref.shape)
    attrs = dict(kernel_shape=list(w.shape[2:]), strides=strides, pads=pads, dilations=dil, group=group,
                 **weighted_attrs(net, zp_in, zp_out, M, n, qmin, qmax, out_scale, act))
    dw = group == x.shape[1] == w.shape[0] and w.shape[1] == 1
    K, P = int(np.prod(w.shape[1:])), int(np.prod(ref.shape[2:]))
    # the exporter's plan (scratch="older": the GEMM plan alone, as exports before the tiles across images)
    plan = (conv_i8_plan(K, P, x.shape[0]) if group == 1 and scratch != "older" else packed_gemm_plan(K, P)) \
        if group == 1 or dw else 0
    art = net.build("Conv", [xi, wi, bi], [yi], attrs, plan if scratch else 0)
    return art, net.feeds, net.outs, ref


def gemm_case(x, w, bias, zp_in, M, n, zp_out, trans_b, layout, qmin=-128, qmax=127, out_scale=None, act=None,
              op="Gemm", scratch=True):
    net = Net()
    x2 = x.reshape(-1, x.shape[-1])
    ref = intref.gemm_int8(x2, zp_in, w, bias, M, n, zp_out, trans_b, qmin, qmax, acc_only=out_scale is not None)
    if out_scale is not None:
        ref = float_ref(ref, out_scale, -1, act)
    ref = ref.reshape(x.shape[:-1] + (ref.shape[-1],))
    xi, wi, bi = net.inp(x), net.const(w, layout=layout), net.const(bias.astype(np.int32))
    yi = net.out(ref.dtype, ref.shape)
    attrs = weighted_attrs(net, zp_in, zp_out, M, n, qmin, qmax, out_scale, act)
    if op == "Gemm":
        attrs.update(transA=0, transB=trans_b, alpha=1.0, beta=1.0)
    K = x.shape[-1]
    plan = packed_gemm_plan(K, x2.shape[0])
    return net.build(op, [xi, wi, bi], [yi], attrs, plan if scratch else 0), net.feeds, net.outs, ref


# -- the layouts in Python ----------------------------------------------------------------------

@pytest.mark.parametrize("shape", [(1, 1), (7, 3), (8, 4), (9, 5), (17, 2, 3, 3), (16, 33), (3, 1, 7)])
def test_pack_roundtrip(shape):
    rng = np.random.default_rng(len(shape) + shape[0])
    w = rand_w(rng, shape)
    for layout in (1, 2) if len(shape) == 2 else (1,):
        data = pack_weights(w, layout)
        R, K = (shape[0], int(np.prod(shape[1:]))) if layout == 1 else (shape[1], shape[0])
        assert len(data) == -(-R // 8) * 8 * -(-K // 4) * 4
        assert np.array_equal(unpack_weights(data, layout, shape), w)
        blk = np.frombuffer(data, np.int8)
        W = w.reshape(R, K) if layout == 1 else w.T
        Kb = -(-K // 4)
        for r, k in [(0, 0), (R - 1, K - 1), (R // 2, K // 3)]:   # the spec's byte formula
            assert blk[((r // 8) * Kb + k // 4) * 32 + (r % 8) * 4 + k % 4] == W[r, k]
        t = TensorRec.const("w", w, layout=layout)
        assert t.nbytes == len(t.data) == len(data) and np.array_equal(t.array(), w)
        art = Artifact((t, TensorRec.arena("x", "float32", (1,), 0)), (), (1,), (1,), 64)
        back = read(art.to_bytes())
        assert back.tensors[0].layout == layout and np.array_equal(back.tensors[0].array(), w)
    R, K = shape[0], int(np.prod(shape[1:]))
    Kb = -(-K // 4)
    pads = ([((R // 8) * Kb) * 32 + (R % 8) * 4] if R % 8 else []) + ([(Kb - 1) * 32 + 3] if K % 4 else [])
    for at in pads:   # a padding byte (row R, or k = 4*Kb - 1 of row 0) that is not 0: refused
        bad = bytearray(pack_weights(w, 1))
        bad[at] = 1
        with pytest.raises(ModelError, match="padding"):
            unpack_weights(bytes(bad), 1, shape)


def test_layout_rules_python():
    with pytest.raises(ModelError):
        TensorRec.const("w", np.zeros((4,), np.int8), layout=1)           # rank 1
    with pytest.raises(ModelError):
        TensorRec.const("w", np.zeros((4, 4), np.float32), layout=1)      # not int8
    with pytest.raises(ModelError):
        TensorRec.const("w", np.zeros((4, 4, 3), np.int8), layout=2)      # layout 2 is rank 2
    t = TensorRec("x", "int8", (4, 4), 1, 0, None, 1)                     # an arena tensor cannot be packed
    with pytest.raises(ModelError, match="layout"):
        Artifact((t,), (), (0,), (0,), 64)


def test_exporter_packs_only_static_int8_weights(tmp_path):
    """Static int8 MatMul/Gemm/Conv weights are packed; dynamic quantisation keeps layout 0
    (its kernels, kernels/ref/dyn_i8.c, read row-major weights)."""
    import dsedge
    import dsedge.zoo as zoo
    from dsedge.export import save_dse
    m = zoo.build("transformer_encoder", seq=8, dim=32, heads=2, layers=1, vocab=50)
    src = tmp_path / "t.onnx"
    src.write_bytes(m.SerializeToString())
    feeds = zoo.random_feeds(m, 3, 0)
    calib = [{k: v[i] for k, v in feeds.items()} for i in range(3)]
    for mode, res in (("dynamic", dsedge.quantize(str(src), None, progress=False)),
                      ("static", dsedge.quantize(str(src), calib, progress=False, method="minmax"))):
        save_dse(res, tmp_path / f"{mode}.dse")
        art = read(tmp_path / f"{mode}.dse")
        packed = [t for t in art.tensors if t.layout]
        if mode == "dynamic":
            assert not packed
        else:
            assert packed and all(t.dtype == "int8" and len(t.shape) == 2 for t in packed)
            with dsedge.Runtime(str(tmp_path / f"{mode}.dse")) as rt, \
                    dsedge.Runtime(str(tmp_path / f"{mode}.dse"), kernels="ref") as rr:
                assert rt.run(calib[0])[rt.outputs[0].name].tobytes() == rr.run(calib[0])[rr.outputs[0].name].tobytes()


# -- the C loader -------------------------------------------------------------------------------

def test_loader_layout_rules(lib):
    rng = np.random.default_rng(5)
    x, w = rand_i8(rng, (1, 3, 5, 5)), rand_w(rng, (4, 3, 3, 3))
    M, n = rng_mults(rng, 4)
    b = rand_bias(rng, 4, 27)
    art, feeds, outs, ref = conv_case(x, w, b, 3, M, n, -2, [1, 1], [1, 1, 1, 1], [1, 1], 1, 1)
    assert run_c(lib, art, feeds, outs)[0][0].tobytes() == ref.tobytes()
    data = bytearray(art.to_bytes())
    # a packed weight read by a kernel that does not read layouts: an int8 Conv with group 2 refuses layout 1
    xg, wg = rand_i8(rng, (1, 4, 5, 5)), rand_w(rng, (4, 2, 3, 3))
    art2 = conv_case(xg, wg, b, 3, M, n, -2, [1, 1], [1, 1, 1, 1], [1, 1], 2, 0)[0]
    t = list(art2.tensors)
    wi = art2.nodes[0].inputs[1]
    t[wi] = TensorRec(t[wi].name, "int8", t[wi].shape, 0, 0, pack_weights(wg, 1), 1)
    bad = Artifact(tuple(t), art2.nodes, art2.inputs, art2.outputs, art2.arena_size, art2.scratch_offset, art2.scratch_size)
    st, msg, m, keep = load(lib, bad.to_bytes())
    assert st != 0 and "layout 1" in msg, msg
    # a packed tensor where no kernel reads its layout (the bias position is a plain int32, so use
    # a packed weight as the input of a Relu table kernel: rejected by the loader)
    net = Net()
    xi = net.inp(rand_i8(rng, (4, 4)))
    ci = net.const(rand_w(rng, (4, 4)), layout=1)
    yi = net.out("int8", (4, 4))
    node = NodeRec(op_id("Add"), (xi, ci), (yi,), dict(za=0, zb=0, Ma=1 << 30, Mb=1 << 30, shift=31, zp_out=0,
                                                        qmin=-128, qmax=127))
    st, msg, m, keep = load(lib, Artifact(tuple(net.tensors), (node,), (xi,), (yi,), net.arena).to_bytes())
    assert st != 0 and "packed layout" in msg, msg
    del data


# -- kernels ------------------------------------------------------------------------------------

CONV = [   # x shape, w shape, strides, pads, dilations
    ((1, 3, 7, 9), (5, 3, 3, 3), [2, 1], [1, 0, 2, 1], [1, 2]),
    ((2, 5, 8, 8), (7, 5, 1, 1), [1, 1], [0, 0, 0, 0], [1, 1]),          # 1x1 direct, batch 2
    ((1, 17, 9, 11), (17, 17, 1, 1), [1, 1], [0, 0, 0, 0], [1, 1]),      # odd K, odd P
    ((1, 1, 6, 6), (1, 1, 3, 3), [1, 1], [1, 1, 1, 1], [1, 1]),          # one channel
    ((1, 9, 20, 21), (16, 9, 3, 3), [1, 1], [1, 1, 1, 1], [1, 1]),       # P = 420: two tiles
    ((1, 13, 23, 17), (9, 13, 1, 1), [1, 1], [0, 0, 0, 0], [1, 1]),      # 1x1, P = 391 (tile tail 135)
    ((1, 4, 15, 15), (8, 4, 5, 5), [3, 3], [2, 2, 2, 2], [1, 1]),
    ((1, 3, 17, 19), (15, 3, 7, 7), [2, 2], [3, 3, 3, 3], [1, 1]),       # stem-like 7x7/2
    ((1, 6, 12, 12), (3, 6, 3, 3), [1, 1], [2, 2, 2, 2], [2, 2]),        # dilated
    ((1, 8, 9, 9), (12, 8, 1, 1), [2, 2], [0, 0, 0, 0], [1, 1]),         # 1x1 strided
    ((1, 2, 5, 40), (3, 2, 1, 4), [1, 3], [0, 5, 0, 0], [1, 1]),         # pad begin only, wide rows
    ((1, 520, 3, 3), (2, 520, 3, 3), [1, 1], [1, 1, 1, 1], [1, 1]),      # K = 4680
    ((2, 3, 31), (4, 3, 5), [3], [2, 1], [2]),                           # 1-D
    ((1, 2, 4, 5, 6), (3, 2, 2, 3, 2), [1, 2, 1], [1, 0, 1, 0, 1, 1], [1, 1, 2]),   # 3-D
    ((1, 16, 7, 7), (33, 16, 1, 1), [1, 1], [0, 0, 0, 0], [1, 1]),
    ((1, 255, 20, 13), (12, 255, 1, 1), [1, 1], [0, 0, 0, 0], [1, 1]),   # 1x1, K = 255 (odd), P = 260: two tiles
    ((2, 128, 4, 9), (9, 128, 1, 1), [1, 1], [0, 0, 0, 0], [1, 1]),      # 1x1, K = 128, P = 36
    # (H, 1) "1-D" convs as TF/JAX write them: the unit W axis is shifted out before im2col
    ((1, 6, 300, 1), (5, 6, 5, 1), [2, 1], [2, 0, 1, 0], [2, 1]),        # strided, dilated, padded H; P = 148
    ((2, 5, 3, 40, 1), (4, 5, 2, 3, 1), [1, 2, 1], [0, 1, 0, 1, 0, 0], [1, 1, 1]),   # 3-D with a unit W
    # tiles of < 16 pixels (small images, batches of frames): rows staged as [pixel][k] (the im2row
    # path) where K * P <= 4096 and the W dilation is 1, else per pixel and k
    ((16, 129, 4), (128, 129, 3), [1], [1, 1], [1]),                     # silero-like: K = 387, P = 4
    ((3, 1, 576), (7, 1, 256), [128], [0, 0], [1]),                      # STFT-like: one window of 256 per pixel
    ((2, 64, 4), (9, 64, 3), [2], [1, 1], [1]),                          # P = 2
    ((3, 5, 2), (4, 5, 3), [1], [2, 2], [1]),                            # padding wider than the input
    ((2, 5, 3, 4), (6, 5, 3, 3), [1, 1], [1, 1, 1, 1], [1, 1]),          # 2-D, P = 12
    ((1, 4, 5, 5), (3, 4, 2, 2), [1, 1], [0, 0, 0, 1], [1, 2]),          # W dilation 2: per pixel and k
    ((2, 300, 5), (4, 300, 3), [1], [1, 1], [1]),                        # K * P = 4500: per pixel and k
    ((2, 3, 2, 2, 2), (4, 3, 2, 2, 2), [1, 1, 1], [1, 0, 1, 0, 1, 1], [1, 1, 1]),   # 3-D, P = 12
    ((9, 520, 2), (5, 520, 9), [1], [4, 4], [1]),                        # K = 4680: tiles of 14 columns across 2-pixel images
    ((40, 7, 1, 1), (9, 7, 1, 1), [1, 1], [0, 0, 0, 0], [1, 1]),         # 1x1 on 1x1 images: one tile of 40
]


def _out_pixels(case) -> int:
    xs, ws, st, pd, dl = case
    nd, P = len(xs) - 2, 1
    for i in range(nd):
        P *= (xs[2 + i] + pd[i] + pd[nd + i] - dl[i] * (ws[2 + i] - 1) - 1) // st[i] + 1
    return P


@pytest.mark.parametrize("gi", range(len(CONV)))
@pytest.mark.parametrize("zps", [(-128, 127), (127, -128), (5, -7)])
def test_conv(lib, gi, zps):
    xs, ws, st, pd, dl = CONV[gi]
    rng = np.random.default_rng(1000 * gi + zps[0] + 300)
    K = int(np.prod(ws[1:]))
    x, w = rand_i8(rng, xs), rand_w(rng, ws)
    M, n = rng_mults(rng, ws[0])
    b = rand_bias(rng, ws[0], K, big=gi == 11)
    for layout in (1, 0):
        art, feeds, outs, ref = conv_case(x, w, b, zps[0], M, n, zps[1], st, pd, dl, 1, layout)
        check_both(lib, art, feeds, outs, ref, "__avx2" if layout == 1 else None)
    # float_out with scale 1: the int32 sums themselves (exact in float32 below 2^24)
    check_both(lib, *conv_case(x, w, b, zps[0], None, None, 0, st, pd, dl, 1, 1, out_scale=ONES(ws[0]))[:4], "__avx2")


@pytest.mark.parametrize("gi", [i for i, c in enumerate(CONV) if 0 < int(np.prod(c[1][1:])) and
                                 conv_i8_imgs_tile(int(np.prod(c[1][1:])), _out_pixels(c), c[0][0])])
def test_conv_tiles_across_images_and_an_older_plan(lib, gi):
    """Batches of small images run as tiles across the images when the plan holds them (the exporter's
    plan) and one image at a time with the GEMM plan alone (an older export): REF's bytes either way."""
    xs, ws, st, pd, dl = CONV[gi]
    rng = np.random.default_rng(77 + gi)
    K = int(np.prod(ws[1:]))
    x, w = rand_i8(rng, xs), rand_w(rng, ws)
    M, n = rng_mults(rng, ws[0])
    b = rand_bias(rng, ws[0], K)
    for scratch in (True, "older"):
        art, feeds, outs, ref = conv_case(x, w, b, 3, M, n, -2, st, pd, dl, 1, 1, scratch=scratch)
        check_both(lib, art, feeds, outs, ref, "__avx2")


WINO = [   # 3x3 stride 1 (the exact Winograd F(2x2, 3x3) path on AVX2): x shape, O, pads
    ((1, 9, 20, 21), 16, [1, 1, 1, 1]),
    ((2, 8, 9, 8), 8, [1, 1, 1, 1]),          # batch 2, odd output rows
    ((1, 13, 15, 17), 17, [0, 0, 0, 0]),      # no padding: odd output (13 x 15), C % 4 = 1, O % 8 = 1
    ((1, 16, 12, 30), 9, [2, 1, 0, 2]),       # asymmetric pads
    ((1, 8, 40, 10), 24, [1, 1, 1, 1]),       # several tile rows per block
    ((1, 8, 6, 130), 8, [1, 1, 1, 1]),        # 130 wide: 65 tiles per row (too wide: im2col)
    ((1, 64, 14, 14), 40, [1, 1, 1, 1]),
    ((1, 300, 8, 8), 16, [1, 1, 1, 1]),       # K = 2700
    ((1, 1840, 4, 16), 8, [1, 1, 1, 1]),      # K = 16560: |4 Y| just under 2^31
]


@pytest.mark.parametrize("gi", range(len(WINO)))
@pytest.mark.parametrize("zps", [(-128, 127), (127, -128)])
def test_conv3x3_stride1(lib, gi, zps):
    xs, O, pads = WINO[gi]
    rng = np.random.default_rng(4000 + 10 * gi + zps[0])
    x, w = rand_i8(rng, xs), rand_w(rng, (O, xs[1], 3, 3))
    if gi == len(WINO) - 1:   # the largest sums: extreme inputs and weights of one sign
        x = np.full(xs, 127 if zps[0] == -128 else -128, np.int8)
        w = np.full((O, xs[1], 3, 3), 127, np.int8)
        w[::2] = -127
    K = 9 * xs[1]
    M, n = rng_mults(rng, O)
    b = rand_bias(rng, O, K, big=True)
    art, feeds, outs, ref = conv_case(x, w, b, zps[0], M, n, zps[1], [1, 1], pads, [1, 1], 1, 1)
    check_both(lib, art, feeds, outs, ref, "__avx2")
    check_both(lib, *conv_case(x, w, b, zps[0], None, None, 0, [1, 1], pads, [1, 1], 1, 1, out_scale=ONES(O))[:4], "__avx2")
    if gi in (0, 2):
        scale = (2.0 ** rng.uniform(-20, 0, O)).astype(np.float32)
        check_both(lib, *conv_case(x, w, b, zps[0], None, None, 0, [1, 1], pads, [1, 1], 1, 1, out_scale=scale,
                                   act=(-0.5, 1e3))[:4], "__avx2")
        M2, n2 = rng_mults(rng, O, 0, 6)   # multipliers >= 1
        check_both(lib, *conv_case(x, w, b, zps[0], M2, n2, zps[1], [1, 1], pads, [1, 1], 1, 1)[:4], "__avx2")


def test_conv_clamp_float_out_and_extremes(lib):
    rng = np.random.default_rng(7)
    x, w = rand_i8(rng, (2, 5, 6, 7)), rand_w(rng, (11, 5, 3, 3))
    b = rand_bias(rng, 11, 45)
    M, n = rng_mults(rng, 11, -14, 0)
    geo = ([1, 2], [1, 1, 1, 1], [1, 1], 1, 1)
    check_both(lib, *conv_case(x, w, b, -3, M, n, -100, *geo, qmin=-100, qmax=50)[:4], "__avx2")
    scale = (2.0 ** rng.uniform(-20, 0, 11)).astype(np.float32)
    check_both(lib, *conv_case(x, w, b, -3, None, None, 0, *geo, out_scale=scale)[:4], "__avx2")
    check_both(lib, *conv_case(x, w, b, -3, None, None, 0, *geo, out_scale=scale,
                               act=(0.0, 6.0 * float(scale.mean()) * 1000))[:4], "__avx2")
    # (0, 62), the saturating (2^30, 1), M = 2^31 - 1 with n = 62 / 31, n = 1, tiny M
    M = np.array([0, 2**30, 2**31 - 1, 2**31 - 1, 2**30 + 12345, 1, 2**30, 2**31 - 1, 3, 2**30, 7], np.int64)
    n = np.array([62, 1, 62, 31, 40, 1, 2, 1, 1, 33, 62], np.int64)
    x = rand_i8(rng, (1, 5, 6, 6))
    check_both(lib, *conv_case(x, w, rand_bias(rng, 11, 45, big=True), 0, M, n, 3, [1, 1], [1, 1, 1, 1],
                               [1, 1], 1, 1)[:4], "__avx2")


def test_old_artifact_without_scratch_runs_ref(lib):
    """An artifact planned before the optimised kernels (no scratch) still loads: REF runs it."""
    rng = np.random.default_rng(11)
    x, w = rand_i8(rng, (1, 4, 6, 6)), rand_w(rng, (6, 4, 3, 3))
    M, n = rng_mults(rng, 6)
    b = rand_bias(rng, 6, 36)
    for layout in (0, 1):
        art, feeds, outs, ref = conv_case(x, w, b, 1, M, n, 2, [1, 1], [1, 1, 1, 1], [1, 1], 1, layout, scratch=False)
        got, kernels = run_c(lib, art, feeds, outs)
        assert got[0].tobytes() == ref.tobytes() and kernels == ["dse_i8_conv__ref"]


def test_scratch_region_in_use_runs_ref(lib):
    """An older plan may keep tensors live in the scratch region at a node that planned none
    (scratch_size from another node): the optimised kernel must not take that node (it would
    overwrite them, dse__scratch_free), REF runs it and the tensor survives."""
    rng = np.random.default_rng(13)
    x, w = rand_i8(rng, (1, 4, 6, 6)), rand_w(rng, (6, 4, 3, 3))
    M, n = rng_mults(rng, 6)
    b = rand_bias(rng, 6, 36)
    art, feeds, outs, ref = conv_case(x, w, b, 1, M, n, 2, [1, 1], [1, 1, 1, 1], [1, 1], 1, 1)
    assert run_c(lib, art, feeds, outs)[1] == ["dse_i8_conv__avx2"] or not AVX2
    # a second graph input z placed inside the scratch region (live for the whole run)
    z = rand_i8(rng, (64,))
    t = list(art.tensors) + [TensorRec.arena("z", "int8", z.shape, art.scratch_offset)]
    zi = len(t) - 1
    old = Artifact(tuple(t), art.nodes, art.inputs + (zi,), art.outputs + (zi,), art.arena_size,
                   art.scratch_offset, art.scratch_size)
    got, kernels = run_c(lib, old, feeds + [z], outs + [(np.dtype(np.int8), z.shape)])
    assert kernels == ["dse_i8_conv__ref"]
    assert got[0].tobytes() == ref.tobytes() and got[1].tobytes() == z.tobytes()


DW = [   # x shape, kernel, strides, pads, dilations
    ((1, 1, 5, 5), [3, 3], [1, 1], [1, 1, 1, 1], [1, 1]),
    ((1, 3, 16, 16), [3, 3], [1, 1], [1, 1, 1, 1], [1, 1]),
    ((2, 7, 17, 33), [3, 3], [2, 2], [1, 1, 1, 1], [1, 1]),      # stride 2, batch 2, odd widths
    ((1, 5, 13, 37), [5, 5], [1, 1], [2, 2, 2, 2], [1, 1]),
    ((1, 9, 14, 15), [7, 7], [3, 3], [3, 2, 1, 3], [1, 1]),      # stride 3, asymmetric pads
    ((1, 17, 12, 20), [3, 3], [1, 2], [2, 2, 2, 2], [2, 2]),     # dilation 2
    ((1, 4, 7, 7), [3, 3], [1, 1], [0, 0, 0, 0], [1, 1]),        # no padding
    ((1, 6, 9, 9), [1, 1], [1, 1], [0, 0, 0, 0], [1, 1]),        # 1x1 depthwise
    ((1, 6, 9, 8), [3, 2], [1, 1], [1, 0, 1, 1], [1, 1]),        # non-square, even kernel width
    ((1, 11, 40), [5], [1], [2, 2], [1]),                        # 1-D
    ((1, 3, 2, 50), [3, 3], [1, 1], [1, 1, 1, 1], [1, 1]),       # fewer rows than the kernel
    # output rows narrower than 16 (3x3 narrower than 8): the channel-block path (dwconv_i8.c), tails of channels and pixels
    ((1, 19, 7, 7), [3, 3], [1, 1], [1, 1, 1, 1], [1, 1]),       # 7x7 planes, 3 channels in the last block
    ((2, 24, 28, 28), [3, 3], [2, 2], [1, 1, 1, 1], [1, 1]),     # 28 -> 14, batch 2 (3x3: the tap-pair path below)
    ((1, 8, 14, 14), [5, 5], [1, 1], [2, 2, 2, 2], [1, 1]),      # 5x5: 13 tap pairs
    ((1, 13, 9, 6), [3, 3], [1, 1], [0, 1, 2, 0], [2, 1]),       # asymmetric pads, row dilation
    ((1, 5, 4, 3), [3, 3], [2, 1], [1, 2, 1, 2], [1, 1]),        # padding wider than the input
    # 3x3 on output rows of 8 or more: the tap-pair rows path (dwconv_i8.c), 16/8/4-output tails
    ((1, 3, 6, 16), [3, 3], [1, 1], [1, 1, 1, 1], [1, 1]),       # 16 wide
    ((1, 5, 5, 19), [3, 3], [1, 1], [0, 0, 0, 0], [1, 1]),       # 17 wide, no padding
    ((1, 7, 4, 31), [3, 3], [1, 1], [1, 1, 1, 1], [1, 1]),       # 31 wide
    ((1, 3, 9, 66), [3, 3], [2, 2], [1, 1, 1, 1], [1, 1]),       # 66 -> 33, stride 2
    ((1, 5, 8, 56), [3, 3], [1, 1], [1, 1, 1, 1], [1, 1]),       # 56 wide
    ((1, 3, 6, 112), [3, 3], [1, 1], [1, 1, 1, 1], [1, 1]),      # 112 wide
    ((2, 3, 7, 112), [3, 3], [2, 2], [1, 1, 1, 1], [1, 1]),      # 112 -> 56, batch 2
    ((1, 3, 5, 224), [3, 3], [2, 2], [0, 0, 1, 1], [1, 1]),      # 224 -> 112, pads at the end only
    ((1, 5, 9, 35), [3, 3], [2, 2], [0, 0, 0, 0], [1, 1]),       # stride 2, no padding, 17 wide
    ((1, 9, 8, 63), [3, 3], [2, 2], [1, 1, 1, 1], [1, 1]),       # odd input width, 32 wide
    ((1, 3, 7, 33), [3, 3], [2, 2], [0, 1, 1, 0], [1, 1]),       # asymmetric pads, 16 wide
    ((1, 3, 9, 34), [3, 3], [2, 1], [1, 1, 1, 1], [1, 1]),       # row stride 2, column stride 1
    ((1, 3, 11, 40), [3, 3], [3, 2], [1, 1, 1, 1], [1, 1]),      # row stride 3
    ((1, 3, 6, 20), [3, 3], [1, 1], [2, 2, 2, 2], [1, 1]),       # padding 2: 22 wide
    ((1, 3, 3, 18), [3, 3], [1, 1], [3, 3, 3, 3], [1, 1]),       # padding wider than the kernel
    ((1, 3, 7, 40), [3, 3], [1, 2], [1, 1, 1, 1], [1, 1]),       # column stride 2, row stride 1
    ((1, 5, 2, 40), [3, 3], [2, 2], [1, 1, 1, 1], [1, 1]),       # one output row
    ((1, 2, 5, 600), [3, 3], [2, 2], [1, 1, 1, 1], [1, 1]),      # 300 wide: one output row per step (scratch)
    ((1, 2, 3, 400), [3, 3], [1, 1], [1, 1, 1, 1], [1, 1]),      # 400 wide: beyond the plan, the phase-row path
    ((1, 5, 10, 10), [3, 3], [1, 1], [1, 1, 1, 1], [1, 1]),      # 10 wide: 8, then the last 4 (128-bit)
    ((1, 3, 9, 13), [3, 3], [1, 1], [1, 1, 1, 1], [1, 1]),       # 13 wide: 8, then 8 ending at the row's end
    ((1, 7, 12, 12), [3, 3], [1, 1], [0, 0, 0, 0], [1, 1]),      # 10 wide, no padding
    ((1, 5, 8, 16), [3, 3], [2, 2], [1, 1, 1, 1], [1, 1]),       # 16 -> 8, stride 2
    ((2, 11, 10, 10), [5, 5], [1, 1], [2, 2, 2, 2], [1, 1]),     # 5x5 on 10-wide rows: channel blocks, batch 2
]


@pytest.mark.parametrize("gi", range(len(DW)))
@pytest.mark.parametrize("zps", [(-128, 127), (127, -128), (9, 4)])
def test_depthwise(lib, gi, zps):
    xs, k, st, pd, dl = DW[gi]
    C = xs[1]
    rng = np.random.default_rng(2000 + 10 * gi + zps[0])
    x, w = rand_i8(rng, xs), rand_w(rng, (C, 1, *k))
    M, n = rng_mults(rng, C)
    b = rand_bias(rng, C, int(np.prod(k)))
    layout = 1 if C == 1 else 0   # one channel: group 1, packed like any group-1 conv
    art, feeds, outs, ref = conv_case(x, w, b, zps[0], M, n, zps[1], st, pd, dl, C, layout)
    check_both(lib, art, feeds, outs, ref, "__avx2")
    check_both(lib, *conv_case(x, w, b, zps[0], None, None, 0, st, pd, dl, C, layout, out_scale=ONES(C))[:4], "__avx2")
    if gi == 2:
        scale = (2.0 ** rng.uniform(-20, 0, C)).astype(np.float32)
        check_both(lib, *conv_case(x, w, b, zps[0], None, None, 0, st, pd, dl, C, 0, out_scale=scale,
                                   act=(-1e-3, 1e-2))[:4], "__avx2")
        check_both(lib, *conv_case(x, w, b, zps[0], M, n, zps[1], st, pd, dl, C, 0, qmin=-20, qmax=30)[:4], "__avx2")


def test_grouped_and_multiplier_2_stay_ref(lib):
    rng = np.random.default_rng(3)
    x = rand_i8(rng, (1, 4, 6, 6))
    for ws, group in [((8, 1, 3, 3), 4), ((4, 2, 3, 3), 2)]:
        w = rand_w(rng, ws)
        M, n = rng_mults(rng, ws[0])
        art, feeds, outs, ref = conv_case(x, w, rand_bias(rng, ws[0], 9), 2, M, n, 0, [1, 1], [1, 1, 1, 1], [1, 1], group, 0)
        assert check_both(lib, art, feeds, outs, ref) == ["dse_i8_conv__ref"]


GEMM = [(1, 1, 1), (5, 37, 7), (4, 9, 130), (3, 4100, 9), (17, 16, 8), (300, 33, 17), (2, 15, 1), (8, 3, 16),
        (257, 5, 3), (6, 64, 48)]


@pytest.mark.parametrize("shape", GEMM)
@pytest.mark.parametrize("trans_b", [0, 1])
def test_gemm(lib, shape, trans_b):
    R, K, N = shape
    rng = np.random.default_rng(K + N + trans_b + R)
    x = rand_i8(rng, (R, K))
    w = rand_w(rng, (N, K) if trans_b else (K, N))
    M, n = rng_mults(rng, N)
    b = rand_bias(rng, N, K, big=K > 4096)
    packed = 1 if trans_b else 2
    for layout in (packed, 0):
        want = "__avx2" if layout else None
        check_both(lib, *gemm_case(x, w, b, -128, M, n, 127, trans_b, layout)[:4], want)
        check_both(lib, *gemm_case(x, w, b, 127, M, n, -128, trans_b, layout, qmin=-20, qmax=90)[:4], want)
    scale = (2.0 ** rng.uniform(-20, 4, N)).astype(np.float32)
    check_both(lib, *gemm_case(x, w, b, 3, None, None, 0, trans_b, packed, out_scale=scale)[:4], "__avx2")
    check_both(lib, *gemm_case(x, w, b, -77, None, None, 0, trans_b, packed, out_scale=ONES(N))[:4], "__avx2")


@pytest.mark.parametrize("xshape", [(2, 3, 4100), (4, 7, 33), (33,), (2, 2, 2, 5), (3, 100, 64), (1, 9, 17)])
def test_matmul(lib, xshape):
    rng = np.random.default_rng(sum(xshape))
    K, N = xshape[-1], (3 if xshape[-1] > 4096 else 130 if len(xshape) < 3 else 24 + xshape[-1] % 7)
    x, w = rand_i8(rng, xshape), rand_w(rng, (K, N))
    M, n = rng_mults(rng, N)
    b = rand_bias(rng, N, K)
    for layout in (2, 0):
        want = "__avx2" if layout else None
        check_both(lib, *gemm_case(x, w, b, 1, M, n, -2, 0, layout, op="MatMul")[:4], want)
        check_both(lib, *gemm_case(x, w, np.zeros(N, np.int64), -128, M, n, 127, 0, layout, op="MatMul")[:4], want)
    scale = (2.0 ** rng.uniform(-20, 0, N)).astype(np.float32)
    check_both(lib, *gemm_case(x, w, b, 1, None, None, 0, 0, 2, out_scale=scale, act=(float("-inf"), 0.0),
                               op="MatMul")[:4], "__avx2")
    check_both(lib, *gemm_case(x, w, b, 100, None, None, 0, 0, 2, out_scale=ONES(N), op="MatMul")[:4], "__avx2")


# -- int8 Mul (kernels/avx2/mul_i8.c) ----------------------------------------------------------

def mul_case(a, b, za, zb, M, n, zo, qmin=-128, qmax=127):
    net = Net()
    ref = intref.mul_int8(a, za, b, zb, M, n, zo, qmin, qmax)
    ai, bi = net.inp(a), net.inp(b)
    yi = net.out("int8", ref.shape)
    attrs = dict(za=za, zb=zb, M=int(M), shift=int(n), zp_out=zo, qmin=qmin, qmax=qmax)
    return net.build("Mul", [ai, bi], [yi], attrs), net.feeds, net.outs, ref


MUL_ZPS = [(-128, 127), (127, -128), (-128, -128), (5, -3)]
MUL_LENS = [1, 7, 15, 31, 33, 72, 129]


def mul_bcast(L):
    """The walker's row forms for rows of L elements: [1,C,H,W] x [1,C,1,1] (a varies, b constant),
    the reverse, both varying, a scalar operand, an outer product (rows with a constant a)."""
    return [((1, 3, 1, L), (1, 3, 1, 1)), ((2, 1, L), (2, 1, 1)), ((1, 3, 1, 1), (1, 3, 1, L)),
            ((2, L), (2, L)), ((L,), (1,)), ((1,), (L,)), ((3, 1), (1, L))]


def mul_params(rng):
    """(M, n): random multipliers in [2^30, 2^31) with shifts >= 33 (the usual) and < 33 (p clamped),
    the extremes of both, and multipliers below 2^30 that the loader accepts."""
    out = [(int(rng.integers(1 << 30, 1 << 31)), int(n)) for n in (38, 33, 34, 45, 62, 32, 31, 25, 17, 16, 9, 1)]
    out += [(int(rng.integers(1 << 30, 1 << 31)), int(rng.integers(1, 63))) for _ in range(3)]
    out += [((1 << 31) - 1, 31), (1 << 30, 24), (0, 62), (0, 1), (1, 1), (12345, 20), (3, 40)]
    return out


@pytest.mark.parametrize("L", MUL_LENS)
def test_mul_optimised_equals_ref(lib, L):
    rng = np.random.default_rng(1000 + L)
    params = mul_params(rng)
    for sa, sb in mul_bcast(L):
        a, b = rand_i8(rng, sa), rand_i8(rng, sb)
        for j, (za, zb) in enumerate(MUL_ZPS):
            zo = int(rng.integers(-128, 128)) if j else -128
            qmin, qmax = (-128, 127) if j < 3 else (-40, 90)
            for M, n in params[j::len(MUL_ZPS)] + [params[int(rng.integers(len(params)))]]:
                k = check_both(lib, *mul_case(a, b, za, zb, M, n, zo, qmin, qmax), "__avx2")
                assert k == (["dse_i8_mul__avx2"] if AVX2 else k)


@pytest.mark.parametrize("form", ["rows", "both"])
def test_mul_every_pair_every_shift(lib, form):
    """All 65536 (a, b) pairs, every shift 1..62 with a random multiplier in [2^30, 2^31), zero
    points at both ends: rows with one constant operand ([256,1] x [1,256]) or both varying."""
    rng = np.random.default_rng(7 + (form == "both"))
    q = np.arange(-128, 128, dtype=np.int8)
    a, b = (q.reshape(256, 1), q.reshape(1, 256)) if form == "rows" else (np.repeat(q, 256), np.tile(q, 256))
    for n in range(1, 63):
        M = int(rng.integers(1 << 30, 1 << 31))
        za, zb = [(-128, 127), (127, -128), (-128, -128), (127, 127)][n % 4]
        zo = [-128, 127, 0, int(rng.integers(-128, 128))][n % 4]
        check_both(lib, *mul_case(a, b, za, zb, M, n, zo), "__avx2")


# -- a whole model ------------------------------------------------------------------------------

ZOO = {"mobilenet_v2": dict(input_size=64, num_classes=10, width=0.5),   # depthwise, 1x1, stem 3x3/2
       "resnet50": dict(input_size=64, num_classes=10)}                   # Winograd 3x3, 1x1, 7x7/2, float parts


# -- MaxPool (kernels/avx2/maxpool_i8.c) ---------------------------------------------------------

MAXPOOL = [   # x shape, kernel, strides, pads, dilations, ceil_mode; the AVX2 kernel or REF (None)
    ((1, 3, 112, 112), [3, 3], [2, 2], [1, 1, 1, 1], [1, 1], 0, "__avx2"),    # ResNet's stem
    ((2, 2, 13, 13), [5, 5], [1, 1], [2, 2, 2, 2], [1, 1], 0, "__avx2"),      # YOLO's SPP
    ((1, 2, 9, 37), [3, 2], [1, 2], [1, 0, 2, 1], [2, 3], 1, "__avx2"),       # dilation, ceil, odd width
    ((1, 1, 4, 70), [2, 67], [1, 1], [1, 66, 0, 66], [1, 1], 0, "__avx2"),    # > 64 kernel columns
    ((1, 1, 3, 4), [2, 2], [1, 1], [3, 3, 3, 3], [1, 1], 0, "__avx2"),        # windows of padding only
    ((1, 2, 65), [4], [2], [0, 3], [1], 1, "__avx2"),                         # 1-D, stride 2
    ((1, 1, 2, 4000), [1, 3], [1, 2], [0, 1, 0, 1], [1, 1], 0, "__avx2"),     # a long row
    ((1, 1, 2, 5000), [1, 3], [1, 1], [0, 1, 0, 1], [1, 1], 0, "__ref"),      # longer: REF
    ((1, 2, 9, 9), [3, 3], [3, 3], [0, 0, 0, 0], [1, 1], 0, "__ref"),         # W stride 3: REF
    ((1, 2, 3, 5, 4), [2, 3, 2], [1, 2, 2], [0, 1, 1, 1, 1, 0], [1, 1, 1], 1, "__ref"),   # 3-D: REF
]


@pytest.mark.parametrize("gi", range(len(MAXPOOL)))
def test_maxpool_optimised_equals_ref(lib, gi):
    """int8 MaxPool: the AVX2 kernel (where it covers the node) and REF give intref's bytes; inputs
    all negative (padding must not win: it counts as -128) and full range."""
    xs, k, s, p, d, ceil, want = MAXPOOL[gi]
    rng = np.random.default_rng(900 + gi)
    for hi in (-60, 127):
        x = rand_i8(rng, xs, -128, hi)
        ref = intref.maxpool_int8(x, k, s, p, d, ceil)
        net = Net()
        xi = net.inp(x)
        yi = net.out("int8", ref.shape)
        art = net.build("MaxPool", [xi], [yi], dict(kernel_shape=k, strides=s, pads=p, dilations=d, ceil_mode=ceil,
                                                     auto_pad="NOTSET", storage_order=0))
        check_both(lib, art, net.feeds, net.outs, ref, want)


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(ZOO))
def test_zoo_model_same_bytes_optimised_and_ref(tmp_path, name):
    """A zoo model, quantised with calibration and exported as a user would: packed weights
    where the spec says, the optimised kernels chosen (on AVX2), and the same output bytes with
    both kernel sets, with 1 and 2 threads."""
    import dsedge
    import dsedge.zoo as zoo
    from dsedge.converters.onnx.reader import from_model_proto
    from dsedge.export import save_dse
    from dsedge.quant.quantize import QuantConfig, quantize_graph

    m = zoo.build(name, **ZOO[name])
    g = from_model_proto(m)
    feeds = zoo.random_feeds(m, 6, 0)
    calib = [{k: v[i] for k, v in feeds.items()} for i in range(4)]
    res = quantize_graph(g, calib, QuantConfig(progress=False, eval_feeds=2, method="minmax"))
    path = tmp_path / f"{name}.dse"
    save_dse(res, path)
    art = read(path)
    layouts = {t.layout for t in art.tensors}
    assert {0, 1} <= layouts
    with dsedge.Runtime(str(path)) as rt, dsedge.Runtime(str(path), threads=2) as r2, \
            dsedge.Runtime(str(path), kernels="ref") as rr:
        if AVX2:   # (the bindings' library: on a VNNI CPU the VNNI kernels take the group-1 convs)
            assert any(k.endswith(("__avx2", "vnni")) for k in rt.kernels())
        for i in range(4, 6):
            feed = {k: v[i] for k, v in feeds.items()}
            a, b, c = rt.run(feed), rr.run(feed), r2.run(feed)
            for k in a:
                assert a[k].tobytes() == b[k].tobytes() == c[k].tobytes(), k


# -- arm64: the REF kernels read the packed layouts the same way (qemu) --------------------------

@pytest.mark.skipif(shutil.which("qemu-aarch64") is None, reason="qemu-aarch64 not installed (apt-get install qemu-user)")
def test_packed_layouts_aarch64_identical_bytes(lib, tmp_path):
    """An aarch64 build (zig cc, static musl; the arm64 kernels there, REF where none) runs the
    packed-weight cases and gives this host's bytes (and intref's)."""
    try:
        import ziglang  # noqa: F401
    except ImportError:
        pytest.skip("ziglang not installed")
    import sys
    from dsedge.runtime import _build
    exe_arm = tmp_path / "run_one_arm64"
    _build.build_binary([sys.executable, "-m", "ziglang", "cc", "-target", "aarch64-linux-musl"], exe_arm, csrc=CDIR,
                        arch="arm64", extra_sources=[CDIR / "tests" / "run_one.c"],
                        ldflags=["-static"])   # a link flag: the objects are the other arm64 tests' (object cache)
    rng = np.random.default_rng(21)
    cases = []
    x, w = rand_i8(rng, (1, 9, 11, 13)), rand_w(rng, (13, 9, 3, 3))
    M, n = rng_mults(rng, 13)
    b = rand_bias(rng, 13, 81)
    cases.append(conv_case(x, w, b, -5, M, n, 7, [1, 1], [1, 1, 1, 1], [1, 1], 1, 1))
    cases.append(conv_case(x, w, b, 3, None, None, 0, [2, 1], [0, 1, 2, 1], [1, 2], 1, 1, out_scale=ONES(13)))
    x1, w1 = rand_i8(rng, (1, 17, 6, 7)), rand_w(rng, (9, 17, 1, 1))
    M1, n1 = rng_mults(rng, 9)
    cases.append(conv_case(x1, w1, rand_bias(rng, 9, 17), 127, M1, n1, -128, [1, 1], [0, 0, 0, 0], [1, 1], 1, 1))
    xd, wd = rand_i8(rng, (1, 7, 9, 21)), rand_w(rng, (7, 1, 3, 3))
    Md, nd = rng_mults(rng, 7)
    cases.append(conv_case(xd, wd, rand_bias(rng, 7, 9), 0, Md, nd, 1, [2, 2], [1, 1, 1, 1], [1, 1], 7, 0))
    for tb in (0, 1):
        xg, wg = rand_i8(rng, (5, 37)), rand_w(rng, (11, 37) if tb else (37, 11))
        Mg, ng = rng_mults(rng, 11)
        cases.append(gemm_case(xg, wg, rand_bias(rng, 11, 37), -9, Mg, ng, 4, tb, 1 if tb else 2))
    xm, wm = rand_i8(rng, (2, 3, 19)), rand_w(rng, (19, 10))
    Mm, nm = rng_mults(rng, 10)
    cases.append(gemm_case(xm, wm, rand_bias(rng, 10, 19), 2, Mm, nm, -3, 0, 2, op="MatMul"))
    for k, (art, feeds, outs, ref) in enumerate(cases):
        model = tmp_path / f"m{k}.dse"
        model.write_bytes(art.to_bytes())
        ins = []
        for i, f in enumerate(feeds):
            p = tmp_path / f"m{k}.in{i}"
            p.write_bytes(np.ascontiguousarray(f).tobytes())
            ins.append(str(p))
        o = tmp_path / f"m{k}.out"
        subprocess.run(["qemu-aarch64", str(exe_arm), str(model), str(o), *ins], check=True, capture_output=True,
                       timeout=120)
        host = run_c(lib, art, feeds, outs)[0][0].tobytes()
        assert o.read_bytes() == host == np.ascontiguousarray(ref).tobytes(), f"case {k}: arm64, host, intref differ"
