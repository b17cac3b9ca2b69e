"""The `.dse` exporter: quantised IR -> `Artifact` (docs/format.md), and back.

`export(result_or_graph, input_shapes=..., io_dtype=...)` runs, in order:

 1. specialize.py: static input shapes, pinned constant inputs (guards), folding of shape
    arithmetic and control flow;
 2. export rewrites of the IR: a float `dsedge.Elementwise` stays one node when every step
    of its program is one the C kernel runs (ops/fused.py FLOAT_STEPS: arithmetic and clamps,
    one pass over the tensor), else it is expanded back into the ops of its program; an int8
    one is a table; such a program, or a single op of those steps, whose only reader is a
    per-tensor QuantizeLinear, absorbs it (one node with an int8 output, `_fuse_quantize`); an int8 Pad loses
    its pad-value input (the kernel pads with `pad_value` = zp); `--io-dtype int8|uint8`
    removes the leading QuantizeLinear / trailing DequantizeLinear of graph inputs/outputs
    (uint8: a DequantizeLinear(uint8) -> QuantizeLinear(int8) pair, zero point + 128); a float
    activation with a fused form (HardSwish, SiLU: registry ActFn) after a float Conv is merged into
    it (`_fuse_act_fn`; an Elementwise computing one is expanded only after that);
 3. planner.py: the arena plan (scratch formulas from scratch.py);
 4. records: every tensor -> `TensorRec` (fp16 weights stored as float16, quantisation
    parameters from `graph.qparams`), every node -> `NodeRec` with the attributes of
    docs/kernels.md (ONNX attributes made explicit, auto_pad resolved into pads, `_act` ->
    act_min/act_max, `_act_fn` -> act_fn, `_q` -> INT/INTS/TENSOR attributes); the tensor table is then ordered so
    that the weight blob needs no alignment padding (`_blob_order`, docs/format.md §4.4);
 5. metadata: producer, precision plan (compact, `_compact_plan`), calibration summary,
    guards, io dtype, the source model's metadata (`source.<key>`), memory-plan summary
    (without what the tables already say).

Names: graph inputs and outputs keep their names, and so do nodes of the source (optimised
float) graph; intermediate tensors and nodes the quantiser or exporter generated (Q/DQ,
expanded programs) are unnamed by default (`names="all"` keeps every name), which keeps the
format overhead small.
Everything is ordered by the graph, dictionaries are sorted, JSON is written with sorted
keys: the same inputs give the same bytes.

`load_dse_graph(path)` is the inverse used by tests: the artifact as an IR graph that the
numpy interpreter runs (int8 nodes with their `_q` parameters rebuilt from the attributes),
so numpy and the C runtime can be compared byte for byte on the exported file itself.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, replace

import numpy as np

from .. import __version__
from ..artifact import (BIG_CONST, CONST, DTYPE_IDS, DTYPES, F32_LAYOUTS, I4_LAYOUTS, LAYOUT_F16W, LAYOUT_PLAIN,
                        REORDERED_LAYOUTS, Artifact, NodeRec, QuantRec, TensorAttr, TensorRec, _svs, layout_ok, pack_weights, read)
from ..errors import DseError, ModelError
from ..ir import Graph, Node, QParams, TensorInfo
from ..ops import REGISTRY
from ..ops.fused import (FLOAT_STEPS, act_fn_name, act_fn_of, decode_float_program, encode_float_program,
                         expand_steps)
from ..ops.half import FP16_ARITH

_BINARY_STEPS = {"Add", "Sub", "Mul", "Div", "Min", "Max"}
from ..ops.nn import same_pads
from ..passes.simplify import eliminate_dead
from ..quant.kinds import kind, kind_attrs, recorded_kind
from .planner import MemoryPlan, plan_memory
from .scratch import scratch_bytes
from .specialize import input_shapes_from_cli, specialize

IO_DTYPES = ("float32", "int8", "uint8")
_CONV_POOL = ("Conv", "ConvTranspose", "ConvInteger", "MaxPool", "AveragePool")
_Q_KEYS = {"act_min", "act_max", "act_fn", "fp16_arith"} | kind_attrs()   # .dse attributes that are not ONNX attributes


@dataclass
class Exported:
    artifact: Artifact
    graph: Graph                 # the exported IR (what the artifact holds)
    plan: MemoryPlan
    guards: dict
    payload_bytes: int           # weight + bias + scale bytes (incl. requant arrays and user metadata)

    @property
    def file_bytes(self) -> int:
        return len(self.artifact.to_bytes())


# -- IR rewrites ---------------------------------------------------------------------------

def _rename(g: Graph, old: str, new: str) -> None:
    for n in g.nodes:
        n.inputs = [new if i == old else i for i in n.inputs]
        n.outputs = [new if o == old else o for o in n.outputs]
    g.outputs = [new if o == old else o for o in g.outputs]
    g.inputs = [new if i == old else i for i in g.inputs]
    if old in g.info:
        g.info[new] = g.info.pop(old)
    if old in g.qparams:
        g.qparams[new] = g.qparams.pop(old)


def _expand_elementwise(g: Graph, keep_act_fns: bool = False) -> int:
    """Every float Elementwise the C kernel cannot run in one pass back as the ops of its program
    (the number expanded). keep_act_fns: not yet those that compute a fused activation function
    (ops/fused.py `act_fn_of`: SiLU), which `_fuse_act_fn` may merge into the Conv before them;
    a second call expands the ones it left."""
    out: list[Node] = []
    done = 0
    for n in g.nodes:
        if (not (n.op == "Elementwise" and n.domain == "dsedge" and "_q" not in n.attrs)
                or encode_float_program(n.attrs) is not None   # the C kernel runs it in one pass
                or (keep_act_fns and act_fn_of(n) is not None)):
            out.append(n)
            continue
        done += 1
        for op, ins, dst, attrs, last in expand_steps(n, g.add_const, g.fresh_name):
            out.append(Node(op, ins, [dst], attrs, n.name if last else ""))
            g.nodes = out + [x for x in g.nodes if x is not n]  # keep fresh_name aware of new nodes
    g.nodes = out
    return done


def _fuse_quantize(g: Graph) -> None:
    """A float elementwise computation whose only reader is a per-tensor int8 QuantizeLinear runs
    as one node with an int8 output (the C Elementwise kernel quantises each block as
    QuantizeLinear does): a float Elementwise program the C kernel runs, or a single unary op of
    its steps (HardSwish, LeakyRelu, HardSigmoid, Clip with constant bounds, ...) made a
    one-step program. The float tensor between them is never written."""
    consumers = g.consumers()
    removed: set[int] = set()     # ids of the QuantizeLinear nodes absorbed so far
    for n in list(g.nodes):
        if id(n) in removed or n.attrs.get("_q") or n.attrs.get("_act") or len(n.outputs) != 1:
            continue
        x = n.inputs[0] if n.inputs else ""
        if not x or g.tensor_info(x).dtype != np.dtype(np.float32) or n.outputs[0] in g.outputs:
            continue
        if n.op == "Elementwise" and n.domain == "dsedge":
            attrs = dict(n.attrs)
        elif not n.domain and n.op in FLOAT_STEPS and FLOAT_STEPS[n.op][0] >= 1 and n.op not in _BINARY_STEPS:
            extra = [i for i in n.inputs[1:] if i]
            if any(i not in g.consts or g.consts[i].size != 1 for i in extra):
                continue
            consts = tuple(np.asarray(g.consts[i], np.float32).reshape(()) for i in extra)
            it = iter(range(len(consts)))
            args = ((("v", 0),) + tuple(None if not i else ("c", next(it)) for i in n.inputs[1:]))
            attrs = {"program": ((n.op, args, {k: v for k, v in n.attrs.items() if not k.startswith("_")}),),
                     "consts": consts, "result": 1}
        else:
            continue
        if encode_float_program(attrs) is None:
            continue
        readers = consumers.get(n.outputs[0], [])
        qn = readers[0] if len(readers) == 1 else None
        if qn is None or qn.op != "QuantizeLinear" or qn.domain or qn.inputs[0] != n.outputs[0]:
            continue
        sc, zp = _scalar(g, qn.inputs[1]), _scalar(g, qn.inputs[2]) if len(qn.inputs) > 2 and qn.inputs[2] else None
        y = qn.outputs[0]
        if (sc is None or sc.size != 1 or sc.dtype != np.float32 or zp is None or zp.size != 1
                or zp.dtype != np.int8 or g.tensor_info(y).dtype != np.dtype(np.int8)
                or not (np.isfinite(sc[0]) and sc[0] > 0)):
            continue
        attrs["_quantize"] = (float(sc[0]), int(zp[0]))
        fused = Node("Elementwise", [x], [y], attrs, n.name, "dsedge")
        g.nodes[:] = [fused if m is n else m for m in g.nodes if m is not qn]
        removed.add(id(qn))
        consumers = g.consumers()


def _fuse_act_fn(g: Graph) -> None:
    """A float node computing a fused activation function (ops/fused.py `act_fn_of`: a registered
    `ActFn`, the one op HardSwish or a collapsed Elementwise x * Sigmoid(x), SiLU) whose input is
    the float output of an op whose float kernels apply it in their epilogue (OpDef.takes_act_fn:
    Conv), read by nothing else, is merged into that node (annotation `_act_fn` = the ActFn's
    name, the .dse INT `act_fn` = its code): one node, the activation computed on the output while
    it is in registers, with the separate nodes' bytes (docs/kernels.md "Fused activation";
    onnxruntime fuses Conv + HardSwish / SiLU alike).
    Here, after quantisation, so only nodes that stay float take it: an int8 node (`_q`, its
    float_out form included) keeps its activation as its own (table) node, and so does a
    binary16 (fp16 arithmetic) one, whose kernels apply it too but which stays a separate node
    until a test covers it on the device's kernels. (SiLU's bytes are each ISA's Sigmoid kernel's:
    the C Conv kernels that apply it say where they match, src/internal.h `dse__act_fns`; fp16
    weights are widened at load, so the optimised float kernels take such a Conv as well.)"""
    producers, consumers = g.producers(), g.consumers()
    f32 = np.dtype(np.float32)
    for a in list(g.nodes):
        f = act_fn_of(a)
        if f is None or a.attrs.get("_q") or a.attrs.get("_act") or not a.outputs[0]:
            continue
        t = a.inputs[0]
        p = producers.get(t)
        dp = REGISTRY.get(p.op, p.domain) if p is not None else None
        if (dp is None or not dp.takes_act_fn or p.attrs.get("_q") or p.attrs.get("_act_fn")
                or p.attrs.get(FP16_ARITH) or len(p.outputs) != 1 or t in g.outputs or t in g.inputs
                or len(consumers.get(t, [])) != 1 or g.tensor_info(t).dtype != f32
                or g.tensor_info(a.outputs[0]).dtype != f32):
            continue
        p.outputs = [a.outputs[0]]
        p.attrs = {**p.attrs, "_act_fn": f.name}
        g.nodes[:] = [m for m in g.nodes if m is not a]   # (identity: no dataclass comparisons)
        g.info.pop(t, None)
        producers[a.outputs[0]] = p      # the maps follow the merge (t has no reader left)
        producers.pop(t, None)
        consumers.pop(t, None)


def _fuse_act_fn_quantize(g: Graph) -> None:
    """A float node computing a fused activation function (ops/fused.py `act_fn_of`: SiLU, a
    collapsed Elementwise x * Sigmoid(x), that no float Conv took) whose only reader is a per-tensor
    int8 QuantizeLinear becomes one `dsedge.ActFnQuantize` node (op 1002; float32 in, int8 out):
    one pass over the tensor instead of three (Sigmoid, Mul, QuantizeLinear), with their bytes on
    every ISA (the kernel applies the sigmoid of the model's Sigmoid kernel, src/internal.h
    `dse__act_fns`; docs/kernels.md "dsedge.ActFnQuantize"). A HardSwish feeding a QuantizeLinear
    was already absorbed by `_fuse_quantize` (a float program the Elementwise kernel runs)."""
    consumers = g.consumers()
    for a in list(g.nodes):
        f = act_fn_of(a)
        if f is None or a.attrs.get("_q") or a.attrs.get("_act") or not a.outputs[0] or a.outputs[0] in g.outputs:
            continue
        x = a.inputs[0]
        if g.tensor_info(x).dtype != np.dtype(np.float32) or g.tensor_info(a.outputs[0]).dtype != np.dtype(np.float32):
            continue
        readers = consumers.get(a.outputs[0], [])
        qn = readers[0] if len(readers) == 1 else None
        if qn is None or qn.op != "QuantizeLinear" or qn.domain or qn.inputs[0] != a.outputs[0]:
            continue
        sc = _scalar(g, qn.inputs[1])
        zp = _scalar(g, qn.inputs[2]) if len(qn.inputs) > 2 and qn.inputs[2] else None
        y = qn.outputs[0]
        if (sc is None or sc.size != 1 or sc.dtype != np.float32 or zp is None or zp.size != 1
                or zp.dtype != np.int8 or g.tensor_info(y).dtype != np.dtype(np.int8)
                or not (np.isfinite(sc[0]) and sc[0] > 0)):
            continue
        fused = Node("ActFnQuantize", [x], [y], {"act_fn": int(f.code), "q_scale": float(sc[0]), "q_zp": int(zp[0])},
                     a.name, "dsedge")
        g.nodes[:] = [fused if m is a else m for m in g.nodes if m is not qn]
        g.info.pop(a.outputs[0], None)
        consumers = g.consumers()


def _scalar(g: Graph, name: str):
    v = g.consts.get(name)
    return None if v is None else np.asarray(v).reshape(-1)


def _io_quantize(g: Graph, io_dtype: str) -> None:
    """Graph inputs/outputs in int8 (or uint8) instead of float (docs: --io-dtype)."""
    if io_dtype == "float32":
        return
    consumers = g.consumers()
    producers = g.producers()
    for x in list(g.inputs):
        readers = consumers.get(x, [])
        if not readers or x in g.outputs or any(r.op != "QuantizeLinear" or r.inputs[0] != x for r in readers):
            continue
        q0 = readers[0]
        p = g.qparams.get(q0.outputs[0])
        if p is None or p.axis is not None:
            continue
        same = all(np.array_equal(_scalar(g, r.inputs[1]), _scalar(g, q0.inputs[1]))
                   and np.array_equal(_scalar(g, r.inputs[2]), _scalar(g, q0.inputs[2])) for r in readers)
        if not same:
            continue
        shape = g.tensor_info(x).shape
        for r in readers[1:]:
            for n in g.nodes:
                n.inputs = [q0.outputs[0] if i == r.outputs[0] else i for i in n.inputs]
            g.outputs = [q0.outputs[0] if o == r.outputs[0] else o for o in g.outputs]
        g.nodes = [n for n in g.nodes if n not in readers]
        qname = q0.outputs[0]
        if io_dtype == "int8":
            _rename(g, qname, x)
            g.info[x] = TensorInfo(np.dtype(np.int8), shape)
            g.qparams[x] = p
        else:
            fname = g.fresh_name(x + "_f")
            s = g.add_const(x + "_u8_scale", np.asarray(p.scale, np.float32))
            zu = g.add_const(x + "_u8_zp", np.asarray(int(p.zero_point) + 128, np.uint8))
            s2 = g.add_const(x + "_i8_scale", np.asarray(p.scale, np.float32))
            zi = g.add_const(x + "_i8_zp", np.asarray(int(p.zero_point), np.int8))
            g.nodes[:0] = [Node("DequantizeLinear", [x, s, zu], [fname], {}, g.fresh_name(x + "_from_uint8")),
                           Node("QuantizeLinear", [fname, s2, zi], [qname], {}, g.fresh_name(x + "_to_int8"))]
            g.info[x] = TensorInfo(np.dtype(np.uint8), shape)
            g.info[fname] = TensorInfo(np.dtype(np.float32), shape)
            g.qparams[x] = QParams(p.scale, int(p.zero_point) + 128, np.dtype(np.uint8))
    consumers = g.consumers()
    for o in list(g.outputs):
        n = producers.get(o)
        if n is None or n.op != "DequantizeLinear" or n not in g.nodes or o in g.inputs:
            continue
        qt = n.inputs[0]
        p = g.qparams.get(qt)
        if p is None or p.axis is not None or qt in g.inputs or qt in g.outputs or qt in g.consts:
            continue
        shape = g.tensor_info(o).shape
        if io_dtype == "int8":
            if len(consumers.get(o, [])) > 0:
                continue
            g.nodes = [m for m in g.nodes if m is not n]
            g.info.pop(o, None)
            _rename(g, qt, o)
            g.info[o] = TensorInfo(np.dtype(np.int8), shape)
            g.qparams[o] = p
        else:
            if len(consumers.get(o, [])) > 0:
                continue
            fname = g.fresh_name(o + "_f")
            n.outputs = [fname]
            g.info[fname] = TensorInfo(np.dtype(np.float32), shape)
            s = g.add_const(o + "_u8_scale", np.asarray(p.scale, np.float32))
            zu = g.add_const(o + "_u8_zp", np.asarray(int(p.zero_point) + 128, np.uint8))
            idx = g.nodes.index(n) + 1
            g.nodes.insert(idx, Node("QuantizeLinear", [fname, s, zu], [o], {}, g.fresh_name(o + "_to_uint8")))
            g.info[o] = TensorInfo(np.dtype(np.uint8), shape)
            g.qparams[o] = QParams(p.scale, int(p.zero_point) + 128, np.dtype(np.uint8))


def _drop_pad_value(g: Graph) -> None:
    for n in g.nodes:
        if n.op == "Pad" and "_q" in n.attrs and len(n.inputs) > 2:
            n.inputs[2] = ""
            while n.inputs and not n.inputs[-1]:
                n.inputs.pop()


# -- attributes ----------------------------------------------------------------------------

def _conv_pool_attrs(g: Graph, n: Node, a: dict) -> dict:
    xs = g.tensor_info(n.inputs[0]).shape
    sp = len(xs) - 2
    if n.op in ("Conv", "ConvTranspose", "ConvInteger"):
        ws = g.tensor_info(n.inputs[1]).shape
        a["kernel_shape"] = list(a.get("kernel_shape") or ws[2:])
        a["group"] = int(a.get("group", 1) or 1)
    ks = list(a["kernel_shape"])
    a["strides"] = list(a.get("strides") or [1] * sp)
    a["dilations"] = list(a.get("dilations") or [1] * sp)
    mode = a.pop("auto_pad", "NOTSET") or "NOTSET"
    k_eff = [(k - 1) * d + 1 for k, d in zip(ks, a["dilations"])]
    if n.op == "ConvTranspose":
        a["output_padding"] = list(a.get("output_padding") or [0] * sp)
        oshape = a.pop("output_shape", None)
        if oshape or mode not in ("NOTSET", "VALID"):
            out_sp = list(oshape)[-sp:] if oshape else [xs[2 + i] * a["strides"][i] for i in range(sp)]
            pads = [0] * (2 * sp)
            for i in range(sp):
                total = a["strides"][i] * (xs[2 + i] - 1) + a["output_padding"][i] + k_eff[i] - out_sp[i]
                total = max(total, 0)
                lo = total - total // 2 if mode == "SAME_LOWER" else total // 2
                pads[i], pads[i + sp] = lo, total - lo
            a["pads"] = pads
    elif mode != "NOTSET":
        a["pads"] = [0] * (2 * sp) if mode == "VALID" else same_pads(mode, list(xs[2:]), k_eff, a["strides"])
    if "_q" in n.attrs and "pads" in n.attrs["_q"]:
        a["pads"] = list(n.attrs["_q"]["pads"])
    a["pads"] = list(a.get("pads") or [0] * (2 * sp))
    if n.op in ("MaxPool", "AveragePool"):
        a["ceil_mode"] = int(a.get("ceil_mode", 0) or 0)
    if n.op == "AveragePool":
        a["count_include_pad"] = int(a.get("count_include_pad", 0) or 0)
    return a


def _node_attrs(g: Graph, n: Node, attr_const) -> dict:
    d = REGISTRY.get(n.op, n.domain)
    q = n.attrs.get("_q")
    a: dict = {}
    if not (n.op == "Elementwise" and n.domain == "dsedge"):
        for k, default in d.attrs.items():
            v = n.attrs.get(k, default)
            if v is not None:
                a[k] = v
    if n.op in _CONV_POOL:
        a = _conv_pool_attrs(g, n, a)
    if n.op in ("Softmax", "LogSoftmax"):
        rank = len(g.tensor_info(n.inputs[0]).shape)
        a["axis"] = int(a.get("axis", -1)) % max(rank, 1)
        a["coerce_2d"] = int(a.get("coerce_2d", 0) or 0)
    if n.op == "Concat":
        rank = len(g.tensor_info(n.outputs[0]).shape)
        a["axis"] = int(a["axis"]) % max(rank, 1)
    if n.op == "Elementwise" and n.domain == "dsedge" and q is None:
        a.update(encode_float_program(n.attrs))
        if "_quantize" in n.attrs:            # fused trailing QuantizeLinear (_fuse_quantize)
            a["q_scale"], a["q_zp"] = float(n.attrs["_quantize"][0]), int(n.attrs["_quantize"][1])
    act = n.attrs.get("_act")
    if act:
        _, lo, hi = act
        a["act_min"], a["act_max"] = float(lo), float(hi)
    if n.attrs.get("_act_fn"):            # a fused activation function (_fuse_act_fn)
        a["act_fn"] = int(REGISTRY.act_fn(n.attrs["_act_fn"]).code)
    if n.attrs.get(FP16_ARITH):           # binary16 arithmetic (docs/quant-arith.md §16)
        a["fp16_arith"] = 1
    if q is not None:   # docs/kernels.md; the kind's arrays become tensor attributes in its order
        for k, v in kind(q["kind"], f"node {n.name!r} ({n.op})").encode(g, n, q).items():
            a[k] = attr_const(v) if isinstance(v, np.ndarray) and v.ndim > 0 else v
    out = {}
    for k, v in a.items():
        if isinstance(v, Graph):
            raise ModelError(f"node {n.name!r} ({n.op}): a sub-graph attribute remained after specialisation")
        if isinstance(v, (list, tuple)) and v and all(isinstance(s, str) for s in v):
            v = ",".join(v)          # e.g. LSTM activations: one comma-separated STRING
        elif isinstance(v, np.ndarray) and v.ndim > 0 or (isinstance(v, np.ndarray) and v.dtype.kind not in "iuf"):
            v = attr_const(v)
        elif isinstance(v, np.ndarray):
            v = v.item()
        elif isinstance(v, (np.integer, bool)):
            v = int(v)
        elif isinstance(v, np.floating):
            v = float(v)
        out[k] = v
    return out


# -- export ---------------------------------------------------------------------------------

def _quant_rec(p: QParams | None, dtype: str) -> QuantRec | None:
    if p is None or dtype not in ("int8", "uint8", "int32", "int16", "uint16", "int4"):
        return None
    if p.axis is None:
        return QuantRec(np.asarray(p.scale).reshape(-1)[:1], np.asarray(p.zero_point).reshape(-1)[:1])
    return QuantRec(p.scale.reshape(-1), p.zero_point.reshape(-1), int(p.axis))


def _const_rec(name: str, v: np.ndarray, dtype: str, q: QuantRec | None, layout: int = LAYOUT_PLAIN) -> TensorRec:
    """A CONST record keeping rank 0 (TensorRec.const goes through np.ascontiguousarray, which
    turns a 0-d array into shape (1,)); int8 weights in a packed `layout` (docs/format.md §4.4);
    int4 codes (held as int8 in the IR) in layout 3 or 4."""
    v = np.asarray(v)
    if layout in I4_LAYOUTS:
        return TensorRec(name, "int4", tuple(v.shape), CONST, 0, pack_weights(v, layout), layout, q)
    if layout in REORDERED_LAYOUTS:
        return TensorRec(name, dtype, tuple(v.shape), CONST, 0, pack_weights(v, layout), layout, q)
    data = np.asarray(v.astype(np.dtype(dtype).newbyteorder("<"), copy=False), order="C").tobytes()
    return TensorRec(name, dtype, tuple(v.shape), CONST, 0, data, layout, q)


def _weight_layout(g: Graph, n: Node) -> int:
    """The packed layout of a node's weight (input 1), docs/format.md §4.4: its kind's choice
    (weighted.Weighted.weight_layout); a float node's, its op's (OpDef.float_weight_layout; 0 when
    the op declares none: the float32 weight is then stored as it is, or as fp16: add_const)."""
    q = n.attrs.get("_q")
    if q:
        return kind(q["kind"]).weight_layout(g, n)
    d = REGISTRY.get(n.op, n.domain)
    return d.float_weight_layout(g, n) if d is not None and d.float_weight_layout is not None else LAYOUT_PLAIN


def _quant_bytes(q: QuantRec | None) -> int:
    """Bytes of a tensor's scales and zero points as encoded (payload, not overhead)."""
    return 0 if q is None else 4 * len(q.scales) + len(_svs(q.zero_points))


def _dtype_name(dt) -> str:
    dt = np.dtype(dt)
    return "bool" if dt == np.bool_ else dt.name


def _compact_plan(plan_list, node_index: dict[str, int]) -> dict:
    """The precision plan, compact (docs/format.md §4.2). The node list already says which
    nodes run in int8, and which int8 weighted nodes give a float output (their output tensor
    is float32): those are counted by reason, {"int8": {reason: count}, "int8-fout": {...}}.
    Every other node is listed under its precision and reason: {"fp32": {reason: [node, ...]}},
    or {reason: {node: dB}} for a reason decided by measuring the int8 form's SQNR ("int8 form
    loses too much"). "sqnr_db": {node: dB} gives the SQNR of int8 nodes chosen by measurement.
    A node is its index in the artifact's node list when it is there under its name, else its
    name (nodes folded away by specialisation)."""
    out: dict = {}
    lists: dict = {}
    sq = {}

    def ref(name):
        return node_index.get(name, name)

    for p in plan_list:
        measured = p.sqnr_db is not None and np.isfinite(p.sqnr_db) and p.reason != "weight-bearing"
        db = round(float(p.sqnr_db), 1) if measured else None
        if p.precision in ("int8", "int8-fout"):
            d = out.setdefault(p.precision, {})
            key = "measured" if p.reason.startswith("measured") else p.reason
            d[key] = d.get(key, 0) + 1
            if measured:
                sq[str(ref(p.name))] = db
        else:
            # "int8 form loses too much: 26.4 dB vs ..." -> one key, the node's dB with it
            key = p.reason.split(":")[0] if p.sqnr_db is not None else p.reason
            lists.setdefault((p.precision, key), []).append((ref(p.name), db))
    for (prec, key), items in lists.items():
        if all(db is None for _, db in items):
            out.setdefault(prec, {})[key] = [n for n, _ in items]
        else:
            out.setdefault(prec, {})[key] = {str(n): db for n, db in items}
    if sq:
        out["sqnr_db"] = sq
    return out


def _blob_order(recs: list[TensorRec], nodes: list[NodeRec], inputs: list[int], outputs: list[int]):
    """Reorders the tensor table so that the weight blob needs no padding (format overhead,
    docs/format.md §7): the blob holds CONST data in tensor order, each at its dtype's
    alignment (64 for constants of >= BIG_CONST bytes). So: activations (ARENA) first, in
    creation order; then the big constants in first-use order (cache-line aligned, and most
    sizes are multiples of 64); then the small ones by alignment, largest first (8, 4, 2, 1),
    each group in first-use order. Returns the records and the remapped nodes, inputs, outputs."""
    def key(i):
        t = recs[i]
        if t.storage != CONST:
            return (0, 0, i)
        if t.nbytes >= BIG_CONST:
            return (1, 0, i)
        return (2, -DTYPES[DTYPE_IDS[t.dtype]][2], i)
    order = sorted(range(len(recs)), key=key)
    new = {old: k for k, old in enumerate(order)}

    def m(i):
        return new[i] if i >= 0 else i
    nodes = [replace(n, inputs=tuple(m(i) for i in n.inputs), outputs=tuple(m(o) for o in n.outputs),
                     attrs=tuple((k, TensorAttr(new[v.index]) if isinstance(v, TensorAttr) else v) for k, v in n.attrs))
             for n in nodes]
    return [recs[i] for i in order], nodes, [new[i] for i in inputs], [new[o] for o in outputs]


def _json(v) -> str:
    return json.dumps(v, sort_keys=True, separators=(",", ":"), default=_jsonable)


def _jsonable(v):
    if isinstance(v, np.ndarray):
        return v.tolist()
    if isinstance(v, (np.integer,)):
        return int(v)
    if isinstance(v, (np.floating,)):
        return float(v)
    if isinstance(v, (set, tuple)):
        return list(v)
    return str(v)


class RecordCache:
    """Constant records shared by several exports of one model, e.g. the same QuantResult at
    several input shapes (the precision planner runs each candidate on feeds of many shapes):
    specialisation copies the graph but shares its constant arrays and quantisation parameters
    (immutable), so a constant's record (packed weights, scales) is built once. Keyed by the
    identity of the array and of its QParams; the cache holds both, so an id is never reused
    while it lives. Use one cache per model and drop it with the model."""

    def __init__(self):
        self._recs: dict[tuple, tuple] = {}

    def get(self, v, p, extra: tuple, build):
        key = (id(v), id(p), extra)
        hit = self._recs.get(key)
        if hit is None or hit[0] is not v or hit[1] is not p:
            hit = (v, p, build())
            self._recs[key] = hit
        return hit[2]


def export(obj, *, io_dtype: str = "float32", input_shapes=None, names: str = "io",
           pin_constants: bool = True, weights_crc: bool = True, alias: bool = True,
           cache: RecordCache | None = None) -> Exported:
    """QuantResult or Graph -> Exported (artifact + the exported IR + memory plan). `cache`: a
    RecordCache shared by exports of the same model at other input shapes (same bytes)."""
    if io_dtype not in IO_DTYPES:
        raise DseError(f"unknown --io-dtype {io_dtype!r}", hint=f"use one of {', '.join(IO_DTYPES)}")
    if isinstance(obj, Graph):
        g0, info, plan_list, fp16 = obj, {}, [], tuple(getattr(obj, "fp16_weights", ()))
        source_nodes = None
    else:
        g0, info, plan_list = obj.graph, dict(obj.info or {}), list(obj.plan or [])
        fp16 = tuple(getattr(obj.graph, "fp16_weights", ()))
        source_nodes = {n.name for n in obj.float_graph.nodes} if obj.float_graph is not None else None
    g, guards = specialize(g0, input_shapes_from_cli(input_shapes) if not isinstance(input_shapes, dict)
                           else input_shapes, info, pin_constants=pin_constants)
    _expand_elementwise(g, keep_act_fns=True)
    _drop_pad_value(g)
    _io_quantize(g, io_dtype)
    from ..passes.shapes import infer_shapes
    eliminate_dead(g)
    infer_shapes(g)
    _fuse_quantize(g)       # after shape inference: the fused node's int8 output is not its op's rule
    _fuse_act_fn(g)         # float Conv + HardSwish / SiLU: one node
    _fuse_act_fn_quantize(g)   # the SiLUs left that feed a QuantizeLinear: one node (int8 out)
    if _expand_elementwise(g):          # the SiLU programs no Conv took
        infer_shapes(g)
    for n in g.nodes:
        if REGISTRY.get(n.op, n.domain) is None:
            raise ModelError(f"node {n.name!r}: op {n.op} is not in the op registry")
        for o in n.outputs:
            if o and not g.tensor_info(o).is_static:
                raise ModelError(f"node {n.name!r} ({n.op}): output {o!r} has no static shape")

    shapes = {k: tuple(v.shape) for k, v in g.info.items() if v.shape is not None}
    shapes.update({k: tuple(v.shape) for k, v in g.consts.items()})

    def out_dtype(n: Node) -> str:
        # the dtype the C loader picks the kernel by: of the first present output (an LSTM
        # without Y is chosen by Y_h's)
        first = next((o for o in n.outputs if o), n.outputs[0])
        return _dtype_name(g.tensor_info(first).dtype)

    fp16_set = set(fp16)

    def const_layout(name: str, layout: int) -> int:
        """The layout constant `name` is stored in when a node asks for `layout`: a float32 reordering
        (8, 9) only of a float32 constant that is not quantised or stored as fp16."""
        if layout in F32_LAYOUTS:
            v = np.asarray(g.consts[name])
            dt = "float16" if (name in fp16_set and v.dtype == np.float32) else _dtype_name(v.dtype)
            if dt != "float32" or g.qparams.get(name) is not None or not layout_ok(layout, dt, CONST, v.shape):
                return LAYOUT_PLAIN   # fp16 or quantised weights: not a float32 panel
        return layout

    # each node's weight (input 1) layout, as stored; a float MatMul/Gemm whose B is in layout 9 reads it
    # in place and needs no packing buffer (scratch_bytes)
    w_layouts = [const_layout(n.inputs[1], _weight_layout(g, n)) if len(n.inputs) > 1 and n.inputs[1] in g.consts
                 else LAYOUT_PLAIN for n in g.nodes]
    scratch = [scratch_bytes(n, shapes, out_dtype(n), w_layout=wl) for n, wl in zip(g.nodes, w_layouts)]
    mplan = plan_memory(g, scratch, alias=alias)

    # tensors: graph inputs, then per node its constant inputs (first use) and its outputs
    recs: list[TensorRec] = []
    index: dict[str, int] = {}
    payload = 0

    def tname(name: str) -> str:
        return name if (names == "all" or name in g.inputs or name in g.outputs) else ""

    def add_arena(name: str) -> int:
        info = g.tensor_info(name)
        dt = _dtype_name(info.dtype)
        recs.append(TensorRec.arena(tname(name), dt, info.shape, mplan.offsets[name],
                                    quant=_quant_rec(g.qparams.get(name), dt)))
        index[name] = len(recs) - 1
        return index[name]

    small: dict[tuple, int] = {}   # unnamed small constants are stored once per distinct value

    const_index: dict[tuple[str, int], int] = {}   # (name, layout): a weight read in two layouts is stored twice

    def add_const(name: str, layout: int = LAYOUT_PLAIN) -> int:
        nonlocal payload
        if (name, layout) in const_index:
            return const_index[name, layout]
        v = np.asarray(g.consts[name])
        dt = "float16" if (name in fp16_set and v.dtype == np.float32) else _dtype_name(v.dtype)
        p = g.qparams.get(name)
        if const_layout(name, layout) != layout:
            return add_const(name, LAYOUT_PLAIN)

        def build():
            q = _quant_rec(p, dt)
            # fp16 weights: layout 5, widened to float32 once by the loader (the float32 kernels' speed)
            return q, _const_rec(tname(name), v, dt, q, LAYOUT_F16W if dt == "float16" and name in fp16_set and
                                 layout == LAYOUT_PLAIN and q is None else layout)
        q, rec = build() if cache is None else \
            cache.get(g.consts[name], p, (tname(name), dt, layout, name in fp16_set), build)
        key = (rec.name, rec.dtype, rec.shape, rec.data, q, layout)
        if not rec.name and len(rec.data) <= 64 and key in small:
            const_index[name, layout] = small[key]
        else:
            recs.append(rec)
            payload += rec.nbytes + _quant_bytes(q)
            const_index[name, layout] = len(recs) - 1
            if not rec.name and len(rec.data) <= 64:
                small[key] = const_index[name, layout]
        index.setdefault(name, const_index[name, layout])
        return const_index[name, layout]

    def attr_const(arr) -> TensorAttr:
        nonlocal payload
        arr = np.asarray(arr)
        recs.append(_const_rec("", arr, _dtype_name(arr.dtype), None))
        payload += recs[-1].nbytes
        return TensorAttr(len(recs) - 1)

    for x in g.inputs:
        add_arena(x)
    nodes: list[NodeRec] = []
    for n, w_layout in zip(g.nodes, w_layouts):
        ins = []
        for k, i in enumerate(n.inputs):
            if not i:
                ins.append(-1)
            elif i in g.consts:
                ins.append(add_const(i, w_layout if k == 1 else LAYOUT_PLAIN))
            else:
                ins.append(index[i])
        attrs = _node_attrs(g, n, attr_const)
        outs = [add_arena(o) if o else -1 for o in n.outputs]
        d = REGISTRY.get(n.op, n.domain)
        if n.attrs.get("_act_fn"):   # its own op id: a runtime without fused activations refuses it
            d = REGISTRY.fused_form(d)
        # node names of the (optimised) source graph are kept; names the quantiser and the
        # exporter generated (inserted Q/DQ, expanded programs) are dropped (format overhead)
        keep_name = names == "all" or source_nodes is None or n.name in source_nodes
        nodes.append(NodeRec(d.id, tuple(ins), tuple(outs), attrs, n.name if keep_name else ""))
    outputs = []
    for o in g.outputs:
        outputs.append(add_const(o) if o in g.consts else index[o])

    # the plan summary without what the file already says (arena and scratch size are in the
    # memory-plan table; the percentage over the lower bound follows from the two)
    plan_meta = {k: v for k, v in mplan.summary().items() if k not in ("arena_bytes", "scratch_bytes", "over_bound_pct")}
    meta: dict = {"producer": f"dsedge {__version__}", "io_dtype": io_dtype, "memory_plan": _json(plan_meta)}
    if plan_list:
        node_index: dict[str, int] = {}
        for k, nr in enumerate(nodes):
            if nr.name:
                node_index.setdefault(nr.name, k)
        meta["precision_plan"] = _json(_compact_plan(plan_list, node_index))
    if info.get("calibration"):
        meta["calibration"] = _json(info["calibration"])
    if info.get("precision_budget"):     # a plan of `dsedge plan`: its budget and the nodes it kept float
        meta["precision_budget"] = _json(info["precision_budget"])
    if info.get("preprocessing"):        # JSON of calibration/preprocess.py's spec (images, WAV)
        meta["preprocessing"] = str(info["preprocessing"])
    if fp16:
        meta["fp16_weights"] = len([f for f in fp16 if f in index])
    for k, v in sorted(guards.items()):
        meta[f"guard.{k}"] = np.ascontiguousarray(v).astype(v.dtype.newbyteorder("<")).tobytes()
    user = 0
    for k, v in sorted((g0.metadata or {}).items()):
        meta[f"source.{k}"] = str(v)
        user += len(str(v).encode()) + len(k) + 8
    recs, nodes, ins, outputs = _blob_order(recs, nodes, [index[x] for x in g.inputs], outputs)
    art = Artifact(tuple(recs), tuple(nodes), tuple(ins), tuple(outputs),
                   mplan.arena_size, mplan.scratch_offset, mplan.scratch_size, meta, weights_crc)
    return Exported(art, g, mplan, guards, payload + user)


def to_artifact(result_or_graph, *, io_dtype: str = "float32", input_shapes=None, **kw) -> Artifact:
    return export(result_or_graph, io_dtype=io_dtype, input_shapes=input_shapes, **kw).artifact


def save_dse(result, path, *, io_dtype: str = "float32", input_shapes=None, **kw) -> Exported:
    ex = export(result, io_dtype=io_dtype, input_shapes=input_shapes, **kw)
    ex.artifact.write(path)
    return ex


# -- .dse -> IR -----------------------------------------------------------------------------

def _tensor_value(t: TensorRec) -> np.ndarray:
    v = t.array()
    if t.dtype == "float16":
        v = v.astype(np.float32)      # fp16 storage, fp32 compute (exact widening)
    return np.array(v)


def load_dse_graph(src) -> Graph:
    """A `.dse` (path, bytes or Artifact) as an IR graph for the numpy interpreter."""
    a = src if isinstance(src, Artifact) else read(src)
    names = []
    used: set[str] = set()
    for i, t in enumerate(a.tensors):
        nm = t.name if t.name and t.name not in used else f"t{i}"
        used.add(nm)
        names.append(nm)
    g = Graph(name="dse")
    for i, t in enumerate(a.tensors):
        if t.storage == CONST:
            g.consts[names[i]] = _tensor_value(t)
        else:
            g.info[names[i]] = TensorInfo(np.dtype(t.dtype), tuple(t.shape))
        if t.quant is not None:
            q = t.quant
            if q.axis is None:
                g.qparams[names[i]] = QParams(np.float32(q.scales[0]), np.int32(q.zero_points[0]), np.dtype(t.dtype))
            else:
                g.qparams[names[i]] = QParams(np.asarray(q.scales, np.float32), np.asarray(q.zero_points, np.int32),
                                              np.dtype(t.dtype), q.axis)
    g.inputs = [names[i] for i in a.inputs]
    g.outputs = [names[i] for i in a.outputs]
    g.metadata = {k: (v if isinstance(v, str) else repr(v)) for k, v in a.metadata}
    for k, nr in enumerate(a.nodes):
        d = REGISTRY.unfused(REGISTRY.by_id(nr.op))   # FusedConv -> Conv with `_act_fn`
        raw = dict(nr.attrs)

        def tv(key):
            return _tensor_value(a.tensors[raw[key].index])

        attrs = {}
        for key, v in raw.items():
            if (key in _Q_KEYS and not (d.domain and key in d.attrs)) or key not in d.attrs:
                continue      # (a dsedge op's own attribute, e.g. ActFnQuantize's act_fn, is kept)
            if isinstance(v, TensorAttr):
                v = _tensor_value(a.tensors[v.index])
            elif isinstance(v, tuple):
                v = list(v)
            if key == "activations" and isinstance(v, str):
                v = v.split(",")
            attrs[key] = v
        if "act_min" in raw:
            attrs["_act"] = ("clip", float(raw["act_min"]), float(raw["act_max"]))
        if raw.get("act_fn") and "act_fn" not in d.attrs:
            attrs["_act_fn"] = act_fn_name(int(raw["act_fn"]))
        if raw.get("fp16_arith"):
            attrs[FP16_ARITH] = 1
        out_dt = a.tensors[nr.outputs[0]].dtype if nr.outputs and nr.outputs[0] >= 0 else None
        if d.name == "Elementwise" and "program" in raw:     # a float program (a quantised result: + Q)
            attrs = decode_float_program(raw["program"], raw.get("consts", ()), raw["result"])
            outs = [names[o] for o in nr.outputs]
            if "q_scale" in raw:
                mid = f"{outs[0]}__float"
                g.info[mid] = TensorInfo(np.dtype(np.float32), g.info[outs[0]].shape)
                sc, zp = f"{mid}_scale", f"{mid}_zp"
                g.consts[sc], g.consts[zp] = np.float32(raw["q_scale"]), np.int8(raw["q_zp"])
                g.nodes.append(Node("Elementwise", [names[nr.inputs[0]]], [mid], attrs, nr.name or f"n{k}", "dsedge"))
                g.nodes.append(Node("QuantizeLinear", [mid, sc, zp], outs, {}, f"n{k}_q"))
            else:
                g.nodes.append(Node("Elementwise", [names[nr.inputs[0]]], outs, attrs, nr.name or f"n{k}", "dsedge"))
            continue
        qk = recorded_kind(d.quant, raw, out_dt)
        if qk is not None:
            if d.name == "Elementwise":     # an int8 program is its table (the clamp is inside it)
                attrs = {}
            attrs["_q"] = {"kind": qk.name, **qk.decode(d, raw, tv)}
        node = Node(d.name, [names[i] if i >= 0 else "" for i in nr.inputs],
                    [names[o] if o >= 0 else "" for o in nr.outputs], attrs, nr.name or f"n{k}", d.domain)
        g.nodes.append(node)
    return g


def format_inspect(r: dict) -> str:
    """Human-readable `dsedge inspect model.dse` (stderr)."""
    def t(x):
        q = x.get("quant")
        qs = ""
        if q and "scale" in q:
            qs = f" q(scale={q['scale']:.6g}, zp={q['zero_point']})"
        elif q:
            qs = f" q(axis={q['axis']}, {q['channels']} channels)"
        return f"{x['name']} {x['dtype']}[{'x'.join(str(d) for d in x['shape'])}]{qs}"

    lb = r.get("arena_lower_bound_bytes")
    out = [f"{r['model']}  (.dse, {r['file_bytes']:,} B, {r.get('producer') or '?'})",
           "inputs:  " + ", ".join(t(x) for x in r["inputs"]),
           "outputs: " + ", ".join(t(x) for x in r["outputs"]),
           f"nodes: {r['nodes']}   " + ", ".join(f"{k} {v}" for k, v in r["nodes_by_op_dtype"].items()),
           f"weights: {r['weight_bytes']:,} B   arena: {r['arena_bytes']:,} B"
           + (f" (lower bound {lb:,} B, +{100 * (r['arena_bytes'] / lb - 1):.1f} %)" if lb else "")
           + f"   scratch: {r['scratch_bytes']:,} B",
           f"format overhead: {r['format_overhead_bytes']:,} B ({r['format_overhead_pct']} % of the file)"]
    if r.get("guards"):
        out.append("guarded inputs (fixed at export): " + ", ".join(r["guards"]))
    out.append("metadata: " + ", ".join(r["metadata_keys"]))
    return "\n".join(out)
