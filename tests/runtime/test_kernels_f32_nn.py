"""The float32 neural-network C kernels (runtimes/c/kernels/ref/{conv,conv_transpose,gemm,matmul,
pool,resize,softmax,norm,rnn}.c) against independent oracles.

Each case builds a one-node `.dse` with `dsedge.artifact` as docs/kernels.md specifies (explicit
kernel_shape/strides/pads/dilations, axis normalised, fused act_min/act_max), runs it through the
public C ABI (libdsedge.so built with the Makefile into a temp dir, called with ctypes) and compares
with the numpy reference of the op registry (`dsedge.ops` REGISTRY refs) and with onnxruntime.

Tolerances, per kernel (the C kernels sum sequentially in one documented order; numpy/BLAS and
onnxruntime sum in others, and use libm):
  * exact (byte-identical to the numpy reference): MaxPool (+Indices), AveragePool, GlobalMaxPool,
    BatchNormalization, Resize nearest and linear;
  * |c - ref| <= 1e-5 * |ref| + 1e-5 * max|ref| (sums: Conv, ConvTranspose, Gemm, MatMul,
    GlobalAveragePool, InstanceNormalization, LayerNormalization, Softmax, LogSoftmax);
  * LSTM/GRU: the same with 2e-5 (sigmoid/tanh of the runtime's mathf.c, recurrences over T).
One case is also built for arm64 (zig cc -target aarch64-linux-musl) and run under qemu-aarch64:
its output bytes must equal the x86_64 build's. Skips only when no C compiler/make is present.
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

from dsedge.runtime import _Error, _declare
from dsedge.artifact import Artifact, NodeRec, TensorRec, op_id
from dsedge.export.scratch import rnn_f32_plan
from dsedge.ops import REGISTRY

ROOT = Path(__file__).resolve().parents[2]
CDIR = Path(os.environ.get("DSEDGE_C_SRC") or ROOT / "runtimes" / "c")   # override: a copy of the C tree
CC = os.environ.get("CC") or shutil.which("cc") or shutil.which("gcc") or shutil.which("clang")
pytestmark = pytest.mark.skipif(CC is None or shutil.which("make") is None, reason="no C compiler or make")

RTOL = 1e-5


Error = _Error   # the bindings' declaration of dse_error


@pytest.fixture(scope="module")
def build(tmp_path_factory):
    return make_checked(CC, "libdsedge.so")


@pytest.fixture(scope="module")
def lib(build):
    pre = os.environ.get("DSE_TEST_PRELOAD")   # development only: a library providing missing symbols
    if pre:
        C.CDLL(pre, mode=C.RTLD_GLOBAL)
    L = C.CDLL(str(build / "libdsedge.so"))
    _declare(L)   # the public C API's signatures, as the bindings declare them
    return L


# ------------------------------------------------------------------------------------------
# one-node artifacts
# ------------------------------------------------------------------------------------------

def _shape_of(v):
    return tuple(np.shape(v))


def make_node(op, inputs, outputs, attrs=None, scratch=0, consts_only=False):
    """inputs: list of (array, is_const) or None (absent); outputs: list of (dtype, shape) or None.
    Returns (Artifact, feeds in graph-input order). consts_only: every input is a constant."""
    tensors, feeds, in_idx, g_inputs = [], [], [], []
    for k, item in enumerate(inputs):
        if item is None:
            in_idx.append(-1)
            continue
        arr, const = item
        arr = np.ascontiguousarray(arr)
        in_idx.append(len(tensors))
        if const or consts_only:
            tensors.append(TensorRec.const(f"in{k}", arr))
        else:
            tensors.append(None)      # arena, placed below
            feeds.append((len(tensors) - 1, arr))
    off = 0
    for ti, arr in feeds:
        tensors[ti] = TensorRec.arena(f"in{ti}", arr.dtype.name, arr.shape, off)
        g_inputs.append(ti)
        off += -(-max(arr.nbytes, 1) // 64) * 64
    out_idx = []
    for k, o in enumerate(outputs):
        if o is None:
            out_idx.append(-1)
            continue
        dt, shape = o
        t = TensorRec.arena(f"out{k}", dt, shape, off)
        out_idx.append(len(tensors))
        tensors.append(t)
        off += -(-max(t.nbytes, 1) // 64) * 64
    s_off = off
    off += -(-scratch // 64) * 64
    node = NodeRec(op_id(op), tuple(in_idx), tuple(out_idx), attrs or {}, name=f"{op.lower()}0")
    art = Artifact(tensors=tuple(tensors), nodes=(node,), inputs=tuple(g_inputs),
                   outputs=tuple(i for i in out_idx if i >= 0), arena_size=max(off, 64),
                   scratch_offset=s_off, scratch_size=scratch)
    return art, [a for _, a in feeds]


def run_c(lib, art, feeds, flags=1):
    """Outputs of the artifact (load flags: 1 = verify the weights; | 2 = REF kernels only)."""
    data = art.to_bytes()
    raw = np.zeros(len(data) + 64, np.uint8)
    start = (-raw.ctypes.data) % 64
    raw[start:start + len(data)] = np.frombuffer(data, np.uint8)
    m, s, err = C.c_void_p(), C.c_void_p(), Error()
    st = lib.dse_model_load_ex(raw.ctypes.data + start, len(data), flags, C.byref(m), C.byref(err))
    assert st == 0, err.message.decode()
    try:
        assert lib.dse_session_create(m, None, 0, C.byref(s), C.byref(err)) == 0, err.message.decode()
        for i, a in enumerate(feeds):
            assert lib.dse_session_set_input(s, i, a.ctypes.data, a.nbytes, C.byref(err)) == 0, err.message.decode()
        assert lib.dse_session_run(s, C.byref(err)) == 0, err.message.decode()
        outs = []
        for i, oi in enumerate(art.outputs):
            t = art.tensors[oi]
            p, nb = C.c_void_p(), C.c_size_t()
            lib.dse_session_get_output(s, i, C.byref(p), C.byref(nb))
            buf = (C.c_uint8 * nb.value).from_address(p.value) if nb.value else b""
            outs.append(np.frombuffer(bytes(buf), dtype=t.dtype).reshape(t.shape).copy())
        return outs
    finally:
        if s.value:
            lib.dse_session_free(s)
        lib.dse_model_free(m)


def load_status(lib, art):
    data = art.to_bytes()
    raw = np.zeros(len(data) + 64, np.uint8)
    start = (-raw.ctypes.data) % 64
    raw[start:start + len(data)] = np.frombuffer(data, np.uint8)
    m, err = C.c_void_p(), Error()
    st = lib.dse_model_load_ex(raw.ctypes.data + start, len(data), 0, C.byref(m), C.byref(err))
    if st == 0:
        lib.dse_model_free(m)
    return st, err.message.decode()


def ref(op, *inputs, **attrs):
    out = REGISTRY.get(op).ref(*inputs, **attrs)
    return out if isinstance(out, tuple) else (out,)


def ort(op, inputs, attrs, n_out=1, opset=21, out_types=None):
    """onnxruntime on a one-node model (inputs: arrays or None for absent)."""
    import onnx
    import onnxruntime as rt
    from onnx import helper, numpy_helper
    names, inits, graph_in, feeds = [], [], [], {}
    for k, a in enumerate(inputs):
        if a is None:
            names.append("")
            continue
        nm = f"i{k}"
        names.append(nm)
        if k == 0:
            graph_in.append(helper.make_tensor_value_info(nm, onnx.helper.np_dtype_to_tensor_dtype(a.dtype), a.shape))
            feeds[nm] = a
        else:
            inits.append(numpy_helper.from_array(a, nm))
    outs = [f"o{k}" for k in range(n_out)]
    node = helper.make_node(op, names, outs, **attrs)
    g = helper.make_graph([node], "g", graph_in, [helper.make_tensor_value_info(o, t, None) for o, t in zip(outs, out_types or [onnx.TensorProto.FLOAT] * n_out)], inits)
    model = helper.make_model(g, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = 10
    so = rt.SessionOptions()
    so.graph_optimization_level = rt.GraphOptimizationLevel.ORT_DISABLE_ALL
    sess = rt.InferenceSession(model.SerializeToString(), so, providers=["CPUExecutionProvider"])
    return sess.run(None, feeds)


def close(c, r, tol=RTOL):
    r = np.asarray(r, np.float32)
    assert c.shape == r.shape, (c.shape, r.shape)
    scale = float(np.abs(r).max()) if r.size else 0.0
    np.testing.assert_allclose(c, r, rtol=tol, atol=tol * max(scale, 1e-30))


def exact(c, r):
    r = np.asarray(r)
    assert c.shape == r.shape and c.dtype == r.dtype, (c.shape, r.shape, c.dtype, r.dtype)
    assert c.tobytes() == r.tobytes(), f"max diff {np.abs(c.astype(np.float64) - r).max()}"


def rnd(rng, *shape, scale=1.0):
    return (rng.standard_normal(shape) * scale).astype(np.float32)


# ------------------------------------------------------------------------------------------
# Conv
# ------------------------------------------------------------------------------------------

CONV_CASES = [
    # x shape, w shape, strides, pads, dilations, group, bias, fp16 w, act
    ((1, 3, 7, 9), (4, 3, 3, 3), (1, 1), (1, 1, 1, 1), (1, 1), 1, True, False, None),
    ((2, 3, 11, 8), (5, 3, 3, 2), (2, 3), (0, 1, 2, 1), (2, 1), 1, False, False, None),
    ((1, 4, 9, 9), (6, 2, 3, 3), (1, 2), (1, 0, 1, 2), (1, 2), 2, True, False, None),
    ((1, 5, 10, 7), (5, 1, 3, 3), (2, 2), (1, 1, 1, 1), (1, 1), 5, True, False, (0.0, 6.0)),   # depthwise + relu6
    ((1, 6, 5, 5), (8, 6, 1, 1), (1, 1), (0, 0, 0, 0), (1, 1), 1, True, True, (0.0, np.inf)),  # 1x1, fp16 weights
    ((2, 3, 13), (4, 3, 3), (2,), (1, 2), (2,), 1, True, False, None),                          # 1-D
    ((1, 4, 17), (4, 1, 5), (1,), (2, 2), (1,), 4, False, True, (-1.0, 1.0)),                   # 1-D depthwise fp16
    ((1, 2, 4, 5, 6), (3, 2, 2, 3, 2), (1, 2, 1), (0, 1, 1, 1, 0, 0), (1, 1, 2), 1, True, False, None),  # 3-D
]


@pytest.mark.parametrize("case", CONV_CASES, ids=[f"conv{i}" for i in range(len(CONV_CASES))])
def test_conv(lib, case):
    xs, ws, s, p, d, g, has_b, f16, act = case
    rng = np.random.default_rng(len(xs) * 100 + ws[0])
    x, w = rnd(rng, *xs), rnd(rng, *ws, scale=0.5)
    if f16:
        w = w.astype(np.float16)
    b = rnd(rng, ws[0]) if has_b else None
    attrs = dict(kernel_shape=list(ws[2:]), strides=list(s), pads=list(p), dilations=list(d), group=g)
    (r,) = ref("Conv", x, w, b, **attrs)
    (o,) = ort("Conv", [x, w.astype(np.float32), b], attrs)
    close(o, r)   # the oracles agree with each other
    cattrs = dict(attrs)
    if act:
        cattrs.update(act_min=act[0], act_max=act[1])
        r = np.clip(r, act[0], act[1])
        o = np.clip(o, act[0], act[1])
    art, feeds = make_node("Conv", [(x, False), (w, True)] + ([(b, True)] if has_b else []),
                           [("float32", r.shape)], cattrs)
    (c,) = run_c(lib, art, feeds)
    close(c, r)
    close(c, o)


def test_conv_check_refuses_bad_geometry(lib):
    x, w = np.zeros((1, 3, 8, 8), np.float32), np.zeros((4, 3, 3, 3), np.float32)
    attrs = dict(kernel_shape=[3, 3], strides=[1, 1], pads=[0, 0, 0, 0], dilations=[1, 1], group=1)
    art, _ = make_node("Conv", [(x, False), (w, True)], [("float32", (1, 4, 7, 6))], attrs)
    st, msg = load_status(lib, art)
    assert st != 0 and "geometry" in msg
    art, _ = make_node("Conv", [(x, False), (w, True)], [("float32", (1, 4, 6, 6))], dict(attrs, group=2))
    assert load_status(lib, art)[0] != 0


# ------------------------------------------------------------------------------------------
# ConvTranspose
# ------------------------------------------------------------------------------------------

CONVT_CASES = [
    ((1, 4, 5, 6), (4, 3, 3, 3), (2, 2), (1, 1, 1, 1), (1, 1), 1, (1, 1), True),
    ((2, 4, 4, 5), (4, 2, 3, 2), (2, 1), (0, 1, 1, 0), (1, 2), 2, (0, 0), True),
    ((1, 3, 7), (3, 2, 4), (3,), (1, 2), (1,), 1, (2,), False),
    ((1, 2, 3, 3), (2, 3, 2, 2), (1, 1), (0, 0, 0, 0), (2, 2), 1, (0, 0), False),
]


@pytest.mark.parametrize("case", CONVT_CASES, ids=[f"convt{i}" for i in range(len(CONVT_CASES))])
def test_conv_transpose(lib, case):
    xs, ws, s, p, d, g, op_, has_b = case
    rng = np.random.default_rng(7 + ws[1])
    x, w = rnd(rng, *xs), rnd(rng, *ws, scale=0.5)
    b = rnd(rng, ws[1] * g) if has_b else None
    attrs = dict(kernel_shape=list(ws[2:]), strides=list(s), pads=list(p), dilations=list(d), group=g,
                 output_padding=list(op_))
    (r,) = ref("ConvTranspose", x, w, b, **attrs)
    (o,) = ort("ConvTranspose", [x, w, b], attrs)
    close(o, r)
    art, feeds = make_node("ConvTranspose", [(x, False), (w, True)] + ([(b, True)] if has_b else []),
                           [("float32", r.shape)], dict(attrs, act_min=-1.5, act_max=np.inf))
    (c,) = run_c(lib, art, feeds)
    close(c, np.maximum(r, -1.5))


# ------------------------------------------------------------------------------------------
# Gemm, MatMul
# ------------------------------------------------------------------------------------------

GEMM_CASES = [
    # M, K, N, transA, transB, alpha, beta, C shape ("none" = absent), fp16 B
    (3, 5, 4, 0, 0, 1.0, 1.0, (4,), False),
    (3, 5, 4, 1, 0, 0.5, 2.0, (3, 1), False),
    (3, 5, 4, 0, 1, 1.0, 0.5, (1, 4), True),
    (7, 33, 6, 1, 1, 1.25, 1.0, (7, 6), False),
    (2, 3, 5, 0, 1, 1.0, 1.0, (), False),
    (4, 8, 3, 0, 0, 2.0, 0.0, (4, 3), False),
    (1, 17, 9, 0, 1, 1.0, 1.0, "none", True),
]


@pytest.mark.parametrize("case", GEMM_CASES, ids=[f"gemm{i}" for i in range(len(GEMM_CASES))])
def test_gemm(lib, case):
    M, K, N, ta, tb, alpha, beta, cs, f16 = case
    rng = np.random.default_rng(M * K + N)
    a = rnd(rng, *((K, M) if ta else (M, K)))
    b = rnd(rng, *((N, K) if tb else (K, N)))
    if f16:
        b = b.astype(np.float16)
    c = None if cs == "none" else rnd(rng, *cs)
    attrs = dict(transA=ta, transB=tb, alpha=alpha, beta=beta)
    (r,) = ref("Gemm", a, b, c, **attrs)
    (o,) = ort("Gemm", [a, b.astype(np.float32), c], attrs)
    close(o, r)
    art, feeds = make_node("Gemm", [(a, False), (b, True)] + ([] if c is None else [(c, True)]),
                           [("float32", r.shape)], attrs)
    (y,) = run_c(lib, art, feeds)
    close(y, r)


MATMUL_CASES = [
    ((3, 4), (4, 5), False),
    ((2, 3, 4, 5), (5, 6), False),
    ((2, 1, 3, 4), (5, 4, 2), False),
    ((4,), (4, 5), False),
    ((2, 3, 4), (4,), False),
    ((7,), (7,), False),
    ((3, 1, 2, 9), (1, 4, 9, 3), True),
]


@pytest.mark.parametrize("case", MATMUL_CASES, ids=[f"matmul{i}" for i in range(len(MATMUL_CASES))])
def test_matmul(lib, case):
    sa, sb, f16 = case
    rng = np.random.default_rng(len(sa) * 10 + len(sb))
    a, b = rnd(rng, *sa), rnd(rng, *sb)
    if f16:
        b = b.astype(np.float16)
    (r,) = ref("MatMul", a, b.astype(np.float32))
    (o,) = ort("MatMul", [a, b.astype(np.float32)], {})
    close(o, r)
    art, feeds = make_node("MatMul", [(a, False), (b, True)], [("float32", r.shape)], dict(act_min=-0.5, act_max=0.75))
    (y,) = run_c(lib, art, feeds)
    close(y, np.clip(r, -0.5, 0.75))


# ------------------------------------------------------------------------------------------
# pools
# ------------------------------------------------------------------------------------------

POOL_CASES = [
    # x shape, kernel, strides, pads, dilations, ceil_mode
    ((1, 3, 9, 10), (3, 3), (2, 2), (1, 1, 1, 1), (1, 1), 0),
    ((2, 2, 8, 7), (2, 3), (2, 2), (0, 1, 1, 0), (1, 1), 1),
    ((1, 2, 11, 9), (3, 2), (2, 1), (1, 0, 1, 1), (2, 2), 0),
    ((1, 3, 10, 10), (3, 3), (3, 3), (0, 0, 0, 0), (1, 1), 1),
    ((2, 3, 15), (4,), (3,), (2, 1), (1,), 1),
    ((1, 2, 5, 6, 7), (2, 3, 2), (2, 1, 2), (1, 0, 1, 0, 1, 1), (1, 1, 1), 0),
]


@pytest.mark.parametrize("case", POOL_CASES, ids=[f"pool{i}" for i in range(len(POOL_CASES))])
def test_maxpool(lib, case):
    xs, k, s, p, d, cm = case
    x = rnd(np.random.default_rng(len(xs) + k[0]), *xs)
    attrs = dict(kernel_shape=list(k), strides=list(s), pads=list(p), dilations=list(d), ceil_mode=cm)
    for order in (0, 1):
        r, ri = ref("MaxPool", x, storage_order=order, **attrs)
        art, feeds = make_node("MaxPool", [(x, False)], [("float32", r.shape), ("int64", r.shape)],
                               dict(attrs, storage_order=order))
        c, ci = run_c(lib, art, feeds)
        exact(c, r)
        exact(ci, ri)
    o = ort("MaxPool", [x], attrs, n_out=2, out_types=[1, 7])
    exact(c, o[0])
    exact(run_c(lib, *make_node("MaxPool", [(x, False)], [("float32", r.shape)], attrs))[0], r)   # no Indices
    if len(k) == 2 and d == (1, 1):
        exact(ci, ort("MaxPool", [x], dict(attrs, storage_order=1), n_out=2, out_types=[1, 7])[1])


@pytest.mark.parametrize("case", POOL_CASES, ids=[f"pool{i}" for i in range(len(POOL_CASES))])
@pytest.mark.parametrize("include_pad", [0, 1])
def test_avgpool(lib, case, include_pad):
    xs, k, s, p, d, cm = case
    x = rnd(np.random.default_rng(len(xs) + k[0]), *xs)
    attrs = dict(kernel_shape=list(k), strides=list(s), pads=list(p), dilations=list(d), ceil_mode=cm,
                 count_include_pad=include_pad)
    (r,) = ref("AveragePool", x, **attrs)
    art, feeds = make_node("AveragePool", [(x, False)], [("float32", r.shape)], attrs)
    (c,) = run_c(lib, art, feeds)
    exact(c, r)
    (o,) = ort("AveragePool", [x], attrs)
    close(c, o)


@pytest.mark.parametrize("shape", [(2, 3, 5, 7), (1, 4, 9), (1, 2, 3, 4, 5), (3, 2, 1, 1)])
def test_global_pools(lib, shape):
    x = rnd(np.random.default_rng(sum(shape)), *shape) + 3.0
    for op, cmp in (("GlobalAveragePool", close), ("GlobalMaxPool", exact)):
        (r,) = ref(op, x)
        (c,) = run_c(lib, *make_node(op, [(x, False)], [("float32", r.shape)]))
        cmp(c, r)
        cmp(c, ort(op, [x], {})[0])


# ------------------------------------------------------------------------------------------
# Resize
# ------------------------------------------------------------------------------------------

NEAREST = ["round_prefer_floor", "round_prefer_ceil", "floor", "ceil"]
CTMS = ["asymmetric", "half_pixel", "align_corners", "pytorch_half_pixel", "tf_half_pixel_for_nn"]
RESIZE_SHAPES = [  # x shape, scales (None) or sizes
    ((1, 2, 5, 7), np.array([1, 1, 2, 2], np.float32), None),
    ((1, 2, 6, 9), np.array([1, 1, 0.5, 0.6], np.float32), None),
    ((2, 3, 5, 7), None, np.array([2, 3, 9, 4], np.int64)),
    ((1, 1, 4, 4), np.array([1, 1, 1.5, 3.0], np.float32), None),
    ((1, 3, 8), None, np.array([1, 3, 13], np.int64)),
    # the tabled path of the last two axes (resize_hw): more than one 256-column chunk, only
    # the second-to-last axis resized, only the last
    ((1, 2, 3, 150), np.array([1, 1, 2, 2.01], np.float32), None),
    ((1, 1, 6, 5), None, np.array([1, 1, 9, 5], np.int64)),
    ((2, 3, 7), None, np.array([2, 3, 300], np.int64)),
    ((1, 2, 4, 135), np.array([1, 1, 2, 2], np.float32), None),   # 2x over two chunks: repeated rows and columns
]


@pytest.mark.parametrize("ctm", CTMS)
@pytest.mark.parametrize("shp", range(len(RESIZE_SHAPES)))
def test_resize(lib, ctm, shp):
    xs, scales, sizes = RESIZE_SHAPES[shp]
    x = rnd(np.random.default_rng(shp), *xs)
    roi = np.zeros(0, np.float32)
    sc_in = scales if scales is not None else np.zeros(0, np.float32)
    modes = [("nearest", nm) for nm in NEAREST] + ([("linear", "round_prefer_floor")] if ctm != "tf_half_pixel_for_nn" else [])
    for mode, nm in modes:
        attrs = dict(mode=mode, coordinate_transformation_mode=ctm, nearest_mode=nm)
        (r,) = ref("Resize", x, None, scales, sizes, **attrs)
        ins = [(x, False), (roi, True), (sc_in, True)] + ([(sizes, True)] if sizes is not None else [])
        full = dict(attrs, antialias=0, cubic_coeff_a=-0.75, exclude_outside=0, extrapolation_value=0.0,
                    keep_aspect_ratio_policy="stretch")
        (c,) = run_c(lib, *make_node("Resize", ins, [("float32", r.shape)], full))
        exact(c, r)
        (o,) = ort("Resize", [x, None, scales, sizes], attrs)
        if mode == "linear":
            close(c, o)
        elif nm != "round_prefer_ceil" or not any(a < b for a, b in zip(r.shape, x.shape)):
            exact(c, o)
        # else: a downsampling round_prefer_ceil coordinate lands within 1 ulp of .5, where
        # onnxruntime's float arithmetic rounds up and the numpy reference (the spec, which
        # the C kernel matches byte for byte above) rounds down: a reference-vs-ORT difference.


def test_resize_simple_and_axes(lib):
    """Opset-10 'simple' rounding (floor up, ceil down) and the `axes` attribute."""
    x = rnd(np.random.default_rng(3), 1, 2, 7, 9)
    for scales in (np.array([1, 1, 2.5, 1.5], np.float32), np.array([1, 1, 0.5, 0.7], np.float32)):
        attrs = dict(mode="nearest", coordinate_transformation_mode="asymmetric", nearest_mode="simple")
        (r,) = ref("Resize", x, None, scales, None, **attrs)
        (c,) = run_c(lib, *make_node("Resize", [(x, False), None, (scales, True)], [("float32", r.shape)], attrs))
        exact(c, r)
    attrs = dict(mode="linear", coordinate_transformation_mode="half_pixel", axes=[3, 2])
    sizes = np.array([5, 11], np.int64)
    (r,) = ref("Resize", x, None, None, sizes, **attrs)
    (c,) = run_c(lib, *make_node("Resize", [(x, False), None, None, (sizes, True)], [("float32", r.shape)], attrs))
    exact(c, r)
    close(c, ort("Resize", [x, None, None, sizes], attrs)[0])


# ------------------------------------------------------------------------------------------
# Softmax, LogSoftmax
# ------------------------------------------------------------------------------------------

@pytest.mark.parametrize("op", ["Softmax", "LogSoftmax"])
@pytest.mark.parametrize("shape,axis,c2", [((4, 10), 1, 0), ((2, 3, 5), 1, 0), ((2, 3, 5), 0, 0), ((3, 4, 6), 2, 0),
                                           ((2, 3, 5), 1, 1), ((1, 7), 1, 0), ((2, 2, 3, 3), 2, 1)])
def test_softmax(lib, op, shape, axis, c2):
    x = rnd(np.random.default_rng(len(shape) + axis), *shape, scale=4.0)
    (r,) = ref(op, x, axis=axis, coerce_2d=c2)
    (c,) = run_c(lib, *make_node(op, [(x, False)], [("float32", r.shape)], dict(axis=axis, coerce_2d=c2)))
    close(c, r)
    (o,) = ort(op, [x], dict(axis=axis), opset=11 if c2 else 21)
    close(c, o)


# ------------------------------------------------------------------------------------------
# normalisation
# ------------------------------------------------------------------------------------------

@pytest.mark.parametrize("shape", [(2, 3, 4, 5), (1, 4, 7), (3, 2)])
def test_batchnorm(lib, shape):
    rng = np.random.default_rng(sum(shape))
    ch = shape[1]
    x, sc, b, mu = rnd(rng, *shape), rnd(rng, ch), rnd(rng, ch), rnd(rng, ch)
    var = np.abs(rnd(rng, ch)) + 0.1
    (r,) = ref("BatchNormalization", x, sc, b, mu, var, epsilon=1e-3)
    art, feeds = make_node("BatchNormalization", [(x, False), (sc, True), (b, True), (mu, True), (var, True)],
                           [("float32", r.shape)], dict(epsilon=1e-3, momentum=0.9, training_mode=0))
    (c,) = run_c(lib, art, feeds)
    exact(c, r)
    close(c, ort("BatchNormalization", [x, sc, b, mu, var], dict(epsilon=1e-3))[0])


@pytest.mark.parametrize("shape", [(2, 3, 4, 5), (1, 4, 17)])
def test_instancenorm(lib, shape):
    rng = np.random.default_rng(sum(shape))
    x, sc, b = rnd(rng, *shape) + 2.0, rnd(rng, shape[1]), rnd(rng, shape[1])
    (r,) = ref("InstanceNormalization", x, sc, b, epsilon=1e-5)
    (c,) = run_c(lib, *make_node("InstanceNormalization", [(x, False), (sc, True), (b, True)], [("float32", r.shape)],
                                 dict(epsilon=1e-5)))
    close(c, r)
    close(c, ort("InstanceNormalization", [x, sc, b], dict(epsilon=1e-5))[0])


@pytest.mark.parametrize("shape,axis,bias,stats", [((2, 5, 16), 2, True, True), ((3, 4, 6), 1, False, False),
                                                   ((4, 33), 1, True, False), ((2, 3, 4), 2, True, True),
                                                   ((7, 300), 1, True, True), ((5, 3, 100), 1, False, False)])
def test_layernorm(lib, shape, axis, bias, stats):
    rng = np.random.default_rng(sum(shape) + axis)
    x = rnd(rng, *shape) * 3 + 1
    norm_shape = shape[axis:]
    sc = rnd(rng, *norm_shape)
    b = rnd(rng, *norm_shape) if bias else None
    r = ref("LayerNormalization", x, sc, b, axis=axis, epsilon=1e-5)
    outs = [("float32", r[0].shape)] + ([("float32", r[1].shape), ("float32", r[2].shape)] if stats else [])
    ins = [(x, False), (sc, True)] + ([(b, True)] if bias else [])
    cs = run_c(lib, *make_node("LayerNormalization", ins, outs, dict(axis=axis, epsilon=1e-5, stash_type=1)))
    for c, rr in zip(cs, r):
        close(c, rr)
    o = ort("LayerNormalization", [x, sc, b], dict(axis=axis, epsilon=1e-5), n_out=3 if stats else 1)
    for c, oo in zip(cs, o):
        close(c, oo)


# ------------------------------------------------------------------------------------------
# LSTM, GRU
# ------------------------------------------------------------------------------------------

RNN_CASES = [
    # direction, T, B, I, H, bias, seq_lens, initial states, peephole (LSTM), layout, clip, extra
    ("forward", 5, 2, 3, 4, True, None, False, False, 0, None, 0),
    ("reverse", 4, 3, 5, 3, True, [4, 2, 3], True, False, 0, None, 0),
    ("bidirectional", 6, 2, 4, 5, True, [6, 3], True, True, 0, None, 0),
    ("bidirectional", 3, 2, 3, 2, False, None, False, False, 1, 0.8, 1),
    ("forward", 7, 1, 2, 6, True, None, True, True, 0, 1.5, 1),
]


def _rnn_inputs(rng, op, case):
    dirn, T, B, I, H, bias, lens, init, peep, layout, clip, extra = case
    G = 4 if op == "LSTM" else 3
    D = 2 if dirn == "bidirectional" else 1
    x = rnd(rng, *((B, T, I) if layout else (T, B, I)))
    w, r = rnd(rng, D, G * H, I, scale=0.6), rnd(rng, D, G * H, H, scale=0.6)
    b = rnd(rng, D, 2 * G * H, scale=0.3) if bias else None
    sl = np.array(lens, np.int32) if lens is not None else None
    st_shape = (B, D, H) if layout else (D, B, H)
    h0 = rnd(rng, *st_shape) if init else None
    ins = [x, w, r, b, sl, h0]
    if op == "LSTM":
        ins += [rnd(rng, *st_shape) if init else None, rnd(rng, D, 3 * H, scale=0.5) if peep else None]
    attrs = dict(direction=dirn, hidden_size=H, layout=layout)
    if clip is not None:
        attrs["clip"] = clip
    if op == "LSTM":
        attrs["input_forget"] = extra
    else:
        attrs["linear_before_reset"] = extra
    while ins and ins[-1] is None:
        ins.pop()
    return ins, attrs, B * H


def _scratch_from_exporter(op, ins, attrs):
    from types import SimpleNamespace

    from dsedge.export.scratch import scratch_bytes
    names = [f"t{k}" if a is not None else "" for k, a in enumerate(ins)]
    node = SimpleNamespace(op=op, inputs=names, outputs=["y"], attrs=attrs)
    return scratch_bytes(node, {nm: a.shape for nm, a in zip(names, ins) if a is not None}, "float32")


@pytest.mark.parametrize("op", ["LSTM", "GRU"])
@pytest.mark.parametrize("case", range(len(RNN_CASES)))
def test_rnn(lib, op, case):
    rng = np.random.default_rng(case + (0 if op == "LSTM" else 50))
    ins, attrs, bh = _rnn_inputs(rng, op, RNN_CASES[case])
    r = ref(op, *ins, **attrs)
    outs = [("float32", a.shape) for a in r]
    cins = [None if a is None else (a, k != 0) for k, a in enumerate(ins)]
    need = _scratch_from_exporter(op, ins, attrs)   # the exporter's formula (dsedge/export/scratch.py)
    x = ins[0]
    T, B = (x.shape[1], x.shape[0]) if attrs["layout"] else x.shape[:2]
    assert need == rnn_f32_plan(T, B, x.shape[2], attrs["hidden_size"], 4 if op == "LSTM" else 3) >= 3 * bh * 4
    art, feeds = make_node(op, cins, outs, attrs, scratch=need)
    cs = run_c(lib, art, feeds)
    for c, rr in zip(cs, r):
        close(c, rr, 2e-5)
    if not attrs["layout"]:   # onnxruntime's CPU LSTM/GRU refuse layout=1
        for c, oo in zip(cs, ort(op, ins, attrs, n_out=len(r))):
            close(c, oo, 2e-5)
    # optional outputs absent; a plan with too little scratch is refused at load
    art2, feeds2 = make_node(op, cins, [None, outs[1]], attrs, scratch=need)
    (yh,) = run_c(lib, art2, feeds2)
    exact(yh, cs[1])
    art3, _ = make_node(op, cins, outs, attrs, scratch=3 * bh * 4 - 4)   # less than REF's h, h_next, c
    st, msg = load_status(lib, art3)
    assert st != 0 and "scratch" in msg


def test_rnn_scratch_must_not_overlap_operands_nor_exceed_the_need(lib):
    """The loader knows the scratch each node's kernel uses (its check reports the formula):
    no operand of that node may overlap it, and the plan's scratch_size may exceed the
    largest need only by rounding to 64 (docs/format.md 4.3)."""
    import dataclasses
    rng = np.random.default_rng(0)
    ins, attrs, bh = _rnn_inputs(rng, "LSTM", RNN_CASES[0])
    outs = [("float32", a.shape) for a in ref("LSTM", *ins, **attrs)]
    cins = [None if a is None else (a, k != 0) for k, a in enumerate(ins)]
    need = 3 * bh * 4
    art, feeds = make_node("LSTM", cins, outs, attrs, scratch=need)
    assert load_status(lib, art)[0] == 0
    x = art.tensors[0]
    assert x.storage == 1 and x.offset == 0 and art.scratch_offset > 0
    st, msg = load_status(lib, dataclasses.replace(art, scratch_offset=0))   # scratch over x
    assert st != 0 and f"input 0 (in0) overlaps the {need} bytes of scratch the node uses" in msg, msg
    # more scratch than the rounding allows: REF's check reports the op's plan (the optimised
    # variants' scratch, dsedge/export/scratch.py) as the node's largest need
    plan = _scratch_from_exporter("LSTM", ins, attrs)
    big = -(-plan // 64) * 64 + 64
    s_off = art.scratch_offset
    assert s_off % 64 == 0 and s_off + need >= art.arena_size - 64
    st, msg = load_status(lib, dataclasses.replace(art, scratch_size=big, arena_size=s_off + big))
    assert st != 0 and f"arena_size {s_off + big} exceeds the {s_off + big - 64} bytes" in msg, msg


# ------------------------------------------------------------------------------------------
# arm64 == x86_64, byte for byte
# ------------------------------------------------------------------------------------------

def _arm64_cc():
    try:
        import ziglang  # noqa: F401
    except ImportError:
        return None
    return shutil.which("qemu-aarch64")


@pytest.mark.skipif(_arm64_cc() is None, reason="needs the ziglang package and qemu-aarch64 (apt-get install qemu-user)")
def test_arm64_bytes_identical(lib, build, tmp_path):
    """A model with every kernel family (all inputs constant, so `dse_corpus --run-ref` runs it with
    no feeds) gives the same output bytes on x86_64 (ctypes) and arm64 (zig cc, qemu), with the REF
    kernels on both (DESIGN.md §3; optimised float variants are within a tolerance, docs/kernels.md)."""
    import sys
    rng = np.random.default_rng(11)
    cases = []
    x = rnd(rng, 1, 4, 9, 11)
    w = rnd(rng, 6, 2, 3, 3, scale=0.5)
    attrs = dict(kernel_shape=[3, 3], strides=[2, 1], pads=[1, 1, 0, 1], dilations=[1, 2], group=2)
    cases.append(("Conv", [(x, True), (w, True)], [("float32", ref("Conv", x, w, **attrs)[0].shape)], attrs, 0))
    ins, la, bh = _rnn_inputs(rng, "LSTM", RNN_CASES[2])
    cases.append(("LSTM", [None if a is None else (a, True) for a in ins],
                  [("float32", a.shape) for a in ref("LSTM", *ins, **la)], la, 3 * bh * 4))
    xs = rnd(rng, 3, 17, scale=5.0)
    cases.append(("Softmax", [(xs, True)], [("float32", xs.shape)], dict(axis=1, coerce_2d=0), 0))
    cases.append(("LayerNormalization", [(xs, True), (rnd(rng, 17), True)], [("float32", xs.shape)],
                  dict(axis=1, epsilon=1e-5, stash_type=1), 0))
    xr = rnd(rng, 1, 2, 5, 6)
    ra = dict(mode="linear", coordinate_transformation_mode="half_pixel")
    sz = np.array([1, 2, 9, 13], np.int64)
    cases.append(("Resize", [(xr, True), None, None, (sz, True)], [("float32", (1, 2, 9, 13))], ra, 0))
    from dsedge.runtime import _build   # the library's sources and flags (runtimes/c/build.mk)
    exe = tmp_path / "dse_corpus_arm64"
    _build.build_binary([sys.executable, "-m", "ziglang", "cc", "-target", "aarch64-linux-musl"], exe, csrc=CDIR,
                        arch="arm64", extra_sources=[CDIR / "tests" / "corpus_runner.c"])
    for k, (op, ins, outs, attrs, scratch) in enumerate(cases):
        art, feeds = make_node(op, ins, outs, attrs, scratch=scratch)
        assert feeds == []
        path = tmp_path / f"case{k}.dse"
        art.write(path)
        x86 = run_c(lib, art, [], flags=1 | 2)   # REF kernels: the optimised float ones may differ in the last bits
        p = subprocess.run(["qemu-aarch64", str(exe), "--run-ref", str(path)], capture_output=True, text=True, timeout=60)
        lines = [ln for ln in p.stdout.splitlines() if ln.startswith("output ")]
        assert p.returncode == 0 and len(lines) == len(x86), p.stdout[-2000:] + p.stderr[-2000:]
        for ln, c in zip(lines, x86):
            arm = bytes.fromhex(ln.split(":", 1)[1].replace(" ", ""))
            assert arm == c.tobytes(), f"{op}: arm64 output differs from x86_64"
