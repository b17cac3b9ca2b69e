"""Control-flow removal: the exported `.dse` runs without If or Loop (DESIGN.md §4).

  fold_if       an If whose condition is known — a constant, a value the caller pins with
                `known` (e.g. silero's sample rate, constant across the calibration feeds), or
                computable from those by a small constant evaluation (Shape of a static
                tensor, Equal, Not, ...) — is replaced by the chosen branch's nodes, inlined
                into the parent graph. Alternate it with simplify.fold_constants until
                neither changes anything to specialise a model (silero's 25 nested Ifs all
                fold once the sample rate and input shape are pinned).
  unroll_loops  a Loop with a constant trip count M (<= max_trips) whose cond input is
                absent or constant true and whose body condition is constant true or just
                passes cond_in through is replaced by M inlined copies of its body. Scan
                outputs become Unsqueeze + Concat. Other Loops stay: the interpreter runs
                them, and export reports "Loop with data-dependent trip count cannot be
                exported" (see `remaining_control_flow`).

Inlining (one shared routine): every tensor the body defines (node outputs, constants) gets
a fresh name in the parent graph, except that a body output produced by a body node takes
the If/Loop output's name directly; a body output that is an outer tensor or a body
constant is bound through an Identity node (or a parent constant). Nested sub-graphs of the
inlined nodes are renamed through their free (outer-scope) names. The inlined nodes are
inserted where the If/Loop node was, so topological order is kept.

Both passes edit the graph in place and return the number of nodes removed (simplify.py's
convention); they recurse into sub-graphs and repeat until nothing changes (re-running shape
inference in between), so an If inside an inlined branch whose condition depends on the
shape of an inlined tensor folds too, and a Loop unrolled from an outer Loop's constant
iteration number is unrolled too.
"""
from __future__ import annotations

import numpy as np

from ..ir import Graph, Node, TensorInfo, _rename_free
from ..ops import REGISTRY
from .shapes import infer_shapes

# ops cheap and safe to evaluate while deciding a condition
_EVAL_MAX_ELEMS = 1 << 16
_NO_EVAL = {"If", "Loop", "DynamicQuantizeLinear", "RandomNormal", "RandomUniform", "RandomNormalLike",
            "RandomUniformLike", "Multinomial"}


# -- small constant evaluator ------------------------------------------------------------

def _value(g: Graph, name: str, known: dict, producers: dict, depth: int = 0):
    """The constant value of `name` if it can be computed from consts/known values, else None."""
    if not name:
        return None
    if name in known:
        return known[name]
    if name in g.consts:
        return g.consts[name]
    n = producers.get(name)
    if n is None or depth > 64 or n.op in _NO_EVAL or any(n.subgraphs()):
        return None
    if n.op == "Shape" and not n.domain:
        info = g.tensor_info(n.inputs[0])
        if info.is_static:
            start, end = n.attrs.get("start", 0), n.attrs.get("end", None)
            val = np.array(info.shape, np.int64)[start:end]
            known[name] = val
            return val
    if n.op == "Size" and not n.domain:
        info = g.tensor_info(n.inputs[0])
        if info.is_static:
            known[name] = np.array(int(np.prod(info.shape)), np.int64)
            return known[name]
    args = []
    for i in n.inputs:
        if not i:
            args.append(None)
            continue
        v = _value(g, i, known, producers, depth + 1)
        if v is None or np.size(v) > _EVAL_MAX_ELEMS:
            return None
        args.append(v)
    d = REGISTRY.get(n.op, n.domain)
    if d is None or d.takes_ctx:
        return None
    try:
        with np.errstate(all="ignore"):
            outs = d.call(args, n.attrs)
    except Exception:
        return None
    for o, v in zip(n.outputs, outs):
        if o:
            known[o] = np.asarray(v)
    return known.get(name)


# -- inlining ----------------------------------------------------------------------------

def _defined(body: Graph) -> set[str]:
    names = set(body.inputs) | set(body.consts)
    for n in body.nodes:
        names.update(o for o in n.outputs if o)
    return names


def _fresh(g: Graph, taken: set[str], base: str) -> str:
    name, k = base, 1
    while name in taken or name in g.info or name in g.consts:
        name, k = f"{base}_{k}", k + 1
    taken.add(name)
    return name


def _add_const(g: Graph, taken: set[str], base: str, value) -> str:
    name = _fresh(g, taken, base)
    g.consts[name] = np.asarray(value)
    return name


def _inline(parent: Graph, body: Graph, bind: dict[str, str], targets: list[str | None], prefix: str,
            taken: set[str]) -> tuple[list[Node], list[str]]:
    """Copies of `body`'s nodes renamed into `parent`.

    bind: body input name -> parent tensor name. targets: per body output, the parent name it
    must get (None: any fresh name). Returns (nodes to insert, parent names of body outputs).
    New constants are added to `parent.consts` directly. `taken` collects names handed out.
    """
    def fresh(base: str) -> str:
        return _fresh(parent, taken, f"{prefix}/{base}")

    producer_of = {o: n for n in body.nodes for o in n.outputs if o}
    mapping: dict[str, str] = dict(bind)
    out_names: list[str] = [None] * len(body.outputs)          # type: ignore[list-item]
    # body outputs produced by body nodes take the target name directly (first claim wins)
    for k, (o, t) in enumerate(zip(body.outputs, targets)):
        if t is not None and o in producer_of and o not in mapping:
            mapping[o] = t
            taken.add(t)
            out_names[k] = t
    for name, val in body.consts.items():
        if name not in mapping:
            mapping[name] = fresh(name)
            parent.consts[mapping[name]] = val
    for n in body.nodes:
        for o in n.outputs:
            if o and o not in mapping:
                mapping[o] = fresh(o)
    for o, info in body.info.items():
        if o in mapping and o not in bind:
            parent.info.setdefault(mapping[o], info)

    new_nodes: list[Node] = []
    node_names = {n.name for n in parent.nodes}
    for n in body.nodes:
        attrs = {}
        for key, v in n.attrs.items():
            if isinstance(v, Graph):
                v = v.copy()
                for free in v.free_names():
                    if free in mapping and mapping[free] != free:
                        _rename_free(v, free, mapping[free])
            attrs[key] = v
        nm = f"{prefix}/{n.name or n.op}"
        base, k = nm, 1
        while nm in node_names:
            nm, k = f"{base}_{k}", k + 1
        node_names.add(nm)
        new_nodes.append(Node(n.op, [mapping.get(i, i) if i else "" for i in n.inputs],
                              [mapping[o] if o else "" for o in n.outputs], attrs, nm, n.domain))
    # remaining outputs: outer tensors, constants, inputs, or a tensor already bound once
    for k, (o, t) in enumerate(zip(body.outputs, targets)):
        if out_names[k] is not None:
            continue
        src = mapping.get(o, o)
        if t is None:
            out_names[k] = src
        elif o in body.consts and o not in bind:
            parent.consts[t] = body.consts[o]
            out_names[k] = t
        else:
            new_nodes.append(Node("Identity", [src], [t], {}, f"{prefix}/bind_{k}"))
            taken.add(t)
            out_names[k] = t
    return new_nodes, out_names


# -- fold_if -----------------------------------------------------------------------------

def fold_if(g: Graph, known: dict[str, np.ndarray] | None = None) -> int:
    """Inline every If whose condition is known; returns the number of Ifs removed."""
    total = 0
    while True:
        changed = _fold_if_once(g, dict(known or {}))
        total += changed
        if not changed:
            return total
        infer_shapes(g)   # inlined tensors get shapes: Shape-based conditions inside them decide


def _fold_if_once(g: Graph, known: dict) -> int:
    count = 0
    producers = g.producers()
    taken: set[str] = {o for n in g.nodes for o in n.outputs if o} | set(g.inputs)
    out_nodes: list[Node] = []
    for n in g.nodes:
        if n.op == "If" and not n.domain:
            c = _value(g, n.inputs[0], known, producers)
            if c is not None and np.size(c) == 1:
                branch = n.attrs["then_branch"] if bool(np.asarray(c).reshape(())) else n.attrs["else_branch"]
                nodes, _ = _inline(g, branch, {}, list(n.outputs), n.name or n.outputs[0], taken)
                out_nodes.extend(nodes)
                for o, bo in zip(n.outputs, branch.outputs):
                    bi = branch.tensor_info(bo)
                    if bi.shape is not None or g.info.get(o) is None:
                        g.info[o] = TensorInfo(bi.dtype or g.tensor_info(o).dtype, bi.shape)
                count += 1
                continue
        for sg in n.subgraphs():
            outer_known = {k: v for k, v in known.items()}
            outer_known.update({k: v for k, v in g.consts.items() if k in sg.free_names()})
            count += fold_if(sg, outer_known)
        out_nodes.append(n)
    g.nodes = out_nodes
    return count


# -- unroll_loops ------------------------------------------------------------------------

def _body_cond_is_true(body: Graph) -> bool:
    c_out = body.outputs[0]
    c_in = body.inputs[1] if len(body.inputs) > 1 else None
    seen = set()
    while c_out not in seen:
        seen.add(c_out)
        if c_out == c_in:
            return True
        if c_out in body.consts:
            v = body.consts[c_out]
            return np.size(v) == 1 and bool(np.asarray(v).reshape(()))
        prod = next((n for n in body.nodes if c_out in n.outputs), None)
        if prod is None or prod.op != "Identity":
            return False
        c_out = prod.inputs[0]
    return False


def _trip_count(g: Graph, n: Node, known: dict, producers: dict) -> int | None:
    M = _value(g, n.inputs[0], known, producers) if n.inputs and n.inputs[0] else None
    if M is None or np.size(M) != 1:
        return None
    cond = n.inputs[1] if len(n.inputs) > 1 else ""
    if cond:
        cv = _value(g, cond, known, producers)
        if cv is None or np.size(cv) != 1:
            return None
        if not bool(np.asarray(cv).reshape(())):
            return 0
    if not _body_cond_is_true(n.attrs["body"]):
        return None
    return max(0, int(np.asarray(M).reshape(())))


def unroll_loops(g: Graph, max_trips: int = 256) -> int:
    """Unroll Loops with a constant trip count (<= max_trips); returns the number unrolled."""
    total = 0
    while True:
        changed = _unroll_once(g, max_trips)
        total += changed
        if not changed:
            return total
        infer_shapes(g)


def _unroll_once(g: Graph, max_trips: int) -> int:
    count = 0
    known: dict = {}
    producers = g.producers()
    taken: set[str] = {o for n in g.nodes for o in n.outputs if o} | set(g.inputs)
    out_nodes: list[Node] = []
    for n in g.nodes:
        if n.op == "Loop" and not n.domain:
            trips = _trip_count(g, n, known, producers)
            body: Graph = n.attrs["body"]
            n_carried = len(n.inputs) - 2
            n_scan = len(body.outputs) - 1 - n_carried
            if trips is not None and trips <= max_trips and not (trips == 0 and n_scan > 0):
                out_nodes.extend(_unrolled(g, n, body, trips, n_carried, n_scan, taken))
                count += 1
                continue
        for sg in n.subgraphs():
            count += unroll_loops(sg, max_trips)
        out_nodes.append(n)
    g.nodes = out_nodes
    return count


def _unrolled(g: Graph, n: Node, body: Graph, trips: int, n_carried: int, n_scan: int, taken: set) -> list[Node]:
    prefix = n.name or n.outputs[0]
    nodes: list[Node] = []
    carried = list(n.inputs[2:])
    scans: list[list[str]] = [[] for _ in range(n_scan)]
    true_name = _add_const(g, taken, f"{prefix}/true", np.array(True))
    for it in range(trips):
        bind = {}
        if body.inputs:
            bind[body.inputs[0]] = _add_const(g, taken, f"{prefix}/iter{it}", np.array(it, np.int64))
        if len(body.inputs) > 1:
            bind[body.inputs[1]] = true_name
        for bi, c in zip(body.inputs[2:], carried):
            bind[bi] = c
        last = it == trips - 1
        targets: list[str | None] = [None] + [(n.outputs[k] if last and k < len(n.outputs) and n.outputs[k] else None)
                                              for k in range(n_carried)] + [None] * n_scan
        new, names = _inline(g, body, bind, targets, f"{prefix}/it{it}", taken)
        nodes.extend(new)
        carried = names[1:1 + n_carried]
        for k in range(n_scan):
            scans[k].append(names[1 + n_carried + k])
    if trips == 0:   # carried outputs are the initial values
        for k in range(n_carried):
            if k < len(n.outputs) and n.outputs[k]:
                nodes.append(Node("Identity", [carried[k]], [n.outputs[k]], {}, f"{prefix}/bind_{k}"))
    axes = _add_const(g, taken, f"{prefix}/axes0", np.array([0], np.int64))
    for k in range(n_scan):
        out = n.outputs[n_carried + k] if n_carried + k < len(n.outputs) else ""
        if not out:
            continue
        parts = []
        for it, s in enumerate(scans[k]):
            u = _fresh(g, taken, f"{prefix}/scan{k}_{it}")
            nodes.append(Node("Unsqueeze", [s, axes], [u], {}, f"{prefix}/scan{k}_unsqueeze{it}"))
            parts.append(u)
        nodes.append(Node("Concat", parts, [out], {"axis": 0}, f"{prefix}/scan{k}_concat"))
    return nodes


def remaining_control_flow(g: Graph) -> list[str]:
    """Messages for the If/Loop nodes left after folding (export reports them)."""
    msgs = []
    for _, n in g.walk():
        if n.op == "Loop" and not n.domain:
            msgs.append(f"node {n.name!r}: Loop with data-dependent trip count cannot be exported")
        elif n.op == "If" and not n.domain:
            msgs.append(f"node {n.name!r}: If with a data-dependent condition cannot be exported")
    return msgs
