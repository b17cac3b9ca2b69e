"""`dsedge debug`: which layer hurts accuracy, and what fixes it.

One calibration (quant/quantize.prepare) serves everything below: on every feed without
sensitivity (the ranges of `dsedge quantize`), else on the feeds not held back for it (those of
`dsedge plan`), and with `--plan` on the plan's own split.

 1. The plan shown: the default int8 plan (the quantiser's local rules, as `dsedge quantize`)
    or a precision plan given as a lockfile (`--plan`, as `dsedge quantize --plan`), finished
    from the prepared model.
 2. Per layer, on the first calibration feeds (QuantConfig.eval_feeds, 8): the float model and
    the plan's quantised model run side by side in the numpy reference (int8 nodes through the
    integer reference = what the C runtime computes); every node's output in the quantised
    model is compared with the float model's (SQNR, the error accumulated up to that node) and
    with the worst of its inputs (`loss_db`: how much this node itself adds). Beside it: the
    int8 range of the output (or the observed one for a float output), how far an outlier
    stretches it (min..max against the 99.99 % range of the calibration histogram), for a
    weighted node the spread of its input's channels (one int8 scale per activation tensor
    leaves a channel 100x smaller than the widest a few steps) and the SQNR of its int8
    per-channel weights, and the quantiser's own measurement of the node's int8 form alone.
 3. Sensitivity (unless turned off): the precision planner (quant/precision.plan_prepared) on
    the feeds held back from calibration (as `dsedge plan`: half of them, at most 100) with
    `always_sensitivity`: for every candidate group, the end-to-end output noise it removes
    when it alone goes back to float from the all-int8 plan and the noise and accuracy drop it
    adds when it alone is int8 (2 evaluations per group), then the planner's search for the
    budget (`max_drop`). Every plan evaluated is a point of the accuracy/size and
    accuracy/latency curves; the planner's choice is the suggested plan.
 4. A suggested fix per layer (`_suggest`): with sensitivity, a layer hurts when the plan the
    planner suggests for the budget keeps it float; without, when its output is poor and most
    of that noise is its own. The numbers of step 2 then name the cause and the fix (`_cause`:
    channels far apart in range or an outlier in the tensor it quantises, weights that int8
    cannot hold even per channel). The layers are sorted so that the one that hurts most comes
    first: by sensitivity (the planner's score: the larger of the noise removed when float
    alone and the noise added when int8 alone), else by the noise it adds to its own output.
 5. The arena of the plan's .dse (export/planner.py): one buffer per row, offset and lifetime.

The result is a plain dict (`--json`); report.py formats the table and report_html.py the
self-contained HTML page.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, replace

import numpy as np

from .errors import DseError
from .export import export
from .interp import run as interp_run
from .ir import Graph
from .quant import kinds
from .quant.arith import quantize_weight_per_channel
from .quant.precision import (PrecisionPlan, default_holdout, finish_plan, plan_prepared, relaxed,
                              split_feeds)
from .quant.quantize import QuantConfig, prepare
from .util import progress as progress_bar

OUTLIER_RATIO = 8.0       # min..max over the 99.99 % range: an outlier sets the scale
CHANNEL_SPREAD = 30.0     # widest channel over the median channel (absolute maxima)
LOW_WEIGHT_DB = 30.0      # int8 per-channel weights below this SQNR: outliers inside a channel
LOCAL_BAD_DB = 20.0       # without sensitivity: an output below this SQNR, half of whose noise is the node's


@dataclass(frozen=True)
class DebugConfig:
    sensitivity: bool = True
    max_drop: float = 0.01
    objective: str = "size"
    holdout: int | None = None
    metric: str | None = None
    arena: bool = True
    quant: QuantConfig = QuantConfig(progress=False)


def _db(x: float) -> float | None:
    return None if not math.isfinite(x) else round(x, 2)


def _sqnr(sig: float, err: float) -> float:
    if err <= 0:
        return math.inf
    return -math.inf if sig <= 0 else 10.0 * math.log10(sig / err)


def _channel_absmax(x: np.ndarray, axis: int) -> np.ndarray | None:
    if x.ndim < 2 or x.dtype.kind != "f":
        return None
    a = np.moveaxis(np.abs(x), axis, 0)
    return a.reshape(a.shape[0], -1).max(axis=1).astype(np.float64)


def _layer_errors(fg: Graph, q: Graph, feeds: list, spread_axes: dict, show: bool) -> tuple[dict, dict]:
    """Per float node: [signal, error] of its first output in `q` against `fg` over `feeds`; per
    tensor of `spread_axes` ({tensor: channel axis}): its channels' absolute maxima."""
    fnodes = {n.name: n for n in fg.nodes}
    acc: dict[str, list] = {}
    chan: dict[str, np.ndarray] = {}
    for feed in progress_bar(feeds, total=len(feeds), desc="comparing layers", enabled=show):
        ref: dict[str, np.ndarray] = {}

        def fhook(name, val, node):
            if node is not None and node.outputs[0] == name and np.asarray(val).dtype.kind == "f":
                ref[name] = val
            if name in spread_axes:
                m = _channel_absmax(np.asarray(val), spread_axes[name])
                if m is not None:
                    chan[name] = m if name not in chan or chan[name].shape != m.shape else np.maximum(chan[name], m)

        def qhook(name, val, node):
            if node is None or node.name not in fnodes or node.outputs[0] != name:
                return
            want = fnodes[node.name].outputs[0]
            if want not in ref:
                return
            got = np.asarray(val)
            qp = q.qparams.get(name)
            if qp is not None and got.dtype.kind in "iu":
                got = (got.astype(np.float64) - float(np.asarray(qp.zero_point).reshape(-1)[0])) \
                    * float(np.asarray(qp.scale).reshape(-1)[0])
            r = np.asarray(ref[want], np.float64)
            if got.shape != r.shape:
                return
            a = acc.setdefault(node.name, [0.0, 0.0])
            a[0] += float(np.sum(r * r))
            a[1] += float(np.sum((r - np.asarray(got, np.float64)) ** 2))
        interp_run(fg, feed, hook=fhook)
        interp_run(q, feed, hook=qhook)
    return acc, chan


def _weight_sqnr(fg: Graph, n, rounded: dict) -> float | None:
    w = fg.consts.get(n.inputs[1]) if len(n.inputs) > 1 else None
    if w is None or np.asarray(w).dtype.kind != "f":
        return None
    w = np.asarray(w, np.float64)
    axis = kinds.weight_axis(n, w)
    if n.name in rounded:
        wq, sc = rounded[n.name]
    else:
        wq, sc = quantize_weight_per_channel(w, axis, where=n.name)
    shp = [1] * w.ndim
    shp[axis] = -1
    deq = np.asarray(wq, np.float64) * np.asarray(sc, np.float64).reshape(shp)
    return _db(_sqnr(float(np.sum(w * w)), float(np.sum((w - deq) ** 2))))


def _range_info(name: str, observers: dict) -> dict:
    """Observed min/max, the 99.99 % range and the method `auto` chose, of one tensor."""
    obs = observers.get(name)
    if obs is None or not getattr(obs, "count", 0):
        return {}
    out = {"observed": [float(obs.min), float(obs.max)]}
    if hasattr(obs, "candidates"):
        lo, hi = obs.candidates(99.99, ("percentile",))["percentile"]
        out["p9999"] = [float(lo), float(hi)]
        width = max(obs.max, 0.0) - min(obs.min, 0.0)
        out["outlier_ratio"] = round(width / (hi - lo), 2) if hi > lo else None
    if getattr(obs, "chosen", ""):
        out["method"] = obs.chosen
    return out


def _int8_range(q: Graph, tensor: str) -> list | None:
    """The range an int8 tensor of `q` can hold: scale * ([-128, 127] - zero point)."""
    qp = q.qparams.get(tensor)
    if qp is None or qp.axis is not None:
        return None
    s = float(np.asarray(qp.scale).reshape(-1)[0])
    zp = float(np.asarray(qp.zero_point).reshape(-1)[0])
    return [s * (-128 - zp), s * (127 - zp)]


def _arena(result) -> dict:
    """The plan's .dse memory plan: buffers (offset, bytes, first and last node step), steps."""
    try:
        ex = export(result)
    except DseError as e:
        return {"error": str(e)}
    mp = ex.plan
    return {"arena_bytes": mp.arena_size, "lower_bound_bytes": mp.lower_bound, "scratch_offset": mp.scratch_offset,
            "scratch_bytes": mp.scratch_size, "node_scratch": list(mp.node_scratch),
            "steps": [{"name": n.name, "op": n.op} for n in ex.graph.nodes],
            "buffers": [{"name": b.name, "offset": b.offset, "bytes": b.size, "first": b.first, "last": b.last,
                         "tensors": len(b.members)} for b in sorted(mp.buffers, key=lambda b: (b.first, b.offset))]}


def _cause(row: dict) -> tuple[str, str] | None:
    """Why an int8 layer loses precision, from its numbers: (fix, evidence) or None."""
    inp = row.get("input") or {}
    if (inp.get("channel_spread") or 0) >= CHANNEL_SPREAD:
        steps = inp.get("median_channel_steps")
        return ("keep float", f"its input {inp['tensor']!r} has channels {inp['channel_spread']:.0f}x apart in range "
                "and an int8 activation has one scale per tensor"
                + (f": the median channel spans {steps:.1f} int8 steps" if steps is not None else ""))
    for what, r in (("input", inp), ("output", row)):
        if (r.get("outlier_ratio") or 0) >= OUTLIER_RATIO and r.get("method", "minmax") == "minmax":
            return ("use a percentile/mse range (--method percentile), else keep float",
                    f"an outlier stretches the range of its {what} {r.get('tensor')!r}: {_span(r.get('observed'))} "
                    f"against {_span(r.get('p9999'))} for 99.99 % of the values")
    if row.get("weight_sqnr_db") is not None and row["weight_sqnr_db"] < LOW_WEIGHT_DB:
        return ("keep float", f"its int8 weights keep only {row['weight_sqnr_db']:.1f} dB even per channel "
                "(outliers inside a channel)")
    return None


def _suggest(row: dict, ctx: dict) -> tuple[str, str]:
    """(fix, evidence) for one layer. With sensitivity, the verdict is the planner's: a layer
    hurts when the plan it suggests for the budget keeps it float (the layers it needs float to
    meet it), and the numbers say why; without, a poor output whose noise is mostly the layer's
    own. The cause (_cause) then picks the fix."""
    s, budget, drop0, keep = row.get("sensitivity"), ctx["budget"], ctx.get("all_int8_drop"), ctx.get("suggested")
    pct = lambda v: f"{100 * v:.2f} %"   # noqa: E731
    if s is not None:
        cost = (f"alone in int8 it costs {pct(s['alone_int8_drop'])} (budget {pct(budget)}); float alone, it "
                f"recovers {pct(s['recovers'])} of the all-int8 drop {pct(drop0 or 0.0)}")
        hurts = keep is not None and row["name"] in keep
    else:
        cost = "" if row["sqnr_db"] is None else f"its output keeps {row['sqnr_db']:.1f} dB" + (
            "" if row["loss_db"] is None else f", {row['loss_db']:.1f} dB below its inputs")
        hurts = (row["sqnr_db"] is not None and row["sqnr_db"] < LOCAL_BAD_DB
                 and row["noise_added"] >= 0.5 * 10 ** (-row["sqnr_db"] / 10))
    if not row["precision"].startswith("int8"):
        if s is not None:
            return ("keep float" if hurts else "can be int8",
                    cost + ("" if hurts else "; the suggested plan runs it in int8"))
        if row["float_by_measurement"]:
            return "keep float", row["reason"]
        return "stays float", row["reason"]
    if not hurts:
        return "fine as int8", cost
    why = _cause(row)
    if why is None:
        return "keep float", cost + ("; the suggested plan keeps it float" if s is not None else "")
    return why[0], why[1] + (f"; {cost}" if cost else "")


def _span(r) -> str:
    return "?" if not r else f"[{r[0]:.4g}, {r[1]:.4g}]"


def debug_graph(graph: Graph, feeds: list, cfg: DebugConfig = DebugConfig(), *, plan: PrecisionPlan | None = None,
                run_plan=None, progress=None, copy_graph: bool = True) -> dict:
    """The per-layer debug table of `graph` on `feeds` (see the module docstring)."""
    feeds = list(feeds)
    qcfg = cfg.quant
    notes: list[str] = []
    want_sens = cfg.sensitivity
    if plan is not None:
        calib, held = split_feeds(feeds, plan.holdout)
    elif want_sens and len(feeds) >= 2:
        calib, held = split_feeds(feeds, cfg.holdout or default_holdout(len(feeds), cfg.max_drop))
    else:
        if want_sens:
            notes.append("one calibration feed: no feeds to hold back, so no sensitivity (give 2 or more)")
            want_sens = False
        calib, held = feeds, []
    prep = prepare(graph, calib, relaxed(qcfg), copy=copy_graph)
    prep.table_ranges = {}
    if qcfg.method == "minmax":
        notes.append("--method minmax keeps no histogram of the calibration values, so an outlier that stretches a "
                     "range cannot be named; the default --method auto keeps one")
    if plan is not None:
        names = {n.name for n in prep.fg.nodes}
        missing = [k for k in plan.keep_float if k not in names]
        if missing:
            raise DseError(f"the plan names nodes this model does not have: {', '.join(missing[:5])}",
                           hint="the plan was made for another model; run `dsedge plan` on this one")
        shown = finish_plan(prep, replace(relaxed(qcfg), keep_float=tuple(sorted(plan.keep_float))))
        for p in shown.plan:
            if p.name in plan.keep_float:
                p.reason = "kept float by the precision plan (end-to-end budget)"
    else:
        shown = finish_plan(prep, replace(qcfg, precision="int8"))

    budget = plan.budget if plan is not None else cfg.max_drop
    sens_plan = None
    if plan is not None and want_sens and any("sensitivity" in n for n in plan.nodes) and plan.tried:
        sens_plan = plan                                   # the lockfile already holds it
    elif want_sens:
        sens_plan, _ = plan_prepared(prep, held, margin_feeds=calib, max_drop=budget,
                                     objective=plan.objective if plan is not None else cfg.objective,
                                     metric=(plan.metric.get("user") if plan is not None else cfg.metric),
                                     cfg=qcfg, run_plan=run_plan, progress=progress, always_sensitivity=True)
    tried = list(sens_plan.tried) if sens_plan is not None else []
    all_int8 = next((t for t in tried if t["why"] == "all int8"), None)
    drop0 = all_int8["drop"] if all_int8 else None
    noise0 = 10.0 ** (-all_int8["sqnr_db"] / 10.0) if all_int8 and all_int8.get("sqnr_db") is not None else None

    fg, q = prep.fg, shown.graph
    producer = {o: n for n in fg.nodes for o in n.outputs if o}
    qnode = {n.name: n for n in q.nodes}
    prec = {p.name: p for p in shown.plan}
    spread_axes = {}
    for n in fg.nodes:
        r = kinds.rule_of(n)
        if r is not None and kinds.kind(r.kind).weight_bearing and n.inputs and n.inputs[0] not in fg.consts:
            spread_axes[n.inputs[0]] = kinds.out_channel_axis(n)
    acc, chan = _layer_errors(fg, q, prep.eval_feeds[:qcfg.eval_feeds], spread_axes, qcfg.progress)

    out_sqnr = {k: _sqnr(*v) for k, v in acc.items()}
    sens_by_node: dict[str, dict] = {}
    if sens_plan is not None:
        for d in sens_plan.nodes:
            sv = d.get("sensitivity")
            if not sv:
                continue
            score = max(sv["raise_gain"], sv["lower_noise"])
            one = {"group": sv.get("group", [d["name"]]), "score": score,
                   "share": None if not noise0 else round(score / noise0, 4),
                   "alone_int8_drop": sv["lower_drop"], "float_alone_drop": sv["raise_drop"],
                   "recovers": round((drop0 or 0.0) - sv["raise_drop"], 6),
                   "alone_int8_sqnr_db": _db(-10 * math.log10(sv["lower_noise"])) if sv["lower_noise"] > 0 else None}
            for m in one["group"]:
                sens_by_node[m] = one
    ctx = {"budget": budget, "all_int8_drop": drop0,
           "suggested": None if sens_plan is None else set(sens_plan.keep_float)}
    if held and sens_plan is not None and 1.0 / len(held) > budget:
        notes.append(f"{len(held)} held-back feeds: one changed answer is a drop of {100 / len(held):.2f} %, more "
                     f"than the budget {100 * budget:.2f} %; give more feeds (about {math.ceil(1 / budget)} held back "
                     "resolve it) for a finer verdict")
    rows = []
    for n in fg.nodes:
        p = prec.get(n.name)
        if p is None:
            continue
        o = n.outputs[0] if n.outputs else ""
        ins = [i for i in n.inputs if i and i not in fg.consts]
        ins += [i for sg in n.subgraphs() for i in sg.free_names() if i in producer and i not in ins]
        in_db = [out_sqnr.get(producer[i].name, math.inf) if i in producer else math.inf for i in ins]
        s_out = out_sqnr.get(n.name)
        s_in = min(in_db) if in_db else math.inf
        row = {"name": n.name, "op": p.op, "precision": p.precision, "reason": p.reason,
               "range": _int8_range(q, qnode[n.name].outputs[0]) if n.name in qnode else None,
               "tensor": o, **_range_info(o, prep.observers),
               "compared": s_out is not None, "sqnr_db": None if s_out is None else _db(s_out),
               "input_sqnr_db": _db(s_in),
               "loss_db": None if s_out is None or not math.isfinite(s_in) else round(s_in - min(s_out, s_in), 2),
               "local_sqnr_db": _db(prep.measured[n.name]["sqnr"]) if n.name in prep.measured else None,
               "weight_sqnr_db": None, "input": None, "sensitivity": sens_by_node.get(n.name),
               # the local rules kept it float for the error they measured (make_plan gives the SQNR then)
               "float_by_measurement": p.precision == "fp32" and p.sqnr_db is not None}
        rule = kinds.rule_of(n)
        if rule is not None and kinds.kind(rule.kind).weight_bearing and p.precision.startswith("int8"):
            row["weight_sqnr_db"] = _weight_sqnr(fg, n, prep.weights)
        if ins and p.precision.startswith("int8"):
            x = n.inputs[0]
            info = {"tensor": x, **_range_info(x, prep.observers)}
            qx = qnode[n.name].inputs[0] if n.name in qnode and qnode[n.name].inputs else ""
            info["range"] = _int8_range(q, qx)
            if x in chan:
                c = chan[x]
                med = float(np.median(c[c > 0])) if np.any(c > 0) else 0.0
                info["channel_spread"] = round(float(c.max()) / med, 1) if med > 0 else None
                lo_hi = info["range"]
                if lo_hi is not None and med > 0:
                    info["median_channel_steps"] = round(med / ((lo_hi[1] - lo_hi[0]) / 255.0), 2)
            row["input"] = info
        sig_noise = [10 ** (-min(v, 200.0) / 10) for v in (s_out if s_out is not None else math.inf, s_in)]
        row["noise_added"] = max(0.0, sig_noise[0] - sig_noise[1])
        row["fix"], row["why"] = _suggest(row, ctx)
        rows.append(row)
    def own(r) -> float:      # the quantisation noise a layer adds itself (float layers only pass it on)
        return r["noise_added"] if r["precision"].startswith("int8") else 0.0
    if sens_plan is not None:
        rows.sort(key=lambda r: (-(r["sensitivity"]["score"] if r["sensitivity"] else -1.0), -own(r)))
    else:
        rows.sort(key=lambda r: -own(r))
    outputs = {o: _db(out_sqnr[producer[o].name]) for o in fg.outputs if o in producer
               and producer[o].name in out_sqnr}
    counts: dict[str, int] = {}
    for p in shown.plan:
        counts[p.precision] = counts.get(p.precision, 0) + 1
    shown_drop, shown_index = (plan.drop, None) if plan is not None else (None, None)
    if sens_plan is not None:
        shown_index = sens_plan.search.get("chosen_index" if plan is not None else "local_rules_index")
        if plan is not None and sens_plan is not plan:
            shown_index = None          # planned again: the plan's own point is not among these
        if shown_index is not None and plan is None:
            shown_drop = tried[shown_index]["drop"]
    result = {
        "plan": {"source": "default int8 rules" if plan is None else "precision plan",
                 "keep_float": None if plan is None else list(plan.keep_float),
                 "nodes_by_precision": dict(sorted(counts.items())), "drop": shown_drop,
                 "tried_index": shown_index},
        "calibration": {"feeds": len(feeds), "calibrated_on": len(calib), "held_back": len(held),
                        "compared_on": min(len(prep.eval_feeds), qcfg.eval_feeds), "method": qcfg.method},
        "output_sqnr_db": outputs,
        "sensitivity": None if sens_plan is None else {
            "metric": sens_plan.metric, "budget": budget, "all_int8_drop": drop0,
            "all_int8_sqnr_db": all_int8.get("sqnr_db") if all_int8 else None,
            "suggested_keep_float": list(sens_plan.keep_float), "suggested_drop": sens_plan.drop,
            "suggested_index": sens_plan.search.get("chosen_index"), "objective": sens_plan.objective,
            "evaluations": sens_plan.search.get("evaluations"), "seconds": sens_plan.search.get("seconds"),
            "weight_elements": sum(sens_plan.cost.get(k, 0) for k in ("weight_elements_int8", "weight_elements_float")),
            "macs": sum(sens_plan.cost.get(k, 0) for k in ("macs_int8", "macs_float"))},
        "layers": rows,
        "tried": tried,
        "arena": _arena(shown) if cfg.arena else None,
        "notes": notes + list(shown.info.get("warnings", ())),
    }
    return result
