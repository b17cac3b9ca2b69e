"""Quantised dsedge graph -> QDQ ONNX.

The quantised IR holds int8 activations (asymmetric), int8 symmetric per-channel weights
and int32 biases. In the QDQ file
  * every int8 activation tensor becomes a uint8 tensor (q + 128, zero point + 128: an exact
    mapping, so onnxruntime takes its fast u8s8 kernels);
  * an int8 node is written as DequantizeLinear on each input -> the float op ->
    QuantizeLinear on each output, which onnxruntime fuses back into integer kernels;
  * weights stay int8 with a per-channel DequantizeLinear (axis = the op's output-feature
    axis), biases int32 with scale s_in * s_w[c] and zero point 0;
  * the quantiser's own QuantizeLinear/DequantizeLinear boundary nodes are re-emitted in uint8;
  * float nodes are written unchanged; only float tensors are ever quantised.
Dynamically quantised nodes (no calibration) are written by converters/onnx/dynamic.py.
The opset is raised to at least 13 (per-axis Q/DQ); the model's metadata is kept.
"""
from __future__ import annotations

import numpy as np

from dsedge.ir import Graph, Node
from .writer import _Emitter, to_model_proto


class _QdqEmitter(_Emitter):
    def __init__(self, g: Graph, opset: int):
        super().__init__(g, opset)
        self._dq: dict[str, str] = {}     # int8 tensor -> its dequantised float name
        self._u8_consts: dict[str, str] = {}

    # -- tensors ----------------------------------------------------------------------------
    def is_int8_act(self, name: str) -> bool:
        return (name in self.g.qparams and name not in self.g.consts
                and self.g.tensor_info(name).dtype == np.dtype(np.int8))

    def scale_zp(self, name: str, *, uint8: bool):
        p = self.g.qparams[name]
        scale = self.const(name + "_scale", np.asarray(p.scale, np.float32))
        zp = np.asarray(p.zero_point)
        if uint8:
            zp = self.const(name + "_zero_point", (zp.astype(np.int32) + 128).astype(np.uint8))
        else:
            dt = self.g.consts[name].dtype if name in self.g.consts else np.int8
            zp = self.const(name + "_zero_point", zp.astype(dt))
        return scale, zp

    def dequant(self, name: str) -> str:
        """Float view of an int8 activation or an int8/int32 constant."""
        if name in self._dq:
            return self._dq[name]
        p = self.g.qparams[name]
        out = self.fresh(name + "_dq")
        if name in self.g.consts:
            v = self.g.consts[name]
            if v.dtype == np.int8 and p.axis is None and np.any(np.asarray(p.zero_point) != 0):
                # an asymmetric int8 constant operand: store as uint8 like activations
                u8 = self.const(name + "_u8", (v.astype(np.int16) + 128).astype(np.uint8))
                scale, zp = self.scale_zp(name, uint8=True)
                self.emit("DequantizeLinear", [u8, scale, zp], [out])
            else:
                scale, zp = self.scale_zp(name, uint8=False)
                attrs = {"axis": int(p.axis)} if p.axis is not None else {}
                self.emit("DequantizeLinear", [name, scale, zp], [out], attrs)
        else:
            scale, zp = self.scale_zp(name, uint8=True)
            self.emit("DequantizeLinear", [name, scale, zp], [out])
        self._dq[name] = out
        return out

    # -- nodes ------------------------------------------------------------------------------
    def node(self, n: Node):
        if n.op == "QuantizeLinear" and not n.domain and n.outputs[0] in self.g.qparams:
            scale, zp = self.scale_zp(n.outputs[0], uint8=True)
            self.emit("QuantizeLinear", [n.inputs[0], scale, zp], list(n.outputs), name=n.name)
            return
        if n.op == "DequantizeLinear" and not n.domain and self.is_int8_act(n.inputs[0]):
            scale, zp = self.scale_zp(n.inputs[0], uint8=True)
            self.emit("DequantizeLinear", [n.inputs[0], scale, zp], list(n.outputs), name=n.name)
            return
        if "_q" not in n.attrs:
            super().node(n)
            return
        if n.attrs["_q"]["kind"] == "dynamic":   # no calibration: converters/onnx/dynamic.py
            from .dynamic import emit_dynamic
            emit_dynamic(self, n)
            return
        ins = [self.dequant(i) if (i and i in self.g.qparams) else i for i in n.inputs]
        attrs = {k: v for k, v in n.attrs.items() if k != "_q"}
        if n.attrs["_q"].get("float_out"):  # int8 compute, float output: no QuantizeLinear
            self._compute(n, ins, list(n.outputs), attrs)
            return
        outs = [self.fresh(o + "_f") if o else o for o in n.outputs]
        if n.op == "Pad" and len(ins) > 2 and ins[2]:
            ins[2] = ""  # pad value: 0.0 in float == the zero point in int8
        self._compute(n, ins, outs, attrs)
        for o, f in zip(n.outputs, outs):
            if o:
                scale, zp = self.scale_zp(o, uint8=True)
                self.emit("QuantizeLinear", [f, scale, zp], [o], name=self.fresh(o + "_quantize"))

    def _compute(self, n: Node, ins, outs, attrs):
        """The float op between the DequantizeLinears and QuantizeLinears. An int8 MatMul carries
        its (int32) bias as a third input in the IR; ONNX MatMul has none: MatMul, then Add (a fused
        activation goes after the Add)."""
        if n.op == "MatMul" and not n.domain and len(ins) > 2 and ins[2]:
            mm = self.fresh((n.name or outs[0]) + "_matmul")
            super().node(Node("MatMul", ins[:2], [mm], {}, n.name, n.domain))
            super().node(Node("Add", [mm, ins[2]], outs, attrs, self.fresh((n.name or outs[0]) + "_bias")))
            return
        super().node(Node(n.op, ins, outs, attrs, n.name, n.domain))


def to_qdq_model(g: Graph, *, opset: int | None = None):
    """The QDQ ModelProto of a quantised graph (see the module docstring)."""
    opset = max(opset or g.opset, 13)
    # int8 activations are uint8 in the file: patch the value infos of inputs/outputs only
    # (graph inputs/outputs of a quantised graph stay float, so nothing to patch there)
    m = to_model_proto(g, opset=opset, emitter_cls=_QdqEmitter)
    keep = {o.name for o in m.graph.output} | {i.name for i in m.graph.input}
    # drop initializers nothing reads (the int8 twins replaced some)
    used = {i for nd in m.graph.node for i in nd.input} | keep
    inits = [t for t in m.graph.initializer if t.name in used]
    del m.graph.initializer[:]
    m.graph.initializer.extend(inits)
    return m


def save_qdq(g: Graph, path, **kw) -> None:
    from dsedge.util import atomic_write_bytes
    atomic_write_bytes(path, to_qdq_model(g, **kw).SerializeToString())
