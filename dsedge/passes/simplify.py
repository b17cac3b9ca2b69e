"""Graph simplification passes on the float IR.

  remove_identity   Identity / inference Dropout -> rewired away
  fold_constants    nodes whose inputs are all constant are evaluated once; Shape/Size of a
                    tensor with a static shape become constants (so shape arithmetic folds
                    once input shapes are fixed); a fold that would store more bytes than it
                    frees, for a reader that does not need a constant, is left (FoldBudget)
  eliminate_dead    nodes whose outputs nobody reads, constants nobody reads
  fold_batchnorm    Conv / ConvTranspose / Gemm (constant weights) followed by
                    BatchNormalization -> new weights and bias
  fold_bias_add     Conv / ConvTranspose / Gemm followed by an Add of a per-channel constant
                    (the bias as exporters from PaddlePaddle or TensorFlow write it) -> bias
  fuse_activations  a clamp-like activation (Relu, Clip with constant bounds) that is the only
                    reader of a Conv/ConvTranspose/Gemm/MatMul/Add output becomes the
                    producer's `_act` annotation, applied by the interpreter and folded into
                    the requantisation clamp in int8
  flush_denormal_weights  float32 weights (the registry's WEIGHT inputs: Conv, ConvTranspose,
                    Gemm, MatMul) with subnormal entries (0 < |w| < 2^-126) have them set to
                    zero of the same sign: x86 cores take a microcode assist of ~100 cycles per
                    multiply with a subnormal operand (PaddleOCR's text detector: 185,260 of one
                    1x1 conv's 294,912 weights; 227 ms for that conv instead of 0.1 ms on an
                    Intel Xeon), and at float32 precision such a term never changes a sum that
                    is not itself subnormal. Only constants that every reader reads as a weight.
  collapse_unary    a connected region of elementwise nodes computing f(x) of one tensor x
                    (other operands scalar constants), e.g. x*sigmoid(x), x*clip(x+3,0,6)/6 or
                    GELU as erf arithmetic, becomes one `dsedge.Elementwise` node carrying the
                    region as a small program; in int8 it is a single 256-entry table

Every pass edits the graph in place and returns the number of changes.
"""
from __future__ import annotations

import numpy as np

from ..ir import Graph, Node, TensorInfo
from ..ops.fused import apply_activation  # noqa: F401  (the fused-activation rule lives with the ops)
from ..ops import REGISTRY
from ..ops.registry import WEIGHT

_NO_FOLD = {"If", "Loop", "RandomNormal", "RandomUniform", "RandomNormalLike", "RandomUniformLike",
            "Multinomial", "DynamicQuantizeLinear"}
_FOLD_MAX_ELEMS = 1 << 26


def remove_identity(g: Graph) -> int:
    changed = 0
    for n in list(g.nodes):
        for sg in n.subgraphs():
            changed += remove_identity(sg)
        if n.op not in ("Identity", "Dropout") or n.domain:
            continue
        if n.op == "Dropout" and len([o for o in n.outputs if o]) > 1:
            continue  # the mask output is read: keep the node
        src, dst = n.inputs[0], n.outputs[0]
        if dst in g.outputs:
            if src in g.inputs or src in g.consts or src in g.outputs or src in g.outer:
                continue  # an output that aliases an input/const/other output needs the copy
            prod = g.producers().get(src)
            if prod is None:
                continue
            # rename the producer's output to the graph output name
            prod.outputs = [dst if o == src else o for o in prod.outputs]
            g.nodes.remove(n)
            g.replace_input(src, dst)
            if src in g.info:
                g.info[dst] = g.info.get(dst) if g.info.get(dst) and g.info[dst].shape else g.info[src]
        else:
            g.nodes.remove(n)
            g.replace_input(dst, src)
        changed += 1
    return changed


def _static_shape(g: Graph, name: str):
    info = g.tensor_info(name)
    return info.shape if info.is_static else None


# Folding may store at most this many bytes more than it frees (shape arithmetic, small states).
FOLD_GROWTH_BYTES = 4096


class FoldBudget:
    """Whether folding a node would make the model's constants larger, which a quantised file
    must never be for nothing (an int8 model 2.3x the size of its float source: a filter bank
    built at run time from a compact constant through Neg and Transpose, materialised next to
    the constant it came from).

    A node whose inputs are all constant is folded unless (1) its outputs hold more than
    FOLD_GROWTH_BYTES more than the input constants it frees (constants it is the last reader
    of: an Expand or Tile of a small constant, or a Neg of a constant that other nodes still
    read, which would be stored twice), (2) it is a run-time op (it has a quantisation rule, so
    it has a kernel everywhere: Neg, Transpose, Expand, Tile, Mul, ...), and (3) no reader
    needs the value as a constant: a reader that would fold too (all its inputs constant or
    results of such folds) needs it when one of its own readers does; otherwise a reader in a WEIGHT, BIAS or PARAM
    role, a reader without a quantisation rule, a sub-graph or a graph output needs it, and a
    reader in an ACT role does not. So Conv weights
    computed from constants are still folded (and then stored in int8), while a float filter
    bank stays an expression over the one compact constant. `folded(n)` tells the budget that
    n was folded (it no longer reads its inputs)."""

    def __init__(self, g: Graph):
        self.g = g
        self.consumers = g.consumers()
        self.gone: set[int] = set()
        # tensors this pass can make constant: constants, and outputs of foldable nodes whose
        # inputs all are (so a reader fed by several pending folds counts as folding too)
        self.derivable = set(g.consts)
        for n in g.nodes:
            if REGISTRY.get(n.op, n.domain) is None or n.op in _NO_FOLD or any(n.subgraphs()):
                continue
            if (n.op in ("Shape", "Size") and not n.domain and _static_shape(g, n.inputs[0]) is not None) \
                    or all((not i) or i in self.derivable for i in n.inputs):
                self.derivable.update(o for o in n.outputs if o)

    def folded(self, n: Node) -> None:
        self.gone.add(id(n))

    def _readers(self, name: str) -> list[Node]:
        return [r for r in self.consumers.get(name, []) if id(r) not in self.gone]

    def _needed(self, name: str, depth: int = 0) -> bool:
        g = self.g
        if name in g.outputs or name in g.outer or depth > 8:
            return True
        for r in self._readers(name):
            d = REGISTRY.get(r.op, r.domain)
            if d is None or any(r.subgraphs()):
                return True
            if r.op not in _NO_FOLD and all((not i) or i in self.derivable for i in r.inputs):
                if any(o and self._needed(o, depth + 1) for o in r.outputs):   # r folds too
                    return True
                continue
            if d.quant is None or any(i == name and d.quant.role(k) != "act" for k, i in enumerate(r.inputs)):
                return True
        return False

    def allows(self, n: Node, outs) -> bool:
        g = self.g
        d = REGISTRY.get(n.op, n.domain)
        grown = sum(np.asarray(o).nbytes for o in outs if o is not None)
        freed = sum(g.consts[i].nbytes for i in set(n.inputs)
                    if i and i in g.consts and i not in g.outputs and i not in g.outer
                    and all(r is n for r in self._readers(i)))
        if grown <= freed + FOLD_GROWTH_BYTES or d is None or d.quant is None:
            return True
        return any(o and self._needed(o) for o in n.outputs)


def fold_constants(g: Graph) -> int:
    changed = 0
    keep: list[Node] = []
    budget = FoldBudget(g)
    for n in g.nodes:
        d = REGISTRY.get(n.op, n.domain)
        for sg in n.subgraphs():
            changed += fold_constants(sg)
        value = None
        if d is not None and not n.domain and n.op in ("Shape", "Size") and n.inputs[0] not in g.consts:
            shape = _static_shape(g, n.inputs[0])
            if shape is not None:
                value = (d.call([np.zeros(shape, dtype=np.uint8)], n.attrs),)
        elif (d is not None and n.op not in _NO_FOLD and not any(n.subgraphs())
              and all((not i) or i in g.consts for i in n.inputs)
              and not n.attrs.get("_act")):
            args = [g.consts[i] if i else None for i in n.inputs]
            try:
                with np.errstate(all="ignore"):
                    outs = d.call(args, n.attrs)
                if sum(np.asarray(o).size for o in outs) <= _FOLD_MAX_ELEMS and budget.allows(n, outs):
                    value = (outs,)
            except Exception:
                value = None  # leave it: the interpreter reports the problem with context
        if value is None:
            keep.append(n)
            continue
        budget.folded(n)
        for name, v in zip(n.outputs, value[0]):
            if name:
                g.consts[name] = np.asarray(v)
                g.info[name] = TensorInfo(np.asarray(v).dtype, tuple(np.shape(v)))
        changed += 1
    g.nodes = keep
    return changed


def eliminate_dead(g: Graph) -> int:
    live = set(g.outputs)
    keep: list[Node] = []
    for n in reversed(g.nodes):
        if any(o in live for o in n.outputs if o):
            keep.append(n)
            live.update(i for i in n.inputs if i)
            for sg in n.subgraphs():
                eliminate_dead(sg)
                live.update(sg.free_names())
    removed = len(g.nodes) - len(keep)
    g.nodes = keep[::-1]
    for n in g.nodes:  # drop unread optional outputs (e.g. Dropout mask, MaxPool indices)
        n.outputs = [o if (o in live or k == 0) else "" for k, o in enumerate(n.outputs)]
        while len(n.outputs) > 1 and not n.outputs[-1]:
            n.outputs.pop()
    dead_consts = [k for k in g.consts if k not in live and k not in g.outer]
    for k in dead_consts:
        del g.consts[k]
    return removed + len(dead_consts)


def _single_reader(g: Graph, name: str, consumers=None) -> Node | None:
    if name in g.outputs:
        return None
    cons = (consumers or g.consumers()).get(name, [])
    return cons[0] if len(cons) == 1 else None


def fold_batchnorm(g: Graph) -> int:
    changed = 0
    consumers = g.consumers()
    for n in list(g.nodes):
        if n.domain or n.op not in ("Conv", "ConvTranspose", "Gemm") or n.attrs.get("_act"):
            continue
        bn = _single_reader(g, n.outputs[0], consumers)
        if bn is None or bn.op != "BatchNormalization" or bn.domain or len([o for o in bn.outputs if o]) != 1:
            continue
        if not all(i in g.consts for i in bn.inputs[1:5]) or n.inputs[1] not in g.consts:
            continue
        if len(n.inputs) > 2 and n.inputs[2] and n.inputs[2] not in g.consts:
            continue
        scale, b, mean, var = (g.consts[i].astype(np.float64) for i in bn.inputs[1:5])
        eps = float(bn.attrs.get("epsilon", 1e-5))
        k = scale / np.sqrt(var + eps)
        w = g.consts[n.inputs[1]].astype(np.float64)
        if n.op == "Conv":
            w2 = w * k.reshape(-1, *[1] * (w.ndim - 1))
        elif n.op == "ConvTranspose":
            grp = int(n.attrs.get("group", 1))
            cin, cout_g = w.shape[0], w.shape[1]
            w2 = (w.reshape(grp, cin // grp, cout_g, *w.shape[2:])
                  * k.reshape(grp, 1, cout_g, *[1] * (w.ndim - 2))).reshape(w.shape)
        else:  # Gemm: output channels along B's N axis
            if float(n.attrs.get("alpha", 1.0)) != 1.0 or w.ndim != 2:
                continue
            w2 = w * (k[:, None] if n.attrs.get("transB", 0) else k[None, :])
        bias = _bias_vector(g, n, k.shape[0])
        if bias is None:
            continue
        b2 = (bias - mean) * k + b
        dtype = g.consts[n.inputs[1]].dtype
        wname = g.add_const(f"{n.name}_W_bn", w2.astype(dtype))
        bname = g.add_const(f"{n.name}_B_bn", b2.astype(dtype))
        n.inputs = [n.inputs[0], wname, bname]
        if n.op == "Gemm":
            n.attrs = {**n.attrs, "beta": 1.0}
        out = bn.outputs[0]
        g.nodes.remove(bn)
        n.outputs = [out]
        changed += 1
        consumers = g.consumers()
    return changed


def _bias_vector(g: Graph, n: Node, cout: int) -> np.ndarray | None:
    """The constant bias of Conv/ConvTranspose/Gemm n as float64 (cout,), zeros when it has none;
    None when it is not one value per channel (a Gemm's C may be a matrix) or is scaled (beta)."""
    if len(n.inputs) < 3 or not n.inputs[2]:
        return np.zeros(cout)
    b = g.consts[n.inputs[2]].astype(np.float64)
    if b.size not in (1, cout) or (n.op == "Gemm" and float(n.attrs.get("beta", 1.0)) != 1.0):
        return None
    return np.broadcast_to(b.reshape(-1), (cout,))


def _channel_vector(c: np.ndarray, rank: int, cout: int, axis: int) -> np.ndarray | None:
    """c as a per-channel vector (cout,) when adding c to a rank-`rank` tensor whose channels are
    on `axis` adds one value per channel and changes no shape; else None."""
    if c.dtype.kind != "f" or c.ndim > rank:
        return None
    shape = (1,) * (rank - c.ndim) + tuple(c.shape)
    if any(d != 1 for k, d in enumerate(shape) if k != axis % rank) or shape[axis % rank] not in (1, cout):
        return None
    return np.broadcast_to(c.astype(np.float64).reshape(-1), (cout,))


def fold_bias_add(g: Graph) -> int:
    """Conv / ConvTranspose / Gemm (constant weights) whose only reader adds a per-channel
    constant (PaddlePaddle and TensorFlow exports write the bias as a separate Add) -> the
    constant joins the bias. In int8 the output is then quantised once, after the bias, instead
    of before it and again after the Add."""
    changed = 0
    consumers = g.consumers()
    for n in list(g.nodes):
        if n.domain or n.op not in ("Conv", "ConvTranspose", "Gemm") or n.attrs.get("_act"):
            continue
        if len(n.inputs) < 2 or n.inputs[1] not in g.consts or not n.outputs or not n.outputs[0]:
            continue
        if len(n.inputs) > 2 and n.inputs[2] and n.inputs[2] not in g.consts:
            continue
        add = _single_reader(g, n.outputs[0], consumers)
        if add is None or add.op != "Add" or add.domain or len(add.inputs) != 2 or add.inputs[0] == add.inputs[1]:
            continue
        other = add.inputs[1] if add.inputs[0] == n.outputs[0] else add.inputs[0]
        if other not in g.consts:
            continue
        w = g.consts[n.inputs[1]]
        if n.op == "Gemm":
            if w.ndim != 2:
                continue
            rank, axis = 2, 1
            cout = w.shape[0] if n.attrs.get("transB", 0) else w.shape[1]
        else:
            rank, axis = w.ndim, 1
            cout = w.shape[0] if n.op == "Conv" else w.shape[1] * int(n.attrs.get("group", 1))
        vec = _channel_vector(np.asarray(g.consts[other]), rank, cout, axis)
        bias = _bias_vector(g, n, cout)
        if vec is None or bias is None:
            continue
        bname = g.add_const(f"{n.name or n.outputs[0]}_B_add", (bias + vec).astype(w.dtype))
        n.inputs = [n.inputs[0], n.inputs[1], bname]
        if n.op == "Gemm":
            n.attrs = {**n.attrs, "beta": 1.0}
        n.outputs = [add.outputs[0]]
        g.nodes.remove(add)
        changed += 1
        consumers = g.consumers()
    return changed


# -- activation fusion ---------------------------------------------------------------------

_FUSE_INTO = {"Conv", "ConvTranspose", "Gemm", "MatMul", "Add"}


def activation_of(g: Graph, n: Node):
    """The `_act` annotation a clamp-like activation node would become, or None."""
    if n.domain:
        return None
    if n.op == "Relu":
        return ("clip", 0.0, float("inf"))
    if n.op == "Clip":
        lo = g.consts.get(n.inputs[1]) if len(n.inputs) > 1 and n.inputs[1] else np.float32(-np.inf)
        hi = g.consts.get(n.inputs[2]) if len(n.inputs) > 2 and n.inputs[2] else np.float32(np.inf)
        if lo is None or hi is None or np.size(lo) != 1 or np.size(hi) != 1:
            return None
        return ("clip", float(np.asarray(lo).reshape(())), float(np.asarray(hi).reshape(())))
    return None


def fuse_activations(g: Graph) -> int:
    changed = 0
    consumers = g.consumers()
    for n in list(g.nodes):
        if n.domain or n.op not in _FUSE_INTO or n.attrs.get("_act") or n not in g.nodes:
            continue
        if n.op == "Add" and any(_is_scalar_const(g, i) for i in n.inputs):
            continue  # x + c is part of a unary chain (collapse_unary), not a residual add
        info = g.tensor_info(n.outputs[0])
        if info.dtype is not None and info.dtype.kind != "f":
            continue
        a = _single_reader(g, n.outputs[0], consumers)
        if a is None:
            continue
        act = activation_of(g, a)
        if act is None:
            continue
        n.attrs = {**n.attrs, "_act": act}
        n.outputs = [a.outputs[0]]
        g.nodes.remove(a)
        changed += 1
        consumers = g.consumers()
    return changed


# -- unary chain collapse --------------------------------------------------------------------

_ELEMENTWISE = {"Add", "Sub", "Mul", "Div", "Sigmoid", "Tanh", "Relu", "Clip", "Erf", "Exp",
                "HardSigmoid", "HardSwish", "LeakyRelu", "Elu", "Selu", "Softplus", "Softsign",
                "Neg", "Abs", "Sqrt", "Reciprocal", "Gelu", "Pow", "Log", "Min", "Max", "Mish"}


def _is_scalar_const(g: Graph, name: str) -> bool:
    return name in g.consts and g.consts[name].size == 1 and g.consts[name].dtype.kind == "f"


def collapse_unary(g: Graph) -> int:
    """Collapse regions computing f(x) elementwise into one dsedge.Elementwise node."""
    changed = 0
    progress = True
    while progress:
        progress = False
        consumers = g.consumers()
        producers = g.producers()
        for n in g.nodes:
            if n.domain or n.op not in _ELEMENTWISE or n.attrs.get("_act"):
                continue
            region = _grow_region(g, n, consumers, producers)
            if region is None:
                continue
            _replace_region(g, *region)
            changed += 1
            progress = True
            break
    return changed


def _region_root(g: Graph, n: Node):
    """The single variable input of an elementwise node, if its other inputs are scalar consts."""
    if REGISTRY.get(n.op) is None:
        return None
    var = [i for i in n.inputs if i and not _is_scalar_const(g, i)]
    if len(set(var)) != 1:
        return None
    return var[0]


def _grow_region(g: Graph, seed: Node, consumers, producers):
    """Find a region around `seed` computing a function of one float tensor x."""
    found = _closure_from(g, seed, consumers, producers)
    if found is None:
        return None
    members, x, out = found
    info = g.tensor_info(x)
    if info.dtype is not None and info.dtype.kind != "f":
        return None
    # A one-element constant of higher rank than x would broadcast the result to that rank:
    # not an elementwise function of x any more (nor one 256-entry int8 table).
    rank = info.rank
    for m in members:
        for i in m.inputs:
            if i and i in g.consts and g.consts[i].ndim > 0 and (rank is None or g.consts[i].ndim > rank):
                return None
    return members, x, out


def _closure_from(g: Graph, seed: Node, consumers, producers):
    """Try each candidate x above `seed` (farthest first); return (members, x, out) or None."""
    candidates = []
    cur = seed
    while True:
        v = _region_root(g, cur)
        if v is None:
            break
        candidates.append(v)
        p = producers.get(v)
        if (p is None or p.domain or p.op not in _ELEMENTWISE or p.attrs.get("_act")
                or _region_root(g, p) is None):
            break
        cur = p
    order = {id(n): k for k, n in enumerate(g.nodes)}
    for x in reversed(candidates):
        found = _grow_down(g, x, consumers, order)
        if found is not None:
            return found
    return None


def _grow_down(g: Graph, x: str, consumers, order):
    """The region of collapsible nodes whose variable inputs derive from x only."""
    region_vals = {x}
    members: list[Node] = []
    frontier = list(consumers.get(x, []))
    while frontier:
        n = frontier.pop()
        if n in members or n.domain or n.op not in _ELEMENTWISE or n.attrs.get("_act"):
            continue
        if REGISTRY.get(n.op) is None or len([o for o in n.outputs if o]) != 1:
            continue
        var = [i for i in n.inputs if i and not _is_scalar_const(g, i)]
        if not var or not all(v in region_vals for v in var):
            continue
        if n.op == "Clip" and activation_of(g, n) is None:
            continue
        members.append(n)
        region_vals.add(n.outputs[0])
        frontier.extend(consumers.get(n.outputs[0], []))
        # a node rejected earlier because its other input was not yet in the region
        for c in consumers.get(x, []):
            if c not in members:
                frontier.append(c)
        for m in members:
            frontier.extend(c for c in consumers.get(m.outputs[0], []) if c not in members)
        frontier = list({id(f): f for f in frontier if f not in members}.values())
    if len(members) < 2:
        return None
    members.sort(key=lambda n: order[id(n)])
    escaping = [n.outputs[0] for n in members
                if n.outputs[0] in g.outputs or any(c not in members for c in consumers.get(n.outputs[0], []))]
    if len(escaping) != 1:
        return None
    return members, x, escaping[0]


def _replace_region(g: Graph, members: list[Node], x: str, out: str) -> None:
    consts: list[np.ndarray] = []
    program = []
    slot = {x: 0}
    for n in members:
        args = []
        for i in n.inputs:
            if not i:
                args.append(None)
            elif i in slot:
                args.append(("v", slot[i]))
            else:   # one element, of rank <= x's (see _grow_region): the scalar broadcasts alike
                consts.append(np.asarray(g.consts[i]).reshape(()))
                args.append(("c", len(consts) - 1))
        attrs = {k: v for k, v in n.attrs.items() if not k.startswith("_")}
        program.append((n.op, tuple(args), attrs))
        slot[n.outputs[0]] = len(program)
    # the result is the value of the node producing `out`
    result = slot[out]
    idx = g.nodes.index(members[-1])
    for m in members:
        g.nodes.remove(m)
    # named after the node whose result it produces: what the user sees in their model
    name = g.fresh_name(members[-1].name or "_".join(m.op for m in members[:4]) + "_fused")
    node = Node(op="Elementwise", domain="dsedge", inputs=[x], outputs=[out], name=name,
                attrs={"program": tuple(program), "consts": tuple(consts), "result": result,
                       "source_nodes": tuple(m.name for m in members)})
    g.nodes.insert(min(idx, len(g.nodes)), node)
    g.toposort()


def flush_denormal_weights(g: Graph) -> int:
    """See the module docstring; returns the number of weight entries set to zero."""
    tiny = np.finfo(np.float32).tiny
    roles: dict[str, set] = {}
    for n in g.nodes:
        d = REGISTRY.get(n.op, n.domain)
        rr = d.quant.roles if d is not None and d.quant is not None else ()
        for k, i in enumerate(n.inputs):
            if i in g.consts:
                roles.setdefault(i, set()).add(rr[min(k, len(rr) - 1)] if rr else None)
    flushed = 0
    for name, r in roles.items():
        v = g.consts[name]
        if r != {WEIGHT} or v.dtype != np.float32 or name in g.outputs:
            continue
        sub = (v != 0) & (np.abs(v) < tiny)
        count = int(np.count_nonzero(sub))
        if count:
            w = np.array(v, copy=True)
            w[sub] = np.copysign(np.float32(0), w[sub])
            g.consts[name] = w
            flushed += count
    return flushed


def optimize(g: Graph, *, fold_bn: bool = True, fuse: bool = True, collapse: bool = True,
             report: dict | None = None) -> Graph:
    """The standard float pipeline, run before calibration. Edits g in place and returns it;
    `report` (a dict) receives what changed that a user may want told (denormal_weights_flushed)."""
    from .shapes import infer_shapes
    try:
        from .control import fold_if, unroll_loops
    except ImportError:  # pragma: no cover - while the control passes are not there
        fold_if = unroll_loops = None
    remove_identity(g)
    for _ in range(4):
        n = fold_constants(g)
        if fold_if is not None:
            n += fold_if(g) + unroll_loops(g)
        infer_shapes(g)
        if not n:
            break
    eliminate_dead(g)
    if fold_bn:
        for _ in range(2):              # Conv + Add(bias) + BatchNormalization, in either order
            if not (fold_bias_add(g) + fold_batchnorm(g)):
                break
        eliminate_dead(g)
    flushed = flush_denormal_weights(g)
    if report is not None and flushed:
        report["denormal_weights_flushed"] = report.get("denormal_weights_flushed", 0) + flushed
    if fuse:
        fuse_activations(g)
    if collapse:
        collapse_unary(g)
    eliminate_dead(g)
    infer_shapes(g)
    return g
