"""A16W8 in the C runtime (docs/quant-arith.md §15): the REF kernels dse_i16_{conv,gemm,matmul}__ref
give the numpy integer reference's bytes (odd channels, padding, strides, dilations, groups,
depthwise, 1-D/3-D, Gemm transB 0/1, MatMul with batch axes, accumulators far beyond int32,
multipliers on both sides of the n = 32 split, clamps); int16 QuantizeLinear / DequantizeLinear give
numpy's bytes; the loader refuses malformed int16 nodes with a reason."""
from __future__ import annotations

import numpy as np
import pytest

from dsedge.quant import arith, intref
from tests.runtime.test_kernels_int8_opt import Net, lib, load, run_c  # noqa: F401


def a16_attrs(net, M, n, qmin=-32768, qmax=32767, zp_in=0, zp_out=0):
    return dict(zp_in=zp_in, zp_out=zp_out, qmin=qmin, qmax=qmax, float_out=0,
                M=net.tattr(M, "int32"), shift=net.tattr(n, "int32"))


def mults(rng, C, lo=-30, hi=6):
    """Per-channel (M, n) from reals 2^lo .. 2^hi: n from about 25 to 61 (both sides of 32)."""
    M, n = arith.quantize_multiplier(2.0 ** rng.uniform(lo, hi, C))
    return M.astype(np.int64), n.astype(np.int64)


def x16(rng, shape, extreme=False):
    x = rng.integers(-32768, 32768, shape).astype(np.int16)
    if extreme:       # whole rows at the int16 extremes: accumulators far beyond int32
        x.flat[: x.size // 2] = 32767
        x.flat[x.size // 2:] = -32768
    return x


def w8(rng, shape):
    w = rng.integers(-127, 128, shape).astype(np.int8)
    w.flat[0], w.flat[-1] = 127, -127
    return w


CONV = [   # x shape, w shape, strides, pads, dilations, group
    ((1, 3, 7, 9), (5, 3, 3, 3), [2, 1], [1, 0, 2, 1], [1, 2], 1),       # odd channels, odd sizes, asymmetric pads
    ((2, 5, 8, 8), (7, 5, 1, 1), [1, 1], [0, 0, 0, 0], [1, 1], 1),        # 1x1, batch 2
    ((1, 6, 12, 12), (3, 6, 3, 3), [1, 1], [2, 2, 2, 2], [2, 2], 1),      # dilated, padded
    ((1, 8, 9, 9), (12, 4, 3, 3), [2, 2], [1, 1, 1, 1], [1, 1], 2),       # grouped
    ((1, 7, 10, 10), (7, 1, 3, 3), [1, 1], [1, 1, 1, 1], [1, 1], 7),      # depthwise
    ((2, 3, 31), (4, 3, 5), [3], [2, 1], [2], 1),                         # 1-D
    ((1, 2, 4, 5, 6), (3, 2, 2, 3, 2), [1, 2, 1], [1, 0, 1, 0, 1, 1], [1, 1, 2], 1),   # 3-D
    ((1, 64, 6, 5), (3, 64, 3, 3), [1, 1], [1, 1, 1, 1], [1, 1], 1),      # K = 576 > 516: beyond int32
]


def conv_case(x, w, bias, M, n, st, pd, dl, cg, qmin=-32768, qmax=32767):
    ref = intref.conv_int8(x, 0, w, bias, M, n, 0, st, pd, dl, cg, qmin=qmin, qmax=qmax, wide=True)
    net = Net()
    xi, wi, bi = net.inp(x), net.const(w), net.const(bias.astype(np.int32))
    yi = net.out(np.int16, ref.shape)
    attrs = dict(kernel_shape=list(w.shape[2:]), strides=st, pads=pd, dilations=dl, group=cg,
                 **a16_attrs(net, M, n, qmin, qmax))
    return net.build("Conv", [xi, wi, bi], [yi], attrs), net, ref


@pytest.mark.parametrize("ci", range(len(CONV)))
@pytest.mark.parametrize("extreme", [False, True])
def test_conv_a16w8_matches_numpy(lib, ci, extreme):
    xs, ws, st, pd, dl, cg = CONV[ci]
    rng = np.random.default_rng(10 * ci + extreme)
    x, w = x16(rng, xs, extreme), w8(rng, ws)
    C = ws[0]
    M, n = mults(rng, C)
    bias = rng.integers(-(2**31) + 1, 2**31 - 1, C)
    for qmin, qmax in ((-32768, 32767), (0, 32767), (-5, 1000)):      # fused Relu / clip ranges
        art, net, ref = conv_case(x, w, bias, M, n, st, pd, dl, cg, qmin, qmax)
        got, kernels = run_c(lib, art, net.feeds, net.outs)
        assert kernels == ["dse_i16_conv__ref"], kernels
        assert got[0].tobytes() == ref.tobytes(), f"{int((got[0] != ref).sum())} of {ref.size} differ"


GEMM = [((3, 27), 27, 5), ((1, 70), 70, 9), ((4, 129), 129, 66), ((2, 1), 1, 1), ((2, 4096), 4096, 3)]


@pytest.mark.parametrize("gi", range(len(GEMM)))
@pytest.mark.parametrize("op,trans_b", [("Gemm", 1), ("Gemm", 0), ("MatMul", 0)])
def test_gemm_matmul_a16w8_matches_numpy(lib, gi, op, trans_b):
    xs, K, N = GEMM[gi]
    rng = np.random.default_rng(7 * gi + trans_b + (op == "MatMul"))
    if op == "MatMul":
        xs = (2,) + xs                                      # a batch axis
    x = x16(rng, xs, extreme=gi == 4)                       # K = 4096 at the extremes: |acc| ~ 2^34
    w = w8(rng, (N, K) if trans_b else (K, N))
    M, n = mults(rng, N)
    bias = rng.integers(-(1 << 30), 1 << 30, N)
    ref = intref.gemm_int8(x.reshape(-1, K), 0, w, bias, M, n, 0, trans_b, -32768, 32767, wide=True)
    ref = ref.reshape(xs[:-1] + (N,))
    net = Net()
    xi, wi, bi = net.inp(x), net.const(w), net.const(bias.astype(np.int32))
    yi = net.out(np.int16, ref.shape)
    attrs = a16_attrs(net, M, n)
    if op == "Gemm":
        attrs.update(transA=0, transB=trans_b, alpha=1.0, beta=1.0)
    got, kernels = run_c(lib, net.build(op, [xi, wi, bi], [yi], attrs), net.feeds, net.outs)
    assert kernels == [f"dse_i16_{op.lower()}__ref"], kernels
    assert got[0].tobytes() == ref.tobytes(), f"{int((got[0] != ref).sum())} of {ref.size} differ"


def test_wide_requantisation_every_shift(lib):
    """One MatMul column per shift n = 1..62 (M from 2^30 to 2^31 - 1, and (0, 62)), accumulators
    from 0 to about ±2^46 (K = 2^14 products of ±32768 * ±127, plus the bias): the C rule equals
    the exact one (Python integers)."""
    rng = np.random.default_rng(3)
    n = np.arange(1, 63, dtype=np.int64)
    M = rng.integers(2**30, 2**31, n.size).astype(np.int64)
    M[-1], M[0] = 0, 2**31 - 1
    N, K = n.size, 1 << 14
    rows = 20
    x = np.zeros((rows, K), np.int16)
    for r in range(rows):          # row r: values up to 2^(r-4), the last rows all at +-32767/-32768
        a = min(32767, 1 << max(0, r - 4))
        x[r] = rng.integers(-a, a + 1, K)
    x[-2], x[-1] = 32767, -32768
    w = rng.integers(-127, 128, (K, N)).astype(np.int8)
    w[:, :4] = 127                 # columns whose sums with the constant rows are ~±2^36
    bias = rng.integers(-(2**31) + 1, 2**31 - 1, N)
    ref = intref.matmul_int8(x, 0, w, bias, M, n, 0, -32768, 32767, wide=True)
    acc = x.astype(object) @ w.astype(object) + bias.astype(object)
    exact = np.vectorize(lambda a, m, s: max(-32768, min(32767, (int(a) * int(m) + (1 << (int(s) - 1))) >> int(s))),
                         otypes=[np.int64])(acc, M[None, :], n[None, :])
    assert np.array_equal(ref, exact)
    net = Net()
    xi, wi, bi = net.inp(x), net.const(w), net.const(bias.astype(np.int32))
    yi = net.out(np.int16, ref.shape)
    got, kernels = run_c(lib, net.build("MatMul", [xi, wi, bi], [yi], a16_attrs(net, M, n)), net.feeds, net.outs)
    assert got[0].tobytes() == ref.tobytes()


# -- int16 QuantizeLinear / DequantizeLinear --------------------------------------------------------

def test_quantize_dequantize_int16_match_numpy(lib):
    rng = np.random.default_rng(5)
    s = np.float32(0.0123)
    x = (rng.standard_normal(1000) * 200).astype(np.float32)
    x[:8] = np.array([0.5, 1.5, -0.5, -2.5, 1e9, -1e9, np.inf, -np.inf], np.float32) * s   # ties, saturation
    for zp in (0, -7):
        net = Net()
        xi = net.inp(x)
        si, zi = net.const(np.asarray(s, np.float32)), net.const(np.asarray(zp, np.int16))
        yi = net.out(np.int16, x.shape)
        got, kernels = run_c(lib, net.build("QuantizeLinear", [xi, si, zi], [yi], {"axis": 1, "saturate": 1}),
                             net.feeds, net.outs)
        assert kernels == ["dse_i16_quantize__ref"]
        want = arith.quantize16(x, s, zp)
        assert got[0].tobytes() == want.tobytes()
        net = Net()
        qi = net.inp(want)
        si, zi = net.const(np.asarray(s, np.float32)), net.const(np.asarray(zp, np.int16))
        yi = net.out(np.float32, x.shape)
        got, kernels = run_c(lib, net.build("DequantizeLinear", [qi, si, zi], [yi], {"axis": 1}), net.feeds, net.outs)
        assert kernels == ["dse_i16_dequantize__ref"]
        assert got[0].tobytes() == arith.dequantize(want, s, zp).tobytes()


# -- the loader refuses malformed int16 nodes --------------------------------------------------------

def _gemm16(rng, *, x_dtype=np.int16, w=None, bias_dtype=np.int32, zp_in=0, zp_out=0, qmax=32767, M=None,
            y_dtype=np.int16):
    K, N = 9, 5
    w = rng.integers(-127, 128, (N, K)).astype(np.int8) if w is None else w
    Mv, n = mults(rng, N)
    net = Net()
    xi = net.inp(np.zeros((2, K), x_dtype))
    wi, bi = net.const(w), net.const(np.zeros(N, bias_dtype))
    yi = net.out(y_dtype, (2, N))
    attrs = a16_attrs(net, Mv if M is None else M, n, qmax=qmax, zp_in=zp_in, zp_out=zp_out)
    attrs.update(transA=0, transB=1, alpha=1.0, beta=1.0)
    return net.build("Gemm", [xi, wi, bi], [yi], attrs)


@pytest.mark.parametrize("bad,words", [
    ({}, None),
    ({"zp_in": 3}, "zp_in = zp_out = 0"),
    ({"zp_out": -1}, "zp_in = zp_out = 0"),
    ({"qmax": 40000}, "[-32768, 32767]"),
    ({"M": np.full(5, -5, np.int64)}, "multipliers"),
    ({"bias_dtype": np.int8}, "int32 bias"),
    ({"x_dtype": np.int8}, "int16 x"),               # an int8 x with an int16 output: neither kind takes it
    ({"w": np.full((5, 9), -128, np.int8)}, "-128"),
])
def test_loader_refuses_malformed_a16w8(lib, bad, words):
    art = _gemm16(np.random.default_rng(1), **bad)
    st, msg, m, keep = load(lib, art.to_bytes())
    if words is None:
        assert st == 0, msg
        lib.dse_model_free(m)
        return
    assert st != 0 and words in msg, msg
    assert "gemm" in msg


def test_loader_refuses_malformed_int16_qdq(lib):
    net = Net()
    xi = net.inp(np.zeros(4, np.float32))
    si, zi = net.const(np.asarray(0.5, np.float32)), net.const(np.asarray(0, np.int8))   # int8 zero point
    yi = net.out(np.int16, (4,))
    st, msg, m, keep = load(lib, net.build("QuantizeLinear", [xi, si, zi], [yi], {"axis": 1}).to_bytes())
    assert st != 0 and "int16 zero point" in msg, msg
    net = Net()
    qi = net.inp(np.zeros(4, np.int16))
    si, zi = net.const(np.asarray(np.inf, np.float32)), net.const(np.asarray(0, np.int16))   # a scale of inf
    yi = net.out(np.float32, (4,))
    st, msg, m, keep = load(lib, net.build("DequantizeLinear", [qi, si, zi], [yi], {"axis": 1}).to_bytes())
    assert st != 0 and "finite float32 scale" in msg, msg
