"""DynamicQuantizeLinear against onnxruntime (opset 11+): mixed signs, all positive, all negative,
all zero, ties."""
import numpy as np
import pytest

from tests.onnx_check import check_op

rng = np.random.default_rng(2)


@pytest.mark.parametrize("opset", [11, 13, 21])
@pytest.mark.parametrize("case", ["mixed", "positive", "negative", "zeros", "const", "wide"])
def test_dynamic_quantize_linear(opset, case):
    x = {
        "mixed": rng.standard_normal((3, 17)).astype(np.float32),
        "positive": rng.uniform(0.5, 6, (2, 5, 5)).astype(np.float32),
        "negative": -rng.uniform(0.1, 2, (7,)).astype(np.float32),
        "zeros": np.zeros((4, 4), np.float32),
        "const": np.full((3,), 2.5, np.float32),
        "wide": (rng.standard_normal((1, 1, 64, 33)) * 1e3).astype(np.float32),
    }[case]
    check_op("DynamicQuantizeLinear", [x], opset=opset, n_outputs=3, rtol=0, atol=0)
