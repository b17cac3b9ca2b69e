import numpy as np
import pytest
from onnx import TensorProto as T, helper

from dsedge.errors import UnsupportedOpError
from tests.onnx_check import assert_close, check_op, make_model, run_dsedge, run_ort
from tests.ops.shape_rules import rule

F = np.array([-2.7, -1.5, -0.5, 0.0, 0.4, 1.5, 2.5, 100.9], np.float32)


@pytest.mark.parametrize("opset", [13, 19, 21])
@pytest.mark.parametrize("to", [T.INT32, T.INT64, T.INT8, T.INT16, T.BOOL, T.FLOAT16, T.DOUBLE, T.FLOAT])
def test_cast_from_float_truncates(opset, to):
    check_op("Cast", [F], {"to": to}, opset=opset)


@pytest.mark.parametrize("src", [np.array([0, 3, 255], np.uint8), np.array([-5, 0, 2**40], np.int64),
                                 np.array([[True, False]]), np.array(7, np.int32), np.zeros((0, 2), np.float64)])
@pytest.mark.parametrize("to", [T.FLOAT, T.INT64, T.BOOL, T.UINT8, T.DOUBLE])
def test_cast_other_sources(src, to):
    if to == T.UINT8 and src.dtype == np.int64:
        src = np.array([0, 1, 200], np.int64)
    check_op("Cast", [src], {"to": to}, opset=13)


def _roundtrip_fp8(to, saturate):
    """Cast float32 -> float8 -> float32 as two nodes: onnxruntime cannot hand out float8 arrays."""
    nodes = [helper.make_node("Cast", ["x"], ["q"], to=to, saturate=saturate),
             helper.make_node("Cast", ["q"], ["y"], to=T.FLOAT)]
    g = helper.make_graph(nodes, "t", [helper.make_tensor_value_info("x", T.FLOAT, [7])],
                          [helper.make_tensor_value_info("y", T.FLOAT, None)])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 19)])
    m.ir_version = 9
    return m


@pytest.mark.parametrize("to", [T.FLOAT8E4M3FN, T.FLOAT8E5M2])
@pytest.mark.parametrize("saturate", [0, 1])
def test_cast_float8_saturate_opset19(to, saturate):
    x = {"x": np.array([0.3, -1.7, 300.0, -1e5, 1e9, 3e38, -57344.0], np.float32)}
    m = _roundtrip_fp8(to, saturate)
    assert_close(run_dsedge(m, x)[0][0], run_ort(m, x)[0], what=f"fp8 to={to} saturate={saturate}")


def test_cast_to_string_is_refused():
    m = make_model("Cast", [F], {"to": T.STRING}, opset=13)
    with pytest.raises(UnsupportedOpError, match="STRING"):
        run_dsedge(m, {"in0": F})


def test_cast_shape_rule():
    assert rule("Cast", [("N", 3)], {"to": T.INT64}) == [("N", 3)]
