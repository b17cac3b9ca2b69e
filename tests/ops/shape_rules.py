"""Test helper: apply an op's declared shape rule to symbolic/unknown input shapes."""
import numpy as np

from dsedge.ir import TensorInfo
from dsedge.ops import REGISTRY


def rule(op_type, shapes, attrs=None, consts=None, dtype=np.float32):
    """Output shapes of `op_type`'s infer rule; shapes may hold str/None dims, a shape "?" is
    an unknown rank, None an absent input; consts maps input position -> constant value."""
    consts = consts or {}
    infos = [None if s is None and k not in consts else
             TensorInfo(np.asarray(consts[k]).dtype if k in consts else np.dtype(dtype),
                        tuple(np.shape(consts[k])) if k in consts else (None if s == "?" else s))
             for k, s in enumerate(shapes)]
    vals = [None if k not in consts else np.asarray(consts[k]) for k in range(len(shapes))]
    d = REGISTRY.get(op_type)
    assert d.infer is not None, f"{op_type} has no explicit shape rule"
    return [i.shape for i in d.infer(attrs or {}, infos, vals)]
