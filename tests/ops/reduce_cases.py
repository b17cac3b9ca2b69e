"""Shared cases for the Reduce* op tests: every opset form, axes, keepdims, empty axes."""
import numpy as np
import pytest

from tests.onnx_check import check_op, const
from tests.ops.shape_rules import rule

X = np.random.default_rng(0).standard_normal((2, 3, 4)).astype(np.float32)
AXES = [None, [], [0], [-1], [0, 2], [1, -3, 2]]


def check_reduce(op_type, opset, axes, keepdims, noop=None, x=X, axes_as_input=None, **kw):
    """One Reduce* node; axes go into the attribute or the input depending on the opset form."""
    attrs = {"keepdims": keepdims}
    ins = [x]
    if axes_as_input:
        if noop is not None:
            attrs["noop_with_empty_axes"] = noop
        if axes is not None:
            ins.append(const(np.array(axes, np.int64)))
    elif axes:  # an empty `axes` attribute is not valid ONNX before the input form
        attrs["axes"] = axes
    return check_op(op_type, ins, attrs, opset=opset, **kw)


def reduce_tests(op_type, since, positive=False, ints=True):
    """Parametrised tests for one Reduce* op whose axes became an input at opset `since`."""
    old = 11 if since == 13 else 13
    x = np.abs(X) + 0.5 if positive else X

    @pytest.mark.parametrize("opset", [old, since, 21] if since < 21 else [old, since])
    @pytest.mark.parametrize("axes", AXES)
    @pytest.mark.parametrize("keepdims", [0, 1])
    def test_forms(opset, axes, keepdims):
        check_reduce(op_type, opset, axes, keepdims, x=x, axes_as_input=opset >= since, rtol=1e-4)

    @pytest.mark.parametrize("noop", [0, 1])
    def test_noop_with_empty_axes(noop):
        check_reduce(op_type, since, [], 1, noop, x=x, axes_as_input=True)
        check_reduce(op_type, since, None, 0, noop, x=x, axes_as_input=True)

    def test_edge_tensors():
        check_reduce(op_type, since, [1], 1, x=np.zeros((2, 0, 3), np.float32), axes_as_input=True)  # empty set
        check_reduce(op_type, since, [0], 0, x=np.zeros((0, 3), np.float32), axes_as_input=True)
        check_reduce(op_type, since, None, 0, x=np.array(1.5, np.float32), axes_as_input=True)   # 0-d
        check_reduce(op_type, since, [0], 1, x=x.astype(np.float64), axes_as_input=True, rtol=1e-4)
        if ints:
            xi = (np.arange(-6, 6).reshape(3, 4) % 5 + (1 if positive else -2)).astype(np.int64)
            check_reduce(op_type, since, [1], 0, x=xi, axes_as_input=True)
            check_reduce(op_type, since, [0], 1, x=xi.astype(np.int32), axes_as_input=True)

    def test_shape_rule():
        c = {1: np.array([1])}
        assert rule(op_type, [("N", "T", 4), None], {"keepdims": 1}, c) == [("N", 1, 4)]
        assert rule(op_type, [("N", "T", 4), None], {"keepdims": 0}, c) == [("N", 4)]
        assert rule(op_type, [("N", 3)], {"keepdims": 0}) == [()]
        assert rule(op_type, [("N", 3), (1,)], {"keepdims": 1}) == [(None, None)]
        assert rule(op_type, [("N", 3), None], {"noop_with_empty_axes": 1}, {1: np.array([], np.int64)}) == [("N", 3)]

    return test_forms, test_noop_with_empty_axes, test_edge_tensors, test_shape_rule
