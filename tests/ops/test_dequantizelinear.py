"""DequantizeLinear against onnxruntime: per-tensor (10), per-axis (13), int32/float16 (19), int16 (21)."""
import numpy as np
import pytest

from dsedge.errors import UnsupportedOpError
from tests.onnx_check import check_op, const, make_model, run_dsedge

rng = np.random.default_rng(1)


@pytest.mark.parametrize("opset", [10, 13, 19, 21])
@pytest.mark.parametrize("dtype", [np.uint8, np.int8])
def test_per_tensor(opset, dtype):
    info = np.iinfo(dtype)
    x = rng.integers(info.min, info.max + 1, (2, 3, 4)).astype(dtype)
    check_op("DequantizeLinear", [x, const(np.float32(0.037)), const(np.array(info.min + 3, dtype))], opset=opset)
    check_op("DequantizeLinear", [x, const(np.float32(1.5))], opset=opset)          # zero point absent


@pytest.mark.parametrize("axis", [0, 1, -1])
def test_per_axis(axis):
    x = rng.integers(-128, 128, (3, 4, 6)).astype(np.int8)
    c = x.shape[axis]
    check_op("DequantizeLinear", [x, const(rng.uniform(0.001, 1, c).astype(np.float32)),
                                  const(rng.integers(-5, 5, c).astype(np.int8))], {"axis": axis}, opset=13)


def test_int32_bias_float16_int16():
    b = rng.integers(-100000, 100000, (16,)).astype(np.int32)
    check_op("DequantizeLinear", [b, const(np.float32(1e-4))], opset=13)
    x = rng.integers(0, 256, (5, 3)).astype(np.uint8)
    check_op("DequantizeLinear", [x, const(np.float16(0.02)), const(np.uint8(120))], opset=19)
    x16 = rng.integers(-30000, 30000, (5, 3)).astype(np.int16)
    check_op("DequantizeLinear", [x16, const(np.float32(0.001)), const(np.int16(-7))], opset=21)


def test_block_size_is_reported():
    m = make_model("DequantizeLinear", [np.zeros((4, 4), np.int8), const(np.ones((4, 2), np.float32))],
                   {"axis": 1, "block_size": 2}, opset=21)
    with pytest.raises(UnsupportedOpError, match="block_size"):
        run_dsedge(m, {"in0": np.zeros((4, 4), np.int8)})
