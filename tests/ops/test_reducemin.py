from tests.ops.reduce_cases import reduce_tests

test_forms, test_noop_with_empty_axes, test_edge_tensors, test_shape_rule = \
    reduce_tests("ReduceMin", 18, positive=False, ints=True)


def test_reduce_min_bool_opset20():
    import numpy as np
    from tests.onnx_check import check_op, const
    x = np.array([[True, True, False], [True, True, True]])
    check_op("ReduceMin", [x, const(np.array([1], np.int64))], opset=20)
