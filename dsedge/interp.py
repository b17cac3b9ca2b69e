"""The numpy reference interpreter: the executable spec of every float graph.

`run(graph, feeds)` executes nodes in order with each op's numpy reference (the op's binary16
reference for a node marked `_fp16_arith`, ops/half.py). Intermediate
tensors are freed as soon as their last reader has run, so memory stays bounded by the
model's live set (observers see each tensor once, when it is produced, through `hook`).

Sub-graphs (If/Loop bodies) run through `RunContext.run_graph`, which resolves names
defined in enclosing scopes.
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Callable, Mapping

import numpy as np

from .errors import DseError, DseWarning, FeedError, ModelError, UnsupportedOpError
from .ir import Graph, Node
from .ops import REGISTRY
from .ops.fused import apply_act_fn, apply_activation
from .ops.half import FP16_ARITH, run_fp16

Hook = Callable[[str, np.ndarray, Node | None], None]


@dataclass
class RunContext:
    """What an op that runs sub-graphs needs: the enclosing scope and the hook."""

    scope: Mapping[str, np.ndarray]
    hook: Hook | None = None

    def run_graph(self, g: Graph, inputs: list[np.ndarray]) -> list[np.ndarray]:
        feeds = dict(zip(g.inputs, inputs))
        return execute(g, feeds, outer=self.scope, hook=None)


class _Scope(dict):
    """A dict that falls back to an outer scope (read-only) on a miss."""

    def __init__(self, outer: Mapping[str, np.ndarray] | None):
        super().__init__()
        self.outer = outer

    def __missing__(self, key):
        if self.outer is not None and key in self.outer:
            return self.outer[key]
        raise KeyError(key)

    def __contains__(self, key):
        return dict.__contains__(self, key) or (self.outer is not None and key in self.outer)


def _last_uses(g: Graph) -> dict[str, int]:
    last: dict[str, int] = {}
    for idx, n in enumerate(g.nodes):
        for i in n.inputs:
            if i:
                last[i] = idx
        for sg in n.subgraphs():
            for name in sg.free_names():
                last[name] = idx
    return last


NodeHook = Callable[[Node, list, tuple], None]


# The integer reference of lowered int8 nodes (attribute `_q`) belongs to the quantised kinds
# (dsedge/quant/kinds/), a higher layer that registers it here when it is imported: the
# interpreter never imports upwards. Anything that makes a `_q` node has imported it.
_INT_REFERENCE: Callable | None = None


def register_int_reference(fn: Callable) -> None:
    """Called once by dsedge.quant.kinds: `fn(node, args) -> outputs` for `_q` nodes."""
    global _INT_REFERENCE
    _INT_REFERENCE = fn


def execute(g: Graph, feeds: Mapping[str, np.ndarray], *, outer=None, hook: Hook | None = None,
            keep: set[str] | None = None, outputs: list[str] | None = None,
            node_hook: NodeHook | None = None) -> list[np.ndarray]:
    """Run `g` on already-validated feeds; return the values of `outputs` (default: g.outputs).

    `hook(name, value, node)` sees every tensor once when it is produced (graph inputs with
    node None); `node_hook(node, inputs, outputs)` sees every node's inputs and outputs.
    """
    want = list(outputs) if outputs is not None else list(g.outputs)
    env = _Scope(outer)
    env.update(g.consts)
    env.update(feeds)
    if hook:
        for name in g.inputs:
            if name in feeds:
                hook(name, feeds[name], None)
    last = _last_uses(g)
    protect = set(want) | set(keep or ()) | set(g.consts)
    for idx, n in enumerate(g.nodes):
        d = REGISTRY.get(n.op, n.domain)
        if d is None:
            raise UnsupportedOpError(f"node {n.name or n.outputs[0]!r}: op {n.op} is not supported",
                                     hint=f"supported ops: {', '.join(REGISTRY.names())}")
        try:
            args = [env[i] if i else None for i in n.inputs]
        except KeyError as e:
            raise ModelError(f"node {n.name!r} ({n.op}) reads tensor {e.args[0]!r}, which nothing produces") from None
        ctx = RunContext(env, hook) if d.takes_ctx else None
        try:
            with np.errstate(all="ignore"):
                if "_q" in n.attrs:  # a lowered int8 node: its integer reference
                    if _INT_REFERENCE is None:
                        raise ModelError(f"node {n.name!r} ({n.op}) is a lowered int8 node, and no integer "
                                         "reference is registered", hint="import dsedge.quant before running it")
                    outs = _INT_REFERENCE(n, args)
                elif n.attrs.get(FP16_ARITH):   # binary16 arithmetic, its clip included (docs/quant-arith.md §16)
                    outs = run_fp16(d, args, n.attrs)
                else:
                    outs = d.call(args, n.attrs, ctx)
                if n.attrs.get("_act") and "_q" not in n.attrs and not n.attrs.get(FP16_ARITH):
                    outs = (apply_activation(np.asarray(outs[0]), n.attrs["_act"]),) + tuple(outs[1:])
                if n.attrs.get("_act_fn") and "_q" not in n.attrs and not n.attrs.get(FP16_ARITH):
                    outs = (apply_act_fn(np.asarray(outs[0]), n.attrs["_act_fn"]),) + tuple(outs[1:])
        except DseError as e:
            msg = e.args[0] if e.args else str(e)
            if n.name and repr(n.name) not in msg and n.name not in msg:
                raise type(e)(f"node {n.name!r} ({n.op}): {msg}", hint=e.hint) from None
            raise
        except Exception as e:  # a reference failing is a model/shape problem at this node
            shapes = ", ".join("None" if a is None else f"{a.dtype}{list(np.shape(a))}" for a in args)
            raise ModelError(f"node {n.name!r} ({n.op}) failed on inputs ({shapes}): {e}") from e
        if node_hook:
            node_hook(n, args, outs)
        for name, val in zip(n.outputs, outs):
            if name:
                val = np.asarray(val)
                env[name] = val
                if hook:
                    hook(name, val, n)
        # free what no later node reads
        for i in set(n.inputs) | {x for sg in n.subgraphs() for x in sg.free_names()}:
            if i and last.get(i) == idx and i not in protect and dict.__contains__(env, i):
                del env[i]
        for o in n.outputs:  # outputs nobody reads
            if o and o not in last and o not in protect and dict.__contains__(env, o):
                del env[o]
    try:
        return [env[o] for o in want]
    except KeyError as e:
        raise ModelError(f"graph output {e.args[0]!r} is never produced") from None


def check_feeds(g: Graph, feeds: Mapping[str, np.ndarray], where: str = "feed") -> dict[str, np.ndarray]:
    """Validate and normalise feeds against the graph's inputs (names, ranks, dims, dtypes, NaN)."""
    out: dict[str, np.ndarray] = {}
    missing = [i for i in g.inputs if i not in feeds]
    if missing:
        raise FeedError(f"{where}: missing input(s) {', '.join(missing)}",
                        hint=f"the model's inputs are {', '.join(g.inputs)}")
    narrowed = []
    for name in g.inputs:
        a = np.asarray(feeds[name])
        info = g.tensor_info(name)
        if info.shape is not None:
            if a.ndim != len(info.shape):
                raise FeedError(f"{where}: input {name!r} has shape {list(a.shape)}, the model expects "
                                f"rank {len(info.shape)} {_fmt_shape(info.shape)}")
            for got, exp in zip(a.shape, info.shape):
                if isinstance(exp, int) and exp >= 0 and got != exp:
                    raise FeedError(f"{where}: input {name!r} has shape {list(a.shape)}, the model expects "
                                    f"{_fmt_shape(info.shape)}")
        if info.dtype is not None and a.dtype != info.dtype:
            if a.dtype.kind == info.dtype.kind == "f" or (a.dtype.kind in "iu" and info.dtype.kind in "iu"
                                                           and np.can_cast(a.dtype, info.dtype)):
                if a.dtype.kind == "f" and a.dtype.itemsize > info.dtype.itemsize:
                    narrowed.append(f"{name!r} ({a.dtype} -> {info.dtype})")
                a = a.astype(info.dtype)
            else:
                raise FeedError(f"{where}: input {name!r} has dtype {a.dtype}, the model expects {info.dtype}")
        if a.dtype.kind == "f" and not np.all(np.isfinite(a)):
            raise FeedError(f"{where}: input {name!r} contains NaN or infinity")
        out[name] = a
    if narrowed:   # the same text for every feed: Python's warning filter shows it once
        warnings.warn(f"feed input(s) {', '.join(narrowed)} converted to the model's dtype "
                      "(precision beyond it is dropped)", DseWarning)
    return out


def _fmt_shape(shape) -> str:
    return "[" + ", ".join("?" if d is None else str(d) for d in shape) + "]"


def run(g: Graph, feeds: Mapping[str, np.ndarray], *, hook: Hook | None = None,
        outputs: list[str] | None = None, node_hook: NodeHook | None = None) -> dict[str, np.ndarray]:
    """Run a graph on one feed dict; returns {output name: array}."""
    feeds = check_feeds(g, feeds)
    want = outputs if outputs is not None else g.outputs
    vals = execute(g, feeds, hook=hook, outputs=want, node_hook=node_hook)
    return dict(zip(want, vals))
