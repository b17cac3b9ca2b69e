"""Gelu (opset 20) against onnxruntime: approximate none|tanh, an unsupported value."""
import numpy as np
import pytest

from dsedge.errors import ModelError
from tests.onnx_check import check_op, make_model, run_dsedge

rng = np.random.default_rng(4)


@pytest.mark.parametrize("approx", [None, "none", "tanh"])
def test_gelu(approx):
    attrs = {} if approx is None else {"approximate": approx}
    x = (rng.standard_normal((2, 3, 17)) * 4).astype(np.float32)
    check_op("Gelu", [x], attrs, opset=20, rtol=1e-6, atol=1e-6)
    check_op("Gelu", [np.array(-0.7, np.float32)], attrs, opset=20)
    if approx == "tanh":  # onnxruntime has no float64 Erf, so only the tanh form runs in double
        check_op("Gelu", [rng.standard_normal((5,))], attrs, opset=21, rtol=1e-6, atol=1e-9)


def test_gelu_bad_approximate_names_the_node():
    m = make_model("Gelu", [np.ones(2, np.float32)], {"approximate": "fast"}, opset=20)
    with pytest.raises(ModelError, match="Gelu_0.*'fast'"):
        run_dsedge(m, {"in0": np.ones(2, np.float32)})
