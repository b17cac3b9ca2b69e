"""Ops of the tensor family: shape and data movement, casts, constants (ids 200-299).

Every op is declared once with its numpy reference (the spec), an explicit shape rule where
the output shape follows from input shapes and constant inputs, the `upgrade` rule that turns
older opsets' attributes into the canonical (opset 21) inputs, and its quantisation rule.

Shape rules never raise on symbolic (str) or unknown (None) dims: they return None for a dim
(or for the whole shape when even the rank is unknown). Byte-moving ops share one (scale, zp)
between their data input and output (`QuantRule("bytes")`); shape/axes/index inputs are PARAM.
"""
from __future__ import annotations

from functools import lru_cache
import math

import numpy as np

from ..errors import ModelError, UnsupportedOpError
from ..ir import TensorInfo
from .registry import ACT, PARAM, QuantRule, as_ints, broadcast_shapes, op

I64 = np.int64
BYTES1 = QuantRule("bytes", (ACT,))
BYTES2 = QuantRule("bytes", (ACT, PARAM))


# -- shared helpers ----------------------------------------------------------------------

def attrs_to_inputs(since: int, *specs):
    """An `upgrade` rule: before opset `since`, attribute `name` was input `pos` (dtype).

    specs are (pos, name, dtype) triples; an absent attribute leaves the input absent.
    """
    def upgrade(opset, inputs, attrs):
        if opset >= since:
            return inputs, attrs
        inputs, attrs = list(inputs), dict(attrs)
        for pos, name, dtype in specs:
            if name in attrs:
                value = attrs.pop(name)
                inputs += [""] * (pos + 1 - len(inputs))
                inputs[pos] = np.asarray(value, dtype=dtype)
        return inputs, attrs
    return upgrade


def _int(d) -> bool:
    return isinstance(d, (int, np.integer)) and not isinstance(d, bool) and d >= 0


def _prod(dims):
    """Product of dims: an int, the one symbolic dim when all others are 1, else None."""
    rest = [d for d in dims if d != 1]
    if len(rest) == 1 and not _int(rest[0]):
        return rest[0]
    if not all(_int(d) for d in rest):
        return None
    return int(np.prod([int(d) for d in rest], dtype=np.int64))


def _norm_axes(axes, rank: int) -> list[int]:
    out = []
    for a in as_ints(axes):
        if not -rank <= a < rank:
            raise ValueError(f"axis {a} is out of range for a tensor of rank {rank}")
        out.append(a % rank)
    if len(set(out)) != len(out):
        raise ValueError(f"axes {as_ints(axes)} repeat an axis")
    return out


def _shape(info):
    return None if info is None else info.shape


@lru_cache(maxsize=None)
def np_dtype(to: int) -> np.dtype:
    """numpy dtype of an ONNX TensorProto element type (the `to` of Cast)."""
    from onnx import TensorProto, helper
    try:
        dt = np.dtype(helper.tensor_dtype_to_np_dtype(int(to)))
    except Exception:
        dt = None
    if dt is None or dt.kind in "OUS":
        name = TensorProto.DataType.Name(int(to)) if int(to) in TensorProto.DataType.values() else str(to)
        raise UnsupportedOpError(f"element type {name} (to={to}) is not supported",
                                 hint="dsedge handles numeric and bool tensors only")
    return dt


# -- Identity, Reshape, Flatten, Transpose, Squeeze, Unsqueeze ---------------------------

@op("Identity", 200, quant=BYTES1, view=True)
def identity(x):
    return x


def _reshape_infer(attrs, infos, consts):
    x, s = _shape(infos[0]), consts[1]
    dtype = infos[0].dtype
    if s is None:
        n = _shape(infos[1])
        return [TensorInfo(dtype, (None,) * n[0] if n and len(n) == 1 and _int(n[0]) else None)]
    s = as_ints(s)
    out = []
    for i, d in enumerate(s):
        if d == 0 and not attrs.get("allowzero", 0):
            out.append(x[i] if x is not None and i < len(x) else None)
        else:
            out.append(d)
    if -1 in out:
        k = out.index(-1)
        total = _prod(x) if x is not None else None
        rest = _prod(out[:k] + out[k + 1:])
        out[k] = total // rest if _int(total) and _int(rest) and rest else (total if rest == 1 else None)
    return [TensorInfo(dtype, tuple(out))]


@op("Reshape", 201, infer=_reshape_infer, quant=BYTES2, view=True)
def reshape(data, shape, *, allowzero=0):
    s = as_ints(shape)
    if not allowzero:
        s = [data.shape[i] if d == 0 else d for i, d in enumerate(s)]
    return data.reshape(s)


def _flatten_infer(attrs, infos, consts):
    x = _shape(infos[0])
    if x is None:
        return [TensorInfo(infos[0].dtype, (None, None))]
    axis = attrs.get("axis", 1)
    axis = axis + len(x) if axis < 0 else axis
    return [TensorInfo(infos[0].dtype, (_prod(x[:axis]), _prod(x[axis:])))]


@op("Flatten", 202, infer=_flatten_infer, quant=BYTES1, view=True)
def flatten(x, *, axis=1):
    axis = axis + x.ndim if axis < 0 else axis
    if not 0 <= axis <= x.ndim:
        raise ValueError(f"axis {axis} is out of range for rank {x.ndim}")
    return x.reshape(_prod(x.shape[:axis]), _prod(x.shape[axis:]))


def _transpose_infer(attrs, infos, consts):
    x = _shape(infos[0])
    if x is None:
        return [TensorInfo(infos[0].dtype, None)]
    perm = attrs.get("perm") or list(range(len(x)))[::-1]
    return [TensorInfo(infos[0].dtype, tuple(x[p] for p in perm))]


@op("Transpose", 203, infer=_transpose_infer, quant=BYTES1)
def transpose(x, *, perm=None):
    return np.transpose(x, None if perm is None else as_ints(perm))


def _squeeze_infer(attrs, infos, consts):
    x = _shape(infos[0])
    dtype = infos[0].dtype
    axes_given = len(infos) > 1 and infos[1] is not None
    if x is None or (axes_given and consts[1] is None):
        return [TensorInfo(dtype, None)]
    if axes_given:
        drop = set(_norm_axes(consts[1], len(x)))
    else:
        if not all(_int(d) for d in x):
            return [TensorInfo(dtype, None)]
        drop = {i for i, d in enumerate(x) if d == 1}
    return [TensorInfo(dtype, tuple(d for i, d in enumerate(x) if i not in drop))]


@op("Squeeze", 204, infer=_squeeze_infer, quant=BYTES2, upgrade=attrs_to_inputs(13, (1, "axes", I64)), view=True)
def squeeze(data, axes=None):
    if axes is None:
        return np.squeeze(data)
    ax = _norm_axes(axes, data.ndim)
    bad = [a for a in ax if data.shape[a] != 1]
    if bad:
        raise ValueError(f"cannot squeeze axis {bad[0]} of shape {list(data.shape)}: its size is not 1")
    return np.squeeze(data, axis=tuple(ax))


def _unsqueeze_shape(shape, axes):
    rank = len(shape) + len(as_ints(axes))
    ax = set(_norm_axes(axes, rank))
    it = iter(shape)
    return tuple(1 if i in ax else next(it) for i in range(rank))


def _unsqueeze_infer(attrs, infos, consts):
    x = _shape(infos[0])
    if x is None or consts[1] is None:
        return [TensorInfo(infos[0].dtype, None)]
    return [TensorInfo(infos[0].dtype, _unsqueeze_shape(x, consts[1]))]


@op("Unsqueeze", 205, infer=_unsqueeze_infer, quant=BYTES2, upgrade=attrs_to_inputs(13, (1, "axes", I64)),
    view=True)
def unsqueeze(data, axes):
    return data.reshape(_unsqueeze_shape(data.shape, axes))


# -- Concat, Split, Slice ----------------------------------------------------------------

def _concat_infer(attrs, infos, consts):
    shapes = [i.shape for i in infos if i is not None]
    dtype = infos[0].dtype
    if not shapes or any(s is None for s in shapes):
        rank = next((len(s) for s in shapes if s is not None), None)
        return [TensorInfo(dtype, None if rank is None else (None,) * rank)]
    rank = len(shapes[0])
    axis = attrs["axis"] % rank
    out = []
    for i in range(rank):
        dims = [s[i] for s in shapes]
        if i == axis:
            out.append(sum(dims) if all(_int(d) for d in dims) else None)
        else:
            known = [d for d in dims if _int(d)] or [d for d in dims if d is not None]
            out.append(known[0] if known else None)
    return [TensorInfo(dtype, tuple(out))]


@op("Concat", 206, infer=_concat_infer, quant=QuantRule("concat", (ACT,)))
def concat(*inputs, axis=None):
    if axis is None:
        raise ModelError("Concat needs the `axis` attribute")
    inputs = [x for x in inputs if x is not None]
    return np.concatenate(inputs, axis=axis)


def _split_sizes(dim, split, num_outputs):
    if split is not None:
        sizes = as_ints(split)
        if sum(sizes) != dim:
            raise ValueError(f"split sizes {sizes} do not add up to the axis length {dim}")
        return sizes
    if not num_outputs or num_outputs < 1:
        raise ValueError("Split needs a `split` input or the `num_outputs` attribute")
    chunk = -(-dim // num_outputs)
    if chunk * (num_outputs - 1) > dim:
        raise ValueError(f"num_outputs={num_outputs} cannot split an axis of length {dim} "
                         f"(chunks of {chunk} leave a negative last chunk)")
    return [chunk] * (num_outputs - 1) + [dim - chunk * (num_outputs - 1)]


def _split_upgrade(opset, inputs, attrs, n_outputs=None):
    inputs, attrs = attrs_to_inputs(13, (1, "split", I64))(opset, inputs, attrs)
    has_split = len(inputs) > 1 and (isinstance(inputs[1], np.ndarray) or inputs[1] != "")
    if not has_split and "num_outputs" not in attrs and n_outputs:
        attrs = {**attrs, "num_outputs": int(n_outputs)}  # equal split into the node's outputs
    return inputs, attrs


def _split_infer(attrs, infos, consts):
    x = _shape(infos[0])
    dtype = infos[0].dtype
    split = consts[1] if len(consts) > 1 else None
    has_split = len(infos) > 1 and infos[1] is not None
    n = len(as_ints(split)) if split is not None else attrs.get("num_outputs")
    if n is None and has_split and infos[1].shape and _int(infos[1].shape[0]):
        n = infos[1].shape[0]
    if n is None:
        return None
    if x is None:
        return [TensorInfo(dtype, None)] * n
    axis = attrs.get("axis", 0) % len(x)
    if has_split and split is None or not _int(x[axis]):
        sizes = [None] * n if split is None else as_ints(split)
    else:
        sizes = _split_sizes(x[axis], split, n)
    return [TensorInfo(dtype, x[:axis] + (s,) + x[axis + 1:]) for s in sizes]


@op("Split", 207, infer=_split_infer, quant=BYTES2, upgrade=_split_upgrade)
def split(x, split=None, *, axis=0, num_outputs=None):
    axis = axis % x.ndim
    sizes = _split_sizes(x.shape[axis], split, num_outputs)
    return tuple(np.split(x, np.cumsum(sizes)[:-1], axis=axis))


def _slice_bounds(dim, start, end, step):
    """ONNX Slice clamping -> a Python slice (handles INT64_MAX/MIN ends and negative steps)."""
    if step == 0:
        raise ValueError("Slice step cannot be 0")
    if dim == 0:
        return slice(0, 0)
    start = start + dim if start < 0 else start
    end = end + dim if end < 0 else end
    if step > 0:
        return slice(min(max(start, 0), dim), min(max(end, 0), dim), step)
    start, end = min(max(start, 0), dim - 1), min(max(end, -1), dim - 1)
    return slice(start, None if end < 0 else end, step)


def _slice_args(rank, starts, ends, axes, steps):
    starts, ends = as_ints(starts), as_ints(ends)
    axes = list(range(len(starts))) if axes is None else _norm_axes(axes, rank)
    steps = [1] * len(starts) if steps is None else as_ints(steps)
    if not len(starts) == len(ends) == len(axes) == len(steps):
        raise ValueError("Slice: starts, ends, axes and steps must have the same length")
    return zip(axes, starts, ends, steps)


def _slice_infer(attrs, infos, consts):
    x = _shape(infos[0])
    dtype = infos[0].dtype
    if x is None:
        return [TensorInfo(dtype, None)]
    c = list(consts) + [None] * (5 - len(consts))
    given = [k < len(infos) and infos[k] is not None for k in range(5)]
    if (given[3] and c[3] is None) or (given[4] and c[4] is None):
        return [TensorInfo(dtype, (None,) * len(x))]
    if c[1] is None or c[2] is None:
        out = list(x)
        for a in (_norm_axes(c[3], len(x)) if given[3] else range(len(x))):
            out[a] = None
        return [TensorInfo(dtype, tuple(out))]
    out = list(x)
    for a, s, e, st in _slice_args(len(x), c[1], c[2], c[3], c[4]):
        out[a] = len(range(*_slice_bounds(x[a], s, e, st).indices(x[a]))) if _int(x[a]) else None
    return [TensorInfo(dtype, tuple(out))]


@op("Slice", 208, infer=_slice_infer, quant=QuantRule("bytes", (ACT, PARAM, PARAM, PARAM, PARAM)),
    upgrade=attrs_to_inputs(10, (1, "starts", I64), (2, "ends", I64), (3, "axes", I64)))
def slice_(data, starts, ends, axes=None, steps=None):
    idx = [slice(None)] * data.ndim
    for a, s, e, st in _slice_args(data.ndim, starts, ends, axes, steps):
        idx[a] = _slice_bounds(data.shape[a], s, e, st)
    return data[tuple(idx)]


# -- Gather family, ScatterND ------------------------------------------------------------

def _gather_infer(attrs, infos, consts):
    x, i = _shape(infos[0]), _shape(infos[1])
    if x is None or i is None:
        return [TensorInfo(infos[0].dtype, None)]
    axis = attrs.get("axis", 0) % len(x)
    return [TensorInfo(infos[0].dtype, x[:axis] + tuple(i) + x[axis + 1:])]


@op("Gather", 209, infer=_gather_infer, quant=BYTES2)
def gather(data, indices, *, axis=0):
    return np.take(data, indices.astype(np.int64), axis=axis)


def _gather_elements_infer(attrs, infos, consts):
    return [TensorInfo(infos[0].dtype, _shape(infos[1]))]


@op("GatherElements", 210, infer=_gather_elements_infer, quant=BYTES2)
def gather_elements(data, indices, *, axis=0):
    axis = axis % data.ndim
    idx = indices.astype(np.int64)
    idx = np.where(idx < 0, idx + data.shape[axis], idx)
    grid = list(np.ix_(*[np.arange(n) for n in idx.shape]))  # indices may be smaller than data off-axis
    grid[axis] = idx
    return data[tuple(grid)]


def _gather_nd_infer(attrs, infos, consts):
    x, i = _shape(infos[0]), _shape(infos[1])
    if x is None or i is None or not _int(i[-1]):
        return [TensorInfo(infos[0].dtype, None)]
    b = attrs.get("batch_dims", 0)
    return [TensorInfo(infos[0].dtype, tuple(i[:-1]) + tuple(x[b + i[-1]:]))]


@op("GatherND", 211, infer=_gather_nd_infer, quant=BYTES2)
def gather_nd(data, indices, *, batch_dims=0):
    b, last = batch_dims, indices.shape[-1]
    batch = _prod(data.shape[:b])
    inner = data.shape[b:]
    d = data.reshape((batch,) + inner)
    idx = indices.astype(np.int64).reshape(batch, _prod(indices.shape[b:-1]), last)
    idx = np.where(idx < 0, idx + np.array(inner[:last], dtype=np.int64), idx)
    rows = [d[k][tuple(idx[k].T)] if last else np.broadcast_to(d[k], (idx.shape[1],) + inner)
            for k in range(batch)]
    out_shape = indices.shape[:-1] + inner[last:]
    return (np.stack(rows) if rows else np.zeros(0, data.dtype)).reshape(out_shape)


_SCATTER = {"add": np.add, "mul": np.multiply, "max": np.maximum, "min": np.minimum}


@op("ScatterND", 212, infer=lambda a, infos, c: [infos[0]])
def scatter_nd(data, indices, updates, *, reduction="none"):
    if reduction != "none" and reduction not in _SCATTER:
        raise UnsupportedOpError(f"ScatterND: reduction={reduction!r} is not supported",
                                 hint="ONNX defines none, add, mul, max, min")
    out = data.copy()
    last = indices.shape[-1]
    idx = indices.astype(np.int64).reshape(-1, last)
    idx = np.where(idx < 0, idx + np.array(data.shape[:last], dtype=np.int64), idx)
    upd = updates.reshape((idx.shape[0],) + data.shape[last:])
    key = tuple(idx.T)
    if reduction == "none":
        out[key] = upd
    else:
        _SCATTER[reduction].at(out, key, upd)
    return out


# -- Tile, Expand, DepthToSpace, SpaceToDepth --------------------------------------------

def _tile_infer(attrs, infos, consts):
    x, r = _shape(infos[0]), consts[1]
    if x is None:
        return [TensorInfo(infos[0].dtype, None)]
    if r is None:
        return [TensorInfo(infos[0].dtype, (None,) * len(x))]
    return [TensorInfo(infos[0].dtype, tuple(d * k if _int(d) else (d if k == 1 else None)
                                             for d, k in zip(x, as_ints(r))))]


@op("Tile", 213, infer=_tile_infer, quant=BYTES2)
def tile(x, repeats):
    reps = as_ints(repeats)
    if len(reps) != x.ndim:
        raise ValueError(f"repeats has {len(reps)} entries for a tensor of rank {x.ndim}")
    return np.tile(x, reps)


def _expand_infer(attrs, infos, consts):
    x, s = _shape(infos[0]), consts[1]
    if s is None:
        n = _shape(infos[1])
        rank = n[0] if n and _int(n[0]) else None
        if rank is None or x is None:
            return [TensorInfo(infos[0].dtype, None)]
        return [TensorInfo(infos[0].dtype, (None,) * max(rank, len(x)))]
    if x is None:
        return [TensorInfo(infos[0].dtype, None)]
    return [TensorInfo(infos[0].dtype, broadcast_shapes(x, tuple(as_ints(s))))]


@op("Expand", 214, infer=_expand_infer, quant=BYTES2)
def expand(x, shape):
    out = np.broadcast_shapes(x.shape, tuple(as_ints(shape)))
    return np.broadcast_to(x, out).copy()


def _d2s_infer(attrs, infos, consts):
    x, bs = _shape(infos[0]), attrs.get("blocksize")
    if x is None or len(x) != 4 or not bs:
        return [TensorInfo(infos[0].dtype, None if x is None else (None,) * len(x))]
    n, c, h, w = x
    f = lambda d, k: d * k if _int(d) else None  # noqa: E731
    return [TensorInfo(infos[0].dtype, (n, c // (bs * bs) if _int(c) else None, f(h, bs), f(w, bs)))]


def _blocksize(bs, op_name):
    if bs is None or int(bs) < 1:
        raise ModelError(f"{op_name} needs a positive `blocksize` attribute, got {bs}")
    return int(bs)


@op("DepthToSpace", 215, infer=_d2s_infer, quant=BYTES1)
def depth_to_space(x, *, blocksize=None, mode="DCR"):
    bs = _blocksize(blocksize, "DepthToSpace")
    n, c, h, w = x.shape
    oc = c // (bs * bs)
    if mode == "DCR":
        t = x.reshape(n, bs, bs, oc, h, w).transpose(0, 3, 4, 1, 5, 2)
    elif mode == "CRD":
        t = x.reshape(n, oc, bs, bs, h, w).transpose(0, 1, 4, 2, 5, 3)
    else:
        raise UnsupportedOpError(f"DepthToSpace: mode={mode!r} is not supported", hint="ONNX defines DCR and CRD")
    return t.reshape(n, oc, h * bs, w * bs)


def _s2d_infer(attrs, infos, consts):
    x, bs = _shape(infos[0]), attrs.get("blocksize")
    if x is None or len(x) != 4 or not bs:
        return [TensorInfo(infos[0].dtype, None if x is None else (None,) * len(x))]
    n, c, h, w = x
    f = lambda d, k: d // k if _int(d) else None  # noqa: E731
    return [TensorInfo(infos[0].dtype, (n, c * bs * bs if _int(c) else None, f(h, bs), f(w, bs)))]


@op("SpaceToDepth", 216, infer=_s2d_infer, quant=BYTES1)
def space_to_depth(x, *, blocksize=None):
    bs = _blocksize(blocksize, "SpaceToDepth")
    n, c, h, w = x.shape
    t = x.reshape(n, c, h // bs, bs, w // bs, bs).transpose(0, 3, 5, 1, 2, 4)
    return t.reshape(n, c * bs * bs, h // bs, w // bs)


# -- Shape, Size, Cast, CastLike, ConstantOfShape, Range ---------------------------------

def _shape_infer(attrs, infos, consts):
    x = _shape(infos[0])
    if x is None:
        return [TensorInfo(np.dtype(I64), (None,))]
    return [TensorInfo(np.dtype(I64), (len(x[attrs.get("start", 0):attrs.get("end")]),))]


@op("Shape", 217, infer=_shape_infer)
def shape(x, *, start=0, end=None):
    return np.array(x.shape[start:end], dtype=I64)


@op("Size", 218, infer=lambda a, infos, c: [TensorInfo(np.dtype(I64), ())])
def size(x):
    return np.array(x.size, dtype=I64)


def _cast(x, dt, saturate):
    if dt == x.dtype:
        return x.copy()
    if x.dtype.kind in "OUS":
        raise UnsupportedOpError(f"Cast from {x.dtype} is not supported", hint="dsedge handles numeric tensors only")
    if "float8" in dt.name:  # ml_dtypes float8: saturate clips to the finite range, else out-of-range -> NaN/inf
        if x.dtype.kind != "f":
            x = x.astype(np.float32)
        if saturate:
            import ml_dtypes
            big = ml_dtypes.finfo(dt).max.astype(x.dtype)
            x = np.where(np.isnan(x), x, np.clip(x, -big, big))
        return x.astype(dt)
    return x.astype(dt)


def _cast_infer(attrs, infos, consts):
    return [TensorInfo(np_dtype(attrs["to"]), _shape(infos[0]))]


@op("Cast", 219, infer=_cast_infer, elementwise=True)
def cast(x, *, to=None, saturate=1):
    if to is None:
        raise ModelError("Cast needs the `to` attribute")
    return _cast(x, np_dtype(to), saturate)


@op("CastLike", 220, infer=lambda a, infos, c: [TensorInfo(infos[1].dtype, _shape(infos[0]))], elementwise=True)
def cast_like(x, target_type, *, saturate=1):
    return _cast(x, target_type.dtype, saturate)


def _const_of_shape_value(value):
    return np.zeros((), np.float32) if value is None else np.asarray(value).reshape(-1)[:1].reshape(())


def _const_of_shape_infer(attrs, infos, consts):
    dtype = _const_of_shape_value(attrs.get("value")).dtype
    if consts[0] is not None:
        return [TensorInfo(dtype, tuple(as_ints(consts[0])))]
    n = _shape(infos[0])
    return [TensorInfo(dtype, (None,) * n[0] if n and _int(n[0]) else None)]


@op("ConstantOfShape", 221, infer=_const_of_shape_infer)
def constant_of_shape(shape, *, value=None):
    v = _const_of_shape_value(value)
    return np.full(as_ints(shape), v, dtype=v.dtype)


def _range_count(start, limit, delta) -> int:
    if delta == 0:
        raise ValueError("Range delta cannot be 0")
    span = (limit - start) if start.dtype.kind == "f" else int(limit) - int(start)
    return max(int(math.ceil(float(span) / float(delta))), 0)


def _range_infer(attrs, infos, consts):
    dtype = infos[0].dtype
    if any(c is None for c in consts[:3]):
        return [TensorInfo(dtype, (None,))]
    return [TensorInfo(dtype, (_range_count(*(np.asarray(c).reshape(()) for c in consts[:3])),))]


@op("Range", 222, infer=_range_infer)
def range_(start, limit, delta):
    start, limit, delta = (np.asarray(v).reshape(()) for v in (start, limit, delta))
    n = _range_count(start, limit, delta)
    if n == 0:
        return np.zeros(0, start.dtype)
    # onnxruntime accumulates (value += delta), so float rounding follows the running sum
    steps = np.full(n, delta, dtype=start.dtype)
    steps[0] = start
    return np.add.accumulate(steps, dtype=start.dtype)


# -- Pad ---------------------------------------------------------------------------------

_PAD_MODES = {"constant": "constant", "reflect": "reflect", "edge": "edge", "wrap": "wrap"}


def _pad_widths(rank, pads, axes):
    pads = as_ints(pads)
    axes = list(range(rank)) if axes is None else _norm_axes(axes, rank)
    if len(pads) != 2 * len(axes):
        raise ValueError(f"pads has {len(pads)} entries, expected {2 * len(axes)} (begin and end for each axis)")
    width = [[0, 0] for _ in range(rank)]
    for k, a in enumerate(axes):
        width[a] = [pads[k], pads[k + len(axes)]]
    return width


def _pad_infer(attrs, infos, consts):
    x = _shape(infos[0])
    if x is None:
        return [TensorInfo(infos[0].dtype, None)]
    c = list(consts) + [None] * (4 - len(consts))
    axes_given = len(infos) > 3 and infos[3] is not None
    if c[1] is None or (axes_given and c[3] is None):
        return [TensorInfo(infos[0].dtype, (None,) * len(x))]
    w = _pad_widths(len(x), c[1], c[3])
    return [TensorInfo(infos[0].dtype, tuple(d + b + e if _int(d) else (d if b == e == 0 else None)
                                             for d, (b, e) in zip(x, w)))]


def _pad_upgrade(opset, inputs, attrs):
    if opset >= 11:
        return inputs, attrs
    attrs = dict(attrs)
    value = attrs.pop("value", 0.0)
    inputs, attrs = attrs_to_inputs(11, (1, "pads", I64))(opset, inputs, attrs)
    return list(inputs[:2]) + [np.asarray(value, np.float32)], attrs


@op("Pad", 223, infer=_pad_infer, quant=QuantRule("bytes", (ACT, PARAM, PARAM, PARAM)), upgrade=_pad_upgrade)
def pad(data, pads, constant_value=None, axes=None, *, mode="constant"):
    if mode not in _PAD_MODES:
        raise UnsupportedOpError(f"Pad: mode={mode!r} is not supported",
                                 hint="ONNX defines constant, reflect, edge, wrap")
    width = _pad_widths(data.ndim, pads, axes)
    # negative pads crop first; the positive part then pads the cropped tensor
    crop = tuple(slice(max(-b, 0), data.shape[i] - max(-e, 0)) for i, (b, e) in enumerate(width))
    data = data[crop]
    width = [(max(b, 0), max(e, 0)) for b, e in width]
    if mode == "constant":
        v = 0 if constant_value is None or np.size(constant_value) == 0 else np.asarray(constant_value).reshape(-1)[0]
        return np.pad(data, width, mode="constant", constant_values=np.asarray(v).astype(data.dtype))
    return np.pad(data, width, mode=_PAD_MODES[mode])


# -- NonZero, Trilu, OneHot --------------------------------------------------------------

@op("NonZero", 224, data_dependent=True, infer=lambda a, infos, c: [TensorInfo(np.dtype(I64), (
    None if infos[0].shape is None else max(len(infos[0].shape), 1), None))])
def nonzero(x):
    return np.array(np.nonzero(np.atleast_1d(x)), dtype=I64)


@op("Trilu", 225, infer=lambda a, infos, c: [infos[0]])
def trilu(x, k=None, *, upper=1):
    k = 0 if k is None else int(np.asarray(k).reshape(()))
    return np.triu(x, k) if upper else np.tril(x, k)


def _onehot_infer(attrs, infos, consts):
    i, depth = _shape(infos[0]), consts[1]
    dtype = infos[2].dtype
    if i is None:
        return [TensorInfo(dtype, None)]
    axis = attrs.get("axis", -1) % (len(i) + 1)
    d = int(np.asarray(depth).reshape(())) if depth is not None else None
    return [TensorInfo(dtype, tuple(i[:axis]) + (d,) + tuple(i[axis:]))]


@op("OneHot", 226, infer=_onehot_infer)
def one_hot(indices, depth, values, *, axis=-1):
    d = int(np.asarray(depth).reshape(()))
    idx = indices.astype(np.int64)
    idx = np.where(idx < 0, idx + d, idx)
    hot = idx[..., None] == np.arange(d)
    out = np.where(hot, values[1], values[0]).astype(values.dtype)
    return np.moveaxis(out, -1, axis % (indices.ndim + 1))
