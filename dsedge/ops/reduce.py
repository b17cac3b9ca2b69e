"""Ops of the reduce family: Reduce*, ArgMax/ArgMin, TopK, CumSum (ids 300-349).

Reduce semantics (canonical opset-18 form): `axes` is an optional int64 input (an attribute
before opset 13 for ReduceSum, 18 for the others; `upgrade` moves it). No axes, or an empty
axes tensor, reduces every axis unless `noop_with_empty_axes` is 1, which returns the input
unchanged. Reducing an empty set gives the operation's identity as onnxruntime does: 0 for
sums, means and norms, 1 for ReduceProd, -inf/+inf (integer min/max) for ReduceMax/ReduceMin
and -inf for ReduceLogSumExp. Integer inputs are computed and truncated in their own type.
"""
from __future__ import annotations

import numpy as np

from ..ir import TensorInfo
from .registry import ACT, PARAM, QuantRule, as_ints, op
from .tensor import _norm_axes, _shape, attrs_to_inputs

I64 = np.int64
_NOOP = object()


def _axes(x, axes, noop):
    """Normalised axes tuple, or _NOOP when the op must return its input."""
    if axes is None or np.size(axes) == 0:
        return _NOOP if noop else tuple(range(x.ndim))
    return tuple(_norm_axes(axes, x.ndim))


def _reduce_infer(attrs, infos, consts):
    x = _shape(infos[0])
    dtype = infos[0].dtype
    keep = attrs.get("keepdims", 1)
    given = len(infos) > 1 and infos[1] is not None
    if x is None:
        return [TensorInfo(dtype, None)]
    if given and consts[1] is None:
        return [TensorInfo(dtype, (None,) * len(x) if keep else None)]
    axes = consts[1] if given else None
    if axes is None or np.size(axes) == 0:
        if attrs.get("noop_with_empty_axes", 0):
            return [infos[0]]
        red = set(range(len(x)))
    else:
        red = set(_norm_axes(axes, len(x)))
    return [TensorInfo(dtype, tuple(1 if i in red else d for i, d in enumerate(x) if keep or i not in red))]


def _declare_reduce(name, op_id, since, kernel, quant=None, elementwise=None):
    """One Reduce* op: `kernel(x, axes_tuple, keepdims) -> array` in x's dtype. With
    noop_with_empty_axes and no axes, the op's `elementwise` part alone still applies
    (|x| for L1/L2, x*x for SumSquare), as in onnxruntime and the ONNX reference."""

    def ref(data, axes=None, *, keepdims=1, noop_with_empty_axes=0):
        ax = _axes(data, axes, noop_with_empty_axes)
        if ax is _NOOP:
            return data if elementwise is None else elementwise(data).astype(data.dtype, copy=False)
        return np.asarray(kernel(data, ax, bool(keepdims))).astype(data.dtype, copy=False)

    ref.__name__ = name.lower()
    op(name, op_id, infer=_reduce_infer, quant=quant, upgrade=attrs_to_inputs(since, (1, "axes", I64)))(ref)
    return ref


def _lowest(dt):
    return False if dt == bool else (-np.inf if dt.kind == "f" else np.iinfo(dt).min)


def _highest(dt):
    return True if dt == bool else (np.inf if dt.kind == "f" else np.iinfo(dt).max)


def _mean(x, ax, keep):
    n = int(np.prod([x.shape[a] for a in ax], dtype=np.int64))
    s = np.sum(x, axis=ax, keepdims=keep, dtype=x.dtype if x.dtype.kind == "f" else np.int64)
    if n == 0:
        return np.zeros_like(s)  # onnxruntime: the mean of nothing is 0
    if x.dtype.kind == "f":
        return s / x.dtype.type(n)
    return np.trunc(s / n)  # integer mean truncates toward zero, as onnxruntime's C++ division


def _logsumexp(x, ax, keep):
    # onnxruntime subtracts the max and works in x's dtype (integers truncate at every step)
    t = x.dtype.type
    m = np.max(x, axis=ax, keepdims=True, initial=_lowest(x.dtype))
    shift = np.where(np.isfinite(m), m, 0).astype(x.dtype) if x.dtype.kind == "f" else m
    e = np.exp(x - shift).astype(x.dtype)
    s = np.sum(e, axis=ax, keepdims=True, dtype=x.dtype)
    out = (np.log(s).astype(x.dtype) + shift).astype(x.dtype)
    if x.dtype.kind == "f":
        out = np.where(m == -np.inf, t(-np.inf), out)
    return out if keep else np.squeeze(out, axis=ax)


reduce_sum = _declare_reduce("ReduceSum", 300, 13, lambda x, a, k: np.sum(x, axis=a, keepdims=k, dtype=x.dtype))
reduce_mean = _declare_reduce("ReduceMean", 301, 18, _mean, quant=QuantRule("avgpool", (ACT, PARAM)))
reduce_max = _declare_reduce("ReduceMax", 302, 18,
                             lambda x, a, k: np.max(x, axis=a, keepdims=k, initial=_lowest(x.dtype)),
                             quant=QuantRule("minmax", (ACT, PARAM)))
reduce_min = _declare_reduce("ReduceMin", 303, 18,
                             lambda x, a, k: np.min(x, axis=a, keepdims=k, initial=_highest(x.dtype)),
                             quant=QuantRule("minmax", (ACT, PARAM)))
reduce_prod = _declare_reduce("ReduceProd", 304, 18, lambda x, a, k: np.prod(x, axis=a, keepdims=k, dtype=x.dtype))
reduce_l1 = _declare_reduce("ReduceL1", 305, 18, lambda x, a, k: np.sum(np.abs(x), axis=a, keepdims=k, dtype=x.dtype),
                            elementwise=np.abs)
reduce_l2 = _declare_reduce("ReduceL2", 306, 18, lambda x, a, k: np.sqrt(
    np.sum(x * x, axis=a, keepdims=k, dtype=x.dtype)), elementwise=np.abs)
reduce_sum_square = _declare_reduce("ReduceSumSquare", 307, 18,
                                    lambda x, a, k: np.sum(x * x, axis=a, keepdims=k, dtype=x.dtype),
                                    elementwise=lambda x: x * x)
reduce_log_sum_exp = _declare_reduce("ReduceLogSumExp", 308, 18, _logsumexp)


# -- ArgMax, ArgMin ----------------------------------------------------------------------

def _arg_infer(attrs, infos, consts):
    x = _shape(infos[0])
    if x is None:
        return [TensorInfo(np.dtype(I64), None)]
    axis = attrs.get("axis", 0) % max(len(x), 1)
    keep = attrs.get("keepdims", 1)
    return [TensorInfo(np.dtype(I64), tuple(1 if i == axis else d for i, d in enumerate(x) if keep or i != axis))]


def _arg(fn, x, axis, keepdims, select_last_index):
    axis = axis % x.ndim
    if select_last_index:
        idx = x.shape[axis] - 1 - fn(np.flip(x, axis), axis=axis, keepdims=bool(keepdims))
    else:
        idx = fn(x, axis=axis, keepdims=bool(keepdims))
    return idx.astype(I64)


@op("ArgMax", 320, infer=_arg_infer)
def arg_max(data, *, axis=0, keepdims=1, select_last_index=0):
    return _arg(np.argmax, data, axis, keepdims, select_last_index)


@op("ArgMin", 321, infer=_arg_infer)
def arg_min(data, *, axis=0, keepdims=1, select_last_index=0):
    return _arg(np.argmin, data, axis, keepdims, select_last_index)


# -- TopK, CumSum ------------------------------------------------------------------------

def _topk_infer(attrs, infos, consts):
    x = _shape(infos[0])
    if x is None:
        return [TensorInfo(infos[0].dtype, None), TensorInfo(np.dtype(I64), None)]
    axis = attrs.get("axis", -1) % len(x)
    k = as_ints(consts[1])[0] if consts[1] is not None else None
    shape = x[:axis] + (k,) + x[axis + 1:]
    return [TensorInfo(infos[0].dtype, shape), TensorInfo(np.dtype(I64), shape)]


@op("TopK", 322, infer=_topk_infer, upgrade=attrs_to_inputs(10, (1, "k", I64)))
def top_k(x, k, *, axis=-1, largest=1, sorted=1):  # noqa: A002 - ONNX attribute name
    """Ties keep the lower index first (onnxruntime's order). `sorted=0` leaves the order
    unspecified in ONNX; dsedge returns the sorted order."""
    axis = axis % x.ndim
    k = as_ints(k)[0]
    if not 0 <= k <= x.shape[axis]:
        raise ValueError(f"k={k} is out of range for axis {axis} of length {x.shape[axis]}")
    if largest:  # stable descending: sort the reversed axis ascending, flip, map indices back
        n = x.shape[axis]
        order = n - 1 - np.flip(np.argsort(np.flip(x, axis), axis=axis, kind="stable"), axis)
    else:
        order = np.argsort(x, axis=axis, kind="stable")
    idx = np.take(order, np.arange(k), axis=axis)
    return np.take_along_axis(x, idx, axis=axis), idx.astype(I64)


@op("CumSum", 323, infer=lambda a, infos, c: [infos[0]])
def cum_sum(x, axis, *, exclusive=0, reverse=0):
    ax = int(np.asarray(axis).reshape(())) % x.ndim
    y = np.flip(x, ax) if reverse else x
    out = np.cumsum(y, axis=ax, dtype=x.dtype)
    if exclusive and out.shape[ax]:  # shift by one along the axis, starting from 0
        head = np.zeros_like(np.take(out, [0], axis=ax))
        out = np.concatenate([head, np.take(out, np.arange(out.shape[ax] - 1), axis=ax)], axis=ax)
    return np.flip(out, ax) if reverse else out
