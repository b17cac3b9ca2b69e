"""Ops of the elementwise family: arithmetic, activations, comparisons, logic (ids 100-199).

Every reference keeps the input dtype of its result (float32 stays float32); a few compute
internally in float64 where numpy has no float32 routine (Erf, Gelu) or where onnxruntime
does (integer Pow), then cast back. Semantics follow onnxruntime's CPU kernels, which are
the oracle in tests/ops:
  * integer Div truncates toward zero (C division), not numpy's floor division;
  * integer Pow is computed in double and truncated to the base's type (2 ** -1 == 0);
  * Mod with fmod=0 is the divisor-signed (Python) remainder and is integer-only; fmod=1 is C fmod;
  * Min/Max/Clip propagate NaN; Clip with min > max gives max everywhere;
  * Round is half-to-even.
Erf has no numpy routine: `erf64` below is a float64 implementation accurate to ~1e-15
(a positive-term series below |x| = 2.5, the erfc continued fraction above it).

Binary and variadic ops broadcast (numpy rules, symbolic dims through `elementwise_infer`);
comparisons and IsNaN/IsInf output bool. Clip before opset 11 carried min/max as
attributes; its `upgrade` turns them into constant inputs.
"""
from __future__ import annotations

import math
from functools import reduce

import numpy as np

from ..ir import TensorInfo
from .registry import (ACT, BIAS, PARAM, WEIGHT, QuantRule, act_fn, broadcast_shapes,  # noqa: F401
                       elementwise_infer, op, same_infer)

TABLE = QuantRule("table")
_BOOL = np.dtype(bool)


def _unary(fn):
    """Wrap a float function so its output keeps the input dtype."""
    def ref(x):
        return np.asarray(fn(x)).astype(x.dtype, copy=False)
    ref.__name__ = fn.__name__
    return ref


def _binary(fn):
    """A two-input reference from a numpy ufunc (signature (a, b) for the registry)."""
    def ref(a, b):
        return np.asarray(fn(a, b))
    ref.__name__ = fn.__name__
    return ref


def _c(x, v):
    """Attribute value `v` as a 0-d array of x's dtype (no silent upcast)."""
    return np.asarray(v, dtype=x.dtype)


def bool_infer(attrs, infos, consts):
    """Broadcasting shape rule for ops that output bool (comparisons, IsNaN, IsInf)."""
    return [TensorInfo(_BOOL, broadcast_shapes(*[i.shape for i in infos if i is not None]))]


def where_infer(attrs, infos, consts):
    return [TensorInfo(infos[1].dtype, broadcast_shapes(*[i.shape for i in infos]))]


# -- erf in float64 ------------------------------------------------------------------------

_SQRT_PI = math.sqrt(math.pi)


def erf64(x) -> np.ndarray:
    """erf in float64 to ~1e-15 (numpy has none; math.erf is scalar-only)."""
    x = np.asarray(x, dtype=np.float64)
    a = np.abs(x)
    out = np.empty_like(a)
    small = a < 2.5
    # erf(s) = 2/sqrt(pi) exp(-s^2) sum_n (2 s^2)^n s / (1*3*...*(2n+1)): all terms positive
    s = a[small]
    s2 = s * s
    term, total = s.copy(), s.copy()
    for n in range(1, 60):
        term = term * (2.0 * s2 / (2 * n + 1))
        total += term
    out[small] = (2.0 / _SQRT_PI) * np.exp(-s2) * total
    # erfc(b) = exp(-b^2)/sqrt(pi) / (b + (1/2)/(b + 1/(b + (3/2)/(b + ...)))), evaluated backwards
    b = a[~small]
    f = b.copy()
    for k in range(60, 0, -1):
        f = b + (k / 2.0) / f
    out[~small] = 1.0 - np.exp(-b * b) / (_SQRT_PI * f)
    return np.copysign(out, x)  # NaN stays NaN, inf -> 1


# -- arithmetic ------------------------------------------------------------------------------

@op("Relu", 100, infer=same_infer, quant=TABLE, elementwise=True, in_place=True)
def relu(x):
    return np.maximum(x, np.zeros((), x.dtype))


@op("Add", 101, infer=elementwise_infer, quant=QuantRule("add", (ACT, ACT)), elementwise=True, in_place=True,
    commutative=True)
def add(a, b):
    return np.add(a, b)


@op("Sub", 102, infer=elementwise_infer, quant=QuantRule("add", (ACT, ACT)), elementwise=True, in_place=True)
def sub(a, b):
    return np.subtract(a, b)


@op("Mul", 103, infer=elementwise_infer, quant=QuantRule("mul", (ACT, ACT)), elementwise=True, in_place=True,
    commutative=True)
def mul(a, b):
    return np.multiply(a, b)


@op("Div", 104, infer=elementwise_infer, elementwise=True, in_place=True)
def div(a, b):
    if a.dtype.kind in "iu":  # C semantics: truncate toward zero
        q = np.floor_divide(a, b)
        fix = (np.remainder(a, b) != 0) & ((a < 0) != (b < 0))
        return (q + fix).astype(a.dtype, copy=False)
    return np.divide(a, b)


@op("Pow", 105, infer=elementwise_infer, elementwise=True, in_place=True)
def pow_(x, y):
    if x.dtype.kind == "f":
        ct = np.result_type(x, y) if y.dtype.kind == "f" else x.dtype
    else:  # integer base: onnxruntime computes in double and truncates
        ct = np.float64
    return np.power(x.astype(ct, copy=False), y.astype(ct, copy=False)).astype(x.dtype)


@op("Mod", 145, infer=elementwise_infer, elementwise=True)
def mod(a, b, *, fmod=0):
    if fmod:
        return np.fmod(a, b)
    if a.dtype.kind == "f":
        raise ValueError("Mod with fmod=0 is integer-only (ONNX requires fmod=1 for floating-point inputs)")
    return np.mod(a, b)


@op("Sum", 119, infer=elementwise_infer, elementwise=True, in_place=True)
def sum_(x, *rest):
    return reduce(np.add, (x, *rest))


@op("Mean", 120, infer=elementwise_infer, elementwise=True)
def mean(x, *rest):
    return (reduce(np.add, (x, *rest)) / _c(x, 1 + len(rest))).astype(x.dtype, copy=False)


@op("Min", 117, infer=elementwise_infer, quant=QuantRule("minmax"), elementwise=True, in_place=True)
def min_(x, *rest):
    return reduce(np.minimum, (x, *rest))


@op("Max", 118, infer=elementwise_infer, quant=QuantRule("minmax"), elementwise=True, in_place=True)
def max_(x, *rest):
    return reduce(np.maximum, (x, *rest))


# -- unary math ------------------------------------------------------------------------------

for _name, _id, _fn in [("Sqrt", 106, np.sqrt), ("Exp", 107, np.exp), ("Log", 108, np.log),
                        ("Neg", 110, np.negative), ("Abs", 111, np.abs), ("Reciprocal", 112, np.reciprocal),
                        ("Floor", 113, np.floor), ("Ceil", 114, np.ceil), ("Round", 115, np.round),
                        ("Sign", 116, np.sign), ("Tanh", 132, np.tanh), ("Sin", 133, np.sin),
                        ("Cos", 134, np.cos)]:
    op(_name, _id, infer=same_infer, quant=TABLE, elementwise=True, in_place=True)(_unary(_fn))


@op("Erf", 109, infer=same_infer, quant=TABLE, elementwise=True, in_place=True)
def erf(x):
    return erf64(x).astype(x.dtype)


# -- activations -----------------------------------------------------------------------------

@op("LeakyRelu", 121, infer=same_infer, quant=TABLE, elementwise=True, in_place=True)
def leaky_relu(x, *, alpha=0.01):
    return np.where(x >= 0, x, x * _c(x, alpha))


@op("PRelu", 122, infer=elementwise_infer, elementwise=True, in_place=True)
def prelu(x, slope):
    # slope broadcasts to x (unidirectional); a per-channel slope is no single int8 table
    return np.where(x < 0, x * slope.astype(x.dtype, copy=False), x)


@op("Elu", 123, infer=same_infer, quant=TABLE, elementwise=True, in_place=True)
def elu(x, *, alpha=1.0):
    return np.where(x < 0, _c(x, alpha) * (np.exp(x) - _c(x, 1)), x)


@op("Selu", 124, infer=same_infer, quant=TABLE, elementwise=True, in_place=True)
def selu(x, *, alpha=1.67326319217681884765625, gamma=1.05070102214813232421875):
    a, g = _c(x, alpha), _c(x, gamma)
    return np.where(x > 0, g * x, g * (a * np.exp(x) - a))


@op("Gelu", 125, infer=same_infer, quant=TABLE, elementwise=True, in_place=True)
def gelu(x, *, approximate="none"):
    v = x.astype(np.float64)
    if approximate == "none":
        y = 0.5 * v * (1.0 + erf64(v / math.sqrt(2.0)))
    elif approximate == "tanh":
        y = 0.5 * v * (1.0 + np.tanh(math.sqrt(2.0 / math.pi) * (v + 0.044715 * v ** 3)))
    else:
        raise ValueError(f"Gelu approximate={approximate!r} is not supported (use 'none' or 'tanh')")
    return y.astype(x.dtype)


@op("Softplus", 126, infer=same_infer, quant=TABLE, elementwise=True, in_place=True)
def softplus(x):
    return np.logaddexp(np.zeros((), x.dtype), x)


@op("Softsign", 127, infer=same_infer, quant=TABLE, elementwise=True, in_place=True)
def softsign(x):
    return x / (_c(x, 1) + np.abs(x))


def _clip_upgrade(opset, inputs, attrs):
    """Clip-6 (opset < 11) has min/max attributes; from 11 they are optional inputs."""
    if opset >= 11:
        return inputs, attrs
    attrs = dict(attrs)
    lo, hi = attrs.pop("min", None), attrs.pop("max", None)
    new = [inputs[0],
           "" if lo is None else np.array(lo, dtype=np.float32),
           "" if hi is None else np.array(hi, dtype=np.float32)]
    while isinstance(new[-1], str) and new[-1] == "":
        new.pop()
    return new, attrs


def _scalar(v, x, what):
    v = np.asarray(v)
    if v.size != 1:
        raise ValueError(f"Clip {what} must be a scalar, got shape {list(v.shape)}")
    return v.reshape(()).astype(x.dtype)


@op("Clip", 128, infer=same_infer, quant=QuantRule("table", (ACT, PARAM, PARAM)), upgrade=_clip_upgrade,
    elementwise=True, in_place=True)
def clip(x, min=None, max=None):  # noqa: A002 - ONNX input names
    y = x
    if min is not None:
        y = np.maximum(y, _scalar(min, x, "min"))
    if max is not None:
        y = np.minimum(y, _scalar(max, x, "max"))
    return y


@op("Sigmoid", 129, infer=same_infer, quant=TABLE, elementwise=True, in_place=True)
def sigmoid(x):
    e = np.exp(-np.abs(x))  # never overflows
    one = _c(x, 1)
    return np.where(x >= 0, one / (one + e), e / (one + e))


@op("HardSigmoid", 130, infer=same_infer, quant=TABLE, elementwise=True, in_place=True)
def hard_sigmoid(x, *, alpha=0.2, beta=0.5):
    return np.clip(_c(x, alpha) * x + _c(x, beta), _c(x, 0), _c(x, 1))


@op("HardSwish", 131, infer=same_infer, quant=TABLE, elementwise=True, in_place=True, act_fn=1)
def hard_swish(x):
    return x * hard_sigmoid(x, alpha=1.0 / 6.0, beta=0.5)


# SiLU (Swish) x * Sigmoid(x), act_fn 2: a collapsed Elementwise (passes/simplify.py) after a float
# Conv is merged into it. Its C bytes are each ISA's Sigmoid kernel's (the vectorised
# src/vec_mathf.h on AVX2/NEON, mathf.c's on REF) times x, as the separate nodes give there.
act_fn("SiLU", 2, (("Sigmoid", (("v", 0),), {}), ("Mul", (("v", 0), ("v", 1)), {})))

# GELU as PyTorch exports it, x * (1 + erf(x / sqrt 2)) * 0.5 (Div, Erf, Add, Mul, Mul; float32
# constants sqrt 2, 1 and 0.5), act_fn 3: after a float Conv (PaddleOCR's SVTR recogniser and
# its text detector: 13 each) it is applied while the conv's tile is in cache instead of five
# passes over the tensor. Its C bytes are the separate nodes' on each ISA: the IEEE steps and that
# ISA's Erf kernel's erf (the vectorised src/vec_mathf.h on AVX2/NEON, mathf.c's on REF).
act_fn("GELU", 3, (("Div", (("v", 0), ("c", 0)), {}), ("Erf", (("v", 1),), {}), ("Add", (("v", 2), ("c", 1)), {}),
                   ("Mul", (("v", 0), ("v", 3)), {}), ("Mul", (("v", 4), ("c", 2)), {})),
       consts=(np.float32(np.sqrt(2.0)), np.float32(1.0), np.float32(0.5)))


# -- selection, comparison, logic ----------------------------------------------------------

@op("Where", 135, infer=where_infer, elementwise=True)
def where(cond, x, y):
    return np.where(cond, x, y).astype(x.dtype, copy=False)


for _name, _id, _fn in [("Equal", 136, np.equal), ("Less", 137, np.less), ("Greater", 138, np.greater),
                        ("LessOrEqual", 139, np.less_equal), ("GreaterOrEqual", 140, np.greater_equal),
                        ("And", 142, np.logical_and), ("Or", 143, np.logical_or),
                        ("Xor", 144, np.logical_xor)]:
    op(_name, _id, infer=bool_infer, elementwise=True)(_binary(_fn))


@op("Not", 141, infer=bool_infer, elementwise=True)
def not_(x):
    return np.logical_not(x)


@op("IsNaN", 146, infer=bool_infer, elementwise=True)
def isnan(x):
    return np.isnan(x)


@op("IsInf", 147, infer=bool_infer, elementwise=True)
def isinf(x, *, detect_negative=1, detect_positive=1):
    return (np.isposinf(x) & bool(detect_positive)) | (np.isneginf(x) & bool(detect_negative))
