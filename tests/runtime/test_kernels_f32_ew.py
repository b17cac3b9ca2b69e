"""fp32 elementwise / reduction / comparison / cast C kernels and the runtime's own math
(runtimes/c/src/mathf.c), run through the public C API on tiny .dse files written with
dsedge.artifact (docs/kernels.md form).

Oracles: the numpy references of the op registry (bit-exact for the exact ops: arithmetic,
min/max, comparisons, casts, rounding, clip...), a float64 truth (scipy/numpy in float64) for
the transcendentals (measured max ulp error over a dense float32 sweep, asserted <= 4 ulp; the
measured value is ~0.5), a numpy replay of the documented sequential reduction order
(bit-exact), and onnxruntime (tolerance). The math library is also cross-compiled for arm64
with `zig cc` and run under qemu-aarch64: its outputs over the sweep must be byte-identical
to the native build's."""
from __future__ import annotations

import ctypes as C
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tests.runtime._make import make, make_checked   # one shared build per configuration

from dsedge.runtime import _Error, _declare
from dsedge.artifact import Artifact, NodeRec, TensorRec, op_id
from dsedge.ops import REGISTRY

ROOT = Path(__file__).resolve().parents[2]
CDIR = ROOT / "runtimes" / "c"
CC = os.environ.get("CC") or shutil.which("cc") or shutil.which("gcc") or shutil.which("clang")
pytestmark = pytest.mark.skipif(CC is None or shutil.which("make") is None, reason="no C compiler or make")
F32 = np.float32


Error = _Error   # the bindings' declaration of dse_error


@pytest.fixture(scope="module")
def lib(tmp_path_factory):
    out = make_checked(CC, "libdsedge.so")
    L = C.CDLL(str(out / "libdsedge.so"))
    _declare(L)   # the public C API's signatures, as the bindings declare them
    return L


def _dt(a):
    return "bool" if a.dtype == np.bool_ else a.dtype.name


def run(lib, op, inputs, out_dtype, out_shape, attrs=None, *, load_error=False, domain="", flags=0):
    """One node. `inputs`: arrays (graph inputs, in the arena) or ("const", array) or None (absent)."""
    tensors, feeds, node_in, off = [], [], [], 0
    for k, v in enumerate(inputs):
        if v is None:
            node_in.append(-1)
            continue
        if isinstance(v, tuple):
            tensors.append(TensorRec.const(f"c{k}", v[1]))
        else:
            v = np.ascontiguousarray(v)
            tensors.append(TensorRec.arena(f"x{k}", _dt(v), v.shape, off if v.nbytes else 0))
            feeds.append((len(tensors) - 1, v))
            off += -(-v.nbytes // 64) * 64
        node_in.append(len(tensors) - 1)
    ydt = np.dtype(out_dtype)
    nbytes = int(np.prod(out_shape, dtype=np.int64)) * ydt.itemsize
    tensors.append(TensorRec.arena("y", "bool" if ydt == np.bool_ else ydt.name, out_shape, off if nbytes else 0))
    end = max([t.offset + t.nbytes for t in tensors if t.storage == 1 and t.nbytes] + [1])
    a = Artifact(tensors=tuple(tensors), nodes=(NodeRec(op_id(op, domain), tuple(node_in), (len(tensors) - 1,), attrs or {}),),
                 inputs=tuple(i for i, _ in feeds), outputs=(len(tensors) - 1,), arena_size=-(-end // 64) * 64)
    data = a.to_bytes()
    raw = np.zeros(len(data) + 128, np.uint8)
    start = (-raw.ctypes.data) % 64
    raw[start:start + len(data)] = np.frombuffer(data, np.uint8)
    m, s, e = C.c_void_p(), C.c_void_p(), Error()
    st = lib.dse_model_load_ex(raw.ctypes.data + start, len(data), flags, C.byref(m), C.byref(e))
    if load_error:
        assert st != 0, "the loader accepted a node its kernel should refuse"
        return e.message.decode()
    assert st == 0, e.message.decode()
    try:
        assert lib.dse_session_create(m, None, 0, C.byref(s), C.byref(e)) == 0, e.message.decode()
        for i, (_, v) in enumerate(feeds):
            assert lib.dse_session_set_input(s, i, v.ctypes.data, v.nbytes, C.byref(e)) == 0, e.message.decode()
        assert lib.dse_session_run(s, C.byref(e)) == 0, e.message.decode()
        p, n = C.c_void_p(), C.c_size_t()
        lib.dse_session_get_output(s, 0, C.byref(p), C.byref(n))
        return np.frombuffer(C.string_at(p, n.value), ydt).reshape(out_shape).copy()
    finally:
        lib.dse_session_free(s)
        lib.dse_model_free(m)


def ref(op, *args, **attrs):
    return np.asarray(REGISTRY.get(op).ref(*args, **attrs))


def same(y, r):
    """Bit-identical, except that NaN matches any NaN (C writes the canonical 0x7FC00000)."""
    r = np.asarray(r).astype(y.dtype)
    if y.dtype.kind == "f":
        nan = np.isnan(r)
        assert np.array_equal(np.isnan(y), nan), "NaN positions differ"
        u = np.dtype(f"u{y.dtype.itemsize}")
        assert np.array_equal(y[~nan].view(u), r[~nan].view(u)), \
            f"first differences: {y[~nan][y[~nan] != r[~nan]][:5]} vs {r[~nan][y[~nan] != r[~nan]][:5]}"
        if y.dtype == F32:
            assert np.all(y.view(np.uint32)[np.isnan(y)] == 0x7FC00000), "NaN not canonical"
    else:
        assert np.array_equal(y, r)


# -- the dense float32 sweep and ulp measurement --------------------------------------------

EDGES = np.array([0.0, -0.0, 1e-45, -1e-45, 1.17549435e-38, 5e-39, -5e-39, 1e-30, 1e-8, 0.5, 1.0, -1.0, 2.0,
                  np.pi / 2, np.pi, 88.72283, 88.7229, -87.33654, -103.97, -104.0, 9.0, 10.0, 20.0, 3.9, 4.0,
                  1e4, 1e8, 1.5e12, 3.4028235e38, -3.4028235e38, np.inf, -np.inf, np.nan], F32)


def sweep(step=1031):
    """Every `step`-th float32 bit pattern (~4.2M values: every binade, both signs, subnormals,
    inf, NaN payloads) plus edge cases."""
    bits = np.arange(0, 2**32, step, dtype=np.uint64).astype(np.uint32)
    return np.concatenate([bits.view(F32), EDGES])


def ulp_error(y, t):
    """|y - t| in units of the float32 ulp at the exact value t (float64); 0 where equal
    (incl. both NaN, same infinity); inf where one is NaN and the other not."""
    y64, t = y.astype(np.float64), np.asarray(t, np.float64)
    with np.errstate(all="ignore"):
        _, e = np.frexp(t)
        u = np.ldexp(1.0, np.maximum(e - 24, -149))
        err = np.abs(y64 - t) / u
        fmax = float(np.finfo(F32).max)
        over = (np.abs(t) > fmax * (1 + 2.0**-25)) & (y64 == np.sign(t) * np.inf)   # overflow to inf is right
    err[(y64 == t) | (np.isnan(y64) & np.isnan(t)) | over] = 0
    err[np.isnan(y64) != np.isnan(t)] = np.inf
    return err


def _truths():
    import scipy.special as sp
    s2 = np.sqrt(2.0)
    return {
        "Exp": (np.exp, {}), "Log": (np.log, {}), "Tanh": (np.tanh, {}), "Sigmoid": (sp.expit, {}),
        "Erf": (sp.erf, {}), "Sin": (np.sin, {}), "Cos": (np.cos, {}),
        "Softplus": (lambda v: np.logaddexp(0.0, v), {}),
        "Gelu": (lambda v: 0.5 * v * sp.erfc(-v / s2), {"approximate": "none"}),
        "Gelu_tanh": (lambda v: v * sp.expit(2 * np.sqrt(2 / np.pi) * (v + 0.044715 * v ** 3)), {"approximate": "tanh"}),
        "Elu": (lambda v: np.where(v < 0, np.float64(F32(1.0)) * np.expm1(v), v), {"alpha": 1.0}),
    }


@pytest.mark.parametrize("name", ["Exp", "Log", "Tanh", "Sigmoid", "Erf", "Sin", "Cos", "Softplus", "Gelu",
                                  "Gelu_tanh", "Elu"])
def test_transcendental_ulp(lib, name):
    x = sweep()
    fn, attrs = _truths()[name]
    y = run(lib, name.split("_")[0], [x], F32, x.shape, attrs)
    with np.errstate(all="ignore"):
        t = fn(x.astype(np.float64))
    err = ulp_error(y, t)
    worst = int(np.argmax(err))
    print(f"{name}: max ulp error {err[worst]:.3f} at x={x[worst]!r} over {x.size} inputs")
    assert err[worst] <= 4.0, f"{name}({x[worst]!r}) = {y[worst]!r}, exact {t[worst]!r}: {err[worst]} ulp"
    assert np.all(y.view(np.uint32)[np.isnan(y)] == 0x7FC00000)
    # against the numpy reference of the registry: close (the reference is float32 numpy)
    with np.errstate(all="ignore"):
        r = ref(name.split("_")[0], x, **attrs).astype(F32)
        fin = np.isfinite(r) & np.isfinite(y) & (np.abs(x) < 1e4)
        np.testing.assert_allclose(y[fin], r[fin], rtol=2e-6, atol=2e-6 if name in ("Elu", "Gelu", "Gelu_tanh", "Softplus") else 1e-37)


def test_pow_ulp_and_special_cases(lib):
    rng = np.random.default_rng(1)
    base = np.concatenate([rng.uniform(0, 10, 200000), rng.uniform(-4, 4, 100000), np.ldexp(1.0, rng.integers(-140, 120, 20000))]).astype(F32)
    expo = np.concatenate([rng.uniform(-30, 30, 200000), rng.integers(-9, 10, 100000), rng.uniform(-1, 1, 20000)]).astype(F32)
    y = run(lib, "Pow", [base, expo], F32, base.shape)
    with np.errstate(all="ignore"):
        t = np.power(base.astype(np.float64), expo.astype(np.float64))
    err = ulp_error(y, t)
    print(f"Pow: max ulp error {err.max():.3f}")
    assert err.max() <= 4.0
    # C99 Annex F special cases (zeros, infinities, NaN, 1, negative bases): the class and sign
    # of zero/inf results bit for bit as numpy's powf, finite values within 1 ulp of float64
    sp = np.array([0.0, -0.0, 1.0, -1.0, 2.0, -2.0, 0.5, -0.5, np.inf, -np.inf, np.nan, 3.0, -3.0, 1e-45], F32)
    a, b = np.meshgrid(sp, sp)
    a, b = a.ravel(), b.ravel()
    y = run(lib, "Pow", [a, b], F32, a.shape)
    with np.errstate(all="ignore"):
        r = np.power(a, b)
        assert ulp_error(y, np.power(a.astype(np.float64), b.astype(np.float64))).max() <= 1.0
    special = (r == 0) | np.isinf(r) | np.isnan(r) | (np.abs(r) == 1)
    same(y[special], r[special])


def test_pow_by_a_constant_two_is_dse_powf(lib):
    # x ** 2 with the exponent broadcast (one element: the kernel's x * x path) gives dse_powf's
    # bytes (an exponent tensor of 2s, element by element): NaN, +-0, +-inf, 1, overflow, subnormals
    rng = np.random.default_rng(7)
    x = np.concatenate([rng.standard_normal(5000) * 100, np.ldexp(1.0, rng.integers(-149, 128, 3000)) * rng.choice([-1, 1], 3000),
                        [0.0, -0.0, 1.0, -1.0, np.inf, -np.inf, np.nan, 1.9e19, -1.9e19, 1e-45, 3.4e38]]).astype(F32)
    y1 = run(lib, "Pow", [x, np.array([2.0], F32)], F32, x.shape)
    y2 = run(lib, "Pow", [x, np.full(x.shape, 2.0, F32)], F32, x.shape)
    same(y1, y2)
    with np.errstate(all="ignore"):
        same(y1[~np.isnan(x)], (x * x)[~np.isnan(x)])
    assert np.isnan(y1[np.isnan(x)]).all()
    # another constant exponent still goes through dse_powf
    y3 = run(lib, "Pow", [np.abs(x[:5000]), np.array([3.0], F32)], F32, (5000,))
    same(y3, run(lib, "Pow", [np.abs(x[:5000]), np.full(5000, 3.0, F32)], F32, (5000,)))


def test_exact_binary_broadcast(lib):
    rng = np.random.default_rng(2)
    a = rng.standard_normal((2, 3, 1, 5)).astype(F32)
    b = rng.standard_normal((4, 1)).astype(F32)
    a.flat[:4] = [np.inf, -np.inf, np.nan, -0.0]
    b.flat[:2] = [np.inf, 0.0]
    shape = (2, 3, 4, 5)
    with np.errstate(all="ignore"):
        for op in ["Add", "Sub", "Mul", "Div", "Min", "Max", "Sum", "Mean"]:
            same(run(lib, op, [a, b], F32, shape), ref(op, a, b))
            same(run(lib, op, [("const", b), a], F32, shape), ref(op, b, a))
        c = rng.standard_normal((5,)).astype(F32)
        for op in ["Min", "Max", "Sum", "Mean"]:                 # variadic, 3 inputs
            same(run(lib, op, [a, b, c], F32, shape), ref(op, a, b, c))
        same(run(lib, "Max", [a], F32, a.shape), a)               # one input
        # fused clamp on Add (docs/kernels.md act_min / act_max)
        y = run(lib, "Add", [a, b], F32, shape, {"act_min": 0.0, "act_max": 6.0})
        same(y, np.minimum(np.maximum(a + b, F32(0)), F32(6)))
        # PRelu: slope broadcasts to x
        slope = rng.uniform(0, 0.5, (1, 3, 1, 1)).astype(F32)
        x = rng.standard_normal((2, 3, 4, 5)).astype(F32)
        same(run(lib, "PRelu", [x, ("const", slope)], F32, x.shape), ref("PRelu", x, slope))
        # Mod (fmod=1): exact C fmod, numpy's np.fmod; subnormals, signs, huge quotients
        m1 = np.concatenate([rng.standard_normal(5000) * 10.0 ** rng.integers(-40, 38, 5000), [5.5, -5.5, 0.0, -0.0, np.inf, 3.0, 1e-45]]).astype(F32)
        m2 = np.concatenate([rng.standard_normal(5000) * 10.0 ** rng.integers(-40, 10, 5000), [-2.0, 2.0, 1.0, 1.0, 1.0, np.inf, 1e-45]]).astype(F32)
        same(run(lib, "Mod", [m1, m2], F32, m1.shape, {"fmod": 1}), np.fmod(m1, m2))
    msg = run(lib, "Mod", [m1, m2], F32, m1.shape, {"fmod": 0}, load_error=True)
    assert "fmod" in msg
    assert "broadcast" in run(lib, "Add", [a, rng.standard_normal((3,)).astype(F32)], F32, shape, load_error=True)


@pytest.mark.parametrize("sa,sb", [((2, 3, 41), (2, 3, 41)), ((3, 4, 37), (37,)), ((130,), (1,)), ((1,), (3, 50)),
                                   ((5, 1, 33), (1, 4, 33)), ((2, 5, 300), (5, 1)), ((4, 1), (1, 17))])
def test_binary_rows(lib, sa, sb):
    """The walker's merged rows past the 16-element blocks (same shape, row vector, scalar on
    either side, per-channel), with NaN, infinities and signed zeros, bit for bit; the fused
    clamp of Add on the same rows."""
    rng = np.random.default_rng(sum(sa) + len(sb))
    a, b = rng.standard_normal(sa).astype(F32), rng.standard_normal(sb).astype(F32)
    a.flat[:5] = [np.nan, np.inf, -np.inf, -0.0, 0.0]
    b.flat[-1:] = [-0.0]
    shape = np.broadcast_shapes(sa, sb)
    with np.errstate(all="ignore"):
        for op in ["Add", "Sub", "Mul", "Div", "Min", "Max", "PRelu"][:6 if shape != sa else 7]:
            same(run(lib, op, [a, b], F32, shape), ref(op, a, b))
            if op != "PRelu":
                same(run(lib, op, [("const", b), a], F32, shape), ref(op, b, a))
        same(run(lib, "Add", [a, b], F32, shape, {"act_min": -0.5, "act_max": 0.75}),
             np.minimum(np.maximum(a + b, F32(-0.5)), F32(0.75)))
        for op in ["Equal", "Less", "GreaterOrEqual"]:
            same(run(lib, op, [a, b], np.bool_, shape), ref(op, a, b))


def test_binary_in_place(lib):
    """An output planned at its input's bytes (in-place elementwise, kernel trait SAME): every
    element is read before it is written, on blocked rows and tails."""
    from dsedge.artifact import Artifact, NodeRec, TensorRec, op_id
    rng = np.random.default_rng(12)
    a = rng.standard_normal((3, 45)).astype(F32)
    b = rng.standard_normal((45,)).astype(F32)
    for op in ["Add", "Sub", "Mul", "Div"]:
        tensors = (TensorRec.arena("a", "float32", a.shape, 0), TensorRec.const("b", b),
                   TensorRec.arena("y", "float32", a.shape, 0))
        art = Artifact(tensors=tensors, nodes=(NodeRec(op_id(op), (0, 1), (2,), {}),), inputs=(0,), outputs=(2,),
                       arena_size=-(-a.nbytes // 64) * 64)
        data = art.to_bytes()
        raw = np.zeros(len(data) + 128, np.uint8)
        start = (-raw.ctypes.data) % 64
        raw[start:start + len(data)] = np.frombuffer(data, np.uint8)
        m, s, e = C.c_void_p(), C.c_void_p(), Error()
        assert lib.dse_model_load_ex(raw.ctypes.data + start, len(data), 0, C.byref(m), C.byref(e)) == 0, e.message
        try:
            assert lib.dse_session_create(m, None, 0, C.byref(s), C.byref(e)) == 0
            assert lib.dse_session_set_input(s, 0, a.ctypes.data, a.nbytes, C.byref(e)) == 0
            assert lib.dse_session_run(s, C.byref(e)) == 0
            p, n = C.c_void_p(), C.c_size_t()
            lib.dse_session_get_output(s, 0, C.byref(p), C.byref(n))
            same(np.frombuffer(C.string_at(p, n.value), F32).reshape(a.shape), ref(op, a, b))
        finally:
            lib.dse_session_free(s)
            lib.dse_model_free(m)


def test_elementwise_program(lib):
    """A float dsedge.Elementwise program (kernels/ref/elementwise.c): every step the kernel runs,
    constants on either side, absent Clip bounds, step attributes as constants, values used
    twice, on a tensor that is not a whole number of 64-element blocks; the bytes of the
    numpy reference running the ops one after the other. Malformed programs are refused."""
    from dsedge.ops.fused import FLOAT_STEPS, encode_float_program, eval_program
    rng = np.random.default_rng(21)
    x = np.concatenate([rng.standard_normal(150) * 4, EDGES, [3.0, -3.0, 2.5, -2.5, 0.5]]).astype(F32)
    x = np.concatenate([x, np.zeros(3 * 64 + 7 - x.size % (3 * 64 + 7), F32)])[:3 * 64 + 7]
    c = lambda j: ("c", j)   # noqa: E731
    v = lambda k: ("v", k)   # noqa: E731
    consts = (np.float32(3), np.float32(6), np.float32(0), np.float32(-0.5), np.float32(np.nan), np.float32(-0.0))
    programs = [
        ((("Add", (v(0), c(0)), {}), ("Clip", (v(1), c(2), c(1)), {}), ("Mul", (v(0), v(2)), {}),
          ("Div", (v(3), c(1)), {})), 4),                                                   # hard swish
        ((("Sub", (c(0), v(0)), {}), ("Max", (v(1), c(3)), {}), ("Min", (c(2), v(2)), {}),
          ("Clip", (v(0), None, c(0)), {}), ("Clip", (v(4), c(3), None), {}), ("Mul", (v(3), v(5)), {})), 6),
        ((("Neg", (v(0),), {}), ("Abs", (v(1),), {}), ("Relu", (v(0),), {}), ("Sqrt", (v(2),), {}),
          ("Reciprocal", (v(4),), {}), ("Floor", (v(0),), {}), ("Ceil", (v(0),), {}), ("Round", (v(0),), {}),
          ("Sign", (v(0),), {}), ("HardSwish", (v(0),), {}), ("Softsign", (v(0),), {}),
          ("LeakyRelu", (v(0),), {"alpha": 0.1}), ("HardSigmoid", (v(0),), {"alpha": 0.3, "beta": 0.6}),
          ("Add", (v(5), v(11)), {}), ("Add", (v(12), v(13)), {}), ("Add", (v(14), v(9)), {})), 16),
        ((("Clip", (v(0), c(4), c(1)), {}), ("Clip", (v(0), c(2), c(4)), {}), ("Max", (v(0), c(4)), {}),
          ("Clip", (v(0), c(5), c(2)), {}), ("Clip", (v(0), c(2), c(5)), {}), ("Clip", (v(0), c(1), c(3)), {}),
          ("Min", (v(0), c(5)), {}), ("Max", (c(5), v(0)), {})), 8),      # NaN, signed-zero and crossed bounds
    ]
    for prog, result in programs:
        for k in range(1, result + 1):      # every intermediate value as the result too
            attrs = {"program": prog, "consts": consts, "result": k}
            enc = encode_float_program(attrs)
            assert enc is not None and all(s[0] in FLOAT_STEPS for s in prog)
            with np.errstate(all="ignore"):
                want = eval_program(x, prog, consts, k)
            for flags in (0, 2):     # the chosen variant (AVX2 on x86) and the portable one
                same(run(lib, "Elementwise", [x], F32, x.shape, enc, domain="dsedge", flags=flags), want)
    # the int8 form: the program's result through QuantizeLinear (a fused trailing Q)
    from dsedge.quant import arith
    for prog, result in programs[:3]:
        enc = encode_float_program({"program": prog, "consts": consts, "result": result})
        with np.errstate(all="ignore"):
            f = eval_program(x, prog, consts, result)
        for s_, zp in ((0.05, 0), (2.0 ** -9, -128), (0.7, 127), (1e-3, 5)):
            q = dict(enc, q_scale=float(np.float32(s_)), q_zp=zp)
            with np.errstate(all="ignore"):
                want = arith.quantize(np.nan_to_num(f, nan=0.0, posinf=np.inf, neginf=-np.inf), np.float32(s_), zp)
            want[np.isnan(f)] = zp                           # NaN -> zp (quantize.c; numpy's is platform-specific)
            for flags in (0, 2):
                same(run(lib, "Elementwise", [x], np.int8, x.shape, q, domain="dsedge", flags=flags), want)
    for bad in (dict(enc, q_scale=0.0, q_zp=0), dict(enc, q_scale=0.5, q_zp=200)):
        assert "q_scale" in run(lib, "Elementwise", [x], np.int8, x.shape, bad, domain="dsedge", load_error=True)
    good = encode_float_program({"program": programs[0][0], "consts": consts, "result": 4})
    for bad in (dict(good, result=5), dict(good, program=[999, 1, 0]), dict(good, program=[op_id("Add"), 2, 0, 7]),
                dict(good, program=[op_id("Add"), 2, 0, -9]), dict(good, program=[op_id("Neg"), 1, 1]),
                dict(good, program=[op_id("Add"), 2, 0])):
        msg = run(lib, "Elementwise", [x], F32, x.shape, bad, domain="dsedge", load_error=True)
        assert "program" in msg, msg


def test_elementwise_program_in_place_and_direct(lib):
    """The AVX2 step function (kernels/avx2/elementwise.c) and the block loop's direct write of
    the last step into y: every step kind over 3 whole blocks and a short one, the output planned
    at its input's bytes (in place: through the copy) or apart (written directly), on the chosen
    variant and REF: numpy's bytes in all four."""
    import dataclasses

    from dsedge.ops.fused import encode_float_program, eval_program
    from tests.runtime.test_kernels_f32_nn import make_node, run_c
    rng = np.random.default_rng(8)
    x = np.concatenate([rng.standard_normal(300) * 5, EDGES, [np.nan, np.inf, -np.inf, 3.0, -3.0]]).astype(F32)
    x = np.resize(x, 3 * 128 + 45)
    v = lambda k: ("v", k)   # noqa: E731
    c = lambda j: ("c", j)   # noqa: E731
    consts = (np.float32(3), np.float32(0), np.float32(6), np.float32(-0.5), np.float32(0.25))
    programs = [
        ((("Add", (v(0), c(0)), {}), ("Clip", (v(1), c(1), c(2)), {}), ("Mul", (v(0), v(2)), {}),
          ("Div", (v(3), c(2)), {})), 4),                                       # HardSwish as arithmetic
        ((("Sub", (c(3), v(0)), {}), ("Max", (v(1), v(0)), {}), ("Min", (v(2), c(4)), {}), ("Neg", (v(3),), {}),
          ("Abs", (v(0),), {}), ("Sqrt", (v(5),), {}), ("Reciprocal", (v(6),), {}), ("Relu", (v(0),), {}),
          ("HardSwish", (v(0),), {}), ("LeakyRelu", (v(0),), {"alpha": 0.1}),
          ("HardSigmoid", (v(0),), {"alpha": 0.3, "beta": 0.6}), ("Floor", (v(0),), {}), ("Sign", (v(0),), {}),
          ("Add", (v(4), v(8)), {}), ("Add", (v(14), v(11)), {}), ("Mul", (v(15), v(12)), {})), 16),
    ]
    for prog, result in programs:
        for k in (1, 2, result):
            enc = encode_float_program({"program": prog, "consts": consts, "result": k})
            with np.errstate(all="ignore"):
                want = eval_program(x, prog, consts, k)
            art, feeds = make_node("Relu", [(x, False)], [("float32", x.shape)], enc)
            n = art.nodes[0]
            art = dataclasses.replace(art, nodes=(dataclasses.replace(n, op=op_id("Elementwise", "dsedge")),))
            t = list(art.tensors)
            t[n.outputs[0]] = dataclasses.replace(t[n.outputs[0]], offset=t[n.inputs[0]].offset)
            end = max(r.offset + r.nbytes for r in t if r.storage == t[n.outputs[0]].storage)
            in_place = dataclasses.replace(art, tensors=tuple(t), arena_size=max(64, -(-end // 64) * 64),
                                           scratch_offset=0)
            for a in (art, in_place):
                for flags in (1, 3):     # the chosen variant, REF (| 2)
                    same(run_c(lib, a, feeds, flags)[0], want)


def test_exact_unary(lib):
    rng = np.random.default_rng(3)
    x = np.concatenate([rng.standard_normal(20000) * 4, rng.uniform(-9e6, 9e6, 2000), np.arange(-10, 10.5, 0.5),
                        EDGES, [2.5, -2.5, 0.49999997, 8388607.5, -8388607.5, 3.0, -3.0]]).astype(F32)
    with np.errstate(all="ignore"):
        for op, attrs in [("Relu", {}), ("Neg", {}), ("Abs", {}), ("Reciprocal", {}), ("Floor", {}), ("Ceil", {}),
                          ("Round", {}), ("Sqrt", {}), ("Sign", {}), ("Softsign", {}), ("HardSwish", {}),
                          ("LeakyRelu", {"alpha": 0.1}), ("HardSigmoid", {"alpha": 0.25, "beta": 0.4})]:
            same(run(lib, op, [x], F32, x.shape, attrs), ref(op, x, **attrs))
        for lo, hi in [(-1.0, 2.5), (None, 0.0), (3.0, 1.0), (np.nan, 1.0), (None, None)]:
            ins = [x] + [None if v is None else ("const", np.array(v, F32)) for v in (lo, hi)]
            same(run(lib, "Clip", ins, F32, x.shape),
                 ref("Clip", x, None if lo is None else np.array(lo, F32), None if hi is None else np.array(hi, F32)))
        sel = run(lib, "Selu", [x], F32, x.shape)
        np.testing.assert_allclose(sel[np.isfinite(sel)], ref("Selu", x)[np.isfinite(sel)], rtol=3e-7, atol=3e-7)


def _seq_reduce(x, axes, op):
    """The documented order: reduced elements in row-major order, one float32 accumulator."""
    keep = [d for d in range(x.ndim) if d not in axes]
    xt = np.transpose(x, keep + list(axes)).reshape([x.shape[d] for d in keep] + [-1])
    n = xt.shape[-1]
    if op == "ReduceLogSumExp":
        mx = np.max(xt, axis=-1, initial=-np.inf)
        shift = np.where(np.isfinite(mx), mx, 0).astype(F32)
        return None, shift, xt, n
    init = {"ReduceProd": 1.0, "ReduceMax": -np.inf, "ReduceMin": np.inf}.get(op, 0.0)
    acc = np.full(xt.shape[:-1], init, F32)
    for j in range(n):
        v = xt[..., j]
        acc = {"ReduceProd": lambda: acc * v, "ReduceMax": lambda: np.maximum(acc, v),
               "ReduceMin": lambda: np.minimum(acc, v), "ReduceL1": lambda: acc + np.abs(v),
               "ReduceL2": lambda: acc + v * v, "ReduceSumSquare": lambda: acc + v * v}.get(op, lambda: acc + v)()
    if op == "ReduceMean":
        acc = acc / F32(n) if n else acc
    if op == "ReduceL2":
        acc = np.sqrt(acc)
    return acc, None, None, n


@pytest.mark.parametrize("axes,keep", [((1,), 1), ((0, 2), 0), ((3,), 1), ((1, 2, 3), 0), (None, 1), ((-1, 0), 1)])
def test_reductions(lib, axes, keep):
    rng = np.random.default_rng(4)
    x = rng.standard_normal((3, 4, 5, 6)).astype(F32)
    norm = tuple(range(4)) if axes is None else tuple(sorted(a % 4 for a in axes))
    shape = tuple(1 if d in norm else s for d, s in enumerate(x.shape) if keep or d not in norm)
    for op in ["ReduceSum", "ReduceMean", "ReduceMax", "ReduceMin", "ReduceProd", "ReduceL1", "ReduceL2",
               "ReduceSumSquare", "ReduceLogSumExp"]:
        ins = [x] if axes is None else [x, ("const", np.array(axes, np.int64))]
        y = run(lib, op, ins, F32, shape, {"keepdims": keep})
        r = ref(op, x, None if axes is None else np.array(axes, np.int64), keepdims=keep)
        np.testing.assert_allclose(y, r, rtol=5e-6, atol=1e-6, err_msg=op)    # numpy sums pairwise
        seq, *_ = _seq_reduce(x, norm, op)
        if seq is not None:                                                    # bit-exact documented order
            same(y, seq.reshape(shape))
    # NaN propagation, noop_with_empty_axes, empty axes
    xn = x.copy()
    xn[0, 0, 0, 0] = np.nan
    same(run(lib, "ReduceMax", [xn, ("const", np.array([3], np.int64))], F32, (3, 4, 5, 1)),
         ref("ReduceMax", xn, np.array([3], np.int64)))
    same(run(lib, "ReduceL2", [x, ("const", np.zeros(0, np.int64))], F32, x.shape, {"noop_with_empty_axes": 1}), np.abs(x))
    assert "axes" in run(lib, "ReduceSum", [x, np.array([1], np.int64)], F32, (3, 1, 5, 6), load_error=True)


@pytest.mark.parametrize("shape,axes", [((2, 5, 300), (1,)), ((9, 37), (1,)), ((1, 5, 1, 7), (0, 1)),
                                        ((3, 1, 4, 520), (1, 2)), ((6, 2, 3), (0,))])
def test_reductions_kept_reduced_kept(lib, shape, axes):
    """The [kept][reduced][kept] view (several outputs side by side: chunks of 256 inner
    columns with a tail, four rows at a time with a tail, extent-1 axes) against the
    documented order, bit for bit, with NaN and infinities inside."""
    rng = np.random.default_rng(sum(shape))
    x = rng.standard_normal(shape).astype(F32)
    flat = x.reshape(-1)
    flat[rng.choice(flat.size, 3, replace=False)] = [np.nan, np.inf, -np.inf]
    norm = tuple(sorted(a % len(shape) for a in axes))
    for keep in (0, 1):
        out = tuple(1 if d in norm else s for d, s in enumerate(shape) if keep or d not in norm)
        for op in ["ReduceSum", "ReduceMean", "ReduceMax", "ReduceMin", "ReduceProd", "ReduceL1", "ReduceL2",
                   "ReduceSumSquare"]:
            with np.errstate(all="ignore"):
                y = run(lib, op, [x, ("const", np.array(axes, np.int64))], F32, out, {"keepdims": keep})
                seq, *_ = _seq_reduce(x, norm, op)
            same(y, seq.reshape(out))
    gap = run(lib, "GlobalAveragePool", [x.reshape(1, -1, 1, shape[-1])], F32, (1, x.size // shape[-1], 1, 1))
    with np.errstate(all="ignore"):
        seq, *_ = _seq_reduce(x.reshape(1, -1, 1, shape[-1]), (2, 3), "ReduceMean")
    same(gap, seq.reshape(gap.shape))


def test_argmax_argmin(lib):
    rng = np.random.default_rng(5)
    x = rng.integers(-3, 3, (4, 5, 6)).astype(F32)       # many ties
    x[1, 2, 3] = np.nan
    for op in ["ArgMax", "ArgMin"]:
        for axis in (0, 1, -1):
            for keep in (0, 1):
                for last in (0, 1):
                    attrs = {"axis": axis, "keepdims": keep, "select_last_index": last}
                    r = ref(op, x, **attrs)
                    same(run(lib, op, [x], np.int64, r.shape, attrs), r)
    xi = rng.integers(-128, 128, (7, 9)).astype(np.int8)
    same(run(lib, "ArgMax", [xi], np.int64, (7, 1), {"axis": 1, "keepdims": 1, "select_last_index": 0}),
         ref("ArgMax", xi, axis=1, keepdims=1))


def test_compare_logic_where(lib):
    rng = np.random.default_rng(6)
    a = rng.integers(-2, 3, (3, 1, 4)).astype(F32)
    b = rng.integers(-2, 3, (5, 1)).astype(F32)
    a.flat[0], b.flat[0], a.flat[1] = np.nan, -0.0, 0.0
    for op in ["Equal", "Less", "Greater", "LessOrEqual", "GreaterOrEqual"]:
        same(run(lib, op, [a, b], np.bool_, (3, 5, 4)), ref(op, a, b))
        ai, bi = np.nan_to_num(a).astype(np.int64) * 3_000_000_000, np.nan_to_num(b).astype(np.int64) * 3_000_000_000
        same(run(lib, op, [ai, ("const", bi)], np.bool_, (3, 5, 4)), ref(op, ai, bi))
    p, q = rng.integers(0, 2, (4, 6)).astype(bool), rng.integers(0, 2, (6,)).astype(bool)
    for op in ["And", "Or", "Xor"]:
        same(run(lib, op, [p, q], np.bool_, (4, 6)), ref(op, p, q))
    same(run(lib, "Not", [p], np.bool_, p.shape), ref("Not", p))
    f = np.array([np.nan, np.inf, -np.inf, 0.0, 1.0], F32)
    same(run(lib, "IsNaN", [f], np.bool_, f.shape), np.isnan(f))
    same(run(lib, "IsInf", [f], np.bool_, f.shape, {"detect_negative": 0, "detect_positive": 1}), np.isposinf(f))
    cond = rng.integers(0, 2, (3, 1, 4)).astype(bool)
    x, y = rng.standard_normal((5, 1)).astype(F32), rng.standard_normal((3, 5, 4)).astype(F32)
    same(run(lib, "Where", [cond, x, y], F32, (3, 5, 4)), ref("Where", cond, x, y))
    xi = rng.integers(-9, 9, (5, 1)).astype(np.int64)
    same(run(lib, "Where", [cond, xi, ("const", np.int64(7) * np.ones((4,), np.int64))], np.int64, (3, 5, 4)),
         ref("Where", cond, xi, np.int64(7) * np.ones((4,), np.int64)))


def test_cast(lib):
    rng = np.random.default_rng(7)
    # float32 -> float16: every float32 in the half range and around it, plus a strided sweep
    f = np.concatenate([sweep(65537), np.arange(0x33000000, 0x33000000 + 3, dtype=np.uint32).view(F32),
                        np.array([65504, 65519.99, 65520, 65536, 6.1e-5, 5.96e-8, 2.98e-8, 2.9802322e-08, 3e-8, 1e-9], F32),
                        (rng.standard_normal(50000) * 10.0 ** rng.integers(-9, 6, 50000)).astype(F32)])
    f = f[~np.isnan(f) | (f.view(np.uint32) & 0x7FFFFF >= 0x2000)]   # NaN payloads numpy keeps (see cast.c)
    same(run(lib, "Cast", [f], np.float16, f.shape, {"to": 10}).view(np.uint16), f.astype(np.float16).view(np.uint16))
    h = np.arange(0, 2**16, dtype=np.uint32).astype(np.uint16).view(np.float16)   # every half -> float32, exact
    y = run(lib, "Cast", [h], F32, h.shape, {"to": 1})
    nn = ~np.isnan(h)
    assert np.array_equal(y[nn].view(np.uint32), h[nn].astype(F32).view(np.uint32)) and np.isnan(y[~nn]).all()
    # float -> int (in range: truncation toward zero, as numpy), int <-> int wrap, bool
    v = np.concatenate([rng.uniform(-120, 120, 1000), [-0.9, 0.9, -127.9, 127.9, 0.0, -0.0]]).astype(F32)
    for dt, to in [(np.int8, 3), (np.int32, 6), (np.int64, 7)]:
        same(run(lib, "Cast", [v], dt, v.shape, {"to": to}), v.astype(dt))
    same(run(lib, "Cast", [np.abs(v)], np.uint8, v.shape, {"to": 2}), np.abs(v).astype(np.uint8))
    # out of range / NaN: dsedge saturates (numpy is platform-specific here)
    odd = np.array([np.nan, 1e10, -1e10, 300.0, -300.0, 255.9, -0.5], F32)
    same(run(lib, "Cast", [odd], np.int8, odd.shape, {"to": 3}), np.array([0, 127, -128, 127, -128, 127, 0], np.int8))
    same(run(lib, "Cast", [odd], np.uint8, odd.shape, {"to": 2}), np.array([0, 255, 0, 255, 0, 255, 0], np.uint8))
    same(run(lib, "Cast", [odd], np.int64, odd.shape, {"to": 7}),
         np.array([0, 10**10, -10**10, 300, -300, 255, 0], np.int64))
    i64 = np.concatenate([rng.integers(-2**62, 2**62, 1000), [2**31, -2**31 - 1, 255, 256, -129, 16777217]]).astype(np.int64)
    for dt, to in [(np.int8, 3), (np.uint8, 2), (np.int32, 6), (F32, 1), (np.float16, 10), (np.bool_, 9)]:
        with np.errstate(all="ignore"):
            r = i64[-6:].astype(dt) if dt == np.float16 else i64.astype(dt)
        src = i64[-6:] if dt == np.float16 else i64
        same(run(lib, "Cast", [src], dt, src.shape, {"to": to}), r)
    same(run(lib, "Cast", [np.array([np.nan, 0.0, -0.0, 2.0], F32)], np.bool_, (4,), {"to": 9}), np.array([1, 0, 0, 1], bool))
    same(run(lib, "Cast", [np.array([True, False])], F32, (2,), {"to": 1}), np.array([1.0, 0.0], F32))
    assert run(lib, "Cast", [v], np.int8, v.shape, {"to": 1}, load_error=True)
    # the vectorised conversions (blocks of 16 and a tail): to float32 from bool, uint8, int8,
    # int32 (rounded: beyond 2^24), int32 <-> int64 (wrap)
    b = rng.integers(0, 2, 37).astype(bool)
    same(run(lib, "Cast", [b], F32, b.shape, {"to": 1}), b.astype(F32))
    for src in (rng.integers(0, 256, 53).astype(np.uint8), rng.integers(-128, 128, 53).astype(np.int8),
                np.concatenate([rng.integers(-2**31, 2**31, 40), [2**31 - 1, -2**31, 16777217, -16777219]]).astype(np.int32)):
        same(run(lib, "Cast", [src], F32, src.shape, {"to": 1}), src.astype(F32))
    i32 = np.concatenate([rng.integers(-2**31, 2**31, 33), [-1, 2**31 - 1, -2**31]]).astype(np.int32)
    same(run(lib, "Cast", [i32], np.int64, i32.shape, {"to": 7}), i32.astype(np.int64))
    same(run(lib, "Cast", [i64[:45]], np.int32, (45,), {"to": 6}), i64[:45].astype(np.int32))


def test_against_onnxruntime(lib):
    ort = pytest.importorskip("onnxruntime")
    from onnx import TensorProto, helper
    rng = np.random.default_rng(8)
    x = (rng.standard_normal((2, 3, 8)) * 3).astype(F32)
    z = rng.standard_normal((8,)).astype(F32)
    cases = [("Sigmoid", [x], {}), ("Tanh", [x], {}), ("Exp", [x], {}), ("Log", [np.abs(x) + 1e-3], {}),
             ("Erf", [x], {}), ("Gelu", [x], {"approximate": "tanh"}), ("Gelu", [x], {}), ("Softplus", [x], {}),
             ("Elu", [x], {"alpha": 0.7}), ("Sin", [x * 100], {}), ("Cos", [x], {}), ("HardSwish", [x], {}),
             ("Pow", [np.abs(x), z], {}), ("Div", [x, z], {}), ("Round", [x], {}), ("Mod", [x, z], {"fmod": 1}),
             ("ReduceLogSumExp", [x, np.array([1], np.int64)], {"keepdims": 0})]
    for op, ins, attrs in cases:
        names = [f"i{k}" for k in range(len(ins))]
        opset = 20 if op == "Gelu" else 18
        g = helper.make_graph([helper.make_node(op, names, ["y"], **attrs)], "g",
                              [helper.make_tensor_value_info(nm, TensorProto.FLOAT if v.dtype == F32 else TensorProto.INT64, v.shape)
                               for nm, v in zip(names, ins)], [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)])
        model = helper.make_model(g, opset_imports=[helper.make_opsetid("", opset)])
        sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
        want = sess.run(None, dict(zip(names, ins)))[0]
        c_ins = [v if v.dtype == F32 else ("const", v) for v in ins]
        got = run(lib, op, c_ins, F32, want.shape, attrs)
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6, err_msg=op)


# -- arm64: the math library under qemu gives the same bytes -------------------------------

SWEEP_C = r"""
/* sweep.c: reads float32 inputs, writes f(x) for each runtime math function, in order. */
#include <stdio.h>
#include <stdlib.h>
#include "mathf.h"
int main(int argc, char **argv) {
    if (argc != 3) return 2;
    FILE *f = fopen(argv[1], "rb");
    if (!f) return 3;
    fseek(f, 0, SEEK_END);
    long n = ftell(f) / 4;
    fseek(f, 0, SEEK_SET);
    float *x = malloc((size_t)n * 4 + 4), *y = malloc((size_t)n * 4 * 17 + 4);
    if (!x || !y || fread(x, 4, (size_t)n, f) != (size_t)n) return 4;
    fclose(f);
    float *o = y;
    for (long i = 0; i < n; i++) *o++ = dse_expf(x[i]);
    for (long i = 0; i < n; i++) *o++ = dse_expm1f(x[i]);
    for (long i = 0; i < n; i++) *o++ = dse_logf(x[i]);
    for (long i = 0; i < n; i++) *o++ = dse_tanhf(x[i]);
    for (long i = 0; i < n; i++) *o++ = dse_sigmoidf(x[i]);
    for (long i = 0; i < n; i++) *o++ = dse_erff(x[i]);
    for (long i = 0; i < n; i++) *o++ = dse_erfcf(x[i]);
    for (long i = 0; i < n; i++) *o++ = dse_sinf(x[i]);
    for (long i = 0; i < n; i++) *o++ = dse_cosf(x[i]);
    for (long i = 0; i < n; i++) *o++ = dse_geluf(x[i]);
    for (long i = 0; i < n; i++) *o++ = dse_gelu_tanhf(x[i]);
    for (long i = 0; i < n; i++) *o++ = dse_softplusf(x[i]);
    for (long i = 0; i < n; i++) *o++ = dse_rintf(x[i]);
    for (long i = 0; i < n; i++) *o++ = dse_floorf(x[i]);
    for (long i = 0; i < n; i++) *o++ = dse_ceilf(x[i]);
    for (long i = 0; i < n; i++) *o++ = dse_powf(x[i], x[(i * 7919 + 13) % n]);
    for (long i = 0; i < n; i++) *o++ = dse_fmodf(x[i], x[(i * 7919 + 13) % n]);
    f = fopen(argv[2], "wb");
    if (!f || fwrite(y, 4, (size_t)(o - y), f) != (size_t)(o - y)) return 5;
    fclose(f);
    return 0;
}
"""

def _flags():   # the library's flags (runtimes/c/build.mk), for a program of mathf.c alone
    from dsedge.runtime import _build
    return _build.cflags(CDIR, werror=True)


def test_math_bytes_identical_on_arm64(tmp_path):
    qemu = shutil.which("qemu-aarch64")
    try:
        import ziglang  # noqa: F401
    except ImportError:
        ziglang = None
    if qemu is None or ziglang is None:
        pytest.skip("needs qemu-aarch64 (apt-get install qemu-user) and the ziglang package")
    src = tmp_path / "sweep.c"
    src.write_text(SWEEP_C)
    srcs = [str(src), str(CDIR / "src" / "mathf.c"), f"-I{CDIR / 'src'}"]
    subprocess.run([CC, *_flags(), *srcs, "-o", str(tmp_path / "native")], check=True)
    from dsedge.runtime import _build   # linked as a bundle is (DSE_LINK_STRIP: zig builds its libc once)
    subprocess.run([sys.executable, "-m", "ziglang", "cc", "-target", "aarch64-linux-musl", *_flags(), *srcs,
                    *_build.manifest(CDIR).link_strip, "-o", str(tmp_path / "arm64")], check=True, capture_output=True)
    x = sweep(4099)
    x.tofile(tmp_path / "in.bin")
    subprocess.run([str(tmp_path / "native"), str(tmp_path / "in.bin"), str(tmp_path / "out_x86")], check=True)
    subprocess.run([qemu, str(tmp_path / "arm64"), str(tmp_path / "in.bin"), str(tmp_path / "out_arm")], check=True,
                   timeout=120)
    a = np.fromfile(tmp_path / "out_x86", np.uint32)
    b = np.fromfile(tmp_path / "out_arm", np.uint32)
    assert a.size == b.size == 17 * x.size
    diff = np.flatnonzero(a != b)
    assert diff.size == 0, f"{diff.size} outputs differ; first: function {diff[0] // x.size}, x={x[diff[0] % x.size]!r}"
