"""MatMul of two int8 activations (kind "act_matmul", docs/quant-arith.md §14): which form a
MatMul takes, the integer reference against a brute-force sum, numpy <-> C byte equality of
dse_i8_matmul_act__ref (and any optimised variant) on shapes with tails, broadcast batch axes,
1-D operands, K = 1, K at the bound, zero points -128/127, multipliers >= 1, float output; the
loader's refusals; the zoo transformer_encoder end to end (default plan, precision planner's
candidates, .dse in the C runtime against numpy and onnxruntime) and the same bytes on arm64
under qemu-aarch64."""
from __future__ import annotations

import subprocess

import numpy as np
import pytest

from dsedge.artifact import read
from dsedge.ir import Graph, Node, TensorInfo
from dsedge.quant import arith, intref, kinds
from tests.runtime.test_kernels_int8_opt import AVX2, LOAD_REF, Net, lib, load, rng_mults, run_c  # noqa: F401

KERNEL = "dse_i8_matmul_act__ref"


# -- the form a MatMul takes ---------------------------------------------------------------------

def _mm_graph(a_shape, b_shape, b_const=False):
    g = Graph()
    g.inputs = ["a"]
    g.info["a"] = TensorInfo(np.dtype(np.float32), a_shape)
    if b_const:
        g.consts["b"] = np.ones(b_shape, np.float32)
    else:
        g.inputs.append("b")
        g.info["b"] = TensorInfo(np.dtype(np.float32), b_shape)
    n = Node("MatMul", ["a", "b"], ["y"], {}, "mm")
    g.nodes = [n]
    g.outputs = ["y"]
    return g, n


def test_form_of_matmul():
    g, n = _mm_graph((2, 4, 8, 16), (2, 4, 16, 8))
    assert kinds.form_of(g, n).name == "act_matmul" and kinds.why_not(g, n) is None
    assert kinds.roles_of(g, n) == ["act", "act"] and kinds.act_inputs(g, n) == ["a", "b"]
    g, n = _mm_graph((3, 16), (16, 5), b_const=True)
    assert kinds.form_of(g, n).name == "weighted" and kinds.roles_of(g, n) == ["act", "weight"]
    g, n = _mm_graph((1, 33025), (33025, 2))
    assert kinds.why_not(g, n) is None
    g, n = _mm_graph((1, 33026), (33026, 2))
    assert "K=33026" in kinds.why_not(g, n)
    g, n = _mm_graph((1, "s", "k"), (1, "k", 4))
    assert "not static" in kinds.why_not(g, n)
    from dsedge.api import int8_capable
    assert int8_capable(*_mm_graph((2, 3), (3, 4))) == (True, "act_matmul")


def test_bound():
    assert arith.act_matmul_bound_ok(33025) and not arith.act_matmul_bound_ok(33026)
    assert 33025 * 255 * 255 < 2**31 <= 33026 * 255 * 255


def test_intref_brute_force():
    rng = np.random.default_rng(0)
    a = rng.integers(-128, 128, (2, 3, 5)).astype(np.int8)
    b = rng.integers(-128, 128, (1, 5, 4)).astype(np.int8)
    za, zb = -128, 127
    acc = intref.matmul_act_int8(a, za, b, zb, None, None, 0, acc_only=True)
    for bi in range(2):
        for i in range(3):
            for j in range(4):
                assert acc[bi, i, j] == sum((int(a[bi, i, k]) - za) * (int(b[0, k, j]) - zb) for k in range(5))
    M, n = arith.mul_multiplier(0.02, 0.03, 0.5)
    y = intref.matmul_act_int8(a, za, b, zb, M, n, 3)
    assert np.array_equal(y, arith.requantize(acc, M, n, 3))


# -- numpy <-> C, one-node artifacts -------------------------------------------------------------

CASES = [  # a shape, b shape
    ((1, 2, 7, 5), (1, 2, 5, 7)),          # [B,H,S,D] x [B,H,D,S], odd K, odd N
    ((2, 3, 9, 16), (2, 3, 16, 9)),         # attention scores, batch 2
    ((1, 2, 9, 9), (1, 2, 9, 5)),           # attention . V
    ((2, 6, 33), (2, 33, 67)),             # [B,S,D] x [B,D,N]: N over one 64-column tile
    ((3, 4, 1), (3, 1, 5)),                # K = 1
    ((2, 1, 5, 7), (1, 3, 7, 4)),          # broadcast batch axes both ways
    ((4, 6, 3), (3, 2)),                   # 2-D B broadcast over A's batch (an activation B)
    ((5, 70), (70, 3)),                    # plain 2-D
    ((13,), (13, 6)),                      # 1-D A
    ((2, 3, 13), (13,)),                   # 1-D B
    ((1, 1, 130, 37), (1, 1, 37, 130)),    # several row blocks and column tiles
]


def _case(rng, a_shape, b_shape, za, zb, *, float_out=False, extreme=False, mults=None, act=None):
    a = rng.integers(-128, 128, a_shape).astype(np.int8)
    b = rng.integers(-128, 128, b_shape).astype(np.int8)
    if extreme:
        a[...] = -128 if za == 127 else 127
        b[...] = 127 if zb == -128 else -128
    net = Net()
    ai, bi = net.inp(a), net.inp(b)
    attrs = dict(za=za, zb=zb, qmin=-128, qmax=127)
    if float_out:
        scale = np.float32(rng.uniform(1e-4, 1e-2))
        acc = intref.matmul_act_int8(a, za, b, zb, None, None, 0, acc_only=True)
        ref = acc.astype(np.float32) * scale
        lo, hi = act if act else (float("-inf"), float("inf"))
        if act:
            ref = np.minimum(np.maximum(ref, np.float32(lo)), np.float32(hi))
        attrs.update(float_out=1, zp_out=0, out_scale=float(scale), act_min=lo, act_max=hi)
    else:
        M, n = mults if mults is not None else (int(v[0]) for v in rng_mults(rng, 1))
        zp_out = int(rng.integers(-128, 128))
        qmin, qmax = (-100, 90) if act else (-128, 127)
        ref = intref.matmul_act_int8(a, za, b, zb, M, n, zp_out, qmin, qmax)
        attrs.update(float_out=0, zp_out=zp_out, qmin=qmin, qmax=qmax, M=int(M), shift=int(n))
    yi = net.out(ref.dtype, ref.shape)
    return net.build("MatMul", [ai, bi], [yi], attrs), net, ref


@pytest.mark.parametrize("ci", range(len(CASES)))
def test_matmul_act_matches_numpy(lib, ci):
    a_shape, b_shape = CASES[ci]
    rng = np.random.default_rng(ci)
    for za, zb in ((-128, 127), (127, -128), (3, -5)):
        for flags in (0, LOAD_REF):
            art, net, ref = _case(rng, a_shape, b_shape, za, zb)
            got, kernels = run_c(lib, art, net.feeds, net.outs, flags)
            assert kernels[0].startswith("dse_i8_matmul_act__"), kernels
            if flags == LOAD_REF:
                assert kernels == [KERNEL]
            elif AVX2:                      # the AVX2 variant, not a silent fallback
                assert kernels == ["dse_i8_matmul_act__avx2"], kernels
            assert got[0].tobytes() == ref.tobytes(), f"{int((got[0] != ref).sum())} of {ref.size} differ"
    # multipliers >= 1 (r = 2, 1.5 and the saturating 2^30), clamps, and the float output
    for mults in (arith.quantize_multiplier(2.0), arith.quantize_multiplier(1.5), arith.M_SATURATE):
        art, net, ref = _case(rng, a_shape, b_shape, -7, 9, mults=tuple(int(v) for v in mults), act=True)
        for flags in (0, LOAD_REF):
            assert run_c(lib, art, net.feeds, net.outs, flags)[0][0].tobytes() == ref.tobytes()
    for act in (None, (-0.5, 0.25)):
        art, net, ref = _case(rng, a_shape, b_shape, 5, -128, float_out=True, act=act)
        for flags in (0, LOAD_REF):
            got, kernels = run_c(lib, art, net.feeds, net.outs, flags)
            assert got[0].tobytes() == ref.tobytes(), kernels


def test_matmul_act_at_the_bound(lib):
    """K = 33025 with every product at -255 * 255: the accumulator is -2147450625 (fits int32)."""
    rng = np.random.default_rng(1)
    for za, zb in ((127, -128), (-128, 127)):
        art, net, ref = _case(rng, (1, 2, 33025), (1, 33025, 3), za, zb, float_out=True, extreme=True)
        got = run_c(lib, art, net.feeds, net.outs)[0][0]
        assert got.tobytes() == ref.tobytes()
        acc = intref.matmul_act_int8(net.feeds[0], za, net.feeds[1], zb, None, None, 0, acc_only=True)
        assert abs(int(acc.flat[0])) == 33025 * 255 * 255
    art, net, ref = _case(rng, (3, 33025), (33025, 2), 0, 0, mults=arith.quantize_multiplier(2.0 ** -20))
    assert run_c(lib, art, net.feeds, net.outs)[0][0].tobytes() == ref.tobytes()


def test_matmul_act_threads(lib):
    """The same bytes with 1 and 3 threads."""
    import dsedge
    rng = np.random.default_rng(5)
    art, net, ref = _case(rng, (2, 4, 40, 24), (2, 4, 24, 40), 1, -2)
    import tempfile
    with tempfile.TemporaryDirectory() as d:
        p = f"{d}/m.dse"
        open(p, "wb").write(art.to_bytes())
        for t in (1, 3):
            rt = dsedge.Runtime(p, threads=t)
            got = rt.run({rt.inputs[0].name: net.feeds[0], rt.inputs[1].name: net.feeds[1]})
            assert np.asarray(got[rt.outputs[0].name]).tobytes() == ref.tobytes()


def test_loader_refuses_bad_matmul_act(lib):
    rng = np.random.default_rng(2)
    art, net, _ = _case(rng, (1, 2, 33026), (1, 33026, 2), 0, 0)
    st, msg, m, keep = load(lib, art.to_bytes())
    assert st != 0 and "K = 33026 > 33025" in msg, msg
    for bad in (dict(za=128), dict(shift=0), dict(M=-1), dict(qmin=5, qmax=4)):
        art, net, _ = _case(rng, (2, 3), (3, 2), 0, 0)
        node = art.nodes[0]
        attrs = dict(node.attrs)
        attrs.update(bad)
        art2 = type(art)(art.tensors, (type(node)(node.op, node.inputs, node.outputs, attrs, node.name),),
                         art.inputs, art.outputs, art.arena_size, art.scratch_offset, art.scratch_size)
        st, msg, m, keep = load(lib, art2.to_bytes())
        assert st != 0 and "za, zb" in msg, (bad, msg)


# -- the zoo transformer encoder end to end --------------------------------------------------------

ZOO_KW = dict(seq=32, dim=64, heads=2, layers=2, vocab=100)


def _act_matmuls(g) -> list:
    return [n for n in g.nodes if n.op == "MatMul" and (n.attrs.get("_q") or {}).get("kind") == "act_matmul"]


@pytest.fixture(scope="module")
def encoder(tmp_path_factory):
    import dsedge
    from dsedge import zoo
    d = tmp_path_factory.mktemp("enc")
    m = zoo.build("transformer_encoder", **ZOO_KW)
    src = d / "enc.onnx"
    src.write_bytes(m.SerializeToString())
    f = zoo.random_feeds(m, 24, 0)
    feeds = [{k: v[i] for k, v in f.items()} for i in range(24)]
    r = dsedge.quantize(str(src), feeds[:16], progress=False)
    path = d / "enc.dse"
    r.save(str(path))
    return src, feeds, r, path


def test_encoder_default_plan(encoder):
    src, feeds, r, path = encoder
    plan = {p.name: p for p in r.plan}
    act = [p for p in r.plan if p.op == "MatMul" and not p.reason.startswith("weight")]
    assert len(act) == 2 * ZOO_KW["layers"]              # Q·Kᵀ and attention·V per layer
    int8 = [p for p in act if p.precision.startswith("int8")]
    print("act x act MatMuls:", {p.name: (p.precision, p.reason) for p in act})
    # Q·Kᵀ: inputs int8 already; its reader (Div, Softmax) is float: int8 compute, float output
    assert all(plan[f"layer{i}.qk"].precision == "int8-fout" for i in range(ZOO_KW["layers"]))
    assert len(int8) >= ZOO_KW["layers"] and len(_act_matmuls(r.graph)) == len(int8)
    for p in act:
        if p.precision == "fp32":
            assert "loses too much" in p.reason or "input is float" in p.reason, p.reason


def test_encoder_c_runtime_same_bytes(encoder):
    """The .dse in the C runtime: every int8 node (the MatMuls of two activations included) gives
    numpy's bytes on the C runtime's own inputs (tests/models/test_e2e_runtime.py's node-by-node
    copy of the artifact); the float output (after LayerNormalization, a float kernel) within
    float tolerance of numpy, and its SQNR against onnxruntime's float model."""
    import onnxruntime as ort
    from dsedge.export.dse import load_dse_graph
    from dsedge.interp import execute
    from dsedge.quant.quantize import sqnr_db
    from dsedge.runtime import Runtime
    from tests.models.test_e2e_runtime import MIXED_OUT_FRAC, MIXED_OUT_TOL, _frac_over, debug_artifact, node_by_node
    src, feeds, r, path = encoder
    rt = Runtime(str(path))
    n_act = sum(k.startswith("dse_i8_matmul_act__") for k in rt.kernels())
    assert n_act == len(_act_matmuls(r.graph)) >= ZOO_KW["layers"], rt.kernels()
    dg = load_dse_graph(path)
    assert len(_act_matmuls(dg)) == n_act
    dbg, _ = debug_artifact(read(str(path)))
    nb = node_by_node(dbg.to_bytes(), dg, [{dg.inputs[0]: f["tokens"]} for f in feeds[16:19]])
    assert not nb["bad"], nb["bad"][:5]
    sess = ort.InferenceSession(str(src), providers=["CPUExecutionProvider"])
    out = rt.outputs[0].name
    ref_all, got_all = [], []
    for f in feeds[16:]:
        y_np = execute(r.graph, f)[0]
        y_c = np.asarray(rt.run(f)[out])
        # float kernels before a QuantizeLinear may flip one int8 step (docs/kernels.md): the
        # mixed-model tolerance of tests/models/test_e2e_runtime.py
        assert _frac_over(y_np, y_c, MIXED_OUT_TOL) <= MIXED_OUT_FRAC
        ref_all.append(sess.run(None, f)[0])
        got_all.append(y_c)
    s = sqnr_db(np.concatenate(ref_all), np.concatenate(got_all))
    print(f"transformer_encoder {ZOO_KW}: {n_act} act x act MatMuls int8 ({nb['counts']['int8']} int8 nodes "
          f"byte-exact), SQNR vs onnxruntime {s:.1f} dB, {path.stat().st_size} B")
    assert s > 25.0


def test_encoder_planner_candidates(encoder):
    """Every MatMul of two activations is a candidate of the precision planner (relaxed rules:
    every node with an int8 form goes int8 before the budget decides)."""
    from dsedge.quant.precision import finish_plan, relaxed
    from dsedge.quant.quantize import QuantConfig, prepare
    from dsedge.converters.onnx.reader import load_onnx
    src, feeds, r, path = encoder
    prep = prepare(load_onnx(str(src)), feeds[:8], relaxed(QuantConfig(progress=False)))
    res = finish_plan(prep, relaxed(QuantConfig(progress=False)))
    act = [p for p in res.plan if p.op == "MatMul" and not p.reason.startswith("weight")]
    assert len(act) == 2 * ZOO_KW["layers"] and all(p.precision.startswith("int8") for p in act), \
        [(p.name, p.precision, p.reason) for p in act]


def test_encoder_arm64_same_bytes(encoder, tmp_path):
    from tests.runtime.test_kernels_neon import QEMU64, build_runner
    if QEMU64 is None:
        pytest.skip("qemu-aarch64 not installed (apt-get install qemu-user)")
    from dsedge.runtime import Runtime
    src, feeds, r, path = encoder
    rt = Runtime(str(path), kernels="ref")      # REF float kernels: the same bytes on every target
    x = np.ascontiguousarray(feeds[20]["tokens"])
    (tmp_path / "x.bin").write_bytes(x.tobytes())
    want = np.asarray(rt.run(feeds[20])[rt.outputs[0].name]).tobytes()
    lines = [f"{path} {tmp_path / 'enc.out'} {tmp_path / 'x.bin'}"]
    # and a few one-node cases (odd sizes, broadcast batch axes, float output)
    rng = np.random.default_rng(9)
    refs = []
    for i, (a_shape, b_shape) in enumerate(CASES[:6]):
        art, net, ref = _case(rng, a_shape, b_shape, -128, 127, float_out=bool(i % 2))
        p = tmp_path / f"c{i}.dse"
        p.write_bytes(art.to_bytes())
        ins = []
        for j, a in enumerate(net.feeds):
            (tmp_path / f"c{i}_{j}.bin").write_bytes(np.ascontiguousarray(a).tobytes())
            ins.append(str(tmp_path / f"c{i}_{j}.bin"))
        lines.append(f"{p} {tmp_path / f'c{i}.out'} {' '.join(ins)}")
        refs.append(ref)
    exe = build_runner(tmp_path, "aarch64")
    res = subprocess.run([QEMU64, "-cpu", "max", str(exe)], input="\n".join(lines) + "\n",
                         capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stderr
    assert KERNEL in res.stdout
    assert (tmp_path / "enc.out").read_bytes() == want
    for i, ref in enumerate(refs):
        assert (tmp_path / f"c{i}.out").read_bytes() == ref.tobytes(), i
