"""The AVX2 7-bit-weight int8 kernels (kernels/avx2/conv_i8_w7.c: the VNNI source with vpdpbusd as
vpmaddubsw + vpmaddwd + vpaddd, exact because |u0*w0 + u1*w1| <= 255 * 64 * 2 < 32768), natively on
any AVX2 CPU: every Conv/Gemm/MatMul case of the VNNI tests with weights in [-64, 63] runs on
`_w7__avx2` and gives REF's and intref's bytes, including the extreme pair sums (u = 255 against
w = -64 and 63 everywhere); one weight of -65 or 64 sends the node to the int16-pair AVX2 kernel;
1 and 3 threads give the same bytes; a zoo model quantised with `weight_bits=7` runs its Conv and
MatMul nodes on them with REF's bytes."""
from __future__ import annotations

import numpy as np
import pytest

from tests.runtime.test_kernels_int8_opt import LOAD_REF, ONES, conv_case, gemm_case, rand_bias, rand_i8, rng_mults, run_c
from tests.runtime.test_kernels_vnni import AVX2, CC, CONV_VNNI, GEMM, MATMUL, NATIVE, _lib, check, run_threads

pytestmark = pytest.mark.skipif(CC is None or not AVX2, reason="needs an x86-64 CPU with AVX2 and a C compiler")


@pytest.fixture(scope="module")
def w7():
    """(library, variant, native), as test_kernels_vnni's fixture; c7() asks for `..._w7__avx2`. On a
    CPU with VNNI the VNNI kernels (listed first) take these nodes: there the emulation build with
    mask 0 (`make EMULATE_VNNI=0`: VNNI hidden from the loader, src/cpu.c) runs the AVX2 kernels."""
    return _lib(("EMULATE_VNNI=0",) if NATIVE else ()), "w7", True


def c7(w7, case, want="_w7__avx2"):
    return check(w7, case, want)


def rand_w7(rng, shape):
    return rng.integers(-64, 64, shape).astype(np.int8)


def _left_to_avx2(c):
    """3x3 stride 1 (the AVX2 Winograd) and 1x1 stride-1 unpadded convs with K <= 128, or <= 256 with
    256 pixels (AVX2's pixels-in-lanes form) stay on AVX2 (test_left_to_avx2)."""
    xs, ws, st, pd, dl = c
    if ws[2:] == (3, 3) and st == [1, 1] and dl == [1, 1]:
        return True
    K, P = int(np.prod(ws[1:])), int(np.prod(xs[2:]))
    direct = all(k == 1 for k in ws[2:]) and all(v == 1 for v in st) and not any(pd)
    return direct and (K <= 128 or (P >= 256 and K <= 256))


CONV_W7 = [c for c in CONV_VNNI if not _left_to_avx2(c)] + [
    ((1, 300, 6, 7), (40, 300, 1, 1), [1, 1], [0, 0, 0, 0], [1, 1]),    # 1x1, K = 300: the W7 kernel
    ((2, 160, 9, 5), (19, 160, 1, 1), [1, 1], [0, 0, 0, 0], [1, 1]),    # K = 160 with 45 pixels
]


@pytest.mark.parametrize("gi", range(len(CONV_W7)))
@pytest.mark.parametrize("zps", [(-128, 127), (5, -7)])
def test_conv(w7, gi, zps):
    xs, ws, st, pd, dl = CONV_W7[gi]
    rng = np.random.default_rng(9000 + 100 * gi + zps[0])
    K = int(np.prod(ws[1:]))
    x, w = rand_i8(rng, xs), rand_w7(rng, ws)
    M, n = rng_mults(rng, ws[0])
    b = rand_bias(rng, ws[0], K, big=K > 4096)
    c7(w7, conv_case(x, w, b, zps[0], M, n, zps[1], st, pd, dl, 1, 1))
    c7(w7, conv_case(x, w, b, zps[0], None, None, 0, st, pd, dl, 1, 1, out_scale=ONES(ws[0])))


def test_conv_extreme_pairs(w7):
    """u = x ^ 0x80 = 255 against weights -64 and 63 in every pair: the largest int16 pair sums
    vpmaddubsw forms (-32640, 32130); and x = -128 (u = 0) against the same."""
    for xv, zp in ((127, -128), (-128, 127), (127, 0)):
        xs, O = (1, 64, 5, 5), 16
        x = np.full(xs, xv, np.int8)
        w = np.full((O, xs[1], 3, 3), -64, np.int8)
        w[1::2] = 63
        rng = np.random.default_rng(xv + 200)
        M, n = rng_mults(rng, O)
        b = rand_bias(rng, O, 9 * xs[1], big=True)
        c7(w7, conv_case(x, w, b, zp, M, n, 3, [1, 1], [1, 1, 1, 1], [1, 1], 1, 1))


@pytest.mark.parametrize("bad", [-65, 64, 127, -127])
def test_one_weight_out_of_range_falls_through(w7, bad):
    rng = np.random.default_rng(5)
    x, w = rand_i8(rng, (1, 12, 9, 9)), rand_w7(rng, (10, 12, 3, 3))
    w[7, 11, 2, 2] = bad
    M, n = rng_mults(rng, 10)
    c7(w7, conv_case(x, w, rand_bias(rng, 10, 108), 2, M, n, 0, [1, 1], [1, 1, 1, 1], [1, 1], 1, 1), "__avx2")


@pytest.mark.parametrize("shape", GEMM)
@pytest.mark.parametrize("trans_b", [0, 1])
def test_gemm(w7, shape, trans_b):
    R, K, N = shape
    rng = np.random.default_rng(K + N + trans_b + R + 23)
    x = rand_i8(rng, (R, K))
    w = rand_w7(rng, (N, K) if trans_b else (K, N))
    M, n = rng_mults(rng, N)
    b = rand_bias(rng, N, K, big=K > 4096)
    layout = 1 if trans_b else 2
    c7(w7, gemm_case(x, w, b, -128, M, n, 127, trans_b, layout))
    scale = (2.0 ** rng.uniform(-20, 4, N)).astype(np.float32)
    c7(w7, gemm_case(x, w, b, 3, None, None, 0, trans_b, layout, out_scale=scale))


@pytest.mark.parametrize("xshape,N", MATMUL[:6])
def test_matmul(w7, xshape, N):
    rng = np.random.default_rng(sum(xshape) + N + 1)
    K = xshape[-1]
    x, w = rand_i8(rng, xshape), rand_w7(rng, (K, N))
    M, n = rng_mults(rng, N)
    c7(w7, gemm_case(x, w, rand_bias(rng, N, K), 1, M, n, -2, 0, 2, op="MatMul"))


def test_threads_same_bytes(w7):
    lib = w7[0]
    rng = np.random.default_rng(12)
    x, w = rand_i8(rng, (2, 19, 23, 25)), rand_w7(rng, (37, 19, 3, 3))
    M, n = rng_mults(rng, 37)
    case = conv_case(x, w, rand_bias(rng, 37, 171), -3, M, n, 4, [2, 1], [1, 1, 1, 1], [1, 1], 1, 1)
    art, feeds, outs = c7(w7, case)
    for t in (2, 3):
        assert run_threads(lib, art, feeds, outs, t).tobytes() == np.ascontiguousarray(case[3]).tobytes()


def test_zoo_model_int7_weights(w7, tmp_path):
    """mobilenet_v2 quantised with 7-bit weights: its group-1 Conv and Gemm nodes take the W7
    kernels (depthwise stays on the AVX2 depthwise kernel) and give REF's bytes."""
    import dsedge
    import dsedge.zoo as zoo
    from dsedge.artifact import read
    from dsedge.export import save_dse
    lib = w7[0]
    m = zoo.build("mobilenet_v2", input_size=32, num_classes=10, width=0.5)
    src = tmp_path / "m.onnx"
    src.write_bytes(m.SerializeToString())
    feeds = zoo.random_feeds(m, 5, 0)
    calib = [{k: a[i] for k, a in feeds.items()} for i in range(5)]
    save_dse(dsedge.quantize(str(src), calib[:3], progress=False, method="minmax", weight_bits=7), tmp_path / "m.dse")
    art = read(tmp_path / "m.dse")
    outs = [(np.dtype(art.tensors[i].dtype), tuple(art.tensors[i].shape)) for i in art.outputs]
    for feed in calib[3:]:
        ins = [np.asarray(feed[art.tensors[i].name], dtype=art.tensors[i].dtype) for i in art.inputs]
        got, kern = run_c(lib, art, ins, outs)
        want, _ = run_c(lib, art, ins, outs, LOAD_REF)
        assert sum(k.endswith("_w7__avx2") for k in kern) >= 10, kern
        for a, b in zip(got, want):
            assert a.tobytes() == b.tobytes()


def test_left_to_avx2(w7):
    """A 3x3 stride-1 conv that the AVX2 variant runs as Winograd (2.25x fewer multiplies) is left
    to it, the same conv at stride 2 takes the W7 kernel; a 1x1 with K = 64 stays on AVX2's
    pixels-in-lanes form, with K = 264 it takes the W7 kernel."""
    rng = np.random.default_rng(31)
    x, w = rand_i8(rng, (1, 16, 20, 20)), rand_w7(rng, (32, 16, 3, 3))
    M, n = rng_mults(rng, 32)
    b = rand_bias(rng, 32, 144)
    c7(w7, conv_case(x, w, b, 1, M, n, 0, [1, 1], [1, 1, 1, 1], [1, 1], 1, 1), "__avx2")
    c7(w7, conv_case(x, w, b, 1, M, n, 0, [2, 2], [1, 1, 1, 1], [1, 1], 1, 1))
    for K, want in ((64, "__avx2"), (264, "_w7__avx2")):
        x1, w1 = rand_i8(rng, (1, K, 16, 16)), rand_w7(rng, (24, K, 1, 1))
        M1, n1 = rng_mults(rng, 24)
        c7(w7, conv_case(x1, w1, rand_bias(rng, 24, K), -5, M1, n1, 3, [1, 1], [0, 0, 0, 0], [1, 1], 1, 1), want)
    assert not any(_left_to_avx2(c) for c in CONV_W7)


def test_cli_int7_digits(w7, tmp_path):
    """`dsedge quantize --weights int7`: every Conv/Gemm weight code in [-63, 63], the plan says
    so, the C runtime runs them on the W7 kernels with the interpreter's and REF's bytes, and the
    answers stay the float model's; `--weight-bits NODE=6` is a usage error."""
    from click.testing import CliRunner

    from dsedge import zoo
    from dsedge.artifact import read
    from dsedge.cli import main
    from dsedge.interp import execute
    from dsedge.runtime import Runtime
    d = zoo.digits_dir()
    out = tmp_path / "d7.dse"
    r = CliRunner().invoke(main, ["quantize", str(d / "model.onnx"), "--calib", str(d / "calib.npz"), "--weights",
                                  "int7", "-o", str(out)])
    assert r.exit_code == 0, r.output
    art = read(str(out))
    wq = [t for t in art.tensors if t.dtype == "int8" and t.data is not None and t.layout in (1, 2)]
    assert len(wq) == 3 and all(np.abs(np.frombuffer(t.data, np.int8)).max() <= 63 for t in wq)
    rt, rt_ref = Runtime(str(out)), Runtime(str(out), kernels="ref")
    # the installed library: the W7 kernels, or on a CPU with VNNI the VNNI ones (listed before them;
    # on an AMX CPU the AMX Conv before those)
    want = (f"__{NATIVE}", "__amx") if NATIVE else ("_w7__avx2",)
    assert sum(k.endswith(want) for k in rt.kernels() if k.startswith(("dse_i8_conv", "dse_i8_gemm"))) == 3, rt.kernels()
    from dsedge.export.dse import load_dse_graph
    g = load_dse_graph(out)
    ev = zoo.digits_eval()
    import onnxruntime as ort
    sess = ort.InferenceSession(str(d / "model.onnx"), providers=["CPUExecutionProvider"])
    agree = 0
    for i in range(100):
        x = ev["image"][i]
        y = np.asarray(rt.run({"image": x})[rt.outputs[0].name])
        assert y.tobytes() == np.asarray(rt_ref.run({"image": x})[rt.outputs[0].name]).tobytes()
        assert y.tobytes() == execute(g, {g.inputs[0]: x})[0].tobytes()
        agree += int(np.argmax(y) == np.argmax(sess.run(None, {"image": x})[0]))
    assert agree >= 97, agree
    bad = CliRunner().invoke(main, ["quantize", str(d / "model.onnx"), "--calib", str(d / "calib.npz"),
                                    "--weight-bits", "conv1=6", "-o", str(tmp_path / "x.dse")])
    assert bad.exit_code == 2 and "NODE=7" in bad.output, bad.output
