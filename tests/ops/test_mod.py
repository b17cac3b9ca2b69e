"""Mod against onnxruntime: fmod=0 (divisor-signed, integer only), fmod=1 (C fmod)."""
import numpy as np
import pytest

from dsedge.errors import ModelError
from tests.onnx_check import check_op, const, make_model, run_dsedge

a = np.array([7, -7, 7, -7, 6, 0, -1], np.int64)
b = np.array([3, 3, -3, -3, 3, 4, 5], np.int64)


@pytest.mark.parametrize("opset", [10, 13])
@pytest.mark.parametrize("dtype", [np.int8, np.int32, np.int64])
def test_mod_int(opset, dtype):
    check_op("Mod", [a.astype(dtype), b.astype(dtype)], opset=opset)
    check_op("Mod", [a.astype(dtype), b.astype(dtype)], {"fmod": 1}, opset=opset)
    check_op("Mod", [a.astype(dtype).reshape(7, 1), const(np.array([2, -3], dtype))], opset=opset)


def test_mod_uint8():
    check_op("Mod", [np.array([7, 200, 255], np.uint8), np.array([2, 3, 7], np.uint8)])


@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64])
def test_mod_float_fmod(dtype):
    x = np.array([[7.5, -7.5, 5.25], [-0.5, 3.0, 1e-3]], dtype)
    check_op("Mod", [x, np.array([2, -2, 1.5], dtype)], {"fmod": 1})
    check_op("Mod", [x, np.array(0.75, dtype)], {"fmod": 1})


def test_mod_float_without_fmod_is_an_error():
    m = make_model("Mod", [np.ones(3, np.float32), np.ones(3, np.float32)])
    with pytest.raises(ModelError, match="Mod_0.*fmod=1"):
        run_dsedge(m, {"in0": np.ones(3, np.float32), "in1": np.ones(3, np.float32)})
