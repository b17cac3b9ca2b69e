"""dsedge-internal ops produced by passes (domain "dsedge", ids from 1000).

Elementwise: a region of elementwise float ops computing y = f(x) of one tensor x, collapsed
by `passes.simplify.collapse_unary`. `program` is a tuple of steps `(op, args, attrs)`;
each arg is `("v", k)` (value k: 0 is x, k >= 1 the result of step k-1), `("c", j)`
(`consts[j]`, a scalar) or None (an omitted optional input). The float reference runs the
steps with the original ops' references, so it equals the uncollapsed graph exactly; the
int8 form is one 256-entry table of f evaluated in float64 (DESIGN.md §3).
"""
from __future__ import annotations

import numpy as np

from .registry import REGISTRY, QuantRule, op, same_infer


def eval_program(x: np.ndarray, program, consts, result: int) -> np.ndarray:
    vals = [x]
    for name, args, attrs in program:
        d = REGISTRY.get(name)
        ins = [None if a is None else (vals[a[1]] if a[0] == "v" else np.asarray(consts[a[1]]).astype(x.dtype))
               for a in args]
        vals.append(d.call(ins, dict(attrs))[0])
    return vals[result]


def expand_steps(n, const, fresh):
    """Elementwise node n back as the ops of its program, up to its result: yields (op, inputs,
    output, attrs, last) per step, for the QDQ writer and the exporter. const(base, value) names
    a scalar constant, fresh(base) a new intermediate tensor (called lazily, so a caller that adds
    each step to its graph before the next keeps its name generator aware of it); the last step
    writes n's output. A program whose result is x itself is one Identity."""
    program, consts, result = n.attrs["program"], n.attrs["consts"], int(n.attrs["result"])
    base = n.name or n.outputs[0]
    if result == 0:
        yield "Identity", [n.inputs[0]], n.outputs[0], {}, True
        return
    vals = [n.inputs[0]]
    for k, (name, args, attrs) in enumerate(program[:result]):
        ins = ["" if a is None else vals[a[1]] if a[0] == "v" else const(f"{base}_c", np.asarray(consts[a[1]]))
               for a in args]
        last = k + 1 == result
        dst = n.outputs[0] if last else fresh(f"{base}_{name}")
        yield name, ins, dst, dict(attrs or {}), last
        vals.append(dst)


@op("Elementwise", 1000, domain="dsedge", infer=same_infer, quant=QuantRule("table"))
def elementwise(x, *, program=(), consts=(), result=0, source_nodes=()):
    return eval_program(x, program, consts, result)


def apply_activation(x: np.ndarray, act) -> np.ndarray:
    """A fused activation (`_act` attribute set by passes.simplify.fuse_activations) applied to a
    node's float output: ("clip", lo, hi)."""
    kind = act[0]
    if kind == "clip":
        lo, hi = act[1], act[2]
        y = x
        if lo != float("-inf"):
            y = np.maximum(y, np.asarray(lo, dtype=x.dtype))
        if hi != float("inf"):
            y = np.minimum(y, np.asarray(hi, dtype=x.dtype))
        return y
    raise ValueError(f"unknown fused activation {act!r}")
