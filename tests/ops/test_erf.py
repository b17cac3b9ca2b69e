"""Erf against onnxruntime (opsets 9, 13; float32 within 1e-6) and math.erf
(float64 to ~1e-14; onnxruntime has no float64 Erf)."""
import math

import numpy as np
import pytest

from dsedge.ops.elementwise import erf64
from tests.onnx_check import check_op, const


@pytest.mark.parametrize("opset", [9, 13])
def test_erf_float32(opset):
    x = np.linspace(-6, 6, 2401, dtype=np.float32).reshape(7, 7, 49)
    check_op("Erf", [x], opset=opset, rtol=1e-6, atol=1e-6)
    check_op("Erf", [np.array(0.3, np.float32)], opset=opset, rtol=1e-6, atol=1e-6)
    check_op("Erf", [np.array([1e-30, -1e-8, 2.4999, 2.5, 2.5001, 50], np.float32)], opset=opset, rtol=1e-6, atol=0)


def test_erf_specials():
    check_op("Erf", [const(np.array([np.inf, -np.inf, np.nan, -0.0], np.float32))])


def test_erf64_matches_math_erf():
    x = np.concatenate([np.linspace(-9, 9, 20001), [1e-300, 2.5, -2.5, 1e3]])
    want = np.array([math.erf(v) for v in x])
    np.testing.assert_allclose(erf64(x), want, rtol=1e-14, atol=1e-16)
