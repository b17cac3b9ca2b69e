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
