"""Frozen integer arithmetic (dsedge/quant/arith.py, docs/quant-arith.md).

Oracles: exact rationals (fractions.Fraction) for multipliers, biases and zero points;
onnxruntime's QuantizeLinear / DequantizeLinear for the float <-> int8 conversions.
"""
import json
import math
import os
from fractions import Fraction

import numpy as np
import pytest

from dsedge.errors import ModelError
from dsedge.quant import arith
from tests.onnx_check import const, make_model, run_ort

GOLDEN = os.path.join(os.path.dirname(__file__), "golden")


def test_quantize_multiplier_golden():
    cases = json.load(open(os.path.join(GOLDEN, "multipliers.json")))["cases"]
    reals = [float.fromhex(c["real"]) for c in cases]
    for r, c in zip(reals, cases):
        assert arith.quantize_multiplier(r) == (c["M"], c["n"]), c["real"]
    M, n = arith.quantize_multiplier(np.array(reals).reshape(2, -1))       # vectorised form
    assert M.dtype == np.int64 and M.shape == (2, len(reals) // 2)
    assert M.ravel().tolist() == [c["M"] for c in cases] and n.ravel().tolist() == [c["n"] for c in cases]


@pytest.mark.parametrize("seed", range(3))
def test_quantize_multiplier_accuracy_and_invariants(seed):
    r = 2.0 ** np.random.default_rng(seed).uniform(-31, 29, 500)
    M, n = arith.quantize_multiplier(r)
    assert ((M >= 2**30) & (M < 2**31)).all() and ((n >= 1) & (n <= 62)).all()
    for ri, mi, ni in zip(r, M, n):   # |M*2^-n - r| <= 2^-31 * 2^(e) / ... i.e. half a unit of M
        assert abs(Fraction(int(mi), 2 ** int(ni)) - Fraction(float(ri))) <= Fraction(1, 2 ** (int(ni) + 1))


def test_quantize_multiplier_rejects_bad_values():
    for bad in (-1.0, float("nan"), float("inf")):
        with pytest.raises(ValueError):
            arith.quantize_multiplier(bad)


def test_requantize_rounds_half_up_and_checks_ranges():
    # M*2^-n = 1/2: exact ties go towards +inf (2.5 -> 3, -2.5 -> -2)
    y = arith.requantize(np.array([5, -5, 3, -3, 1, -1]), 2**30, 31, 0)
    assert y.tolist() == [3, -2, 2, -1, 1, 0]
    assert arith.requantize(np.array([1000, -1000]), 2**30, 31, 10, -20, 20).tolist() == [20, -20]
    # per-channel along axis 0 of a (2, 3) accumulator
    y = arith.requantize(np.array([[10, 20, 30], [10, 20, 30]]), [2**30, 2**30], [31, 30], 0, axis=0)
    assert y.tolist() == [[5, 10, 15], [10, 20, 30]]
    with pytest.raises(ValueError):
        arith.requantize(np.array([2**33]), 2**30, 31, 0)
    with pytest.raises(ValueError):
        arith.requantize(np.array([1]), 2**30, 63, 0)


@pytest.mark.parametrize("lo,hi", [(-1.0, 3.0), (0.0, 5.0), (-7.0, 0.0), (2.0, 9.0), (-3e-5, 1e-5), (-1e4, 2.5e4),
                                   (0.0, 0.0), (3.0, 3.0), (-1e-45, 0.0)])
def test_choose_activation_qparams(lo, hi):
    s, zp = arith.choose_activation_qparams(lo, hi)
    assert isinstance(s, np.float32) and np.isfinite(s) and s > 0
    assert -128 <= zp <= 127 and isinstance(zp, int)
    assert arith.dequantize(np.int8(zp), s, zp) == 0                    # 0 exactly representable
    lo0, hi0 = min(lo, 0), max(hi, 0)
    if hi0 > lo0 and s > arith.ACT_SCALE_FLOOR:
        assert s == np.float32((hi0 - lo0) / 255)
        # the range is covered to within half a step at each end
        assert float(s) * (-128 - zp) <= lo0 + float(s) / 2 + 1e-12 * abs(lo0)
        assert float(s) * (127 - zp) >= hi0 - float(s) / 2 - 1e-12 * abs(hi0)
    if lo0 == 0 and hi0 > 0:
        assert zp == -128
    if hi0 == 0 and lo0 < 0 and s > arith.ACT_SCALE_FLOOR:
        assert zp == 127


def test_choose_activation_qparams_rejects_nan():
    with pytest.raises(ModelError, match="conv3"):
        arith.choose_activation_qparams(float("nan"), 1.0, where="conv3")
    with pytest.raises(ModelError):
        arith.choose_activation_qparams(0.0, float("inf"))


@pytest.mark.parametrize("opset", [13, 21])
def test_quantize_dequantize_match_onnxruntime(opset):
    s, zp = np.float32(0.05), np.int8(-3)
    # exact ties (k + 0.5) * s, extremes that saturate, random values
    x = np.concatenate([(np.arange(-20, 20) + 0.5) * s, [-100.0, 100.0, 0.0, -0.0],
                        np.random.default_rng(0).standard_normal(200) * 4]).astype(np.float32)
    q_ort = run_ort(make_model("QuantizeLinear", [x, const(s), const(zp)], opset=opset), {"in0": x})[0]
    q = arith.quantize(x, s, int(zp))
    np.testing.assert_array_equal(q, q_ort)
    d_ort = run_ort(make_model("DequantizeLinear", [q, const(s), const(zp)], opset=opset), {"in0": q})[0]
    d = arith.dequantize(q, s, int(zp))
    assert d.dtype == np.float32
    np.testing.assert_array_equal(d, d_ort)


def test_fake_quantize_in_place_equals_quantize_then_dequantize():
    rng = np.random.default_rng(12)
    x = (rng.standard_normal(50_000) * 3).astype(np.float32)
    x[:4] = [0.0, -0.0, 1e30, -1e30]                       # zero stays exact; far values clip
    for s, zp in [(0.01, -3), (0.05, 127), (0.2, -128), (np.float32(0.0123), 5)]:
        got = x.copy()
        arith.fake_quantize_(got, s, zp)
        assert np.array_equal(got, arith.dequantize(arith.quantize(x, s, zp), s, zp))


def test_uint8_int8_mapping_is_exact():
    q = np.arange(-128, 128).astype(np.int8)
    for zp in (-128, -3, 127):
        u, uzp = arith.int8_to_uint8(q, zp)
        assert u.dtype == np.uint8 and 0 <= uzp <= 255
        s = np.float32(0.37)
        d_ort = run_ort(make_model("DequantizeLinear", [u, const(s), const(np.uint8(uzp))], opset=13), {"in0": u})[0]
        np.testing.assert_array_equal(d_ort, arith.dequantize(q, s, zp))
        back, bzp = arith.uint8_to_int8(u, uzp)
        np.testing.assert_array_equal(back, q)
        assert bzp == zp


def test_quantize_weight_per_channel_axes():
    rng = np.random.default_rng(1)
    for shape, axis in [((6, 3, 3, 3), 0), ((4, 5, 2, 2), 1), ((17, 9), -1), ((9, 17), 0)]:
        w = (rng.standard_normal(shape) * rng.uniform(0.01, 3, shape[axis]).reshape(
            [-1 if i == axis % len(shape) else 1 for i in range(len(shape))])).astype(np.float32)
        w_q, s = arith.quantize_weight_per_channel(w, axis)
        assert w_q.dtype == np.int8 and s.dtype == np.float32 and s.shape == (shape[axis],)
        assert w_q.min() >= -127 and w_q.max() <= 127
        red = tuple(i for i in range(w.ndim) if i != axis % w.ndim)
        assert (np.abs(w_q).max(axis=red) == 127).all()                      # full range used per channel
        shp = [1] * w.ndim
        shp[axis] = -1
        err = np.abs(w_q * s.astype(np.float64).reshape(shp) - w)
        assert (err <= s.reshape(shp) * 0.5 * (1 + 1e-6)).all()


def test_weight_degenerate_channels_and_bias_bound():
    s_in = np.float32(0.02)
    w = np.ones((4, 8, 3, 3), np.float32) * 0.1
    w[1] = 0                                  # zeroed by BN folding, bias survives
    w[2] = 0                                  # zeroed, no bias
    w[3] = 1e-9                               # tiny weights, big bias
    b = np.array([0.5, 3.0, 0.0, 1e5], np.float32)
    K = 8 * 9
    w_q, s = arith.quantize_weight_per_channel(w, 0, s_in, b)
    assert s[2] == np.float32(2.0**-40) and (w_q[2] == 0).all()
    b_q = arith.quantize_bias(b, s_in, s)
    room = arith.accumulator_headroom(K)
    assert np.abs(b_q.astype(np.int64)).max() <= room
    assert arith.accumulator_bound_ok(K, b_q)
    # exact oracle: bias_q = round_half_even(b / (s_in * s_w)) and the bias-driven scales are tight
    for c in range(4):
        exact = Fraction(float(b[c])) / (Fraction(float(s_in)) * Fraction(float(s[c])))
        assert int(b_q[c]) == round(exact)
    # bias-driven scales are tight up to float32 rounding of the scale (relative 2^-23)
    assert abs(int(b_q[1])) >= room * (1 - 2.0**-23) and abs(int(b_q[3])) >= room * (1 - 2.0**-23)
    with pytest.raises(ValueError):
        arith.quantize_weight_per_channel(w, 0, None, b)
    with pytest.raises(ModelError):
        arith.quantize_weight_per_channel(np.array([[np.nan]], np.float32), 0)


def test_quantize_bias_overflow_names_node():
    with pytest.raises(ModelError, match="fc1"):
        arith.quantize_bias(np.array([1.0, 1e9], np.float32), 1e-3, np.array([1e-3, 1e-3], np.float32), where="fc1")


def test_fold_zero_point_exact_and_checked():
    rng = np.random.default_rng(2)
    w = rng.integers(-127, 128, (5, 4, 3)).astype(np.int8)
    b = rng.integers(-2**20, 2**20, 5).astype(np.int32)
    for zp in (-128, 0, 127):
        f = arith.fold_zero_point(b, zp, w, 0)
        assert f.dtype == np.int32
        assert f.tolist() == [int(b[c]) - zp * sum(int(v) for v in w[c].ravel()) for c in range(5)]
    f = arith.fold_zero_point(None, 3, w, -1)                  # axis -1, no bias
    assert f.tolist() == [-3 * sum(int(v) for v in w[..., c].ravel()) for c in range(3)]
    big = np.full((1, 70000), 127, np.int8)
    with pytest.raises(ModelError, match="folded bias"):
        arith.fold_zero_point(np.array([2**31 - 10], np.int32), -128, big, 0)


def test_accumulator_bound():
    K = 4096
    edge = 2**31 - 1 - K * 255 * 127
    assert arith.accumulator_bound_ok(K, np.array([edge, -5]))
    assert not arith.accumulator_bound_ok(K, np.array([-(edge + 1)]))
    kmax = (2**31 - 1) // (255 * 127)           # 66311
    assert arith.accumulator_bound_ok(kmax) and not arith.accumulator_bound_ok(kmax + 1)


def test_make_table_against_exact_loop():
    s_in, zp_in, s_out, zp_out = np.float32(0.04), -10, np.float32(0.008), 3
    t = arith.make_table(np.tanh, s_in, zp_in, s_out, zp_out)
    want = [max(-128, min(127, zp_out + round(math.tanh(float(s_in) * (q - zp_in)) / float(s_out))))
            for q in range(-128, 128)]
    assert t.dtype == np.int8 and t.tolist() == want
    t = arith.make_table(lambda x: x * 0 + 2.5, 1.0, 0, 1.0, 0)    # rint: 2.5 -> 2 (half to even)
    assert (t == 2).all()
    t = arith.make_table(lambda x: np.where(x > 0, np.inf, -np.inf), 1.0, 0, 1.0, 0)
    assert t[0] == -128 and t[-1] == 127
    with pytest.raises(ModelError, match="sqrt1"):
        arith.make_table(np.sqrt, 0.1, 0, 0.1, 0, where="sqrt1")


def test_add_params_share_n():
    for sa, sb, so in [(0.05, 0.003, 0.06), (0.1, 0.1, 0.1), (2.0**-20, 2.0**4, 1.0), (1e-3, 1.0, 1e12)]:
        Ma, Mb, n = arith.add_params(sa, sb, so)
        f = lambda v: Fraction(float(np.float32(v)))  # noqa: E731
        for m, s in ((Ma, sa), (Mb, sb)):
            assert 0 <= m < 2**31
            if m:
                assert abs(Fraction(m, 2**n) - f(s) / f(so)) <= Fraction(1, 2 ** (n + 1))
    assert arith.add_params(1e-3, 1.0, 1e12) == (0, 0, 62)
    Ma, Mb, n = arith.add_params(2.0**-20, 2.0**4, 1.0)
    assert (Ma, Mb, n) == (64, 2**30, 26)    # 2^-20 on the scale of 16 = 2^30 * 2^-26


def test_avgpool_multipliers_one_per_count():
    m = arith.avgpool_multipliers(0.1, 0.02, np.array([[4, 6, 4], [6, 9, 6]]))
    assert sorted(m) == [4, 6, 9]
    for c, (M, n) in m.items():
        exact = Fraction(float(np.float32(0.1))) / (Fraction(float(np.float32(0.02))) * c)
        assert abs(Fraction(M, 2**n) - exact) <= Fraction(1, 2 ** (n + 1))


def test_activation_clamp_and_rescale():
    assert arith.activation_clamp(None, 0.1, 5) == (-128, 127)
    assert arith.activation_clamp("Relu", 0.1, -20) == (-20, 127)
    assert arith.activation_clamp("Relu6", 0.05, -128) == (-128, -8)
    assert arith.activation_clamp("Relu6", 0.01, -128) == (-128, 127)
    with pytest.raises(ValueError):
        arith.activation_clamp("Gelu", 0.1, 0)
    assert arith.rescale_multiplier(0.5, 0.5) == (2**30, 30)
