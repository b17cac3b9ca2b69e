"""Precision planning under an accuracy budget: which nodes run in int8 and which stay float,
chosen by the model's end-to-end metric on held-back feeds, not by local rules.

The quantiser's local rules (quantize.make_plan: a non-weight op is int8 when its own output
loses at most 3 dB against rounding alone) are both too strict (one table at the edge of a
rule keeps 45 SiLUs float) and too loose (many acceptable local losses add up to a changed
answer). Here every node with an int8 form is a candidate, and what decides is the agreement of
the whole quantised model with the float model on feeds held back from calibration:

  * metric (`Metric`, chosen per graph output from the float outputs): top-1 agreement for a
    [rows, classes] output, decision agreement at 0.5 for an output whose values all lie in
    [0, 1] (probabilities, masks), else 1 - the relative RMS error (10^(-SQNR/20)). A model's
    quality is the lowest over its outputs; the drop is 1 - quality, and a user metric
    (`module:function`, scoring outputs against labels) gives its own drop. For the counting
    outputs the drop is the larger of the answers changed on the held-back feeds and the share
    expected to change on new feeds (the strict margin model, `Metric.expected_changes(strict=
    True)`: each answer's float margin — of the held-back and the calibration feeds; a softmax's
    as a logit difference — against the noise the candidate adds to margins on the held-back
    feeds, at least that of the held-back answers nearest to it in margin; its one-sided 95 %
    upper bound over resamplings of the feeds): a search that picks the cheapest of many plans
    by a count favours plans whose near-ties happened to hold. A drop meets the budget when
    `drop <= budget` (`meets_budget`, the one test everywhere: 3 changed answers of 300 meet 1 %).
    Measured in sessions 15-16, the default model (probability margins, one sigma pooled over
    all answers) expected a tenth of the changes on new feeds, for int8 plans as for int4 ones
    (cls all int8: 0.05 % expected, 0.60 % of 1,500 new answers changed; orient 0.01 % against
    0.67 % of 1,200): the near-tied answers that change are few and noisier than the confident ones;
  * sensitivity: per candidate node, the end-to-end output noise it adds when it alone is int8
    (everything else float) and the noise it removes when it alone goes back to float from the
    all-int8 plan (2 evaluations per candidate; nodes that must share a precision — byte movers
    with their producer — follow their inputs and are not candidates of their own);
  * search: candidates sorted by sensitivity per unit of the objective (weight bytes for
    `size`; for `latency` the time keeping it float adds, from per-node profiles of an all-int8
    and an all-float plan in the C runtime, on this host or imported from the target, else
    multiply-adds); the shortest prefix of that order kept float that
    meets the budget, by bisection (log2 N evaluations), then a bounded pass that tries to
    lower each kept node again, least sensitive first. The local rules' plan is evaluated too
    and taken (then lowered where the budget allows) when it meets the budget at a lower cost;
    when all int8 meets (no search), it is taken when it meets and is cheaper as measured (the
    .dse bytes for size: an int8 elementwise node's table can outweigh its weightless float
    form; the host time for latency), so a plan is never larger than the default int8 artifact
    that already meets (cls: 220 -> 213 KB, under the local rules' 215 KB).
    N + N + log2 N + a few evaluations instead of 2^N combinations. With measured times, a
    group that runs faster in float than in int8 stays float whatever the budget (host times:
    when the plan keeping those groups float runs at least 2 % faster than all int8 as a whole,
    the two plans timed alternately in the same moments, as every host-time comparison of plans);
  * confirmation (`_confirm`): the chosen plan is scored again on the calibration feeds, a
    second sample the search did not choose on (the count of changed answers there, or the user
    metric: the margin model's noise pooled over them is that of the outliers calibration sees),
    and where it misses there the next groups in the
    search's order are raised too (bisection) until it meets on both sets. For a counting metric
    the all-int8 plan is confirmed there too before the search is skipped (one evaluation); a
    user metric confirms only the plan a search chose;
  * then (objective size) int4 weights where the budget allows (`int4`): the int8 weight nodes
    ranked by the noise their int4 weights add alone per weight element (one evaluation each),
    the longest prefix of that order that meets the budget by bisection, confirmed on the
    calibration feeds and shortened (bisection again) where it misses there (`_int4_prefix`);
  * then fp16 weights for every node left float (one evaluation; compute stays float32: the
    .dse loader widens them);
  * then (`fp16_arith`) fp16 arithmetic for every kept-float Conv/Gemm/MatMul that allows it
    (docs/quant-arith.md §16; one evaluation, kept when the budgets still hold): judged by the
    numpy reference's binary16 arithmetic, i.e. by what an ARMv8.2-A FP16 device computes
    (other targets widen to float32 by default, at least as close to the float model);
  * `memory_budget`: the chosen plan's .dse + arena (+ the loader's float32 copies of fp16
    weights) must fit, else the plan says it does not meet its budget.

An evaluation finishes the prepared model with a list of nodes kept float (quantize.finish)
and runs it on the held-back feeds through `run_plan(result, feeds) -> [outputs]` (default: the
numpy interpreter; the API passes the C runtime, which runs a candidate in milliseconds, one .dse
per distinct input shape of the feeds). The result is a `PrecisionPlan`, written as a lockfile (`to_json`):
`dsedge quantize --plan` re-calibrates on the same feeds and reproduces the same bytes.
`plan_prepared` is the same search on a model the caller prepared (`dsedge debug` prepares once,
finishes its default plan from the same Prepared with `finish_plan`, and asks for the sensitivity
of every group whatever the budget: `always_sensitivity`).
"""
from __future__ import annotations

import importlib
import json
import math
import time
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Callable

import numpy as np

from ..errors import DseError
from ..interp import run as interp_run
from ..ir import Graph
from . import fp16 as fp16_mod, kinds
from .quantize import Prepared, QuantConfig, finish, make_plan, prepare

PLAN_FORMAT = "dsedge-precision-plan"
PLAN_VERSION = 1
OBJECTIVES = ("size", "latency")
# every node with an int8 form is a candidate: no local SQNR rule rejects one
RELAXED = dict(max_loss_db=float("inf"), good_db=float("-inf"), min_round_db=float("-inf"))


# -- the metric ---------------------------------------------------------------------------------

def _output_kind(arrays: list[np.ndarray]) -> str:
    a = np.asarray(arrays[0])
    if a.dtype.kind != "f":
        return "exact"
    if a.ndim == 2 and a.shape[-1] >= 2:
        return "top1"
    if all(np.all(np.isfinite(x)) and float(np.min(x)) >= 0.0 and float(np.max(x)) <= 1.0 for x in arrays):
        return "threshold"
    return "sqnr"


def _is_distribution(arrays: list[np.ndarray]) -> bool:
    """Rows that are probability distributions (a softmax): every value in [0, 1], each row
    summing to 1."""
    for x in arrays:
        a = np.asarray(x, np.float64)
        if not a.size or not np.all(np.isfinite(a)) or float(a.min()) < 0.0 or float(a.max()) > 1.0:
            return False
        if float(np.max(np.abs(a.reshape(-1, a.shape[-1]).sum(-1) - 1.0))) > 1e-3:
            return False
    return True


_TINY = float(np.finfo(np.float32).tiny)


def _log_rows(a) -> np.ndarray:
    """log p (p floored at float32's smallest normal): for a softmax, log p_i - log p_j is the
    difference of the logits."""
    return np.log(np.maximum(np.asarray(a, np.float64), _TINY))


class _Answers:
    """The float model's answers on one counting output of one feed (top-1 indices along the last
    axis, or the decisions at 0.5), kept instead of the output where only the count of changed
    answers is needed (the confirmation on the calibration feeds): a [40, 6625] output over 300
    feeds is 300 MB as outputs, 48 KB as answers."""
    __slots__ = ("kind", "value")

    def __init__(self, kind: str, a):
        self.kind = kind
        self.value = np.argmax(np.asarray(a), -1) if kind == "top1" else np.asarray(a) > 0.5


def _top1(a) -> np.ndarray:
    return a.value if isinstance(a, _Answers) else np.argmax(np.asarray(a), -1)


def _decisions(a) -> np.ndarray:
    return a.value if isinstance(a, _Answers) else np.asarray(a) > 0.5


@dataclass
class Metric:
    """Agreement with the float model per graph output (kinds: top1, threshold, sqnr, exact), or
    a user function `fn(outputs: list[dict], feeds: list[dict]) -> float` (higher is better)."""
    kinds: dict[str, str]
    user: Callable | None = None
    user_name: str = ""
    # top1 outputs whose rows are probability distributions (a softmax): with `log`, the margin
    # model takes their margins and noise as log-ratios, i.e. as logit differences
    softmax: frozenset = frozenset()
    # the held-back feeds' margins, for the one `ref` list a search scores against (that list is
    # kept with them, so its id stays its own): {(id, len, log): (ref, margins)}
    _held: dict = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def for_outputs(cls, ref: list[dict], user: str | None = None) -> "Metric":
        names = list(ref[0]) if ref else []
        m = cls({o: _output_kind([r[o] for r in ref]) for o in names})
        m.softmax = frozenset(o for o, k in m.kinds.items() if k == "top1" and _is_distribution([r[o] for r in ref]))
        if user:
            m.user, m.user_name = load_user_metric(user), user
        return m

    def quality(self, ref: list[dict], got: list[dict]) -> float:
        """1.0 for outputs identical to the float model's; the lowest over the outputs."""
        q = 1.0
        for o, k in self.kinds.items():
            r = [x[o] if isinstance(x[o], _Answers) else np.asarray(x[o]) for x in ref]
            g = [np.asarray(x[o]) for x in got]
            if k == "top1":
                q = min(q, float(np.mean(np.concatenate([np.ravel(_top1(a) == _top1(b)) for a, b in zip(r, g)]))))
            elif k == "threshold":
                q = min(q, float(np.mean(np.concatenate([(_decisions(a) == _decisions(b)).ravel() for a, b in zip(r, g)]))))
            elif k == "exact":
                q = min(q, float(np.mean([np.array_equal(a, b) for a, b in zip(r, g)])))
            else:
                q = min(q, 1.0 - min(1.0, 10.0 ** (-output_sqnr(r, g) / 20.0)))
        return q

    def expected_drop(self, ref: list[dict], got: list[dict], upper: bool = False, more: list[dict] = ()) -> float:
        """The share of answers expected to change on new feeds like these under the output noise
        the candidate shows (the margin model), the largest over the counting outputs (top1,
        threshold); `upper`: its one-sided 95 % upper bound (a bootstrap over the feeds).

        A count of changed answers on the held-back feeds is what a plan is chosen on, so among
        the many plans the search tries it favours those whose few near-tied answers happened not
        to flip (one changed answer in 300 held back, five in 300 new feeds, on mobilenet_v2).
        This estimate does not depend on which answers flipped: per answer, the float model's
        margin m (top-1 logit minus the runner-up's; a probability's distance from 0.5) and the
        noise that quantisation adds to that margin, pooled over all held-back answers (RMS
        sigma), give a flip probability Phi(-m / sigma); their mean is the expected change.
        The margins are a sample too, and what moves the estimate most: on mobilenet_v2 one plan's
        noise was the same on every set of 300 feeds (sigma 0.021-0.024) while the share of
        answers within one sigma of a tie was 1.3 % on the planner's held-back feeds and 3.4 % on
        1,500 new ones (estimates 0.6 % and 1.2 %; 1.5 % changed). `more`: the float model's
        outputs on more feeds (the calibration feeds: margins do not depend on the plan) whose
        margins join the held-back ones; `upper` resamples all of them."""
        return self.expected_changes(ref, got, more)[1 if upper else 0]

    def expected_changes(self, ref: list[dict], got: list[dict], more=(), strict: bool = False) -> tuple[float, float]:
        """(expected_drop, its 95 % upper bound). `more`: float outputs (a list of dicts), or
        their margins (`self.margins(outputs, log=strict)`, kept instead of the outputs by the
        planner). The held-back feeds' margins are computed once per `ref` list and cached.

        `strict` (the planner's model, for every plan since session 16): the noise on an answer
        depends on the answer, and one sigma pooled over all of them is that of the many
        confident ones, while the answers that change are the few near-tied ones (session 15, top-1
        of two softmax classifiers, int4 weights: 0.05-0.25 % expected, 0.6-2.8 % changed on new
        feeds; pooled noise kurtosis 20-120; session 16, their int8 plans: 0.01-0.05 % expected,
        0.6-0.7 % changed). So
          * the margins and the noise of the `softmax` outputs are log-ratios, i.e. logit
            differences: a saturated probability hardly moves however large the noise in its
            logits (cls: 93 % of the answers within 0.1 of certainty; as logit differences its
            noise is near Gaussian, kurtosis 0.2-1.6, and grows a little with the margin);
          * a top-1 answer's sigma is the larger of the pooled one and the RMS noise of the
            `_NEAR` held-back answers nearest to it in margin: the near-tied answers may be the
            noisy ones (orient: logit-difference noise 1.1-1.6 RMS within 2 of a tie, 0.2 beyond;
            the pooled sigma expected 0.08 % changed, 0.67 % did).
        Decisions at 0.5 (threshold) are measured near the threshold either way."""
        held = self._held_margins(ref, strict)
        if not isinstance(more, Margins):
            more = self.margins(list(more), log=strict)
        worst = (0.0, 0.0)
        for o, k in self.kinds.items():
            if k not in ("top1", "threshold"):
                continue
            g = [np.asarray(x[o]) for x in got]
            if strict and o in self.softmax:
                g = [_log_rows(x) for x in g]
            if k == "top1":
                *rows, near = _margin_rows_top1(held[o], g, more.get(o))
                est, up = _expected_changes(*rows, near=near if strict else None)
            else:
                est, up = _expected_changes(*_margin_rows_threshold(held[o], g, more.get(o)))
            worst = (max(worst[0], est), max(worst[1], up))
        return worst

    def margins(self, outputs: list[dict], held: bool = False, log: bool = False) -> "Margins":
        """The float model's margins per counting output (top1: the top-1 logit minus the
        runner-up's per row; threshold: |p - 0.5| per element), feed by feed: a few numbers per
        answer instead of the outputs (ddddocr-style recognisers: 6,625 logits per position).
        `held`: also what measuring a candidate's noise needs (top-1 and runner-up columns; the
        probabilities). `log`: the `softmax` outputs' margins as log-ratios (expected_changes)."""
        out = Margins()
        for o, k in self.kinds.items():
            if not outputs or k not in ("top1", "threshold"):
                continue
            per, parts, extra = [], [], []
            for y in outputs:
                a = np.asarray(y[o])
                if k == "top1":
                    r = a.reshape(-1, a.shape[-1])
                    if log and o in self.softmax:
                        r = _log_rows(r)
                    idx = np.arange(len(r))
                    top = np.argmax(r, -1)
                    rest = r.copy()
                    rest[idx, top] = -np.inf
                    second = np.argmax(rest, -1)
                    parts.append(r[idx, top].astype(np.float64) - r[idx, second].astype(np.float64))
                    if held:
                        extra.append((top, second))
                else:
                    r = a.ravel()
                    parts.append(np.abs(r.astype(np.float64) - 0.5).astype(np.float32))
                    if held:
                        extra.append(r.astype(np.float32))
                per.append(len(parts[-1]))
            out[o] = (np.concatenate(parts), np.array(per), extra)
        return out

    def _held_margins(self, ref: list[dict], log: bool = False) -> "Margins":
        key = (id(ref), len(ref), bool(log))
        if key not in self._held:
            for k in [k for k in self._held if k[:2] != key[:2]]:
                del self._held[k]
            self._held[key] = (ref, self.margins(ref, held=True, log=log))
        return self._held[key][1]

    def noise(self, ref: list[dict], got: list[dict]) -> float:
        """Relative noise power of the float outputs (the sum over outputs of 10^(-SQNR/10)): the
        continuous measure that ranks candidates when agreement counts do not move."""
        total = 0.0
        for o, k in self.kinds.items():
            if k != "exact" and not any(isinstance(x[o], _Answers) for x in ref):   # (answers only: no noise)
                s = output_sqnr([np.asarray(x[o]) for x in ref], [np.asarray(x[o]) for x in got])
                total += 0.0 if s == float("inf") else 10.0 ** (-s / 10.0)
        return total

    def describe(self) -> dict:
        d = {"outputs": dict(self.kinds)}
        if self.user_name:
            d["user"] = self.user_name
        return d


def _flip_probability(margin: np.ndarray, sigma) -> np.ndarray:
    """Phi(-margin / sigma): the chance that zero-mean noise of RMS sigma crosses the margin
    (sigma: one for all, or one per answer, then positive)."""
    if np.ndim(sigma) == 0 and not sigma > 0.0:
        return (margin <= 0.0).astype(np.float64) * 0.5
    z = np.maximum(margin, 0.0) / (sigma * math.sqrt(2.0))
    # erfc(z) for z >= 0, Abramowitz & Stegun 7.1.26 (absolute error below 1.5e-7), vectorised
    t = 1.0 / (1.0 + 0.3275911 * z)
    poly = t * (0.254829592 + t * (-0.284496736 + t * (1.421413741 + t * (-1.453152027 + t * 1.061405429))))
    return 0.5 * poly * np.exp(-z * z)


class Margins(dict):
    """{output: (margins, answers per feed, per-feed extras)}: Metric.margins."""


def _margin_rows_top1(held, got: list[np.ndarray], more=None):
    """Per answer (row): the float margin and its feed; per feed: answers, and the noise's sum of
    squares and count (the feeds of `more`, float margins only, carry no noise)."""
    margin_h, per_h, cols = held
    moved = []
    with np.errstate(invalid="ignore"):   # inf - inf in a candidate that overflowed: NaN, taken as inf below
        for g, (top, second) in zip(got, cols):   # the noise on the deciding margin, feed by feed
            r = g.reshape(-1, g.shape[-1])
            idx = np.arange(len(r))
            moved.append(r[idx, top].astype(np.float64) - r[idx, second].astype(np.float64))
        moved = np.concatenate(moved) - margin_h
    margin, per = (margin_h, per_h) if more is None else (np.concatenate([margin_h, more[0]]),
                                                          np.concatenate([per_h, more[1]]))
    h = len(margin_h)                                          # the held-back rows come first
    feed = np.repeat(np.arange(len(per)), per)
    if not np.all(np.isfinite(moved)):
        moved = np.full_like(moved, np.inf)
    ss = np.bincount(feed[:h], moved ** 2, len(per))
    cnt = np.bincount(feed[:h], None, len(per)).astype(np.float64)
    o = np.argsort(margin_h, kind="stable")                   # the held-back answers by margin (strict)
    return margin, feed, per, ss, cnt, (margin_h[o], moved[o] ** 2, feed[:h][o])


def _margin_rows_threshold(held, got: list[np.ndarray], more=None):
    """As _margin_rows_top1 for decisions at 0.5; the noise is measured near the threshold
    (|p - 0.5| < 0.25: saturated probabilities hardly move), and answers far beyond the noise
    (which cannot change) are left out."""
    margin_h, per_h, probs = held
    d = np.concatenate([np.asarray(g, np.float32).ravel() - p for g, p in zip(got, probs)])
    per = per_h if more is None else np.concatenate([per_h, more[1]])
    feed_h = np.repeat(np.arange(len(per_h)), per_h)
    near = margin_h < 0.25
    if not np.any(near):
        near = np.ones_like(near)
    if not np.all(np.isfinite(d)):
        d = np.full_like(d, np.inf)
    ss = np.bincount(feed_h[near], d[near].astype(np.float64) ** 2, len(per))
    cnt = np.bincount(feed_h[near], None, len(per)).astype(np.float64)
    sigma = math.sqrt(float(ss.sum() / cnt.sum())) if cnt.sum() else 0.0
    # answers within 10 sigma of the threshold, held-back first then `more`
    keep_h = margin_h < 10.0 * sigma
    margin = [margin_h[keep_h]]
    feed = [feed_h[keep_h]]
    if more is not None:
        keep_m = more[0] < 10.0 * sigma
        margin.append(more[0][keep_m])
        feed.append(np.repeat(np.arange(len(per_h), len(per)), more[1])[keep_m])
    return np.concatenate(margin).astype(np.float64), np.concatenate(feed), per, ss, cnt


_NEAR = 10     # strict margin model: a top-1 answer's noise is at least that of the 10 held-back answers nearest in margin


def _expected_changes(margin, feed, per, ss, cnt, draws: int = 200, near=None) -> tuple[float, float]:
    """(mean Phi(-m / sigma) over the answers (sigma^2 = sum ss / sum cnt), that mean + 1.645
    standard deviations of the same figure over `draws` resamplings of the feeds (seeded: the
    same inputs give the same bound)). `near` (the held-back answers' margins in ascending
    order, their squared noise, their feeds): each answer's sigma is the larger of the pooled
    one and the RMS noise of the `_NEAR` held-back answers nearest to it in margin (a window
    of the sorted answers; a resampling weighs its answers)."""
    if not per.sum():
        return 0.0, 0.0
    if not np.all(np.isfinite(ss)):
        return 1.0, 1.0
    if near is not None and len(near[0]):
        ms, e2, fs = near
        k = min(_NEAR, len(ms))
        lo = np.clip(np.searchsorted(ms, margin) - k // 2, 0, len(ms) - k)

    def estimate(w):
        n = float(np.dot(w, cnt))
        if not n:                        # a resampling without a feed that measured the noise
            return float("nan")
        sigma = math.sqrt(float(np.dot(w, ss)) / n)
        if near is not None and len(near[0]) and sigma > 0.0:
            wr = w[fs]
            c0 = np.concatenate([[0.0], np.cumsum(wr)])
            c1 = np.concatenate([[0.0], np.cumsum(wr * e2)])
            s0, s1 = c0[lo + k] - c0[lo], c1[lo + k] - c1[lo]
            local = np.sqrt(np.divide(s1, s0, out=np.zeros_like(s1), where=s0 > 0))
            return float(np.dot(w[feed], _flip_probability(margin, np.maximum(sigma, local))) / float(np.dot(w, per)))
        return float(np.dot(w[feed], _flip_probability(margin, sigma)) / float(np.dot(w, per)))
    est = estimate(np.ones(len(per)))
    if len(per) < 2 or est == 0.0:
        return est, est
    rng = np.random.default_rng(20261206)
    w = rng.multinomial(len(per), np.full(len(per), 1.0 / len(per)), size=draws).astype(np.float64)
    boot = np.array([estimate(x) for x in w if np.dot(x, per) > 0])
    boot = boot[np.isfinite(boot)]
    return est, (est + 1.645 * float(np.std(boot)) if len(boot) > 1 else est)


def output_sqnr(ref: list[np.ndarray], got: list[np.ndarray]) -> float:
    s = sum(float(np.sum(np.asarray(a, np.float64) ** 2)) for a in ref)
    e = sum(float(np.sum((np.asarray(a, np.float64) - np.asarray(b, np.float64)) ** 2)) for a, b in zip(ref, got))
    if not math.isfinite(e):         # inf or NaN in the candidate (binary16 overflow): no signal left
        return float("-inf")
    if e <= 0:
        return float("inf")
    if s <= 0:
        return float("-inf")
    return 10.0 * math.log10(s / e)


def load_user_metric(spec: str) -> Callable:
    """`module:function` -> the function (`fn(outputs, feeds) -> float`, higher is better)."""
    mod, _, fn = spec.partition(":")
    if not mod or not fn:
        raise DseError(f"--metric {spec!r}: expected module:function", hint="e.g. --metric mymetrics:accuracy")
    try:
        f = getattr(importlib.import_module(mod), fn)
    except (ImportError, AttributeError) as e:
        raise DseError(f"--metric {spec!r}: {e}", hint="the module must be importable (on PYTHONPATH)") from None
    if not callable(f):
        raise DseError(f"--metric {spec!r}: {fn} is not a function")
    return f


# -- the plan -------------------------------------------------------------------------------------

@dataclass
class PrecisionPlan:
    """The planner's result: the nodes kept float, what the plan scores, and how it was found."""
    keep_float: list[str]
    drop: float
    budget: float
    objective: str
    metric: dict
    holdout: int
    calib_feeds: int
    nodes: list[dict] = field(default_factory=list)      # per node: name, op, precision, reason, sensitivity
    tried: list[dict] = field(default_factory=list)      # every evaluated plan: kept float, drop, cost
    search: dict = field(default_factory=dict)           # evaluations, seconds
    cost: dict = field(default_factory=dict)             # weight bytes, multiply-adds in int8 / float
    model_sha256: str = ""
    int4: list[str] = field(default_factory=list)        # int8 nodes whose weights are int4 (W4A8)
    fp16: list[str] = field(default_factory=list)        # float nodes whose weights are fp16
    memory_budget: int | None = None                     # bytes: the .dse file + its arena, at most
    memory: dict = field(default_factory=dict)           # the chosen plan's bytes, arena_bytes, total
    a16w8: list[str] = field(default_factory=list)       # weighted nodes with int16 activations (A16W8)
    fp16_arith: list[str] = field(default_factory=list)  # float nodes computed in binary16 (§16)

    @property
    def meets_accuracy(self) -> bool:
        return meets_budget(self.drop, self.budget)

    @property
    def meets_memory(self) -> bool:
        return self.memory_budget is None or self.memory.get("total", 0) <= self.memory_budget

    @property
    def meets(self) -> bool:
        return self.meets_accuracy and self.meets_memory

    def to_json(self) -> str:
        return json.dumps({"format": PLAN_FORMAT, "version": PLAN_VERSION, "model_sha256": self.model_sha256,
                           "budget": {"max_drop": self.budget, "objective": self.objective, "metric": self.metric,
                                      **({"memory_bytes": self.memory_budget} if self.memory_budget else {})},
                           "calibration": {"feeds": self.calib_feeds, "holdout": self.holdout},
                           "result": {"drop": self.drop, "meets": self.meets, "cost": self.cost,
                                      **({"memory": self.memory} if self.memory else {})},
                           "keep_float": self.keep_float, "int4_weights": self.int4, "fp16_weights": self.fp16,
                           **({"a16w8_nodes": self.a16w8} if self.a16w8 else {}),
                           **({"fp16_arith_nodes": self.fp16_arith} if self.fp16_arith else {}),
                           "nodes": self.nodes,
                           "search": self.search,
                           "tried": self.tried}, indent=1, sort_keys=False) + "\n"

    @classmethod
    def from_json(cls, text: str, where: str = "plan") -> "PrecisionPlan":
        try:
            d = json.loads(text)
        except ValueError as e:
            raise DseError(f"{where}: not a JSON precision plan ({e})") from None
        if not isinstance(d, dict) or d.get("format") != PLAN_FORMAT:
            raise DseError(f"{where}: not a dsedge precision plan", hint="write one with `dsedge plan`")
        if d.get("version") != PLAN_VERSION:
            raise DseError(f"{where}: plan version {d.get('version')} (this dsedge reads {PLAN_VERSION})")
        b, c, r = d["budget"], d["calibration"], d["result"]
        return cls(list(d["keep_float"]), float(r["drop"]), float(b["max_drop"]), b["objective"], b["metric"],
                   int(c["holdout"]), int(c["feeds"]), d.get("nodes", []), d.get("tried", []), d.get("search", {}),
                   r.get("cost", {}), d.get("model_sha256", ""), list(d.get("int4_weights", [])),
                   list(d.get("fp16_weights", [])), b.get("memory_bytes"), r.get("memory", {}),
                   list(d.get("a16w8_nodes", [])), list(d.get("fp16_arith_nodes", [])))


BUDGET_TOLERANCE = 1e-9


def meets_budget(drop: float, budget: float) -> bool:
    """`drop <= budget`: the one test of a budget (the search's, PrecisionPlan.meets, the CLI's
    exit code, benchmarks/precision_plan.py). A drop is mostly a count over feeds, so 3 changed
    answers of 300 are 1 - 297/300 = 0.010000000000000009 in floating point: within a tolerance
    far below one answer in any number of feeds (1e-9), that is 1 % and meets a 1 % budget."""
    return drop <= budget + BUDGET_TOLERANCE


def split_feeds(feeds: list, holdout: int) -> tuple[list, list]:
    """(calibration feeds, held-back feeds): the last `holdout` feeds are held back."""
    if holdout < 1 or len(feeds) - holdout < 1:
        raise DseError(f"planning needs at least 2 feeds (calibration + held back), got {len(feeds)}",
                       hint="give more calibration feeds")
    return feeds[:-holdout], feeds[-holdout:]


def default_holdout(n: int, budget: float | None = None) -> int:
    """Half the feeds, at least 1, leaving at least 1 to calibrate on; at most 100, or as many as
    let the budget count 3 changed answers (300 for 1 %): the budget is only as fine as the
    held-back feeds (at 1 %, one changed top-1 in 100 is the whole budget)."""
    cap = max(100, math.ceil(3.0 / budget - 1e-9)) if budget and budget > 0 else 100
    return max(1, min(cap, n // 2, n - 1))


def coarse_budget_note(plan: "PrecisionPlan") -> str | None:
    """A note when the budget is fewer than 3 changed answers on the held-back feeds (a counting
    metric: top-1 or decisions), so a single answer decides the plan."""
    counting = "user" in plan.metric or any(k in ("top1", "threshold") for k in plan.metric.get("outputs", {}).values())
    if plan.budget <= 0 or not counting:
        return None
    allowed = plan.budget * plan.holdout
    if allowed >= 3:
        return None
    want = math.ceil(3.0 / plan.budget - 1e-9)
    return (f"{100 * plan.budget:g} % of {plan.holdout} held-back feeds is {allowed:.3g} changed answers: a single "
            f"answer decides the plan; {2 * want} feeds or more (--holdout {want}) give a finer one")


def _node_costs(g: Graph, n) -> tuple[int, int]:
    """(weight elements, multiply-adds or elements) of a node: what int8 saves in size and time."""
    rule = kinds.rule_of(n)
    out = g.tensor_info(n.outputs[0]) if n.outputs and n.outputs[0] else None
    elems = int(np.prod(out.shape)) if out is not None and out.is_static else 0
    if rule is not None and kinds.kind(rule.kind).weight_bearing and len(n.inputs) > 1 and n.inputs[1] in g.consts:
        w = g.consts[n.inputs[1]]
        return int(w.size), elems * kinds.reduction_size(g, n)
    return 0, elems


def candidate_groups(g: Graph, cands: list[str]) -> dict[str, list[str]]:
    """Candidates that change precision together: a node without weights whose one activation
    input is the output of another such candidate, read by it alone (a pooling after an
    activation table), joins that candidate's group. A weight-bearing node is a group of its
    own, and so is the activation after it: keeping only the table float (the Conv then computes
    in int8 and dequantises its accumulator) is often the cheap fix. {first node: members}."""
    cset = set(cands)
    consumers = g.consumers()
    producer = {o: n for n in g.nodes for o in n.outputs if o}
    head: dict[str, str] = {}
    for n in g.nodes:
        if n.name not in cset:
            continue
        acts = [i for i in kinds.act_inputs(g, n) if i not in g.consts]
        p = producer.get(acts[0]) if len(acts) == 1 else None
        if not kinds.form_of(g, n).weight_bearing and p is not None and p.name in head \
                and not kinds.form_of(g, p).weight_bearing and len(consumers.get(acts[0], [])) == 1:
            head[n.name] = head[p.name]
        else:
            head[n.name] = n.name
    groups: dict[str, list[str]] = {}
    for name, h in head.items():
        groups.setdefault(h, []).append(name)
    return groups


class _RangeOverlay(Mapping):
    """The prepared ranges, read through (a lazily computed range is computed once for every
    evaluation), with the refinements one evaluation makes (quantize.refine_table_inputs) kept
    apart from the others."""

    def __init__(self, base):
        self._base, self._own = base, {}

    def __getitem__(self, name):
        return self._own[name] if name in self._own else self._base[name]

    def __setitem__(self, name, lo_hi):
        self._own[name] = (float(lo_hi[0]), float(lo_hi[1]))

    def __iter__(self):
        return iter(self._base)

    def __len__(self):
        return len(self._base)

    def __contains__(self, name):
        return name in self._own or name in self._base


class _Search:
    def __init__(self, prep: Prepared, cfg: QuantConfig, ref: list[dict], feeds: list[dict], metric: Metric,
                 run_plan: Callable, user_base: float | None, progress: Callable | None):
        self.prep, self.cfg, self.ref, self.feeds, self.metric = prep, cfg, ref, feeds, metric
        self.run_plan, self.user_base, self.progress = run_plan, user_base, progress
        self.cache: dict[frozenset, tuple[float, float]] = {}
        self.index: dict[frozenset, int] = {}    # a plan's first entry in `tried`
        self.info: dict[frozenset, dict] = {}    # a plan's measured figures, when run_plan gives them
        self.tried: list[dict] = []
        self.cost_of: Callable | None = None     # kept float -> {cost figures} (the curves of plans tried)
        self.t0 = time.perf_counter()
        self.margin_model = True
        self.f16: tuple = ()                     # the float nodes' weights: ("*",) fp16 for all of them
        self.more: Margins = Margins()           # the float model's margins on more feeds (softmax: log-ratios)

    def result(self, keep, int4=(), fp16=None, a16=(), f16a=()) -> object:
        fp16 = self.f16 if fp16 is None else fp16
        return finish(self.prep, plan_config(self.cfg, keep, int4, fp16, a16, f16a),
                      ranges=_RangeOverlay(self.prep.ranges))

    def key(self, keep, int4=(), fp16=None, a16=(), f16a=()) -> frozenset:
        fp16 = self.f16 if fp16 is None else fp16
        return frozenset(keep) | frozenset(("int4", c) for c in int4) | frozenset(("fp16", c) for c in fp16) | \
            frozenset(("a16w8", c) for c in a16) | frozenset(("fp16_arith", c) for c in f16a)

    def evaluate(self, keep, why: str, int4=(), fp16=None, a16=(), f16a=()) -> tuple[float, float]:
        """(drop, noise) of the plan that keeps `keep` float (and gives the nodes of `int4` int4
        weights, the float nodes of `fp16` fp16 weights — by default `self.f16`: ("*",) for every
        float node, or none —, the nodes of `a16` int16 activations, the float nodes of `f16a`
        fp16 arithmetic)."""
        fp16 = self.f16 if fp16 is None else fp16
        key = self.key(keep, int4, fp16, a16, f16a)
        if key not in self.cache:
            r = self.result(keep, int4, fp16, a16, f16a)
            got = self.run_plan(r, self.feeds)
            info: dict = {}
            if isinstance(got, tuple):           # (outputs, {bytes, arena_bytes, ms}) or (outputs, bytes)
                got, info = got
                info = dict(info) if isinstance(info, Mapping) else {"bytes": int(info)}
            if "bytes" in info and "arena_bytes" in info:   # + the float32 copies of fp16 weights
                info["memory"] = int(info["bytes"]) + int(info["arena_bytes"]) + int(info.get("widened_bytes", 0))
            self.info[key] = info
            noise = self.metric.noise(self.ref, got)
            extra: dict = {}
            if self.metric.user is not None:
                drop = self.user_base - float(self.metric.user(got, self.feeds))
            else:   # the changed answers, or more where the margin model expects more on new feeds
                seen = 1.0 - self.metric.quality(self.ref, got)
                # every plan by the strict margin model (Metric.expected_changes)
                expected, bound = self.metric.expected_changes(self.ref, got, self.more, strict=True) \
                    if self.margin_model else (0.0, 0.0)
                drop = max(seen, bound)
                extra = {"changed": round(seen, 6), "expected": round(expected, 6), "expected_upper": round(bound, 6)}
            self.cache[key] = (drop, noise)
            self.index[key] = len(self.tried)
            self.tried.append({"kept_float": len(set(keep)), "int4": len(set(int4)), "fp16": len(set(fp16)),
                               **({"a16w8": len(set(a16))} if a16 else {}),
                               **({"fp16_arith": len(set(f16a))} if f16a else {}),
                               "drop": round(drop, 6), **extra,
                               "why": why,
                               "sqnr_db": round(-10.0 * math.log10(noise), 2) if 0 < noise < float("inf") else None,
                               **{k: (round(v, 4) if isinstance(v, float) else v) for k, v in info.items()},
                               **(self.cost_of(keep, int4) if self.cost_of else {})})
            if self.progress:
                self.progress(len(self.tried), why, drop)
        return self.cache[key]


def plan_precision(graph: Graph, feeds, *, max_drop: float = 0.01, objective: str = "size", holdout: int | None = None,
                   metric: str | None = None, cfg: QuantConfig | None = None, run_plan: Callable | None = None,
                   relower: int = 8, progress: Callable | None = None, copy_graph: bool = True,
                   int4: bool = False, memory_budget: int | None = None,
                   node_times: Callable | None = None, a16w8: bool = False,
                   fp16_arith: bool = False) -> tuple[PrecisionPlan, object]:
    """Plan the precision of each node of `graph` (see the module docstring) and return
    (PrecisionPlan, the QuantResult of the chosen plan). `feeds`: a sequence of feed dicts, the
    last `holdout` of which are held back for scoring; `run_plan(result, feeds) -> [{output: array}]`
    runs a candidate (default: its graph in the numpy interpreter; it may return (outputs,
    {"bytes": the candidate artifact's bytes, "arena_bytes": its arena, "ms": its latency}), which
    the size objective and `memory_budget` then use). `node_times(result, precision) -> {node: ms}`
    (objective latency): each node's time in a plan whose candidates are all "int8" or all "float"
    (a profile of the runtime's kernels, on the host or imported from a device); without it the
    latency objective counts multiply-adds."""
    _check_budget(max_drop, objective)
    feeds = list(feeds)
    holdout = default_holdout(len(feeds), max_drop) if holdout is None else holdout
    calib, held = split_feeds(feeds, holdout)
    prep = prepare(graph, calib, relaxed(cfg), copy=copy_graph)
    return plan_prepared(prep, held, margin_feeds=calib, max_drop=max_drop, objective=objective, metric=metric, cfg=cfg,
                         run_plan=run_plan, relower=relower, progress=progress, int4=int4,
                         memory_budget=memory_budget, node_times=node_times, a16w8=a16w8, fp16_arith=fp16_arith)


def _join_margins(a: "Margins", b: "Margins") -> "Margins":
    """The margins of two sets of feeds (float margins and answers per feed; no extras)."""
    if not a:
        return b
    return Margins({o: (np.concatenate([a[o][0], v[0]]), np.concatenate([a[o][1], v[1]]), []) for o, v in b.items()})


def _confirm(s: "_Search", conf: "_Search", keep: tuple, order: list, members: Callable, groups: dict,
             max_drop: float) -> tuple:
    """A metric that counts answers (top-1, decisions, a user metric), and the search picks the
    cheapest of many plans by that count on the same held-back feeds: the plan it picks is the
    one whose answers there happened to hold (ddddocr's OCR model: 1 string in 200 changed on the
    held-back feeds, 7 in 200 on new ones). The chosen plan is scored again on the calibration
    feeds (`conf`: a second sample the search did not choose on, scored by its count of changed
    answers or the user metric; the candidates' ranges come from them, which flatters the plan,
    not hurts it), and where it misses there,
    the next groups in the search's order are raised too until it meets on both sets
    (bisection; the evaluations on the calibration feeds are listed among the plans tried with
    "feeds": "calibration")."""
    def ok(k, why) -> bool:
        return meets_budget(s.evaluate(k, why)[0], max_drop) \
            and meets_budget(conf.evaluate(k, why + " (calibration feeds)")[0], max_drop)
    new = tuple(keep)
    if not ok(new, "the search's plan"):
        kept = set(keep)
        extra = [h for h in order if not set(groups[h]) <= kept]
        lo, hi = 1, len(extra)           # the fewest more groups raised that meet on both sets
        while lo < hi:
            mid = (lo + hi) // 2
            if ok(tuple(sorted(kept | set(members(extra[:mid])))), f"raise {mid} more groups"):
                hi = mid
            else:
                lo = mid + 1
        new = tuple(sorted(kept | set(members(extra[:lo]))))
        ok(new, "the plan confirmed on both feed sets")   # (cached where the bisection scored it)
    return new


def _int4_prefix(s: "_Search", conf: "_Search | None", keep: tuple, order: list, max_drop: float) -> int:
    """The int4 step's choice: the length of the longest prefix of `order` (int8 weight nodes,
    the least int4 noise per weight first) whose int4 weights meet the budget on the held-back
    feeds, by bisection, then confirmed on the calibration feeds (`conf`: the same plans scored
    there), and where it misses there, the longest shorter prefix that meets on both sets (again
    by bisection).

    Why the second set: the prefix is the longest of up to log2 N + 1 plans judged on the same
    held-back feeds, and a count on 300 feeds is coarse (a 1 % budget is 3 answers), so a
    prefix that met there by luck is the one taken (cls with int4 weights: 1 changed answer of
    its 300 held-back feeds, 7 of its 300 calibration feeds, 20 of 1,200 new ones; the held-back
    feeds had a third of the near-tied answers the new ones had). The calibration feeds calibrated
    the model (ranges, bias correction, weight rounding), which can flatter a plan there, yet on
    cls they changed more answers than the held-back feeds at every prefix up to 43 of its 54
    (2-18 against 0-16; at 49 and 54 about as many). Cost: one
    evaluation on the calibration feeds when the prefix holds, about 2 log2(prefix) when not."""
    def meets(n: int, why: str) -> bool:
        return meets_budget(s.evaluate(keep, why, tuple(order[:n]))[0], max_drop)

    def both(n: int, why: str) -> bool:
        return meets(n, why) and (conf is None or meets_budget(
            conf.evaluate(keep, why + " (calibration feeds)", tuple(order[:n]))[0], max_drop))
    def longest(ok, hi: int) -> int:    # the longest prefix of order, at most hi long, with ok(prefix)
        lo = 0
        while lo < hi:
            mid = (lo + hi + 1) // 2
            if ok(mid, f"int4 weights for the {mid} least sensitive"):
                lo = mid
            else:
                hi = mid - 1
        return lo
    lo = longest(meets, len(order))
    if conf is not None and lo and not both(lo, f"int4 weights for the {lo} least sensitive"):
        lo = longest(both, lo - 1)       # missed on the calibration feeds: the longest that meets on both
    return lo


def plan_config(base: QuantConfig, keep, int4=(), fp16=(), a16=(), f16a=()) -> QuantConfig:
    """The config of one plan: `keep` float, the nodes of `int4` with int4 weights (W4A8), the
    float nodes of `fp16` with fp16 weights, the nodes of `a16` with int16 activations (A16W8),
    the float nodes of `f16a` with fp16 arithmetic (§16)."""
    return replace(base, keep_float=tuple(sorted(keep)), node_weight_bits=tuple((c, 4) for c in sorted(int4)),
                   fp16_nodes=tuple(sorted(fp16)), a16w8_nodes=tuple(sorted(a16)),
                   fp16_arith_nodes=tuple(sorted(f16a)))


def relaxed(cfg: QuantConfig | None) -> QuantConfig:
    """The config the planner prepares and finishes candidates with: int8, no local SQNR rule."""
    return replace(cfg or QuantConfig(), precision="int8", **RELAXED)


def finish_plan(prep: Prepared, cfg: QuantConfig) -> object:
    """quantize.finish of one plan without writing the table-input ranges it refines into the
    prepared ranges, so that many plans can be finished from one Prepared."""
    return finish(prep, cfg, ranges=_RangeOverlay(prep.ranges))


def _check_budget(max_drop: float, objective: str) -> None:
    if objective not in OBJECTIVES:
        raise DseError(f"unknown objective {objective!r}", hint="use size or latency")
    if not 0.0 <= max_drop < 1.0:
        raise DseError(f"--max-drop {max_drop}: expected a fraction in [0, 1), e.g. 0.01 for 1 %")


def plan_prepared(prep: Prepared, held: list, *, max_drop: float = 0.01, objective: str = "size",
                  metric: str | None = None, cfg: QuantConfig | None = None, run_plan: Callable | None = None,
                  relower: int = 8, progress: Callable | None = None,
                  always_sensitivity: bool = False, int4: bool = False, memory_budget: int | None = None,
                  node_times: Callable | None = None, fp16: bool = True,
                  margin_model: bool = True, margin_feeds: list = (), confirm: bool = True,
                  a16w8: bool = False, fp16_arith: bool = False) -> tuple[PrecisionPlan, object]:
    """plan_precision on a model already prepared (calibrated with `relaxed(cfg)` on the feeds
    other than `held`, the held-back feeds that score the candidates). `always_sensitivity`:
    measure every group's sensitivity and score the local rules' plan even when the all-int8
    plan meets the budget (`dsedge debug` ranks the layers either way). `margin_feeds` (the
    calibration feeds): their float margins join the held-back ones in the margin model, and
    with `confirm` the chosen plan (all int8 too, for a counting metric) is scored again on them
    and raised where it misses there (`_confirm`). `int4` (objective size):
    then give int4 weights (W4A8) to the int8 weight-bearing nodes the budget allows, the least
    noise per byte saved first (each one alone, then the longest prefix that meets, by bisection;
    with `confirm` and `margin_feeds`, confirmed on those feeds and shortened where it misses
    there: `_int4_prefix`).
    `memory_budget` (bytes of the .dse plus its arena; needs a `run_plan` that reports them): the
    plan meets its budget only within it. Keeping a node float costs accuracy nothing and memory
    something, so the search's plan (the fewest float nodes the accuracy budget allows) is also
    the one that needs the least memory; the memory budget then decides between it and the local
    rules' plan, and says when no plan fits (with --int4, int4 weights make room). `a16w8`: after
    the search, the kept-float weighted nodes that A16W8 allows get int16 activations with int8
    weights instead (one evaluation; accepted when that plan meets the budget). `fp16_arith`:
    at the end, the kept-float Conv/Gemm/MatMul nodes that allow it compute in binary16 (fp16
    weights and arithmetic, docs/quant-arith.md §16; one evaluation with the binary16 reference,
    kept when it meets the budget and the memory budget)."""
    _check_budget(max_drop, objective)
    held = list(held)
    base = relaxed(cfg)
    run_plan = run_plan or (lambda r, fs: [interp_run(r.graph, f) for f in fs])
    prep.table_ranges = {} if prep.table_ranges is None else prep.table_ranges
    ref = [interp_run(prep.fg, f) for f in held]
    m = Metric.for_outputs(ref, metric)
    user_base = float(m.user(ref, held)) if m.user is not None else None
    s = _Search(prep, base, ref, held, m, run_plan, user_base, progress)
    s.margin_model = margin_model and m.user is None

    first = s.result(())
    node = {n.name: n for n in prep.fg.nodes}
    cands = [p.name for p in first.plan if p.precision.startswith("int8")
             and not kinds.form_of(prep.fg, node[p.name]).shares_qparams]
    cal_ref: list = []                   # the float model's outputs on the calibration feeds (user metrics)
    counted = [o for o, k in m.kinds.items() if k in ("top1", "threshold")] if m.user is None else []
    counting = s.margin_model and bool(counted)
    # the chosen plans are confirmed on the calibration feeds (counting and user metrics)
    confirming = confirm and bool(margin_feeds) and (bool(counted) or m.user is not None)
    cal_counted: list = []               # ... the float model's counting outputs there (confirmation)
    if margin_feeds and cands and (counting or confirming):
        everything = s.result(tuple(cands))
        feeds_c = list(margin_feeds)
        chunk = len(feeds_c) if m.user is not None else 100   # margins only: 100 feeds of outputs at a time
        for i in range(0, len(feeds_c), chunk):
            got = run_plan(everything, feeds_c[i:i + chunk])
            got = list(got[0] if isinstance(got, tuple) else got)
            if m.user is not None:
                cal_ref += got
            else:   # the float model's margins on the calibration feeds too (they do not depend on the plan)
                s.more = _join_margins(s.more, m.margins(got, log=True))
                if confirming:   # the answers, or the outputs where the int4 step's margin model needs them
                    full = int4 and objective == "size"
                    cal_counted += [{o: y[o] if full else _Answers(m.kinds[o], y[o]) for o in counted} for y in got]
    costs = {c: _node_costs(prep.fg, node[c]) for c in cands}
    groups = candidate_groups(prep.fg, cands)

    # what keeping a node float costs under the objective: weight elements (size), or the time
    # it adds (latency: measured per node in an all-int8 and an all-float plan, else multiply-adds)
    latency_from = "multiply-adds"
    t_int8: dict[str, float] = {}
    t_float: dict[str, float] = {}
    if objective == "latency" and node_times is not None and cands:
        t_int8 = dict(node_times(first, "int8"))
        t_float = dict(node_times(s.result(tuple(cands)), "float"))
        latency_from = getattr(node_times, "source", "profile")
    timed = bool(t_int8) and bool(t_float)

    def price(c) -> float:
        if objective == "size":
            return float(costs[c][0])
        return t_float.get(c, 0.0) - t_int8.get(c, 0.0) if timed else float(costs[c][1])
    eps = 1e-6 if timed else 1.0
    unit = {h: sum(price(c) for c in m_) for h, m_ in groups.items()}

    def cost_of(k, i4=()) -> dict:
        d = {"weight_elements_float": sum(costs[c][0] for c in k if c in costs),
             "weight_elements_int4": sum(costs[c][0] for c in i4 if c in costs),
             "macs_float": sum(costs[c][1] for c in k if c in costs)}
        if timed:   # the int8 plan's node times, with the float times of the nodes kept float
            d["est_ms"] = round(sum(t_int8.values()) + sum(price(c) for c in k if c in costs), 4)
        return d
    s.cost_of = cost_of
    def mem_ok(k, i4=(), f16=None, a16=(), f16a=()) -> bool:
        return memory_budget is None or s.info[s.key(k, i4, f16, a16, f16a)].get("memory", 0) <= memory_budget

    def ok(keep, why, *a, **k) -> bool:   # the plan meets the accuracy budget on the held-back feeds
        return meets_budget(s.evaluate(keep, why, *a, **k)[0], max_drop)

    def members(heads) -> tuple:
        return tuple(c for h in heads for c in groups[h])

    # the size objective stores float nodes' weights as fp16: the search judges its candidates
    # that way, so a plan at the edge of the budget is not pushed over it by fp16 weights at the end
    if objective == "size" and fp16 and cands:
        s.f16 = ("*",)
    drop0, noise0 = s.evaluate((), "all int8")
    if s.f16 and not meets_budget(drop0, max_drop):
        if not ok(tuple(cands), "all candidates float, fp16 weights") \
                and ok(tuple(cands), "all candidates float, float32 weights", fp16=()):
            s.f16 = ()                   # fp16 weights alone cost more than the budget: float32
            drop0, noise0 = s.evaluate((), "all int8")
    # the same plans on the calibration feeds: a second sample that the search does not choose on,
    # scored by the count of changed answers there (_confirm: the int8 plans); the int4 step's
    # prefixes also by the strict margin model on those feeds' own margins (_int4_prefix, session 15).
    # Not the int8 plans: the noise pooled over the calibration feeds is that of the outliers
    # calibration is given to see (dsedge debug's test: one feed with a pixel at 2000, 0 answers
    # changed, a bound of 8 %), and on cls it bounded the int8 plans at 0.91-0.97 % where 0.6-0.7 %
    # of 1,500 new answers changed; the held-back feeds' bound already takes their margins
    conf = conf4 = None
    if confirming and cands:
        if m.user is not None and cal_ref:
            conf = conf4 = _Search(prep, base, cal_ref, list(margin_feeds), m, run_plan,
                                   float(m.user(cal_ref, list(margin_feeds))), progress)
            conf.margin_model = False
        elif cal_counted:
            mc = Metric({o: m.kinds[o] for o in counted}, softmax=m.softmax & frozenset(counted))
            conf = _Search(prep, base, cal_counted, list(margin_feeds), mc, run_plan, None, progress)
            conf.margin_model = False
            if int4 and objective == "size":
                conf4 = _Search(prep, base, cal_counted, list(margin_feeds), mc, run_plan, None, progress)
                conf4.margin_model = s.margin_model
    for c in {id(x): x for x in (conf, conf4) if x is not None}.values():
        c.f16, c.cost_of = s.f16, s.cost_of
    meets0 = meets_budget(drop0, max_drop)
    if meets0 and conf is not None and m.user is None:    # a counting metric: all int8 confirmed too
        meets0 = meets_budget(conf.evaluate((), "all int8 (calibration feeds)")[0], max_drop)
    if memory_budget is not None and "memory" not in s.info[s.key(())]:
        raise DseError("a memory budget needs the candidates' .dse and arena sizes",
                       hint="plan with the C runtime (the default), not the numpy interpreter")
    sens: dict[str, dict] = {}
    keep: tuple = ()
    # latency with measured times: a group that runs faster in float than in int8 (e.g. an int8
    # attention MatMul against an FMA float one) stays float whatever the budget: both gain
    free = [h for h in groups if timed and unit[h] < 0]
    host_timed = objective == "latency" and not getattr(node_times, "device", False)
    paired: dict = {}
    checks: list = []

    def time_ratio(a, b) -> float | None:
        """Plan a's time over plan b's on this host, the two timed alternately in the same moments
        (node_times.compare), else from the medians of their runs on the held-back feeds; None
        when neither was measured. Recorded in the plan (search["latency_checks"])."""
        ka, kb = s.key(a), s.key(b)
        if (ka, kb) not in paired:
            r = None
            if hasattr(node_times, "compare"):
                r = float(node_times.compare(s.result(a), s.result(b)))
            else:
                ia, ib = s.info.get(ka, {}), s.info.get(kb, {})
                if "ms" in ia and "ms" in ib:
                    r = float(ia["ms"]) / max(float(ib["ms"]), 1e-12)
            paired[(ka, kb)] = r
            checks.append({"kept_float": [len(set(a)), len(set(b))], "time_ratio": None if r is None else round(r, 4)})
        return paired[(ka, kb)]
    if free and host_timed:
        # host times: per-node medians of microsecond nodes are noisy and leave out the conversions
        # keeping a node float adds; keep the "faster in float" nodes only if the plan that keeps
        # them float runs at least 2 % faster here as a whole, timed against all int8 alternately
        s.evaluate(members(free), "float where faster")
        r = time_ratio(members(free), ())
        if r is None or r > 0.98:
            free = []
    search = (not meets0 or bool(free)) and bool(groups)
    heads = list(groups)
    if search or (always_sensitivity and groups):
        for h in heads:   # raising alone: the noise it takes away from the all-int8 plan
            d, nz = s.evaluate(members([h]), f"raise {h}")
            sens[h] = {"raise_gain": noise0 - nz, "raise_drop": d}
        for h in heads:   # lowering alone: the noise it adds to the float model
            d, nz = s.evaluate(members([x for x in heads if x != h]), f"lower {h}")
            sens[h].update(lower_noise=nz, lower_drop=d)
        for h in heads:
            sens[h]["group"] = groups[h]
    local: tuple = ()
    if cands:   # the local rules' plan (quantize.make_plan, the configured thresholds)
        rules, _ = make_plan(prep.fg, cfg or QuantConfig(), prep.ranges, prep.measured)
        local = tuple(c for c in cands if not rules.get(c, "fp32").startswith("int8"))

    def total(k) -> float:
        return sum(price(c) for c in k)

    def cheaper(a, b) -> bool:
        """Is the plan keeping `a` float cheaper than the one keeping `b` under the objective? Measured
        where both were run in the C runtime: the .dse bytes (size: an int8 elementwise node's table
        and parameters can outweigh its float form, which has no weights), the host time (latency
        planned from host times: at least 2 % faster, the two timed alternately, time_ratio);
        else the estimated costs (a device's per-node profile)."""
        ia, ib = s.info.get(s.key(a), {}), s.info.get(s.key(b), {})
        if objective == "size" and "bytes" in ia and "bytes" in ib:
            return int(ia["bytes"]) < int(ib["bytes"])
        if host_timed:   # (a device's profile is not this host's time: its estimate below)
            r = time_ratio(a, b)
            if r is not None:
                return r < 0.98
        return total(a) < total(b)
    rules_pick: tuple = ()
    if not search and local:
        # the all-int8 plan meets: the local rules' plan (the default int8 artifact) is taken instead
        # when it meets too and is cheaper as measured, so the plan is never larger (or, for latency,
        # slower) than the default int8 artifact that already meets (confirmed like the all-int8 plan)
        if ok(local, "the local rules' plan") and mem_ok(local) and cheaper(local, ()) \
                and (conf is None or m.user is not None
                     or meets_budget(conf.evaluate(local, "the local rules' plan (calibration feeds)")[0], max_drop)):
            keep = rules_pick = local
    if search:
        score = {h: max(sens[h]["raise_gain"], sens[h]["lower_noise"]) for h in heads}
        rest = sorted((h for h in heads if h not in free), key=lambda h: (-score[h] / (unit[h] + eps), h))
        order = sorted(free) + rest
        lo, hi = len(free), len(order)   # the fewest raised (a prefix of order) that meets the budget
        if not ok(members(order), "all candidates float"):
            lo = hi = len(order)         # not even keeping every candidate float meets it
        while lo < hi:
            mid = (lo + hi) // 2
            if ok(members(order[:mid]), f"raise the {mid} most sensitive groups"):
                hi = mid
            else:
                lo = mid + 1
        raised = order[:lo]
        for h in sorted((h for h in raised if h not in free), key=lambda h: (score[h], h))[:relower]:
            trial = [x for x in raised if x != h]      # lower again what the budget allows
            if ok(members(trial), f"lower {h} again"):
                raised = trial
        keep = members(raised)
        # the local rules' plan is a candidate too: when it meets the budget at a lower cost,
        # the plan starts from it and lowers what it can of its float nodes, so it is never
        # worse than the default

        def fits(k) -> bool:
            return ok(k, "the local rules' plan" if k == local else "the search's plan") \
                and mem_ok(k)
        best_meets = fits(keep)
        if local != keep and fits(local) and (not best_meets or cheaper(local, keep)):
            keep = local
            for c in sorted(keep, key=lambda c: (-price(c), c))[:relower]:   # the costliest first
                trial = tuple(x for x in keep if x != c)
                if not (timed and price(c) < 0) and ok(trial, f"lower {c} from the local rules' plan"):
                    keep = trial
        if conf is not None:
            keep = _confirm(s, conf, keep, order, members, groups, max_drop)
    four: tuple = ()
    if int4 and objective == "size":
        w4 = kinds.KINDS["w4a8"]
        able = [c for c in cands if c not in keep and kinds.kind(kinds.rule_of(node[c]).kind).weight_bearing
                and w4.why_not(prep.fg, node[c], base.weight_group) is None]
        _, noise_k = s.evaluate(keep, "before int4 weights")
        alone = {c: s.evaluate(keep, f"int4 weights for {c}", (c,))[1] - noise_k for c in able}
        order = sorted(able, key=lambda c: (alone[c] / (costs[c][0] + 1.0), c))
        four = tuple(order[:_int4_prefix(s, conf4 if able else None, keep, order, max_drop)])
        for c in able:
            sens.setdefault(c, {})["int4_noise"] = alone[c]
    a16: tuple = ()
    if a16w8 and keep:    # the kept-float weighted nodes with int16 activations instead, in one evaluation
        k16 = kinds.KINDS["a16w8"]
        able16 = tuple(c for c in keep if kinds.form_of(prep.fg, node[c]).weight_bearing
                       and k16.why_not(prep.fg, node[c]) is None)
        rest = tuple(c for c in keep if c not in able16)
        if able16 and ok(rest, "A16W8 for the kept-float weighted nodes", four, None, able16) \
                and mem_ok(rest, four, None, able16):
            keep, a16 = rest, able16
    half: tuple = ()
    if objective == "size" and fp16:   # fp16 weights for every float node, when the budget allows
        names = tuple(p.name for p in s.result(keep, four, ("*",), a16).plan if p.precision == "fp16")
        if names and ok(keep, "fp16 weights for the float nodes", four, names, a16) \
                and mem_ok(keep, four, names, a16):     # fp16 files are smaller; the loader's float32 copy is not
            half = names
    f16a: tuple = ()
    if fp16_arith and keep:   # the kept-float nodes computed in binary16, in one evaluation
        able = tuple(c for c in keep if fp16_mod.why_not(prep.fg, node[c]) is None)
        if able and ok(keep, "fp16 arithmetic for the kept-float nodes", four, half, a16, able) \
                and mem_ok(keep, four, half, a16, able):
            f16a = able
    for c in {id(x): x for x in (conf, conf4) if x is not None}.values():   # the plans scored on the
        s.tried.extend(dict(t, feeds="calibration") for t in c.tried)        # calibration feeds, last
    s.f16 = ()                           # from here on, the fp16 nodes are named (half)
    drop, _ = s.evaluate(keep, "chosen", four, half, a16, f16a)
    marks = {"chosen_index": s.index[s.key(keep, four, half, a16, f16a)]}
    if always_sensitivity:          # where the local rules' plan is among the plans tried
        s.evaluate(local, "the local rules' plan")
        marks["local_rules_index"] = s.index[s.key(local)]
    result = s.result(keep, four, half, a16, f16a)
    _plan_reasons(result.plan, keep, four, half, a16, f16a, {c for c in keep if timed and price(c) < 0},
                  rules=rules_pick, objective=objective)
    nodes = []
    for p in result.plan:
        d = p.as_dict()
        if p.name in sens:
            d["sensitivity"] = {k: (round(v, 9) if isinstance(v, float) else v) for k, v in sens[p.name].items()}
        if timed and p.name in t_int8:
            d["ms"] = {"int8": round(t_int8[p.name], 5), "float": round(t_float.get(p.name, 0.0), 5)}
        nodes.append(d)
    kept = set(keep)
    cost = {"weight_elements_int8": sum(costs[c][0] for c in cands if c not in kept and c not in four),
            "weight_elements_int4": sum(costs[c][0] for c in four),
            "weight_elements_float": sum(costs[c][0] for c in cands if c in kept),
            "macs_int8": sum(costs[c][1] for c in cands if c not in kept),
            "macs_float": sum(costs[c][1] for c in cands if c in kept)}
    if objective == "latency":
        cost["latency_from"] = latency_from
        if timed:
            cost["est_ms"] = cost_of(keep)["est_ms"]
    if a16:
        cost["a16w8_nodes"] = len(a16)
    if f16a:
        cost["fp16_arith_nodes"] = len(f16a)
    chosen = s.info[s.key(keep, four, half, a16, f16a)]
    memory = {k: chosen[k] for k in ("bytes", "arena_bytes", "widened_bytes") if k in chosen}
    if "memory" in chosen:
        memory["total"] = chosen["memory"]
    if "ms" in chosen:
        cost["host_ms"] = round(chosen["ms"], 4)
    plan = PrecisionPlan(sorted(keep), drop, max_drop, objective, m.describe(), len(held), prep.calib.n_feeds, nodes,
                         s.tried, {"evaluations": len(s.tried), "candidates": len(cands), "groups": len(groups),
                                   "seconds": round(time.perf_counter() - s.t0, 2),
                                   "drop_from": "the larger of the changed answers and the 95 % upper bound of the "
                                                "strict margin model's expected changes" if s.margin_model else "the metric",
                                   "margin_model": "strict" if s.margin_model else "none",
                                   "confirmed_on": "calibration feeds" if conf is not None else "none",
                                   **({"latency_checks": checks} if checks else {}),
                                   **marks}, cost,
                         int4=sorted(four), fp16=sorted(half), memory_budget=memory_budget, memory=memory,
                         a16w8=sorted(a16), fp16_arith=sorted(f16a))
    return plan, result


def quantize_with_plan(graph: Graph, feeds, plan: PrecisionPlan, *, cfg: QuantConfig | None = None,
                       copy_graph: bool = True):
    """Reproduce a plan's quantised model: calibrate on the same feeds as the planner (all but
    the last `plan.holdout`), relaxed rules, the plan's nodes kept float."""
    calib, _ = split_feeds(list(feeds), plan.holdout)
    base = relaxed(cfg)
    prep = prepare(graph, calib, base, copy=copy_graph)
    names = {n.name for n in prep.fg.nodes}
    missing = [k for k in [*plan.keep_float, *plan.int4, *plan.fp16, *plan.a16w8, *plan.fp16_arith] if k not in names]
    if missing:
        raise DseError(f"the plan names nodes this model does not have: {', '.join(missing[:5])}",
                       hint="the plan was made for another model; run `dsedge plan` on this one")
    result = finish(prep, plan_config(base, plan.keep_float, plan.int4, plan.fp16, plan.a16w8, plan.fp16_arith))
    _plan_reasons(result.plan, plan.keep_float, plan.int4, plan.fp16, plan.a16w8, plan.fp16_arith)
    said = {d.get("name"): d.get("reason") for d in plan.nodes if isinstance(d, dict)}
    for p in result.plan:   # the planner's own reason where it recorded one (measured: faster, smaller)
        if p.name in plan.keep_float and said.get(p.name) and said[p.name].startswith("kept float by the precision plan"):
            p.reason = said[p.name]
    return result


FP16_ARITH_JUDGED = ("fp16 arithmetic (accuracy judged with binary16 arithmetic: what an ARMv8.2-A FP16 device "
                     "computes; other targets widen to float32 by default, at least as close to the float model)")


def _plan_reasons(plan: list, keep, four, half, a16, f16a, fast=(), rules=(), objective: str = "size") -> None:
    """The per-node reasons of a planned model (`fast`: the nodes kept float because they ran
    faster in float than in int8; `rules`: the nodes kept float because the local rules' plan met
    the budget and was cheaper than all int8)."""
    keep, four, half, a16, f16a, rules = set(keep), set(four), set(half), set(a16), set(f16a), set(rules)
    for p in plan:
        if p.name in a16:
            p.reason = "int16 activations (A16W8) by the precision plan (end-to-end budget)"
        elif p.name in keep:
            p.reason = "kept float by the precision plan (" + \
                ("faster in float than in int8, measured)" if p.name in fast else
                 "the local rules' plan: within the budget and " + ("smaller" if objective == "size" else "faster")
                 + " than all int8, measured)" if p.name in rules else "end-to-end budget)")
            if p.name in half or p.name in f16a:
                p.reason += "; fp16 weights"
            if p.name in f16a:
                p.reason += "; " + FP16_ARITH_JUDGED
        elif p.name in four:
            p.reason = "int4 weights by the precision plan (end-to-end budget)"
