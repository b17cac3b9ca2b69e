"""Threads inside one inference (runtimes/c/src/pool.c; issue 10 item 4): a session created with
`threads` = N runs the parallel kernels on N threads, and every output is the same bytes for
any N.

* one-node int8 Conv (plain, grouped, depthwise, strided, 1-D, 3-D), Gemm (transB 0/1, one row
  and many), MatMul (batched), and float Conv/Gemm/MatMul, sized so that the work is really
  split, under threads 1, 2, 3, 4, 7: identical bytes, and the int8 ones equal the numpy
  integer reference;
* zoo models (MobileNetV2 and a small transformer encoder, small sizes), int8, fp32 and dynamic
  (no calibration: the dynamic int8 Conv/Gemm/MatMul kernels);
* a C stress program (runtimes/c/tests/threads_stress.c) over a many-node model: sessions of
  1..16 threads created and freed again and again, many sessions running in parallel threads,
  more threads than CPUs; built plain, with ASan + UBSan (leaks included) and with TSan (clang)
  when the compiler has them;
* the C API's option handling (threads 0, too many, an older caller's smaller struct) and
  `dsedge-run --threads`.
No timing is asserted.
"""
from __future__ import annotations

import ctypes as C
import os
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

import dsedge
from dsedge.artifact import Artifact, NodeRec, TensorRec, op_id
from dsedge.runtime import _build
from tests.runtime._make import san_binary

from .test_kernels_int8 import Net, conv_case, gemm_case, rand_bias, rand_i8, rand_w, rng_mults

ROOT = Path(__file__).resolve().parents[2]
CDIR = ROOT / "runtimes" / "c"
CC = os.environ.get("CC") or shutil.which("cc") or shutil.which("gcc") or shutil.which("clang")
THREADS = (1, 2, 3, 4, 7)


def outputs(data: bytes, feeds, threads: int) -> list[bytes]:
    rt = dsedge.Runtime(data, threads=threads)
    try:
        assert rt.threads == threads
        res = rt.run({s.name: a for s, a in zip(rt.inputs, feeds)})
        return [res[o.name].tobytes() for o in rt.outputs]
    finally:
        rt.close()


def same_for_every_thread_count(data: bytes, feeds) -> list[bytes]:
    want = outputs(data, feeds, 1)
    for t in THREADS[1:]:
        assert outputs(data, feeds, t) == want, f"threads={t} differs from threads=1"
    return want


# -- int8 kernels ------------------------------------------------------------------------------

I8_CONVS = [   # x shape, w shape, strides, pads, dilations, group
    ((1, 16, 20, 21), (24, 16, 3, 3), [1, 1], [1, 1, 1, 1], [1, 1], 1),
    ((2, 8, 17, 19), (12, 4, 3, 2), [2, 1], [1, 0, 2, 1], [1, 2], 2),      # grouped, strided, batch 2
    ((1, 32, 29, 31), (32, 1, 3, 3), [1, 1], [1, 1, 1, 1], [1, 1], 32),    # depthwise
    ((1, 16, 30, 30), (32, 1, 3, 3), [2, 2], [0, 1, 0, 1], [1, 1], 16),    # depthwise x2, stride 2
    ((1, 24, 15, 15), (40, 24, 1, 1), [1, 1], [0, 0, 0, 0], [1, 1], 1),    # 1x1
    ((1, 3, 4, 300), (5, 3, 3, 3), [1, 1], [1, 1, 1, 1], [1, 1], 1),       # few rows, wider than a tile
    ((2, 12, 301), (13, 12, 5), [2], [2, 1], [1], 1),                      # 1-D
    ((1, 6, 5, 9, 11), (7, 6, 3, 3, 3), [1, 1, 2], [1, 1, 1, 1, 0, 1], [1, 1, 1], 1),   # 3-D
]


@pytest.mark.parametrize("gi", range(len(I8_CONVS)))
def test_int8_conv_same_bytes(gi):
    xs, ws, s, p, d, g = I8_CONVS[gi]
    rng = np.random.default_rng(1000 + gi)
    K = int(np.prod(ws[1:]))
    M, n = rng_mults(rng, ws[0], -12, -4)
    (art, feeds, _), ref = conv_case(rand_i8(rng, xs), rand_w(rng, ws), rand_bias(rng, ws[0], K), 3, M, n, -5,
                                     s, p, d, g)
    (got,) = same_for_every_thread_count(art.to_bytes(), feeds)
    assert got == np.ascontiguousarray(ref).tobytes()


I8_GEMMS = [   # rows, K, N, transB, op
    (1, 512, 1000, 1, "Gemm"),      # one row: split over column tiles
    (1, 300, 700, 0, "Gemm"),
    (37, 129, 75, 1, "Gemm"),
    (64, 96, 130, 0, "Gemm"),
    ((2, 45), 64, 96, 0, "MatMul"),  # x [2, 45, 64]
]


@pytest.mark.parametrize("gi", range(len(I8_GEMMS)))
def test_int8_gemm_same_bytes(gi):
    rows, K, N, tb, op = I8_GEMMS[gi]
    rng = np.random.default_rng(2000 + gi)
    xs = (*rows, K) if isinstance(rows, tuple) else (rows, K)
    x = rand_i8(rng, xs)
    w = rand_w(rng, (N, K) if tb else (K, N))
    M, n = rng_mults(rng, N, -12, -4)
    (art, feeds, _), ref = gemm_case(x, w, rand_bias(rng, N, K), -7, M, n, 4, tb, op=op)
    (got,) = same_for_every_thread_count(art.to_bytes(), feeds)
    assert got == np.ascontiguousarray(ref).tobytes()


def test_int8_float_out_same_bytes():
    """The float output stage (float_out) of a split Conv."""
    rng = np.random.default_rng(7)
    xs, ws = (1, 8, 24, 24), (16, 8, 3, 3)
    scale = (2.0 ** rng.uniform(-12, -6, ws[0])).astype(np.float32)
    (art, feeds, _), ref = conv_case(rand_i8(rng, xs), rand_w(rng, ws), rand_bias(rng, ws[0], 72), 0, None, None,
                                     0, [1, 1], [1, 1, 1, 1], [1, 1], 1, out_scale=scale, act=(0.0, 6.0))
    (got,) = same_for_every_thread_count(art.to_bytes(), feeds)
    assert got == np.ascontiguousarray(ref).tobytes()


# -- float kernels ---------------------------------------------------------------------------

def float_node(op, x, consts, out_shape, attrs):
    net = Net()
    xi = net.inp(x)
    ci = [net.const(c) for c in consts]
    yi = net.out(np.float32, out_shape)
    art, feeds, _ = net.build(op, [xi, *ci], [yi], attrs)
    return art, feeds


def _conv_out(n, k, s, p0, p1, d):
    return (n + p0 + p1 - (k - 1) * d - 1) // s + 1


F32_CONVS = [   # x, w, strides, pads, group, fp16 w, act
    ((1, 8, 22, 23), (16, 8, 3, 3), (1, 1), (1, 1, 1, 1), 1, False, None),
    ((1, 24, 19, 19), (24, 1, 3, 3), (2, 2), (1, 1, 1, 1), 24, False, (0.0, 6.0)),   # depthwise
    ((2, 8, 15, 16), (12, 4, 3, 3), (1, 2), (0, 1, 2, 1), 2, True, None),            # grouped, fp16 w
    ((1, 16, 300), (8, 16, 3), (1,), (1, 1), 1, False, None),                       # 1-D
]


@pytest.mark.parametrize("ci", range(len(F32_CONVS)))
def test_float_conv_same_bytes(ci):
    xs, ws, s, p, g, f16, act = F32_CONVS[ci]
    rng = np.random.default_rng(3000 + ci)
    x = rng.standard_normal(xs).astype(np.float32)
    w = (rng.standard_normal(ws) * 0.3).astype(np.float16 if f16 else np.float32)
    b = rng.standard_normal(ws[0]).astype(np.float32)
    nd = len(xs) - 2
    out = tuple(_conv_out(xs[2 + i], ws[2 + i], s[i], p[i], p[nd + i], 1) for i in range(nd))
    attrs = dict(kernel_shape=list(ws[2:]), strides=list(s), pads=list(p), dilations=[1] * nd, group=g)
    if act:
        attrs.update(act_min=act[0], act_max=act[1])
    art, feeds = float_node("Conv", x, [w, b], (xs[0], ws[0], *out), attrs)
    (got,) = same_for_every_thread_count(art.to_bytes(), feeds)
    # sanity against numpy (the C sum order differs from numpy's: a tolerance)
    from dsedge.ops import REGISTRY
    r = REGISTRY.get("Conv").ref(x, w.astype(np.float32), b, **{k: v for k, v in attrs.items() if "act" not in k})
    r = r[0] if isinstance(r, tuple) else r
    if act:
        r = np.clip(r, *act)
    y = np.frombuffer(got, np.float32).reshape(r.shape)
    assert np.allclose(y, r, rtol=1e-4, atol=1e-4)


F32_GEMMS = [   # op, a shape, b shape, attrs, f16
    ("Gemm", (1, 700), (700, 600), dict(transA=0, transB=0), False),    # one row, column tiles
    ("Gemm", (33, 80), (300, 80), dict(transA=0, transB=1), False),
    ("Gemm", (90, 40), (90, 70), dict(transA=1, transB=0), True),
    ("MatMul", (3, 40, 64), (64, 50), {}, False),
]


@pytest.mark.parametrize("gi", range(len(F32_GEMMS)))
def test_float_gemm_same_bytes(gi):
    op, sa, sb, attrs, f16 = F32_GEMMS[gi]
    rng = np.random.default_rng(4000 + gi)
    a = rng.standard_normal(sa).astype(np.float32)
    b = (rng.standard_normal(sb) * 0.1).astype(np.float16 if f16 else np.float32)
    A = a.T if attrs.get("transA") else a
    B = b.astype(np.float32).T if attrs.get("transB") else b.astype(np.float32)
    r = A @ B
    if op == "Gemm":
        attrs = dict(attrs, alpha=1.0, beta=1.0)
    art, feeds = float_node(op, a, [b], r.shape, attrs)
    (got,) = same_for_every_thread_count(art.to_bytes(), feeds)
    assert np.allclose(np.frombuffer(got, np.float32).reshape(r.shape), r, rtol=1e-4, atol=1e-4)


# -- zoo models ------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def zoo_models(tmp_path_factory):
    pytest.importorskip("onnxruntime")
    import onnx
    import dsedge.zoo as zoo
    from dsedge.api import save_result
    tmp = tmp_path_factory.mktemp("zoo_threads")
    out = {}
    for name, kw in (("mobilenet_v2", dict(input_size=64, width=0.5, num_classes=100)),
                     ("transformer_encoder", dict(seq=32, dim=64, heads=2, layers=2, vocab=100))):
        m = zoo.build(name, **kw)
        src = tmp / f"{name}.onnx"
        onnx.save(m, src)
        arrs = zoo.random_feeds(m, n=5, seed=0)
        calib = [{k: v[i] for k, v in arrs.items()} for i in range(4)]
        feed = {k: v[4] for k, v in arrs.items()}
        for prec in ("int8", "fp32", "dynamic"):   # dynamic: no calibration, the dyn_i8 kernels
            p = tmp / f"{name}.{prec}.dse"
            r = dsedge.quantize(str(src), None, progress=False) if prec == "dynamic" else \
                dsedge.quantize(str(src), calib, precision=prec, progress=False)
            save_result(r, str(p))
            out[f"{name}-{prec}"] = (p, feed)
    return out


@pytest.mark.parametrize("key", [f"{m}-{p}" for m in ("mobilenet_v2", "transformer_encoder")
                                 for p in ("int8", "fp32", "dynamic")])
def test_zoo_model_same_bytes(zoo_models, key):
    path, feed = zoo_models[key]
    data = path.read_bytes()
    rt = dsedge.Runtime(data)
    feeds = [feed[s.name].astype(s.dtype) for s in rt.inputs]
    rt.close()
    same_for_every_thread_count(data, feeds)


def test_sessions_and_threads_together(zoo_models):
    """Two sessions of 2 threads each, called from 4 Python threads: every result equals the
    single-threaded one."""
    import threading
    path, feed = zoo_models["mobilenet_v2-int8"]
    want = dsedge.Runtime(path).run(feed)
    rt = dsedge.Runtime(path, threads=2, sessions=2)
    bad = []

    def work():
        for _ in range(3):
            got = rt.run(feed)
            bad.extend(k for k in want if got[k].tobytes() != want[k].tobytes())

    th = [threading.Thread(target=work) for _ in range(4)]
    for t in th:
        t.start()
    for t in th:
        t.join()
    rt.close()
    assert not bad


# -- the C API's options -----------------------------------------------------------------------

def test_session_options():
    from dsedge.runtime import _Error, _SessionOptions, _lib
    L = _lib()
    (art, feeds, _), ref = conv_case(*_small_conv())
    data = art.to_bytes()
    raw = np.frombuffer(data, np.uint8).copy()
    buf = np.zeros(len(data) + 64, np.uint8)
    off = (-buf.ctypes.data) % 64
    buf[off:off + len(data)] = raw
    m, err = C.c_void_p(), _Error()
    assert L.dse_model_load(buf.ctypes.data + off, len(data), C.byref(m), C.byref(err)) == 0

    def make(opt):
        s = C.c_void_p()
        st = L.dse_session_create_ex(m, None, 0, C.byref(opt) if opt is not None else None, C.byref(s), C.byref(err))
        return st, s

    try:
        for opt, want in ((None, 1), (_SessionOptions(C.sizeof(_SessionOptions), 0), 1),
                          (_SessionOptions(C.sizeof(_SessionOptions), 5), 5),
                          (_SessionOptions(C.sizeof(C.c_size_t), 5), 1)):   # an older, smaller struct
            st, s = make(opt)
            assert st == 0, err.message
            assert L.dse_session_threads(s) == want
            x = np.ascontiguousarray(feeds[0])
            assert L.dse_session_set_input(s, 0, x.ctypes.data, x.nbytes, C.byref(err)) == 0
            assert L.dse_session_run(s, C.byref(err)) == 0
            p, nb = C.c_void_p(), C.c_size_t()
            L.dse_session_get_output(s, 0, C.byref(p), C.byref(nb))
            assert C.string_at(p, nb.value) == ref.tobytes()
            L.dse_session_free(s)
        st, s = make(_SessionOptions(C.sizeof(_SessionOptions), 257))
        assert st != 0 and not s.value and b"at most 256" in err.message
    finally:
        L.dse_model_free(m)
    with pytest.raises(dsedge.DseError, match="threads must be"):
        dsedge.Runtime(data, threads=0)
    with pytest.raises(dsedge.DseError, match="sessions must be"):
        dsedge.Runtime(data, sessions=0)


def _small_conv():
    rng = np.random.default_rng(5)
    M, n = rng_mults(rng, 8, -10, -5)
    return (rand_i8(rng, (1, 4, 40, 40)), rand_w(rng, (8, 4, 3, 3)), rand_bias(rng, 8, 36), 1, M, n, 2,
            [1, 1], [1, 1, 1, 1], [1, 1], 1)


# -- the C stress program (sanitizers) ---------------------------------------------------------

def chain_model(n_nodes: int = 12, C_: int = 16, H: int = 24) -> Artifact:
    """x int8 [1,C,H,H] -> n_nodes int8 3x3 Convs (C -> C, pad 1) ping-ponging between two arena
    buffers; the last one writes float32 (float_out) `y`. Many nodes, so hand-offs follow each
    other as in a real model."""
    from dsedge.artifact import TensorAttr
    rng = np.random.default_rng(11)
    nb = C_ * H * H
    ts = [TensorRec.arena("x", "int8", (1, C_, H, H), 0)]

    def const(name, a):
        ts.append(TensorRec.const(name, a))
        return len(ts) - 1

    nodes, prev = [], 0
    for k in range(n_nodes):
        last = k == n_nodes - 1
        w = const(f"w{k}", rng.integers(-127, 128, (C_, C_, 3, 3)).astype(np.int8))
        b = const(f"b{k}", rng.integers(-5000, 5000, C_).astype(np.int32))
        attrs = dict(kernel_shape=[3, 3], strides=[1, 1], pads=[1, 1, 1, 1], dilations=[1, 1], group=1,
                     auto_pad="NOTSET", zp_in=1, zp_out=-1, qmin=-128, qmax=127, float_out=int(last))
        if last:
            attrs.update(out_scale=TensorAttr(const(f"s{k}", np.full(C_, 1e-3, np.float32))),
                         act_min=float("-inf"), act_max=float("inf"))
            ts.append(TensorRec.arena("y", "float32", (1, C_, H, H), 2 * nb))
        else:
            M, n = rng_mults(rng, C_, -12, -9)
            attrs.update(M=TensorAttr(const(f"M{k}", M.astype(np.int32))),
                         shift=TensorAttr(const(f"S{k}", n.astype(np.int32))))
            ts.append(TensorRec.arena("", "int8", (1, C_, H, H), nb * ((k + 1) % 2)))
        nodes.append(NodeRec(op_id("Conv"), (prev, w, b), (len(ts) - 1,), attrs, name=f"conv{k}"))
        prev = len(ts) - 1
    return Artifact(tensors=tuple(ts), nodes=tuple(nodes), inputs=(0,), outputs=(prev,), arena_size=6 * nb)


def _build_stress(out: Path, cc: str, flags: list[str]) -> Path | None:
    """threads_stress.c + the library as one compilation unit (as the bundle builds it: one
    compiler run, much faster under a sanitizer than fifty)."""
    m = _build.Manifest(CDIR)
    tag = flags[0].split("=")[-1].replace(",", "_") if flags else "plain"
    exe = out / f"stress_{tag}"
    if m.group_flags(_build.host_arch()):   # ISA group flags: per-file objects, not one unit
        try:
            return _build.build_binary([cc], exe, csrc=CDIR, opt=False, werror=False, flags=["-O1", "-g", *flags],
                                       extra_sources=[CDIR / "tests" / "threads_stress.c"])
        except RuntimeError:
            return None
    unit = out / f"unit_{tag}.c"
    unit.write_text(_build.UNIT_PRELUDE + "".join(f'#include "{p.as_posix()}"\n'
                                                  for p in [*m.sources(), CDIR / "tests" / "threads_stress.c"]))
    cmd = [cc, *_build.cflags(CDIR, opt=False), "-O1", "-g", *flags, str(unit), *m.libs, "-o", str(exe)]
    r = subprocess.run(cmd, capture_output=True, text=True)
    return exe if r.returncode == 0 else None


@pytest.fixture(scope="module")
def stress_model(tmp_path_factory):
    p = tmp_path_factory.mktemp("stress") / "chain.dse"
    p.write_bytes(chain_model(n_nodes=6).to_bytes())
    return p


@pytest.mark.skipif(CC is None, reason="no C compiler")
@pytest.mark.parametrize("san", ["plain", "address,undefined", "thread"])
def test_stress_under_sanitizers(tmp_path, stress_model, san):
    flags = [] if san == "plain" else [f"-fsanitize={san}", "-fno-omit-frame-pointer"]
    cc = CC
    if san == "thread":
        cc = shutil.which("clang") or CC
    if san == "address,undefined" and _build.Manifest(CDIR).group_flags(_build.host_arch()):
        try:   # the sanitizer tests' shared ASan + UBSan library (objects built once per run)
            exe = san_binary(tmp_path / "stress_asan", [CDIR / "tests" / "threads_stress.c"])
        except RuntimeError:
            exe = None
    else:
        exe = _build_stress(tmp_path, cc, flags)
    if exe is None:
        if san == "plain":
            pytest.fail("the stress program does not build")
        pytest.skip(f"{cc} cannot build with -fsanitize={san}")
    env = dict(os.environ, ASAN_OPTIONS="detect_leaks=1", TSAN_OPTIONS="halt_on_error=1")
    rounds = "1" if san == "thread" else "2"   # TSan runs ~10x slower
    r = subprocess.run([str(exe), str(stress_model), rounds], capture_output=True, text=True, env=env, timeout=900)
    assert r.returncode == 0 and r.stdout.strip().endswith("ok"), r.stdout[-2000:] + r.stderr[-6000:]


# -- dsedge-run --threads ----------------------------------------------------------------------

@pytest.mark.skipif(CC is None, reason="no C compiler")
def test_dsedge_run_threads(tmp_path, stress_model):
    from dsedge.runtime import _build   # the library's sources and flags (runtimes/c/build.mk)
    exe = tmp_path / "dsedge-run"
    _build.build_binary([CC], exe, csrc=CDIR, extra_sources=sorted((CDIR / "tools").glob("*.c")))   # as test_profile's: shared objects
    x = np.random.default_rng(0).integers(-128, 128, (1, 16, 24, 24)).astype(np.int8)
    np.save(tmp_path / "x.npy", x)
    got = []
    for t in (1, 3):
        d = tmp_path / f"o{t}"
        r = subprocess.run([str(exe), str(stress_model), "--input", f"x={tmp_path / 'x.npy'}", "--output-dir", str(d),
                            "--threads", str(t), "--repeat", "2"], capture_output=True, text=True)
        assert r.returncode == 0, r.stderr
        got.append(np.load(d / "y.npy").tobytes())
    assert got[0] == got[1]
    r = subprocess.run([str(exe), str(stress_model), "--threads", "0"], capture_output=True, text=True)
    assert r.returncode == 2 and "--threads needs a count" in r.stderr


def test_cli_run_threads(tmp_path, stress_model):
    """`dsedge run --threads N`: the same outputs as one thread; a count < 1 is a usage error."""
    import sys
    x = np.random.default_rng(1).integers(-128, 128, (1, 16, 24, 24)).astype(np.int8)
    np.savez(tmp_path / "feed.npz", x=x)
    got = []
    for t in (1, 2):
        out = tmp_path / f"out{t}.npz"
        p = subprocess.run([sys.executable, "-m", "dsedge.cli", "run", str(stress_model), "--input",
                            str(tmp_path / "feed.npz"), "-o", str(out), "--threads", str(t)], capture_output=True, text=True)
        assert p.returncode == 0, p.stderr
        got.append(np.load(out)["y"].tobytes())
    assert got[0] == got[1]
    p = subprocess.run([sys.executable, "-m", "dsedge.cli", "run", str(stress_model), "--input", str(tmp_path / "feed.npz"),
                        "-o", str(tmp_path / "o.npz"), "--threads", "0"], capture_output=True, text=True)
    assert p.returncode == 2 and "--threads" in p.stderr
