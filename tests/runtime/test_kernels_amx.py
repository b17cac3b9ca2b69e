"""The AMX int8 Conv, Gemm and MatMul (kernels/amx/conv_i8.c: the avx512vnni Conv with tdpbsud tile
products; Gemm/MatMul with K a multiple of 64 on x and the packed weights as tiles, tdpbssd;
kernels/amx/tile_core.h), byte for byte against REF and intref.

Natively when this CPU has AMX (/proc/cpuinfo `amx_tile` and `amx_int8` with AVX512-VNNI; the
loader also needs the kernel's permission for the tile state, src/cpu.c), else on the emulation
build (`make EMULATE_VNNI=7`: the CPU said to have AVX512-VNNI and AMX, the tile products computed
in C over the same repacked buffers). Either way each case asserts which kernel ran: AMX for convs
of at least 16 output pixels and K >= 48 whose planned scratch holds its tile (k rounded up to 64)
and the repacked weights, Gemm/MatMul of at least 16 rows with K a multiple of 64, avx512vnni for the
rest. Conv cases: K a multiple of 64
and not (one and several 64-k chunks, k-block tails, K > 4096, 48 <= K <= 64 on tiles configured to
fewer k-blocks), convs on the band (kernels/amx/tile_core.h: 3x3, 5x5, 7x7, 1x3, 1x1, 1-D, strides 1 and 2 on
either axis, dilation, asymmetric padding, tiles spanning rows), 1-40 output channels (one and two
A tiles, channel tails), odd column-group counts (the 1-B-tile form), pixel tails, 1x1 (direct
packing), strides, padding, dilation, 1-D, batches, zero points -128/127, multipliers >= 1, clamps,
float_out, 1-3 threads, and a zoo model; Gemm (transB 0/1) and MatMul: row tails 1-15 (read from a
zero-padded copy), channel-band tails, K > 4096, float_out, multipliers >= 1, clamps, threads. The real source compiles with gcc and zig's clang to the
tile instructions.
"""
from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from tests.runtime.test_kernels_int8_opt import (CONV, LOAD_REF, ONES, conv_case, rand_bias, rand_i8, rand_w,
                                                 rng_mults, run_c)
from tests.runtime.test_kernels_vnni import AVX2, CC, CDIR, FLAGS, HAS, _compilers, _emulating, _lib, run_threads

from dsedge.runtime import _build

# (DSE_TEST_AMX_EMULATE=1: the emulation build also on an AMX CPU)
HAS_AMX = HAS["avx512vnni"] and {"amx_tile", "amx_int8"} <= FLAGS and not os.environ.get("DSE_TEST_AMX_EMULATE")
EMUL_MASK = 2 | 4   # AVX512-VNNI (Gemm, MatMul, small images) and AMX

pytestmark = pytest.mark.skipif(CC is None or shutil.which("make") is None or not AVX2,
                                reason="needs an x86-64 CPU with AVX2, a C compiler and make")


@pytest.fixture(scope="module")
def amx():
    """The library whose loader chooses the AMX Conv: the normal build on an AMX CPU, else the
    emulation build."""
    if HAS_AMX:
        return _lib(())
    return _emulating(_lib(("EMULATE_VNNI=7",)), EMUL_MASK)


def check(lib, case, want=("__amx",)):
    art, feeds, outs, ref = case
    expect = np.ascontiguousarray(ref).tobytes()
    got, kern = run_c(lib, art, feeds, outs)
    got_ref, kref = run_c(lib, art, feeds, outs, LOAD_REF)
    assert all(k.endswith("__ref") for k in kref), kref
    assert kern[0].endswith(tuple(want)), (kern, want)
    assert got_ref[0].tobytes() == expect, f"REF: {int((got_ref[0] != ref).sum())} of {ref.size} differ"
    assert got[0].tobytes() == expect, f"{kern}: {int((got[0] != ref).sum())} of {ref.size} differ"
    return art, feeds, outs


CONV_AMX = [   # x shape, w shape, strides, pads, dilations (each at least 16 output pixels)
    ((1, 9, 20, 21), (16, 9, 3, 3), [1, 1], [1, 1, 1, 1], [1, 1]),      # K 81: 2 chunks; P 420: 2 tiles
    ((1, 13, 15, 17), (17, 13, 3, 3), [1, 1], [0, 0, 0, 0], [1, 1]),    # O 17: 2 A tiles, 1 channel in the 2nd; 13 groups
    ((1, 64, 14, 14), (40, 64, 3, 3), [2, 2], [1, 1, 1, 1], [1, 1]),    # K 576 = 9 x 64; O 40 = 32 + 8
    ((1, 128, 8, 8), (64, 128, 1, 1), [1, 1], [0, 0, 0, 0], [1, 1]),    # 1x1 direct, K 128
    ((2, 40, 9, 10), (24, 40, 3, 3), [1, 1], [1, 1, 1, 1], [1, 1]),     # batch 2, K 360
    ((1, 520, 8, 8), (20, 520, 3, 3), [1, 1], [1, 1, 1, 1], [1, 1]),    # K 4680 (> 4096), P 64
    ((1, 96, 23, 17), (33, 96, 1, 1), [1, 1], [0, 0, 0, 0], [1, 1]),    # 1x1, P 391: tile tail, K 96
    ((1, 30, 19, 19), (8, 30, 5, 5), [2, 2], [2, 2, 2, 2], [1, 1]),     # 5x5/2, O 8: one band
    ((1, 24, 12, 12), (31, 24, 3, 3), [1, 1], [2, 2, 2, 2], [2, 2]),    # dilated
    ((2, 48, 70), (36, 48, 5), [1], [2, 2], [1]),                       # 1-D
    ((1, 70, 4, 4), (3, 70, 1, 1), [1, 1], [0, 0, 0, 0], [1, 1]),       # P 16 exactly, 3 channels
    ((1, 48, 16, 16), (33, 48, 1, 1), [1, 1], [0, 0, 0, 0], [1, 1]),    # K 48: one chunk of 12 k-blocks
    ((1, 60, 9, 9), (24, 60, 1, 1), [1, 1], [0, 0, 0, 0], [1, 1]),      # K 60: 15 k-blocks
    # stride 1 on rows of 16 or more: the band (positions of the padded grid, lanes masked at row ends)
    ((1, 64, 30, 40), (40, 64, 3, 3), [1, 1], [1, 1, 1, 1], [1, 1]),    # K 576, 1260 positions: 5 tiles
    ((1, 16, 20, 50), (20, 16, 3, 3), [1, 1], [2, 2, 2, 2], [2, 2]),    # dilated 2, K 144
    ((1, 7, 19, 37), (9, 7, 5, 5), [1, 1], [2, 1, 0, 3], [1, 1]),       # 5x5, asymmetric padding, K 175
    ((2, 12, 6, 130), (18, 12, 3, 3), [1, 1], [0, 1, 2, 1], [1, 1]),    # wide rows, batch 2, rows of 129
    ((1, 32, 17, 16), (33, 32, 1, 3), [1, 1], [0, 1, 0, 1], [1, 1]),    # 1x3: 16 of 18 columns, K 96
    ((1, 8, 64), (12, 8, 7), [1], [3, 3], [1]),                         # 1-D, one row of 70
    # strides 2: the band's phase planes
    ((1, 3, 64, 70), (16, 3, 7, 7), [2, 2], [3, 3, 3, 3], [1, 1]),      # a 7x7/2 stem, K 147
    ((1, 32, 40, 36), (24, 32, 3, 3), [2, 2], [1, 1, 1, 1], [1, 1]),    # 3x3/2, K 288
    ((1, 64, 34, 34), (40, 64, 1, 1), [2, 2], [0, 0, 0, 0], [1, 1]),    # 1x1/2 (ResNet's downsample), K 64
    ((1, 10, 21, 66), (12, 10, 3, 5), [1, 2], [1, 2, 0, 1], [1, 2]),    # strides (1, 2), dilated columns
    ((1, 10, 45, 33), (12, 10, 5, 3), [2, 1], [2, 1, 1, 0], [2, 1]),    # strides (2, 1), dilated rows
    ((2, 16, 99), (8, 16, 4), [2], [1, 2], [1]),                        # 1-D stride 2
    ((1, 64, 9, 9), (40, 64, 3, 3), [1, 1], [1, 1, 1, 1], [1, 1]),      # rows of 11 positions: a group spans 3 rows
]


@pytest.mark.parametrize("gi", range(len(CONV_AMX)))
@pytest.mark.parametrize("zps", [(-128, 127), (127, -128), (5, -7)])
def test_conv(amx, gi, zps):
    xs, ws, st, pd, dl = CONV_AMX[gi]
    rng = np.random.default_rng(9000 + 100 * gi + zps[0])
    K = int(np.prod(ws[1:]))
    x, w = rand_i8(rng, xs), rand_w(rng, ws)
    M, n = rng_mults(rng, ws[0])
    b = rand_bias(rng, ws[0], K, big=K > 4096)
    check(amx, conv_case(x, w, b, zps[0], M, n, zps[1], st, pd, dl, 1, 1))
    check(amx, conv_case(x, w, b, zps[0], None, None, 0, st, pd, dl, 1, 1, out_scale=ONES(ws[0])))
    if gi % 3 == 0:
        scale = (2.0 ** rng.uniform(-20, 0, ws[0])).astype(np.float32)
        check(amx, conv_case(x, w, b, zps[0], None, None, 0, st, pd, dl, 1, 1, out_scale=scale, act=(-0.5, 1e3)))
        M2, n2 = rng_mults(rng, ws[0], 0, 6)   # multipliers >= 1
        check(amx, conv_case(x, w, b, zps[0], M2, n2, zps[1], st, pd, dl, 1, 1, qmin=-20, qmax=30))


@pytest.mark.parametrize("gi", range(len(CONV)))
def test_conv_general_cases(amx, gi):
    """The VNNI suite's conv shapes: AMX where it takes them, avx512vnni where it does not (small
    images, small K whose rounded tile exceeds the plan); the same bytes either way."""
    xs, ws, st, pd, dl = CONV[gi]
    rng = np.random.default_rng(9500 + gi)
    x, w = rand_i8(rng, xs), rand_w(rng, ws)
    M, n = rng_mults(rng, ws[0])
    b = rand_bias(rng, ws[0], int(np.prod(ws[1:])), big=int(np.prod(ws[1:])) > 4096)
    check(amx, conv_case(x, w, b, -3, M, n, 4, st, pd, dl, 1, 1), ("__amx", "__avx512vnni"))


def test_extreme_sums(amx):
    """The largest sums the check accepts: extreme inputs, weights of one sign per channel, bias at
    the headroom (u = x + 128 makes sum u*w far larger than sum (x - zp)*w)."""
    for zp, xv in ((-128, 127), (127, -128), (0, -128)):
        xs, O = (1, 300, 8, 8), 12
        x = np.full(xs, xv, np.int8)
        w = np.full((O, xs[1], 3, 3), 127, np.int8)
        w[::2] = -127
        rng = np.random.default_rng(zp + 1999)
        M, n = rng_mults(rng, O)
        b = rand_bias(rng, O, 9 * xs[1], big=True)
        check(amx, conv_case(x, w, b, zp, M, n, 3, [1, 1], [1, 1, 1, 1], [1, 1], 1, 1))
        check(amx, conv_case(x, w, b, zp, None, None, 0, [1, 1], [1, 1, 1, 1], [1, 1], 1, 1, out_scale=ONES(O) / 64))


def test_what_it_leaves(amx):
    """Small images (< 16 pixels), K < 48 (a stem), a tile whose columns rounded up to 16 (and k to 64)
    exceed the plan: the avx512vnni Conv; Gemm and MatMul with K not a multiple of 64 or fewer than
    16 rows: avx512vnni; an artifact planned without scratch: REF."""
    from tests.runtime.test_kernels_int8_opt import gemm_case
    rng = np.random.default_rng(21)
    x, w = rand_i8(rng, (1, 32, 3, 5)), rand_w(rng, (24, 32, 3, 3))
    M, n = rng_mults(rng, 24)
    check(amx, conv_case(x, w, rand_bias(rng, 24, 288), 1, M, n, 0, [1, 1], [1, 1, 1, 1], [1, 1], 1, 1),
          ("__avx512vnni",))
    x, w = rand_i8(rng, (1, 3, 20, 20)), rand_w(rng, (16, 3, 3, 3))
    M, n = rng_mults(rng, 16)
    check(amx, conv_case(x, w, rand_bias(rng, 16, 27), 1, M, n, 0, [2, 2], [1, 1, 1, 1], [1, 1], 1, 1),
          ("__avx512vnni",))
    x, w = rand_i8(rng, (1, 520, 5, 4)), rand_w(rng, (20, 520, 3, 3))   # 20 pixels as 32 columns: the plan is short
    M, n = rng_mults(rng, 20)
    check(amx, conv_case(x, w, rand_bias(rng, 20, 4680), 1, M, n, 0, [1, 1], [1, 1, 1, 1], [1, 1], 1, 1),
          ("__avx512vnni",))
    for R, K in ((40, 60), (15, 128)):   # K not a multiple of 64, fewer than 16 rows
        xg, wg = rand_i8(rng, (R, K)), rand_w(rng, (K, 30))
        Mg, ng = rng_mults(rng, 30)
        check(amx, gemm_case(xg, wg, rand_bias(rng, 30, K), 2, Mg, ng, 1, 0, 2, op="MatMul"), ("__avx512vnni",))
    x, w = rand_i8(rng, (1, 64, 6, 6)), rand_w(rng, (20, 64, 3, 3))
    M, n = rng_mults(rng, 20)
    check(amx, conv_case(x, w, rand_bias(rng, 20, 576), 1, M, n, 0, [1, 1], [1, 1, 1, 1], [1, 1], 1, 1, scratch=False),
          ("__ref",))


GEMM_AMX = [(16, 64, 8), (17, 64, 1), (31, 128, 9), (33, 192, 16), (100, 64, 17), (128, 384, 130), (64, 1536, 40),
            (300, 256, 7), (47, 4160, 24)]   # rows, K, N: row tails 1-15 (a zero-padded copy), band tails, K > 4096


@pytest.mark.parametrize("shape", GEMM_AMX)
@pytest.mark.parametrize("trans_b", [0, 1])
def test_gemm(amx, shape, trans_b):
    from tests.runtime.test_kernels_int8_opt import gemm_case
    R, K, N = shape
    rng = np.random.default_rng(R * 7 + K + N + trans_b)
    x = rand_i8(rng, (R, K))
    w = rand_w(rng, (N, K) if trans_b else (K, N))
    M, n = rng_mults(rng, N)
    b = rand_bias(rng, N, K, big=K > 4096)
    layout = 1 if trans_b else 2
    check(amx, gemm_case(x, w, b, -128, M, n, 127, trans_b, layout))
    check(amx, gemm_case(x, w, b, 127, M, n, -128, trans_b, layout, qmin=-20, qmax=90))
    scale = (2.0 ** rng.uniform(-20, 4, N)).astype(np.float32)
    check(amx, gemm_case(x, w, b, 3, None, None, 0, trans_b, layout, out_scale=scale))
    M2, n2 = rng_mults(rng, N, 0, 6)   # multipliers >= 1
    check(amx, gemm_case(x, w, b, -5, M2, n2, 2, trans_b, layout))


@pytest.mark.parametrize("xshape,N", [((1, 128, 384), 384), ((2, 50, 768), 100), ((4, 7, 64), 33), ((3, 2, 3, 64), 9)])
def test_matmul(amx, xshape, N):
    from tests.runtime.test_kernels_int8_opt import gemm_case
    rng = np.random.default_rng(sum(xshape) + N + 1)
    K = xshape[-1]
    x, w = rand_i8(rng, xshape), rand_w(rng, (K, N))
    M, n = rng_mults(rng, N)
    check(amx, gemm_case(x, w, rand_bias(rng, N, K), 1, M, n, -2, 0, 2, op="MatMul"))
    scale = (2.0 ** rng.uniform(-20, 0, N)).astype(np.float32)
    check(amx, gemm_case(x, w, rand_bias(rng, N, K), 1, None, None, 0, 0, 2, out_scale=scale, act=(float("-inf"), 0.0),
                         op="MatMul"))


def test_threads_same_bytes(amx):
    """Column tiles and channel chunks over 2 and 3 threads (a 7x7 image: a column tile per thread;
    bands starting at channel 8, 24, ...): the same bytes as 1 thread."""
    rng = np.random.default_rng(12)
    cases = []
    for xs, ws in (((2, 19, 23, 25), (37, 19, 3, 3)), ((1, 64, 7, 7), (72, 64, 3, 3)), ((1, 128, 28, 28), (48, 128, 1, 1)),
                   ((1, 24, 33, 31), (16, 24, 3, 3)), ((1, 16, 9, 40), (40, 16, 3, 3))):   # (the band, 2-3 tiles)
        x, w = rand_i8(rng, xs), rand_w(rng, ws)
        M, n = rng_mults(rng, ws[0])
        cases.append(conv_case(x, w, rand_bias(rng, ws[0], int(np.prod(ws[1:]))), -3, M, n, 4, [1, 1],
                               [ws[2] // 2] * 4, [1, 1], 1, 1))
    from tests.runtime.test_kernels_int8_opt import gemm_case
    xg, wg = rand_i8(rng, (70, 128)), rand_w(rng, (128, 45))   # row blocks x channel blocks over the threads
    Mg, ng = rng_mults(rng, 45)
    cases.append(gemm_case(xg, wg, rand_bias(rng, 45, 128), 9, Mg, ng, -1, 0, 2, op="MatMul"))
    for case in cases:
        art, feeds, outs = check(amx, case)
        for t in (2, 3):
            assert run_threads(amx, art, feeds, outs, t).tobytes() == np.ascontiguousarray(case[3]).tobytes()


def test_zoo_model_same_bytes(amx, tmp_path):
    """ResNet-style and MobileNetV2 zoo models quantised and exported as a user would: the AMX Conv
    takes their group-1 convs and the outputs are REF's bytes."""
    import dsedge
    import dsedge.zoo as zoo
    from dsedge.artifact import read
    from dsedge.export import save_dse
    m = zoo.build("mobilenet_v2", input_size=64, num_classes=10, width=0.5)
    src = tmp_path / "m.onnx"
    src.write_bytes(m.SerializeToString())
    feeds = zoo.random_feeds(m, 5, 0)
    calib = [{k: a[i] for k, a in feeds.items()} for i in range(5)]
    save_dse(dsedge.quantize(str(src), calib[:3], progress=False, method="minmax"), tmp_path / "m.dse")
    art = read(tmp_path / "m.dse")
    outs = [(np.dtype(art.tensors[i].dtype), tuple(art.tensors[i].shape)) for i in art.outputs]
    for feed in calib[3:]:
        ins = [np.asarray(feed[art.tensors[i].name], dtype=art.tensors[i].dtype) for i in art.inputs]
        got, kern = run_c(amx, art, ins, outs)
        want, _ = run_c(amx, art, ins, outs, LOAD_REF)
        assert sum(k.endswith("__amx") for k in kern) >= 5, kern
        for a, b in zip(got, want):
            assert a.tobytes() == b.tobytes()


def test_not_chosen_without_amx():
    """A CPU with AVX512-VNNI and no AMX (the emulation build told so): avx512vnni runs the conv."""
    lib = _emulating(_lib(("EMULATE_VNNI=7",)), 2)
    rng = np.random.default_rng(5)
    x, w = rand_i8(rng, (1, 32, 9, 9)), rand_w(rng, (20, 32, 3, 3))
    M, n = rng_mults(rng, 20)
    check(lib, conv_case(x, w, rand_bias(rng, 20, 288), 1, M, n, 0, [1, 1], [1, 1, 1, 1], [1, 1], 1, 1),
          ("__avx512vnni",))


@pytest.mark.parametrize("name,cc", _compilers(), ids=[c[0] for c in _compilers()])
def test_real_build_encodes_tiles(tmp_path, name, cc):
    """Without DSE_EMULATE_VNNI kernels/amx/conv_i8.c compiles (the manifest's flags, -Werror) to
    tdpbsud, tdpbssd, tileloadd, tilestored, ldtilecfg and tilerelease, with the Conv, Gemm and MatMul."""
    objdump = shutil.which("objdump")
    if not objdump:
        pytest.skip("no objdump")
    m = _build.Manifest(CDIR)
    obj = tmp_path / "amx.o"
    flags = [*m.std, *m.opt, *m.warn, *m.werror, *(f"-I{Path(d).resolve()}" for d in m.include_dirs)]
    subprocess.run([*cc, *flags, "-c", str(CDIR / "kernels" / "amx" / "conv_i8.c"), "-o", str(obj)],
                   check=True, capture_output=True, timeout=600)
    dis = subprocess.run([objdump, "-d", str(obj)], check=True, capture_output=True, text=True).stdout
    for ins in ("tdpbsud", "tileloadd", "tilestored", "ldtilecfg", "tilerelease"):
        assert re.search(rf"\b{ins}\b", dis), f"{name}: no {ins}"
    syms = subprocess.run([objdump, "-t", str(obj)], check=True, capture_output=True, text=True).stdout
    for k in ("conv", "gemm", "matmul"):
        assert f"dse_i8_{k}__amx" in syms and f"dse__check_i8_{k}_amx" in syms
    assert "tdpbssd" in dis   # (Gemm/MatMul: signed x by signed w)
