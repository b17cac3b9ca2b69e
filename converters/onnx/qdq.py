"""Quantised dsedge graph -> QDQ ONNX.

The quantised IR holds int8 activations (asymmetric), int8 symmetric per-channel weights
and int32 biases. In the QDQ file
  * every int8 activation tensor becomes a uint8 tensor (q + 128, zero point + 128: an exact
    mapping), or stays int8 in the "s8s8" format;
  * an int8 node is written as DequantizeLinear on each input -> the float op ->
    QuantizeLinear on each output, which onnxruntime fuses back into integer kernels;
  * weights get a per-channel DequantizeLinear (axis = the op's output-feature axis), stored
    as the format says (below); biases int32 with scale s_in * s_w[c] and zero point 0;
  * the quantiser's own QuantizeLinear/DequantizeLinear boundary nodes are re-emitted in the
    activations' type;
  * float nodes are written unchanged; only float tensors are ever quantised.
Dynamically quantised nodes (no calibration) are written by converters/onnx/dynamic.py.
The opset is raised to at least 13 (per-axis Q/DQ), 21 when a tensor is int16 (A16W8); the model's
metadata is kept.

Weight formats (`QDQ_FORMATS`). onnxruntime picks its integer kernel by the types in the file.
On x86-64 with AVX2 but without VNNI (Intel before Cascade Lake / Alder Lake, AMD before
Zen 4, many cloud VMs) its uint8 x int8 kernels multiply with VPMADDUBSW, which adds two
u8*s8 products into a saturating int16: |x| up to 255 times |w| up to 127, twice, is
64,770 > 32,767, so a layer whose activations and weights are both large gets clipped sums.
The same file is exact on a CPU with VNNI (VPDPBUSD adds into int32); the `.dse` never
saturates. (Exact means exact integer sums: onnxruntime requantises in float32, which differs
from the integer reference's fixed-point rule by one step on rare ties, in every format.)
The formats:
  * "u8u8" (default): weights stored as uint8 w + 128 with zero point 128. They dequantise to
    exactly the same floats (the same model, no accuracy cost); onnxruntime takes its
    uint8 x uint8 kernels, which widen to int16 before multiplying and cannot saturate.
    In onnxruntime on an AVX2 CPU up to ~1.2x u8s8's time (mobilenet_v2; resnet50 and a
    transformer about the same, BENCHMARKS.md); on a CPU with VNNI, where u8s8 is exact,
    expected slower than u8s8 (not measured here).
  * "u8s8": weights int8 as quantised: onnxruntime's fastest kernels, exact only on CPUs
    with VNNI.
  * "u8s7": weights re-rounded to 7 bits (q7 = round_half_even(q / 2), scale 2 s_w, |q7| <= 64,
    bias re-rounded to the new scale): onnxruntime's own remedy (`reduce_range`). Cannot
    saturate (2 * 255 * 64 < 32,768) and keeps the u8s8 kernels' speed, but it is another
    model than the `.dse` and the integer reference: the weights lose one bit (about 6 dB).
  * "s8s8": activations int8 as in the IR, weights int8; saturates like u8s8 on AVX2.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from dsedge.errors import DseError, ModelError
from dsedge.ir import Graph, Node
from .dynamic import emit_dynamic
from .writer import _Emitter, to_model_proto


@dataclass(frozen=True)
class QdqFormat:
    """How a QDQ file stores int8 activations and per-channel int8 weights (module docstring)."""
    name: str
    uint8_activations: bool       # activations as uint8 q + 128 (else int8 as quantised)
    weights: str                  # "s8": int8 as quantised; "u8": uint8 q + 128, zp 128; "s7": 7-bit int8
    help: str


QDQ_FORMATS = {f.name: f for f in (
    QdqFormat("u8u8", True, "u8", "uint8 weights (q + 128, zero point 128): the same model; exact in onnxruntime "
                                  "on every x86 CPU; slower there than u8s8"),
    QdqFormat("u8s8", True, "s8", "int8 weights: onnxruntime's fastest kernels; its sums saturate on x86 "
                                  "CPUs without VNNI"),
    QdqFormat("u8s7", True, "s7", "7-bit weights (onnxruntime's reduce_range): u8s8 speed, no saturation, "
                                  "one bit less weight resolution than the .dse"),
    QdqFormat("s8s8", False, "s8", "int8 activations and weights"),
)}
DEFAULT_QDQ_FORMAT = "u8u8"


def qdq_format(name: str) -> QdqFormat:
    try:
        return QDQ_FORMATS[name]
    except KeyError:
        raise DseError(f"unknown QDQ format {name!r}", hint=f"use one of {', '.join(QDQ_FORMATS)}") from None


class _QdqEmitter(_Emitter):
    def __init__(self, g: Graph, opset: int, fmt: QdqFormat):
        super().__init__(g, opset)
        self.fmt = fmt
        self._dq: dict[str, str] = {}     # int8 tensor -> its dequantised float name
        self._seven: dict[str, tuple] = {}  # u8s7: weight/bias name -> (values, scale) re-rounded

    # -- tensors ----------------------------------------------------------------------------
    def is_int8_act(self, name: str) -> bool:
        return (name in self.g.qparams and name not in self.g.consts
                and self.g.tensor_info(name).dtype == np.dtype(np.int8))

    def scale_zp(self, name: str, *, uint8: bool, scale=None):
        p = self.g.qparams[name]
        scale = self.const(name + "_scale", np.asarray(p.scale if scale is None else scale, np.float32))
        zp = np.asarray(p.zero_point)
        wide = p.dtype == np.dtype(np.int16)     # an A16W8 operand: int16 as it is, never uint8
        if uint8 and not wide:
            zp = self.const(name + "_zero_point", (zp.astype(np.int32) + 128).astype(np.uint8))
        else:
            dt = self.g.consts[name].dtype if name in self.g.consts else (np.int16 if wide else np.int8)
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
            elif v.dtype == np.int8 and self.fmt.weights == "u8":
                # a symmetric weight as uint8 q + 128, zero point 128: the same floats
                u8 = self.const(name + "_u8", (v.astype(np.int16) + 128).astype(np.uint8))
                scale, zp = self.scale_zp(name, uint8=True)
                self.emit("DequantizeLinear", [u8, scale, zp], [out], {"axis": int(p.axis)})
            elif name in self._seven:
                q7, s7 = self._seven[name]
                vals = self.const(name + "_7bit", q7)
                scale, zp = self.scale_zp(name, uint8=False, scale=s7)
                attrs = {"axis": int(p.axis)} if p.axis is not None else {}
                self.emit("DequantizeLinear", [vals, scale, zp], [out], attrs)
            else:
                scale, zp = self.scale_zp(name, uint8=False)
                attrs = {"axis": int(p.axis)} if p.axis is not None else {}
                self.emit("DequantizeLinear", [name, scale, zp], [out], attrs)
        else:
            scale, zp = self.scale_zp(name, uint8=self.fmt.uint8_activations)
            self.emit("DequantizeLinear", [name, scale, zp], [out])
        self._dq[name] = out
        return out

    # -- nodes ------------------------------------------------------------------------------
    def node(self, n: Node):
        u8 = self.fmt.uint8_activations
        if n.op == "QuantizeLinear" and not n.domain and n.outputs[0] in self.g.qparams:
            scale, zp = self.scale_zp(n.outputs[0], uint8=u8)
            self.emit("QuantizeLinear", [n.inputs[0], scale, zp], list(n.outputs), name=n.name)
            return
        if n.op == "DequantizeLinear" and not n.domain and (self.is_int8_act(n.inputs[0]) or
                                                             self.g.tensor_info(n.inputs[0]).dtype == np.int16):
            scale, zp = self.scale_zp(n.inputs[0], uint8=u8)
            self.emit("DequantizeLinear", [n.inputs[0], scale, zp], list(n.outputs), name=n.name)
            return
        if "_q" not in n.attrs:
            super().node(n)
            return
        if n.attrs["_q"]["kind"] == "dynamic":   # no calibration: converters/onnx/dynamic.py
            emit_dynamic(self, n)
            return
        if n.attrs["_q"]["kind"] == "w4a8" and n.attrs["_q"].get("w4_group"):
            raise ModelError(f"node {n.name!r} ({n.op}): int4 weights with group multipliers (W4A8, "
                             f"group {n.attrs['_q']['w4_group']}) have no QDQ ONNX form",
                             hint="write a .dse, or quantise with weight_group 0 (one scale per output channel)")
        if self.fmt.weights == "s7":
            self._seven_bit(n)
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
                scale, zp = self.scale_zp(o, uint8=u8)
                self.emit("QuantizeLinear", [f, scale, zp], [o], name=self.fresh(o + "_quantize"))

    def _seven_bit(self, n: Node) -> None:
        """u8s7: an int8 node's per-channel weight re-rounded to 7 bits (scale 2 s_w, q7 =
        round_half_even(q / 2) in [-64, 64]) and its int32 bias to the new scale s_in * 2 s_w."""
        w = n.inputs[1] if len(n.inputs) > 1 else ""
        p = self.g.qparams.get(w)
        if n.attrs["_q"].get("kind") != "weighted" or w not in self.g.consts or p is None or w in self._seven:
            return
        self._seven[w] = (np.rint(self.g.consts[w].astype(np.float64) / 2).astype(np.int8),
                          p.scale.astype(np.float32) * np.float32(2))
        b = n.inputs[2] if len(n.inputs) > 2 else ""
        if b and b in self.g.consts and b in self.g.qparams:
            bq = self.g.qparams[b]
            self._seven[b] = (np.rint(self.g.consts[b].astype(np.float64) / 2).astype(np.int32),
                              bq.scale.astype(np.float32) * np.float32(2))

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


def to_qdq_model(g: Graph, *, opset: int | None = None, fmt: str = DEFAULT_QDQ_FORMAT):
    """The QDQ ModelProto of a quantised graph in the QDQ format `fmt` (see the module docstring)."""
    opset = max(opset or g.opset, 13)
    if any(p.dtype == np.dtype(np.int16) for p in g.qparams.values()):
        opset = max(opset, 21)      # int16 QuantizeLinear/DequantizeLinear (A16W8 operands) need opset 21
    fmt = qdq_format(fmt)
    # int8 activations are uint8 in the file: patch the value infos of inputs/outputs only
    # (graph inputs/outputs of a quantised graph stay float, so nothing to patch there)
    m = to_model_proto(g, opset=opset, emitter_cls=_QdqEmitter, fmt=fmt)
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
