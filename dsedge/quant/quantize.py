"""Post-training quantisation: float graph + calibration feeds -> quantised graph.

The algorithm (DESIGN.md §3, "decided by measured error"):

 1. `optimize` the float graph (constant folding, BatchNorm folding, activation fusion,
    unary-chain collapse) so every later step sees fused nodes.
 2. Calibrate: one streaming pass over all feeds collects a range observer per float
    tensor and caches the float outputs of the first few feeds.
 3. Measure: a second pass over those few feeds evaluates, node by node with the float
    inputs of the float model, the int8 form of every candidate node against its float
    output (SQNR), and collects the per-channel output shift that quantised weights cause
    (empirical bias correction). For weighted nodes with K <= `rounding_max_k` it instead
    accumulates E[x x^T] of their int8 input patches, from which rounding.py chooses each
    int8 weight's rounding by the layer's output error (same scales; the bias shift then
    follows from the chosen rounding).
 4. Plan, in graph order: weight-bearing nodes (Conv, ConvTranspose, Gemm, MatMul with a
    constant right operand) go int8 unless kept float by the user or the int32
    accumulator bound fails; byte-moving nodes follow their data input; every other node
    with an int8 form goes int8 only when one of its inputs is already int8 and its measured
    SQNR is within `max_loss_db` of the SQNR of merely rounding its output to int8 (or above
    `good_db`) and that rounding alone keeps at least `min_round_db` -- a kind with a float-output
    form (a MatMul of two activations) that fails this with its int8 output but passes it with
    the float output goes "int8-fout" (int8 compute, its result float); a Concat whose inputs'
    ranges differ by more than `max_loss_db` of resolution at the result's scale stays float;
    Softmax/Sigmoid whose result reaches a graph output stay float. Then the tensors read only
    by int8 tables get their range by the table's error (`refine_table_inputs`).
 5. Lower: int8 tensors get QParams; weights become int8 per-channel constants, biases int32;
    each int8 node gets its integer parameters in `attrs["_q"]` (dsedge/quant/kinds/);
    QuantizeLinear / DequantizeLinear nodes are inserted where float and int8 meet, so graph
    inputs and outputs keep their float dtypes and names.

The quantised graph runs in the same reference interpreter (int8 nodes through their
integer reference), is written as `.dse` and as QDQ ONNX.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from warnings import warn as _warn

import numpy as np

from ..errors import DseError, DseWarning, FeedError
from ..interp import execute
from ..util import ort_session
from ..ir import Graph, Node, QParams, TensorInfo
from ..ops import REGISTRY
from ..ops.fused import eval_program
from ..ops.registry import ACT, PARAM
from ..passes.shapes import infer_shapes
from ..passes.simplify import eliminate_dead, optimize
from ..util import heap_phase, heap_trim, progress
from . import arith, fp16, kinds, rounding
from .fp16 import fp16_node_weights, round_fp16, to_fp16_weights  # noqa: F401  (fp16 weights live in fp16.py)

PRECISIONS = ("int8", "fp16", "fp32")


@dataclass(frozen=True)
class QuantConfig:
    precision: str = "int8"
    method: str = "auto"
    keep_float: tuple[str, ...] = ()        # node names or op types
    bias_correction: bool = True
    max_loss_db: float = 3.0                 # non-weight ops: allowed SQNR loss of the int8 form
    good_db: float = 40.0                    # ... or accepted outright above this SQNR
    min_round_db: float = 20.0               # ... and never when int8 rounding alone is below this
    eval_feeds: int = 8                      # feeds used for measuring and for the summary
    progress: bool = True
    pin_constant_inputs: bool = False        # fold integer inputs constant across all feeds (for .dse)
    export_shapes: tuple[tuple[str, tuple[int, ...]], ...] = ()   # the .dse's input shapes when the caller fixed
                                             # them (--input-shape): shapes are pinned only where feeds agree
    weight_rounding: str = "hessian"         # "hessian": by the layer's output error (rounding.py); "nearest"
    rounding_max_k: int = 1024               # ... for layers with at most this many products per output
    allow_constant: tuple[str, ...] = ()     # float inputs the user knows to be constant (check_degenerate_feeds)
    weight_bits: int = 8                     # weight-bearing int8 nodes: 8 (W8A8), 7 (int8 codes in [-63, 63]: exact
                                             # vpmaddubsw kernels on AVX2) or 4 (W4A8, kinds.weighted.W4A8)
    weight_group: int = 0                    # W4A8: 0 = one scale per output channel, or 32 / 64 along K
    node_weight_bits: tuple[tuple[str, int], ...] = ()   # per node (name, or op type) overrides of weight_bits
    fp16_nodes: tuple[str, ...] = ()         # float nodes (names, op types, "*": all) given fp16 weights
    a16w8_nodes: tuple[str, ...] = ()        # weighted nodes (names, op types, "all") with int16 activations (A16W8)
    fp16_arith_nodes: tuple[str, ...] = ()   # float Conv/Gemm/MatMul (names, op types, "all") computed in fp16 (§16)

    def __post_init__(self):
        if self.precision not in PRECISIONS:
            raise DseError(f"unknown precision {self.precision!r}", hint=f"use one of {', '.join(PRECISIONS)}")
        if self.weight_rounding not in ("hessian", "nearest"):
            raise DseError(f"unknown weight rounding {self.weight_rounding!r}", hint="use 'hessian' or 'nearest'")
        for who, b in (("weight_bits", self.weight_bits),) + tuple((f"node_weight_bits[{k!r}]", v)
                                                                  for k, v in self.node_weight_bits):
            if b not in (4, 7, 8):
                raise DseError(f"{who} = {b!r}: weights are int8 (8), 7-bit (7) or int4 (4)", hint="use 8, 7 or 4")
        if self.fp16_arith_nodes and self.precision == "fp32":
            raise DseError("fp16 arithmetic computes with fp16 weights: it applies with precision int8 (to the "
                           "nodes kept float) or fp16", hint="use --precision fp16, or int8 with --keep-float")
        if self.weight_group not in arith.W4_GROUPS:
            raise DseError(f"unknown weight group size {self.weight_group!r}",
                           hint=f"use one of {', '.join(map(str, arith.W4_GROUPS))} (0: one scale per output channel)")

    def bits_of(self, n: Node) -> int:
        """The weight bits asked for node n: its name's override, else its op type's, else weight_bits."""
        d = dict(self.node_weight_bits)
        return int(d.get(n.name, d.get(n.op, self.weight_bits)))


def a16w8_choice(g: Graph, n: Node, cfg: QuantConfig) -> tuple[bool, str | None]:
    """(True, None) when the weighted node n runs A16W8 (int16 activations, kinds/a16w8.py) under
    cfg; (False, why) when it was asked but is not eligible; (False, None) when not asked."""
    if not any(k in (n.name, n.op, "all") for k in cfg.a16w8_nodes):
        return False, None
    why = kinds.KINDS["a16w8"].why_not(g, n)
    return why is None, why


def w4_choice(g: Graph, n: Node, cfg: QuantConfig) -> tuple[int | None, str | None]:
    """(group size, None) when the weighted node n gets int4 weights (W4A8) under cfg; (None,
    why) when int4 was asked but the node keeps int8 weights; (None, None) when not asked."""
    if cfg.bits_of(n) != 4:
        return None, None
    why = kinds.KINDS["w4a8"].why_not(g, n, cfg.weight_group)
    return (cfg.weight_group, None) if why is None else (None, why)


@dataclass
class LayerPlan:
    name: str
    op: str
    precision: str
    reason: str
    sqnr_db: float | None = None

    def as_dict(self):
        return {"name": self.name, "op": self.op, "precision": self.precision, "reason": self.reason,
                "sqnr_db": None if self.sqnr_db is None else round(self.sqnr_db, 2)}


@dataclass
class QuantResult:
    graph: Graph                 # quantised graph
    float_graph: Graph           # optimised float graph it came from
    plan: list[LayerPlan]
    ranges: dict
    eval_feeds: list
    eval_outputs: list
    info: dict = field(default_factory=dict)



def _sqnr(signal_pow: float, noise_pow: float) -> float:
    if noise_pow <= 0:
        return float("inf")
    if signal_pow <= 0:
        return float("-inf")
    return 10.0 * math.log10(signal_pow / noise_pow)


def sqnr_db(ref: np.ndarray, got: np.ndarray) -> float:
    ref = np.asarray(ref, np.float64)
    got = np.asarray(got, np.float64)
    return _sqnr(float(np.sum(ref * ref)), float(np.sum((ref - got) ** 2)))


# -- plan ------------------------------------------------------------------------------------

def _kept_float(n: Node, cfg: QuantConfig) -> bool:
    return any(k in (n.name, n.op) for k in cfg.keep_float)


def _rule(n: Node):
    d = REGISTRY.get(n.op, n.domain)
    return None if d is None else d.quant


def _is_float(g: Graph, name: str) -> bool:
    info = g.tensor_info(name)
    return info.dtype is not None and info.dtype.kind == "f"


def _act_inputs(g: Graph, n: Node) -> list[str]:
    return kinds.act_inputs(g, n)


def _reaches_output_through_bytes(g: Graph, name: str, consumers) -> bool:
    if name in g.outputs:
        return True
    for c in consumers.get(name, []):
        k = kinds.form_of(g, c)
        if k is not None and k.moves_bytes and c.outputs and \
                _reaches_output_through_bytes(g, c.outputs[0], consumers):
            return True
    return False


def _weighted_ok(g: Graph, n: Node) -> tuple[bool, str]:
    w = n.inputs[1] if len(n.inputs) > 1 else ""
    if w not in g.consts:
        return False, "weights are not constant"
    wv = g.consts[w]
    if wv.dtype.kind != "f":
        return False, "weights are not float"
    if n.op == "MatMul" and wv.ndim != 2:
        return False, "batched constant MatMul operand"
    if n.op == "Gemm" and (n.attrs.get("transA", 0) or float(n.attrs.get("alpha", 1.0)) != 1.0
                           or float(n.attrs.get("beta", 1.0)) != 1.0):
        return False, "Gemm with transA/alpha/beta"
    if n.op == "ConvTranspose" and (n.attrs.get("group", 1) != 1):
        return False, "grouped ConvTranspose"
    if len(n.inputs) > 2 and n.inputs[2] and n.inputs[2] not in g.consts:
        return False, "bias is not constant"
    if not _is_float(g, n.inputs[0]):
        return False, "input is not float"
    why = kinds.why_not(g, n)
    if why is not None:
        return False, why
    K = kinds.reduction_size(g, n)
    if not arith.accumulator_bound_ok(K):
        return False, f"int32 accumulator could overflow (K={K})"
    return True, "weight-bearing"


def make_plan(g: Graph, cfg: QuantConfig, ranges: dict, measured: dict) -> tuple[dict[str, str], list[LayerPlan]]:
    """Decide the precision of each node (graph order). Returns ({node name: precision}, plan)."""
    consumers = g.consumers()
    int8_tensors: set[str] = set()
    prec: dict[str, str] = {}
    plan: list[LayerPlan] = []

    def decide(n: Node) -> tuple[str, str, float | None]:
        rule = _rule(n)
        if cfg.precision != "int8":
            return cfg.precision, f"--precision {cfg.precision}", None
        if _kept_float(n, cfg):
            return "fp32", "--keep-float", None
        if rule is None:
            return "fp32", "no int8 form", None
        outs = [o for o in n.outputs if o]
        if not outs or not all(_is_float(g, o) for o in outs):
            return "fp32", "output is not a float tensor", None
        kind = kinds.form_of(g, n)
        if not all(o in ranges for o in outs) and not kind.moves_bytes:
            return "fp32", "no calibration range", None
        acts = _act_inputs(g, n)
        if kind.weight_bearing:
            ok, why = _weighted_ok(g, n)
            if ok:
                a16, why16 = a16w8_choice(g, n, cfg)
                if a16:     # its readers and producers meet it through int16 Q/DQ, as float meets int8
                    return "a16w8", why + "; int16 activations (A16W8)", None
                if why16 is not None:
                    why += f"; int8 activations (A16W8: {why16})"
            return ("int8", why, measured.get(n.name, {}).get("sqnr")) if ok else ("fp32", why, None)
        if not acts or not any(a in int8_tensors for a in acts):
            return "fp32", "its input is float", None
        if kind.shares_qparams:
            if not all(a in int8_tensors for a in acts):
                return "fp32", "its inputs are not all int8", None
            if not kinds.supports(g, n):
                return "fp32", kinds.why_not(g, n), None
            return "int8", "moves int8 bytes", None
        if not kinds.supports(g, n):
            return "fp32", kinds.why_not(g, n), None
        if n.op in ("Softmax", "Sigmoid") and _reaches_output_through_bytes(g, outs[0], consumers):
            return "fp32", "its result is a graph output (precision matters more than speed)", None
        if rule.kind == "concat":
            why = _concat_scale_loss(n, acts, ranges, cfg.max_loss_db)
            if why is not None:
                return "fp32", why, None
        m = measured.get(n.name)
        if m is None:
            return "fp32", "not measured", None
        if m["round_sqnr"] < cfg.min_round_db:
            return "fp32", (f"int8 cannot hold its output: rounding alone gives {m['round_sqnr']:.1f} dB "
                            "(a few outliers set the scale)"), m["sqnr"]
        if m["sqnr"] >= cfg.good_db or m["sqnr"] >= m["round_sqnr"] - cfg.max_loss_db:
            return "int8", f"measured {m['sqnr']:.1f} dB (rounding alone {m['round_sqnr']:.1f} dB)", m["sqnr"]
        f = m.get("fout_sqnr")
        if f is not None and (f >= cfg.good_db or f >= m["round_sqnr"] - cfg.max_loss_db):
            # int8 compute whose output is not rounded: its result stays float for its readers
            return "int8-fout", (f"measured {f:.1f} dB with a float output (int8 output {m['sqnr']:.1f} dB, "
                                 f"rounding alone {m['round_sqnr']:.1f} dB)"), f
        return "fp32", (f"int8 form loses too much: {m['sqnr']:.1f} dB vs {m['round_sqnr']:.1f} dB "
                        "for rounding alone"), m["sqnr"]

    for n in g.nodes:
        p, why, s = decide(n)
        prec[n.name] = p
        if p == "int8":
            int8_tensors.update(o for o in n.outputs if o)
        plan.append(LayerPlan(n.name, (n.domain + "." if n.domain else "") + n.op, p, why, s))
    _float_outputs(g, prec, plan, consumers)
    return prec, plan


def _concat_scale_loss(n: Node, acts: list[str], ranges, max_loss_db: float) -> str | None:
    """Why a Concat must stay float, or None: int8 gives the result one scale, and an input
    whose range is far narrower than the result's (YOLO heads concatenate box coordinates in
    pixels with class scores in [0, 1]) would lose 20*log10(s_out / s_in) dB of resolution --
    an average measured over the whole result hides it, since the wide input dominates."""
    if not acts or n.outputs[0] not in ranges:
        return None
    s_out = float(arith.choose_activation_qparams(*ranges[n.outputs[0]])[0])
    worst, which = 0.0, None
    for a in acts:
        if a not in ranges or not ranges[a][1] > ranges[a][0]:   # an all-zero input is exact at any scale
            continue
        s_in = float(arith.choose_activation_qparams(*ranges[a])[0])
        loss = 20.0 * math.log10(s_out / s_in) if s_in > 0 else 0.0
        if loss > worst:
            worst, which = loss, a
    if which is None or worst <= max_loss_db:
        return None
    return (f"its inputs' ranges differ: at the result's int8 scale, input {which!r} would lose "
            f"{worst:.1f} dB of resolution")


def _float_outputs(g: Graph, prec: dict, plan: list, consumers) -> None:
    """Where every reader of an int8 node runs in float (or is a graph output), rounding its
    output to int8 only loses precision: byte-moving nodes move to float, weight-bearing nodes
    keep int8 compute and dequantise their accumulator directly ("int8-fout")."""
    by_name = {p.name: p for p in plan}
    for n in reversed(g.nodes):
        if prec.get(n.name) != "int8":
            continue
        readers = [r for o in n.outputs if o for r in consumers.get(o, [])]
        if any(prec.get(r.name) in ("int8", "int8-fout") for r in readers):
            continue
        kind = kinds.form_of(g, n)
        if kind.shares_qparams:
            prec[n.name] = "fp32"
            by_name[n.name].precision = "fp32"
            by_name[n.name].reason = "its readers are float"
        elif kind.float_output:
            prec[n.name] = "int8-fout"
            by_name[n.name].precision = "int8-fout"
            by_name[n.name].reason += "; float output (its readers are float)"


# -- ranges of table inputs -------------------------------------------------------------------

TABLE_POINTS = 4          # points per histogram bin in the error integral below
TABLE_LO_SCALES = (1.0, 0.7, 0.5, 0.35, 0.25, 0.18, 0.12, 0.08, 0.05, 0.03, 0.0)


def _table_input_range(name: str, obs, fns: list, rng: tuple) -> tuple | None:
    """refine_table_inputs for one tensor (observer `obs`, its readers' programs `fns`, its
    calibration range `rng`): the better range, or None to keep `rng`."""
    program, consts, result = fns[0]
    if any(repr(fn) != repr(fns[0]) for fn in fns[1:]):
        return None
    h = obs.hist.astype(np.float64)
    h[obs.n] -= obs.zeros                   # exact zeros stay exact
    k = np.flatnonzero(h > 0)
    if k.size == 0:
        return None
    w = obs.width
    a = np.maximum((k - obs.n) * w, obs.min)
    b = np.minimum((k - obs.n + 1) * w, obs.max)
    t = (np.arange(TABLE_POINTS) + 0.5) / TABLE_POINTS
    x = (a[:, None] + (b - a)[:, None] * t[None, :]).reshape(-1)
    wt = np.repeat(h[k] / TABLE_POINTS, TABLE_POINTS)
    try:
        fx = np.asarray(eval_program(x, program, consts, result), np.float64)
    except Exception:        # noqa: BLE001 - a program the float64 points do not suit: keep the range
        return None
    if not np.all(np.isfinite(fx)):
        return None
    lo0, hi0 = rng
    cands = [(lo0, hi0)] + [(obs.min * r, hi) for hi in dict.fromkeys((hi0, max(obs.max, 0.0)))
                            for r in TABLE_LO_SCALES if obs.min < 0]

    def err(lo, hi):
        sc, zp = arith.choose_activation_qparams(lo, hi, where=name)
        sc = float(sc)
        xq = (np.clip(np.rint(x / sc) + zp, -128, 127) - zp) * sc
        fq = np.asarray(eval_program(xq, program, consts, result), np.float64)
        return float(np.sum(wt * (fx - fq) ** 2))
    errs = [err(lo, hi) for lo, hi in cands]
    j = int(np.argmin(errs))
    if j > 0 and errs[j] < errs[0]:
        lo, hi = cands[j]
        return (min(float(lo), 0.0), max(float(hi), 0.0))
    return None


def refine_table_inputs(g: Graph, ranges, observers: dict, int8_nodes=None, memo: dict | None = None) -> dict[str, tuple]:
    """Ranges for tensors read only by elementwise tables (dsedge.Elementwise: SiLU, GELU,
    Sigmoid, Tanh, ... as one int8 lookup), chosen by the error of the table's result, not of
    the tensor itself.

    The calibration range of x minimises the int8 error of x. When x's only readers compute
    f(x) and f flattens out (SiLU, GELU and Sigmoid for x << 0), values there need no precision:
    clipping them costs nothing and buys resolution where f is steep. For each such x with a
    histogram, the low end is chosen from a grid (fractions of the observed minimum, down to 0;
    the high end the calibrated one or the maximum) by E[(f(x) - f(q(x)))^2] over the histogram
    (TABLE_POINTS points per bin, f in float64 like the table), the calibrated range kept
    unless another is strictly better. Returns {tensor: (lo, hi)} for the ranges it changed,
    also written into `ranges`.

    int8_nodes: when given, only tensors whose readers are all among these nodes. The driver
    refines after the plan, for the tables that go int8 anyway: refining before it lets more
    tables pass the per-node loss rule, and each passing by up to max_loss_db adds up along a
    chain (ddddocr common at width 160: 29.8 -> 23.2 dB at the output).

    memo: a dict kept across calls on the same graph, observers and (unrefined) ranges, e.g.
    by the precision planner's many plans: each tensor's search runs once."""
    from dsedge.calibration.observers import HistogramObserver
    consumers = g.consumers()
    changed: dict[str, tuple] = {}
    for name, obs in observers.items():
        if name in g.outputs or not isinstance(obs, HistogramObserver) or obs.count == 0 or obs.e is None:
            continue
        readers = consumers.get(name, [])
        if not readers or any(r.op != "Elementwise" or r.domain != "dsedge" or r.inputs[:1] != [name]
                              or (int8_nodes is not None and r.name not in int8_nodes) for r in readers):
            continue
        if memo is None or name not in memo:
            fns = [(r.attrs["program"], r.attrs.get("consts", ()), r.attrs.get("result", 0)) for r in readers]
            best = _table_input_range(name, obs, fns, ranges[name])
            if memo is None:
                if best is not None:
                    changed[name] = best
                continue
            memo[name] = best
        if memo[name] is not None:
            changed[name] = memo[name]
    for name, r in changed.items():
        ranges[name] = r
    return changed


# -- measurement pass ------------------------------------------------------------------------

MEASURE_MAX_ELEMS = 1 << 18    # a node's int8 form is measured on whole feeds until this many outputs


class _Measure:
    """node_hook for the second pass: SQNR of each candidate's int8 form, bias shifts."""

    def __init__(self, g: Graph, ranges: dict, cfg: QuantConfig):
        self.g, self.ranges, self.cfg = g, ranges, cfg
        self.acc: dict[str, list] = {}             # name -> [signal, noise_int8, noise_round, outputs]
        self.bias: dict[str, list] = {}            # name -> [sum of per-channel shift, count]
        self.wq: dict[str, tuple] = {}
        self.win: dict[str, list] = {}             # name -> [window sums of the input, positions]
        self.hess: dict[str, rounding.HessianStats] = {}   # Hessian-aware weight rounding

    def qp(self, name):
        lo, hi = self.ranges[name]
        s, zp = arith.choose_activation_qparams(lo, hi, where=name)
        return QParams(np.float32(s), np.int32(zp))

    def __call__(self, n: Node, args, outs):
        rule = _rule(n)
        if rule is None or not n.outputs or not n.outputs[0] or n.outputs[0] not in self.ranges:
            return
        kind = kinds.form_of(self.g, n)
        if kind.weight_bearing:
            if self.cfg.weight_rounding == "hessian" and rounding.eligible(self.g, n, self.cfg.rounding_max_k) \
                    and _weighted_ok(self.g, n)[0]:
                self._hessian(n, args)
            elif self.cfg.bias_correction:
                self._bias_shift(n, args)
            return
        if kind.shares_qparams or not kinds.supports(self.g, n):
            return
        acts = kinds.act_inputs(self.g, n)
        if not acts or not all(a in self.ranges or a in self.g.consts for a in acts) \
                or all(a in self.g.consts for a in acts):    # an expression over constants left unfolded
            return
        a = self.acc.get(n.name)
        if a is not None and a[3] >= MEASURE_MAX_ELEMS:     # measured enough (feeds come in digest order)
            return
        try:
            y = np.asarray(outs[0], np.float64)
            out_qp = self.qp(n.outputs[0])
            in_qp = {a: (self.qp(a) if a in self.ranges else None) for a in acts}
            y_int = kinds.measure(self.g, n, args, in_qp, out_qp)
        except DseError:
            return
        y_fout = None
        if kind.float_output:      # its float-output form too (chosen when int8 output loses too much)
            try:
                y_fout = kinds.measure(self.g, n, args, in_qp, None)
            except DseError:
                y_fout = None
        y_round = arith.dequantize(arith.quantize(y, out_qp.scale, int(out_qp.zero_point)),
                                   out_qp.scale, int(out_qp.zero_point))
        a = self.acc.setdefault(n.name, [0.0, 0.0, 0.0, 0, None])
        a[0] += float(np.sum(y * y))
        a[1] += float(np.sum((y - y_int) ** 2))
        a[2] += float(np.sum((y - y_round) ** 2))
        a[3] += y.size
        if y_fout is not None:
            a[4] = (a[4] or 0.0) + float(np.sum((y - y_fout) ** 2))

    def w4(self, n: Node) -> int | None:
        """The W4A8 group size of node n under the config (None: int8 weights)."""
        return w4_choice(self.g, n, self.cfg)[0]

    def wmax(self, n: Node) -> int:
        """The largest int8 weight code of node n: 63 for 7-bit weights, else 127."""
        return arith.W7MAX if self.cfg.bits_of(n) == 7 else arith.WMAX

    def _dw(self, n: Node, cache: bool = True) -> np.ndarray:
        """w_q - w: what rounding node n's weights to int8 (int4 for a W4A8 node) per channel changes."""
        if n.name in self.wq:
            return self.wq[n.name]
        w = self.g.consts[n.inputs[1]]
        axis = kinds.weight_axis(n, w)
        grp = self.w4(n)
        if grp is not None:
            q4, sw, mul = arith.quantize_weight_int4(w, axis, group=grp, where=n.name)
            wq = arith.w4_effective(q4, axis, mul, grp)
        else:
            wq, sw = arith.quantize_weight_per_channel(w, axis, where=n.name, wmax=self.wmax(n))
        dw = (wq.astype(np.float64) * _expand(sw, axis, w.ndim) - np.asarray(w, np.float64)).astype(w.dtype)
        if cache:
            self.wq[n.name] = dw
        return dw

    def _bias_shift(self, n: Node, args):
        ok, _ = _weighted_ok(self.g, n)
        if not ok:
            return
        attrs = {k: v for k, v in n.attrs.items() if not k.startswith("_")}
        # Only window sums of x here (the weights are not read while the float engine holds its
        # copy of them); results() contracts them with w_q - w.
        ws = _window_sums(n, np.asarray(args[0]), self.g.consts[n.inputs[1]].shape, attrs)
        if ws is not None:
            acc = self.win.setdefault(n.name, [0.0, 0])
            acc[0] = acc[0] + ws[0]
            acc[1] += ws[1]
            return
        s = self.bias.setdefault(n.name, [0.0, 0])
        d = REGISTRY.get(n.op)
        dw = self._dw(n)
        diff = d.call([args[0], dw], attrs)[0]
        ch_axis = kinds.out_channel_axis(n)
        diff = np.asarray(diff, np.float64)
        red = tuple(i for i in range(diff.ndim) if i != ch_axis % diff.ndim)
        s[0] = s[0] + diff.sum(axis=red)
        s[1] += int(np.prod([diff.shape[i] for i in red]))

    def _hessian(self, n: Node, args):
        """Accumulate E[x x^T] of the int8 input patches (x quantised as the int8 node sees it)."""
        qp = None
        if n.inputs[0] in self.ranges:
            p = self.qp(n.inputs[0])
            qp = (p.scale, int(p.zero_point))
        w = self.g.consts[n.inputs[1]]
        cap = rounding.HessianStats.cap(kinds.reduction_size(self.g, n), int(n.attrs.get("group", 1)))
        self.hess.setdefault(n.name, rounding.HessianStats()).add(rounding.patches(self.g, n, args[0], w, cap), qp)

    def weights(self, shifts: dict) -> dict:
        """{node: (w_q, scales)} chosen by Hessian-aware rounding; their bias-correction shifts
        (for the chosen rounding) go into `shifts`."""
        out = {}
        for name in progress(list(self.hess), desc="rounding weights", enabled=self.cfg.progress, unit="layer"):
            st = self.hess.pop(name)           # each layer's statistics go once it is solved
            node = self.g.node_by_name(name)
            got = rounding.choose(self.g, node, st, centered=self.cfg.bias_correction, w4_group=self.w4(node),
                                  wmax=self.wmax(node))
            del st
            heap_trim()        # a K x K problem's temporaries, freed in many sizes, leave holes
            if got is None:
                continue
            out[name] = got[:2]
            if self.cfg.bias_correction:
                shifts[name] = got[2]
        return out

    def results(self) -> tuple[dict, dict]:
        measured = {k: {"sqnr": _sqnr(v[0], v[1]), "round_sqnr": _sqnr(v[0], v[2]),
                        **({"fout_sqnr": _sqnr(v[0], v[4])} if v[4] is not None else {})}
                    for k, v in self.acc.items()}
        shifts = {k: (v[0] / max(v[1], 1)) for k, v in self.bias.items()}
        nodes = {n.name: n for n in self.g.nodes}
        for k, (sums, count) in self.win.items():
            n = nodes[k]
            attrs = {a: v for a, v in n.attrs.items() if not a.startswith("_")}
            shifts[k] = _contract(n, sums, self._dw(n, cache=False), attrs) / max(count, 1)
        return measured, shifts


def _window_sums(n: Node, x: np.ndarray, wshape: tuple, attrs: dict):
    """What the mean output shift of a linear op needs from its input x, without the weights:
    (sums, number of output positions), or None for ops without this shortcut.

    The op is linear in its weights and so is the mean over output positions, so the shift that
    rounding the weights causes, mean(op(x, w_q - w)), is a contraction of (w_q - w) with window
    sums of x: for Conv, sums[c, t] = sum over output positions of the input value under kernel
    tap t of channel c (padding reads 0); for Gemm/MatMul, the column sums of x."""
    if n.op == "Conv":
        from ..ops.nn import _geometry
        nd = x.ndim - 2
        k = list(wshape[2:])
        pb, _, out, st, dl = _geometry(x.shape[2:], k, attrs.get("strides"), attrs.get("dilations"),
                                       attrs.get("pads"), attrs.get("auto_pad", "NOTSET"))
        if all(kk == 1 for kk in k) and all(v == 1 for v in st) and not any(pb) and \
                list(out) == list(x.shape[2:]):                   # 1x1, stride 1, no padding: channel sums
            sums = np.asarray(x, np.float32).reshape(x.shape[0], x.shape[1], -1).sum(axis=(0, 2), dtype=np.float64)
            return sums.reshape(x.shape[1], 1), int(x.shape[0] * np.prod(out))
        m = np.asarray(x, np.float32).sum(axis=0, dtype=np.float32) if x.shape[0] > 1 else \
            np.asarray(x[0], np.float32)                          # (C, *spatial); float32: BLAS below
        for i in range(nd):                                       # window-tap indicators, axis by axis
            size = x.shape[2 + i]
            ind = np.zeros((k[i], size), np.float32)
            for t in range(k[i]):
                r = t * dl[i] - pb[i] + st[i] * np.arange(out[i])
                ind[t, r[(r >= 0) & (r < size)]] = 1.0
            m = np.tensordot(m, ind, axes=([1], [1]))             # contracts this axis, appends its taps
        return m.astype(np.float64).reshape(x.shape[1], -1), int(x.shape[0] * np.prod(out))
    if n.op in ("Gemm", "MatMul"):
        rows = np.asarray(x, np.float64).reshape(-1, x.shape[-1])
        return rows.sum(axis=0), rows.shape[0]
    return None


def _contract(n: Node, sums: np.ndarray, dw: np.ndarray, attrs: dict) -> np.ndarray:
    """Per output channel: the sum over output positions of op(x, dw), from `_window_sums`."""
    if n.op == "Conv":
        g = int(attrs.get("group", 1))
        mo, c = dw.shape[0], sums.shape[0]
        return np.einsum("gmck,gck->gm", dw.astype(np.float64).reshape(g, mo // g, c // g, -1),
                         sums.reshape(g, c // g, -1)).reshape(mo)
    w = dw.astype(np.float64)
    if n.op == "Gemm" and attrs.get("transB", 0):
        w = w.T
    return sums @ w


def _expand(v, axis, ndim):
    shape = [1] * ndim
    shape[axis % ndim] = -1
    return np.asarray(v).reshape(shape)


# -- lowering ---------------------------------------------------------------------------------

def lower(g: Graph, prec: dict[str, str], ranges: dict, shifts: dict, weights: dict | None = None,
          w4: dict[str, int] | None = None, w7: frozenset = frozenset()) -> Graph:
    """Build the quantised graph from the float graph and a precision plan (`weights`: int8
    weight values chosen by the planner, {node: (w_q, scales they are on)}; `w4`: the weighted
    nodes that get int4 weights, {node: group size}, kinds.weighted.W4A8; `w7`: those whose int8
    weights are 7-bit, codes in [-63, 63])."""
    weights = weights or {}
    w4 = w4 or {}

    def wopts(name: str) -> dict:
        if name in w4:
            return {"kind_name": "w4a8", "group": w4[name]}
        return {"wmax": arith.W7MAX} if name in w7 else {}

    q = g.copy()
    q.qparams = {}
    act_qp: dict[str, QParams] = {}

    def qp_of(name: str) -> QParams:
        if name not in act_qp:
            lo, hi = ranges[name]
            s, zp = arith.choose_activation_qparams(lo, hi, where=name)
            act_qp[name] = QParams(np.float32(s), np.int32(zp))
        return act_qp[name]

    int8_out: dict[str, str] = {}   # float tensor name -> its int8 twin's name
    int16_out: dict[str, str] = {}  # float tensor name -> its int16 twin's name (A16W8 nodes' operands)
    produced16: set[str] = set()    # tensors an A16W8 node produces (in int16)
    float_of: dict[str, str] = {}   # int8/int16 tensor name -> float twin (dequantised) for float readers
    new_nodes: list[Node] = []

    def qp16_of(name: str) -> QParams:
        lo, hi = ranges[name]
        s, zp = arith.choose_a16_qparams(lo, hi, where=name)
        return QParams(np.float32(s), np.int32(zp), np.dtype(np.int16))

    def quantize_as(name: str, p: QParams, dt, suffix: str) -> str:
        # an int8/int16 result is dequantised first (int8 <-> int16 through float); a float tensor as it is
        src = as_float(name) if (name in produced_int8 or name in produced16) else name
        qname = q.fresh_name(name + "_q" + suffix)
        s_name = q.add_const(name + "_scale" + suffix, np.asarray(p.scale, np.float32))
        z_name = q.add_const(name + "_zp" + suffix, np.asarray(p.zero_point, dt))
        new_nodes.append(Node("QuantizeLinear", [src, s_name, z_name], [qname],
                              name=q.fresh_name(name + "_quantize" + suffix)))
        q.info[qname] = TensorInfo(np.dtype(dt), g.tensor_info(name).shape)
        q.qparams[qname] = p
        return qname

    def as_int8(name: str) -> str:
        """The int8 version of tensor `name`, inserting a QuantizeLinear if it is float."""
        if name not in int8_out:
            int8_out[name] = quantize_as(name, qp_of(name), np.int8, "")
        return int8_out[name]

    def as_int16(name: str) -> str:
        """The int16 version of tensor `name` (symmetric), inserting a QuantizeLinear."""
        if name not in int16_out:
            int16_out[name] = quantize_as(name, qp16_of(name), np.int16, "16")
        return int16_out[name]

    def as_float(name: str) -> str:
        """For a float reader: the float version of `name` (a DequantizeLinear of the int8 or int16
        twin that produced it)."""
        if name in q.consts:
            return name
        if name in produced16:
            qname, dt = int16_out[name], np.int16
        elif name in int8_out:
            qname, dt = int8_out[name], np.int8
        else:
            return name
        if qname not in float_of:
            p = q.qparams[qname]
            s_name = q.add_const(name + "_dq_scale", np.asarray(p.scale, np.float32))
            z_name = q.add_const(name + "_dq_zp", np.asarray(p.zero_point, dt))
            fname = name if (name in produced_int8 or name in produced16) else q.fresh_name(name + "_f")
            new_nodes.append(Node("DequantizeLinear", [qname, s_name, z_name], [fname],
                                  name=q.fresh_name(name + "_dequantize")))
            float_of[qname] = fname
        return float_of[qname]

    produced_int8: set[str] = set()
    for n in g.nodes:
        p = prec.get(n.name, "fp32")
        form = kinds.form_of(g, n)
        roles = kinds.roles_of(g, n)
        if p == "a16w8":          # int16 activations, int8 weights (kinds/a16w8.py)
            ins = [as_int16(i) if (i and r == ACT and i not in g.consts) else i for i, r in zip(n.inputs, roles)]
            outs = []
            for o in n.outputs:
                qname = q.fresh_name(o + "_q16") if o else o
                if o:
                    int16_out[o] = qname
                    produced16.add(o)
                    q.info[qname] = TensorInfo(np.dtype(np.int16), g.tensor_info(o).shape)
                    q.qparams[qname] = qp16_of(o)
                outs.append(qname)
            nn = Node(n.op, ins, outs, dict(n.attrs), n.name, n.domain)
            kinds.lower_node(q, nn, [q.qparams.get(i) if i else None for i in ins], [q.qparams.get(o) for o in outs],
                             bias_shift=shifts.get(n.name), weight_q=weights.get(n.name), kind_name="a16w8")
            new_nodes.append(nn)
            continue
        if p == "int8-fout":      # int8 compute, the accumulator dequantised (float_output kinds)
            ins = [as_int8(i) if (i and r == ACT and i not in g.consts) else i for i, r in zip(n.inputs, roles)]
            nn = Node(n.op, ins, list(n.outputs), dict(n.attrs), n.name, n.domain)
            kinds.lower_node(q, nn, [q.qparams.get(i) if i else None for i in ins], [None],
                             bias_shift=shifts.get(n.name), weight_q=weights.get(n.name),
                             **{"kind_name": form.name, **wopts(n.name)})
            new_nodes.append(nn)
            continue
        if p != "int8":
            nn = Node(n.op, [as_float(i) if i else i for i in n.inputs], list(n.outputs), dict(n.attrs), n.name, n.domain)
            new_nodes.append(nn)
            continue
        ins = []
        for k, i in enumerate(n.inputs):
            role = roles[k] if i else PARAM
            # a constant ACT operand is quantised by kinds.lower_node (it has no calibration range)
            ins.append(as_int8(i) if (i and role == ACT and i not in g.consts) else i)
        outs = []
        for o in n.outputs:
            if not o:
                outs.append(o)
                continue
            qname = q.fresh_name(o + "_q")
            int8_out[o] = qname
            produced_int8.add(o)
            q.info[qname] = TensorInfo(np.dtype(np.int8), g.tensor_info(o).shape)
            outs.append(qname)
        nn = Node(n.op, ins, outs, dict(n.attrs), n.name, n.domain)
        in_qp = [q.qparams.get(i) if i else None for i in ins]
        if form.shares_qparams:
            out_qp = [in_qp[0] for _ in outs]
        else:
            out_qp = [qp_of(o) if o else None for o in n.outputs]
        for o, p_ in zip(outs, out_qp):
            if o:
                q.qparams[o] = p_
        kinds.lower_node(q, nn, in_qp, out_qp, bias_shift=shifts.get(n.name), weight_q=weights.get(n.name),
                         **{"kind_name": form.name, **wopts(n.name)})
        new_nodes.append(nn)
    # graph outputs produced in int8: dequantise under the original name
    for o in g.outputs:
        if (o in int8_out or o in produced16) and o not in g.inputs:
            as_float(o)
    outputs = list(g.outputs)
    q.nodes = new_nodes
    q.outputs = outputs
    q.toposort()
    eliminate_dead(q)
    return q


# -- driver -----------------------------------------------------------------------------------

_PIN_MAX_ELEMS = 16


def pin_constant_inputs(g: Graph, feeds, info: dict | None = None, export_shapes: dict | None = None) -> dict:
    """Integer inputs (at most 16 elements) whose value is the same in every feed, read by a
    sub-graph-bearing node (If/Loop) directly or through other nodes, become constants of `g`
    (the input itself stays, unread, so the .dse exporter can guard it at run time). Only for
    outputs that guard pinned inputs (.dse): a QDQ ONNX model keeps its control flow.

    Input shapes too: when every feed gives each input one shape and fixing those shapes lets
    more If/Loop nodes fold than the pinned values alone (silero VAD's LSTM sits inside two Ifs
    on its input's rank and length), the inputs get those static shapes, so what those branches
    hold is calibrated, measured and planned like any node rather than left float in a branch
    only the exporter folds. A .dse is specialised to one shape anyway; the shapes are recorded
    in `info["pinned_shapes"]` and the exporter refuses another `--input-shape` with a message
    naming them; shapes the caller fixed for the .dse (`export_shapes`, --input-shape) that differ
    from the feeds' leave every shape free (the exporter folds at its shape, as before).
    Returns {input name: value}."""
    if not any(n.subgraphs() for _, n in g.walk()):
        return {}
    cands = [i for i in g.inputs if (g.tensor_info(i).dtype is not None and g.tensor_info(i).dtype.kind in "iub")]
    seen: dict[str, np.ndarray | None] = {}
    shapes: dict[str, set] = {i: set() for i in g.inputs}
    count = 0
    for feed in feeds:
        count += 1
        for name in g.inputs:
            if name in feed:
                shapes[name].add(tuple(int(d) for d in np.shape(feed[name])))
        for name in cands:
            v = np.asarray(feed[name]) if name in feed else None
            if v is None or v.size > _PIN_MAX_ELEMS:
                seen[name] = None
            elif name not in seen:
                seen[name] = np.array(v)
            elif seen[name] is not None and not (seen[name].shape == v.shape and np.array_equal(seen[name], v)):
                seen[name] = None
    if count < 2:
        return {}
    pinned = {k: v for k, v in seen.items() if v is not None}
    from ..ir import _rename_free
    for name, v in pinned.items():
        c = g.add_const(name + "_pinned", v.astype(g.tensor_info(name).dtype or v.dtype))
        for n in g.nodes:
            n.inputs = [c if i == name else i for i in n.inputs]
            for sg in n.subgraphs():
                _rename_free(sg, name, c)
    if all(len(s) == 1 for s in shapes.values()):
        fixed = {k: next(iter(s)) for k, s in shapes.items()}
        agrees = all(tuple(v) == fixed.get(k) for k, v in (export_shapes or {}).items())
        if agrees and _control_left(g, {}) > _control_left(g, fixed):
            for name, shape in fixed.items():
                g.info[name] = TensorInfo(g.tensor_info(name).dtype, shape)
            if info is not None:
                info["pinned_shapes"] = {k: list(v) for k, v in fixed.items()}
    return pinned


def _control_left(g: Graph, shapes: dict) -> int:
    """How many If/Loop nodes a copy of `g` keeps after the float pipeline's folding (`optimize`,
    as prepare() runs it next), its inputs given `shapes`."""
    t = g.copy()
    for name, shape in shapes.items():
        decl = t.tensor_info(name).shape
        if decl is not None and (len(decl) != len(shape) or any(isinstance(d, int) and d >= 0 and d != s
                                                                 for d, s in zip(decl, shape))):
            return 0          # the feeds do not fit the declared shape: calibration reports it
        t.info[name] = TensorInfo(t.tensor_info(name).dtype, shape)
    optimize(t, fold_bn=False, fuse=False, collapse=False)
    return sum(1 for _, n in t.walk() if n.subgraphs())


_SMALL_INPUT = 16     # elements: a float input this small may be a constant parameter (a gain, a threshold)


def check_degenerate_feeds(g: Graph, degenerate: dict, n_feeds: int, input_shapes: dict, cfg: QuantConfig,
                           where: str, outputs: dict | None = None) -> list[str]:
    """Calibration that never varied a float input the model computes with: an error, or a
    warning (returned) when that may be how the model is used.

    `degenerate` is calibration's {input: "zeros" | "constant" | "identical"}; `outputs` the
    float outputs of one calibration feed (their shapes and dtypes; a model's declared output
    shapes are often unknown). An input read
    only for its shape (Shape, Size) or not read at all is left alone. Calibrating on one value
    sets every range downstream of it from that value, and the output SQNR measured on the same
    feeds then says nothing about real inputs: a model that ignored the input would score as
    well (55.8 dB was reported for one). So it is an error naming the input, unless
      * the user declared it constant (`allow_constant`, `--constant-input NAME`): silent;
      * it has at most 16 elements (a gain, a threshold, a flag): a warning;
      * it is all zeros and a graph output has its shape and dtype: a recurrent state (silero
        VAD's `state` -> `stateN`, an LSTM's h/c) on a first call, where zeros are the real
        value: a warning that the ranges hold for first calls only.
    """
    consumers = g.consumers()
    warnings, errors = [], []
    what = {"zeros": "all zeros", "constant": "one constant value throughout",
            "identical": "the same array"}
    for name, kind in sorted(degenerate.items()):
        readers = consumers.get(name, [])
        if not any(r.domain or r.op not in ("Shape", "Size") for r in readers) and name not in g.outputs:
            continue
        if name in cfg.allow_constant:
            continue
        info = g.tensor_info(name)
        shapes = input_shapes.get(name) or []
        size = int(np.prod(shapes[0])) if shapes else (int(np.prod(info.shape)) if info.is_static else None)
        msg = f"{where}: float input {name!r} is {what[kind]} in every one of the {n_feeds} calibration feed(s)"
        twin = None
        if kind == "zeros" and shapes:
            seen = {k: (tuple(np.shape(v)), np.asarray(v).dtype) for k, v in (outputs or {}).items()}
            twin = next((o for o in g.outputs if o != name and seen.get(o, (g.tensor_info(o).shape,
                         g.tensor_info(o).dtype)) == (tuple(shapes[0]), info.dtype)), None)
        if twin is not None:
            warnings.append(f"{msg}: taken as a recurrent state that starts at zero (output {twin!r} has its "
                            f"shape); its ranges hold for a first call only, and so does the output SQNR. Feed "
                            f"the states of consecutive calls, or pass --constant-input {name} if zero is all "
                            "it ever holds")
        elif size is not None and size <= _SMALL_INPUT:
            warnings.append(f"{msg}: its ranges, and the output SQNR on these feeds, hold for this value only "
                            f"(pass --constant-input {name} if it never changes)")
        else:
            errors.append((name, msg))
    if errors:
        name, msg = errors[0]
        more = f" (also: {', '.join(repr(n) for n, _ in errors[1:])})" if len(errors) > 1 else ""
        raise FeedError(f"{msg}{more}, but the model computes with it: every range downstream would be set by "
                        "that one input, and an accuracy figure measured on these feeds says nothing about real "
                        "inputs (a model that ignored the input would score as well)",
                        hint=f"calibrate on real data for {name!r}; if the input really is constant when the model "
                             f"runs, pass --constant-input {name}")
    return warnings


@dataclass
class Prepared:
    """What quantising needs before the precision of each node is decided: the optimised float
    graph, its calibration ranges (and observers), and for int8 the measured error of each
    node's int8 form, the bias shifts and the rounded weights. `finish` turns it and a plan into
    a QuantResult; the precision planner (precision.py) finishes many plans from one of these."""
    fg: Graph
    cfg: QuantConfig
    ranges: dict
    observers: dict
    measured: dict
    shifts: dict
    weights: dict
    eval_feeds: list
    eval_outputs: list
    info: dict
    calib: object          # the CalibResult: its summary counts the (lazily) computed ranges
    table_ranges: dict | None = None   # refine_table_inputs' memo, for plans finished many times


def prepare(graph: Graph, feeds, cfg: QuantConfig = QuantConfig(), *, copy: bool = True) -> Prepared:
    """Optimise, calibrate and (int8) measure `graph` on `feeds` (see quantize_graph)."""
    from dsedge.calibration import calibrate
    g0 = graph.copy() if copy else graph
    pinned_info: dict = {}
    if cfg.pin_constant_inputs:
        pin_constant_inputs(g0, feeds, pinned_info, dict(cfg.export_shapes))
    optimized: dict = {}
    fg = optimize(g0, report=optimized)
    feeds = list(feeds) if not hasattr(feeds, "__len__") else feeds
    from dsedge.calibration.engine import float_engine, spill_constants
    engine = float_engine(fg, "fiub")
    if engine.name == "onnxruntime":    # onnxruntime has its own copy of the weights now
        spill_constants(fg)
    heap_phase("activations")
    calib = calibrate(fg, feeds, method=cfg.method, progress=cfg.progress, keep_outputs=cfg.eval_feeds,
                      engine=engine)
    notes: list[str] = []
    try:
        if cfg.precision == "int8":     # fp16/fp32 use no ranges
            notes = check_degenerate_feeds(fg, getattr(calib, "degenerate_inputs", {}) or {}, calib.n_feeds,
                                           getattr(calib, "input_shapes", {}) or {}, cfg,
                                           str(getattr(feeds, "path", "") or "calibration feeds"),
                                           calib.outputs[0] if calib.outputs else None)
    except DseError:
        engine.close()
        raise
    for w in notes:
        _warn(w, DseWarning)
    eval_feeds = list(calib.feeds)
    eval_outputs = list(calib.outputs)
    calib.engine = None
    measured: dict = {}
    shifts: dict = {}
    weights: dict = {}
    if cfg.precision != "int8":         # nothing more to run in float
        engine.close()
        heap_phase("weights")
    else:
        meas = _Measure(fg, calib.ranges, cfg)
        heap_trim()            # what calibration's activations left in the heap
        for feed in progress(eval_feeds, total=len(eval_feeds), desc="measuring int8 error", enabled=cfg.progress):
            engine.run(feed, node_hook=meas)
        engine.close()
        heap_phase("weights")
        measured, shifts = meas.results()
        weights = meas.weights(shifts)
    info = {  # for export specialisation (dsedge/export/specialize.py): shapes seen per input
            # across all feeds, and small integer inputs whose value never changed
            "input_shapes": dict(getattr(calib, "input_shapes", {}) or {}),
            "constant_inputs": dict(getattr(calib, "constant_inputs", {}) or {}),
            **pinned_info, **optimized,
            "warnings": notes}
    return Prepared(fg, cfg, calib.ranges, calib.observers, measured, shifts, weights, eval_feeds, eval_outputs, info,
                    calib)


def finish(p: Prepared, cfg: QuantConfig | None = None, *, ranges: dict | None = None) -> QuantResult:
    """The quantised graph of a prepared model under `cfg` (default: the one it was prepared
    with; the precision planner passes the same config with other keep_float lists): the plan,
    the table inputs' ranges refined for it (in `ranges` when given, e.g. an overlay of the
    prepared ranges, else in them), the lowering."""
    cfg = cfg or p.cfg
    fg = p.fg
    ranges = p.ranges if ranges is None else ranges
    if cfg.precision == "fp32":
        qg = fg
        _, plan = make_plan(fg, cfg, ranges, {})
    elif cfg.precision == "fp16":
        qg = to_fp16_weights(fg)
        _, plan = make_plan(fg, cfg, ranges, {})
        mark_fp16_arith(qg, cfg, plan)
    else:
        prec, plan = make_plan(fg, cfg, ranges, p.measured)
        refined = refine_table_inputs(fg, ranges, p.observers, {k for k, v in prec.items() if v == "int8"},
                                      p.table_ranges)
        consumers = fg.consumers()
        tables = {r.name for t in refined for r in consumers.get(t, [])}
        for lp in plan:
            if lp.name in tables:
                lp.reason += "; input range chosen by the table's error"
        w4: dict[str, int] = {}
        w7: set[str] = set()
        nodes = {n.name: n for n in fg.nodes}
        for lp in plan:
            if lp.name in p.weights and prec.get(lp.name, "").startswith("int8"):
                lp.reason += "; weights rounded by output error"
            n = nodes.get(lp.name)
            if n is None or not prec.get(lp.name, "").startswith("int8") or not kinds.form_of(fg, n).weight_bearing:
                continue
            grp, why = w4_choice(fg, n, cfg)
            if grp is not None:
                w4[lp.name] = grp
                lp.reason += "; int4 weights (W4A8" + (f", groups of {grp})" if grp else ")")
            elif why is not None:
                lp.reason += f"; int8 weights ({why})"
            elif cfg.bits_of(n) == 7:
                w7.add(lp.name)
                lp.reason += "; 7-bit weights"
        qg = lower(fg, prec, ranges, p.shifts, p.weights, w4=w4, w7=frozenset(w7))
        infer_shapes(qg)
        if cfg.fp16_nodes:    # float nodes with fp16 weights (compute stays float32)
            half = fp16_node_weights(qg, cfg.fp16_nodes)
            round_fp16(qg, sorted({c for cs in half.values() for c in cs}))
            for lp in plan:
                if lp.name in half:
                    lp.precision = "fp16"
                    lp.reason += "; fp16 weights"
        mark_fp16_arith(qg, cfg, plan)
    info = {"calibration": p.calib.summary(), **p.info}   # after the plan: the ranges it computed
    return QuantResult(qg, fg, plan, ranges, p.eval_feeds, p.eval_outputs, info=info)


def mark_fp16_arith(qg: Graph, cfg: QuantConfig, plan: list[LayerPlan]) -> None:
    """The float nodes `cfg.fp16_arith_nodes` asks for get fp16 arithmetic (fp16.mark: fp16
    weights and bias, the `_fp16_arith` annotation); the plan says so, or why not."""
    if not cfg.fp16_arith_nodes:
        return
    done, refused = fp16.mark(qg, cfg.fp16_arith_nodes)
    done = set(done)
    for lp in plan:
        if lp.name in done:
            lp.reason += ("" if lp.precision == "fp16" else "; fp16 weights") + "; " + fp16.REASON
            lp.precision = "fp16"
        elif lp.name in refused:
            lp.reason += f"; float32 arithmetic (fp16 arithmetic: {refused[lp.name]})"


def quantize_graph(graph: Graph, feeds, cfg: QuantConfig = QuantConfig(), *, copy: bool = True) -> QuantResult:
    """Quantise `graph` on `feeds`. copy=False lets the passes edit `graph` in place (the caller
    gives it up), so the unfolded float weights are not kept alive next to the folded ones."""
    return finish(prepare(graph, feeds, cfg, copy=copy))


def _accumulate_sqnr(pairs) -> dict:
    per_out: dict[str, list[float]] = {}
    for ref, got in pairs:
        for o, a in ref.items():
            a = np.asarray(a, np.float64)
            b = np.asarray(got[o], np.float64)
            s = per_out.setdefault(o, [0.0, 0.0])
            s[0] += float(np.sum(a * a))
            s[1] += float(np.sum((a - b) ** 2))
    return {o: _sqnr(s, e) for o, (s, e) in per_out.items()}


def evaluate_onnx(result: QuantResult, path) -> dict:
    """Output SQNR (dB) of a written QDQ ONNX model, run in onnxruntime, against the cached
    float outputs."""
    sess = ort_session(path)
    names = [o.name for o in sess.get_outputs()]
    inputs = [i.name for i in sess.get_inputs()]

    def pairs():
        for feed, ref in zip(result.eval_feeds, result.eval_outputs):
            got = dict(zip(names, sess.run(names, {k: feed[k] for k in inputs})))
            yield {o: v for o, v in ref.items() if o in got}, got
    return _accumulate_sqnr(pairs())


def evaluate(result: QuantResult) -> dict:
    """Output SQNR (dB) of the quantised graph against the cached float outputs."""
    qg = result.graph
    return _accumulate_sqnr((ref, dict(zip(qg.outputs, execute(qg, feed))))
                            for feed, ref in zip(result.eval_feeds, result.eval_outputs))
