"""binary16 arithmetic (docs/quant-arith.md §16): the exact numpy semantics of a float Conv,
Gemm or MatMul marked for fp16 arithmetic (IR annotation `_fp16_arith`, `.dse` INT attribute
`fp16_arith` = 1), which the C REF kernel (kernels/ref/fp16_arith.c) and the NEON fp16 kernels
reproduce byte for byte.

Per output element, one binary16 accumulator, sequential over the reduction index k:

    acc = h(bias)   (+0 without a bias)
    for k: acc = fma16(h(x_k), h(w_k), acc)
    y = float32(acc), then the fused clip min(max(y, act_min), act_max), NaN as 0x7FC00000

`h` rounds to binary16 (round-to-nearest-even, subnormals, overflow to +-inf, NaN stays NaN):
numpy's `astype(np.float16)`, which converts float32 and float64 bits directly (one rounding;
tests/quant/test_fp16_arith.py checks it against an exact oracle). `fma16(a, b, c)` rounds
the exact a*b + c once: the product of two binary16 values is exact in float64 (22-bit
significands, exponents within float64's normal range), the sum is formed with its two-sum
error e (exact), and when e != 0 the float64 sum is moved to the odd neighbour on e's side
(round-to-odd: 53 >= 11 + 2 bits, so rounding that to binary16 gives the correctly rounded
result, ties and subnormals included). Exact zeros follow IEEE 754 (float64 addition has the
same sign rules), so signs of zero are part of the bytes.

Vectorised over the outputs (rows R x outputs M, groups G stacked), a Python loop over k: K
steps of about a dozen numpy passes over G*R*M float64 values. Each op's im2col/geometry and
its eligibility live with the op (ops/nn.py: `conv_fp16`, `gemm_fp16`, `matmul_fp16`, declared
as the op's `Fp16Rule`); the interpreter runs a marked node through `run_fp16`.

Why the op layer and not a quantisation kind: an fp16-arithmetic node is a float node (float32
in and out, no `_q` parameters, no integer lowering); what changes is the float reference that
the interpreter, the lowest user of the semantics, must run, and the interpreter may not
import upwards. The choice of nodes (eligibility in a graph, marking, weights to fp16) is the
quantiser's (dsedge/quant/fp16arith.py).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

from ..errors import UnsupportedOpError
from .fused import apply_act_fn, apply_activation

FP16_ARITH = "_fp16_arith"          # the IR annotation of a marked node (.dse attribute "fp16_arith")
NAN32_BITS = 0x7FC00000             # every NaN an fp16-arithmetic node writes


@dataclass(frozen=True)
class Fp16Rule:
    """An op's binary16 form: `ref(*inputs, **attrs)` -> float32 result before the fused clip
    (NaN not yet canonical), `why_not(attrs, infos, consts)` -> None when a node with these
    attributes, input TensorInfos and constant inputs (None where not constant) is eligible
    (docs/quant-arith.md §16 "Eligible nodes"), else the reason."""
    ref: Callable
    why_not: Callable


def h(x) -> np.ndarray:
    """x rounded to binary16, as float64 values (exact)."""
    with np.errstate(over="ignore"):          # overflow to inf is the rule
        return np.asarray(x).astype(np.float16).astype(np.float64)


def fma16(a: np.ndarray, b: np.ndarray, c: np.ndarray) -> np.ndarray:
    """The exact a*b + c rounded once to binary16 (a, b, c: binary16 values in float64; they
    broadcast); float64 result."""
    p = a * b                                   # exact
    s = p + c
    t = s - p
    e = (p - (s - t)) + (c - t)                 # two-sum: s + e == p + c exactly
    bits = s.view(np.int64)
    fix = (e != 0) & ((bits & 1) == 0) & np.isfinite(s)
    if fix.any():                               # round-to-odd: the odd neighbour towards p + c
        bits = bits + np.where(fix, np.where((e < 0) == (s < 0), 1, -1), 0)
    return bits.view(np.float64).astype(np.float16).astype(np.float64)


def dot16(x: np.ndarray, w: np.ndarray, start) -> np.ndarray:
    """acc[g, r, m] = start, then acc = fma16(x[g, r, k], w[g, k, m], acc) for k = 0 .. K-1.
    x (G, R, K) and w (G, K, M) hold binary16 values; `start` broadcasts to (G, R, M)."""
    G, R, K = x.shape
    M = w.shape[2]
    acc = np.array(np.broadcast_to(np.asarray(start, np.float64), (G, R, M)))
    xt = np.ascontiguousarray(np.moveaxis(x, 2, 0))[..., None]     # K, G, R, 1
    wt = np.ascontiguousarray(np.moveaxis(w, 1, 0))[:, :, None, :]  # K, G, 1, M
    with np.errstate(invalid="ignore", over="ignore"):
        for k in range(K):
            acc = fma16(xt[k], wt[k], acc)
    return acc


def bias_start(b, shape) -> np.ndarray:
    """The accumulators' start: h(bias) reshaped to `shape`, or +0."""
    return np.zeros(shape) if b is None else h(b).reshape(shape)


def canonical_nan(y: np.ndarray) -> np.ndarray:
    y = np.ascontiguousarray(y, np.float32)
    nan = np.isnan(y)
    if nan.any():
        y.view(np.uint32)[nan] = NAN32_BITS
    return y


def run_fp16(d, args: list, attrs: dict) -> tuple:
    """A marked node's outputs: the op's binary16 reference, widened to float32, the fused clip
    (`_act`), the fused activation function in float32 (`_act_fn`), NaN canonical. `d`: the node's OpDef."""
    if d.fp16 is None:
        raise UnsupportedOpError(f"op {d.name} has no fp16 arithmetic",
                                 hint="fp16 arithmetic is for Conv, Gemm and MatMul with constant weights")
    y = d.fp16.ref(*args, **{k: v for k, v in attrs.items() if not k.startswith("_")})
    y = np.asarray(y, np.float32)
    if attrs.get("_act"):
        y = apply_activation(y, attrs["_act"])
    if attrs.get("_act_fn"):
        y = np.asarray(apply_act_fn(y, attrs["_act_fn"]), np.float32)
    return (canonical_nan(y),)
