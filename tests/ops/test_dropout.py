"""Dropout in inference: identity with an all-true mask; ratio attribute (opset 7/10) and input
(opset 12/13); training_mode=True is refused."""
import numpy as np
import pytest

from dsedge.errors import UnsupportedOpError
from tests.onnx_check import assert_close, check_op, const, make_model, run_dsedge, run_ort

X = np.random.default_rng(0).standard_normal((2, 3, 4)).astype(np.float32)


@pytest.mark.parametrize("opset", [10, 12, 13])
def test_dropout(opset):
    if opset < 12:
        # onnxruntime's Dropout-10 kernel returns an all-false mask; dsedge returns the inference
        # mask of opset 12+ (all kept = true) for every opset, so only the data is compared there.
        m = make_model("Dropout", [X], {"ratio": 0.3}, opset=opset, n_outputs=2)
        (exp, _), (got, mask) = run_ort(m, {"in0": X}), run_dsedge(m, {"in0": X})[0]
        assert_close(got, exp)
        assert mask.dtype == bool and mask.shape == X.shape and mask.all()
    else:
        check_op("Dropout", [X, const(np.float32(0.3))], opset=opset, n_outputs=2)
        check_op("Dropout", [X, const(np.float32(0.3)), const(np.bool_(False))], opset=opset, n_outputs=2)


def test_dropout_opset7_single_output():
    check_op("Dropout", [X], {"ratio": 0.5}, opset=7)


def test_dropout_training_refused():
    m = make_model("Dropout", [X, const(np.float32(0.3)), np.bool_(True)], opset=13, n_outputs=2)
    with pytest.raises(UnsupportedOpError, match="training_mode"):
        run_dsedge(m, {"in0": X, "in2": np.bool_(True)})
