"""The op registry: every op is declared exactly once, here.

An op declaration (`OpDef`) holds
  * `id`       — an append-only integer id (the C runtime's enum is generated from it;
                 `tests/unit/data/op_ids.txt` pins every id ever issued),
  * `ref`      — the numpy reference: ``ref(*inputs, **attrs)`` returning one array or a
                 tuple of arrays. Positional parameters are the ONNX inputs (a missing
                 optional input arrives as None), keyword-only parameters are the attributes
                 with their ONNX defaults. An attribute the function does not accept is an
                 unsupported feature, reported as such. Ops that run sub-graphs (If, Loop)
                 accept a keyword ``_ctx`` (the interpreter's `RunContext`).
  * `infer`    — the shape rule ``infer(attrs, infos, consts) -> [TensorInfo, ...]`` where
                 `infos` are the inputs' TensorInfo and `consts` their constant values
                 (None when not constant). When absent, the rule runs `ref` on zero arrays of
                 the input shapes (constants as themselves), which needs static shapes.
  * `int_ref`  — the integer reference of the op's int8 form (see dsedge/quant), if it has one.
  * `quant`    — the quantisation rule: the role of each input and the kind of int8 form.
  * `fp16`     — the op's binary16 arithmetic (ops/half.py `Fp16Rule`: reference and
                 eligibility, docs/quant-arith.md §16), run for nodes marked `_fp16_arith`.
  * `backward` — reserved for QAT.
  * traits     — what other modules may assume of the op, so that they need no lists of op
                 names: `view` (the output is the input's bytes, unchanged: an alias of it),
                 `in_place` (the kernel may write its output over an input of the same size
                 and dtype), `elementwise` (each output element depends only on the input
                 elements at its own index, after broadcasting), `data_dependent` (the output
                 shape depends on the values of the data input, not only on parameters),
                 `commutative` (a binary op whose operands may be swapped: the same values, up
                 to a NaN's payload), used to compare programs (ops/fused.py `act_fn_of`).
  * `act_fn`   — for a float activation op: its code as a fused activation function (the `.dse`
                 INT `act_fn`, docs/kernels.md "Fused activation"), 0 = not fusable; the op is
                 then also declared as the one-step `ActFn` of its name (below);
    `takes_act_fn` — the op's float kernels apply a fused activation function in their epilogue:
                 the exporter merges such an activation, as the only reader of the op's float
                 output, into the node (export/dse.py `_fuse_act_fn`; IR annotation `_act_fn`).
                 Its value names the dsedge-domain op (its "fused form", e.g. "FusedConv") whose
                 id the `.dse` node carries then, so that a runtime that does not know fused
                 activations refuses the node (an unknown op) instead of running the op without
                 it; `REGISTRY.unfused` maps the fused form back when an artifact is read.
  * `upgrade`  — ``upgrade(opset, inputs, attrs) -> (inputs, attrs)`` rewrites an older
                 ONNX opset's form into the canonical (opset 21) form at import: attributes
                 that later became inputs are returned as numpy arrays in `inputs`, older
                 attribute defaults are made explicit. `inputs` are tensor names ('' = absent).

Declare an op with the `op` decorator in one of the modules of this package:

    @op("Relu", 101, quant=QuantRule("table"))
    def relu(x):
        return np.maximum(x, 0).astype(x.dtype)

The registry refuses a second declaration of a name or an id.

A fused activation function that is not one op (SiLU: x * Sigmoid(x)) is declared with
`act_fn(name, code, program)`: an `ActFn`, the `dsedge.Elementwise` program (ops/fused.py) that
computes it from the ops' own references. The exporter merges a float node computing that
program (a collapsed Elementwise, or the one op) into the float Conv before it, the interpreter
runs the program on the Conv's output, the C kernels apply the code (docs/kernels.md "Fused
activation function"). The registry refuses a second name or code.

Attributes whose names start with "_" are dsedge annotations added by passes, not ONNX
attributes; references never see them. `_act` (a fused clamp activation, see
passes/simplify.py) is applied by the interpreter to output 0 after the op, then `_act_fn` (the
name of a fused activation function, an `ActFn`, set at export: ops/fused.py `apply_act_fn`); `_fp16_arith`
(docs/quant-arith.md §16) makes the interpreter run the op's `fp16` reference instead of `ref`.
"""
from __future__ import annotations

import inspect
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np

from ..errors import UnsupportedOpError
from ..ir import TensorInfo

# Roles an input can play for quantisation.
ACT = "act"            # an activation: quantised per tensor, asymmetric int8
WEIGHT = "weight"      # a constant weight: int8 symmetric per output channel
BIAS = "bias"          # int32 with scale s_in * s_w
PARAM = "param"        # a non-quantised input (shape, axes, indices, scalars kept exact)


@dataclass(frozen=True)
class QuantRule:
    """How an op runs in int8.

    kind:
      "weighted" — Conv/ConvTranspose/Gemm/MatMul-with-constant: int32 accumulate + requant.
      "bytes"    — moves bytes only; output shares the (scale, zp) of its first ACT input.
      "table"    — unary elementwise on int8 via a 256-entry table.
      "add"      — Add/Sub: two rescaled int64 terms, one rounding.
      "mul"      — Mul: int32 product + requant.
      "avgpool"  — sums (q - zp) and requantises with s_in/(s_out*n).
      "concat"   — byte-moving when ranges agree, else requantises each input.
      "minmax"   — Min/Max/MaxPool-like selection on a shared scale.
      "softmax"  — int8 in, int8 out via an exp table (chosen only by measured error).
    roles: one role per declared input position (variadic ops repeat the last role).
    weight_axis: the per-channel axis of the WEIGHT input; a callable(attrs) -> int when it
      depends on attributes (Gemm's transB).
    forms: other kinds the op takes when a node's operands select them instead of `kind`
      (each kind's `claims(g, n)` decides, e.g. "act_matmul": a MatMul whose right operand is
      an activation, not a constant weight); see dsedge/quant/kinds/base.py `form_of`.
    """

    kind: str
    roles: tuple[str, ...] = (ACT,)
    weight_axis: int | Callable[[dict], int] | None = None
    forms: tuple[str, ...] = ()

    def role(self, i: int) -> str:
        if not self.roles:
            return ACT
        return self.roles[i] if i < len(self.roles) else self.roles[-1]

    def axis_for(self, attrs: dict) -> int | None:
        if callable(self.weight_axis):
            return self.weight_axis(attrs)
        return self.weight_axis


@dataclass(frozen=True)
class OpDef:
    name: str
    id: int
    ref: Callable[..., Any]
    infer: Callable[..., list[TensorInfo]] | None = None
    int_ref: Callable[..., Any] | None = None
    quant: QuantRule | None = None
    fp16: Any = None                                        # ops/half.py Fp16Rule, or None
    backward: Callable[..., Any] | None = None
    upgrade: Callable[..., Any] | None = None
    domain: str = ""
    attrs: dict[str, Any] = field(default_factory=dict)   # attribute name -> default
    n_inputs: tuple[int, int] = (0, 0)                      # (min, max); max -1 = variadic
    takes_ctx: bool = False
    view: bool = False
    in_place: bool = False
    elementwise: bool = False
    data_dependent: bool = False
    commutative: bool = False
    act_fn: int = 0
    takes_act_fn: str = ""
    # (graph, node) -> the packed layout (artifact.py LAYOUT_*) of the node's float32 weight, input 1,
    # when it runs in float (docs/format.md §4.4); None: always layout 0
    float_weight_layout: Callable[..., int] | None = None

    def check_attrs(self, attrs: dict, where: str) -> None:
        unknown = [a for a in attrs if a not in self.attrs and not a.startswith("_")]
        if unknown:
            raise UnsupportedOpError(
                f"{where}: attribute(s) {', '.join(sorted(unknown))} of {self.name} are not supported",
                hint=f"supported attributes: {', '.join(sorted(self.attrs)) or 'none'}",
            )

    def call(self, inputs: list, attrs: dict, ctx=None):
        kw = {k: v for k, v in attrs.items() if not k.startswith("_")}
        if self.takes_ctx:
            kw["_ctx"] = ctx
        out = self.ref(*inputs, **kw)
        return out if isinstance(out, tuple) else (out,)


@dataclass(frozen=True)
class ActFn:
    """A fused activation function (docs/kernels.md "Fused activation function"): f(x) applied
    by the float kernels of an op with `takes_act_fn` after their clamp.

    name:    the IR annotation `_act_fn` of the node that carries it;
    code:    the `.dse` INT `act_fn` (C: DSE_ACT_FN_<NAME>, src/internal.h);
    program: f as the steps of a `dsedge.Elementwise` program on x (ops/fused.py: value 0 is x,
             value k the result of step k - 1; `consts` the scalars it names), its result the
             last step: what the exporter recognises and the interpreter runs.
    A C kernel applies it with the bytes the separate nodes' kernels give on the same ISA (exact
    ops such as HardSwish: REF's everywhere; SiLU: that ISA's Sigmoid kernel's), else it does
    not declare the code (src/internal.h `dse__act_fns`) and the loader refuses the node."""
    name: str
    code: int
    program: tuple
    consts: tuple = ()


class OpRegistry:
    def __init__(self):
        self._by_name: dict[tuple[str, str], OpDef] = {}
        self._by_id: dict[int, OpDef] = {}
        self._act_fns: dict[str, ActFn] = {}

    def add(self, d: OpDef) -> OpDef:
        key = (d.domain, d.name)
        if key in self._by_name:
            raise ValueError(f"op {d.name!r} declared twice")
        if d.id in self._by_id:
            raise ValueError(f"op id {d.id} of {d.name!r} already used by {self._by_id[d.id].name!r}")
        self._by_name[key] = d
        self._by_id[d.id] = d
        if d.act_fn:
            self.add_act_fn(ActFn(d.name, d.act_fn, ((d.name, (("v", 0),), {}),)))
        return d

    def add_act_fn(self, f: ActFn) -> ActFn:
        if f.name in self._act_fns:
            raise ValueError(f"fused activation function {f.name!r} declared twice")
        if f.code <= 0 or f.code > 31:     # a bit of the C kernels' act_fns mask (src/internal.h)
            raise ValueError(f"fused activation function {f.name!r}: code {f.code} is not in 1..31")
        clash = next((o.name for o in self._act_fns.values() if o.code == f.code), None)
        if clash:
            raise ValueError(f"act_fn code {f.code} of {f.name!r} already used by {clash!r}")
        if not f.program:
            raise ValueError(f"fused activation function {f.name!r} has no program")
        self._act_fns[f.name] = f
        return f

    def act_fn(self, name: str) -> ActFn | None:
        """The fused activation function of that name (the `_act_fn` annotation), or None."""
        return self._act_fns.get(name)

    def act_fn_by_code(self, code: int) -> ActFn | None:
        return next((f for f in self._act_fns.values() if f.code == code), None)

    def act_fns(self) -> list[ActFn]:
        return sorted(self._act_fns.values(), key=lambda f: f.code)

    def get(self, name: str, domain: str = "") -> OpDef | None:
        if domain in ("ai.onnx",):
            domain = ""
        return self._by_name.get((domain, name))

    def __contains__(self, name: str) -> bool:
        return ("", name) in self._by_name

    def by_id(self, i: int) -> OpDef:
        return self._by_id[i]

    def unfused(self, d: OpDef) -> OpDef:
        """The op whose fused form (OpDef.takes_act_fn) `d` is, else `d` itself."""
        if d.domain == "dsedge":
            for b in self._by_id.values():
                if b.takes_act_fn == d.name and not b.domain:
                    return b
        return d

    def fused_form(self, d: OpDef) -> OpDef:
        """The dsedge-domain op a node of `d` carrying a fused activation function is written as."""
        f = self.get(d.takes_act_fn, "dsedge") if d.takes_act_fn else None
        if f is None:
            raise ValueError(f"{d.name} has no fused form for a fused activation function")
        return f

    def all(self) -> list[OpDef]:
        return sorted(self._by_id.values(), key=lambda d: d.id)

    def names(self) -> list[str]:
        return sorted(d.name if not d.domain else f"{d.domain}.{d.name}" for d in self._by_id.values())


REGISTRY = OpRegistry()


def _signature(fn) -> tuple[dict[str, Any], tuple[int, int], bool]:
    sig = inspect.signature(fn)
    attrs: dict[str, Any] = {}
    n_min = n_max = 0
    takes_ctx = False
    for p in sig.parameters.values():
        if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD):
            n_max += 1
            if p.default is p.empty:
                n_min += 1
        elif p.kind == p.VAR_POSITIONAL:
            n_max = -1
        elif p.kind == p.KEYWORD_ONLY:
            if p.name == "_ctx":
                takes_ctx = True
            else:
                attrs[p.name] = None if p.default is p.empty else p.default
    return attrs, (n_min, n_max), takes_ctx


def op(name: str, op_id: int, *, infer=None, int_ref=None, quant: QuantRule | None = None, fp16=None,
       backward=None, upgrade=None, domain: str = "", view: bool = False, in_place: bool = False,
       elementwise: bool = False, data_dependent: bool = False, commutative: bool = False, act_fn: int = 0,
       takes_act_fn: str = "", float_weight_layout=None, registry: OpRegistry = REGISTRY):
    """Declare an op (see the module docstring)."""

    def deco(fn):
        attrs, n_inputs, takes_ctx = _signature(fn)
        registry.add(OpDef(name=name, id=op_id, ref=fn, infer=infer, int_ref=int_ref, quant=quant, fp16=fp16,
                           backward=backward, upgrade=upgrade, domain=domain, attrs=attrs, n_inputs=n_inputs,
                           takes_ctx=takes_ctx, view=view, in_place=in_place, elementwise=elementwise,
                           data_dependent=data_dependent, commutative=commutative, act_fn=act_fn,
                           takes_act_fn=takes_act_fn, float_weight_layout=float_weight_layout))
        return fn

    return deco


def act_fn(name: str, code: int, program: tuple, *, consts: tuple = (), registry: OpRegistry = REGISTRY) -> ActFn:
    """Declare a fused activation function that is a program of several ops (see `ActFn`)."""
    return registry.add_act_fn(ActFn(name, code, tuple(program), tuple(consts)))


def alias(name: str, op_id: int, target: Callable, **kw):
    """Declare `name` with the reference of another op (e.g. Upsample -> resize logic)."""
    return op(name, op_id, **kw)(target)


# -- shared shape helpers for op modules -------------------------------------------------

def broadcast_shapes(*shapes):
    """numpy broadcasting over shapes that may hold symbolic (str) or unknown (None) dims."""
    if any(s is None for s in shapes):
        return None
    rank = max((len(s) for s in shapes), default=0)
    out = []
    for i in range(rank):
        dims = [s[len(s) - rank + i] for s in shapes if len(s) - rank + i >= 0]
        known = [d for d in dims if isinstance(d, int)]
        big = [d for d in known if d != 1]
        if big:
            if len(set(big)) > 1:
                raise ValueError(f"shapes {shapes} do not broadcast")
            out.append(big[0])
        elif all(isinstance(d, int) for d in dims):
            out.append(1)
        else:
            sym = [d for d in dims if not isinstance(d, int)]
            out.append(sym[0] if len(set(sym)) == 1 else None)
    return tuple(out)


def elementwise_infer(attrs, infos, consts):
    """Shape rule for broadcasting elementwise ops: dtype of the first input."""
    shapes = [i.shape for i in infos if i is not None]
    return [TensorInfo(infos[0].dtype, broadcast_shapes(*shapes))]


def same_infer(attrs, infos, consts):
    """Shape rule for ops whose single output is shaped and typed like input 0."""
    return [infos[0]]


def normalize_axis(axis: int, rank: int) -> int:
    if not -rank <= axis < max(rank, 1):
        raise ValueError(f"axis {axis} out of range for rank {rank}")
    return axis % rank if rank else 0


def as_ints(v) -> list[int]:
    return [int(x) for x in np.asarray(v).reshape(-1)]
