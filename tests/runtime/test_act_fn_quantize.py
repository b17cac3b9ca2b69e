"""dsedge.ActFnQuantize (op 1002; kernels/ref/act_quantize.c, docs/kernels.md "dsedge.ActFnQuantize";
the exporter's `_fuse_act_fn_quantize`): a float SiLU (or HardSwish, or GELU) then a per-tensor int8
QuantizeLinear as one node gives exactly the bytes of the separate float32 nodes (Sigmoid, Mul(x, s)
or Mul(s, x), QuantizeLinear; or HardSwish, QuantizeLinear) on every kernel that may take it: AVX2
(or on an AVX-512 CPU its 16-lane form) and REF natively (1, 2 and 3 threads), NEON and REF under qemu-aarch64. The oracle is the unfused
chain run by the same library (each ISA's Sigmoid kernel decides the sigmoid; the QuantizeLinear
kernels are bit-exact with numpy's rule), and numpy's reference within one step of the int8 grid
(its sigmoid is not the runtime's). Sizes hit every tail (1, 7, 31, 33, 255, 257, 1000 elements and
odd 4-D shapes), scales saturate the output both ways, zero points -128 and 127, inputs hold NaN,
infinities, huge values and values whose quotient by the scale falls next to a half-integer. Whole
models: yolo_detector-like exports give the same output bytes fused and unfused (tests/quant)."""
from __future__ import annotations

import numpy as np
import pytest

from dsedge.artifact import Artifact, NodeRec, TensorRec, op_id
from dsedge.ops import REGISTRY

from .test_conv_act_fn import SILU_X, _load_status
from .test_kernels_f32_avx2 import AVX2, REF_KERNELS, lib, run  # noqa: F401
from .test_kernels_vnni import HAS

AVX512 = HAS["avx512vnni"]   # the 16-lane kernel (kernels/avx512vnni/act_quantize.c), listed before AVX2's

HSWISH, SILU, GELU = 1, 2, 3
ACT_Q = REGISTRY.get("ActFnQuantize", "dsedge").id


def _arena(tensors, shape, dtype, off, name):
    t = TensorRec.arena(name, dtype, shape, off)
    return tensors + (t,), off + -(-max(t.nbytes, 1) // 64) * 64


def pair(shape, fn, scale, zp, swap=False):
    """(unfused artifact, fused artifact): x -> [Sigmoid, Mul | HardSwish] -> QuantizeLinear -> y, and
    x -> ActFnQuantize -> y."""
    ts, off = _arena((), shape, "float32", 0, "x")
    if fn == GELU:   # x * (1 + erf(x / sqrt 2)) * 0.5 as PyTorch exports it (swap: operands the other way)
        ts += tuple(TensorRec.const(k, np.asarray(v, np.float32)) for k, v in (("sqrt2", np.sqrt(2.0)), ("one", 1.0),
                                                                            ("half", 0.5)))
        o = (lambda a, b: (b, a)) if swap else (lambda a, b: (a, b))
        nodes, prev = [], None
        for name, op, ins in (("d", "Div", lambda p: (0, 1)), ("e", "Erf", lambda p: (p,)),
                              ("a", "Add", lambda p: o(p, 2)), ("m", "Mul", lambda p: o(0, p)),
                              ("z", "Mul", lambda p: o(p, 3))):
            ts, off = _arena(ts, shape, "float32", off, name)
            nodes.append(NodeRec(op_id(op), ins(prev), (len(ts) - 1,), {}, name=f"{op.lower()}_{name}"))
            prev = len(ts) - 1
    elif fn == SILU:
        ts, off = _arena(ts, shape, "float32", off, "s")
        ts, off = _arena(ts, shape, "float32", off, "z")
        nodes = [NodeRec(op_id("Sigmoid"), (0,), (1,), {}, name="sig"),
                 NodeRec(op_id("Mul"), (1, 0) if swap else (0, 1), (2,), {}, name="mul")]
    else:
        ts, off = _arena(ts, shape, "float32", off, "z")
        nodes = [NodeRec(op_id("HardSwish"), (0,), (1,), {}, name="hs")]
    z = len(ts) - 1
    ts += (TensorRec.const("sc", np.asarray(scale, np.float32)), TensorRec.const("zp", np.asarray(zp, np.int8)))
    ts, off = _arena(ts, shape, "int8", off, "y")
    nodes.append(NodeRec(op_id("QuantizeLinear"), (z, z + 1, z + 2), (len(ts) - 1,), {}, name="q"))
    unf = Artifact(tensors=ts, nodes=tuple(nodes), inputs=(0,), outputs=(len(ts) - 1,), arena_size=off,
                   scratch_offset=off, scratch_size=0)
    fs, off = _arena((), shape, "float32", 0, "x")
    fs, off = _arena(fs, shape, "int8", off, "y")
    node = NodeRec(ACT_Q, (0,), (1,), {"act_fn": fn, "q_scale": float(np.float32(scale)), "q_zp": int(zp)}, name="aq")
    fused = Artifact(tensors=fs, nodes=(node,), inputs=(0,), outputs=(1,), arena_size=off, scratch_offset=off,
                     scratch_size=0)
    return unf, fused


def inputs(shape, scale, seed):
    """Values over the whole output range and beyond it, the special values (SILU_X), and values whose
    quotient by the scale is within an ulp or two of a half-integer (the rounding's hard cases)."""
    rng = np.random.default_rng(seed)
    n = int(np.prod(shape))
    x = (rng.standard_normal(n) * 200 * scale).astype(np.float32)
    half = (rng.integers(-140, 140, n) + 0.5).astype(np.float32) * np.float32(scale)
    half = np.nextafter(half, np.where(rng.random(n) < 0.5, np.inf, -np.inf).astype(np.float32)).astype(np.float32)
    x = np.where(rng.random(n) < 0.3, half, x).astype(np.float32)
    k = min(n, SILU_X.size)
    x[rng.permutation(n)[:k]] = SILU_X[:k]
    return x.reshape(shape)


SHAPES = [(1,), (7,), (31,), (33,), (255,), (257,), (1000,), (2, 3, 5, 7), (1, 32, 17, 19), (2, 16, 40, 41)]
PARAMS = [(0.05, -3), (1e-3, 127), (4.0, -128), (0.0173, 0), (2.0 ** -20, 5), (3e-39, 0), (1e30, -1)]


def _cases():
    out = []
    for k, shape in enumerate(SHAPES):
        for j, (scale, zp) in enumerate(PARAMS):
            if j % 3 == k % 3 or shape in ((1000,), (1, 32, 17, 19)):
                out.append(pytest.param(shape, scale, zp, id=f"{'x'.join(map(str, shape))}-s{scale:g}-zp{zp}"))
    return out


def _numpy_ref(x, fn, scale, zp):
    with np.errstate(all="ignore"):
        (y,) = REGISTRY.get("ActFnQuantize", "dsedge").call([x], {"act_fn": fn, "q_scale": scale, "q_zp": zp})
    return y


@pytest.mark.parametrize("shape,scale,zp", _cases())
def test_act_fn_quantize_same_bytes(lib, shape, scale, zp):   # noqa: F811
    for fn in (SILU, HSWISH, GELU):
        x = inputs(shape, scale, seed=len(shape) * 1000 + int(np.prod(shape)) + fn)
        unf, fused = pair(shape, fn, scale, zp, swap=int(np.prod(shape)) % 2 == 1)
        ref_y = _numpy_ref(x, fn, scale, zp)
        for flags in (0, REF_KERNELS):
            (want,), kw = run(lib, unf, [x], flags=flags)
            isa = ("avx512vnni" if AVX512 else "avx2") if AVX2 and not flags else "ref"
            for threads in (1, 2, 3):
                (got,), kf = run(lib, fused, [x], flags=flags, threads=threads)
                assert kf == [f"dse_i8_act_quantize__{isa}"], kf
                assert got.dtype == np.int8 and got.shape == want.shape
                bad = got != want
                assert not bad.any(), (f"fn {fn} {kf[0]} {threads} threads: {int(bad.sum())} of {got.size} differ; "
                                       f"x {x.reshape(-1)[bad.reshape(-1)][:5]} got {got[bad][:5]} want {want[bad][:5]}")
            # numpy's reference (its own sigmoid): within one step of the grid, equal in almost all
            # elements; where f(x) is NaN (x NaN, or -inf * 0) both give the zero point
            with np.errstate(all="ignore"):
                from dsedge.ops.fused import act_fn_name, apply_act_fn
                nan = np.isnan(apply_act_fn(x, act_fn_name(fn)))
            assert (want[nan] == zp).all() and (ref_y[nan] == zp).all()
            assert np.abs(want.astype(int) - ref_y.astype(int)).max(initial=0) <= 1
            assert (want == ref_y).mean() > 0.9


def test_act_fn_quantize_saturates_both_ways(lib):   # noqa: F811
    """Large |x|: SiLU(x) -> x (positive side: 127), -> -0 (negative side: zp); HardSwish likewise;
    a tiny scale saturates everything that is not ~0 (the output holds both bounds)."""
    x = np.float32([1e30, 3e38, np.inf, -np.inf, -1e30, -50.0, 50.0, 0.0, -0.0, np.nan, 1e-3, -1e-3, 10.0, -0.3])
    for fn in (SILU, HSWISH, GELU):
        unf, fused = pair(x.shape, fn, 1e-4, 3)
        for flags in (0, REF_KERNELS):
            (want,), _ = run(lib, unf, [x], flags=flags)
            (got,), _ = run(lib, fused, [x], flags=flags)
            assert np.array_equal(got, want)
            assert got.max() == 127 and got.min() == -128 and got[9] == 3   # NaN -> zp


def test_act_fn_quantize_refused_when_malformed(lib):   # noqa: F811
    """The loader refuses an ActFnQuantize with an unknown act_fn, a scale <= 0, a zero point outside
    int8 or a float output (never a silent different computation)."""
    _, good = pair((8,), SILU, 0.1, 0)
    assert _load_status(lib, good, 0)[0] == 0
    for bad_attrs in ({"act_fn": 4}, {"act_fn": 0}, {"q_scale": 0.0}, {"q_scale": float("inf")}, {"q_zp": 128}):
        (node,) = good.nodes
        n2 = NodeRec(node.op, node.inputs, node.outputs, {**dict(node.attrs), **bad_attrs}, name=node.name)
        art = Artifact(tensors=good.tensors, nodes=(n2,), inputs=good.inputs, outputs=good.outputs,
                       arena_size=good.arena_size, scratch_offset=good.scratch_offset, scratch_size=0)
        st, msg = _load_status(lib, art, 0)
        assert st != 0, bad_attrs
        assert "ActFnQuantize" in msg or "act_fn" in msg, msg


# -- NEON under qemu-aarch64 ----------------------------------------------------------------------

def test_neon_act_fn_quantize_same_bytes(tmp_path_factory):
    """The NEON kernel (the NEON Sigmoid's bytes) and REF's (-ref) against the unfused chain."""
    import subprocess

    from .test_kernels_neon import QEMU64, build_runner
    from .test_kernels_neon_f32 import write_cases
    if QEMU64 is None:
        pytest.skip("qemu-aarch64 not installed (apt-get install qemu-user)")
    exe = build_runner(tmp_path_factory.mktemp("act_q_neon_build"), "aarch64")
    cases = []
    for k, shape in enumerate([(1,), (15,), (17,), (257,), (2, 3, 5, 7), (1, 16, 21, 23)]):
        for fn in (SILU, HSWISH, GELU):
            scale, zp = PARAMS[k % len(PARAMS)]
            x = inputs(shape, scale, seed=7 * k + fn)
            unf, fused = pair(shape, fn, scale, zp, swap=k % 2 == 1)
            cases += [(unf, [x], np.zeros(shape, np.int8)), (fused, [x], np.zeros(shape, np.int8))]
    d, lines, _ = write_cases(tmp_path_factory.mktemp("act_q_neon_cases"), cases)
    for args, isa in (((), "neon"), (("-ref",), "ref"), (("-threads", "3"), "neon")):
        for k in range(len(cases)):
            (d / f"m{k}.out").unlink(missing_ok=True)
        r = subprocess.run([QEMU64, "-cpu", "max", str(exe), *args], input="\n".join(lines) + "\n",
                           capture_output=True, text=True, timeout=600)
        assert r.returncode == 0, r.stderr
        kernels = [ln.split()[:-1] for ln in r.stdout.splitlines()]
        outs = [np.frombuffer((d / f"m{k}.out").read_bytes(), np.int8) for k in range(len(cases))]
        for i in range(0, len(cases), 2):
            assert kernels[i + 1] == [f"dse_i8_act_quantize__{isa}"], (args, kernels[i + 1])
            assert np.array_equal(outs[i + 1], outs[i]), (args, i // 2)
