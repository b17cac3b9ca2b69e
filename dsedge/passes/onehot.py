"""One-hot embeddings: a one-hot row times a constant matrix becomes a row lookup.

jax's and TensorFlow's one_hot write an embedding as Equal(X[..., None], arange(K)) cast to
float, times a weight matrix W [K, N] (magika's byte embedding: a [2048, 257] one-hot and
2048 dot products of length 257 per inference). Every row of the one-hot is one of K + 1
rows (index 0..K-1, or all zeros for an index outside [0, K)), and everything after it that
works row by row depends only on which one. So

    Cast(Equal(X, arange K)) -> chain -> Y       becomes       Gather(T, i)

with i = X clamped into [0, K] (outside -> K) and reshaped without its last axis, and T the
chain evaluated once, here, on the K + 1 possible rows by the graph's own semantics (the
float references, or the integer reference of a lowered int8 node): each output row is the
same bytes the chain would compute.

The chain follows single readers from the cast, through row-wise nodes only: QuantizeLinear /
DequantizeLinear with per-tensor parameters, MatMul with a constant rank-2 right operand
(float or lowered int8), a binary Add/Sub/Mul/Div whose other operand is a constant varying
along the last axis only, and the unary elementwise ops whose C kernels give the reference's
bytes (not the transcendentals, whose C math differs from numpy's in the last bit); it must
contain the MatMul and ends at its last float tensor, or quantised tensor (an int8 table with
that tensor's parameters: Gather moves its bytes). A float one-hot row has one non-zero product, so the float MatMul's
order of summation does not matter either.

It runs in `.dse` export's shape specialisation (export/specialize.py), on the quantised graph:
the index's last extent must be known to be 1, and the plan (which nodes are int8, their
parameters) is the one calibration made, so the artifact computes the same bytes with or
without the rewrite; the QDQ ONNX export keeps the original nodes.
"""
from __future__ import annotations

import numpy as np

from ..interp import execute
from ..ir import Graph, Node, TensorInfo

_MAX_TABLE = 1 << 22          # elements of T: a larger table is not worth its bytes


def _onehot_source(g: Graph, name: str, producers):
    """(X, K) when `name` is Equal(X, R) (either order): X an integer tensor whose last axis has
    extent 1, R a constant counting 0..K-1 along its last axis (extent 1 elsewhere, rank <= X's)."""
    eq = producers.get(name)
    if eq is None or eq.op != "Equal" or eq.domain or len(eq.inputs) != 2:
        return None
    for x, r in (eq.inputs, eq.inputs[::-1]):
        rv, xi = g.consts.get(r), g.info.get(x)
        if rv is None or x in g.consts or xi is None or xi.shape is None or xi.dtype is None or not xi.shape:
            continue
        if np.dtype(xi.dtype).kind not in "iu" or rv.dtype.kind not in "iu" or not 1 <= rv.ndim <= len(xi.shape):
            continue
        K = rv.shape[-1]
        if xi.shape[-1] == 1 and K >= 1 and rv.size == K and np.array_equal(rv.reshape(-1), np.arange(K)):
            return x, int(K)
    return None


def _row_const(g: Graph, name: str) -> bool:
    c = g.consts.get(name)
    return c is not None and c.ndim >= 1 and all(d == 1 for d in c.shape[:-1])


# Float ops whose C kernels give the numpy reference's bytes (docs/kernels.md: one IEEE operation
# per element; sqrt is exact): a table computed here by the reference is then what the C
# runtime would compute. Transcendentals (exp, tanh, erf, ...) are the runtime's own math,
# within an ulp of numpy's but not the same bytes: a chain stops before them.
_EXACT_UNARY = {"Relu", "Neg", "Abs", "Floor", "Ceil", "Round", "Sign", "Sqrt", "Reciprocal", "LeakyRelu",
                "HardSigmoid", "HardSwish", "Softsign", "Clip"}
_EXACT_BINARY = {"Add", "Sub", "Mul", "Div"}


def _row_wise(g: Graph, n: Node, t: str) -> bool:
    """n, reading tensor t as its first operand, computes each row of its output from the same
    row of t alone (and constants), with the reference's exact bytes."""
    if n.domain == "dsedge":
        return (n.op == "Elementwise" and n.inputs[:1] == [t]
                and all(step[0] in _EXACT_UNARY | _EXACT_BINARY for step in n.attrs.get("program", ())))
    if n.domain or not n.inputs or n.inputs[0] != t or n.attrs.get("_act"):
        return False
    if n.op in ("QuantizeLinear", "DequantizeLinear"):
        return all(i in g.consts and g.consts[i].size == 1 for i in n.inputs[1:] if i)
    if n.op == "MatMul":       # a lowered int8 MatMul has a third input, its int32 bias
        return (len(n.inputs) in (2, 3) and n.inputs[1] in g.consts and g.consts[n.inputs[1]].ndim == 2
                and all(i in g.consts for i in n.inputs[2:] if i))
    if n.op in _EXACT_BINARY:
        return len(n.inputs) == 2 and n.inputs[1] != t and _row_const(g, n.inputs[1])
    return n.op in _EXACT_UNARY and all(i in g.consts for i in n.inputs[1:] if i)


def onehot_to_gather(g: Graph) -> int:
    """Rewrites every one-hot embedding of g (module docstring); returns how many."""
    changed = 0
    producers, consumers = g.producers(), g.consumers()
    for cast in list(g.nodes):
        if cast.op != "Cast" or cast.domain or len(cast.inputs) != 1:
            continue
        ci, co = g.info.get(cast.inputs[0]), g.info.get(cast.outputs[0])
        if ci is None or co is None or ci.dtype != np.dtype(bool) or co.dtype is None or np.dtype(co.dtype).kind != "f":
            continue
        src = _onehot_source(g, cast.inputs[0], producers)
        if src is None:
            continue
        x, K = src
        chain, t, end, has_mm = [], cast.outputs[0], None, False
        while t not in g.outputs:
            readers = consumers.get(t, [])
            if len(readers) != 1 or not _row_wise(g, readers[0], t):
                break
            n = readers[0]
            chain.append(n)
            has_mm |= n.op == "MatMul"
            t = n.outputs[0]
            ti = g.info.get(t)
            if has_mm and ti is not None and ti.dtype is not None and (
                    (t not in g.qparams and np.dtype(ti.dtype).kind == "f") or
                    (t in g.qparams and np.dtype(ti.dtype) == g.qparams[t].dtype)):
                end = len(chain)
        if end is None:
            continue
        chain, out = chain[:end], chain[end - 1].outputs[0]
        sub = Graph(nodes=list(chain), inputs=[cast.outputs[0]], outputs=[out], info=g.info, consts=g.consts,
                    qparams=g.qparams, opset=g.opset)
        rows = np.zeros((K + 1, K), np.dtype(co.dtype))
        rows[np.arange(K), np.arange(K)] = 1
        table = np.asarray(execute(sub, {cast.outputs[0]: rows})[0])
        if table.ndim > 2 and all(d == 1 for d in table.shape[:-2]):   # a constant of higher rank broadcast
            table = table.reshape(table.shape[-2:])
        if table.ndim != 2 or table.shape[0] != K + 1 or table.size > _MAX_TABLE:
            continue
        xi, base = g.info[x], cast.name or cast.outputs[0]
        dt = np.dtype(xi.dtype)
        kc, zc = g.add_const(f"{base}_K", np.array(K, dt)), g.add_const(f"{base}_0", np.array(0, dt))
        tc = g.add_const(f"{base}_table", table)
        if out in g.qparams:         # an int8 table: the quantised output's values, its parameters
            g.qparams[tc] = g.qparams[out]
        names = [g.fresh_name(f"{base}_{s}") for s in ("neg", "lo")]
        names += [g.fresh_name(f"{base}_{s}") for s in ("in", "idx", "rows")]
        neg, lo, inr, idx, sq = names
        for nm, dtn in ((neg, np.dtype(bool)), (lo, dt), (inr, np.dtype(bool)), (idx, dt)):
            g.info[nm] = TensorInfo(dtn, xi.shape)
        g.info[sq] = TensorInfo(dt, tuple(xi.shape)[:-1])
        axes = g.add_const(f"{base}_axes", np.array([-1], np.int64))
        new = [Node("Less", [x, zc], [neg], name=f"{base}/neg"),
               Node("Where", [neg, kc, x], [lo], name=f"{base}/neg_to_K"),
               Node("Less", [lo, kc], [inr], name=f"{base}/in_range"),
               Node("Where", [inr, lo, kc], [idx], name=f"{base}/index"),
               Node("Squeeze", [idx, axes], [sq], name=f"{base}/squeeze"),
               Node("Gather", [tc, sq], [out], {"axis": 0}, name=f"{base}/gather")]
        at = g.nodes.index(chain[-1])
        g.nodes[at:at + 1] = new
        for n in chain[:-1]:
            g.nodes.remove(n)
        changed += 1
        producers, consumers = g.producers(), g.consumers()
    return changed
