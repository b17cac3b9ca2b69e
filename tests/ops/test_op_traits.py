"""Op traits (dsedge/ops/registry.py): consistent with each other and with what they promise."""
import numpy as np

from dsedge.ops import REGISTRY


def test_traits_are_consistent():
    ops = REGISTRY.all()
    for d in ops:
        if d.in_place:
            assert d.elementwise and not d.view, d.name
        if d.view:   # its output is its input's bytes: int8 moves them with the input's qparams
            assert d.quant is not None and d.quant.kind == "bytes", d.name
    assert [d.name for d in ops if d.data_dependent] == ["NonZero"]


def test_view_ops_return_their_input_bytes():
    x = np.arange(24, dtype=np.float32).reshape(1, 2, 3, 4)
    args = {"Reshape": [x, np.array([2, 12])], "Flatten": [x], "Squeeze": [x, np.array([0])],
            "Unsqueeze": [x, np.array([0])], "Identity": [x], "Dropout": [x]}
    assert {d.name for d in REGISTRY.all() if d.view} == set(args)
    for name, a in args.items():
        y = REGISTRY.get(name).call(a, {})[0]
        assert np.asarray(y).tobytes() == x.tobytes(), name
