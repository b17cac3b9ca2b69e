"""Ops of the tensor family (see dsedge/ops/__init__.py for id ranges)."""
from __future__ import annotations

import numpy as np

from .registry import ACT, BIAS, PARAM, WEIGHT, QuantRule, op  # noqa: F401


@op("Identity", 200, quant=QuantRule("bytes"))
def identity(x):
    return x
