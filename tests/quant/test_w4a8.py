"""W4A8 (int4 weights, int8 activations; docs/quant-arith.md §13, docs/format.md §4.4 layouts
3/4 and, per channel, the int4 N8K4 blocks of layouts 6/7): the packing, the .dse round trip, the
loader's refusals, numpy <-> C byte equality of the REF kernels (dse_i8_{conv,gemm,matmul}_w4__ref)
in every layout on shapes with tails, the exporter's choice of layout, and the zoo digits model end
to end (host C runtime, and arm64 under qemu-aarch64, which runs REF on every layout). The AVX2
kernels of layouts 6/7: tests/runtime/test_kernels_w4.py."""
from __future__ import annotations

import subprocess
import zlib

import numpy as np
import pytest

from dsedge.artifact import (Artifact, TensorRec, layout_ok, pack_weights, read, unpack_weights)
from dsedge.export.scratch import packed_gemm_plan
from dsedge.errors import ModelError
from dsedge.quant import arith, intref
from tests.runtime.test_kernels_int8_opt import LOAD_REF, Net, lib, load, rng_mults, run_c, weighted_attrs  # noqa: F401

# -- packing ------------------------------------------------------------------------------------


@pytest.mark.parametrize("shape,layout", [((5, 3, 3, 3), 3), ((7, 5), 3), ((9, 6), 4), ((3, 1, 1, 1), 3), ((1, 1), 4)])
def test_int4_pack_roundtrip(shape, layout):
    a = np.random.default_rng(len(shape)).integers(-8, 8, shape).astype(np.int8)
    data = pack_weights(a, layout)
    R = shape[1] if layout == 4 else shape[0]
    K = int(np.prod(shape)) // R
    assert len(data) == R * -(-K // 2)
    assert np.array_equal(unpack_weights(data, layout, shape), a)
    assert pack_weights(np.array([[1, -1, 3]], np.int8), 3) == bytes([0xF1, 0x03])   # element 2i low nibble
    if K % 2:
        bad = bytearray(data)
        bad[-(-K // 2) - 1] |= 0x10                                                   # padding nibble of row 0
        with pytest.raises(ModelError, match="padding nibble"):
            unpack_weights(bytes(bad), layout, shape)


@pytest.mark.parametrize("shape,layout", [((5, 3, 3, 3), 6), ((17, 9), 6), ((9, 13), 7), ((1, 1), 7), ((16, 8), 6)])
def test_int4_n8k4_pack_roundtrip(shape, layout):
    """Layouts 6/7: layout 1/2's 8 x 4 blocks in 16 bytes, block element j (row r % 8, then k % 4) in
    the low nibble of byte j, element j + 16 in its high nibble; padding nibbles must be 0."""
    a = np.random.default_rng(sum(shape)).integers(-8, 8, shape).astype(np.int8)
    data = pack_weights(a, layout)
    R, K = (shape[1], shape[0]) if layout == 7 else (shape[0], int(np.prod(shape[1:])))
    Kb = -(-K // 4)
    assert len(data) == -(-R // 8) * Kb * 16
    assert np.array_equal(unpack_weights(data, layout, shape), a)
    W, b = (a.T if layout == 7 else a.reshape(R, K)), np.frombuffer(data, np.uint8)
    for r, k in [(0, 0), (R - 1, K - 1), (R // 2, K // 3), (min(R - 1, 5), K - 1)]:   # the spec's formula
        byte = b[((r // 8) * Kb + k // 4) * 16 + (r % 4) * 4 + k % 4]
        assert ((int(byte >> 4 if r % 8 >= 4 else byte & 15) ^ 8) - 8) == W[r, k]
    art = Artifact((TensorRec.const("w", a, dtype="int4", layout=layout), TensorRec.arena("x", "float32", (1,), 0)),
                   (), (1,), (1,), 64)
    back = read(art.to_bytes())
    assert back.tensors[0].layout == layout and np.array_equal(back.tensors[0].array(), a)
    j = (R % 8) * 4 if R % 8 else (K % 4 if K % 4 else None)          # a padding element of band 0 / block 0
    if j is not None:
        blk = ((R // 8) * Kb) * 16 if R % 8 else (Kb - 1) * 16
        bad = bytearray(data)
        bad[blk + j % 16] |= 0x10 if j >= 16 else 0x01
        with pytest.raises(ModelError, match="padding"):
            unpack_weights(bytes(bad), layout, shape)


def test_int4_layout_rules():
    assert layout_ok(3, "int4", 0, (4, 3, 3, 3)) and layout_ok(4, "int4", 0, (5, 4))
    assert not layout_ok(3, "int8", 0, (4, 9)) and not layout_ok(4, "int4", 0, (2, 5, 4))
    assert not layout_ok(1, "int4", 0, (4, 9)) and not layout_ok(3, "int4", 1, (4, 9))
    assert layout_ok(6, "int4", 0, (4, 3, 3, 3)) and layout_ok(7, "int4", 0, (5, 4))
    assert not layout_ok(6, "int8", 0, (4, 9)) and not layout_ok(7, "int4", 0, (2, 5, 4)) and not layout_ok(6, "int4", 1, (4, 9))
    with pytest.raises(ModelError, match="int4 values"):
        pack_weights(np.array([[9]], np.int8), 3)


# -- one-node artifacts --------------------------------------------------------------------------

def w4_weight(rng, shape, axis, group):
    """Random int4 codes in [-7, 7] (the extremes included) and, with groups, multipliers 1..18."""
    q = rng.integers(-7, 8, shape).astype(np.int8)
    q.flat[0], q.flat[-1] = 7, -7
    C = shape[axis]
    K = int(np.prod(shape)) // C
    mul = rng.integers(1, 19, (C, -(-K // group))).astype(np.int8) if group else None
    if mul is not None:
        mul.flat[0] = 18
    return q, mul, arith.w4_effective(q, axis, mul, group)


def attrs_w4(net, group, mul, *a, **kw):
    at = weighted_attrs(net, *a, **kw)
    at["w4_group"] = group
    if group:
        at["w4_mul"] = net.tattr(mul.reshape(-1), "int8")
    return at


def conv_w4(x, q, mul, w8, group, bias, zp_in, M, n, zp_out, strides, pads, dil, cgroup, out_scale=None, layout=3):
    net = Net()
    ref = intref.conv_int8(x, zp_in, w8, bias, M, n, zp_out, strides, pads, dil, cgroup, acc_only=out_scale is not None)
    if out_scale is not None:
        ref = intref.dequantize_acc(ref, out_scale, 1)
    xi = net.inp(x)
    wi = net.const(q, dtype="int4", layout=layout)
    bi = net.const(bias.astype(np.int32))
    yi = net.out(ref.dtype, ref.shape)
    attrs = dict(kernel_shape=list(q.shape[2:]), strides=strides, pads=pads, dilations=dil, group=cgroup,
                 **attrs_w4(net, group, mul, zp_in, zp_out, M, n, out_scale=out_scale))
    plan = packed_gemm_plan(int(np.prod(q.shape[1:])), int(np.prod(ref.shape[2:]))) if layout == 6 else 0
    return net.build("Conv", [xi, wi, bi], [yi], attrs, plan), net.feeds, net.outs, ref


CONV = [   # x shape, w shape, strides, pads, dilations, group
    ((1, 3, 7, 9), (5, 3, 3, 3), [2, 1], [1, 0, 2, 1], [1, 2], 1),       # K = 27 (odd), odd channels
    ((2, 5, 8, 8), (7, 5, 1, 1), [1, 1], [0, 0, 0, 0], [1, 1], 1),        # K = 5, batch 2
    ((1, 70, 9, 11), (9, 70, 1, 1), [1, 1], [0, 0, 0, 0], [1, 1], 1),     # K = 70: groups of 32 with a tail
    ((1, 6, 12, 12), (3, 6, 3, 3), [1, 1], [2, 2, 2, 2], [2, 2], 1),      # dilated, padded
    ((1, 8, 9, 9), (12, 4, 3, 3), [2, 2], [1, 1, 1, 1], [1, 1], 2),       # grouped
    ((1, 7, 10, 10), (7, 1, 3, 3), [1, 1], [1, 1, 1, 1], [1, 1], 7),      # depthwise, K = 9
    ((2, 3, 31), (4, 3, 5), [3], [2, 1], [2], 1),                         # 1-D
    ((1, 2, 4, 5, 6), (3, 2, 2, 3, 2), [1, 2, 1], [1, 0, 1, 0, 1, 1], [1, 1, 2], 1),   # 3-D
    ((1, 40, 20, 13), (12, 40, 3, 3), [1, 1], [1, 1, 1, 1], [1, 1], 1),   # K = 360, two output tiles
]


@pytest.mark.parametrize("ci", range(len(CONV)))
@pytest.mark.parametrize("group", [0, 32, 64])
def test_conv_w4_matches_numpy(lib, ci, group):
    xs, ws, st, pd, dl, cg = CONV[ci]
    rng = np.random.default_rng(100 * ci + group)
    x = rng.integers(-128, 128, xs).astype(np.int8)
    q, mul, w8 = w4_weight(rng, ws, 0, group)
    C = ws[0]
    M, n = rng_mults(rng, C)
    bias = rng.integers(-(1 << 16), 1 << 16, C)
    for zp_in, zp_out in ((-128, 127), (5, -7)):
        art, feeds, outs, ref = conv_w4(x, q, mul, w8, group, bias, zp_in, M, n, zp_out, st, pd, dl, cg)
        got, kernels = run_c(lib, art, feeds, outs)
        assert kernels == ["dse_i8_conv_w4__ref"], kernels
        assert got[0].tobytes() == ref.tobytes(), f"{int((got[0] != ref).sum())} of {ref.size} differ"
        if group == 0 and cg == 1:   # per channel, group 1: the int4 N8K4 layout 6 too (REF here)
            art, feeds, outs, ref = conv_w4(x, q, mul, w8, group, bias, zp_in, M, n, zp_out, st, pd, dl, cg, layout=6)
            got, kernels = run_c(lib, art, feeds, outs, LOAD_REF)
            assert kernels == ["dse_i8_conv_w4__ref"], kernels
            assert got[0].tobytes() == ref.tobytes(), f"layout 6: {int((got[0] != ref).sum())} of {ref.size} differ"
    # float output (the accumulator dequantised): scale 1 returns the exact int32 sums
    art, feeds, outs, ref = conv_w4(x, q, mul, w8, group, bias, 3, None, None, 0, st, pd, dl, cg,
                                    out_scale=np.ones(C, np.float32))
    assert run_c(lib, art, feeds, outs)[0][0].tobytes() == ref.tobytes()


GEMM = [   # x shape, K, N
    ((3, 27), 27, 5), ((1, 70), 70, 9), ((4, 129), 129, 66), ((2, 1), 1, 1), ((5, 64), 64, 33)]


@pytest.mark.parametrize("gi", range(len(GEMM)))
@pytest.mark.parametrize("group", [0, 32])
@pytest.mark.parametrize("op,trans_b", [("Gemm", 1), ("Gemm", 0), ("MatMul", 0)])
def test_gemm_matmul_w4_matches_numpy(lib, gi, group, op, trans_b):
    xs, K, N = GEMM[gi]
    rng = np.random.default_rng(10 * gi + group + trans_b)
    if op == "MatMul":
        xs = (2,) + xs                                               # a batch axis
    x = rng.integers(-128, 128, xs).astype(np.int8)
    shape = (N, K) if trans_b else (K, N)
    q, mul, w8 = w4_weight(rng, shape, 0 if trans_b else 1, group)
    M, n = rng_mults(rng, N)
    bias = rng.integers(-(1 << 16), 1 << 16, N)
    zp_in, zp_out = -3, 11
    x2 = x.reshape(-1, K)
    ref = intref.gemm_int8(x2, zp_in, w8, bias, M, n, zp_out, trans_b).reshape(xs[:-1] + (N,))
    for blocked in (0, 1) if group == 0 else (0,):   # per channel: also layouts 6/7 (REF here)
        net = Net()
        xi = net.inp(x)
        wi = net.const(q, dtype="int4", layout=(3 if trans_b else 4) + 3 * blocked)
        bi = net.const(bias.astype(np.int32))
        yi = net.out(np.int8, ref.shape)
        attrs = attrs_w4(net, group, mul, zp_in, zp_out, M, n)
        if op == "Gemm":
            attrs.update(transA=0, transB=trans_b, alpha=1.0, beta=1.0)
        art = net.build(op, [xi, wi, bi], [yi], attrs, packed_gemm_plan(K, x2.shape[0]) if blocked else 0)
        got, kernels = run_c(lib, art, net.feeds, net.outs, LOAD_REF if blocked else 0)
        assert kernels == [f"dse_i8_{op.lower()}_w4__ref"], kernels
        assert got[0].tobytes() == ref.tobytes(), f"{int((got[0] != ref).sum())} of {ref.size} differ"


# -- the loader and the kernels' checks refuse malformed W4A8 nodes ------------------------------

def _refix_crc(data: bytearray) -> bytes:
    tables = int.from_bytes(data[24:32], "little")
    crc = zlib.crc32(bytes(data[:60]) + bytes(data[64:64 + tables]))
    data[60:64] = crc.to_bytes(4, "little")
    return bytes(data)


def _gemm_art(rng, group=0, q=None, layout=3, mul=19):
    K, N = 9, 5
    q = rng.integers(-7, 8, (N, K)).astype(np.int8) if q is None else q
    M, n = rng_mults(rng, N)
    net = Net()
    xi = net.inp(rng.integers(-128, 128, (2, K)).astype(np.int8))
    wi = net.const(q, dtype="int4", layout=layout)
    bi = net.const(np.zeros(N, np.int32))
    yi = net.out(np.int8, (2, N))
    attrs = attrs_w4(net, group, np.full((N, 1), mul, np.int8) if group else None, 0, 0, M, n)
    attrs.update(transA=0, transB=1, alpha=1.0, beta=1.0)
    return net.build("Gemm", [xi, wi, bi], [yi], attrs, packed_gemm_plan(K, 2) if layout == 6 else 0), wi


def test_loader_refuses_bad_int4_layouts(lib):
    rng = np.random.default_rng(7)
    art, wi = _gemm_art(rng)
    st, msg, m, keep = load(lib, art.to_bytes())
    assert st == 0, msg
    lib.dse_model_free(m)
    data = art.to_bytes()
    rec = bytes([13, 0, 3, 2, 5, 9])          # the weight's record: int4, CONST, layout 3, rank 2, dims 5 x 9
    assert data.count(rec) == 1
    at = data.index(rec)
    for layout, words in ((5, "layout"), (1, "int8 constant"), (4, "layout 4")):
        bad = bytearray(data)                  # 4: the transposed view of the same bytes (9 rows of 5)
        bad[at + 2] = layout
        st, msg, m, keep = load(lib, _refix_crc(bad))
        assert st != 0 and words in msg, (layout, msg)
    bad = bytearray(data)                      # an int8 tensor claiming layout 3
    bad[at] = 4
    st, msg, m, keep = load(lib, _refix_crc(bad))
    assert st != 0 and "int4" in msg, msg
    blob = int.from_bytes(data[32:40], "little")
    woff = blob + art.tensors[wi].offset
    bad = bytearray(data)                      # the padding nibble after K = 9 in row 0
    bad[woff + 4] |= 0x30
    st, msg, m, keep = load(lib, bytes(bad))
    assert st != 0 and "padding" in msg, msg
    q = rng.integers(-7, 8, (5, 9)).astype(np.int8)
    q[2, 3] = -8                               # a code outside [-7, 7]
    st, msg, m, keep = load(lib, _gemm_art(rng, q=q)[0].to_bytes())
    assert st != 0 and "-8" in msg, msg
    st, msg, m, keep = load(lib, _gemm_art(rng, group=32)[0].to_bytes())   # a multiplier 19
    assert st != 0 and "[1, 18]" in msg, msg


def test_loader_refuses_bad_int4_n8k4(lib):
    """Layout 6 (and 7): a padding nibble of a row >= R or a k >= K that is not 0, an int8 tensor
    claiming it, a node with group multipliers or a grouped Conv on it: refused with a message;
    the well-formed file loads (and, planned with the int8 scratch, also without its AVX2 kernel)."""
    rng = np.random.default_rng(8)
    art, wi = _gemm_art(rng, layout=6)
    for flags in (0, LOAD_REF):
        st, msg, m, keep = load(lib, art.to_bytes(), flags)
        assert st == 0, msg
        lib.dse_model_free(m)
    data = art.to_bytes()
    rec = bytes([13, 0, 6, 2, 5, 9])          # int4, CONST, layout 6, rank 2, dims 5 x 9
    assert data.count(rec) == 1
    woff = int.from_bytes(data[32:40], "little") + art.tensors[wi].offset
    # block (band 0, kb 0): byte 4's high nibble is row 5 (>= R = 5), k 0; block kb 2, byte 1: row 0, k 9 (>= K)
    for at, bit in ((woff + 4, 0x10), (woff + 2 * 16 + 1, 0x01)):
        bad = bytearray(data)
        bad[at] |= bit
        st, msg, m, keep = load(lib, bytes(bad))
        assert st != 0 and "padding" in msg, msg
    bad = bytearray(data)
    bad[data.index(rec)] = 4                   # an int8 tensor claiming layout 6
    st, msg, m, keep = load(lib, _refix_crc(bad))
    assert st != 0 and "int4" in msg, msg
    st, msg, m, keep = load(lib, _gemm_art(rng, group=32, layout=6, mul=3)[0].to_bytes())
    assert st != 0 and "w4_group 0" in msg, msg
    x, (q, _, w8) = rng.integers(-128, 128, (1, 4, 6, 6)).astype(np.int8), w4_weight(rng, (6, 2, 3, 3), 0, 0)
    M, n = rng_mults(rng, 6)
    art2 = conv_w4(x, q, None, w8, 0, np.zeros(6, np.int64), 1, M, n, 0, [1, 1], [0] * 4, [1, 1], 2, layout=6)[0]
    st, msg, m, keep = load(lib, art2.to_bytes())   # a grouped Conv (group 2) on layout 6
    assert st != 0 and "group 1" in msg, msg


# -- the zoo digits model end to end -------------------------------------------------------------

def _digits_w4(tmp_path, group):
    import dsedge
    from dsedge import zoo
    calib = zoo.digits_calib()
    feeds = [{"image": calib["image"][i]} for i in range(len(calib["image"]))]
    r = dsedge.quantize(str(zoo.digits_dir() / "model.onnx"), feeds, weight_bits=4, weight_group=group,
                        progress=False)
    path = tmp_path / f"digits_w4_{group}.dse"
    r.save(str(path))
    return r, path


@pytest.mark.parametrize("group", [0, 32])
def test_digits_w4a8_c_runtime(tmp_path, group):
    from dsedge import zoo
    from dsedge.export.dse import load_dse_graph
    from dsedge.interp import execute
    from dsedge.runtime import Runtime
    from tests.runtime.test_kernels_int8_opt import AVX2
    r, path = _digits_w4(tmp_path, group)
    art = read(str(path))
    w4 = [t for t in art.tensors if t.dtype == "int4"]
    # per channel: the int4 N8K4 blocks (layout 6: two Conv with group 1, Gemm transB 1); groups: rows (3)
    assert len(w4) == 3 and all(t.layout == (3 if group else 6) for t in w4)
    assert sum("int4 weights (W4A8" in p.reason for p in r.plan) == 3
    dg = load_dse_graph(path)                  # decode: the same integer graph as the quantiser's
    ev = zoo.digits_eval()
    rt, rt_ref = Runtime(str(path)), Runtime(str(path), kernels="ref")
    isa = "avx2" if AVX2 and not group else "ref"   # the AVX2 W4 kernels take layouts 6/7 only
    assert rt.kernels().count(f"dse_i8_conv_w4__{isa}") == 2 and f"dse_i8_gemm_w4__{isa}" in rt.kernels()
    assert rt_ref.kernels().count("dse_i8_conv_w4__ref") == 2
    X = ev["image"]
    correct = agree = 0
    for i in range(len(X)):
        y_np = execute(r.graph, {"image": X[i]})[0]
        assert np.array_equal(execute(dg, {dg.inputs[0]: X[i]})[0], y_np)
        y_c = np.asarray(rt.run({"image": X[i]})[rt.outputs[0].name])
        assert y_c.tobytes() == y_np.tobytes(), i
        if i % 10 == 0:
            assert np.asarray(rt_ref.run({"image": X[i]})[rt.outputs[0].name]).tobytes() == y_np.tobytes()
        yf = execute(r.float_graph, {"image": X[i]})[0]
        correct += int(np.argmax(y_np) == ev["label"][i])
        agree += int(np.argmax(y_np) == np.argmax(yf))
    print(f"digits W4A8 group {group}: top-1 {correct / len(X):.4f}, agreement with float {agree / len(X):.4f}, "
          f"{path.stat().st_size} B")
    assert correct / len(X) >= 0.95 and agree / len(X) >= 0.97


def test_digits_w4a8_arm64_same_bytes(tmp_path):
    """arm64 runs REF on every int4 layout (groups: 3; per channel: 6, which the host runs on its
    AVX2 W4 kernels): the host's bytes."""
    from tests.runtime.test_kernels_neon import QEMU64, build_runner
    if QEMU64 is None:
        pytest.skip("qemu-aarch64 not installed (apt-get install qemu-user)")
    from dsedge import zoo
    from dsedge.runtime import Runtime
    x = np.ascontiguousarray(zoo.digits_eval()["image"][:1].reshape(1, 1, 8, 8), np.float32)
    (tmp_path / "x.bin").write_bytes(x.tobytes())
    exe = build_runner(tmp_path, "aarch64")
    for group in (32, 0):
        _, path = _digits_w4(tmp_path, group)
        rt = Runtime(str(path))
        want = np.asarray(rt.run({"image": x})[rt.outputs[0].name]).tobytes()
        out = tmp_path / "arm64.out"
        res = subprocess.run([QEMU64, "-cpu", "max", str(exe)], input=f"{path} {out} {tmp_path / 'x.bin'}\n",
                             capture_output=True, text=True, timeout=300)
        assert res.returncode == 0, res.stderr
        assert "dse_i8_conv_w4__ref" in res.stdout and "dse_i8_gemm_w4__ref" in res.stdout
        assert out.read_bytes() == want, group


def test_exporter_int4_matmul_layouts(tmp_path):
    """MatMul with a constant B: per channel in layout 7 (the int4 N8K4 blocks of B's transpose), with
    groups of 32 in layout 4; both give REF's bytes with the kernels this host chooses."""
    import dsedge
    import dsedge.zoo as zoo
    from dsedge.export import save_dse
    m = zoo.build("transformer_encoder", seq=8, dim=32, heads=2, layers=1, vocab=50)
    src = tmp_path / "t.onnx"
    src.write_bytes(m.SerializeToString())
    f = zoo.random_feeds(m, 4, 0)
    calib = [{k: v[i] for k, v in f.items()} for i in range(4)]
    for group, layout in ((0, 7), (32, 4)):
        out = tmp_path / f"t{group}.dse"
        save_dse(dsedge.quantize(str(src), calib[:3], progress=False, method="minmax", weight_bits=4,
                                 weight_group=group), out)
        assert {t.layout for t in read(str(out)).tensors if t.dtype == "int4"} == {layout}
        with dsedge.Runtime(str(out)) as rt, dsedge.Runtime(str(out), kernels="ref") as rr:
            a, b = rt.run(calib[3]), rr.run(calib[3])
            assert all(np.asarray(a[k]).tobytes() == np.asarray(b[k]).tobytes() for k in a)
