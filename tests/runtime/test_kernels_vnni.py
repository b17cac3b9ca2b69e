"""The x86 VNNI int8 kernels (kernels/avxvnni/conv_i8.c, compiled twice: `__avxvnni` with VEX
vpdpbusd on ymm, `__avx512vnni` with 512-bit vpdpbusd and, for Conv, pixels in lanes), byte for
byte against REF and intref.

Each variant is tested natively when this CPU has it and the loader chooses it (/proc/cpuinfo:
`avx512_vnni` with `avx512vl`/`avx512bw`, which is listed first; `avx_vnni` and no
`avx512_vnni`), else on one emulation build (`make EMULATE_VNNI=3`, -DDSE_EMULATE_VNNI; the variant set per load through dse__emulate_vnni_mask): the same
source compiled for AVX2 with an exact emulation of vpdpbusd (kernels/avxvnni/vnni_emul.h), the
CPU said to have the variant's ISA (src/cpu.c), so the loader chooses its rows. Either way every
case asserts that the VNNI kernel (not a fallback) ran and gave REF's and intref's bytes: Conv
1x1/3x3/5x5/7x7, strides, dilation, padding, 1-D and 3-D, odd channels, K not a multiple of 4
or 16 and K > 4096, GEMM tiles over 256 columns, Gemm transB 0/1, MatMul on transformer shapes,
zero points -128/127, multipliers >= 1, qmin/qmax clamps, float_out (with and without clamps),
1 and 3 threads. Neither qemu 7.2 nor 10.0 executes vpdpbusd (SIGILL), hence the emulation.

Also: the real (non-emulated) sources compile with gcc and zig's clang to vpdpbusd (VEX for
avxvnni, EVEX for avx512vnni), and a normal build on a CPU without VNNI does not choose them.
"""
from __future__ import annotations

import ctypes as C
import os
import platform
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tests.runtime._make import make_checked
from tests.runtime.test_kernels_int8_opt import (CONV, LOAD_REF, ONES, conv_case, gemm_case, load, rand_bias,
                                                 rand_i8, rand_w, rng_mults, run_c)

from dsedge.runtime import _Error, _SessionOptions, _build, _declare

ROOT = Path(__file__).resolve().parents[2]
CDIR = ROOT / "runtimes" / "c"
CC = os.environ.get("CC") or shutil.which("cc") or shutil.which("gcc") or shutil.which("clang")


def _flags() -> set[str]:
    if platform.machine() not in ("x86_64", "AMD64"):
        return set()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("flags"):
                return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return set()


FLAGS = _flags()
AVX2 = {"avx2", "fma", "f16c"} <= FLAGS
HAS = {"avxvnni": "avx_vnni" in FLAGS,
       "avx512vnni": {"avx512_vnni", "avx512vl", "avx512bw", "avx512f"} <= FLAGS}
# the variant a normal build chooses on this CPU (kernels_x86.inc lists avx512vnni first)
NATIVE = "avx512vnni" if HAS["avx512vnni"] else "avxvnni" if HAS["avxvnni"] else None
MASK = {"avxvnni": 1, "avx512vnni": 2}
NO_AMX = 4   # DSE_LOAD_NO_AMX: on an AMX CPU the AMX Conv (tests/runtime/test_kernels_amx.py) would come first

pytestmark = pytest.mark.skipif(CC is None or shutil.which("make") is None or not AVX2,
                                reason="needs an x86-64 CPU with AVX2, a C compiler and make")


def _lib(args: tuple[str, ...]):
    L = C.CDLL(str(make_checked(CC, "libdsedge.so", args=args) / "libdsedge.so"))
    _declare(L)
    L.dse_model_node_kernel.argtypes, L.dse_model_node_kernel.restype = [C.c_void_p, C.c_size_t], C.c_char_p
    return L


def _emulating(L, mask: int):
    """The emulation build `L`, reporting the VNNI ISAs of `mask` from its next load on (one build
    serves both variants: dse__emulate_vnni_mask in src/cpu.c)."""
    C.c_int.in_dll(L, "dse__emulate_vnni_mask").value = mask
    return L


@pytest.fixture(scope="module")
def emulation_lib():
    prebuilt = os.environ.get("DSE_TEST_LIBDSEDGE")   # e.g. a sanitizer build (EMULATE_VNNI=3)
    if prebuilt:
        L = C.CDLL(prebuilt)
        _declare(L)
        L.dse_model_node_kernel.argtypes, L.dse_model_node_kernel.restype = [C.c_void_p, C.c_size_t], C.c_char_p
        return L
    return _lib(("EMULATE_VNNI=3",))


@pytest.fixture(params=["avxvnni", "avx512vnni"])
def vnni(request):
    """(library, variant): natively when the CPU runs this variant, else the emulation build."""
    v = request.param
    native = v == NATIVE
    if native and not os.environ.get("DSE_TEST_LIBDSEDGE"):
        return _lib(()), v, native
    return _emulating(request.getfixturevalue("emulation_lib"), MASK[v]), v, native


def run_threads(lib, art, feeds, outs, threads):
    st, msg, m, keep = load(lib, art.to_bytes(), NO_AMX)
    assert st == 0, msg
    s, err = C.c_void_p(), _Error()
    try:
        opt = _SessionOptions(C.sizeof(_SessionOptions), threads)
        assert lib.dse_session_create_ex(m, None, 0, C.byref(opt), C.byref(s), C.byref(err)) == 0, err.message
        for i, a in enumerate(feeds):
            a = np.ascontiguousarray(a)
            assert lib.dse_session_set_input(s, i, a.ctypes.data, a.nbytes, C.byref(err)) == 0, err.message
        assert lib.dse_session_run(s, C.byref(err)) == 0, err.message
        dt, shape = outs[0]
        p, n = C.c_void_p(), C.c_size_t()
        assert lib.dse_session_get_output(s, 0, C.byref(p), C.byref(n)) == 0
        return np.frombuffer(C.string_at(p, n.value), dt).reshape(shape).copy()
    finally:
        lib.dse_session_free(s)
        lib.dse_model_free(m)
        del keep


def check(vnni, case, want="vnni"):
    """The variant's kernel (want "vnni"; or the named suffix) gives REF's and intref's bytes."""
    lib, v, _ = vnni
    art, feeds, outs, ref = case
    expect = np.ascontiguousarray(ref).tobytes()
    got, kern = run_c(lib, art, feeds, outs, NO_AMX)
    got_ref, kref = run_c(lib, art, feeds, outs, LOAD_REF)
    assert all(k.endswith("__ref") for k in kref), kref
    suffix = f"__{v}" if want == "vnni" else want
    assert kern[0].endswith(suffix), (kern, suffix)
    assert got_ref[0].tobytes() == expect, f"REF: {int((got_ref[0] != ref).sum())} of {ref.size} differ"
    assert got[0].tobytes() == expect, f"{kern}: {int((got[0] != ref).sum())} of {ref.size} differ"
    return art, feeds, outs


# -- Conv -----------------------------------------------------------------------------------------

CONV_VNNI = CONV + [   # x shape, w shape, strides, pads, dilations
    ((1, 9, 20, 21), (16, 9, 3, 3), [1, 1], [1, 1, 1, 1], [1, 1]),     # 3x3 stride 1 (AVX2: Winograd)
    ((1, 13, 15, 17), (17, 13, 3, 3), [1, 1], [0, 0, 0, 0], [1, 1]),   # O % 16 = 1, K % 4 = 1
    ((1, 7, 5, 6), (24, 7, 1, 1), [1, 1], [0, 0, 0, 0], [1, 1]),       # 1x1: P = 30 (column tail 2), O = 24
    ((2, 3, 1, 1), (9, 3, 1, 1), [1, 1], [0, 0, 0, 0], [1, 1]),        # one pixel per image
    ((1, 64, 14, 14), (40, 64, 3, 3), [2, 2], [1, 1, 1, 1], [1, 1]),
]


@pytest.mark.parametrize("gi", range(len(CONV_VNNI)))
@pytest.mark.parametrize("zps", [(-128, 127), (127, -128), (5, -7)])
def test_conv(vnni, gi, zps):
    xs, ws, st, pd, dl = CONV_VNNI[gi]
    rng = np.random.default_rng(7000 + 100 * gi + zps[0])
    K = int(np.prod(ws[1:]))
    x, w = rand_i8(rng, xs), rand_w(rng, ws)
    M, n = rng_mults(rng, ws[0])
    b = rand_bias(rng, ws[0], K, big=K > 4096)
    check(vnni, conv_case(x, w, b, zps[0], M, n, zps[1], st, pd, dl, 1, 1))
    check(vnni, conv_case(x, w, b, zps[0], None, None, 0, st, pd, dl, 1, 1, out_scale=ONES(ws[0])))
    if gi % 4 == 0:
        scale = (2.0 ** rng.uniform(-20, 0, ws[0])).astype(np.float32)
        check(vnni, conv_case(x, w, b, zps[0], None, None, 0, st, pd, dl, 1, 1, out_scale=scale, act=(-0.5, 1e3)))
        M2, n2 = rng_mults(rng, ws[0], 0, 6)   # multipliers >= 1
        check(vnni, conv_case(x, w, b, zps[0], M2, n2, zps[1], st, pd, dl, 1, 1, qmin=-20, qmax=30))


def test_conv_extreme_sums(vnni):
    """The largest sums the check accepts: extreme inputs, weights of one sign per channel,
    bias at the headroom (u = x + 128 makes sum u*w far larger than sum (x - zp)*w)."""
    for zp, xv in ((-128, 127), (127, -128), (0, -128)):
        xs, O = (1, 300, 6, 6), 12
        x = np.full(xs, xv, np.int8)
        w = np.full((O, xs[1], 3, 3), 127, np.int8)
        w[::2] = -127
        rng = np.random.default_rng(zp + 999)
        M, n = rng_mults(rng, O)
        b = rand_bias(rng, O, 9 * xs[1], big=True)
        check(vnni, conv_case(x, w, b, zp, M, n, 3, [1, 1], [1, 1, 1, 1], [1, 1], 1, 1))
        check(vnni, conv_case(x, w, b, zp, None, None, 0, [1, 1], [1, 1, 1, 1], [1, 1], 1, 1, out_scale=ONES(O) / 64))


def test_depthwise_and_layout0_fall_through(vnni):
    """Depthwise (layout 0) goes on to the AVX2 kernel, a layout-0 group-1 conv to REF."""
    rng = np.random.default_rng(3)
    x, w = rand_i8(rng, (1, 8, 9, 9)), rand_w(rng, (8, 1, 3, 3))
    M, n = rng_mults(rng, 8)
    check(vnni, conv_case(x, w, rand_bias(rng, 8, 9), 2, M, n, 0, [1, 1], [1, 1, 1, 1], [1, 1], 8, 0), "__avx2")
    w1 = rand_w(rng, (5, 8, 3, 3))
    M1, n1 = rng_mults(rng, 5)
    check(vnni, conv_case(x, w1, rand_bias(rng, 5, 72), 2, M1, n1, 0, [1, 1], [1, 1, 1, 1], [1, 1], 1, 0), "__ref")


def test_unplanned_scratch_falls_through(vnni):
    """An artifact planned without scratch (written before the optimised kernels): REF."""
    rng = np.random.default_rng(4)
    x, w = rand_i8(rng, (1, 5, 7, 7)), rand_w(rng, (6, 5, 3, 3))
    M, n = rng_mults(rng, 6)
    check(vnni, conv_case(x, w, rand_bias(rng, 6, 45), 1, M, n, 0, [1, 1], [1, 1, 1, 1], [1, 1], 1, 1, scratch=False),
          "__ref")


def test_scratch_region_in_use_falls_through(vnni):
    """A plan that keeps a tensor live in the scratch region at this node: the VNNI kernel must
    not take it (dse__scratch_free); REF runs it and the tensor survives."""
    from dsedge.artifact import Artifact, TensorRec
    lib, v, _ = vnni
    rng = np.random.default_rng(13)
    x, w = rand_i8(rng, (1, 4, 6, 6)), rand_w(rng, (6, 4, 3, 3))
    M, n = rng_mults(rng, 6)
    art, feeds, outs, ref = conv_case(x, w, rand_bias(rng, 6, 36), 1, M, n, 2, [1, 1], [1, 1, 1, 1], [1, 1], 1, 1)
    assert run_c(lib, art, feeds, outs, NO_AMX)[1] == [f"dse_i8_conv__{v}"]
    z = rand_i8(rng, (64,))
    t = list(art.tensors) + [TensorRec.arena("z", "int8", z.shape, art.scratch_offset)]
    zi = len(t) - 1
    old = Artifact(tuple(t), art.nodes, art.inputs + (zi,), art.outputs + (zi,), art.arena_size,
                   art.scratch_offset, art.scratch_size)
    got, kernels = run_c(lib, old, feeds + [z], outs + [(np.dtype(np.int8), z.shape)], NO_AMX)
    assert kernels == ["dse_i8_conv__ref"]
    assert got[0].tobytes() == ref.tobytes() and got[1].tobytes() == z.tobytes()


# -- Gemm / MatMul ----------------------------------------------------------------------------------

GEMM = [(1, 1, 1), (5, 37, 7), (4, 9, 130), (3, 4100, 9), (17, 16, 8), (300, 33, 17), (2, 15, 1), (8, 3, 16),
        (257, 5, 3), (6, 64, 48), (7, 2, 23), (1, 384, 1000)]


@pytest.mark.parametrize("shape", GEMM)
@pytest.mark.parametrize("trans_b", [0, 1])
def test_gemm(vnni, shape, trans_b):
    R, K, N = shape
    rng = np.random.default_rng(K + N + trans_b + R + 17)
    x = rand_i8(rng, (R, K))
    w = rand_w(rng, (N, K) if trans_b else (K, N))
    M, n = rng_mults(rng, N)
    b = rand_bias(rng, N, K, big=K > 4096)
    layout = 1 if trans_b else 2
    check(vnni, gemm_case(x, w, b, -128, M, n, 127, trans_b, layout))
    check(vnni, gemm_case(x, w, b, 127, M, n, -128, trans_b, layout, qmin=-20, qmax=90))
    scale = (2.0 ** rng.uniform(-20, 4, N)).astype(np.float32)
    check(vnni, gemm_case(x, w, b, 3, None, None, 0, trans_b, layout, out_scale=scale))
    check(vnni, gemm_case(x, w, b, -77, None, None, 0, trans_b, layout, out_scale=ONES(N)))


def test_every_microkernel_width(vnni):
    """Every column count of a microkernel call (avx512vnni: 1-16 columns, i.e. a tile's last call
    with 1-3 full groups of 4 and a short group; avxvnni: 1-4) with 1 and 2 blocks of 8 channels
    (N 8, 16, 24, 13): rows 1-33 of a Gemm, K 37 (a k-block tail), REF's and intref's bytes."""
    rng = np.random.default_rng(4242)
    for N in (8, 16, 24, 13, 32):
        w = rand_w(rng, (N, 37))
        # multipliers below 1 (the usual case; avx512vnni's 16-lane output stage) and any
        M, n = rng_mults(rng, N, -12, -1) if N % 16 == 0 else rng_mults(rng, N)
        b = rand_bias(rng, N, 37)
        for R in list(range(1, 34)) + [47, 63]:
            x = rand_i8(rng, (R, 37))
            check(vnni, gemm_case(x, w, b, int(rng.integers(-128, 128)), M, n, 5, 1, 1))


def test_conv_fast_output_stage(vnni):
    """Convs whose every multiplier is below 1 (avx512vnni: whole 16 x 16 calls requantised 16 lanes
    at a time and transposed to NCHW rows), with column and channel tails around them."""
    rng = np.random.default_rng(4343)
    for xs, ws, st, pd in (((1, 9, 12, 12), (32, 9, 3, 3), [1, 1], [1, 1, 1, 1]),
                           ((2, 16, 7, 9), (48, 16, 1, 1), [1, 1], [0, 0, 0, 0]),
                           ((1, 5, 17, 16), (40, 5, 3, 3), [2, 1], [1, 0, 1, 2])):
        x, w = rand_i8(rng, xs), rand_w(rng, ws)
        M, n = rng_mults(rng, ws[0], -12, -1)
        b = rand_bias(rng, ws[0], int(np.prod(ws[1:])))
        for zps in ((-128, 127), (3, -5)):
            check(vnni, conv_case(x, w, b, zps[0], M, n, zps[1], st, pd, [1, 1], 1, 1))
            check(vnni, conv_case(x, w, b, zps[0], M, n, zps[1], st, pd, [1, 1], 1, 1, qmin=-20, qmax=30))


MATMUL = [   # x shape, N: attention projections and MLPs of small transformers, and tails
    ((1, 128, 384), 384), ((1, 128, 384), 1536), ((1, 128, 1536), 384), ((2, 50, 768), 768), ((1, 1, 512), 2048),
    ((2, 3, 4100), 3), ((4, 7, 33), 130), ((33,), 130), ((2, 2, 2, 5), 29), ((1, 9, 17), 41),
]


@pytest.mark.parametrize("xshape,N", MATMUL)
def test_matmul(vnni, xshape, N):
    rng = np.random.default_rng(sum(xshape) + N)
    K = xshape[-1]
    x, w = rand_i8(rng, xshape), rand_w(rng, (K, N))
    M, n = rng_mults(rng, N)
    b = rand_bias(rng, N, K)
    check(vnni, gemm_case(x, w, b, 1, M, n, -2, 0, 2, op="MatMul"))
    check(vnni, gemm_case(x, w, np.zeros(N, np.int64), -128, M, n, 127, 0, 2, op="MatMul"))
    scale = (2.0 ** rng.uniform(-20, 0, N)).astype(np.float32)
    check(vnni, gemm_case(x, w, b, 1, None, None, 0, 0, 2, out_scale=scale, act=(float("-inf"), 0.0), op="MatMul"))


def test_threads_same_bytes(vnni):
    """Column tiles and band chunks split over 3 threads: the same bytes as 1 thread."""
    lib = vnni[0]
    rng = np.random.default_rng(11)
    x, w = rand_i8(rng, (2, 19, 23, 25)), rand_w(rng, (37, 19, 3, 3))
    M, n = rng_mults(rng, 37)
    cases = [conv_case(x, w, rand_bias(rng, 37, 171), -3, M, n, 4, [1, 1], [1, 1, 1, 1], [1, 1], 1, 1)]
    # a 7x7 image (49 pixels): avx512vnni gives each thread a column tile (32 + 17) of its own
    x7, w7 = rand_i8(rng, (1, 40, 7, 7)), rand_w(rng, (24, 40, 3, 3))
    M7, n7 = rng_mults(rng, 24, -12, -1)
    cases.append(conv_case(x7, w7, rand_bias(rng, 24, 360), 5, M7, n7, -2, [1, 1], [1, 1, 1, 1], [1, 1], 1, 1))
    xg, wg = rand_i8(rng, (9, 200)), rand_w(rng, (200, 77))
    Mg, ng = rng_mults(rng, 77)
    cases.append(gemm_case(xg, wg, rand_bias(rng, 77, 200), 9, Mg, ng, -1, 0, 2, op="MatMul"))
    for case in cases:
        art, feeds, outs = check(vnni, case)
        for t in (2, 3):
            assert run_threads(lib, art, feeds, outs, t).tobytes() == np.ascontiguousarray(case[3]).tobytes()


ZOO = [("transformer_encoder", dict(seq=8, dim=32, heads=2, layers=1, vocab=50)),   # MatMul, Gemm
       ("mobilenet_v2", dict(input_size=32, num_classes=10, width=0.5))]              # 1x1, 3x3/2 stem, depthwise


@pytest.mark.parametrize("name,kw", ZOO, ids=[z[0] for z in ZOO])
def test_zoo_model_same_bytes(vnni, tmp_path, name, kw):
    """A zoo model quantised and exported as a user would (packed weights, planned scratch): the
    VNNI kernels take its int8 Conv/Gemm/MatMul nodes and the outputs are REF's bytes."""
    import dsedge
    import dsedge.zoo as zoo
    from dsedge.artifact import read
    from dsedge.export import save_dse
    lib, v, _ = vnni
    m = zoo.build(name, **kw)
    src = tmp_path / f"{name}.onnx"
    src.write_bytes(m.SerializeToString())
    feeds = zoo.random_feeds(m, 5, 0)
    calib = [{k: a[i] for k, a in feeds.items()} for i in range(5)]
    save_dse(dsedge.quantize(str(src), calib[:3], progress=False, method="minmax"), tmp_path / "m.dse")
    art = read(tmp_path / "m.dse")
    outs = [(np.dtype(art.tensors[i].dtype), tuple(art.tensors[i].shape)) for i in art.outputs]
    for feed in calib[3:]:
        ins = [np.asarray(feed[art.tensors[i].name], dtype=art.tensors[i].dtype) for i in art.inputs]
        got, kern = run_c(lib, art, ins, outs, NO_AMX)
        want, _ = run_c(lib, art, ins, outs, LOAD_REF)
        assert sum(k.endswith(f"__{v}") for k in kern) >= 2, kern
        for a, b in zip(got, want):
            assert a.tobytes() == b.tobytes()


# -- the real instruction: compiled, encoded, and not chosen without VNNI ---------------------------

def _compilers():
    out = [("gcc", [shutil.which("gcc")])] if shutil.which("gcc") else []
    try:
        import ziglang  # noqa: F401
        out.append(("zig", [sys.executable, "-m", "ziglang", "cc", "-target", "x86_64-linux-musl"]))
    except ImportError:
        pass
    return out


@pytest.mark.parametrize("name,cc", _compilers(), ids=[c[0] for c in _compilers()])
def test_real_build_encodes_vpdpbusd(tmp_path, name, cc):
    """Without DSE_EMULATE_VNNI each file compiles (the manifest's flags, -Werror) to vpdpbusd:
    the VEX form (c4/c5 prefix) for avxvnni, the EVEX form (62) for avx512vnni."""
    objdump = shutil.which("objdump")
    if not objdump:
        pytest.skip("no objdump")
    m = _build.Manifest(CDIR)   # the library's own flags (build.mk), -Werror included
    for group, prefix in (("avxvnni", ("c4", "c5")), ("avx512vnni", ("62",))):
        obj = tmp_path / f"{group}.o"
        flags = [*m.std, *m.opt, *m.warn, *m.werror, *(f"-I{Path(d).resolve()}" for d in m.include_dirs)]
        subprocess.run([*cc, *flags, "-c", str(CDIR / "kernels" / group / "conv_i8.c"), "-o", str(obj)],
                       check=True, capture_output=True, timeout=600)
        dis = subprocess.run([objdump, "-d", str(obj)], check=True, capture_output=True, text=True).stdout
        enc = [re.split(r"\s+", ln.split(":", 1)[1].strip())[0] for ln in dis.splitlines() if "vpdpbusd" in ln]
        assert enc, f"{name}: no vpdpbusd in {group}"
        assert all(e in prefix for e in enc), (name, group, sorted(set(enc)))
        syms = subprocess.run([objdump, "-t", str(obj)], check=True, capture_output=True, text=True).stdout
        for k in ("conv", "gemm", "matmul"):
            assert f"dse_i8_{k}__{group}" in syms
        assert ("dse__check_i8_conv_vnni" in syms) == (group == "avxvnni")   # the checks: once


def test_not_chosen_without_vnni():
    """Without VNNI in cpuid the AVX2 kernels are taken: a normal build on a CPU without VNNI, or on
    one with it the build that hides it from the loader (`make EMULATE_VNNI=0`, src/cpu.c)."""
    lib = _lib(("EMULATE_VNNI=0",) if NATIVE else ())
    rng = np.random.default_rng(5)
    x, w = rand_i8(rng, (1, 5, 9, 9)), rand_w(rng, (6, 5, 3, 3))
    M, n = rng_mults(rng, 6)
    art, feeds, outs, ref = conv_case(x, w, rand_bias(rng, 6, 45), 1, M, n, 0, [2, 2], [1, 1, 1, 1], [1, 1], 1, 1)
    got, kern = run_c(lib, art, feeds, outs)
    assert kern == ["dse_i8_conv__avx2"] and got[0].tobytes() == ref.tobytes()
    xg, wg = rand_i8(rng, (3, 20)), rand_w(rng, (20, 7))
    Mg, ng = rng_mults(rng, 7)
    art, feeds, outs, ref = gemm_case(xg, wg, rand_bias(rng, 7, 20), 0, Mg, ng, 0, 0, 2, op="MatMul")
    got, kern = run_c(lib, art, feeds, outs)
    assert kern == ["dse_i8_matmul__avx2"] and got[0].tobytes() == ref.tobytes()


def test_emulation_is_exact(emulation_lib):
    """The emulated vpdpbusd on every (u8, s8) pair and wrapping sums: checked through a Gemm of
    K = 4 rows covering all 256 x 256 products (a 1-row MatMul per x value against all weights)."""
    lib = _emulating(emulation_lib, 1)
    q = np.arange(-128, 128, dtype=np.int8)
    wv = np.arange(-127, 128, dtype=np.int8)   # weights are symmetric: no -128
    x = np.repeat(q, 4).reshape(256, 4)        # row i: (q_i, q_i, q_i, q_i)
    w = np.zeros((4, 255), np.int8)
    w[0] = wv
    w[1] = wv[::-1]
    w[2] = -wv
    w[3] = 127
    art, feeds, outs, ref = gemm_case(x, w, np.zeros(255, np.int64), -128, None, None, 0, 0, 2,
                                      out_scale=ONES(255), op="MatMul")
    got, kern = run_c(lib, art, feeds, outs)
    assert kern[0].endswith("__avxvnni") and got[0].tobytes() == ref.tobytes()
