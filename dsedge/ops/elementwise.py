"""Ops of the elementwise family (see dsedge/ops/__init__.py for id ranges)."""
from __future__ import annotations

import numpy as np

from .registry import ACT, BIAS, PARAM, WEIGHT, QuantRule, op  # noqa: F401


def _unary(fn):
    """Wrap a float function so its output keeps the input dtype."""
    def ref(x):
        return np.asarray(fn(x)).astype(x.dtype, copy=False)
    ref.__name__ = fn.__name__
    return ref


@op("Relu", 100, infer=None, quant=QuantRule("table"))
def relu(x):
    return np.maximum(x, np.zeros((), x.dtype))
