"""Ops of the reduce family (see dsedge/ops/__init__.py for id ranges)."""
from __future__ import annotations

import numpy as np

from .registry import ACT, BIAS, PARAM, WEIGHT, QuantRule, op  # noqa: F401
