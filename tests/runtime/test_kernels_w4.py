"""The AVX2 int4-weight kernels (kernels/avx2/conv_i8_w4.c: the VNNI source compiled with DSE_VNNI_W4 on
per-channel int4 weights in the N8K4 layouts 6/7, each block expanded to int8 by a nibble mask and a
vpshufb table, vpmaddubsw pair sums added exactly in int16 over 8 k-blocks; 1x1 convs with small K on the
int8 kernel's pixels-in-lanes form with the weights expanded per band), natively on any AVX2 CPU:
every case asserts that `..._w4__avx2` ran and gave the W4A8 REF kernel's and intref's bytes. The sizes
reach every tail: odd C and K, K not a multiple of 4, 8 or 32 (k-blocks not a multiple of the 8-block
int16 chunk), output channels not a multiple of 8 or 16, padding, strides, dilation, 1x1 (K from 5 to
1280) and 3x3, 1-D and 3-D, unit-W "1-D" convs, one pixel per image, more than one 256-pixel tile, Gemm
transB 0/1 with 1 to 300 rows (the in-kernel expansion for tiles of at most 4 columns, the expanded-band
buffer above), MatMul with batch axes, zero points -128/127, float_out with clamps, multipliers >= 1,
codes -7 and 7 against x = 127 and -128 everywhere (the largest int16 chunk sums), 1-3 threads; layout 3/4
per-channel weights and artifacts planned without scratch fall through to REF; a zoo model quantised
with int4 weights runs its group-1 Conv and Gemm nodes on the AVX2 kernels (depthwise on REF, layout 3)
with REF's bytes, and so does `dsedge quantize --weights int4` of the digits model."""
from __future__ import annotations

import ctypes as C
import os

import numpy as np
import pytest

from dsedge.export.scratch import packed_gemm_plan, w4_dw_plan
from dsedge.runtime import _declare
from dsedge.quant import arith, intref
from tests.runtime.test_kernels_int8_opt import LOAD_REF, ONES, Net, float_ref, rand_bias, rand_i8, rng_mults, run_c, \
    weighted_attrs
from tests.runtime.test_kernels_vnni import AVX2, CC, _lib, run_threads

pytestmark = pytest.mark.skipif(CC is None or not AVX2, reason="needs an x86-64 CPU with AVX2 and a C compiler")


@pytest.fixture(scope="module")
def w4lib():
    prebuilt = os.environ.get("DSE_TEST_LIBDSEDGE")   # e.g. a sanitizer build (run with LD_PRELOAD=libasan)
    if prebuilt:
        L = C.CDLL(prebuilt)
        _declare(L)
        L.dse_model_node_kernel.argtypes, L.dse_model_node_kernel.restype = [C.c_void_p, C.c_size_t], C.c_char_p
        return L
    return _lib(())


def rand_q(rng, shape):
    q = rng.integers(-7, 8, shape).astype(np.int8)
    q.flat[0], q.flat[-1] = 7, -7
    return q


def _attrs(net, zp_in, zp_out, M, n, qmin=-128, qmax=127, out_scale=None, act=None):
    a = weighted_attrs(net, zp_in, zp_out, M, n, qmin, qmax, out_scale, act)
    a["w4_group"] = 0
    return a


def conv_case(x, q, bias, zp_in, M, n, zp_out, st, pd, dl, qmin=-128, qmax=127, out_scale=None, act=None, layout=6,
              scratch=True):
    ref = intref.conv_int8(x, zp_in, q, bias, M, n, zp_out, st, pd, dl, 1, qmin, qmax, acc_only=out_scale is not None)
    if out_scale is not None:
        ref = float_ref(ref, out_scale, 1, act)
    net = Net()
    xi, wi, bi = net.inp(x), net.const(q, dtype="int4", layout=layout), net.const(bias.astype(np.int32))
    yi = net.out(ref.dtype, ref.shape)
    attrs = dict(kernel_shape=list(q.shape[2:]), strides=st, pads=pd, dilations=dl, group=1,
                 **_attrs(net, zp_in, zp_out, M, n, qmin, qmax, out_scale, act))
    plan = packed_gemm_plan(int(np.prod(q.shape[1:])), int(np.prod(ref.shape[2:]))) if scratch and layout == 6 else 0
    return net.build("Conv", [xi, wi, bi], [yi], attrs, plan), net.feeds, net.outs, ref


def gemm_case(x, q, bias, zp_in, M, n, zp_out, trans_b, op="Gemm", out_scale=None, act=None, qmin=-128, qmax=127):
    x2 = x.reshape(-1, x.shape[-1])
    ref = intref.gemm_int8(x2, zp_in, q, bias, M, n, zp_out, trans_b, qmin, qmax, acc_only=out_scale is not None)
    if out_scale is not None:
        ref = float_ref(ref, out_scale, -1, act)
    ref = ref.reshape(x.shape[:-1] + (ref.shape[-1],))
    net = Net()
    xi = net.inp(x)
    wi, bi = net.const(q, dtype="int4", layout=6 if trans_b else 7), net.const(bias.astype(np.int32))
    yi = net.out(ref.dtype, ref.shape)
    attrs = _attrs(net, zp_in, zp_out, M, n, qmin, qmax, out_scale, act)
    if op == "Gemm":
        attrs.update(transA=0, transB=trans_b, alpha=1.0, beta=1.0)
    return net.build(op, [xi, wi, bi], [yi], attrs, packed_gemm_plan(x.shape[-1], x2.shape[0])), net.feeds, net.outs, ref


def check(lib, case, want="_w4__avx2"):
    """The kernel named `want` ran and it and REF both give intref's bytes."""
    art, feeds, outs, ref = case
    expect = np.ascontiguousarray(ref).tobytes()
    got, kern = run_c(lib, art, feeds, outs)
    got_ref, kref = run_c(lib, art, feeds, outs, LOAD_REF)
    assert all(k.endswith("__ref") for k in kref), kref
    assert kern[0].endswith(want), (kern, want)
    assert got_ref[0].tobytes() == expect, f"REF: {int((got_ref[0] != ref).sum())} of {ref.size} differ"
    assert got[0].tobytes() == expect, f"{kern}: {int((got[0] != ref).sum())} of {ref.size} differ"
    return art, feeds, outs


CONV = [   # x shape, w shape, strides, pads, dilations
    ((1, 3, 7, 9), (5, 3, 3, 3), [2, 1], [1, 0, 2, 1], [1, 2]),          # K = 27, O = 5
    ((2, 5, 8, 8), (7, 5, 1, 1), [1, 1], [0, 0, 0, 0], [1, 1]),           # 1x1 direct, K = 5, batch 2
    ((1, 17, 9, 11), (17, 17, 1, 1), [1, 1], [0, 0, 0, 0], [1, 1]),       # odd K, odd P
    ((1, 9, 20, 21), (16, 9, 3, 3), [1, 1], [1, 1, 1, 1], [1, 1]),        # 3x3 stride 1, P = 420: two tiles
    ((1, 13, 23, 17), (9, 13, 1, 1), [1, 1], [0, 0, 0, 0], [1, 1]),       # 1x1, P = 391 (tile tail 135)
    ((1, 6, 12, 12), (3, 6, 3, 3), [1, 1], [2, 2, 2, 2], [2, 2]),         # dilated, padded
    ((1, 8, 9, 9), (12, 8, 1, 1), [2, 2], [0, 0, 0, 0], [1, 1]),          # 1x1 strided
    ((1, 2, 5, 40), (3, 2, 1, 4), [1, 3], [0, 5, 0, 0], [1, 1]),          # pad begin only, wide rows
    ((1, 300, 3, 3), (20, 300, 3, 3), [1, 1], [1, 1, 1, 1], [1, 1]),      # K = 2700: 675 k-blocks (84 chunks + 3)
    ((2, 3, 31), (4, 3, 5), [3], [2, 1], [2]),                            # 1-D
    ((1, 2, 4, 5, 6), (3, 2, 2, 3, 2), [1, 2, 1], [1, 0, 1, 0, 1, 1], [1, 1, 2]),   # 3-D
    ((1, 40, 14, 14), (33, 40, 1, 1), [1, 1], [0, 0, 0, 0], [1, 1]),      # O = 33: bands of 16, 16, 1
    ((1, 6, 300, 1), (5, 6, 5, 1), [2, 1], [2, 0, 1, 0], [2, 1]),         # (H, 1) "1-D" conv, unit W shifted out
    ((2, 3, 1, 1), (9, 3, 1, 1), [1, 1], [0, 0, 0, 0], [1, 1]),           # one pixel per image (no buffer)
    ((1, 64, 3, 2), (24, 64, 3, 3), [1, 1], [1, 1, 1, 1], [1, 1]),        # P = 6: buffered, a column tail of 2
    ((1, 160, 9, 5), (19, 160, 1, 1), [1, 1], [0, 0, 0, 0], [1, 1]),      # 1x1, K = 160, P = 45: the GEMM core
    ((1, 255, 20, 13), (12, 255, 1, 1), [1, 1], [0, 0, 0, 0], [1, 1]),    # 1x1, K = 255, P = 260: pixels in lanes
]


@pytest.mark.parametrize("gi", range(len(CONV)))
@pytest.mark.parametrize("zps", [(-128, 127), (5, -7)])
def test_conv(w4lib, gi, zps):
    xs, ws, st, pd, dl = CONV[gi]
    rng = np.random.default_rng(11000 + 100 * gi + zps[0])
    K = int(np.prod(ws[1:]))
    x, q = rand_i8(rng, xs), rand_q(rng, ws)
    M, n = rng_mults(rng, ws[0])
    b = rand_bias(rng, ws[0], K)
    check(w4lib, conv_case(x, q, b, zps[0], M, n, zps[1], st, pd, dl))
    check(w4lib, conv_case(x, q, b, zps[0], None, None, 0, st, pd, dl, out_scale=ONES(ws[0])))
    if gi % 4 == 0:
        scale = (2.0 ** rng.uniform(-20, 0, ws[0])).astype(np.float32)
        check(w4lib, conv_case(x, q, b, zps[0], None, None, 0, st, pd, dl, out_scale=scale, act=(-0.5, 1e3)))
        M2, n2 = rng_mults(rng, ws[0], 0, 6)   # multipliers >= 1
        check(w4lib, conv_case(x, q, b, 127, M2, n2, -128, st, pd, dl, qmin=-20, qmax=30))


def test_conv_extreme_codes(w4lib):
    """Codes 7 and -7 everywhere (one sign per channel) against u = x ^ 0x80 = 255 and 0: the int16
    chunk sums reach +-8 * 2 * 255 * 7 = 28560; the bias at the accumulator's headroom."""
    for xv, zp in ((127, -128), (-128, 127), (127, 0)):
        for xs, P_ws in (((1, 300, 6, 6), (16, 300, 3, 3)), ((1, 1280, 7, 7), (24, 1280, 1, 1)), ((1, 90, 1, 2), (8, 90, 1, 1))):
            O = P_ws[0]
            x = np.full(xs, xv, np.int8)
            q = np.full(P_ws, 7, np.int8)
            q[1::2] = -7
            rng = np.random.default_rng(xv + 200 + O)
            M, n = rng_mults(rng, O)
            K = int(np.prod(P_ws[1:]))
            b = rng.integers(-1, 2, O) * ((1 << 31) - 1 - K * 255 * 7)   # |bias| + K * 255 * 7 = 2^31 - 1
            pads = [1, 1, 1, 1] if P_ws[2] == 3 else [0, 0, 0, 0]
            check(w4lib, conv_case(x, q, b, zp, M, n, 3, [1, 1], pads, [1, 1]))
            check(w4lib, conv_case(x, q, b, zp, None, None, 0, [1, 1], pads, [1, 1], out_scale=ONES(O) / 64))


GEMM = [(1, 1, 1), (5, 37, 7), (4, 9, 130), (3, 4100, 9), (17, 16, 8), (300, 33, 17), (2, 15, 1), (8, 3, 16),
        (257, 5, 3), (6, 64, 48), (7, 2, 23), (1, 384, 100), (12, 1280, 40),
        (16, 8200, 9)]   # 2050 k-blocks: the expanded band's int16 weight sums in two chunks


@pytest.mark.parametrize("shape", GEMM)
@pytest.mark.parametrize("trans_b", [0, 1])
def test_gemm(w4lib, shape, trans_b):
    R, K, N = shape
    rng = np.random.default_rng(K + N + trans_b + R + 41)
    x = rand_i8(rng, (R, K))
    q = rand_q(rng, (N, K) if trans_b else (K, N))
    M, n = rng_mults(rng, N)
    b = rand_bias(rng, N, K)
    check(w4lib, gemm_case(x, q, b, -128, M, n, 127, trans_b))
    check(w4lib, gemm_case(x, q, b, 127, M, n, -128, trans_b, qmin=-20, qmax=90))
    scale = (2.0 ** rng.uniform(-20, 4, N)).astype(np.float32)
    check(w4lib, gemm_case(x, q, b, 3, None, None, 0, trans_b, out_scale=scale))


@pytest.mark.parametrize("xshape,N", [((2, 3, 100), 17), ((4, 7, 33), 9), ((33,), 5), ((2, 2, 2, 5), 3),
                                      ((3, 100, 64), 48), ((1, 9, 17), 8)])
def test_matmul(w4lib, xshape, N):
    rng = np.random.default_rng(sum(xshape) + N + 5)
    K = xshape[-1]
    x, q = rand_i8(rng, xshape), rand_q(rng, (K, N))
    M, n = rng_mults(rng, N)
    check(w4lib, gemm_case(x, q, rand_bias(rng, N, K), 1, M, n, -2, 0, op="MatMul"))
    check(w4lib, gemm_case(x, q, rand_bias(rng, N, K), -128, None, None, 0, 0, op="MatMul", out_scale=ONES(N)))


def dw_case(x, q, mul, group, bias, zp_in, M, n, zp_out, st, pd, dl, out_scale=None, scratch=True):
    """A depthwise int4 Conv (layout 3; group multipliers `mul` of `group` taps when group > 0)."""
    C = x.shape[1]
    w8 = arith.w4_effective(q, 0, mul, group)
    ref = intref.conv_int8(x, zp_in, w8, bias, M, n, zp_out, st, pd, dl, C, acc_only=out_scale is not None)
    if out_scale is not None:
        ref = float_ref(ref, out_scale, 1, None)
    net = Net()
    xi, wi, bi = net.inp(x), net.const(q, dtype="int4", layout=3), net.const(bias.astype(np.int32))
    yi = net.out(ref.dtype, ref.shape)
    attrs = dict(kernel_shape=list(q.shape[2:]), strides=st, pads=pd, dilations=dl, group=C,
                 **_attrs(net, zp_in, zp_out, M, n, out_scale=out_scale))
    attrs["w4_group"] = group
    if group:
        attrs["w4_mul"] = net.tattr(mul.reshape(-1), "int8")
    K, P = int(np.prod(q.shape[1:])), int(np.prod(ref.shape[2:]))
    return net.build("Conv", [xi, wi, bi], [yi], attrs, w4_dw_plan(C, K, P) if scratch else 0), net.feeds, net.outs, ref


DW = [   # x shape, kernel, strides, pads, dilations, w4_group
    ((1, 24, 28, 28), (3, 3), [1, 1], [1, 1, 1, 1], [1, 1], 0),    # 3x3 rows of 8+: pairs of taps
    ((2, 17, 13, 27), (3, 3), [2, 2], [1, 1, 1, 1], [1, 1], 0),    # stride 2, odd C, batch 2
    ((1, 9, 7, 7), (3, 3), [1, 1], [1, 1, 1, 1], [1, 1], 0),       # small planes: 8-channel blocks
    ((1, 20, 19, 23), (5, 5), [1, 1], [2, 2, 2, 2], [1, 1], 0),    # 5x5: the row ring
    ((1, 16, 21, 20), (7, 7), [2, 1], [3, 3, 3, 3], [1, 1], 32),   # K = 49: two multiplier groups
    ((1, 11, 18, 18), (3, 3), [1, 1], [2, 2, 2, 2], [2, 2], 32),   # dilated, multipliers
    ((2, 6, 40), (5,), [2], [2, 2], [1], 0),                       # 1-D
]


@pytest.mark.parametrize("di", range(len(DW)))
def test_depthwise(w4lib, di):
    """Depthwise int4 (layout 3, per channel or with multipliers): the weights expanded to int8 m * q and
    the int8 AVX2 depthwise kernel (`dse_i8_dwconv_w4__avx2`), REF's bytes."""
    xs, ks, st, pd, dl, group = DW[di]
    rng = np.random.default_rng(500 + di)
    C = xs[1]
    K = int(np.prod(ks))
    x, q = rand_i8(rng, xs), rand_q(rng, (C, 1) + ks)
    mul = rng.integers(1, 19, (C, -(-K // group))).astype(np.int8) if group else None
    if mul is not None:
        mul.flat[0] = 18
    M, n = rng_mults(rng, C)
    b = rand_bias(rng, C, K)
    for zp_in, zp_out in ((-128, 127), (6, -3)):
        check(w4lib, dw_case(x, q, mul, group, b, zp_in, M, n, zp_out, st, pd, dl), "_dwconv_w4__avx2")
    check(w4lib, dw_case(x, q, mul, group, b, 2, None, None, 0, st, pd, dl, out_scale=ONES(C)), "_dwconv_w4__avx2")
    if di == 0:   # planned without the kernel's scratch (an artifact exported before it): REF
        check(w4lib, dw_case(x, q, mul, group, b, 2, M, n, 0, st, pd, dl, scratch=False), "_conv_w4__ref")


def test_fall_through_to_ref(w4lib):
    """Per-channel int4 weights in layout 3 (the row layout), and layout 6 in an artifact planned without
    scratch: the W4A8 REF kernel, REF's bytes."""
    rng = np.random.default_rng(6)
    x, q = rand_i8(rng, (1, 12, 9, 9)), rand_q(rng, (10, 12, 3, 3))
    M, n = rng_mults(rng, 10)
    b = rand_bias(rng, 10, 108)
    check(w4lib, conv_case(x, q, b, 2, M, n, 0, [1, 1], [1, 1, 1, 1], [1, 1], layout=3), "_w4__ref")
    check(w4lib, conv_case(x, q, b, 2, M, n, 0, [1, 1], [1, 1, 1, 1], [1, 1], scratch=False), "_w4__ref")


def test_threads_same_bytes(w4lib):
    rng = np.random.default_rng(13)
    x, q = rand_i8(rng, (2, 19, 23, 25)), rand_q(rng, (37, 19, 3, 3))
    M, n = rng_mults(rng, 37)
    case = conv_case(x, q, rand_bias(rng, 37, 171), -3, M, n, 4, [2, 1], [1, 1, 1, 1], [1, 1])
    art, feeds, outs = check(w4lib, case)
    for t in (2, 3):
        assert run_threads(w4lib, art, feeds, outs, t).tobytes() == np.ascontiguousarray(case[3]).tobytes()
    xg = rand_i8(rng, (300, 70))
    qg = rand_q(rng, (70, 45))
    Mg, ng = rng_mults(rng, 45)
    case = gemm_case(xg, qg, rand_bias(rng, 45, 70), 9, Mg, ng, -1, 0)
    art, feeds, outs = check(w4lib, case)
    assert run_threads(w4lib, art, feeds, outs, 3).tobytes() == np.ascontiguousarray(case[3]).tobytes()


def test_zoo_model_int4_weights(w4lib, tmp_path):
    """mobilenet_v2 quantised with per-channel int4 weights: its group-1 Conv and Gemm weights are in
    layout 6 and run on the AVX2 W4 kernels, its depthwise weights in layout 3 on the AVX2 W4 depthwise
    kernel; REF's bytes."""
    import dsedge
    import dsedge.zoo as zoo
    from dsedge.artifact import read
    from dsedge.export import save_dse
    m = zoo.build("mobilenet_v2", input_size=32, num_classes=10, width=0.5)
    src = tmp_path / "m.onnx"
    src.write_bytes(m.SerializeToString())
    feeds = zoo.random_feeds(m, 5, 0)
    calib = [{k: a[i] for k, a in feeds.items()} for i in range(5)]
    save_dse(dsedge.quantize(str(src), calib[:3], progress=False, method="minmax", weight_bits=4), tmp_path / "m.dse")
    art = read(tmp_path / "m.dse")
    layouts = {t.layout for t in art.tensors if t.dtype == "int4"}
    assert layouts == {3, 6}, layouts
    outs = [(np.dtype(art.tensors[i].dtype), tuple(art.tensors[i].shape)) for i in art.outputs]
    for feed in calib[3:]:
        ins = [np.asarray(feed[art.tensors[i].name], dtype=art.tensors[i].dtype) for i in art.inputs]
        got, kern = run_c(w4lib, art, ins, outs)
        want, _ = run_c(w4lib, art, ins, outs, LOAD_REF)
        n_w4, n_dw = sum(k.endswith("_w4__avx2") for k in kern), sum(k == "dse_i8_dwconv_w4__avx2" for k in kern)
        assert n_w4 >= 25 and n_dw >= 10 and not any(k.endswith("_w4__ref") for k in kern), kern
        for a, b in zip(got, want):
            assert a.tobytes() == b.tobytes()


def test_cli_int4_digits(tmp_path):
    """`dsedge quantize --weights int4` (per channel): the digits model's two Conv and its Gemm run on the
    AVX2 W4 kernels with the interpreter's and REF's bytes."""
    from click.testing import CliRunner

    from dsedge import zoo
    from dsedge.cli import main
    from dsedge.export.dse import load_dse_graph
    from dsedge.interp import execute
    from dsedge.runtime import Runtime
    d = zoo.digits_dir()
    out = tmp_path / "d4.dse"
    r = CliRunner().invoke(main, ["quantize", str(d / "model.onnx"), "--calib", str(d / "calib.npz"), "--weights",
                                  "int4", "-o", str(out), "--no-progress"])
    assert r.exit_code == 0, r.output
    rt, rt_ref = Runtime(str(out)), Runtime(str(out), kernels="ref")
    assert sum(k.endswith("_w4__avx2") for k in rt.kernels()) == 3, rt.kernels()
    g = load_dse_graph(out)
    ev = zoo.digits_eval()
    for i in range(0, 60, 3):
        x = ev["image"][i]
        y = np.asarray(rt.run({"image": x})[rt.outputs[0].name])
        assert y.tobytes() == np.asarray(rt_ref.run({"image": x})[rt.outputs[0].name]).tobytes()
        assert y.tobytes() == execute(g, {g.inputs[0]: x})[0].tobytes()
