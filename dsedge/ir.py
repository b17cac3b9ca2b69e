"""The dsedge intermediate representation.

A model is a `Graph`: an ordered list of `Node`s (topologically sorted) that read and write
named tensors. Every tensor name has a `TensorInfo` (dtype and shape, where known) in
`Graph.info`; constant tensors (ONNX initializers, folded values) live in `Graph.consts` as
numpy arrays. Graph inputs and outputs are lists of tensor names. An empty input name means
"optional input not given", as in ONNX.

Shapes are tuples whose entries are ints (known), strings (a named dynamic dimension) or
None (unknown). Nodes carry their attributes as plain Python values (ints, floats, strings,
lists, numpy arrays) and sub-graphs (If/Loop bodies) as `Graph` objects in `Node.attrs`.

Quantisation annotations (`QParams`) live beside the graph in `Graph.qparams`, keyed by
tensor name, so a float graph and its annotated twin share one structure.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Iterable, Iterator

import numpy as np

Dim = "int | str | None"


@dataclass(frozen=True)
class TensorInfo:
    """Static knowledge about one tensor: element type and shape (None = unknown rank)."""

    dtype: np.dtype | None = None
    shape: tuple | None = None

    @property
    def rank(self) -> int | None:
        return None if self.shape is None else len(self.shape)

    @property
    def is_static(self) -> bool:
        return self.shape is not None and all(isinstance(d, int) and d >= 0 for d in self.shape)

    def with_shape(self, shape) -> "TensorInfo":
        return TensorInfo(self.dtype, None if shape is None else tuple(shape))


@dataclass(frozen=True)
class QParams:
    """Affine quantisation of one tensor: real = scale * (q - zero_point).

    `axis` is None for per-tensor parameters, else the per-channel axis; `scale` and
    `zero_point` are then 1-D arrays along it. `dtype` is the stored integer type.
    """

    scale: np.ndarray
    zero_point: np.ndarray
    dtype: np.dtype = np.dtype(np.int8)
    axis: int | None = None

    def __post_init__(self):
        object.__setattr__(self, "scale", np.asarray(self.scale, dtype=np.float32))
        object.__setattr__(self, "zero_point", np.asarray(self.zero_point, dtype=np.int32))

    @property
    def per_channel(self) -> bool:
        return self.axis is not None


@dataclass
class Node:
    op: str
    inputs: list[str]
    outputs: list[str]
    attrs: dict[str, Any] = field(default_factory=dict)
    name: str = ""
    domain: str = ""

    def __repr__(self) -> str:  # short, for error messages
        return f"{self.op}({self.name or self.outputs[0]})"

    def subgraphs(self) -> Iterator["Graph"]:
        for v in self.attrs.values():
            if isinstance(v, Graph):
                yield v


@dataclass
class Graph:
    nodes: list[Node] = field(default_factory=list)
    inputs: list[str] = field(default_factory=list)
    outputs: list[str] = field(default_factory=list)
    info: dict[str, TensorInfo] = field(default_factory=dict)
    consts: dict[str, np.ndarray] = field(default_factory=dict)
    qparams: dict[str, QParams] = field(default_factory=dict)
    metadata: dict[str, str] = field(default_factory=dict)
    opset: int = 17
    name: str = "graph"
    # Names of tensors visible from an enclosing graph (sub-graphs of If/Loop).
    outer: tuple[str, ...] = ()

    # -- queries -----------------------------------------------------------------------
    def producers(self) -> dict[str, Node]:
        return {o: n for n in self.nodes for o in n.outputs if o}

    def consumers(self) -> dict[str, list[Node]]:
        out: dict[str, list[Node]] = {}
        for n in self.nodes:
            for i in set(n.inputs):
                if i:
                    out.setdefault(i, []).append(n)
            for g in n.subgraphs():
                for name in g.free_names():
                    out.setdefault(name, []).append(n)
        return out

    def free_names(self) -> set[str]:
        """Tensor names read by this graph (recursively) but defined outside it."""
        defined = set(self.inputs) | set(self.consts)
        for n in self.nodes:
            defined.update(o for o in n.outputs if o)
        free: set[str] = set()
        for n in self.nodes:
            for i in n.inputs:
                if i and i not in defined:
                    free.add(i)
            for g in n.subgraphs():
                free.update(x for x in g.free_names() if x not in defined)
        for o in self.outputs:
            if o not in defined:
                free.add(o)
        return free

    def is_const(self, name: str) -> bool:
        return name in self.consts

    def const(self, name: str) -> np.ndarray | None:
        return self.consts.get(name)

    def tensor_info(self, name: str) -> TensorInfo:
        if name in self.consts:
            c = self.consts[name]
            return TensorInfo(c.dtype, tuple(c.shape))
        return self.info.get(name, TensorInfo())

    def node_by_name(self, name: str) -> Node | None:
        for n in self.nodes:
            if n.name == name:
                return n
        return None

    def walk(self) -> Iterator[tuple["Graph", Node]]:
        """Every node of this graph and its sub-graphs, depth first."""
        for n in self.nodes:
            yield self, n
            for g in n.subgraphs():
                yield from g.walk()

    # -- editing -----------------------------------------------------------------------
    def fresh_name(self, base: str) -> str:
        used = set(self.info) | set(self.consts) | {o for n in self.nodes for o in n.outputs}
        used |= {n.name for n in self.nodes}
        if base not in used:
            return base
        i = 1
        while f"{base}_{i}" in used:
            i += 1
        return f"{base}_{i}"

    def add_const(self, base: str, value: np.ndarray) -> str:
        name = self.fresh_name(base)
        self.consts[name] = np.asarray(value)
        return name

    def copy(self) -> "Graph":
        """A deep copy of structure; constant arrays are shared (treat them as immutable)."""
        return Graph(
            nodes=[_copy_node(n) for n in self.nodes],
            inputs=list(self.inputs),
            outputs=list(self.outputs),
            info=dict(self.info),
            consts=dict(self.consts),
            qparams=dict(self.qparams),
            metadata=dict(self.metadata),
            opset=self.opset,
            name=self.name,
            outer=self.outer,
        )

    def replace_input(self, old: str, new: str) -> None:
        """Rewire every reader of `old` (including graph outputs) to read `new`."""
        for n in self.nodes:
            n.inputs = [new if i == old else i for i in n.inputs]
            for g in n.subgraphs():
                _rename_free(g, old, new)
        self.outputs = [new if o == old else o for o in self.outputs]

    def toposort(self) -> None:
        """Re-order nodes so that every node follows the producers of its inputs."""
        produced = self.producers()
        order: list[Node] = []
        state: dict[int, int] = {}

        def visit(n: Node):
            stack = [(n, False)]
            while stack:
                cur, done = stack.pop()
                key = id(cur)
                if done:
                    if state.get(key) != 2:
                        state[key] = 2
                        order.append(cur)
                    continue
                if state.get(key):
                    continue
                state[key] = 1
                stack.append((cur, True))
                deps = list(cur.inputs)
                for g in cur.subgraphs():
                    deps.extend(g.free_names())
                for i in reversed(deps):
                    p = produced.get(i)
                    if p is not None and not state.get(id(p)):
                        stack.append((p, False))

        for n in self.nodes:
            visit(n)
        self.nodes = order

    def num_params(self) -> int:
        return int(sum(c.size for c in self.consts.values() if c.dtype.kind == "f"))

    def summary_counts(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for _, n in self.walk():
            counts[n.op] = counts.get(n.op, 0) + 1
        return dict(sorted(counts.items()))


def _copy_node(n: Node) -> Node:
    attrs = {k: (v.copy() if isinstance(v, Graph) else v) for k, v in n.attrs.items()}
    return dataclasses.replace(n, inputs=list(n.inputs), outputs=list(n.outputs), attrs=attrs)


def _rename_free(g: Graph, old: str, new: str) -> None:
    defined = set(g.inputs) | set(g.consts) | {o for n in g.nodes for o in n.outputs}
    if old in defined:
        return
    g.replace_input(old, new)


def iter_names(nodes: Iterable[Node]) -> Iterator[str]:
    for n in nodes:
        yield from (i for i in n.inputs if i)
        yield from (o for o in n.outputs if o)
