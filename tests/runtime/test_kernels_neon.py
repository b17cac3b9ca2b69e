"""The arm64 int8 kernels (runtimes/c/kernels/neon, kernels/neon_dotprod) and their armv7 build
(kernels/neon32) against the numpy integer reference, byte for byte, under qemu-aarch64 and
qemu-arm (and the REF kernels on the same files).

One aarch64 build of the library with a runner (runtimes/c/tests/run_cases.c: many one-node
`.dse` files in one process, printing the kernel each node got) runs every case twice: with
`-cpu max` (ARMv8.2+ dotprod: the sdot variants must be chosen) and `-cpu cortex-a53` (ARMv8.0:
the baseline NEON variants). Weights of group-1 Conv, Gemm and MatMul are packed here in the
N8K4 layouts (docs/format.md, ISSUE10-SPEC: layout 1 = W[R][K], layout 2 = B[K][N] as W[N][K])
with the exporter's scratch plan; depthwise Convs keep layout 0. Sizes hit every tail: channels
1..17 (blocks of 8), K not a multiple of 4/16, pixels not a multiple of 8, padding, strides,
dilation, kernels 1/3/5/7, batch > 1, 1-D and 3-D, zero points -128/127, clamps, float_out,
multiplier extremes, K > 4096, float_out with subnormal results. The armv7 build (zig cc for
ARMv7-A VFPv3-D16 hard float, as bundles are built) runs the same cases under qemu-arm: with
`-cpu cortex-a15` (NEON: the neon variants must be chosen, and give the same bytes: ARMv7 NEON
flushes subnormals, so float_out must not use NEON float arithmetic there) and `-cpu cortex-r5f`
(VFPv3-D16, no NEON: HWCAP_NEON is clear, REF runs, and no NEON instruction may execute).
"""
from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from dsedge.artifact import CONST, Artifact, NodeRec, TensorAttr, TensorRec, op_id
from dsedge.quant import arith, intref

ROOT = Path(__file__).resolve().parents[2]
CDIR = ROOT / "runtimes" / "c"
QEMU64, QEMU32 = shutil.which("qemu-aarch64"), shutil.which("qemu-arm")
pytestmark = pytest.mark.skipif(QEMU64 is None, reason="qemu-aarch64 not installed (apt-get install qemu-user)")

from dsedge.runtime import _build  # noqa: E402  the library's sources, flags and libraries (runtimes/c/build.mk)
from dsedge.export.bundle import zig_tool_cc  # noqa: E402

FLAGS = _build.cflags(CDIR, werror=True)


def _sources():
    return [str(p) for p in _build.library_sources(CDIR)]


def _cross_cc(target: str) -> list[str]:
    """zig cc for `target` with the bundles' CPU flags (zig_tool_cc), else aarch64-linux-gnu-gcc
    for aarch64."""
    zcc = zig_tool_cc({"aarch64": "arm64", "arm": "armv7"}[target])   # the bundles' compiler and CPU flags
    if zcc is not None:
        return zcc
    gcc = shutil.which("aarch64-linux-gnu-gcc") if target == "aarch64" else None
    if gcc is None:
        pytest.skip(f"needs ziglang (or aarch64-linux-gnu-gcc) to build for {target}")
    return [gcc]


def _compiler(target: str):
    """_cross_cc for static executables (zig's cache makes a rebuild of unchanged sources instant)."""
    return [*_cross_cc(target), "-static"]


def build_runner(out: Path, target: str, ref_float: bool = False) -> Path:
    """run_cases and the whole library for `target` (aarch64 / arm), static, linked as a bundle is
    (build.mk's DSE_LINK_OPT and DSE_LINK_STRIP: zig builds the target's libc once). Built by
    _build.build_binary: the library's objects go to its object cache, shared by the eight test
    files that build this runner and by test_kernels_any's / test_kernels_f32_nn's /
    test_kernels_int8's arm64 builds and test_loader's armv7 build (the same compiler and flags).
    It was one `zig cc` of every source per call, whose objects zig's cache keyed apart from
    the per-file compiles: the library compiled twice per target. `ref_float`: -DDSE_REF_FLOAT
    (test_kernels_neon_ew's and test_kernels_neon_f32's REF-float builds: one set of objects)."""
    exe = out / f"run_cases_{target}{'_ref_float' if ref_float else ''}"
    _build.build_binary(_cross_cc(target), exe, csrc=CDIR, arch={"aarch64": "arm64", "arm": "armv7"}[target],
                        extra_sources=[CDIR / "tests" / "run_cases.c"], ldflags=["-static"],
                        flags=["-DDSE_REF_FLOAT"] if ref_float else [])
    return exe


# -- one-node artifacts ----------------------------------------------------------------------------

def pack_n8k4(W: np.ndarray) -> bytes:
    """W[R][K] int8 -> layout bytes: blocks of 8 rows x 4 k (rows 8 apart, k fastest), zero padded."""
    R, K = W.shape
    Rp, Kp = -(-R // 8) * 8, -(-K // 4) * 4
    P = np.zeros((Rp, Kp), np.int8)
    P[:R, :K] = W
    return P.reshape(Rp // 8, 8, Kp // 4, 4).transpose(0, 2, 1, 3).tobytes()


def packed_plan(K: int, P: int) -> int:
    return 2 * (-(-K // 4) * 4) * min(P, 256) + 4096


class Net:
    def __init__(self):
        self.tensors, self.inputs, self.feeds, self.arena = [], [], [], 0

    def inp(self, a):
        a = np.ascontiguousarray(a)
        self.tensors.append(TensorRec.arena(f"in{len(self.inputs)}", a.dtype.name, a.shape, self.arena))
        self.arena += -(-a.nbytes // 64) * 64
        self.inputs.append(len(self.tensors) - 1)
        self.feeds.append(a)
        return len(self.tensors) - 1

    def const(self, a, dtype=None):
        self.tensors.append(TensorRec.const(f"c{len(self.tensors)}", np.asarray(a), dtype=dtype))
        return len(self.tensors) - 1

    def packed(self, logical: np.ndarray, W: np.ndarray, layout: int):
        self.tensors.append(TensorRec(f"c{len(self.tensors)}", "int8", logical.shape, CONST, 0, pack_n8k4(W), layout))
        return len(self.tensors) - 1

    def out(self, dtype, shape):
        nbytes = int(np.prod(shape)) * np.dtype(dtype).itemsize
        self.tensors.append(TensorRec.arena("out", np.dtype(dtype).name, shape, self.arena))
        self.arena += -(-nbytes // 64) * 64
        return len(self.tensors) - 1

    def build(self, op, ins, out, attrs, scratch=0):
        node = NodeRec(op_id(op, ""), tuple(ins), (out,), attrs, name=op.lower())
        return Artifact(tuple(self.tensors), (node,), tuple(self.inputs), (out,), self.arena + scratch,
                        scratch_offset=self.arena if scratch else 0, scratch_size=scratch)


def weighted_attrs(net, zp_in, zp_out, M, n, qmin, qmax, out_scale, act):
    a = dict(zp_in=zp_in, zp_out=zp_out, qmin=qmin, qmax=qmax, float_out=int(out_scale is not None))
    if out_scale is not None:
        a["out_scale"] = TensorAttr(net.const(out_scale.astype(np.float32), "float32"))
        a["act_min"], a["act_max"] = act if act else (float("-inf"), float("inf"))
    else:
        a["M"] = TensorAttr(net.const(M.astype(np.int32), "int32"))
        a["shift"] = TensorAttr(net.const(n.astype(np.int32), "int32"))
    return a


def finish(ref, out_scale, axis, act):
    if out_scale is None:
        return ref
    y = intref.dequantize_acc(ref, out_scale, axis)
    if act:
        y = np.minimum(np.maximum(y, np.float32(act[0])), np.float32(act[1]))
    return y


def conv_case(x, w, bias, zp_in, M, n, zp_out, strides, pads, dil, group, qmin=-128, qmax=127, out_scale=None,
              act=None):
    """(artifact, feeds, reference output, expected kernel kind: 'conv' packed / 'dwconv')."""
    ref = finish(intref.conv_int8(x, zp_in, w, bias, M, n, zp_out, strides, pads, dil, group, qmin, qmax,
                                  acc_only=out_scale is not None), out_scale, 1, act)
    net = Net()
    xi = net.inp(x)
    if group == 1:
        wi, kind = net.packed(w, w.reshape(w.shape[0], -1), 1), "conv"
        scratch = packed_plan(int(np.prod(w.shape[1:])), int(np.prod(ref.shape[2:])))
    else:
        wi, kind, scratch = net.const(w), "dwconv", 0
    bi = net.const(bias.astype(np.int32))
    yi = net.out(ref.dtype, ref.shape)
    attrs = dict(kernel_shape=list(w.shape[2:]), strides=strides, pads=pads, dilations=dil, group=group,
                 auto_pad="NOTSET", **weighted_attrs(net, zp_in, zp_out, M, n, qmin, qmax, out_scale, act))
    return net.build("Conv", [xi, wi, bi], yi, attrs, scratch), net.feeds, ref, kind


def gemm_case(x, w, bias, zp_in, M, n, zp_out, trans_b, qmin=-128, qmax=127, out_scale=None, act=None, op="Gemm"):
    ref = finish(intref.gemm_int8(x.reshape(-1, x.shape[-1]), zp_in, w, bias, M, n, zp_out, trans_b, qmin, qmax,
                                  acc_only=out_scale is not None), out_scale, -1, act)
    ref = ref.reshape(*x.shape[:-1], ref.shape[-1]) if x.ndim > 1 else ref.reshape(-1)
    net = Net()
    xi = net.inp(x)
    wi = net.packed(w, w if trans_b else w.T, 1 if trans_b else 2)
    bi = net.const(bias.astype(np.int32))
    yi = net.out(ref.dtype, ref.shape)
    attrs = weighted_attrs(net, zp_in, zp_out, M, n, qmin, qmax, out_scale, act)
    if op == "Gemm":
        attrs.update(transA=0, transB=trans_b, alpha=1.0, beta=1.0)
    rows = int(np.prod(x.shape[:-1]))
    return net.build(op, [xi, wi, bi], yi, attrs, packed_plan(x.shape[-1], rows)), net.feeds, ref, op.lower()


def rand_i8(rng, shape):
    return rng.integers(-128, 128, shape).astype(np.int8)


def rand_w(rng, shape, extreme=False):
    if extreme:   # mostly +-127: the int16 pair sums of the baseline kernel at their bound
        return np.where(rng.random(shape) < 0.5, -127, 127).astype(np.int8)
    return rng.integers(-127, 128, shape).astype(np.int8)


def rand_bias(rng, C, K, big=False):
    room = arith.accumulator_headroom(K)
    lim = room if big else min(room, 1 << 20)
    return rng.integers(-lim, lim + 1, C).astype(np.int64)


def rng_mults(rng, C, lo=-20, hi=4):
    M, n = arith.quantize_multiplier(2.0 ** rng.uniform(lo, hi, C))
    return M.astype(np.int64), n.astype(np.int64)


# -- the cases ---------------------------------------------------------------------------------------

CONV_GEOMS = [   # x shape, w shape, strides, pads, dilations, group
    ((1, 3, 9, 11), (5, 3, 3, 3), [1, 1], [1, 1, 1, 1], [1, 1], 1),            # K = 27
    ((2, 3, 7, 9), (17, 3, 3, 3), [2, 1], [1, 0, 2, 1], [1, 2], 1),            # batch 2, 17 channels
    ((1, 16, 8, 8), (8, 16, 1, 1), [1, 1], [0, 0, 0, 0], [1, 1], 1),           # 1x1, K = 16
    ((1, 33, 5, 7), (9, 33, 1, 1), [1, 1], [0, 0, 0, 0], [1, 1], 1),           # 1x1, K = 33, P = 35
    ((1, 24, 9, 9), (16, 24, 1, 1), [2, 2], [0, 0, 0, 0], [1, 1], 1),          # strided 1x1
    ((1, 4, 12, 13), (7, 4, 5, 5), [2, 2], [2, 2, 2, 2], [1, 1], 1),           # 5x5
    ((1, 2, 15, 14), (3, 2, 7, 7), [2, 2], [3, 3, 3, 3], [1, 1], 1),           # 7x7 stem-like
    ((1, 5, 10, 10), (6, 5, 3, 3), [1, 1], [2, 0, 0, 2], [2, 2], 1),           # dilation, odd pads
    ((2, 3, 31), (4, 3, 5), [3], [2, 1], [2], 1),                              # 1-D
    ((1, 2, 4, 5, 6), (3, 2, 2, 3, 2), [1, 2, 1], [1, 0, 1, 0, 1, 1], [1, 1, 2], 1),   # 3-D
    ((1, 1, 1, 1), (1, 1, 1, 1), [1, 1], [0, 0, 0, 0], [1, 1], 1),             # 1 x 1 x 1
    ((1, 7, 1, 3), (12, 7, 1, 1), [1, 1], [0, 0, 0, 0], [1, 1], 1),            # P = 3 < 8
    ((1, 3, 20, 20), (8, 3, 3, 3), [1, 1], [1, 1, 1, 1], [1, 1], 1),           # P = 400: two tiles
    ((1, 520, 3, 3), (10, 520, 3, 3), [1, 1], [1, 1, 1, 1], [1, 1], 1),        # K = 4680 > 4096
    ((1, 6, 2, 7), (10, 6, 1, 1), [1, 1], [0, 0, 0, 0], [1, 1], 1),            # P = 14: 6 pixels left over
    # P < 8 with taps (rows built per pixel: neon_conv_im2row)
    ((3, 20, 4), (9, 20, 3), [1], [1, 1], [1], 1),                             # silero-like, P = 4
    ((2, 1, 70), (5, 1, 32), [16], [0, 0], [1], 1),                            # STFT-like, P = 3
    ((2, 5, 3, 2), (4, 5, 3, 3), [1, 1], [1, 1, 1, 1], [1, 1], 1),             # 2-D, P = 6
    ((1, 3, 5), (4, 3, 3), [1], [3, 3], [2], 1),                               # dilated, padding wider than x: P = 7
]

DW_GEOMS = [
    ((1, 6, 9, 20), (6, 1, 3, 3), [1, 1], [1, 1, 1, 1], [1, 1], 6),
    ((2, 5, 11, 37), (5, 1, 3, 3), [2, 2], [1, 1, 1, 1], [1, 1], 5),           # stride 2
    ((1, 4, 12, 40), (4, 1, 3, 3), [2, 2], [0, 0, 1, 1], [1, 1], 4),           # stride 2, end padding
    ((1, 3, 8, 30), (6, 1, 5, 5), [1, 1], [2, 2, 2, 2], [1, 1], 3),            # multiplier 2, 5x5
    ((1, 2, 9, 33), (2, 1, 3, 3), [1, 1], [2, 2, 2, 2], [2, 2], 2),            # dilation 2
    ((1, 3, 7, 7), (3, 1, 3, 3), [1, 1], [1, 1, 1, 1], [1, 1], 3),             # rows narrower than 8
    ((1, 2, 9, 50), (2, 1, 3, 3), [3, 3], [1, 1, 1, 1], [1, 1], 2),            # stride 3: scalar
    ((1, 4, 6, 19), (4, 1, 1, 7), [1, 1], [0, 3, 0, 3], [1, 1], 4),            # 1x7
    ((2, 3, 40), (3, 1, 5), [1], [2, 2], [1], 3),                              # 1-D
    ((1, 2, 3, 5, 17), (2, 1, 2, 3, 3), [1, 1, 1], [1, 1, 1, 0, 1, 1], [1, 1, 1], 2),   # 3-D
    ((1, 17, 16, 16), (17, 1, 3, 3), [1, 1], [0, 0, 0, 0], [1, 1], 17),        # no padding
    ((1, 4, 7, 7), (4, 1, 7, 7), [1, 1], [0, 0, 0, 0], [1, 1], 4),             # one output per plane
    ((1, 3, 4, 6), (3, 1, 3, 3), [1, 1], [1, 1, 1, 1], [1, 1], 3),             # rows of 6
    ((1, 2, 9, 9), (2, 1, 3, 3), [2, 2], [1, 1, 1, 1], [1, 1], 2),             # stride 2, rows of 5
    ((1, 2, 5, 80), (2, 1, 1, 7), [1, 1], [0, 3, 0, 3], [1, 10], 2),           # window > 64 bytes: scalar
    ((1, 3, 6, 23), (3, 1, 3, 5), [2, 2], [1, 2, 1, 2], [1, 1], 3),            # stride 2, 3x5, OW = 12
    ((1, 2, 128, 140), (2, 1, 3, 3), [1, 1], [1, 1, 1, 1], [1, 1], 2),         # plane > 16 KiB: windows
    ((1, 2, 129, 150), (2, 1, 5, 3), [2, 2], [2, 1, 2, 1], [1, 2], 2),         # same, stride 2, segments of 128
]

GEMM_SHAPES = [(1, 1, 1), (5, 37, 7), (3, 64, 17), (9, 130, 9), (8, 16, 8), (1, 4100, 13), (17, 33, 16), (2, 7, 3),
               (1, 75, 9), (1, 30, 17), (1, 40, 8)]


def all_cases():
    rng = np.random.default_rng(2024)
    cases = []
    zps = [(-128, 127), (127, -128), (5, -7)]
    for gi, (xs, ws, st, pd, dl, gr) in enumerate(CONV_GEOMS + DW_GEOMS):
        K = int(np.prod(ws[1:]))
        for zi, (zin, zout) in enumerate(zps):
            x, w = rand_i8(rng, xs), rand_w(rng, ws, extreme=zi == 0)
            M, n = rng_mults(rng, ws[0])
            cases.append(conv_case(x, w, rand_bias(rng, ws[0], K, big=zi == 1), zin, M, n, zout, st, pd, dl, gr))
        x, w = rand_i8(rng, xs), rand_w(rng, ws)
        b = rand_bias(rng, ws[0], K)
        M, n = rng_mults(rng, ws[0], -14, 0)
        cases.append(conv_case(x, w, b, -3, M, n, -100, st, pd, dl, gr, qmin=-100, qmax=50))
        scale = (2.0 ** rng.uniform(-20, 0, ws[0])).astype(np.float32)
        act = (0.0, 6.0 * float(scale.mean()) * 1000) if gi % 2 else None
        cases.append(conv_case(x, w, b, 7, None, None, 0, st, pd, dl, gr, out_scale=scale, act=act))
    # multiplier extremes: (0, 62), saturating (2^30, 1), M = 2^31 - 1 with n = 1 / 31 / 62
    Mx = np.array([0, 2**30, 2**31 - 1, 2**31 - 1, 2**30 + 12345, 1, 2**31 - 1, 2**30], np.int64)
    nx = np.array([62, 1, 62, 31, 40, 1, 1, 62], np.int64)
    for xs, ws, gr in (((1, 3, 6, 10), (8, 3, 3, 3), 1), ((1, 8, 6, 19), (8, 1, 3, 3), 8)):
        x, w = rand_i8(rng, xs), rand_w(rng, ws)
        cases.append(conv_case(x, w, rand_bias(rng, 8, int(np.prod(ws[1:]))), 0, Mx, nx, 3, [1, 1], [1, 1, 1, 1],
                               [1, 1], gr))
    # blocks whose shifts are all >= 32 (multipliers < 1/2: the usual case) or all 31, and extremes of both
    for lo, hi in ((-20, -1), (-1, -1e-9)):
        for xs, ws, gr in (((1, 5, 9, 13), (19, 5, 3, 3), 1), ((1, 19, 9, 13), (19, 1, 3, 3), 19)):
            x, w = rand_i8(rng, xs), rand_w(rng, ws)
            M, n = rng_mults(rng, ws[0], lo, hi)
            cases.append(conv_case(x, w, rand_bias(rng, ws[0], int(np.prod(ws[1:]))), -128, M, n, 127, [1, 1],
                                   [1, 1, 1, 1], [1, 1], gr))
        x, w = rand_i8(rng, (6, 70)), rand_w(rng, (70, 21))
        M, n = rng_mults(rng, 21, lo, hi)
        cases.append(gemm_case(x, w, rand_bias(rng, 21, 70), 127, M, n, -128, 0))
    Mh = np.array([0, 2**31 - 1, 2**31 - 1, 2**30, 2**30, 1, 2**31 - 1, 2**30 + 1], np.int64)
    nh = np.array([62, 32, 62, 32, 33, 32, 47, 62], np.int64)
    x, w = rand_i8(rng, (1, 8, 6, 19)), rand_w(rng, (8, 8, 3, 3), extreme=True)
    cases.append(conv_case(x, w, rand_bias(rng, 8, 72, big=True), 0, Mh, nh, -3, [1, 1], [1, 1, 1, 1], [1, 1], 1))
    x, w = rand_i8(rng, (1, 8, 6, 19)), rand_w(rng, (8, 1, 3, 3), extreme=True)
    cases.append(conv_case(x, w, rand_bias(rng, 8, 9, big=True), 0, Mh, nh, -3, [1, 1], [1, 1, 1, 1], [1, 1], 8))
    for R, K, N in GEMM_SHAPES:
        for tb in (0, 1):
            x, w = rand_i8(rng, (R, K)), rand_w(rng, (N, K) if tb else (K, N), extreme=R == 5)
            M, n = rng_mults(rng, N)
            b = rand_bias(rng, N, K, big=K > 4096)
            cases.append(gemm_case(x, w, b, -128, M, n, 127, tb))
            cases.append(gemm_case(x, w, b, 127, M, n, -128, tb, qmin=-20, qmax=90))
            scale = (2.0 ** rng.uniform(-20, 4, N)).astype(np.float32)
            act = (float("-inf"), 0.0) if tb else None
            cases.append(gemm_case(x, w, b, 3, None, None, 0, tb, out_scale=scale, act=act))
    for xshape in [(2, 3, 4100), (4, 7, 33), (33,), (2, 2, 2, 5), (1, 12, 64)]:
        K, N = xshape[-1], (3 if xshape[-1] > 4096 else 19)
        x, w = rand_i8(rng, xshape), rand_w(rng, (K, N))
        M, n = rng_mults(rng, N)
        b = rand_bias(rng, N, K)
        cases.append(gemm_case(x, w, b, 1, M, n, -2, 0, op="MatMul"))
        scale = (2.0 ** rng.uniform(-20, 0, N)).astype(np.float32)
        cases.append(gemm_case(x, w, b, -128, None, None, 0, 0, out_scale=scale, op="MatMul"))
    # float_out whose products are subnormal floats (scales 2^-149 .. 2^-120): IEEE arithmetic keeps
    # them, ARMv7 NEON float arithmetic would flush them to zero
    for xs, ws, st, gr in (((1, 3, 9, 10), (11, 3, 3, 3), 1, 1), ((1, 6, 9, 10), (6, 1, 3, 3), 1, 6),
                           ((1, 2, 9, 50), (2, 1, 3, 3), 3, 2)):   # the last: depthwise's scalar loop
        x, w = rand_i8(rng, xs), rand_w(rng, ws)
        scale = (2.0 ** rng.uniform(-149, -120, ws[0])).astype(np.float32)
        cases.append(conv_case(x, w, rand_bias(rng, ws[0], int(np.prod(ws[1:]))), 5, None, None, 0, [st, st],
                               [1, 1, 1, 1], [1, 1], gr, out_scale=scale,
                               act=(-2.0 ** -122, 2.0 ** -121) if gr == 6 else None))
    for R, K, N, tb in ((3, 37, 13, 1), (9, 20, 8, 0)):
        x, w = rand_i8(rng, (R, K)), rand_w(rng, (N, K) if tb else (K, N))
        scale = (2.0 ** rng.uniform(-149, -126, N)).astype(np.float32)
        cases.append(gemm_case(x, w, rand_bias(rng, N, K), -7, None, None, 0, tb, out_scale=scale))
    return cases


def write_cases(d: Path, cases):
    """Cases as files in d: (list text, [(output path, reference bytes, kind)])."""
    lines, expect = [], []
    for k, (art, feeds, ref, kind) in enumerate(cases):
        model = d / f"m{k}.dse"
        model.write_bytes(art.to_bytes())
        ins = []
        for i, f in enumerate(feeds):
            p = d / f"m{k}.in{i}"
            p.write_bytes(np.ascontiguousarray(f).tobytes())
            ins.append(str(p))
        out = d / f"m{k}.out"
        lines.append(" ".join([str(model), str(out), *ins]))
        expect.append((out, np.ascontiguousarray(ref).tobytes(), kind))
    return "\n".join(lines) + "\n", expect


@pytest.fixture(scope="module")
def written(tmp_path_factory):
    return write_cases(tmp_path_factory.mktemp("neon_cases"), all_cases())


def run_all(cmd, written, only=None):
    text, expect = written
    lines = text.splitlines()
    sel = [i for i in range(len(lines)) if only is None or expect[i][2] in only]
    for i in sel:
        expect[i][0].unlink(missing_ok=True)
    r = subprocess.run(cmd, input="\n".join(lines[i] for i in sel) + "\n", capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    kernels = [ln.split()[0] for ln in r.stdout.splitlines()]
    assert len(kernels) == len(sel)
    for i, kern in zip(sel, kernels):
        got = expect[i][0].read_bytes()
        assert got == expect[i][1], f"case {i} ({kern}): {len(got)} bytes, differs from the reference"
    return dict(zip(sel, kernels))


@pytest.fixture(scope="module")
def arm64(tmp_path_factory):
    return build_runner(tmp_path_factory.mktemp("neon_build"), "aarch64")


EXPECT = {  # kind -> (kernel with dotprod, kernel without)
    "conv": ("dse_i8_conv__neon_dotprod", "dse_i8_conv__neon"),
    "gemm": ("dse_i8_gemm__neon_dotprod", "dse_i8_gemm__neon"),
    "matmul": ("dse_i8_matmul__neon_dotprod", "dse_i8_matmul__neon"),
    "dwconv": ("dse_i8_dwconv__neon", "dse_i8_dwconv__neon"),
}


@pytest.mark.parametrize("cpu", ["max", "cortex-a53"])
def test_arm64_kernels_exact(arm64, written, cpu):
    """Every case gives the reference's bytes, on the variant this CPU model selects."""
    kernels = run_all([QEMU64, "-cpu", cpu, str(arm64)], written)
    for i, kern in kernels.items():
        kind = written[1][i][2]
        assert kern == EXPECT[kind][0 if cpu == "max" else 1], f"case {i}: {kind} ran {kern}"


@pytest.mark.parametrize("threads", [2, 3])
def test_arm64_kernels_threads(arm64, written, threads):
    """Same bytes on 2 and 3 threads (Conv tiles with each worker's scratch, Gemm channel blocks,
    depthwise planes)."""
    run_all([QEMU64, "-cpu", "max", str(arm64), "-threads", str(threads)], written,
            only={"conv", "dwconv", "gemm", "matmul"} if threads == 2 else {"conv"})


def test_arm64_ref_forced(arm64, written):
    """DSE_LOAD_REF_KERNELS gives the portable kernels, and the same bytes, on every case (REF
    reads the packed layouts too)."""
    kernels = run_all([QEMU64, "-cpu", "max", str(arm64), "-ref"], written)
    assert set(kernels.values()) == {"dse_i8_conv__ref", "dse_i8_gemm__ref", "dse_i8_matmul__ref"}


@pytest.mark.parametrize("gcc, cpu", [("aarch64-linux-gnu-gcc", []),
                                      ("arm-linux-gnueabihf-gcc", ["-march=armv7-a", "-mfpu=vfpv3-d16",
                                                                   "-mfloat-abi=hard"])])
def test_kernels_build_with_gcc(tmp_path, gcc, cpu):
    """The arm64 kernel files, and their armv7 build (VFPv3-D16: NEON per function with
    target("fpu=neon")), also compile warning-free with GCC (its target attribute spellings,
    isa.h); the runs above use zig's clang."""
    if shutil.which(gcc) is None:
        pytest.skip(f"{gcc} not installed")
    for src in sorted((CDIR / "kernels").glob("neon*/*.c")) + [CDIR / "src" / "kernels.c"]:
        obj = tmp_path / f"{src.parent.name}_{src.stem}.o"
        subprocess.run([gcc, *cpu, *FLAGS, "-c", str(src), "-o", str(obj)], check=True, capture_output=True,
                       timeout=300)


RQ_TEST_C = r"""
/* i8_neon.h's vector requantisation (WIDE, HIGH, N31 forms) against requant.h's scalar rule on
 * random and tie-heavy accumulators: prints the number of mismatches. */
#include <stdio.h>
#include "i8_neon.h"

static uint64_t st = 88172645463325252ull;
static uint64_t rnd(void) { st ^= st << 13; st ^= st >> 7; st ^= st << 17; return st; }

DSE_TARGET_NEON int main(void) {   /* armv7: NEON for this function (src/isa.h) */
    long bad = 0, checked = 0;
    for (long it = 0; it < 200000; it++) {
        int32_t M[8], n[8], acc[8];
        const int form = (int)(rnd() % 3);   /* 0: any n (WIDE); 1: n >= 32 (HIGH); 2: n == 31 */
        for (int i = 0; i < 8; i++) {
            const uint64_t r = rnd();
            M[i] = r % 4 == 0 ? (int32_t)(1u << (r >> 8) % 31) : r % 4 == 1 ? 0x7fffffff - (int32_t)(r >> 40) % 3
                 : (int32_t)((r >> 2) & 0x7fffffff);
            if (r % 97 == 0) M[i] = 0;
            n[i] = form == 2 ? 31 : form == 1 ? 32 + (int32_t)((r >> 33) % 31) : 1 + (int32_t)((r >> 33) % 62);
            const uint64_t a = rnd();
            acc[i] = a % 5 == 0 ? (int32_t)(a >> 32) : a % 5 == 1 ? (int32_t)((a >> 32) % 2001) - 1000
                   : a % 5 == 2 ? (a & 64 ? 2147483647 : -2147483647 - 1 + (int32_t)(a >> 60))
                   : (int32_t)(((int64_t)(a >> 34) % 65536 - 32768) * 2);   /* even values: ties with M = 2^k */
        }
        int zp = (int)(rnd() % 256) - 128, qlo = -128 + (int)(rnd() % 20), qhi = 127 - (int)(rnd() % 20);
        dse_i8_neon_rq q;
        dse_i8_neon_rq_init(&q, M, n, zp, qlo, qhi);
        if (q.kind != (form == 1 ? DSE_I8_RQ_HIGH : form == 2 ? DSE_I8_RQ_N31 : q.kind)) bad++;
        int8_t got[8];
        vst1_s8(got, dse_i8_neon_rq8(&q, vld1q_s32(acc), vld1q_s32(acc + 4)));
        q.kind = DSE_I8_RQ_WIDE;   /* the wide form on the same lanes too */
        int8_t wide[8];
        vst1_s8(wide, dse_i8_neon_rq8(&q, vld1q_s32(acc), vld1q_s32(acc + 4)));
        for (int i = 0; i < 8; i++, checked++) {
            const int8_t want = dse_requant(acc[i], M[i], n[i], zp, qlo, qhi);
            bad += got[i] != want;
            bad += wide[i] != want;
        }
    }
    printf("%ld %ld\n", bad, checked);
    return 0;
}
"""


@pytest.mark.parametrize("target, cpu", [("aarch64", "cortex-a53"), ("arm", "cortex-a15")])
def test_requant_forms(tmp_path, target, cpu):
    """The three exact vector forms of the rule (i8_neon.h) equal requant.h on 1.6M random lanes,
    ties (M = 2^k, even accumulators) and the int32 extremes included; on arm64 and on armv7 NEON
    (neon_a32.h)."""
    qemu = QEMU64 if target == "aarch64" else QEMU32
    if qemu is None:
        pytest.skip(f"qemu for {target} not installed")
    exe = tmp_path / "rq"
    src_tmp = tmp_path / "rq.c"
    src_tmp.write_text(RQ_TEST_C)
    subprocess.run([*_compiler(target), *FLAGS, f"-I{CDIR / 'kernels' / 'neon'}", str(src_tmp),
                    *_build.manifest(CDIR).link_strip, "-o", str(exe)],
                   check=True, capture_output=True, timeout=300)
    out = subprocess.run([qemu, "-cpu", cpu, str(exe)], capture_output=True, text=True, check=True,
                         timeout=120).stdout.split()
    assert out[0] == "0" and int(out[1]) == 1600000, out


# -- armv7 (kernels/neon32: the same sources, NEON per function) ----------------------------------

needs_qemu32 = pytest.mark.skipif(QEMU32 is None, reason="qemu-arm not installed")


@pytest.fixture(scope="module")
def armv7(tmp_path_factory):
    return build_runner(tmp_path_factory.mktemp("neon32_build"), "arm")


@needs_qemu32
def test_armv7_kernels_exact(armv7, written):
    """A NEON core (cortex-a15): every case on the neon variant, with the reference's bytes."""
    kernels = run_all([QEMU32, "-cpu", "cortex-a15", str(armv7)], written)
    for i, kern in kernels.items():
        kind = written[1][i][2]
        assert kern == EXPECT[kind][1], f"case {i}: {kind} ran {kern}"


@needs_qemu32
def test_armv7_kernels_threads(armv7, written):
    run_all([QEMU32, "-cpu", "cortex-a15", str(armv7), "-threads", "2"], written, only={"conv", "dwconv", "gemm"})


@needs_qemu32
def test_armv7_without_neon(armv7, written):
    """A core without NEON (cortex-r5f: VFPv3-D16): HWCAP_NEON is clear, so REF runs, with the same
    bytes, and the library executes no NEON instruction (qemu would raise SIGILL); -ref on a NEON
    core gives REF too."""
    for cmd in ([QEMU32, "-cpu", "cortex-r5f", str(armv7)], [QEMU32, "-cpu", "cortex-a15", str(armv7), "-ref"]):
        kernels = run_all(cmd, written)
        assert set(kernels.values()) == {"dse_i8_conv__ref", "dse_i8_gemm__ref", "dse_i8_matmul__ref"}, cmd
