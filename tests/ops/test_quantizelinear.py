"""QuantizeLinear against onnxruntime: per-tensor (10), per-axis (13), saturate (19), output_dtype (21)."""
import numpy as np
import pytest

from dsedge.errors import UnsupportedOpError
from tests.onnx_check import check_op, const, make_model, run_dsedge

rng = np.random.default_rng(0)


@pytest.mark.parametrize("opset", [10, 13, 19, 21])
@pytest.mark.parametrize("zp", [np.uint8(128), np.int8(-3), np.uint8(0), np.int8(127), None])
def test_per_tensor(opset, zp):
    x = (rng.standard_normal((2, 3, 5)) * 4).astype(np.float32)
    x.flat[:6] = [0.5, 1.5, 2.5, -0.5, -1.5, 1000.0]   # ties round to even; saturation
    inputs = [x, const(np.float32(0.5 if opset < 13 else 0.05))] + ([] if zp is None else [const(np.array(zp))])
    check_op("QuantizeLinear", inputs, opset=opset)


@pytest.mark.parametrize("opset", [13, 21])
@pytest.mark.parametrize("axis", [0, 1, -1])
def test_per_axis(opset, axis):
    x = (rng.standard_normal((3, 4, 5)) * 3).astype(np.float32)
    c = x.shape[axis]
    scale = rng.uniform(0.01, 0.2, c).astype(np.float32)
    zp = rng.integers(-20, 20, c).astype(np.int8)
    check_op("QuantizeLinear", [x, const(scale), const(zp)], {"axis": axis}, opset=opset)


def test_int16_and_output_dtype():
    x = (rng.standard_normal((4, 7)) * 300).astype(np.float32)
    check_op("QuantizeLinear", [x, const(np.float32(0.01)), const(np.int16(5))], opset=21)
    check_op("QuantizeLinear", [x, const(np.float32(0.7))], {"output_dtype": 3}, opset=21)   # int8


def test_scalar_input_and_float16():
    check_op("QuantizeLinear", [np.float32(3.3), const(np.float32(0.1)), const(np.uint8(7))], opset=13)
    x = (rng.standard_normal((2, 8)) * 2).astype(np.float16)
    check_op("QuantizeLinear", [x, const(np.float16(0.03)), const(np.int8(1))], opset=19)


def test_block_size_is_reported():
    m = make_model("QuantizeLinear", [np.zeros((4, 4), np.float32), const(np.ones((4, 2), np.float32)),
                                      const(np.zeros((4, 2), np.int8))], {"axis": 1, "block_size": 2}, opset=21)
    with pytest.raises(UnsupportedOpError, match="block_size"):
        run_dsedge(m, {"in0": np.zeros((4, 4), np.float32)})


@pytest.mark.parametrize("zp", [np.int8(-3), np.uint8(200), None])
def test_nan_gives_the_zero_point(zp):
    """NaN quantises as 0.0, i.e. to the zero point, in the numpy op, the quantiser's arithmetic and
    the C kernels alike (onnxruntime's result for NaN is CPU-dependent; the spec leaves it open):
    infinities saturate."""
    from dsedge.ops.quantized import quantize_linear
    from dsedge.quant.arith import quantize
    x = np.float32([np.nan, -np.nan, np.inf, -np.inf, 0.0, 1.0])
    y = quantize_linear(x, np.float32(0.5), zp)
    z = 0 if zp is None else int(zp)
    lo, hi = (0, 255) if zp is None or zp.dtype == np.uint8 else (-128, 127)
    assert y.tolist() == [z, z, hi, lo, z, min(z + 2, hi)]
    if zp is not None and zp.dtype == np.int8:
        assert quantize(x, 0.5, int(zp)).tolist() == y.tolist()
