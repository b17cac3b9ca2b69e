"""The C int8 kernels against the numpy integer reference, byte for byte.

Every kernel of runtimes/c/src/kernels_int8.inc runs one-node `.dse` files built with
dsedge.artifact (attributes exactly as docs/kernels.md) on random int8 inputs over the
golden-case space (zero points -128/127, scales 2^-20..2^4 through M/shift, multipliers >= 1,
K >= 4096, odd sizes, stride/dilation/groups, count_include_pad both ways, float_out), and
the result must equal dsedge/quant/intref.py exactly. Every file of tests/quant/golden/
(expected outputs computed with exact rationals, not by the code under test) is replayed
through the C kernels. The requantisation rule itself (src/requant.h) is checked on the
golden accumulators by a tiny C program. An aarch64 build (zig cc, static musl) runs a set of
the same files under qemu-aarch64 and must give identical bytes.
"""
from __future__ import annotations

import ctypes as C
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tests.runtime._make import make, make_checked   # one shared build per configuration

from dsedge.runtime import _Error, _declare
from dsedge.artifact import Artifact, NodeRec, TensorAttr, TensorRec, op_id
from dsedge.quant import arith, intref

ROOT = Path(__file__).resolve().parents[2]
CDIR = ROOT / "runtimes" / "c"
GOLDEN = ROOT / "tests" / "quant" / "golden"
CC = os.environ.get("CC") or shutil.which("cc") or shutil.which("gcc") or shutil.which("clang")
pytestmark = pytest.mark.skipif(CC is None or shutil.which("make") is None, reason="no C compiler or make")

TABLE_OPS = ["Relu", "Sqrt", "Exp", "Log", "Erf", "Neg", "Abs", "Reciprocal", "Floor", "Ceil", "Round", "Sign",
             "LeakyRelu", "Elu", "Selu", "Gelu", "Softplus", "Softsign", "Clip", "Sigmoid", "HardSigmoid",
             "HardSwish", "Tanh", "Sin", "Cos"]


# -- the library, through the public C API ------------------------------------------------------

Error = _Error   # the bindings' declaration of dse_error


@pytest.fixture(scope="module")
def build(tmp_path_factory):
    return make_checked(CC, "libdsedge.so")


@pytest.fixture(scope="module")
def lib(build):
    L = C.CDLL(str(build / "libdsedge.so"))
    _declare(L)   # the public C API's signatures, as the bindings declare them
    return L


def load(lib, data: bytes, flags: int = 0):
    """(status, message, model handle, keep-alive buffer)."""
    raw = np.zeros(len(data) + 64, np.uint8)
    start = (-raw.ctypes.data) % 64
    raw[start:start + len(data)] = np.frombuffer(data, np.uint8)
    m, err = C.c_void_p(), Error()
    st = lib.dse_model_load_ex(raw.ctypes.data + start, len(data), flags, C.byref(m), C.byref(err))
    return st, err.message.decode(), m, raw


def _cpu_has_avx512() -> bool:
    try:
        flags = next(line for line in open("/proc/cpuinfo") if line.startswith("flags")).split()
    except (OSError, StopIteration):
        return False
    return all(f in flags for f in ("avx2", "avx512f", "avx512bw", "avx512vl", "avx512_vnni"))


AVX512 = _cpu_has_avx512() and os.uname().machine in ("x86_64", "amd64")
NO_AVX512 = 8   # DSE_LOAD_NO_AVX512: on an AVX-512 CPU, the kernels an AVX2 (or AVX-VNNI) CPU runs


def run_c(lib, case, flags=0):
    art, feeds, outs = case
    st, msg, m, keep = load(lib, art.to_bytes(), flags)
    assert st == 0, msg
    s, err = C.c_void_p(), Error()
    try:
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
        return res
    finally:
        lib.dse_session_free(s)
        lib.dse_model_free(m)
        del keep


# -- one-node artifacts (docs/kernels.md) ------------------------------------------------------

class Net:
    """Builds a one-node .dse: runtime inputs, constants, TENSOR attributes, outputs."""

    def __init__(self):
        self.tensors, self.inputs, self.feeds, self.outs, self.arena = [], [], [], [], 0

    def _arena(self, name, dtype, shape):
        t = TensorRec.arena(name, dtype, shape, self.arena)
        if not t.nbytes:
            t = TensorRec.arena(name, dtype, shape, 0)   # an empty tensor takes no arena bytes
        self.arena += -(-t.nbytes // 64) * 64
        self.tensors.append(t)
        return len(self.tensors) - 1

    def inp(self, a):
        a = np.ascontiguousarray(a)
        i = self._arena(f"in{len(self.inputs)}", a.dtype.name, a.shape)
        self.inputs.append(i)
        self.feeds.append(a)
        return i

    def const(self, a, dtype=None):
        self.tensors.append(TensorRec.const(f"c{len(self.tensors)}", np.asarray(a), dtype=dtype))
        return len(self.tensors) - 1

    def tattr(self, a, dtype):
        return TensorAttr(self.const(np.asarray(a).astype(dtype), dtype))

    def out(self, dtype, shape):
        self.outs.append((np.dtype(dtype), tuple(shape)))
        return self._arena(f"out{len(self.outs) - 1}", np.dtype(dtype).name, shape)

    def build(self, op, ins, outs, attrs, domain=""):
        node = NodeRec(op_id(op, domain), tuple(ins), tuple(outs), attrs, name=op.lower())
        art = Artifact(tuple(self.tensors), (node,), tuple(self.inputs), tuple(outs), self.arena)
        return art, self.feeds, self.outs


def rng_mults(rng, C, lo=-20, hi=4):
    """Per-channel (M, n) of reals log-uniform in 2^lo .. 2^hi (multipliers >= 1 included)."""
    M, n = arith.quantize_multiplier(2.0 ** rng.uniform(lo, hi, C))
    return M.astype(np.int64), n.astype(np.int64)


def weighted_attrs(net, zp_in, zp_out, M, n, qmin=-128, qmax=127, out_scale=None, act=None):
    a = dict(zp_in=zp_in, zp_out=zp_out, qmin=qmin, qmax=qmax, float_out=int(out_scale is not None))
    if out_scale is not None:
        a["out_scale"] = net.tattr(out_scale, "float32")
        a["act_min"], a["act_max"] = act if act else (float("-inf"), float("inf"))
    else:
        a["M"], a["shift"] = net.tattr(M, "int32"), net.tattr(n, "int32")
    return a


def float_out_ref(acc, scale, axis, act):
    y = intref.dequantize_acc(acc, scale, axis)
    if act:
        y = np.minimum(np.maximum(y, np.float32(act[0])), np.float32(act[1]))
    return y


def conv_case(x, w, bias, zp_in, M, n, zp_out, strides, pads, dil, group, qmin=-128, qmax=127, out_scale=None,
              act=None):
    net = Net()
    valid = out_scale is not None or (np.all(M >= 0) and np.all(M < 2**31) and np.all(n >= 1) and np.all(n <= 62))
    Mr, nr = (M, n) if valid else (np.zeros_like(M), np.full_like(n, 62))   # refusal tests: shape only
    ref = intref.conv_int8(x, zp_in, w, bias, Mr, nr, zp_out, strides, pads, dil, group, qmin, qmax,
                           acc_only=out_scale is not None)
    if out_scale is not None:
        ref = float_out_ref(ref, out_scale, 1, act)
    xi, wi, bi = net.inp(x), net.const(w), net.const(bias.astype(np.int32))
    yi = net.out(ref.dtype, ref.shape)
    attrs = dict(kernel_shape=list(w.shape[2:]), strides=strides, pads=pads, dilations=dil, group=group,
                 auto_pad="NOTSET", **weighted_attrs(net, zp_in, zp_out, M, n, qmin, qmax, out_scale, act))
    return net.build("Conv", [xi, wi, bi], [yi], attrs), ref


def conv_t_case(x, w, bias, zp_in, M, n, zp_out, strides, pads, dil, group, opad, qmin=-128, qmax=127,
                out_scale=None, act=None):
    net = Net()
    ref = intref.conv_transpose_int8(x, zp_in, w, bias, M, n, zp_out, strides, pads, dil, group, opad, qmin, qmax,
                                     acc_only=out_scale is not None)
    if out_scale is not None:
        ref = float_out_ref(ref, out_scale, 1, act)
    xi, wi, bi = net.inp(x), net.const(w), net.const(bias.astype(np.int32))
    yi = net.out(ref.dtype, ref.shape)
    attrs = dict(kernel_shape=list(w.shape[2:]), strides=strides, pads=pads, dilations=dil, group=group,
                 output_padding=opad, **weighted_attrs(net, zp_in, zp_out, M, n, qmin, qmax, out_scale, act))
    return net.build("ConvTranspose", [xi, wi, bi], [yi], attrs), ref


def gemm_case(x, w, bias, zp_in, M, n, zp_out, trans_b, qmin=-128, qmax=127, out_scale=None, act=None, op="Gemm"):
    net = Net()
    ref = intref.gemm_int8(x, zp_in, w, bias, M, n, zp_out, trans_b, qmin, qmax, acc_only=out_scale is not None)
    if out_scale is not None:
        ref = float_out_ref(ref, out_scale, -1, act)
    xi, wi, bi = net.inp(x), net.const(w), net.const(bias.astype(np.int32))
    yi = net.out(ref.dtype, ref.shape)
    attrs = weighted_attrs(net, zp_in, zp_out, M, n, qmin, qmax, out_scale, act)
    if op == "Gemm":
        attrs.update(transA=0, transB=trans_b, alpha=1.0, beta=1.0)
    return net.build(op, [xi, wi, bi], [yi], attrs), ref


def check(lib, case_ref):
    """The exact reference's bytes: with the kernels this CPU chooses and, on an AVX-512 CPU, also
    without its AVX-512 ones (DSE_LOAD_NO_AVX512: the AVX2 / AVX-VNNI kernels)."""
    case, ref = case_ref
    for flags in (0, NO_AVX512) if AVX512 else (0,):
        got = run_c(lib, case, flags)[0]
        assert got.dtype == ref.dtype and got.shape == ref.shape
        assert got.tobytes() == np.ascontiguousarray(ref).tobytes(), \
            f"flags {flags}: {int((got != ref).sum())} of {ref.size} elements differ"


def rand_i8(rng, shape, lo=-128, hi=127):
    return rng.integers(lo, hi + 1, shape).astype(np.int8)


def rand_w(rng, shape):
    return rng.integers(-127, 128, shape).astype(np.int8)


def rand_bias(rng, C, K, big=False):
    room = arith.accumulator_headroom(K)
    lim = room if big else min(room, 1 << 20)
    return rng.integers(-lim, lim + 1, C).astype(np.int64)


# -- weighted ops ------------------------------------------------------------------------------

CONV_GEOMS = [   # x shape, w shape, strides, pads, dilations, group
    ((2, 3, 7, 9), (5, 3, 3, 3), [2, 1], [1, 0, 2, 1], [1, 2], 1),
    ((2, 4, 8, 8), (6, 2, 2, 3), [1, 2], [0, 2, 1, 0], [2, 2], 2),
    ((1, 6, 9, 7), (6, 1, 3, 3), [2, 2], [1, 1, 1, 1], [1, 1], 6),          # depthwise
    ((1, 8, 5, 5), (16, 1, 3, 3), [1, 1], [2, 2, 2, 2], [2, 2], 8),        # depth multiplier 2
    ((2, 3, 31), (4, 3, 5), [3], [2, 1], [2], 1),                          # 1-D
    ((1, 2, 5, 150), (3, 2, 3, 3), [1, 1], [1, 1, 1, 1], [1, 1], 1),        # rows wider than a tile
    ((1, 2, 3, 140), (3, 2, 1, 4), [1, 3], [0, 5, 0, 0], [1, 1], 1),        # strided tiles, pad begin only
    ((1, 2, 4, 5, 6), (3, 2, 2, 3, 2), [1, 2, 1], [1, 0, 1, 0, 1, 1], [1, 1, 2], 1),   # 3-D
    ((1, 512, 3, 3), (2, 512, 3, 3), [1, 1], [0, 0, 0, 0], [1, 1], 1),     # K = 4608
    ((1, 33, 4, 4), (7, 33, 1, 1), [1, 1], [0, 0, 0, 0], [1, 1], 1),       # 1x1
]


@pytest.mark.parametrize("gi", range(len(CONV_GEOMS)))
@pytest.mark.parametrize("zps", [(-128, 127), (127, -128), (5, -7)])
def test_conv(lib, gi, zps):
    xs, ws, st, pd, dl, gr = CONV_GEOMS[gi]
    rng = np.random.default_rng(1000 * gi + zps[0] + 300)
    K = int(np.prod(ws[1:]))
    x, w = rand_i8(rng, xs), rand_w(rng, ws)
    M, n = rng_mults(rng, ws[0])
    check(lib, conv_case(x, w, rand_bias(rng, ws[0], K, big=gi == 8), zps[0], M, n, zps[1], st, pd, dl, gr))


def test_conv_clamp_and_float_out(lib):
    rng = np.random.default_rng(7)
    x, w = rand_i8(rng, (2, 4, 6, 7)), rand_w(rng, (6, 2, 3, 3))
    b = rand_bias(rng, 6, 18)
    M, n = rng_mults(rng, 6, -14, 0)
    check(lib, conv_case(x, w, b, -3, M, n, -100, [1, 2], [1, 1, 1, 1], [1, 1], 2, qmin=-100, qmax=50))
    scale = (2.0 ** rng.uniform(-20, 0, 6)).astype(np.float32)
    check(lib, conv_case(x, w, b, -3, None, None, 0, [1, 2], [1, 1, 1, 1], [1, 1], 2, out_scale=scale))
    check(lib, conv_case(x, w, b, -3, None, None, 0, [1, 2], [1, 1, 1, 1], [1, 1], 2, out_scale=scale,
                         act=(0.0, 6.0 * float(scale.mean()) * 1000)))


def test_conv_multiplier_extremes(lib):
    """(0, 62) (n > 62 collapsed), the saturating (2^30, 1), M = 2^31 - 1, n = 1 and 62."""
    rng = np.random.default_rng(8)
    x, w = rand_i8(rng, (1, 3, 6, 6)), rand_w(rng, (6, 3, 3, 3))
    M = np.array([0, 2**30, 2**31 - 1, 2**31 - 1, 2**30 + 12345, 1], np.int64)
    n = np.array([62, 1, 62, 31, 40, 1], np.int64)
    check(lib, conv_case(x, w, rand_bias(rng, 6, 27), 0, M, n, 3, [1, 1], [1, 1, 1, 1], [1, 1], 1))


CONVT_GEOMS = [   # x, w (Cin, Cout/g, k), strides, pads, dilations, group, output_padding
    ((1, 3, 4, 5), (3, 4, 3, 3), [2, 2], [1, 1, 1, 1], [1, 1], 1, [1, 1]),
    ((2, 4, 3, 4), (4, 2, 2, 3), [3, 2], [0, 1, 2, 0], [2, 1], 2, [0, 1]),
    ((1, 2, 9), (2, 3, 4), [3], [1, 2], [1], 1, [2]),                       # 1-D
    ((1, 3, 2, 40), (3, 2, 3, 3), [1, 2], [0, 0, 0, 0], [1, 2], 1, [0, 1]),  # output wider than a tile
    ((1, 5, 3, 3), (5, 3, 1, 1), [1, 1], [0, 0, 0, 0], [1, 1], 1, [0, 0]),
]


@pytest.mark.parametrize("gi", range(len(CONVT_GEOMS)))
@pytest.mark.parametrize("zps", [(-128, 127), (127, -128), (11, -9)])
def test_conv_transpose(lib, gi, zps):
    xs, ws, st, pd, dl, gr, op = CONVT_GEOMS[gi]
    rng = np.random.default_rng(2000 + 10 * gi + zps[0])
    x, w = rand_i8(rng, xs), rand_w(rng, ws)
    O = ws[1] * gr
    M, n = rng_mults(rng, O)
    b = rand_bias(rng, O, ws[0] * int(np.prod(ws[2:])))
    check(lib, conv_t_case(x, w, b, zps[0], M, n, zps[1], st, pd, dl, gr, op))
    if gi == 0:
        scale = (2.0 ** rng.uniform(-20, 0, O)).astype(np.float32)
        check(lib, conv_t_case(x, w, b, zps[0], None, None, 0, st, pd, dl, gr, op, out_scale=scale,
                               act=(-0.5 * float(scale.mean()) * 1e3, float("inf"))))


@pytest.mark.parametrize("trans_b", [0, 1])
@pytest.mark.parametrize("shape", [(5, 37, 7), (3, 4100, 70), (1, 1, 1), (4, 9, 130)])
def test_gemm(lib, trans_b, shape):
    R, K, N = shape
    rng = np.random.default_rng(K + N + trans_b)
    x = rand_i8(rng, (R, K))
    w = rand_w(rng, (N, K) if trans_b else (K, N))
    M, n = rng_mults(rng, N)
    b = rand_bias(rng, N, K, big=K > 4096)
    check(lib, gemm_case(x, w, b, -128, M, n, 127, trans_b))
    check(lib, gemm_case(x, w, b, 127, M, n, -128, trans_b, qmin=-20, qmax=90))
    scale = (2.0 ** rng.uniform(-20, 4, N)).astype(np.float32)
    check(lib, gemm_case(x, w, b, 3, None, None, 0, trans_b, out_scale=scale))


@pytest.mark.parametrize("xshape", [(2, 3, 4100), (4, 7, 33), (33,), (2, 2, 2, 5)])
def test_matmul(lib, xshape):
    rng = np.random.default_rng(sum(xshape))
    K, N = xshape[-1], (3 if xshape[-1] > 4096 else 130)
    x, w = rand_i8(rng, xshape), rand_w(rng, (K, N))
    M, n = rng_mults(rng, N)
    b = rand_bias(rng, N, K)
    check(lib, gemm_case(x, w, b, 1, M, n, -2, 0, op="MatMul"))
    check(lib, gemm_case(x, w, np.zeros(N, np.int64), -128, M, n, 127, 0, op="MatMul"))
    scale = (2.0 ** rng.uniform(-20, 0, N)).astype(np.float32)
    check(lib, gemm_case(x, w, b, 1, None, None, 0, 0, out_scale=scale, act=(float("-inf"), 0.0), op="MatMul"))


# -- elementwise -------------------------------------------------------------------------------

BCAST = [((2, 3, 5), (3, 1)), ((4, 1, 3), (5, 1)), ((7, 9), (7, 9)), ((1,), (2, 3)), ((2, 1, 4, 1), (3, 1, 5)),
         # rows of the walker past its 16-element blocks, with tails: one same-shape row, a
         # per-channel operand ([N,C,L] x [C,1]: Mul's row table), a row vector, a scalar,
         # the constant operand first
         ((2, 3, 41), (2, 3, 41)), ((2, 5, 300), (5, 1)), ((3, 4, 37), (37,)), ((130,), (1,)), ((7, 1), (1, 200))]


def binary_case(op, a, b, attrs, ref):
    net = Net()
    ai, bi = net.inp(a), net.inp(b)
    yi = net.out("int8", ref.shape)
    return net.build(op, [ai, bi], [yi], attrs), ref


@pytest.mark.parametrize("op", ["Add", "Sub"])
@pytest.mark.parametrize("bi", range(len(BCAST)))
def test_add_sub(lib, op, bi):
    rng = np.random.default_rng(50 + bi + (op == "Sub"))
    a, b = rand_i8(rng, BCAST[bi][0]), rand_i8(rng, BCAST[bi][1])
    fn = intref.sub_int8 if op == "Sub" else intref.add_int8
    for za, zb, zo, (qmin, qmax) in [(-128, 127, 5, (-128, 127)), (127, -128, -128, (-128, 127)),
                                     (3, -3, 127, (-50, 60))]:
        sa, sb, so = 2.0 ** rng.uniform(-20, 4, 3)
        Ma, Mb, n = arith.add_params(sa, sb, so)
        ref = fn(a, za, b, zb, Ma, Mb, n, zo, qmin, qmax)
        check(lib, binary_case(op, a, b, dict(za=za, zb=zb, Ma=Ma, Mb=Mb, shift=n, zp_out=zo, qmin=qmin,
                                              qmax=qmax), ref))


def _run_flags(lib, case, flags):
    """run_c with load flags (2 = DSE_LOAD_REF_KERNELS: the portable kernels only)."""
    art, feeds, outs = case
    data = art.to_bytes()
    raw = np.zeros(len(data) + 64, np.uint8)
    start = (-raw.ctypes.data) % 64
    raw[start:start + len(data)] = np.frombuffer(data, np.uint8)
    m, s, err = C.c_void_p(), C.c_void_p(), Error()
    assert lib.dse_model_load_ex(raw.ctypes.data + start, len(data), flags, C.byref(m), C.byref(err)) == 0, err.message
    try:
        assert lib.dse_session_create(m, None, 0, C.byref(s), C.byref(err)) == 0
        for i, a in enumerate(feeds):
            a = np.ascontiguousarray(a)
            assert lib.dse_session_set_input(s, i, a.ctypes.data, a.nbytes, C.byref(err)) == 0
        assert lib.dse_session_run(s, C.byref(err)) == 0
        p, n = C.c_void_p(), C.c_size_t()
        lib.dse_session_get_output(s, 0, C.byref(p), C.byref(n))
        return np.frombuffer(C.string_at(p, n.value), outs[0][0]).reshape(outs[0][1]).copy()
    finally:
        lib.dse_session_free(s)
        lib.dse_model_free(m)


@pytest.mark.parametrize("op", ["Add", "Sub"])
def test_add_sub_optimised_equals_ref(lib, op):
    """The optimised int8 Add/Sub (kernels/avx2/add_i8.c on x86 with AVX2) gives REF's bytes
    (and intref's) on every walker row form and at the parameter extremes: shift 1 and 62,
    multipliers 0 and 2^31 - 1, both zero points at the ends."""
    rng = np.random.default_rng(90 + (op == "Sub"))
    fn = intref.sub_int8 if op == "Sub" else intref.add_int8
    params = [(-128, 127, 5, (-128, 127), 2**31 - 1, 2**30, 31), (127, -128, -128, (-128, 127), 2**31 - 1, 2**31 - 1, 62),
              (3, -3, 127, (-50, 60), 0, 2**30 + 7, 1), (0, 0, 0, (-128, 127), 1, 1, 1),
              (-7, 9, 2, (-128, 127), 1_500_000_000, 1_100_000_000, 38)]
    for sa, sb in BCAST[5:] + [((1, 33), (1, 33)), ((64,), (64,)), ((3, 1), (3, 70))]:
        a, b = rand_i8(rng, sa), rand_i8(rng, sb)
        for za, zb, zo, (qmin, qmax), Ma, Mb, n in params:
            ref = fn(a, za, b, zb, Ma, Mb, n, zo, qmin, qmax)
            case, _ = binary_case(op, a, b, dict(za=za, zb=zb, Ma=Ma, Mb=Mb, shift=n, zp_out=zo, qmin=qmin, qmax=qmax), ref)
            opt, portable = _run_flags(lib, case, 0), _run_flags(lib, case, 2)
            assert np.array_equal(portable, ref) and np.array_equal(opt, ref), (sa, sb, Ma, Mb, n)


@pytest.mark.parametrize("bi", range(len(BCAST)))
def test_mul(lib, bi):
    rng = np.random.default_rng(70 + bi)
    a, b = rand_i8(rng, BCAST[bi][0]), rand_i8(rng, BCAST[bi][1])
    for za, zb, zo, (qmin, qmax) in [(-128, 127, 0, (-128, 127)), (1, -1, -128, (-128, 127)), (0, 0, 9, (0, 127))]:
        M, n = arith.mul_multiplier(*(2.0 ** rng.uniform(-20, 4, 3)))
        ref = intref.mul_int8(a, za, b, zb, M, n, zo, qmin, qmax)
        check(lib, binary_case("Mul", a, b, dict(za=za, zb=zb, M=M, shift=n, zp_out=zo, qmin=qmin, qmax=qmax), ref))


@pytest.mark.parametrize("op", TABLE_OPS + ["Elementwise"])
def test_table(lib, op):
    rng = np.random.default_rng(len(op))
    x = np.concatenate([np.arange(-128, 128), rng.integers(-128, 128, 295)]).astype(np.int8).reshape(19, 29)
    table = rand_i8(rng, 256)
    net = Net()
    xi = net.inp(x)
    ins = [xi] + ([net.const(np.float32(0)), net.const(np.float32(6))] if op == "Clip" else [])
    yi = net.out("int8", x.shape)
    case = net.build(op, ins, [yi], {"table": net.tattr(table, "int8")}, "dsedge" if op == "Elementwise" else "")
    check(lib, (case, intref.table_int8(x, table)))


@pytest.mark.parametrize("size", [1, 31, 32, 33, 1000])
def test_table_optimised_equals_ref(lib, size):
    """The optimised table kernel (kernels/avx2/table_i8.c: 16 vpshufb rows) gives REF's bytes
    (and intref's) for every int8 value, on sizes around its 32-byte blocks."""
    rng = np.random.default_rng(size)
    x = np.resize(np.concatenate([np.arange(-128, 128), rng.integers(-128, 128, 777)]).astype(np.int8), size)
    rng.shuffle(x)
    table = rand_i8(rng, 256)
    net = Net()
    xi = net.inp(x)
    yi = net.out("int8", x.shape)
    case = net.build("Sigmoid", [xi], [yi], {"table": net.tattr(table, "int8")})
    ref = intref.table_int8(x, table)
    assert np.array_equal(_run_flags(lib, case, 0), ref) and np.array_equal(_run_flags(lib, case, 2), ref)


# -- pooling and reductions --------------------------------------------------------------------

AVG = [   # x shape, kernel, strides, pads, ceil_mode
    ((2, 3, 7, 6), [3, 3], [2, 2], [1, 1, 1, 1], 0),
    ((1, 3, 10), [4], [3], [2, 0], 1),
    ((1, 2, 5, 5), [3, 2], [2, 2], [1, 0, 0, 1], 1),
    ((1, 3, 6, 7), [2, 2], [1, 1], [0, 0, 0, 0], 0),
    ((1, 2, 9, 11), [5, 4], [3, 2], [2, 1, 2, 3], 1),
    ((1, 2, 3, 4, 5), [2, 2, 3], [1, 2, 2], [1, 0, 1, 1, 1, 1], 0),
]


@pytest.mark.parametrize("gi", range(len(AVG)))
@pytest.mark.parametrize("cip", [0, 1])
def test_avgpool(lib, gi, cip):
    xs, k, s, p, ceil = AVG[gi]
    rng = np.random.default_rng(100 + gi + 10 * cip)
    x = rand_i8(rng, xs)
    for zi, zo in [(-128, 127), (127, -128), (4, -2)]:
        si, so = 2.0 ** rng.uniform(-10, 4, 2)
        counts = intref.avgpool_counts(xs[2:], k, s, p, cip, ceil)
        mults = arith.avgpool_multipliers(si, so, counts)
        ref = intref.avgpool_int8(x, zi, k, s, p, cip, mults, zo, ceil)
        net = Net()
        xi = net.inp(x)
        yi = net.out("int8", ref.shape)
        cs = sorted(mults)
        attrs = dict(kernel_shape=k, strides=s, pads=p, dilations=[1] * len(k), ceil_mode=ceil,
                     count_include_pad=cip, auto_pad="NOTSET", zp_in=zi, zp_out=zo,
                     mult_count=net.tattr(cs, "int32"), mult_M=net.tattr([mults[c][0] for c in cs], "int32"),
                     mult_shift=net.tattr([mults[c][1] for c in cs], "int32"))
        check(lib, (net.build("AveragePool", [xi], [yi], attrs), ref))


@pytest.mark.parametrize("case", [("GlobalAveragePool", (2, 5, 3, 7), None, 1), ("ReduceMean", (2, 4, 3, 5), (1, 3), 0),
                                  ("ReduceMean", (2, 4, 3, 5), (1, 3), 1), ("ReduceMean", (3, 70), (0,), 0),
                                  ("ReduceMean", (2, 3, 4), (0, 1, 2), 1), ("GlobalAveragePool", (1, 3, 40), None, 1)])
def test_mean(lib, case):
    op, xs, axes, keep = case
    rng = np.random.default_rng(len(xs) + keep)
    x = rand_i8(rng, xs)
    axes = tuple(range(2, len(xs))) if axes is None else axes
    count = int(np.prod([xs[a] for a in axes]))
    for zi, zo in [(-128, 127), (127, -128), (7, 3)]:
        (M, n), = arith.avgpool_multipliers(*(2.0 ** rng.uniform(-10, 4, 2)), [count]).values()
        ref = intref.mean_int8(x, zi, axes, keep, M, n, zo)
        net = Net()
        xi = net.inp(x)
        ins = [xi] + ([net.const(np.array(axes, np.int64))] if op == "ReduceMean" else [])
        yi = net.out("int8", ref.shape)
        attrs = dict(zp_in=zi, zp_out=zo, M=M, shift=n, axes=list(axes))
        if op == "ReduceMean":
            attrs.update(keepdims=keep, noop_with_empty_axes=0)
        check(lib, (net.build(op, ins, [yi], attrs), ref))


MAXP = [
    ((1, 2, 7, 6), [3, 3], [2, 2], [1, 1, 1, 1], [1, 1], 0),
    ((2, 2, 9, 8), [2, 3], [2, 3], [0, 1, 1, 2], [2, 1], 1),
    ((1, 3, 11), [3], [2], [1, 1], [2], 1),
    ((1, 1, 4, 4), [2, 2], [1, 1], [3, 3, 3, 3], [1, 1], 0),     # windows of padding only: -128
    ((1, 2, 3, 5, 4), [2, 3, 2], [1, 2, 2], [0, 1, 1, 1, 1, 0], [1, 1, 1], 1),
    # the row path (maxpool_rows): stride 1 with the inside columns done a tap at a time,
    # dilation, windows that cover no input row or column, 1-D
    ((1, 3, 9, 37), [5, 5], [1, 1], [2, 2, 2, 2], [1, 1], 0),
    ((2, 2, 6, 40), [3, 3], [1, 1], [1, 3, 2, 1], [2, 3], 0),
    ((1, 1, 3, 4), [2, 2], [1, 1], [3, 3, 3, 3], [1, 1], 0),
    ((1, 2, 50), [4], [1], [0, 3], [1], 1),
    ((1, 2, 5, 33), [3, 2], [2, 1], [1, 0, 1, 1], [1, 1], 1),
    # windows mostly in the padding (only the taps inside are visited: internal.h dse__tap_range),
    # general loop and row path
    ((1, 2, 2, 3), [41, 57], [1, 1], [40, 56, 40, 56], [1, 1], 0),
    ((1, 1, 1, 3), [1, 300], [1, 1], [0, 299, 0, 299], [1, 1], 0),
    ((1, 2, 2, 2, 3), [9, 5, 40], [1, 2, 1], [8, 4, 39, 8, 3, 39], [1, 1, 2], 0),
]


@pytest.mark.parametrize("gi", range(len(MAXP)))
def test_maxpool(lib, gi):
    xs, k, s, p, d, ceil = MAXP[gi]
    rng = np.random.default_rng(200 + gi)
    for lo in (-128, -128 if gi else -128):
        x = rand_i8(rng, xs, lo, -60 if gi == 0 else 127)   # gi 0: all negative reals, padding must not win
        ref = intref.maxpool_int8(x, k, s, p, d, ceil)
        net = Net()
        xi = net.inp(x)
        yi = net.out("int8", ref.shape)
        attrs = dict(kernel_shape=k, strides=s, pads=p, dilations=d, ceil_mode=ceil, auto_pad="NOTSET",
                     storage_order=0)
        check(lib, (net.build("MaxPool", [xi], [yi], attrs), ref))


def test_global_maxpool(lib):
    rng = np.random.default_rng(9)
    x = rand_i8(rng, (2, 3, 5, 7))
    ref = x.max(axis=(2, 3), keepdims=True)   # byte-moving: the oracle is numpy's max
    net = Net()
    xi = net.inp(x)
    yi = net.out("int8", ref.shape)
    check(lib, (net.build("GlobalMaxPool", [xi], [yi], {}), ref))


@pytest.mark.parametrize("axis", [0, 1, 2, -1])
def test_concat(lib, axis):
    rng = np.random.default_rng(300 + axis)
    base = [2, 3, 4]
    shapes = []
    for L in (3, 1, 2, 5):
        s = list(base)
        s[axis] = L
        shapes.append(tuple(s))
    xs = [rand_i8(rng, s) for s in shapes]
    zo = -5
    zps = [zo, 100, -128, 127]
    rescales = [None] + [tuple(int(v) for v in arith.rescale_multiplier(2.0 ** rng.uniform(-6, 4), 1.0))
                         for _ in range(3)]
    ref = intref.concat_int8(xs, zps, axis, rescales, zo)
    net = Net()
    ins = [net.inp(x) for x in xs]
    yi = net.out("int8", ref.shape)
    attrs = dict(axis=axis % 3, zp_out=zo, zps_in=zps, rescale=[0 if r is None else 1 for r in rescales],
                 rescale_M=[0 if r is None else r[0] for r in rescales],
                 rescale_shift=[0 if r is None else r[1] for r in rescales])
    check(lib, (net.build("Concat", ins, [yi], attrs), ref))


@pytest.mark.parametrize("case", [((3, 4, 11), 2, 0), ((2, 5, 3), 1, 0), ((2, 3, 4), 1, 1), ((7, 300), 1, 0)])
def test_softmax(lib, case):
    xs, axis, c2 = case
    rng = np.random.default_rng(400 + axis + c2)
    x = rand_i8(rng, xs)
    for s_in in (2.0 ** -6, 0.05, 2.0 ** 2):
        table = arith.softmax_table(s_in)
        if c2:   # opset < 13: softmax over all axes from `axis` on (the 2-D coercion)
            lead = int(np.prod(xs[:axis]))
            ref = intref.softmax_int8(x.reshape(lead, -1), table, 1).reshape(xs)
        else:
            ref = intref.softmax_int8(x, table, axis)
        net = Net()
        xi = net.inp(x)
        yi = net.out("int8", xs)
        check(lib, (net.build("Softmax", [xi], [yi], dict(axis=axis, coerce_2d=c2,
                                                           exp_table=net.tattr(table, "int32"))), ref))


# -- QuantizeLinear / DequantizeLinear ---------------------------------------------------------

@pytest.mark.parametrize("zp", [-128, 0, 127, 17])
def test_quantize_dequantize(lib, zp):
    rng = np.random.default_rng(500 + zp)
    s = np.float32(2.0 ** rng.uniform(-20, 4))
    ties = (np.arange(-300, 300) + 0.5).astype(np.float32) * s           # exact halves: half to even
    # edges of the vectorised form (quantize.c): |x/s| around 512 (saturation whatever zp), the
    # 2^22 limit of the rounding trick, huge and tiny values, NaN (-> zp; numpy's is
    # platform-specific)
    edges = np.array([511.5, -511.5, 512.0, -512.0, 512.5, -512.5, 2.0 ** 22, -(2.0 ** 22), 2.0 ** 22 + 1,
                      1e38, -1e38, 1e-45, -1e-45], np.float64) * float(s)
    x = np.concatenate([np.array([np.nan, np.inf, -np.inf, -0.0], np.float32),   # in a vector as well as the tail
                        ties, (rng.standard_normal(997) * 200 * s).astype(np.float32),
                        np.array([0, -0.0, 1e30, -1e30, np.inf, -np.inf], np.float32), edges.astype(np.float32),
                        np.array([np.nan, -np.nan], np.float32)]).astype(np.float32)
    with np.errstate(all="ignore"):
        ref_q = arith.quantize(np.nan_to_num(x, nan=0.0, posinf=np.inf, neginf=-np.inf), s, zp)
    ref_q[np.isnan(x)] = zp
    net = Net()
    xi = net.inp(x)
    yi = net.out("int8", x.shape)
    check(lib, (net.build("QuantizeLinear", [xi, net.const(np.float32(s)), net.const(np.int8(zp))], [yi],
                          dict(axis=1, saturate=1, block_size=0)), ref_q))
    q = np.concatenate([np.arange(-128, 128), rng.integers(-128, 128, 1000)]).astype(np.int8)   # (vectors and a tail)
    ref_d = arith.dequantize(q, s, zp)
    net = Net()
    qi = net.inp(q)
    yi = net.out("float32", q.shape)
    check(lib, (net.build("DequantizeLinear", [qi, net.const(np.float32(s)), net.const(np.int8(zp))], [yi],
                          dict(axis=1, block_size=0)), ref_d))


@pytest.mark.parametrize("seed", range(4))
def test_quantize_near_halves(lib, seed):
    """Quotients x / s on and within a few ulps of every half-integer from -520 to 520 and around
    +-1024, for scales of awkward mantissas: the bytes of the float32 division (numpy), rounded
    half to even (a multiply by 1/s instead, or a rounding trick off by one ulp, fails here)."""
    rng = np.random.default_rng(1700 + seed)
    s = np.float32(2.0 ** rng.uniform(-12, 3) * rng.uniform(1, 2))
    k = np.concatenate([np.arange(-520, 520), np.arange(1018, 1030), -np.arange(1018, 1030)]).astype(np.float64)
    base = ((k + 0.5) * float(s)).astype(np.float32)
    steps = np.arange(-3, 4, dtype=np.int32)
    x = (base.view(np.int32)[:, None] + steps[None, :]).view(np.float32).ravel()   # +-3 ulps (same sign)
    x = np.concatenate([x, (rng.standard_normal(4000) * 300 * s).astype(np.float32)])
    with np.errstate(all="ignore"):
        ref = arith.quantize(x, s, 3)
    net = Net()
    xi = net.inp(x)
    yi = net.out("int8", x.shape)
    check(lib, (net.build("QuantizeLinear", [xi, net.const(np.float32(s)), net.const(np.int8(3))], [yi],
                          dict(axis=1, saturate=1, block_size=0)), ref))


@pytest.mark.parametrize("zp", [0, 128, 255])
def test_quantize_uint8_output(lib, zp):
    """A uint8 QuantizeLinear (`--io-dtype uint8` graph outputs): every kernel the CPU chooses
    (the AVX2 one on x86) against numpy: float32 division, round half to even, + zp, clamp to
    [0, 255], NaN -> zp; 32-element vectors and a tail."""
    rng = np.random.default_rng(900 + zp)
    s = np.float32(0.03125 * 3)
    special = np.array([0, -0.0, 1e30, -1e30, np.inf, -np.inf, np.nan], np.float32)
    x = np.concatenate([special, (np.arange(-300, 300) + 0.5).astype(np.float32) * s,   # specials in vectors
                        (rng.standard_normal(301) * 100 * s).astype(np.float32), special])    # and in the tail
    with np.errstate(all="ignore"):
        r = np.rint(x / s)
        ref = np.where(np.isnan(r), zp, np.clip(np.nan_to_num(r, nan=0.0) + zp, 0, 255)).astype(np.uint8)
    net = Net()
    xi = net.inp(x)
    yi = net.out("uint8", x.shape)
    check(lib, (net.build("QuantizeLinear", [xi, net.const(np.float32(s)), net.const(np.uint8(zp))], [yi],
                          dict(axis=1, saturate=1, block_size=0)), ref))
    q = np.concatenate([np.arange(256), rng.integers(0, 256, 1001)]).astype(np.uint8)   # uint8 DequantizeLinear
    net = Net()
    qi = net.inp(q)
    yi = net.out("float32", q.shape)
    check(lib, (net.build("DequantizeLinear", [qi, net.const(np.float32(s)), net.const(np.uint8(zp))], [yi],
                          dict(axis=1, block_size=0)), ((q.astype(np.float32) - np.float32(zp)) * s).astype(np.float32)))


def test_quantize_matches_onnxruntime():
    """arith.quantize (the oracle above) is onnxruntime's QuantizeLinear (ties, saturation)."""
    ort = pytest.importorskip("onnxruntime")
    import onnx
    from onnx import TensorProto, helper
    s, zp = np.float32(0.0371), np.int8(-3)
    x = np.concatenate([(np.arange(-400, 400) + 0.5).astype(np.float32) * s,
                        np.linspace(-20, 20, 1001, dtype=np.float32)])
    g = helper.make_graph([helper.make_node("QuantizeLinear", ["x", "s", "z"], ["y"])], "q",
                          [helper.make_tensor_value_info("x", TensorProto.FLOAT, [x.size])],
                          [helper.make_tensor_value_info("y", TensorProto.INT8, [x.size])],
                          [helper.make_tensor("s", TensorProto.FLOAT, [], [float(s)]),
                           helper.make_tensor("z", TensorProto.INT8, [], [int(zp)])])
    model = helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)])
    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    np.testing.assert_array_equal(sess.run(None, {"x": x})[0], arith.quantize(x, s, int(zp)))


# -- load-time refusals (run can then never fail) ----------------------------------------------

def test_check_refuses_bad_parameters(lib):
    rng = np.random.default_rng(1)
    x, w = rand_i8(rng, (1, 2, 4, 4)), rand_w(rng, (3, 2, 3, 3))
    b = np.zeros(3, np.int64)
    M, n = rng_mults(rng, 3)

    def status(case):
        st, msg, m, keep = load(lib, case[0][0].to_bytes())
        if st == 0:
            lib.dse_model_free(m)
        return st, msg

    assert status(conv_case(x, w, b, 0, M, n, 0, [1, 1], [1, 1, 1, 1], [1, 1], 1))[0] == 0
    st, msg = status(conv_case(x, w, b, 0, M, np.array([0, 5, 5]), 0, [1, 1], [1, 1, 1, 1], [1, 1], 1))
    assert st == 8 and "multipliers out of range" in msg                          # shift 0
    st, msg = status(conv_case(x, w, b, 0, np.array([-1, 5, 5]), n, 0, [1, 1], [1, 1, 1, 1], [1, 1], 1))
    assert st == 8 and "multipliers out of range" in msg                          # M < 0
    w2 = w.copy()
    w2[0, 0, 0, 0] = -128
    st, msg = status(conv_case(x, w2, b, 0, M, n, 0, [1, 1], [1, 1, 1, 1], [1, 1], 1))
    assert st == 8 and "-128" in msg
    (art, feeds, outs), ref = conv_case(x, w, b, 0, M, n, 0, [1, 1], [1, 1, 1, 1], [1, 1], 1)
    node = art.nodes[0]
    bad = NodeRec(node.op, node.inputs, node.outputs, dict(node.attrs, zp_in=128), node.name)
    st, msg = status(((Artifact(art.tensors, (bad,), art.inputs, art.outputs, art.arena_size), feeds, outs), ref))
    assert st == 8 and "zp_in" in msg
    # a float32-output Conv whose x is float goes to the f32 kernel, not the int8 float_out one
    (art, feeds, outs), ref = conv_case(x, w, b, 0, None, None, 0, [1, 1], [1, 1, 1, 1], [1, 1], 1,
                                        out_scale=np.ones(3, np.float32))
    st, _ = status(((art, feeds, outs), ref))
    assert st == 0


# -- golden files ------------------------------------------------------------------------------

def _arr(v):
    return np.asarray(v["data"], dtype=v["dtype"]).reshape(v["shape"]) if isinstance(v, dict) else v


def golden_case(d):
    k, a = d["kernel"], {key: _arr(v) for key, v in d["args"].items()}
    if k == "conv_int8":
        return conv_case(a["x_q"], a["w_q"], a["bias_q"], a["zp_in"], a["M"], a["n"], a["zp_out"], a["strides"],
                         a["pads"], a["dilations"], a["group"], a.get("qmin", -128), a.get("qmax", 127))[0]
    if k == "conv_transpose_int8":
        return conv_t_case(a["x_q"], a["w_q"], a["bias_q"], a["zp_in"], a["M"], a["n"], a["zp_out"], a["strides"],
                           a["pads"], a["dilations"], a["group"], a["output_padding"])[0]
    if k in ("gemm_int8", "matmul_int8"):
        w = a["w_q"]
        bias = a["bias_q"] if a["bias_q"] is not None else np.zeros(w.shape[1], np.int64)
        return gemm_case(a["x_q"], w, bias, a["zp_in"], a["M"], a["n"], a["zp_out"], a.get("trans_b", 0),
                         op="Gemm" if k == "gemm_int8" else "MatMul")[0]
    net = Net()
    if k in ("add_int8", "sub_int8", "mul_int8"):
        ai, bi = net.inp(a["a_q"]), net.inp(a["b_q"])
        shape = np.broadcast_shapes(a["a_q"].shape, a["b_q"].shape)
        attrs = dict(za=a["za"], zb=a["zb"], shift=a["n"], zp_out=a["zp_out"], qmin=-128, qmax=127)
        attrs.update(dict(M=a["M"]) if k == "mul_int8" else dict(Ma=a["Ma"], Mb=a["Mb"]))
        return net.build({"add_int8": "Add", "sub_int8": "Sub", "mul_int8": "Mul"}[k], [ai, bi],
                         [net.out("int8", shape)], attrs)
    if k == "table_int8":
        xi = net.inp(a["x_q"])
        return net.build("Sigmoid", [xi], [net.out("int8", a["x_q"].shape)], {"table": net.tattr(a["table"], "int8")})
    if k == "softmax_int8":
        xi = net.inp(a["x_q"])
        return net.build("Softmax", [xi], [net.out("int8", a["x_q"].shape)],
                         dict(axis=a["axis"] % a["x_q"].ndim, coerce_2d=0, exp_table=net.tattr(a["table"], "int32")))
    if k == "avgpool_int8":
        xi = net.inp(a["x_q"])
        rows = sorted(a["mults"])
        shape = d["expected"]["shape"]
        attrs = dict(kernel_shape=a["kernel_shape"], strides=a["strides"], pads=a["pads"],
                     dilations=[1] * len(a["kernel_shape"]), ceil_mode=a["ceil_mode"],
                     count_include_pad=a["count_include_pad"], zp_in=a["zp_in"], zp_out=a["zp_out"],
                     mult_count=net.tattr([r[0] for r in rows], "int32"), mult_M=net.tattr([r[1] for r in rows], "int32"),
                     mult_shift=net.tattr([r[2] for r in rows], "int32"))
        return net.build("AveragePool", [xi], [net.out("int8", shape)], attrs)
    if k in ("global_avgpool_int8", "mean_int8"):
        x = a["x_q"]
        axes = list(range(2, x.ndim)) if k == "global_avgpool_int8" else list(a["axes"])
        xi = net.inp(x)
        attrs = dict(zp_in=a["zp_in"], zp_out=a["zp_out"], M=a["M"], shift=a["n"], axes=axes)
        op = "GlobalAveragePool" if k == "global_avgpool_int8" else "ReduceMean"
        if op == "ReduceMean":
            attrs["keepdims"] = a["keepdims"]
        return net.build(op, [xi], [net.out("int8", d["expected"]["shape"])], attrs)
    if k == "maxpool_int8":
        xi = net.inp(a["x_q"])
        attrs = dict(kernel_shape=a["kernel_shape"], strides=a["strides"], pads=a["pads"], dilations=a["dilations"],
                     ceil_mode=a["ceil_mode"])
        return net.build("MaxPool", [xi], [net.out("int8", d["expected"]["shape"])], attrs)
    if k in ("concat_int8", "requantize_int8"):
        if k == "requantize_int8":   # a rescale = a one-input Concat that requantises
            xs, zps, resc, axis = [a["x_q"]], [a["zp_in"]], [(a["M"], a["n"])], 0
        else:
            xs, zps, resc, axis = [_arr(v) for v in d["args"]["xs"]], a["zps_in"], a["rescales"], a["axis"]
        ins = [net.inp(x) for x in xs]
        attrs = dict(axis=axis, zp_out=a["zp_out"], zps_in=list(zps), rescale=[0 if r is None else 1 for r in resc],
                     rescale_M=[0 if r is None else r[0] for r in resc],
                     rescale_shift=[0 if r is None else r[1] for r in resc])
        return net.build("Concat", ins, [net.out("int8", d["expected"]["shape"])], attrs)
    return None


GOLDEN_FILES = sorted(p.name for p in GOLDEN.glob("*.json"))


@pytest.mark.parametrize("name", GOLDEN_FILES)
def test_golden(lib, name, requant_prog):
    d = json.loads((GOLDEN / name).read_text())
    if d["kernel"] == "quantize_multiplier":
        pytest.skip("n/a: multiplier derivation is Python-only (C never derives multipliers)")
    exp = _arr(d["expected"])
    if d["kernel"] == "requantize":
        got = requant_prog(d["args"])
    else:
        case = golden_case(d)
        assert case is not None, f"no C replay for golden kernel {d['kernel']}"
        got = run_c(lib, case)[0]
    assert got.tobytes() == exp.astype(np.int8).tobytes()


REQUANT_C = r"""
#include <stdio.h>
#include "requant.h"
/* stdin: count C zp qmin qmax, then C pairs (M n), then count accumulators (channel = i % C) */
int main(void) {
    long long cnt, C, zp, lo, hi, M[4096], n[4096];
    if (scanf("%lld %lld %lld %lld %lld", &cnt, &C, &zp, &lo, &hi) != 5 || C > 4096) return 1;
    for (long long c = 0; c < C; c++) if (scanf("%lld %lld", &M[c], &n[c]) != 2) return 1;
    for (long long i = 0; i < cnt; i++) {
        long long acc;
        if (scanf("%lld", &acc) != 1) return 1;
        printf("%d\n", dse_requant(acc, (int32_t)M[i % C], (int)n[i % C], (int)zp, (int)lo, (int)hi));
    }
    return 0;
}
"""


@pytest.fixture(scope="module")
def requant_prog(tmp_path_factory):
    """requant.h's dse_requant on the golden accumulators (|acc| up to 2^31)."""
    d = tmp_path_factory.mktemp("requant")
    (d / "rq.c").write_text(REQUANT_C)
    exe = d / "rq"
    from dsedge.runtime import _build
    subprocess.run([CC, *_build.cflags(CDIR, werror=True), str(d / "rq.c"), "-o", str(exe)], check=True)

    def run(args):
        acc = _arr(args["acc"])
        assert args["axis"] == acc.ndim - 1
        M, n = _arr(args["M"]), _arr(args["n"])
        text = f"{acc.size} {M.size} {args['zp_out']} {args['qmin']} {args['qmax']}\n"
        text += " ".join(f"{int(m)} {int(s)}" for m, s in zip(M, n)) + "\n" + " ".join(str(int(v)) for v in acc.ravel())
        out = subprocess.run([str(exe)], input=text, capture_output=True, text=True, check=True).stdout
        return np.array([int(v) for v in out.split()], np.int8).reshape(acc.shape)
    return run


# -- aarch64 under qemu ------------------------------------------------------------------------

def _zig():
    try:
        import ziglang  # noqa: F401
    except ImportError:
        return None
    return [sys.executable, "-m", "ziglang", "cc"]


@pytest.mark.skipif(shutil.which("qemu-aarch64") is None, reason="qemu-aarch64 not installed (apt-get install qemu-user)")
def test_aarch64_identical_bytes(lib, tmp_path):
    zig = _zig()
    if zig is None:
        pytest.skip("ziglang not installed")
    from dsedge.runtime import _build   # the library's sources and flags (runtimes/c/build.mk)
    exe_arm = tmp_path / "run_one_arm64"
    _build.build_binary([*zig, "-target", "aarch64-linux-musl"], exe_arm, csrc=CDIR, arch="arm64",
                        extra_sources=[CDIR / "tests" / "run_one.c"],
                        ldflags=["-static"])   # a link flag: the objects are the other arm64 tests' (object cache)
    head = exe_arm.read_bytes()[:20]
    assert head[:4] == b"\x7fELF" and head[18:20] == b"\xb7\x00", "not an AArch64 ELF executable"   # EM_AARCH64
    rng = np.random.default_rng(11)
    cases = []
    for name in GOLDEN_FILES:
        d = json.loads((GOLDEN / name).read_text())
        if d["kernel"] not in ("quantize_multiplier", "requantize"):
            cases.append(golden_case(d))
    x, w = rand_i8(rng, (1, 4, 9, 70)), rand_w(rng, (6, 2, 3, 3))
    M, n = rng_mults(rng, 6)
    cases.append(conv_case(x, w, rand_bias(rng, 6, 18), -128, M, n, 127, [1, 2], [1, 1, 1, 1], [1, 1], 2)[0])
    cases.append(conv_case(x, w, rand_bias(rng, 6, 18), 5, None, None, 0, [1, 1], [0, 1, 2, 0], [2, 1], 2,
                           out_scale=(2.0 ** rng.uniform(-20, 0, 6)).astype(np.float32))[0])
    xq = np.concatenate([(np.arange(-200, 200) + 0.5).astype(np.float32) * np.float32(0.37),
                         rng.standard_normal(100).astype(np.float32) * 40])
    net = Net()
    qi = net.inp(xq)
    cases.append(net.build("QuantizeLinear", [qi, net.const(np.float32(0.37)), net.const(np.int8(3))],
                           [net.out("int8", xq.shape)], {}))
    net = Net()
    di = net.inp(np.arange(-128, 128, dtype=np.int8))
    cases.append(net.build("DequantizeLinear", [di, net.const(np.float32(0.0123)), net.const(np.int8(-7))],
                           [net.out("float32", (256,))], {}))
    for k, (art, feeds, outs) in enumerate(cases):
        model = tmp_path / f"m{k}.dse"
        model.write_bytes(art.to_bytes())
        ins = []
        for i, f in enumerate(feeds):
            p = tmp_path / f"m{k}.in{i}"
            p.write_bytes(np.ascontiguousarray(f).tobytes())
            ins.append(str(p))
        o = tmp_path / f"m{k}.out"
        subprocess.run(["qemu-aarch64", str(exe_arm), str(model), str(o), *ins], check=True, capture_output=True,
                       timeout=60)
        host = b"".join(r.tobytes() for r in run_c(lib, (art, feeds, outs)))   # this host's library
        assert o.read_bytes() == host, f"case {k}: arm64 and host bytes differ"
