"""Shape specialisation: a graph with dynamic shapes and control flow -> a static, flat graph.

A `.dse` runs one input shape per input and has no control flow and no shape ops (DESIGN.md
§4). `specialize(graph, input_shapes, info)` turns the quantised IR into that form:

 1. Every graph input gets a static shape: the one given (`--input-shape NAME=1x3x48x320`),
    else the single shape all calibration feeds had (`QuantResult.info["input_shapes"]`), else
    the model's declared shape when it is fully static. Calibration feeds of several shapes
    and no `--input-shape` is an error asking for one.
 2. An integer/bool input whose value was the same in every calibration feed (at least two
    feeds; `info["constant_inputs"]`, e.g. silero's sample rate `sr` = 16000) is pinned: its
    readers read a constant copy instead, the input stays a graph input (so an app sets it
    as before) and the artifact records a guard (metadata `guard.<input>` = the expected
    bytes) that the C session checks at `dse_session_set_input`.
 3. Shape inference, constant folding, If folding and Loop unrolling alternate until
    nothing changes. Constant folding here differs from `passes.simplify.fold_constants` in
    one point: a lowered int8 node (`attrs["_q"]`) whose inputs are all constant is
    evaluated with its integer reference (`quant.kinds.run_int`), never with the float op,
    so folding leaves the int8 plan and its qparams valid.
 4. One-hot embeddings (passes/onehot.py) become row lookups, now that the index's shape is
    known: each output row is still the bytes the replaced nodes would compute.
 5. What remains is checked: an If/Loop, a data-dependent op (NonZero, Unique, ...), a
    shape op or any tensor whose shape is not static is an error naming the node.

Specialising after quantisation keeps the plan valid by construction: the quantiser lowered
every int8 node so that it is correct for any shape (kinds.why_not refuses int8 where a
static shape would be needed and was not known), and folding only evaluates nodes exactly.
"""
from __future__ import annotations

import numpy as np

from ..errors import DseError, ModelError
from ..ir import Graph, Node, TensorInfo
from ..ops import REGISTRY
from ..passes.onehot import onehot_to_gather
from ..passes.simplify import FoldBudget, eliminate_dead

# ops whose output shape depends on input values, or which must never run in the runtime
_DYNAMIC = {"NonZero", "Unique", "Compress", "If", "Loop", "Shape", "Size", "RandomNormal", "RandomUniform",
            "RandomNormalLike", "RandomUniformLike", "Multinomial"}
_NO_FOLD = {"If", "Loop", "RandomNormal", "RandomUniform", "RandomNormalLike", "RandomUniformLike",
            "Multinomial", "DynamicQuantizeLinear"}
_FOLD_MAX_ELEMS = 1 << 24


def parse_shape(text: str) -> tuple[str, tuple[int, ...]]:
    """'input1=1x1x64x160' -> ('input1', (1, 1, 64, 160))."""
    name, sep, dims = text.rpartition("=")
    try:
        if not sep or not name:
            raise ValueError
        shape = tuple(int(d) for d in dims.lower().split("x"))
        if any(d < 0 for d in shape):
            raise ValueError
    except ValueError:
        raise DseError(f"--input-shape {text!r}: expected NAME=D1xD2x..., e.g. input1=1x1x64x160") from None
    return name, shape


def input_shapes_from_cli(values) -> dict[str, tuple[int, ...]]:
    out: dict[str, tuple[int, ...]] = {}
    for v in values or ():
        if isinstance(v, str):
            k, s = parse_shape(v)
        else:
            k, s = v
        out[k] = tuple(int(d) for d in s)
    return out


def _fmt(shape) -> str:
    return "x".join("?" if not isinstance(d, int) else str(d) for d in shape)


def choose_shapes(g: Graph, given: dict | None, info: dict | None) -> dict[str, tuple[int, ...]]:
    given = dict(given or {})
    seen = (info or {}).get("input_shapes") or {}
    unknown = [k for k in given if k not in g.inputs]
    if unknown:
        raise DseError(f"--input-shape names {', '.join(unknown)}, which are not inputs of the model",
                       hint=f"the model's inputs are {', '.join(g.inputs)}")
    pinned = (info or {}).get("pinned_shapes") or {}
    out = {}
    for name in g.inputs:
        decl = g.tensor_info(name).shape
        if name in given and name in pinned and tuple(given[name]) != tuple(pinned[name]):
            raise DseError(f"input {name!r}: --input-shape {_fmt(given[name])}, but this model was quantised for "
                           f"{_fmt(pinned[name])}, the one shape of its calibration feeds: its shape-dependent "
                           "If/Loop nodes were folded for that shape when it was quantised",
                           hint=f"quantise again with calibration feeds of shape {_fmt(given[name])} (or leave "
                                "--input-shape out)")
        if name in given:
            shape = given[name]
        elif name in seen and len(seen[name]) == 1:
            shape = tuple(seen[name][0])
        elif name in seen and len(seen[name]) > 1:
            opts = ", ".join(_fmt(s) for s in list(seen[name])[:4]) + (", ..." if len(seen[name]) > 4 else "")
            raise DseError(f"input {name!r}: the calibration feeds have {len(seen[name])} different shapes "
                           f"({opts}); a .dse is specialised to one shape",
                           hint=f"pass --input-shape {name}={_fmt(seen[name][0])} (or the shape your app uses)")
        elif decl is not None and all(isinstance(d, int) and d >= 0 for d in decl):
            shape = tuple(decl)
        else:
            raise DseError(f"input {name!r} has no static shape ({_fmt(decl or ())}) and no calibration shape is known",
                           hint=f"pass --input-shape {name}=D1xD2x...")
        if decl is not None:
            if len(decl) != len(shape) or any(isinstance(d, int) and d >= 0 and d != s for d, s in zip(decl, shape)):
                raise DseError(f"input {name!r}: shape {_fmt(shape)} does not fit the model's declared shape "
                               f"{_fmt(decl)}")
        out[name] = tuple(int(d) for d in shape)
    return out


def _fold(g: Graph) -> int:
    """Evaluate every node whose inputs are all constant (int8 nodes with their integer reference)."""
    from ..interp import execute
    changed = 0
    keep: list[Node] = []
    budget = FoldBudget(g)        # never materialise a big tensor a reader does not need constant
    for n in g.nodes:
        d = REGISTRY.get(n.op, n.domain)
        value = None
        if d is not None and not n.domain and n.op in ("Shape", "Size") and n.inputs[0] not in g.consts:
            info = g.tensor_info(n.inputs[0])
            if info.is_static:
                value = d.call([np.zeros(info.shape, dtype=np.uint8)], n.attrs)
        elif (d is not None and n.op not in _NO_FOLD and not any(n.subgraphs())
              and all((not i) or i in g.consts for i in n.inputs)):
            mini = Graph(nodes=[n], inputs=[], outputs=[o for o in n.outputs if o],
                         consts={i: g.consts[i] for i in n.inputs if i})
            try:
                outs = execute(mini, {})   # the interpreter: _q nodes via run_int, _act applied
                if sum(np.asarray(o).size for o in outs) <= _FOLD_MAX_ELEMS and budget.allows(n, outs):
                    value = [outs[mini.outputs.index(o)] if o else None for o in n.outputs]
            except Exception:
                value = None               # left in place; the interpreter reports it with context
        if value is None:
            keep.append(n)
            continue
        budget.folded(n)
        for name, v in zip(n.outputs, value):
            if name:
                v = np.asarray(v)
                g.consts[name] = v
                g.info[name] = TensorInfo(v.dtype, tuple(v.shape))
        changed += 1
    g.nodes = keep
    return changed


def specialize(graph: Graph, input_shapes: dict | None = None, info: dict | None = None, *,
               pin_constants: bool = True) -> tuple[Graph, dict[str, np.ndarray]]:
    """Returns (static graph, guards {input name: pinned value}). `graph` is not modified."""
    from ..passes.control import fold_if, remaining_control_flow, unroll_loops
    from ..passes.shapes import infer_shapes

    g = graph.copy()
    shapes = choose_shapes(g, input_shapes, info)
    for name, shape in shapes.items():
        g.info[name] = TensorInfo(g.tensor_info(name).dtype, shape)
    guards: dict[str, np.ndarray] = {}
    consts = (info or {}).get("constant_inputs") or {}
    n_feeds = int(((info or {}).get("calibration") or {}).get("feeds", 0) or 0)
    if pin_constants and n_feeds >= 2:
        for name in list(g.inputs):
            v = consts.get(name)
            if v is None:
                continue
            v = np.asarray(v)
            dt = g.tensor_info(name).dtype
            if dt is not None:
                v = v.astype(dt)
            if v.dtype.kind not in "iub" or tuple(v.shape) != shapes[name]:
                continue
            cname = g.fresh_name(name + "_pinned")
            g.consts[cname] = v
            for n in g.nodes:
                n.inputs = [cname if i == name else i for i in n.inputs]
                for sg in n.subgraphs():
                    from ..ir import _rename_free
                    _rename_free(sg, name, cname)
            if name in g.outputs:
                continue
            guards[name] = v
    infer_shapes(g)
    for _ in range(64):
        changed = _fold(g)
        changed += fold_if(g) + unroll_loops(g)
        infer_shapes(g)
        if not changed:
            break
    eliminate_dead(g)
    infer_shapes(g)
    if onehot_to_gather(g):          # shapes are static now: one-hot embeddings become lookups
        eliminate_dead(g)
        infer_shapes(g)
    problems = remaining_control_flow(g)
    for n in g.nodes:
        where = f"node {n.name or n.outputs[0]!r} ({n.op})"
        if n.op in _DYNAMIC and not n.domain:
            problems.append(f"{where}: {n.op} cannot be exported (its result depends on input values or "
                            "it is a shape op on a non-static tensor)")
            continue
        for o in n.outputs:
            if o and not g.tensor_info(o).is_static:
                problems.append(f"{where}: output {o!r} has no static shape "
                                f"({_fmt(g.tensor_info(o).shape or ())}) after specialisation")
                break
    if problems:
        raise ModelError("cannot export to .dse: " + "; ".join(dict.fromkeys(problems)),
                         hint="pass --input-shape for every dynamic input; data-dependent control flow "
                              "and shapes cannot run in the C runtime")
    return g, guards
