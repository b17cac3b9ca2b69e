"""Shape inference: fills `Graph.info` for every tensor from the ops' shape rules.

Each op's `infer` rule is used when declared; otherwise the op's reference runs on zero
arrays of the input shapes (constants as themselves), which needs static input shapes.
A rule that cannot decide leaves the tensor unknown instead of asserting: real models
have exotic graphs, and the interpreter and calibration run without static shapes. The
`.dse` export later needs static shapes and gets them by specialising the input shapes.
"""
from __future__ import annotations

import numpy as np

from ..ir import Graph, TensorInfo
from ..ops import REGISTRY

_FALLBACK_MAX_ELEMS = 1 << 24  # do not materialise huge zero tensors just to learn a shape


def _zeros(info: TensorInfo) -> np.ndarray | None:
    if info.dtype is None or not info.is_static:
        return None
    if int(np.prod(info.shape, dtype=np.int64)) > _FALLBACK_MAX_ELEMS:
        return None
    return np.zeros(info.shape, dtype=info.dtype)


def infer_node(g: Graph, n) -> list[TensorInfo] | None:
    d = REGISTRY.get(n.op, n.domain)
    if d is None:
        return None
    if "_q" in n.attrs:  # a lowered node: the op's shape rule, int8 (or float, or its kind's `out_dtype`) elements
        res = _infer_plain(g, n, d)
        q = n.attrs["_q"]
        dt = np.dtype(np.float32 if q.get("float_out") else q.get("out_dtype", "int8"))
        return None if res is None else [None if r is None else TensorInfo(dt, r.shape) for r in res]
    return _infer_plain(g, n, d)


def _infer_plain(g: Graph, n, d) -> list[TensorInfo] | None:
    infos = [g.tensor_info(i) if i else None for i in n.inputs]
    consts = [g.consts.get(i) if i else None for i in n.inputs]
    if d.infer is not None:
        try:
            return list(d.infer(n.attrs, infos, consts))
        except Exception:
            return None
    if any(n.subgraphs()):
        return None
    args = []
    for info, c in zip(infos, consts):
        if info is None:
            args.append(None)
        elif c is not None:
            args.append(c)
        else:
            z = _zeros(info)
            if z is None:
                return None
            args.append(z)
    try:
        with np.errstate(all="ignore"):
            outs = d.call(args, n.attrs)
    except Exception:
        return None
    return [TensorInfo(np.asarray(o).dtype, tuple(np.shape(o))) for o in outs]


def infer_shapes(g: Graph, outer: dict[str, TensorInfo] | None = None) -> Graph:
    """Fill g.info in place (recursing into sub-graphs); returns g."""
    if outer:
        for k, v in outer.items():
            g.info.setdefault(k, v)
    for n in g.nodes:
        for sg in n.subgraphs():
            scope = {k: g.tensor_info(k) for k in sg.free_names()}
            infer_shapes(sg, scope)
        res = infer_node(g, n)
        for k, o in enumerate(n.outputs):
            if not o:
                continue
            new = res[k] if res is not None and k < len(res) and res[k] is not None else None
            old = g.info.get(o)
            if new is None:
                if old is None:
                    g.info[o] = TensorInfo()
                continue
            if old is not None and new.dtype is None and old.dtype is not None:
                new = TensorInfo(old.dtype, new.shape)
            g.info[o] = new
    return g
