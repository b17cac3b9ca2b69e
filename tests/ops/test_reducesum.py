from tests.ops.reduce_cases import reduce_tests

test_forms, test_noop_with_empty_axes, test_edge_tensors, test_shape_rule = \
    reduce_tests("ReduceSum", 13, positive=False, ints=True)
