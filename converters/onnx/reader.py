"""ONNX -> dsedge IR.

What the reader does, so later stages never see ONNX's irregularities:
  * weights from initializers, `Constant` nodes (all value_* forms) and sub-graphs become
    `Graph.consts`; graph inputs that shadow an initializer are treated as constants;
  * each node is brought to the canonical (opset 21) form through its op's `upgrade` rule
    (attributes that later became inputs, changed defaults, Softmax's 2-D coercion before 13);
  * input shapes come from the model (dim_param -> str, unknown -> None); declared shapes of
    intermediate tensors and outputs are NOT trusted (real models declare wrong ones) and are
    recomputed by shape inference;
  * `metadata_props` are kept in `Graph.metadata` and written back out by the writers;
  * an op outside the registry is an error naming the op, the node and the supported list.
"""
from __future__ import annotations

import inspect
import os
from pathlib import Path

import numpy as np

from dsedge.errors import DseError, ModelError, UnsupportedOpError
from dsedge.ir import Graph, Node, TensorInfo
from dsedge.ops import REGISTRY

try:
    import onnx
    from onnx import numpy_helper
except ImportError as e:  # pragma: no cover - onnx is a core dependency
    raise ImportError("dsedge needs the 'onnx' package: pip install onnx") from e

_DEFAULT_DOMAINS = ("", "ai.onnx")


def onnx_dtype(elem_type: int) -> np.dtype | None:
    if elem_type == 0:
        return None
    try:
        return np.dtype(onnx.helper.tensor_dtype_to_np_dtype(elem_type))
    except Exception:
        return None


def _attr_value(a: "onnx.AttributeProto", opset: int, where: str, path: str):
    T = onnx.AttributeProto
    if a.type == T.INT:
        return int(a.i)
    if a.type == T.FLOAT:
        return float(a.f)
    if a.type == T.STRING:
        return a.s.decode("utf-8", "replace")
    if a.type == T.INTS:
        return [int(x) for x in a.ints]
    if a.type == T.FLOATS:
        return [float(x) for x in a.floats]
    if a.type == T.STRINGS:
        return [x.decode("utf-8", "replace") for x in a.strings]
    if a.type == T.TENSOR:
        return _tensor(a.t, where, path)
    if a.type == T.GRAPH:
        return _graph(a.g, opset, path, sub=True)
    raise UnsupportedOpError(f"{where}: attribute {a.name!r} has an unsupported type {a.type}")


def _tensor(t: "onnx.TensorProto", where: str, path: str) -> np.ndarray:
    try:
        arr = numpy_helper.to_array(t, base_dir=os.path.dirname(path) if path else "")
    except Exception as e:
        raise ModelError(f"{where}: cannot read tensor {t.name!r}: {e}") from None
    return np.array(arr)  # own, writable copy


def _constant_value(n: "onnx.NodeProto", where: str, path: str) -> np.ndarray:
    for a in n.attribute:
        if a.name == "value":
            return _tensor(a.t, where, path)
        if a.name == "value_float":
            return np.array(a.f, dtype=np.float32)
        if a.name == "value_floats":
            return np.array(list(a.floats), dtype=np.float32)
        if a.name == "value_int":
            return np.array(a.i, dtype=np.int64)
        if a.name == "value_ints":
            return np.array(list(a.ints), dtype=np.int64)
        if a.name == "value_string":
            return np.array(a.s.decode())
        if a.name == "value_strings":
            return np.array([s.decode() for s in a.strings])
    raise ModelError(f"{where}: Constant node has no value")


def _value_info(vi) -> TensorInfo:
    tt = vi.type.tensor_type
    if not vi.type.HasField("tensor_type"):
        return TensorInfo()
    dtype = onnx_dtype(tt.elem_type)
    if not tt.HasField("shape"):
        return TensorInfo(dtype, None)
    dims = []
    for d in tt.shape.dim:
        if d.HasField("dim_value"):
            dims.append(int(d.dim_value))
        elif d.HasField("dim_param") and d.dim_param:
            dims.append(d.dim_param)
        else:
            dims.append(None)
    return TensorInfo(dtype, tuple(dims))


def _graph(gp: "onnx.GraphProto", opset: int, path: str, sub: bool = False) -> Graph:
    g = Graph(name=gp.name or "graph", opset=opset)
    for t in gp.initializer:
        g.consts[t.name] = _tensor(t, f"initializer {t.name!r}", path)
    for t in gp.sparse_initializer:
        raise ModelError(f"sparse initializer {t.values.name!r} is not supported",
                         hint="densify it with onnx.numpy_helper before importing")
    for vi in gp.input:
        if vi.name in g.consts:
            continue  # old-style models list initializers as inputs too
        g.inputs.append(vi.name)
        g.info[vi.name] = _value_info(vi)
    for vi in gp.output:
        g.outputs.append(vi.name)
        # dtype only: declared output shapes are often wrong in real models
        info = _value_info(vi)
        g.info.setdefault(vi.name, TensorInfo(info.dtype, None))
    used_names: set[str] = set()
    for idx, n in enumerate(gp.node):
        name = n.name or f"{n.op_type}_{idx}"
        if name in used_names:
            name = f"{name}_{idx}"
        used_names.add(name)
        where = f"node {name!r} ({n.op_type})"
        domain = "" if n.domain in _DEFAULT_DOMAINS else n.domain
        if n.op_type == "Constant" and domain == "":
            g.consts[n.output[0]] = _constant_value(n, where, path)
            continue
        d = REGISTRY.get(n.op_type, domain)
        if d is None:
            supported = ", ".join(REGISTRY.names())
            raise UnsupportedOpError(
                f"{where}: op {(domain + '.') if domain else ''}{n.op_type} is not supported",
                hint=f"supported ops: {supported}")
        attrs = {a.name: _attr_value(a, opset, where, path) for a in n.attribute}
        inputs = list(n.input)
        if d.upgrade is not None:
            # an upgrade rule may also ask for the node's output count (Split with neither sizes nor num_outputs)
            extra = {"n_outputs": len(n.output)} if "n_outputs" in inspect.signature(d.upgrade).parameters else {}
            try:
                inputs, attrs = d.upgrade(opset, inputs, attrs, **extra)
            except DseError as e:  # an unsupported attribute value: name the file and node
                raise type(e)(f"{path or 'model'}: {where}: {e.args[0]}", hint=e.hint) from None
            for k, v in enumerate(inputs):
                if isinstance(v, np.ndarray):
                    inputs[k] = g.add_const(f"{name}_{k}_const", v)
        d.check_attrs(attrs, f"{path or 'model'}: {where}")
        g.nodes.append(Node(op=n.op_type, inputs=inputs, outputs=list(n.output), attrs=attrs,
                            name=name, domain=domain))
    return g


def load_onnx(path_or_bytes, *, infer: bool = True) -> Graph:
    """Read an ONNX file (path or bytes) into a dsedge Graph."""
    path = "" if isinstance(path_or_bytes, (bytes, bytearray)) else str(path_or_bytes)
    try:
        if path:
            if not Path(path).is_file():
                raise ModelError(f"{path}: no such model file")
            mp = onnx.load(path, load_external_data=True)
        else:
            mp = onnx.load_from_string(bytes(path_or_bytes))
    except ModelError:
        raise
    except Exception as e:
        raise ModelError(f"{path or 'model'}: not a readable ONNX model ({type(e).__name__}: {e})",
                         hint="the file may be truncated or corrupt; re-export it") from None
    return from_model_proto(mp, path=path, infer=infer)


def from_model_proto(mp: "onnx.ModelProto", *, path: str = "", infer: bool = True) -> Graph:
    if not mp.HasField("graph") or len(mp.graph.output) == 0:
        raise ModelError(f"{path or 'model'}: not a readable ONNX model (no graph or no outputs)",
                         hint="the file may be truncated or corrupt; re-export it")
    opset = 0
    for o in mp.opset_import:
        if o.domain in _DEFAULT_DOMAINS:
            opset = int(o.version)
    if opset == 0:
        opset = 11
    if opset < 7:
        raise ModelError(f"{path or 'model'}: ONNX opset {opset} is too old (dsedge reads opsets 7-21)",
                         hint="upgrade it with onnx.version_converter.convert_version(model, 13)")
    g = _graph(mp.graph, opset, path)
    g.metadata = {p.key: p.value for p in mp.metadata_props}
    g.name = mp.graph.name or (Path(path).stem if path else "model")
    if infer:
        from dsedge.passes.shapes import infer_shapes
        infer_shapes(g)
    return g
