"""fp16 for float nodes: fp16 weights (storage; compute stays float32) and fp16 arithmetic.

fp16 weights: `to_fp16_weights` (`--precision fp16`: every float constant of more than one
element), `fp16_node_weights` (the constants of chosen float nodes, `QuantConfig.fp16_nodes`)
and `round_fp16`: values rounded to float16 and kept float32 in the IR, listed in the graph's
`fp16_weights`, which the writers store as float16 (`.dse` layout 5, widened once by the loader).

fp16 arithmetic (docs/quant-arith.md §16):

A float Conv, Gemm or MatMul with constant weights may compute in binary16 where the target has
it (ARMv8.2-A FP16: the `neon_fp16` kernels), widened to float32 elsewhere by default. This
module picks the nodes (`QuantConfig.fp16_arith_nodes`: names, op types or "all"; `dsedge
quantize --fp16-arith`, `dsedge plan --fp16-arith`) and marks them: the IR annotation
`_fp16_arith` = 1 (the `.dse` INT attribute `fp16_arith`), their weight and bias rounded to
float16 and listed in `fp16_weights` (layout 5 in `.dse`, as fp16 weights are).

The arithmetic itself (the binary16 reference the interpreter runs for a marked node, so the
planner judges what the device computes) and each op's eligibility in isolation are the op
registry's (dsedge/ops/half.py, `OpDef.fp16`); here is what depends on the graph: the node is
float (not lowered to int8), its output is float32, and its weight and bias can be float16 (they
are already, or every reader of them is marked too).

ONNX has no way to mark a float32 node's arithmetic precision: the ONNX writers write a marked
node as float32 compute on its fp16 weights (widened), as for fp16 weights alone, and list the
marked nodes in the model's metadata (`ONNX_METADATA_KEY`).
"""
from __future__ import annotations

import numpy as np

from ..errors import DseError
from ..ir import Graph, Node
from ..ops import REGISTRY
from ..ops.half import FP16_ARITH

ONNX_METADATA_KEY = "dsedge.fp16_arith_nodes"
REASON = "fp16 arithmetic (binary16 where the target has it, else widened to float32)"


# -- fp16 weights -------------------------------------------------------------------------------

def to_fp16_weights(g: Graph) -> Graph:
    """fp16 weights, fp32 compute: float constants with more than one element are rounded to
    float16 (values stay float32 in the IR so every op computes in fp32; writers store them
    as float16, listed in metadata `fp16_weights`; the .dse loader widens them once)."""
    q = g.copy()
    round_fp16(q, [k for k, v in q.consts.items() if v.dtype == np.float32 and v.size > 1])
    return q


def round_fp16(q: Graph, names) -> None:
    """Round the float32 constants `names` of q to float16 values (in place; kept float32 in the
    IR) and list them in `q.fp16_weights`, which the writers store as float16."""
    for k in names:
        q.consts[k] = q.consts[k].astype(np.float16).astype(np.float32)
    q.fp16_weights = tuple(sorted({*getattr(q, "fp16_weights", ()), *names}))  # type: ignore[attr-defined]


def fp16_node_weights(q: Graph, nodes) -> dict[str, list[str]]:
    """The float constants (float32, more than one element) of the float nodes of q named (or of
    an op type) in `nodes` ("*": every float node) that only such nodes read: {node: [constants]}.
    An int8 node's constants are its own quantised copies, so they never qualify."""
    sel = set(nodes)
    pick = [n for n in q.nodes if "_q" not in n.attrs and ("*" in sel or n.name in sel or n.op in sel)]
    chosen = {n.name for n in pick}
    readers = q.consumers()
    out: dict[str, list[str]] = {}
    for n in pick:
        cs = [i for i in dict.fromkeys(n.inputs) if i and i in q.consts and q.consts[i].dtype == np.float32
              and q.consts[i].size > 1 and all(r.name in chosen for r in readers.get(i, []))]
        if cs:
            out[n.name] = cs
    return out


# -- fp16 arithmetic ----------------------------------------------------------------------------

def why_not(g: Graph, n: Node) -> str | None:
    """None when node n of g may compute in binary16 (its constants aside: see `mark`), else why not."""
    d = REGISTRY.get(n.op, n.domain)
    if d is None or d.fp16 is None:
        return f"no fp16 arithmetic for {n.op} (Conv, Gemm and MatMul with constant weights only)"
    if "_q" in n.attrs:
        return "it runs in int8 (fp16 arithmetic is for float nodes: keep it float)"
    if any(o and g.tensor_info(o).dtype != np.dtype(np.float32) for o in n.outputs):
        return "its output is not float32"
    infos = [g.tensor_info(i) if i else None for i in n.inputs]
    consts = [g.consts.get(i) if i else None for i in n.inputs]
    return d.fp16.why_not({k: v for k, v in n.attrs.items() if not k.startswith("_")}, infos, consts)


def check_names(g: Graph, selection, where: str = "--fp16-arith") -> None:
    """A DseError naming every item of `selection` that is neither "all", a node of g nor an op."""
    names = {n.name for n in g.nodes}
    bad = [k for k in selection if k != "all" and k not in names and REGISTRY.get(k) is None]
    if bad:
        some = ", ".join(sorted(n.name for n in g.nodes if n.name and _has_fp16(n))[:8])
        raise DseError(f"{where} {', '.join(repr(b) for b in bad)}: the model (optimised) has no node or op type "
                       f"of that name", hint=f"name a node ({some or 'it has no Conv, Gemm or MatMul'}), an op "
                                             "type (Conv, Gemm, MatMul) or all")


def _has_fp16(n: Node) -> bool:
    return getattr(REGISTRY.get(n.op, n.domain), "fp16", None) is not None


def _selected(n: Node, selection) -> str | None:
    """How node n is selected: "name", "op" (its op type or all), or None."""
    if n.name in selection:
        return "name"
    return "op" if (n.op in selection or "all" in selection) else None


def mark(q: Graph, selection) -> tuple[list[str], dict[str, str]]:
    """Mark the eligible nodes of q that `selection` names (by name, op type, or "all") for
    fp16 arithmetic: the annotation, their weight and bias rounded to float16 (edits q).
    Returns (marked node names, {node: why not} for the refused ones named, or of an op type that
    has fp16 arithmetic; an int8 node asked by op type or "all" is not listed)."""
    check_names(q, selection)
    refused: dict[str, str] = {}
    ok: list[Node] = []
    for n in q.nodes:
        how = _selected(n, selection)
        if how is None or n.attrs.get(FP16_ARITH):
            continue
        why = why_not(q, n)
        if why is None:
            ok.append(n)
        elif how == "name" or (_has_fp16(n) and "_q" not in n.attrs):
            refused[n.name] = why
    half = set(getattr(q, "fp16_weights", ()))
    consumers = q.consumers()
    while True:          # a constant shared with a node that keeps float32 weights stays float32
        chosen = {n.name for n in ok}
        drop = [n for n in ok if any(c not in half and not all(r.name in chosen for r in consumers.get(c, []))
                                     for c in _constants(q, n))]
        if not drop:
            break
        for n in drop:
            refused[n.name] = "its weight or bias is shared with a node that keeps float32 weights"
        ok = [n for n in ok if all(n is not d for d in drop)]
    round_fp16(q, sorted({c for n in ok for c in _constants(q, n)} - half))
    for n in ok:
        n.attrs[FP16_ARITH] = 1
    return [n.name for n in ok], refused


def _constants(q: Graph, n: Node) -> list[str]:
    """The float constants node n computes with besides its input: weight and bias."""
    return [i for i in dict.fromkeys(n.inputs[1:]) if i and i in q.consts and q.consts[i].dtype == np.float32]


def marked(g: Graph) -> list[str]:
    """The names of the nodes of g marked for fp16 arithmetic."""
    return [n.name for n in g.nodes if n.attrs.get(FP16_ARITH)]
