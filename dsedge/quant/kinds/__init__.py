"""The quantised forms of nodes: one registered class per kind (base.py), and the functions
the rest of dsedge calls them through.

Every op declares a `QuantRule(kind, roles)` in the registry (dsedge/ops); the kind's class
(weighted.py, moving.py, elementwise.py, reduce.py) turns it into
  * `why_not(g, node)` / `supports(g, node)`: whether the node's attributes and shapes allow
    its int8 form;
  * `lower_node(q, node, in_qp, out_qp)`: the node's integer parameters, derived once, in
    `attrs["_q"]` (its constant operands replaced by int8/int32 tensors in `q`);
  * `run_int(node, args)`: the integer reference of a lowered node; the interpreter calls it
    for every node that carries `_q`;
  * the `.dse` encoding of `_q` and its inverse (used by dsedge/export/dse.py).

Kinds: weighted, bytes, minmax, table, add, mul, avgpool, concat, softmax, act_matmul (a
MatMul of two activations: a form in MatMul's `QuantRule.forms`, matmul.py), w4a8 (int4
weights), a16w8 (int16 activations, a16w8.py: a form of the weighted ops that the quantiser
chooses per node, docs/quant-arith.md §15), and "dynamic": a
weighted op (Conv, Gemm, MatMul) quantised without calibration, whose activation is quantised
per inference (`dynamic_why_not`, `lower_dynamic`; arithmetic in docs/quant-arith.md §12). It
is not an op's QuantRule kind: the dynamic quantiser (dsedge/quant/dynamic.py) chooses it for
the weighted kind's ops.
"""
from __future__ import annotations

import numpy as np

from ...interp import register_int_reference
from ...ir import Graph, Node, QParams
from ...ops.registry import ACT
from .. import arith
from . import a16w8, elementwise, matmul, moving, reduce  # noqa: F401  (register their kinds)
from .base import (KINDS, QuantKind, act_inputs, explicit_pads, form_of, kind, kind_attrs, recorded_kind,  # noqa: F401
                   register_kind, roles_of, rule_of)
from .weighted import DYNAMIC_OPS, out_channel_axis, reduction_size, weight_axis  # noqa: F401


def why_not(g: Graph, n: Node) -> str | None:
    """None when the node's int8 form applies, else the reason it does not."""
    rule = rule_of(n)
    if rule is None:
        return "no int8 form"
    k = form_of(g, n)
    if k is None:
        return f"unknown quantisation kind {rule.kind!r}"
    return k.why_not(g, n)


def supports(g: Graph, n: Node) -> bool:
    return why_not(g, n) is None


def lower_node(q: Graph, n: Node, in_qp: list, out_qp: list, *, kind_name: str | None = None, **opts) -> None:
    """Attach integer parameters to a quantised node of the graph `q` (edits q and n): its
    form (`form_of`: its op's kind, or a form its operands select), or `kind_name`. `opts` go
    to the kind (weighted: `bias_shift`, `weight_q`)."""
    name = kind_name or form_of(q, n).name
    params: dict = {"kind": name}
    params.update(kind(name, f"node {n.name!r} ({n.op}): no int8 lowering").lower(q, n, in_qp, out_qp, **opts))
    n.attrs["_q"] = params


def dynamic_why_not(g: Graph, n: Node) -> str | None:
    """None when node n can be quantised dynamically (int8 weights, activation quantised at run
    time), else why not."""
    return KINDS["dynamic"].why_not(g, n)


def lower_dynamic(q: Graph, n: Node) -> None:
    """The dynamic int8 form of a weighted node (edits q and n; weighted.Dynamic)."""
    lower_node(q, n, [None], [None], kind_name="dynamic")


def run_int(n: Node, args: list) -> tuple:
    """The integer reference of a lowered node: int8 in, int8 out (float for float_out and
    dynamic nodes)."""
    name = n.attrs["_q"]["kind"]
    return kind(name, f"node {n.name!r}: no integer reference").run(n, args)


def measure(g: Graph, n: Node, args: list, in_qp: dict, out_qp: QParams | None) -> np.ndarray:
    """Dequantised output of node n's int8 form on float inputs `args` (for the plan); with
    `out_qp` None, of its float-output form (a `float_output` kind: the accumulator
    dequantised, no output rounding)."""
    roles = roles_of(g, n)
    form = form_of(g, n)
    mini = Graph(consts={i: g.consts[i] for i in n.inputs if i and i in g.consts})
    for i in n.inputs:
        if i and i not in mini.consts:
            mini.info[i] = g.tensor_info(i)
    node = Node(n.op, list(n.inputs), list(n.outputs), dict(n.attrs), n.name, n.domain)
    qargs, qps = [], []
    for k, (i, a) in enumerate(zip(n.inputs, args)):
        if i and roles[k] == ACT and i not in g.consts:
            p = in_qp[i]
            qargs.append(arith.quantize(a, p.scale, int(p.zero_point)))
            qps.append(p)
        else:
            qargs.append(a)
            qps.append(None)
    outs_qp = [out_qp]
    lower_node(mini, node, qps, outs_qp, kind_name=form.name)
    qargs = [mini.consts[i] if (i and i in mini.consts) else a for i, a in zip(node.inputs, qargs)]
    y = run_int(node, qargs)[0]
    if out_qp is None:
        return np.asarray(y, np.float64)
    return arith.dequantize(y, outs_qp[0].scale, int(outs_qp[0].zero_point)).astype(np.float64)


register_int_reference(run_int)   # the interpreter runs `_q` nodes with it (it never imports upwards)
