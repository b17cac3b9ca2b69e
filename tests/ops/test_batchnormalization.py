"""BatchNormalization (inference form) at opsets 7, 9, 15; training_mode is refused."""
import numpy as np
import pytest

from dsedge.errors import UnsupportedOpError
from tests.onnx_check import check_op, const, make_model, run_dsedge


def _params(c, seed=0):
    rng = np.random.default_rng(seed)
    return (rng.standard_normal(c).astype(np.float32), rng.standard_normal(c).astype(np.float32),
            rng.standard_normal(c).astype(np.float32), rng.uniform(0.1, 2, c).astype(np.float32))


@pytest.mark.parametrize("opset,shape", [(9, (2, 3, 4, 5)), (15, (2, 3, 4, 5)), (15, (3, 3)), (15, (1, 3, 2, 3, 4))])
def test_batchnorm(opset, shape):
    x = np.random.default_rng(1).standard_normal(shape).astype(np.float32)
    check_op("BatchNormalization", [x] + [const(p) for p in _params(3)], {"epsilon": 1e-3}, opset=opset)


def test_batchnorm_opset7_spatial():
    x = np.random.default_rng(2).standard_normal((2, 4, 3, 3)).astype(np.float32)
    check_op("BatchNormalization", [x] + [const(p) for p in _params(4)], {"spatial": 1}, opset=7)


def test_batchnorm_training_mode_refused():
    x = np.zeros((1, 2, 2, 2), np.float32)
    m = make_model("BatchNormalization", [x] + [const(p) for p in _params(2)], {"training_mode": 1}, opset=15)
    with pytest.raises(UnsupportedOpError, match="training_mode"):
        run_dsedge(m, {"in0": x})
