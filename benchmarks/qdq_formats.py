"""The QDQ formats (converters/onnx/qdq.py) side by side: accuracy in onnxruntime on this CPU
and latency in onnxruntime, against the `.dse` in the C runtime.

    python benchmarks/qdq_formats.py [--models digits,mobilenet_v2,resnet50,transformer_encoder]
                                     [--repeat 30] [--json out.json] [--write-benchmarks]

Each model is quantised once (dsedge defaults); the same quantised graph is written as a `.dse`
and as a QDQ file in every format. Accuracy: digits on its eval set (360 images, labels),
every other model on random zoo feeds against its float model (SQNR only). The `.dse` runs in
the C runtime (dsedge.Runtime). Latency: median over --repeat runs of one inference, onnxruntime
CPU provider with one intra-op thread, after 3 warm-up runs, the formats interleaved; reported as the ratio to u8s8
(onnxruntime's fastest kernels). Whether the CPU saturates u8 x s8 sums depends on VNNI: the
report states the CPU's flags.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import machine_info, replace_section, sqnr_db  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
FORMATS = ("u8u8", "u8s8", "u8s7", "s8s8")


def _session(path):
    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    so.log_severity_level = 3
    return ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])


def _latencies_ms(sessions: dict, feed, repeat) -> dict:
    """Median time of one inference per session, the sessions interleaved round by round (a
    load change on a shared machine then hits every format alike)."""
    for s in sessions.values():
        for _ in range(3):
            s.run(None, feed)
    t = {k: [] for k in sessions}
    for _ in range(repeat):
        for k, s in sessions.items():
            t0 = time.perf_counter()
            s.run(None, feed)
            t[k].append(time.perf_counter() - t0)
    return {k: 1000 * float(np.median(v)) for k, v in t.items()}


def _cpu_flags():
    try:
        flags = next(l for l in open("/proc/cpuinfo") if l.startswith("flags")).split()
    except (OSError, StopIteration):
        return "?"
    return " ".join(f for f in ("avx2", "fma", "avx512f", "avx512_vnni", "avx_vnni") if f in flags) or "none"


def bench(name, repeat, tmp):
    import dsedge
    from dsedge.api import save_result
    import models as zoo
    if name == "digits":
        d = ROOT / "models" / "digits"
        src, calib = str(d / "model.onnx"), str(d / "calib.npz")
        ev = np.load(d / "eval.npz")
        feeds = [{"image": x} for x in ev["image"]]
        labels = ev["label"]
    else:
        m = zoo.build(name)
        src = os.path.join(tmp, name + ".onnx")
        onnx.save(m, src)
        arrs = zoo.random_feeds(m, n=24, seed=0)
        calib = [{k: v[i] for k, v in arrs.items()} for i in range(16)]
        feeds = [{k: v[i] for k, v in arrs.items()} for i in range(16, 24)]
        labels = None
    r = dsedge.quantize(src, calib, progress=False)
    ref_s = _session(src)
    ref = [ref_s.run(None, f)[0] for f in feeds]
    row = {"model": name, "feeds": len(feeds), "formats": {}}

    def score(outs):
        s = {"sqnr_db": round(sqnr_db(np.concatenate([x.reshape(-1) for x in ref]),
                                      np.concatenate([y.reshape(-1) for y in outs])), 2)}
        if labels is not None:
            s["accuracy"] = round(float(np.mean([y.reshape(-1).argmax() == t for y, t in zip(outs, labels)])), 4)
            s["float_accuracy"] = round(float(np.mean([y.reshape(-1).argmax() == t for y, t in zip(ref, labels)])), 4)
        return s

    dse = os.path.join(tmp, name + ".dse")
    save_result(r, dse)
    out_name = ref_s.get_outputs()[0].name
    with dsedge.Runtime(dse) as rt:
        row["dse"] = score([rt.run(f)[out_name] for f in feeds])
    sessions = {"float": ref_s}
    for fmt in FORMATS:
        path = os.path.join(tmp, f"{name}.{fmt}.onnx")
        save_result(r, path, qdq_format=fmt)
        sessions[fmt] = s = _session(path)
        row["formats"][fmt] = score([s.run(None, f)[0] for f in feeds])
    lat = _latencies_ms(sessions, feeds[0], repeat)
    row["float_latency_ms"] = round(lat["float"], 3)
    for fmt, res in row["formats"].items():
        res["latency_ms"] = round(lat[fmt], 3)
        res["latency_vs_u8s8"] = round(lat[fmt] / lat["u8s8"], 2)
    return row


def render(rows, info):
    lines = [f"Machine: {info.get('cpu', '?')}, {info.get('cores', '?')} cores, CPU flags: {info.get('flags')} (no VNNI "
             f"unless listed); Python {info.get('python', '')}, onnxruntime {info.get('onnxruntime', '?')}. "
             f"Date: {info.get('date', '?')}.",
             f"Command: `{info.get('command')}`", "",
             "One quantisation per model, written as a `.dse` (C runtime) and as QDQ ONNX in each format "
             "(onnxruntime, CPU provider, 1 thread). SQNR against the float model in onnxruntime; digits also "
             "top-1 accuracy on its 360 labelled eval images (float model: "
             + next((str(r['dse'].get('float_accuracy')) for r in rows if 'float_accuracy' in r['dse']), "-")
             + "). Latency: median of one inference, as a ratio to u8s8 (" + info.get("load", "load not recorded")
             + "; ratios from a loaded machine are rough).", "",
             "| model | .dse in C runtime | " + " | ".join(f"QDQ {f} in onnxruntime" for f in FORMATS)
             + " | float model in onnxruntime |",
             "|---|---|" + "---|" * len(FORMATS) + "---|"]

    def cell(s):
        return f"{s['sqnr_db']} dB" + (f", {100 * s['accuracy']:.2f} %" if "accuracy" in s else "")
    for r in rows:
        lines.append(f"| {r['model']} | {cell(r['dse'])} | "
                     + " | ".join(cell(r['formats'][f]) + f"; {r['formats'][f]['latency_vs_u8s8']}x time"
                                  for f in FORMATS)
                     + f" | {r['float_latency_ms'] / r['formats']['u8s8']['latency_ms']:.2f}x time |")
    lines += ["", "How to read it: u8u8 is the `.dse`'s model (same weights, exact integer sums), so its column "
              "should equal the `.dse` column up to onnxruntime's float32 requantisation ties; on a CPU without "
              "VNNI, u8s8 and s8s8 lose to saturated 16-bit sums (on a CPU with VNNI they equal u8u8); u8s7 "
              "never saturates but its 7-bit weights cost resolution on every CPU."]
    return "\n".join(lines) + "\n"


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", default="digits,mobilenet_v2,resnet50,transformer_encoder")
    ap.add_argument("--repeat", type=int, default=30)
    ap.add_argument("--json", default=None)
    ap.add_argument("--write-benchmarks", action="store_true", help="replace the section in BENCHMARKS.md")
    ap.add_argument("--render", default=None, metavar="JSON", help="render a saved --json run instead of running")
    a = ap.parse_args(argv)
    if a.render:
        saved = json.loads(Path(a.render).read_text())
        text = render(saved["rows"], saved["machine"])
        print(text)
        if a.write_benchmarks:
            replace_section(ROOT / "BENCHMARKS.md", "QDQ formats in onnxruntime (benchmarks/qdq_formats.py)", text)
        return
    sys.path.insert(0, str(ROOT))
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name in a.models.split(","):
            rows.append(bench(name, a.repeat, tmp))
            print(json.dumps(rows[-1]), file=sys.stderr)
    info = dict(machine_info())
    info["flags"] = _cpu_flags()
    info["load"] = "load average %.1f / %.1f / %.1f (1/5/15 min) at the end of the run" % os.getloadavg()
    info["command"] = "python benchmarks/qdq_formats.py " + " ".join(argv if argv is not None else sys.argv[1:])
    if a.json:
        Path(a.json).write_text(json.dumps({"machine": info, "rows": rows}, indent=2))
    text = render(rows, info)
    print(text)
    if a.write_benchmarks:
        replace_section(ROOT / "BENCHMARKS.md", "QDQ formats in onnxruntime (benchmarks/qdq_formats.py)", text)


if __name__ == "__main__":
    main()
