"""Human-readable tables for the CLI (stderr). Machine output is the JSON of the same dicts."""
from __future__ import annotations


def _human(n: float | None, unit: str = "") -> str:
    if n is None:
        return "?"
    for suffix in ("", "K", "M", "G", "T"):
        if abs(n) < 1000:
            return f"{n:.3g}{suffix}{unit}" if suffix else f"{n:g}{unit}"
        n /= 1000.0
    return f"{n:.3g}P{unit}"


def _bytes(n: int | None) -> str:
    if n is None:
        return "?"
    for suffix in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or suffix == "GiB":
            return f"{n:.0f} {suffix}" if suffix == "B" else f"{n:.2f} {suffix}"
        n /= 1024.0
    return str(n)


def table(rows: list[list], header: list[str]) -> str:
    cells = [header] + [[("" if c is None else str(c)) for c in r] for r in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(header))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def _shape(t) -> str:
    s = t.get("shape")
    return "?" if s is None else "x".join("?" if d is None else str(d) for d in s)


def format_inspect(r: dict) -> str:
    out = [f"{r['model']}  (ONNX opset {r['opset']})"]
    out.append("inputs:  " + ", ".join(f"{t['name']} {t['dtype']}[{_shape(t)}]" for t in r["inputs"]))
    out.append("outputs: " + ", ".join(f"{t['name']} {t['dtype']}[{_shape(t)}]" for t in r["outputs"]))
    out.append(f"nodes: {r['nodes']} ({r['nodes_after_passes']} after folding and fusion)   "
               f"parameters: {_human(r['parameters'])} ({_bytes(r['weight_bytes'])} float)   "
               f"MACs: {_human(r['macs'])}   int8-capable nodes: {r['int8_nodes']}")
    out.append("ops: " + ", ".join(f"{k} {v}" for k, v in r["ops"].items()))
    float_only = [x for x in r["layers"] if not x["int8"]]
    if float_only:
        out.append("stays float: " + ", ".join(f"{x['name']} ({x['op']}: {x['why']})" for x in float_only[:20])
                   + (f" … and {len(float_only) - 20} more" if len(float_only) > 20 else ""))
    if r.get("metadata"):
        out.append("metadata: " + ", ".join(f"{k}={v[:40]!r}" for k, v in r["metadata"].items()))
    return "\n".join(out)


def _db(v) -> str:
    return "inf" if v is None else f"{v:.1f} dB"


def format_quantize(s: dict) -> str:
    out = []
    rows = [[x["name"], x["op"], x["precision"], "" if x["sqnr_db"] is None else f"{x['sqnr_db']:.1f}", x["reason"]]
            for x in s["layers"]]
    out.append(table(rows, ["node", "op", "precision", "SQNR dB", "why"]))
    out.append("")
    out.append("nodes: " + ", ".join(f"{v} {k}" for k, v in sorted(s["nodes_by_precision"].items())))
    a, b = s.get("input_bytes"), s.get("output_bytes")
    ratio = ""
    if a and b:
        ratio = f"  ({a / b:.2f}x smaller)" if b <= a else f"  ({b / a:.2f}x LARGER: see the warning below)"
    out.append(f"size: {_bytes(a)} -> {_bytes(b)}{ratio}")
    if s["output_sqnr_db"]:
        how = {"onnxruntime": " (the written QDQ model in onnxruntime)",
               "integer reference": " (integer reference = the C runtime)"}.get(s.get("sqnr_engine"), "")
        out.append(f"output SQNR vs float on {s['sqnr_feeds']} calibration feeds{how}: "
                   + ", ".join(f"{k} {_db(v)}" for k, v in s["output_sqnr_db"].items()))
    if s.get("denormal_weights_flushed"):
        out.append(f"{s['denormal_weights_flushed']:,d} subnormal float32 weights (|w| < 2^-126) set to zero: a "
                   "multiply by one costs ~100x on x86 CPUs, and none changes a float32 sum of normal size")
    if s.get("preprocessing"):
        out.append(f"preprocessing (stored in the output): {s['preprocessing']}")
    if s.get("hint"):
        out.append(s["hint"])
    out.append(f"wrote {s['output']} in {s.get('seconds', 0):.1f} s")
    out.extend(f"warning: {w}" for w in s.get("warnings", ()))
    return "\n".join(out)


def format_compare(r: dict) -> str:
    rows = [[k, _db(v["sqnr_db"]), "?" if v["cosine"] is None else f"{v['cosine']:.6f}",
             "-" if v["top1_agreement"] is None else f"{100 * v['top1_agreement']:.2f} %"]
            for k, v in r["outputs"].items()]
    out = (f"{r['quant_model']} vs {r['float_model']} on {r['feeds']} feeds\n"
           + table(rows, ["output", "SQNR", "cosine", "top-1 agreement"]))
    if "accuracy" in r:
        a = r["accuracy"]
        out += f"\naccuracy: float {100 * a['float']:.2f} %  ->  quantised {100 * a['quant']:.2f} %"
    return out


def _pct(v) -> str:
    return "" if v is None else f"{100 * v:.2f} %"


def format_debug(r: dict, top: int | None = 20) -> str:
    """`dsedge debug`: the per-layer table, the layer that hurts most first (stderr)."""
    layers = r["layers"] if not top else r["layers"][:top]
    rows = []
    for x in layers:
        s = x.get("sensitivity") or {}
        rng = x.get("range") or x.get("observed")
        rows.append([x["name"], x["op"], x["precision"],
                     "" if not rng else f"[{rng[0]:.3g}, {rng[1]:.3g}]",
                     ("inf" if x.get("compared") else "") if x.get("sqnr_db") is None else f"{x['sqnr_db']:.1f}",
                     "" if x.get("loss_db") is None else f"{x['loss_db']:.1f}",
                     "" if s.get("share") is None else f"{100 * s['share']:.1f}",
                     _pct(s.get("alone_int8_drop")), x["fix"]])
    c, p, s = r["calibration"], r["plan"], r.get("sensitivity")
    out = [f"{r.get('model')}: {c['feeds']} feeds (calibrated on {c['calibrated_on']}, {c['held_back']} held back, "
           f"layers compared on {c['compared_on']}); plan: {p['source']}"
           + (f" {r['plan_file']}" if r.get("plan_file") else "") + " ("
           + ", ".join(f"{v} {k}" for k, v in p["nodes_by_precision"].items()) + ")"]
    out.append(table(rows, ["node", "op", "precision", "range", "SQNR dB", "loss dB", "sens %", "alone drop", "fix"]))
    if top and len(r["layers"]) > top:
        out.append(f"... and {len(r['layers']) - top} more layers (--top 0 shows all; --json and --report hold all)")
    out.append("")
    out.append("SQNR: the layer's output in the quantised model against the float model; loss: how much of it this "
               "layer loses against its inputs; sens: end-to-end output noise due to the layer, % of the all-int8 "
               "model's; alone drop: the accuracy drop with only it in int8")
    out.append("output SQNR: " + ", ".join(f"{k} {_db(v)}" for k, v in r["output_sqnr_db"].items())
               + (f"; drop of this plan {_pct(p['drop'])}" if p.get("drop") is not None else ""))
    if s:
        keep = ", ".join(s["suggested_keep_float"][:8]) + (" ..." if len(s["suggested_keep_float"]) > 8 else "")
        out.append(f"all int8: drop {_pct(s['all_int8_drop'])} on {c['held_back']} held-back feeds; "
                   f"within {_pct(s['budget'])}: keep float {keep or 'nothing'} (drop {_pct(s['suggested_drop'])}; "
                   f"`dsedge plan` writes it) -- {s['evaluations']} plans evaluated in {s['seconds']:.1f} s")
    top_row = r["layers"][0] if r["layers"] else None
    if top_row is not None and top_row.get("why"):
        out.append(f"worst: {top_row['name']}: {top_row['fix']}: {top_row['why']}")
    a = r.get("arena")
    if a and not a.get("error"):
        out.append(f"arena: {_bytes(a['arena_bytes'])} ({len(a['buffers'])} buffers over {len(a['steps'])} nodes)")
    if r.get("report"):
        out.append(f"wrote {r['report']} ({_bytes(r['report_bytes'])})")
    out.extend(f"note: {n}" for n in r.get("notes", ()))
    return "\n".join(out)
