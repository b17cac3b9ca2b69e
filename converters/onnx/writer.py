"""dsedge IR -> ONNX.

The IR is in canonical (opset 21) form, so the writer emits opset max(source opset, 13)
and brings each node back to a form valid at that opset (`_DOWNGRADES`: e.g. Reduce* axes
as an attribute below 18). dsedge annotations are expanded into plain ONNX:
  * `_act` (fused clamp)            -> a following Relu/Clip node
  * `dsedge.Elementwise` (collapsed) -> the original elementwise nodes of its program
Metadata (`Graph.metadata`) is written to `metadata_props`.
"""
from __future__ import annotations

import numpy as np
import onnx
from onnx import helper, numpy_helper

from dsedge.ir import Graph, Node

_REDUCE_AXES_ATTR_BELOW_18 = {"ReduceMean", "ReduceMax", "ReduceMin", "ReduceProd", "ReduceL1", "ReduceL2",
                              "ReduceLogSum", "ReduceLogSumExp", "ReduceSumSquare"}


def _attr(name: str, v):
    if isinstance(v, Graph):
        return helper.make_attribute(name, to_graph_proto(v))
    if isinstance(v, np.ndarray):
        return helper.make_attribute(name, numpy_helper.from_array(v))
    if isinstance(v, (np.integer,)):
        v = int(v)
    if isinstance(v, (np.floating,)):
        v = float(v)
    if isinstance(v, tuple):
        v = list(v)
    return helper.make_attribute(name, v)


class _Emitter:
    def __init__(self, g: Graph, opset: int, fp16_weights=()):
        self.g = g
        self.fp16 = set(fp16_weights)
        self.opset = opset
        self.nodes: list = []
        self.extra_inits: dict[str, np.ndarray] = {}
        self._const_names: dict[tuple, str] = {}      # (dtype, shape, bytes) -> name (see const)
        self._names: set[str] = set(g.consts) | set(g.info) | {o for n in g.nodes for o in n.outputs}
        self._k = 0

    def fresh(self, base: str) -> str:
        while True:
            self._k += 1
            name = f"{base}__{self._k}"
            if name not in self._names:
                self._names.add(name)
                return name

    def const(self, base: str, value) -> str:
        """A constant the writer adds (a scale, a zero point, a shape): equal values are stored
        once, under the first one's name, so a file never holds one constant twice."""
        value = np.asarray(value)
        key = (value.dtype.str, value.shape, value.tobytes())
        if key in self._const_names:
            return self._const_names[key]
        name = self.fresh(base)
        self.extra_inits[name] = value
        self._const_names[key] = name
        return name

    def emit(self, op, inputs, outputs, attrs=None, name=None, domain=""):
        attrs = {k: v for k, v in (attrs or {}).items() if not k.startswith("_") and v is not None}
        inputs, attrs = self.downgrade(op, list(inputs), attrs)
        while inputs and inputs[-1] == "":
            inputs.pop()
        nd = helper.make_node(op, inputs, outputs, name=name or self.fresh(op), domain=domain or None)
        nd.attribute.extend(_attr(k, v) for k, v in sorted(attrs.items()))
        self.nodes.append(nd)

    def downgrade(self, op, inputs, attrs):
        if op in _REDUCE_AXES_ATTR_BELOW_18 and self.opset < 18 and len(inputs) > 1 and inputs[1]:
            axes = self.g.consts.get(inputs[1], self.extra_inits.get(inputs[1]))
            if axes is not None:
                attrs["axes"] = [int(a) for a in np.asarray(axes).reshape(-1)]
                inputs = inputs[:1]
        if op in ("Softmax", "LogSoftmax", "Hardmax") and attrs.pop("coerce_2d", 0):
            raise NotImplementedError("legacy 2-D Softmax is expanded before emit")
        return inputs, attrs

    def node(self, n: Node):
        if n.domain == "dsedge" and n.op == "Elementwise":
            self.elementwise(n)
            return
        act = n.attrs.get("_act")
        outs = list(n.outputs)
        if act:
            tmp = self.fresh(outs[0] + "_preact")
            outs[0] = tmp
        if n.op in ("Softmax", "LogSoftmax", "Hardmax") and n.attrs.get("coerce_2d", 0):
            self.legacy_softmax(n, outs)
        else:
            self.emit(n.op, n.inputs, outs, n.attrs, name=n.name, domain=n.domain)
        if act:
            self.activation(act, tmp, n.outputs[0], n.name)

    def activation(self, act, src, dst, base):
        lo, hi = act[1], act[2]
        if lo == 0.0 and hi == float("inf"):
            self.emit("Relu", [src], [dst], name=self.fresh(base + "_relu"))
            return
        lo_n = "" if lo == float("-inf") else self.const(base + "_min", np.float32(lo))
        hi_n = "" if hi == float("inf") else self.const(base + "_max", np.float32(hi))
        self.emit("Clip", [src, lo_n, hi_n], [dst], name=self.fresh(base + "_clip"))

    def elementwise(self, n: Node):
        from dsedge.ops.fused import expand_steps
        for op, ins, out, attrs, _ in expand_steps(n, self.const, self.fresh):
            self.emit(op, ins, [out], attrs, name=self.fresh(f"{n.name}_{op}"))

    def legacy_softmax(self, n: Node, outs):
        """opset < 13 Softmax: flatten to 2-D at `axis`, softmax over axis 1, reshape back."""
        x = n.inputs[0]
        axis = int(n.attrs.get("axis", 1))
        shp = self.fresh(x + "_shape")
        self.emit("Shape", [x], [shp])
        flat = self.fresh(x + "_2d")
        self.emit("Flatten", [x], [flat], {"axis": axis})
        sm = self.fresh(x + "_sm")
        attrs = {k: v for k, v in n.attrs.items() if k not in ("coerce_2d", "axis")}
        self.emit(n.op, [flat], [sm], {**attrs, "axis": 1}, name=n.name)
        self.emit("Reshape", [sm, shp], [outs[0]])


def _value_info(g: Graph, name: str):
    info = g.tensor_info(name)
    if info.dtype is None:
        return helper.make_empty_tensor_value_info(name)
    shape = None if info.shape is None else [d if isinstance(d, (int, str)) else None for d in info.shape]
    return helper.make_tensor_value_info(name, helper.np_dtype_to_tensor_dtype(info.dtype), shape)


def _external_tensor(name: str, v: np.ndarray) -> "onnx.TensorProto":
    """An initializer whose data is not in the file: the caller hands it to onnxruntime
    (`SessionOptions.add_external_initializers`), which then uses the array in place."""
    t = onnx.TensorProto()
    t.name = name
    t.data_type = helper.np_dtype_to_tensor_dtype(v.dtype)
    t.dims.extend(int(d) for d in v.shape)
    t.data_location = onnx.TensorProto.EXTERNAL
    e = t.external_data.add()
    e.key, e.value = "location", "dsedge-in-memory"
    return t


def _is_external(v) -> bool:
    """The constants `external_consts` leaves out of the proto (see to_graph_proto)."""
    v = np.asarray(v)
    return v.dtype.kind == "f" and v.size >= 1024


def to_graph_proto(g: Graph, opset: int | None = None, *, emitter_cls=_Emitter, external_consts: bool = False,
                   **kw) -> "onnx.GraphProto":
    """external_consts: the graph's own large float constants (g.consts, `_is_external`) are
    declared with external data and no bytes (for an in-memory onnxruntime session that is
    handed the arrays themselves)."""
    em = emitter_cls(g, opset or max(g.opset, 13), **kw)
    fp16 = getattr(em, "fp16", set())
    for k in sorted(fp16):  # fp16 storage, fp32 compute: a Cast in front of every reader
        em.emit("Cast", [k + "_fp16"], [k], {"to": onnx.TensorProto.FLOAT}, name=k + "_to_fp32")
    for n in g.nodes:
        em.node(n)
    if external_consts:   # large float tensors only: shape inference reads the small ones
        inits = [_external_tensor(k, np.asarray(v)) if _is_external(v)
                 else numpy_helper.from_array(np.asarray(v), k) for k, v in g.consts.items()]
    else:
        inits = [numpy_helper.from_array(np.asarray(v).astype(np.float16) if k in fp16 else np.asarray(v),
                                         k + "_fp16" if k in fp16 else k) for k, v in g.consts.items()]
    inits += [numpy_helper.from_array(v, k) for k, v in em.extra_inits.items()]
    inputs = [_value_info(g, i) for i in g.inputs]
    outputs = [_value_info(g, o) for o in g.outputs]
    return helper.make_graph(em.nodes, g.name or "graph", inputs, outputs, initializer=inits)


def _share_equal_initializers(gp) -> int:
    """Store each distinct initializer of the top-level graph once: a second one with the same
    type, shape and bytes (a constant shared by two layers, rounded alike) is dropped and its
    readers read the first. Names read inside sub-graphs, graph inputs/outputs and external
    tensors are left alone. Returns the number dropped."""
    import hashlib

    def sub_names(graph, out):
        for nd in graph.node:
            for a in nd.attribute:
                for sg in ([a.g] if a.HasField("g") else []) + list(a.graphs):
                    out.update(i for n2 in sg.node for i in n2.input)
                    sub_names(sg, out)
        return out

    fixed = sub_names(gp, set()) | {v.name for v in gp.input} | {v.name for v in gp.output}
    first: dict[tuple, str] = {}
    alias: dict[str, str] = {}
    keep = []
    for t in gp.initializer:
        if t.name in fixed or t.data_location == onnx.TensorProto.EXTERNAL or not t.raw_data:
            keep.append(t)
            continue
        key = (t.data_type, tuple(t.dims), hashlib.sha256(t.raw_data).digest())
        if key in first:
            alias[t.name] = first[key]
        else:
            first[key] = t.name
            keep.append(t)
    if alias:
        for nd in gp.node:
            for k, i in enumerate(nd.input):
                if i in alias:
                    nd.input[k] = alias[i]
        del gp.initializer[:]
        gp.initializer.extend(keep)
    return len(alias)


def to_model_proto(g: Graph, *, opset: int | None = None, producer: str = "dsedge", emitter_cls=_Emitter,
                   **kw) -> "onnx.ModelProto":
    opset = opset or max(g.opset, 13)
    gp = to_graph_proto(g, opset, emitter_cls=emitter_cls, **kw)
    _share_equal_initializers(gp)
    m = helper.make_model(gp, opset_imports=[helper.make_opsetid("", opset)], producer_name=producer)
    m.ir_version = 8 if opset <= 18 else (9 if opset <= 20 else 10)
    for k, v in g.metadata.items():
        p = m.metadata_props.add()
        p.key, p.value = k, v
    return m


def save_onnx(g: Graph, path, **kw) -> None:
    from dsedge.util import atomic_write_bytes
    atomic_write_bytes(path, to_model_proto(g, **kw).SerializeToString())
