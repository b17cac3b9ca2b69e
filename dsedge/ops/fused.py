"""dsedge-internal ops produced by passes (domain "dsedge", ids from 1000).

Elementwise: a region of elementwise float ops computing y = f(x) of one tensor x, collapsed
by `passes.simplify.collapse_unary`. `program` is a tuple of steps `(op, args, attrs)`;
each arg is `("v", k)` (value k: 0 is x, k >= 1 the result of step k-1), `("c", j)`
(`consts[j]`, a scalar) or None (an omitted optional input). The float reference runs the
steps with the original ops' references, so it equals the uncollapsed graph exactly; the
int8 form is one 256-entry table of f evaluated in float64 (DESIGN.md §3).
"""
from __future__ import annotations

import numpy as np

from ..ir import TensorInfo
from .quantized import quantize_linear
from .registry import REGISTRY, QuantRule, op, same_infer


def eval_program(x: np.ndarray, program, consts, result: int) -> np.ndarray:
    vals = [x]
    for name, args, attrs in program:
        d = REGISTRY.get(name)
        ins = [None if a is None else (vals[a[1]] if a[0] == "v" else np.asarray(consts[a[1]]).astype(x.dtype))
               for a in args]
        vals.append(d.call(ins, dict(attrs))[0])
    return vals[result]


def expand_steps(n, const, fresh):
    """Elementwise node n back as the ops of its program, up to its result: yields (op, inputs,
    output, attrs, last) per step, for the QDQ writer and the exporter. const(base, value) names
    a scalar constant, fresh(base) a new intermediate tensor (called lazily, so a caller that adds
    each step to its graph before the next keeps its name generator aware of it); the last step
    writes n's output. A program whose result is x itself is one Identity."""
    program, consts, result = n.attrs["program"], n.attrs["consts"], int(n.attrs["result"])
    base = n.name or n.outputs[0]
    if result == 0:
        yield "Identity", [n.inputs[0]], n.outputs[0], {}, True
        return
    vals = [n.inputs[0]]
    for k, (name, args, attrs) in enumerate(program[:result]):
        ins = ["" if a is None else vals[a[1]] if a[0] == "v" else const(f"{base}_c", np.asarray(consts[a[1]]))
               for a in args]
        last = k + 1 == result
        dst = n.outputs[0] if last else fresh(f"{base}_{name}")
        yield name, ins, dst, dict(attrs or {}), last
        vals.append(dst)


# -- the float program in a `.dse` (runtimes/c/kernels/ref/elementwise.c) ---------------------
# Steps the C kernel runs, each the bytes of the op's own float32 kernel: name -> (arguments,
# the step attributes that travel as trailing constants with their defaults).
FLOAT_STEPS = {
    **{k: (2, ()) for k in ("Add", "Sub", "Mul", "Div", "Min", "Max")},
    **{k: (1, ()) for k in ("Neg", "Abs", "Relu", "Sqrt", "Reciprocal", "Floor", "Ceil", "Round", "Sign",
                            "HardSwish", "Softsign")},
    "LeakyRelu": (1, (("alpha", 0.01),)),
    "HardSigmoid": (1, (("alpha", 0.2), ("beta", 0.5))),
    "Clip": (3, ()),
}
ABSENT = -1000000          # an omitted optional input (Clip's bounds) in an encoded program


def encode_float_program(attrs: dict) -> dict | None:
    """The `.dse` attributes of a float Elementwise (INTS program: per step op id, argument count,
    arguments: value k >= 0, constant j as -1 - j, ABSENT; FLOATS consts; INT result), or None
    when a step is not one the C kernel runs (the exporter then expands the program)."""
    program, consts, result = attrs["program"], list(attrs["consts"]), int(attrs["result"])
    if result < 1 or len(program) > 16:       # the C kernel's bounds: 16 steps, 16 constants
        return None
    cs = [float(np.float32(np.asarray(c).reshape(()))) for c in consts]
    out: list[int] = []
    for name, args, sattrs in program:
        if name not in FLOAT_STEPS:
            return None
        nmax, extra = FLOAT_STEPS[name]
        known = {k for k, _ in extra}
        if any(k not in known for k in sattrs) or not 1 <= len(args) <= nmax or args[0] is None:
            return None
        if nmax == 2 and len(args) != 2:
            return None
        enc = [ABSENT if a is None else (int(a[1]) if a[0] == "v" else -1 - int(a[1])) for a in args]
        for k, default in extra:
            cs.append(float(np.float32(sattrs.get(k, default))))
            enc.append(-len(cs))
        out += [REGISTRY.get(name).id, len(enc)] + enc
    if len(cs) > 16:
        return None
    return {"program": out, "consts": cs, "result": result}


def decode_float_program(program, consts, result) -> dict:
    """encode_float_program's inverse: the IR attributes of the Elementwise node."""
    by_id = {REGISTRY.get(k).id: k for k in FLOAT_STEPS}
    steps, cs, at = [], [np.float32(c) for c in consts], 0
    program = [int(v) for v in program]
    while at < len(program):
        name, n = by_id[program[at]], program[at + 1]
        enc = program[at + 2:at + 2 + n]
        at += 2 + n
        extra = FLOAT_STEPS[name][1]
        sattrs = {k: float(cs[-1 - enc[len(enc) - len(extra) + i]]) for i, (k, _) in enumerate(extra)}
        enc = enc[:len(enc) - len(extra)] if extra else enc
        args = tuple(None if a == ABSENT else (("v", a) if a >= 0 else ("c", -1 - a)) for a in enc)
        steps.append((name, args, sattrs))
    return {"program": tuple(steps), "consts": tuple(cs), "result": int(result)}


@op("Elementwise", 1000, domain="dsedge", infer=same_infer, quant=QuantRule("table"), elementwise=True, in_place=True)
def elementwise(x, *, program=(), consts=(), result=0, source_nodes=()):
    return eval_program(x, program, consts, result)


def apply_activation(x: np.ndarray, act) -> np.ndarray:
    """A fused activation (`_act` attribute set by passes.simplify.fuse_activations) applied to a
    node's float output: ("clip", lo, hi)."""
    kind = act[0]
    if kind == "clip":
        lo, hi = act[1], act[2]
        y = x
        if lo != float("-inf"):
            y = np.maximum(y, np.asarray(lo, dtype=x.dtype))
        if hi != float("inf"):
            y = np.minimum(y, np.asarray(hi, dtype=x.dtype))
        return y
    raise ValueError(f"unknown fused activation {act!r}")


def apply_act_fn(x: np.ndarray, name: str) -> np.ndarray:
    """A fused activation function (`_act_fn`, the name of a registered `ActFn` merged into its
    producer at export: export/dse.py `_fuse_act_fn`) applied to the node's float output (after
    `_act`): its program run with the ops' own references, so the fused node gives the separate
    nodes' values."""
    f = REGISTRY.act_fn(name)
    if f is None:
        raise ValueError(f"unknown fused activation function {name!r}")
    return np.asarray(eval_program(x, f.program, f.consts, len(f.program)))


def act_fn_name(code: int) -> str:
    """The fused activation function whose `.dse` act_fn code is `code` (ActFn.code)."""
    f = REGISTRY.act_fn_by_code(code)
    if f is None:
        raise ValueError(f"unknown act_fn {code}")
    return f.name


def _act_fn_quantize_infer(attrs, infos, consts):
    return [TensorInfo(np.dtype(np.int8), infos[0].shape)]


@op("ActFnQuantize", 1002, domain="dsedge", infer=_act_fn_quantize_infer, elementwise=True)
def act_fn_quantize(x, *, act_fn=0, q_scale=1.0, q_zp=0):
    """A float activation function (OpDef.act_fn code `act_fn`: a registered `ActFn`, SiLU) then a
    per-tensor int8 QuantizeLinear (scale `q_scale`, zero point `q_zp`), one node: what the
    exporter writes for a float SiLU whose only reader quantises it (export/dse.py
    `_fuse_act_fn_quantize`; docs/kernels.md "dsedge.ActFnQuantize"). Float32 in, int8 out: the
    bytes of the separate activation and QuantizeLinear nodes."""
    y = apply_act_fn(np.asarray(x, np.float32), act_fn_name(int(act_fn)))
    return quantize_linear(np.asarray(y, np.float32), np.float32(q_scale), np.int8(q_zp))


def _canonical(program, consts, result) -> tuple:
    """A program's steps up to `result` in a form two programs computing the same steps share:
    constants by value, attributes with the op's defaults filled in, and the operands of a
    commutative op (OpDef.commutative) in a fixed order."""
    out = []
    for name, args, attrs in tuple(program)[:result]:
        d = REGISTRY.get(name)
        if d is None:
            return ()
        a = tuple(None if x is None else ("v", int(x[1])) if x[0] == "v"
                  else ("c", float(np.float32(np.asarray(consts[x[1]]).reshape(())))) for x in args)
        if d.commutative:
            a = tuple(sorted(a, key=repr))
        full = {k: v for k, v in d.attrs.items() if v is not None}
        full.update({k: v for k, v in (attrs or {}).items() if not k.startswith("_")})
        out.append((name, a, tuple(sorted((k, repr(v)) for k, v in full.items()))))
    return tuple(out)


def act_fn_of(n):
    """The fused activation function (a registered `ActFn`) that node n computes on its one input,
    or None: a float `dsedge.Elementwise` whose program is the ActFn's (operands of commutative
    steps in either order: Mul(x, Sigmoid(x)) or Mul(Sigmoid(x), x)), or the one op of a one-step
    ActFn (HardSwish). Nothing is matched by op name here: the ActFns and the ops' traits decide."""
    if len(n.inputs) != 1 or len(n.outputs) != 1 or not n.inputs[0]:
        return None
    if n.op == "Elementwise" and n.domain == "dsedge":
        if n.attrs.get("_quantize"):
            return None
        key = _canonical(n.attrs["program"], n.attrs["consts"], int(n.attrs["result"]))
    elif REGISTRY.get(n.op, n.domain) is None or n.domain:
        return None
    else:
        key = _canonical(((n.op, (("v", 0),), n.attrs),), (), 1)
    if not key:
        return None
    return next((f for f in REGISTRY.act_fns() if _canonical(f.program, f.consts, len(f.program)) == key), None)
