"""Control flow: If and Loop.

Both carry their bodies as `dsedge.ir.Graph` attributes and run them through the
interpreter's `RunContext.run_graph`, which resolves names of enclosing scopes (bodies read
outer tensors by name, as in ONNX). Only tensor values are supported (no sequence or
optional types).

  If    cond (bool, one element) picks then_branch or else_branch; the node's outputs are the
        branch's outputs, whose shapes may differ between the branches.
  Loop  inputs (M, cond, v_initial...), body inputs (iteration_num, cond_in, v...), body
        outputs (cond_out, v_next..., scan...). Runs while i < M (when M is given) and cond
        (the body's cond_out, initially the cond input or true; onnxruntime honours cond_out even
        when the cond input is absent, although the ONNX text says it is ignored); outputs are the final carried values followed by each scan output
        stacked along a new axis 0.

`dsedge.passes.control` folds Ifs with constant conditions and unrolls Loops with constant
trip counts, so the exported `.dse` has no control flow.
"""
from __future__ import annotations

import numpy as np

from ..errors import ModelError
from ..ir import Graph, TensorInfo
from .registry import ACT, BIAS, PARAM, WEIGHT, QuantRule, op  # noqa: F401


def _truth(v, what: str) -> bool:
    a = np.asarray(v)
    if a.size != 1:
        raise ModelError(f"{what} must hold exactly one element, got shape {list(a.shape)}")
    return bool(a.reshape(()))


def _merge_info(a: TensorInfo, b: TensorInfo) -> TensorInfo:
    """What is known of a tensor that is either `a` or `b`."""
    dtype = a.dtype if a.dtype == b.dtype else (a.dtype or b.dtype)
    if a.shape is None or b.shape is None or len(a.shape) != len(b.shape):
        return TensorInfo(dtype, None)
    return TensorInfo(dtype, tuple(x if x == y else None for x, y in zip(a.shape, b.shape)))


def _if_infer(attrs, infos, consts):
    then_g, else_g = attrs["then_branch"], attrs["else_branch"]
    if consts and consts[0] is not None and np.asarray(consts[0]).size == 1:
        g = then_g if bool(np.asarray(consts[0]).reshape(())) else else_g
        return [g.tensor_info(o) for o in g.outputs]
    return [_merge_info(then_g.tensor_info(a), else_g.tensor_info(b)) for a, b in zip(then_g.outputs, else_g.outputs)]


@op("If", 350, infer=_if_infer)
def if_(cond, *, then_branch: Graph = None, else_branch: Graph = None, _ctx=None):
    branch = then_branch if _truth(cond, "If condition") else else_branch
    return tuple(_ctx.run_graph(branch, []))


def _loop_infer(attrs, infos, consts):
    body: Graph = attrs["body"]
    n_carried = len(infos) - 2
    outs = []
    for k, o in enumerate(body.outputs[1:]):
        bi = body.tensor_info(o)
        if k < n_carried:
            init = infos[2 + k] if infos[2 + k] is not None else TensorInfo()
            outs.append(_merge_info(init, bi) if init.shape is not None else TensorInfo(init.dtype or bi.dtype, None))
        else:
            outs.append(TensorInfo(bi.dtype, None if bi.shape is None else (None,) + tuple(bi.shape)))
    return outs


@op("Loop", 351, infer=_loop_infer)
def loop(M=None, cond=None, *v_initial, body: Graph = None, _ctx=None):
    n_carried = len(v_initial)
    n_scan = len(body.outputs) - 1 - n_carried
    if n_scan < 0:
        raise ModelError(f"Loop body has {len(body.outputs)} outputs, fewer than 1 + {n_carried} carried values")
    trips = None if M is None else int(np.asarray(M).reshape(()))
    if trips is None and cond is None:
        raise ModelError("Loop has neither a trip count M nor a condition: it would never end",
                         hint="give the Loop a trip count or a condition input")
    keep_going = True if cond is None else _truth(cond, "Loop condition")
    carried = list(v_initial)
    scans: list[list[np.ndarray]] = [[] for _ in range(n_scan)]
    i = 0
    while keep_going and (trips is None or i < trips):
        outs = _ctx.run_graph(body, [np.array(i, np.int64), np.array(keep_going), *carried])
        # onnxruntime (the oracle) honours the body's condition even when the cond input is absent
        keep_going = _truth(outs[0], "Loop body condition")
        carried = list(outs[1:1 + n_carried])
        for k in range(n_scan):
            scans[k].append(np.asarray(outs[1 + n_carried + k]))
        i += 1
    stacked = []
    for k, s in enumerate(scans):
        if s:
            try:
                stacked.append(np.stack(s))
            except ValueError:
                raise ModelError(f"Loop scan output {body.outputs[1 + n_carried + k]!r} changes shape between "
                                 f"iterations ({sorted({tuple(x.shape) for x in s})})") from None
        else:   # zero iterations: an empty tensor of the declared type
            info = body.tensor_info(body.outputs[1 + n_carried + k])
            tail = tuple(d if isinstance(d, int) else 0 for d in (info.shape or ()))
            stacked.append(np.zeros((0,) + tail, info.dtype or np.float32))
    return tuple(np.asarray(c) for c in carried) + tuple(stacked)
