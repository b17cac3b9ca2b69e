"""The `dsedge debug --report` page: one self-contained HTML file (inline CSS, inline SVG drawn
here, no script, nothing fetched), readable offline and in a CI artifact viewer.

Sections, from the dict of dsedge/debug.py (`debug_graph`):
  * summary: model, feeds, output SQNR, the plan shown, the planner's suggestion;
  * layers: the per-layer table, the layer that hurts most first;
  * sensitivity: one horizontal bar per candidate group (`rect.bar`), the planner's score as a
    share of the all-int8 model's output noise, the most sensitive on top;
  * plans tried: accuracy (1 - drop against the float model on the held-back feeds) against the
    plan's weight bytes (int8 weights 1 byte, float weights 4) and against the multiply-adds it
    leaves in float, one point per plan (`circle.pt`); all int8, the plan shown and the
    planner's suggestion are marked; the lower-left to upper-right frontier is drawn as a line;
  * arena: the .dse's memory plan as buffers over time: x = node step (-1 = the inputs, before
    the first node), y = byte offset, one rectangle per buffer (`rect.buf`) from the step that
    writes it to the last that reads it, with a tooltip (`<title>`) naming it; kernel scratch
    in grey (`rect.scratch`).
Every value is escaped; the page depends on nothing but this module and the dict.
"""
from __future__ import annotations

import html
import math

from .report import _bytes, _human

CSS = """
body{font:14px/1.4 system-ui,-apple-system,"Segoe UI",sans-serif;margin:24px;color:#222;max-width:1400px}
h1{font-size:22px;margin:0 0 4px}h2{font-size:18px;margin:28px 0 8px;border-bottom:1px solid #ddd}
table{border-collapse:collapse;font-size:12px}th,td{padding:3px 6px;border-bottom:1px solid #eee;text-align:left;
vertical-align:top}th{background:#f4f4f4;position:sticky;top:0}td.n{text-align:right;font-variant-numeric:tabular-nums}
tr.hurts td{background:#fdecea}tr.float td{color:#666}td.fix{font-weight:600}.why{color:#555;max-width:520px}
.muted{color:#777}.kv td{border:none;padding:1px 10px 1px 0}svg{background:#fff;border:1px solid #e4e4e4}
svg text{font:11px system-ui,sans-serif;fill:#333}.charts{display:flex;flex-wrap:wrap;gap:16px}
"""
BAR, PT, MARK, SHOWN, BUF = "#d9534f", "#4a78b5", "#2e9d4a", "#f0a020", "#7fb2e5"


def _e(v) -> str:
    return html.escape("" if v is None else str(v), quote=True)


def _f(v, fmt: str = ".1f", none: str = "") -> str:
    if v is None:
        return none
    if isinstance(v, float) and not math.isfinite(v):
        return "inf"
    return format(v, fmt)


def _pct(v) -> str:
    return "" if v is None else f"{100 * v:.2f} %"


def _rng(r) -> str:
    return "" if not r else f"[{r[0]:.4g}, {r[1]:.4g}]"


def _summary(r: dict) -> str:
    c, p, s = r["calibration"], r["plan"], r.get("sensitivity")
    rows = [("model", r.get("model")),
            ("feeds", f"{c['feeds']}: calibrated on {c['calibrated_on']}, {c['held_back']} held back for "
                      f"sensitivity, layers compared on {c['compared_on']} (ranges: {c['method']})"),
            ("plan shown", p["source"] + (f" {r['plan_file']}" if r.get("plan_file") else "")
             + " — " + ", ".join(f"{v} {k}" for k, v in p["nodes_by_precision"].items())
             + (f"; drop {_pct(p['drop'])}" if p.get("drop") is not None else "")),
            ("output SQNR", ", ".join(f"{k}: {_f(v, '.1f', 'inf')} dB" for k, v in r["output_sqnr_db"].items()))]
    if s:
        rows.append(("all int8", f"drop {_pct(s['all_int8_drop'])}, output {_f(s['all_int8_sqnr_db'], '.1f', 'inf')}"
                                 f" dB ({', '.join(f'{k} {v}' for k, v in s['metric'].get('outputs', {}).items())})"))
        keep = ", ".join(s["suggested_keep_float"]) or "none"
        rows.append((f"suggested at {_pct(s['budget'])}", f"keep float: {keep} (drop {_pct(s['suggested_drop'])}; "
                     f"{s['evaluations']} plans evaluated in {_f(s['seconds'], '.1f')} s)"))
    for n in r.get("notes", ()):
        rows.append(("note", n))
    return "<table class=kv>" + "".join(f"<tr><td class=muted>{_e(k)}</td><td>{_e(v)}</td></tr>" for k, v in rows) \
        + "</table>"


def _layers(rows: list) -> str:
    head = ["#", "node", "op", "precision", "range", "SQNR dB", "loss dB", "sens %", "alone drop", "fix", "why"]
    out = ["<table id=layers><thead><tr>" + "".join(f"<th>{h}</th>" for h in head) + "</tr></thead><tbody>"]
    for k, x in enumerate(rows):
        s = x.get("sensitivity") or {}
        rng = x.get("range") or x.get("observed")
        cls = "hurts" if x["fix"].startswith(("keep float", "use ")) and x["precision"].startswith("int8") else \
            ("float" if not x["precision"].startswith("int8") else "")
        cells = [str(k + 1), _e(x["name"]), _e(x["op"]), _e(x["precision"]), _e(_rng(rng)),
                 _f(x.get("sqnr_db"), ".1f", "inf" if x.get("compared") else ""),
                 _f(x.get("loss_db")), _f(None if s.get("share") is None else 100 * s["share"]),
                 _pct(s.get("alone_int8_drop")), _e(x["fix"]), _e(x.get("why"))]
        klass = ["n", "", "", "", "n", "n", "n", "n", "n", "fix", "why"]
        out.append(f"<tr class='layer {cls}'>" + "".join(f"<td class='{c}'>{v}</td>" for c, v in zip(klass, cells))
                   + "</tr>")
    out.append("</tbody></table>")
    return "".join(out)


def _sensitivity_chart(rows: list, limit: int = 60) -> str:
    groups, seen = [], set()
    for x in rows:
        s = x.get("sensitivity")
        if s and s["group"][0] not in seen:
            seen.add(s["group"][0])
            groups.append((s["group"], s))
    if not groups:
        return "<p class=muted>No sensitivity measured (--no-sensitivity, or nothing can run in int8).</p>"
    groups.sort(key=lambda g: -g[1]["score"])
    shown = groups[:limit]
    top = max(g[1]["score"] for g in shown) or 1.0
    bh, gap, left, w = 16, 4, 230, 720
    h = len(shown) * (bh + gap) + 30
    parts = [f"<svg id=sensitivity xmlns='http://www.w3.org/2000/svg' width='{left + w + 150}' height='{h}'>",
             f"<text x='{left}' y='12'>end-to-end output noise due to the group, % of the all-int8 model's "
             "(the larger of: removed when float alone, added when int8 alone)</text>"]
    for i, (members, s) in enumerate(shown):
        y = 20 + i * (bh + gap)
        bw = max(1.0, w * s["score"] / top)
        name = members[0] + (f" (+{len(members) - 1})" if len(members) > 1 else "")
        val = "" if s.get("share") is None else f"{100 * s['share']:.1f} %"
        tip = (f"{', '.join(members)}: {val or _f(s['score'], '.3g')}; alone int8: drop {_pct(s['alone_int8_drop'])}"
               f", float alone: drop {_pct(s['float_alone_drop'])}")
        parts.append(f"<text x='{left - 6}' y='{y + 12}' text-anchor='end'>{_e(name[:36])}</text>"
                     f"<rect class=bar x='{left}' y='{y}' width='{bw:.1f}' height='{bh}' fill='{BAR}'>"
                     f"<title>{_e(tip)}</title></rect>"
                     f"<text x='{left + bw + 4:.1f}' y='{y + 12}'>{_e(val)} · alone "
                     f"{_e(_pct(s['alone_int8_drop']))}</text>")
    parts.append("</svg>")
    more = f"<p class=muted>{len(shown)} of {len(groups)} groups shown.</p>" if len(groups) > len(shown) else ""
    return "".join(parts) + more


def _scatter(r: dict, x_of, x_label: str, cid: str) -> str:
    s, tried = r.get("sensitivity"), r.get("tried") or []
    pts = [(x_of(t), 1.0 - t["drop"], k, t) for k, t in enumerate(tried)]
    pts = [p for p in pts if p[0] is not None]
    if not pts or not any(p[0] for p in pts):
        return (f"<p class=muted>{_e(x_label)}: not known for these plans (the planner counts them from static "
                "shapes; this model's are not static before export).</p>")
    W, H, L, B, T, R = 520, 340, 64, 44, 14, 16
    xs, ys = [p[0] for p in pts], [p[1] for p in pts]
    x0, x1 = min(xs), max(xs)
    y0, y1 = min(ys), max(ys)
    if x1 <= x0:
        x0, x1 = x0 - 1, x1 + 1
    pad = max((y1 - y0) * 0.08, 0.002)
    y0, y1 = max(0.0, y0 - pad), min(1.0, y1 + pad) if y1 + pad > y0 else y0 + 0.01

    def X(v):
        return L + (v - x0) / (x1 - x0) * (W - L - R)

    def Y(v):
        return T + (y1 - v) / ((y1 - y0) or 1.0) * (H - T - B)
    marks: dict[int, tuple[str, str]] = {}
    for k, label, col in ((0, "all int8", MARK), (r["plan"].get("tried_index"), "plan shown", SHOWN),
                          ((s or {}).get("suggested_index"), "suggested", BAR)):
        if k is not None:
            marks[k] = (marks[k][0] + " = " + label, col) if k in marks else (label, col)
    parts = [f"<svg id={cid} class=curve xmlns='http://www.w3.org/2000/svg' width='{W}' height='{H}'>",
             f"<line x1='{L}' y1='{H - B}' x2='{W - R}' y2='{H - B}' stroke='#999'/>"
             f"<line x1='{L}' y1='{T}' x2='{L}' y2='{H - B}' stroke='#999'/>"]
    for v in (x0, (x0 + x1) / 2, x1):
        parts.append(f"<text x='{X(v):.1f}' y='{H - B + 14}' text-anchor='middle'>{_e(_human(v))}</text>")
    for v in (y0, (y0 + y1) / 2, y1):
        parts.append(f"<text x='{L - 4}' y='{Y(v) + 4:.1f}' text-anchor='end'>{100 * v:.1f}%</text>")
    parts.append(f"<text x='{(L + W - R) / 2}' y='{H - 8}' text-anchor='middle'>{_e(x_label)}</text>"
                 f"<text x='12' y='{(T + H - B) / 2}' transform='rotate(-90 12 {(T + H - B) / 2})' "
                 "text-anchor='middle'>agreement with float (1 - drop)</text>")
    front, best = [], -1.0                                       # the frontier: best accuracy so far by cost
    for x, y, _, _ in sorted(pts, key=lambda p: (p[0], -p[1])):
        if y > best:
            front.append((x, y))
            best = y
    if len(front) > 1:
        parts.append("<polyline class=frontier fill='none' stroke='#9bb' stroke-width='1.5' points='"
                     + " ".join(f"{X(x):.1f},{Y(y):.1f}" for x, y in front) + "'/>")
    for x, y, k, t in pts:
        label, col = marks.get(k, ("", PT))
        tip = (f"{t['why']}: {t['kept_float']} kept float, drop {_pct(t['drop'])}, {x_label} {_human(x)}"
               + (f", output {t['sqnr_db']} dB" if t.get("sqnr_db") is not None else "")
               + (f" ({label})" if label else ""))
        rad = 6 if label else 3.5
        parts.append(f"<circle class='pt{' mark' if label else ''}' cx='{X(x):.1f}' cy='{Y(y):.1f}' r='{rad}' "
                     f"fill='{col}' fill-opacity='{0.95 if label else 0.55}'><title>{_e(tip)}</title></circle>")
        if label:                      # on the left of the point when it is in the right half
            right = X(x) > (L + W - R) / 2
            parts.append(f"<text x='{X(x) + (-8 if right else 8):.1f}' y='{Y(y) - 6:.1f}' "
                         f"text-anchor='{'end' if right else 'start'}'>{_e(label)}</text>")
    parts.append("</svg>")
    return "".join(parts)


def _curves(r: dict) -> str:
    s = r.get("sensitivity")
    if not s or not r.get("tried"):
        return "<p class=muted>No plans tried (--no-sensitivity).</p>"
    total = s.get("weight_elements") or 0

    def size(t):
        f = t.get("weight_elements_float")
        return None if f is None else total + 3 * f               # int8: 1 byte, float: 4

    timed = all(t.get("ms") is not None for t in r["tried"])   # plans run by the C runtime: their median time

    def latency(t):
        return t.get("ms") if timed else t.get("macs_float")
    return ("<div class=charts>" + _scatter(r, size, "weight bytes (int8 1 B, float 4 B)", "curve-size")
            + _scatter(r, latency, "latency per run, ms (C runtime, this machine)" if timed
                       else "multiply-adds left in float", "curve-latency") + "</div>")


def _arena_chart(a: dict | None) -> str:
    if not a:
        return "<p class=muted>Arena not drawn.</p>"
    if a.get("error"):
        return f"<p class=muted>No arena: {_e(a['error'])}</p>"
    steps, bufs = a["steps"], a["buffers"]
    n = len(steps)
    size = max(a["arena_bytes"], 1)
    W, H, L, B, T = 980, 420, 70, 40, 10
    cw = (W - L - 10) / (n + 2)                                  # columns -1 .. n

    def X(step):
        return L + (step + 1) * cw

    def Y(off):                                                  # offset 0 at the bottom
        return H - B - off / size * (H - T - B)
    parts = [f"<svg id=arena xmlns='http://www.w3.org/2000/svg' width='{W}' height='{H}'>",
             f"<line x1='{L}' y1='{H - B}' x2='{W - 10}' y2='{H - B}' stroke='#999'/>"]
    for off in (0, size // 2, size):
        parts.append(f"<text x='{L - 4}' y='{Y(off) + 4:.1f}' text-anchor='end'>{_e(_bytes(off))}</text>")
    for k in sorted({0, n // 2, max(n - 1, 0)}):
        parts.append(f"<text x='{X(k) + cw / 2:.1f}' y='{H - B + 14}' text-anchor='middle'>{k}</text>")
    parts.append(f"<text x='{(L + W) / 2}' y='{H - 8}' text-anchor='middle'>node step (column -1: the inputs)"
                 "</text>")
    so = a.get("scratch_offset", 0)
    for k, sb in enumerate(a.get("node_scratch", ())):
        if sb:
            st = steps[k] if k < len(steps) else {"name": "?", "op": "?"}
            parts.append(f"<rect class=scratch x='{X(k):.1f}' y='{Y(so + sb):.1f}' width='{cw:.2f}' "
                         f"height='{max(Y(so) - Y(so + sb), 1):.2f}' fill='#bbb'><title>{_e(st['name'])} "
                         f"({_e(st['op'])}): scratch {sb:,} B at {so:,}</title></rect>")
    for b in bufs:
        first, last = b["first"], min(b["last"], n)
        x, w = X(first), (last - first + 1) * cw
        y, h = Y(b["offset"] + b["bytes"]), max(Y(b["offset"]) - Y(b["offset"] + b["bytes"]), 1.0)
        who = steps[first]["name"] if 0 <= first < n else "graph input"
        tip = (f"{b['name']}: {b['bytes']:,} B at offset {b['offset']:,}, steps {first}..{b['last']} "
               f"(written by {who}; {b['tensors']} tensor(s))")
        parts.append(f"<rect class=buf x='{x:.1f}' y='{y:.1f}' width='{max(w - 1, 1):.1f}' height='{h:.2f}' "
                     f"fill='{BUF}' stroke='#2a5d8f' stroke-width='0.5'><title>{_e(tip)}</title></rect>")
    parts.append("</svg>")
    lb = a.get("lower_bound_bytes")
    head = (f"<p>arena {a['arena_bytes']:,} B" + (f" (lower bound {lb:,} B)" if lb else "")
            + f", {len(bufs)} buffers over {n} nodes, scratch {a.get('scratch_bytes', 0):,} B. "
            "Hover a rectangle for its tensor.</p>")
    return head + "".join(parts)


def render_debug_report(r: dict) -> str:
    """The report page of one `debug` result."""
    title = f"dsedge debug: {r.get('model', '')}"
    return ("<!DOCTYPE html><html lang=en><head><meta charset=utf-8>"
            f"<title>{_e(title)}</title><style>{CSS}</style></head><body>"
            f"<h1>{_e(title)}</h1>{_summary(r)}"
            "<h2 id=h-layers>Layers, the one that hurts most first</h2>" + _layers(r["layers"])
            + "<h2 id=h-sensitivity>Sensitivity</h2>" + _sensitivity_chart(r["layers"])
            + "<h2 id=h-curves>Plans tried: accuracy against size and latency</h2>" + _curves(r)
            + "<h2 id=h-arena>Arena: buffers over time</h2>" + _arena_chart(r.get("arena"))
            + "<p class=muted>Made by dsedge debug; no scripts, nothing loaded from the network.</p>"
            + "</body></html>\n")
