"""The quantisation-kind registry: one `QuantKind` subclass per kind, registered by name.

A kind is everything about one quantised form of a node, in one class:
  * `why_not(g, n)`: None when the node's attributes and shapes allow the form, else why not;
  * `lower(q, n, in_qp, out_qp, **opts) -> dict`: the frozen integer parameters, derived once
    (in Python, float64 from the stored float32 scales, dsedge/quant/arith.py); it may replace
    the node's constant operands by quantised ones (edits `q` and `n`) and returns the entries
    of `attrs["_q"]` after its "kind";
  * `run(n, args)`: the integer reference of the lowered node (intref.py kernels);
  * `encode(g, n, q) -> dict`: the node's `.dse` attributes from its `_q` (plain values, or
    numpy arrays that the exporter stores as tensor attributes), docs/kernels.md;
    `decode(opdef, raw, tv) -> dict` is the inverse (`raw`: the record's attributes, `tv(key)`:
    the value of a tensor attribute); `recorded(raw, out_dtype)` says whether a record holds the
    form at all, and `attrs` names the attributes that are the kind's, not the op's;
  * `weight_layout(g, n)`: the packed layout of the node's weight input (docs/format.md §4.4);
  * flags the quantiser plans with: `moves_bytes`, `shares_qparams`, `weight_bearing`,
    `float_output` (may dequantise its int32 accumulator instead of requantising when every
    reader of its result runs in float: "int8-fout").

Ops name their kind in their `QuantRule`; a kind with `base` set is not an op's kind but an
alternative form that a quantiser chooses for the ops of kind `base` ("dynamic": weighted ops
without calibration). A kind an op lists in `QuantRule.forms` replaces the op's kind for the
nodes whose operands it `claims` ("act_matmul": a MatMul of two activations), with its own
input `roles`: `form_of(g, n)` is the kind of a node, `roles_of(g, n)` its inputs' roles.
`KINDS` maps names to instances; `kind(name)` refuses unknown names.
"""
from __future__ import annotations

import numpy as np

from ...artifact import LAYOUT_PLAIN
from ...errors import DseError
from ...ir import Graph, Node, QParams
from ...ops import REGISTRY
from ...ops.nn import same_pads
from ...ops.registry import ACT, PARAM
from .. import arith


class QuantKind:
    """One kind of quantised form (see the module docstring); the defaults suit a kind whose
    form always applies, has no parameters and stores nothing."""

    name: str = ""
    base: str | None = None        # set: an alternative form for the ops of that kind
    attrs: tuple[str, ...] = ()    # the .dse attributes it writes that are not ONNX attributes
    moves_bytes = False            # the output is its input's bytes rearranged: no range of its own
    shares_qparams = False         # the output has the (scale, zp) of its first ACT input
    weight_bearing = False         # int8 weights and an int32 accumulator (int8 by default)
    float_output = False           # may dequantise its accumulator when its readers are float
    roles: tuple[str, ...] | None = None   # the inputs' roles under this form (None: the op's)

    def claims(self, g: Graph, n: Node) -> bool:
        """For a kind in an op's `QuantRule.forms`: whether node n's operands select this form
        instead of the op's kind."""
        return False

    def why_not(self, g: Graph, n: Node) -> str | None:
        return None

    def lower(self, q: Graph, n: Node, in_qp: list, out_qp: list, **opts) -> dict:
        return {}

    def run(self, n: Node, args: list) -> tuple:
        raise NotImplementedError

    def encode(self, g: Graph, n: Node, q: dict) -> dict:
        return {}

    def decode(self, opdef, raw: dict, tv) -> dict:
        return {}

    def recorded(self, raw: dict, out_dtype: str | None) -> bool:
        """Whether a `.dse` node record of an op of this kind holds the quantised form."""
        return out_dtype == "int8"

    def weight_layout(self, g: Graph, n: Node) -> int:
        return LAYOUT_PLAIN


KINDS: dict[str, QuantKind] = {}


def register_kind(cls):
    """Class decorator: register one instance of a `QuantKind` subclass under its `name`."""
    if not cls.name or cls.name in KINDS:
        raise ValueError(f"quantisation kind {cls.name!r} declared twice or without a name")
    KINDS[cls.name] = cls()
    return cls


def kind(name: str, where: str = "") -> QuantKind:
    k = KINDS.get(name)
    if k is None:
        raise DseError(f"{where + ': ' if where else ''}unknown quantisation kind {name!r}",
                       hint=f"known kinds: {', '.join(sorted(KINDS))}")
    return k


def recorded_kind(rule, raw: dict, out_dtype: str | None) -> QuantKind | None:
    """The kind of a `.dse` node record whose op has QuantRule `rule`: an alternative form
    (a kind based on the op's kind) the record is marked with, else the op's kind when the
    record holds its quantised form; None for a float node."""
    if rule is None:
        return None
    for k in KINDS.values():
        if (k.base == rule.kind or k.name in rule.forms) and k.recorded(raw, out_dtype):
            return k
    k = kind(rule.kind)
    return k if k.recorded(raw, out_dtype) else None


def kind_attrs() -> set[str]:
    """Every `.dse` attribute name some kind writes that is not an ONNX attribute."""
    return {a for k in KINDS.values() for a in k.attrs}


# -- helpers shared by the kinds ---------------------------------------------------------------

def rule_of(n: Node):
    d = REGISTRY.get(n.op, n.domain)
    return None if d is None else d.quant


def form_of(g: Graph, n: Node) -> QuantKind | None:
    """The kind of node n's int8 form: a kind of its op's `QuantRule.forms` that claims the
    node's operands, else the op's kind; None when the op has no int8 form."""
    rule = rule_of(n)
    if rule is None:
        return None
    for name in rule.forms:
        k = KINDS.get(name)
        if k is not None and k.claims(g, n):
            return k
    return KINDS.get(rule.kind)


def roles_of(g: Graph, n: Node) -> list[str]:
    """The quantisation role of each input of node n under its form (ops.registry ACT, WEIGHT,
    BIAS, PARAM)."""
    rule = rule_of(n)
    if rule is None:
        return [PARAM] * len(n.inputs)
    k = form_of(g, n)
    roles = k.roles if k is not None and k.roles is not None else None
    return [(roles[i] if i < len(roles) else roles[-1]) if roles else rule.role(i) for i in range(len(n.inputs))]


def act_inputs(g: Graph, n: Node) -> list[str]:
    """The inputs of node n in an ACT role (constants included: lower_node quantises them)."""
    return [i for i, r in zip(n.inputs, roles_of(g, n)) if i and r == ACT]


def has_pads(n: Node) -> bool:
    """Whether the node's op pads spatially (a `pads` attribute: Conv, ConvTranspose, pools)."""
    d = REGISTRY.get(n.op, n.domain)
    return d is not None and "pads" in d.attrs


def static_shape(g: Graph, name: str):
    info = g.tensor_info(name)
    return tuple(info.shape) if info.is_static else None


def scalar_const(g: Graph, name: str) -> bool:
    return bool(name) and name in g.consts and g.consts[name].size == 1


def public_attrs(n: Node) -> dict:
    """The node's ONNX attributes (without dsedge's `_` annotations)."""
    return {k: v for k, v in n.attrs.items() if not k.startswith("_")}


def spatial_attrs(n: Node, sp: int):
    return (list(n.attrs.get("strides") or [1] * sp), list(n.attrs.get("dilations") or [1] * sp))


def explicit_pads(n: Node, x_shape, kernel) -> list[int] | None:
    """The begin/end pads of a Conv or pool with this kernel, auto_pad resolved (None when
    SAME padding needs an input size that is unknown: see ops.nn.same_pads)."""
    sp = len(kernel)
    mode = n.attrs.get("auto_pad", "NOTSET")
    if mode in ("NOTSET", "", "VALID"):
        return [0] * (2 * sp) if mode == "VALID" else list(n.attrs.get("pads") or [0] * (2 * sp))
    strides = list(n.attrs.get("strides") or [1] * sp)
    dil = list(n.attrs.get("dilations") or [1] * sp)
    sizes = list(x_shape[2:]) if x_shape is not None and len(x_shape) == sp + 2 else None
    return same_pads(mode, sizes, [(k - 1) * d + 1 for k, d in zip(kernel, dil)], strides)


def clamp(act, qp: QParams, bounds: tuple[int, int] = (arith.QMIN, arith.QMAX)) -> tuple[int, int]:
    """(qmin, qmax) of a fused clamp activation ('clip', lo, hi) on the output qparams, within
    `bounds` (the output dtype's range: int8 by default)."""
    QMIN, QMAX = bounds
    if not act:
        return QMIN, QMAX
    _, lo, hi = act
    s = np.float64(np.float32(qp.scale))
    zp = int(qp.zero_point)
    qmin = QMIN if lo == float("-inf") else max(QMIN, min(QMAX, zp + int(np.rint(lo / s))))
    qmax = QMAX if hi == float("inf") else max(QMIN, min(QMAX, zp + int(np.rint(hi / s))))
    return qmin, qmax


def quantize_const_operand(q: Graph, n: Node, k: int, in_qp: list) -> None:
    """A constant operand of an int8 Add/Mul/Concat becomes an int8 constant on its own range."""
    name = n.inputs[k]
    v = q.consts[name]
    v64 = v.astype(np.float64)
    s, zp = arith.choose_activation_qparams(float(np.min(v64)), float(np.max(v64)))
    p = QParams(np.float32(s), np.int32(zp))
    qv = arith.quantize(v, p.scale, int(p.zero_point))
    new = q.add_const(name + "_q", qv)
    q.qparams[new] = p
    n.inputs[k] = new
    in_qp[k] = p
