"""Latency of the `.dse` in the C runtime against onnxruntime, in one process (issue 10's baseline).

    python benchmarks/latency.py [--models mobilenet_v2,resnet50,yolo_detector,transformer_encoder]
                                 [--seconds 20] [--json out.json] [--write-benchmarks]

Per model (zoo architectures at their default sizes, random zoo feeds): dsedge quantises it
(int8, defaults) and writes a `.dse`, and an fp32 `.dse` of the same optimised graph;
onnxruntime's `quantize_static` makes its fastest int8 form on x86 (QDQ, per-channel QInt8
weights, QUInt8 activations, MinMax). Then, on one feed, batch 1: dsedge.Runtime (int8, fp32)
and onnxruntime sessions (int8 QDQ and the float model, intra-op threads 1 and 2) are timed
in turn, round by round (a load change on a shared machine hits every engine alike), after a
warm-up run each; each engine runs at least 3 times, then until --seconds of its own time is
spent (200 runs at most). Reported: the median of one inference, and the ratio dsedge / onnxruntime at 1 thread
(the C runtime has no intra-op threads yet: `Runtime(threads=N)` runs N calls in parallel).
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
from common import command_line, machine_info, replace_section  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
MODELS = ("mobilenet_v2", "resnet50", "yolo_detector", "transformer_encoder")
TITLE = "Latency: the C runtime against onnxruntime (benchmarks/latency.py)"


def _ort_session(path, threads: int):
    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    so.log_severity_level = 3
    return ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])


def _ort_int8(src: str, dst: str, calib: list[dict]) -> None:
    from onnxruntime.quantization import CalibrationDataReader, CalibrationMethod, QuantFormat, QuantType
    from onnxruntime.quantization import quantize_static

    class Reader(CalibrationDataReader):
        def __init__(self):
            self.it = iter(calib)

        def get_next(self):
            return next(self.it, None)

    quantize_static(src, dst, Reader(), quant_format=QuantFormat.QDQ, per_channel=True,
                    activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
                    calibrate_method=CalibrationMethod.MinMax)


def _time_round_robin(engines: dict, seconds: float, min_runs: int = 3) -> dict:
    """{name: median ms}: one run of each engine per round, until every engine has min_runs
    runs and either --seconds of its own time or 200 runs."""
    for run in engines.values():
        run()                                           # warm-up (page faults, lazy init)
    t = {k: [] for k in engines}
    while True:
        active = [k for k in engines if len(t[k]) < min_runs or (sum(t[k]) < seconds and len(t[k]) < 200)]
        if not active:
            break
        for k in active:
            t0 = time.perf_counter()
            engines[k]()
            t[k].append(time.perf_counter() - t0)
    return {k: {"ms": 1000 * float(np.median(v)), "runs": len(v)} for k, v in t.items()}


def bench(name: str, seconds: float, tmp: str) -> dict:
    import dsedge
    import dsedge.zoo as zoo
    from dsedge.api import save_result
    m = zoo.build(name)
    src = os.path.join(tmp, name + ".onnx")
    onnx.save(m, src)
    arrs = zoo.random_feeds(m, n=17, seed=0)
    calib = [{k: v[i] for k, v in arrs.items()} for i in range(16)]
    feed = {k: v[16] for k, v in arrs.items()}
    t0 = time.perf_counter()
    r8 = dsedge.quantize(src, calib, progress=False)
    q_dsedge = time.perf_counter() - t0
    paths = {"dse_int8": os.path.join(tmp, name + ".int8.dse"), "dse_fp32": os.path.join(tmp, name + ".fp32.dse")}
    save_result(r8, paths["dse_int8"])
    save_result(dsedge.quantize(src, calib, precision="fp32", progress=False), paths["dse_fp32"])
    ort8 = os.path.join(tmp, name + ".ort.int8.onnx")
    t0 = time.perf_counter()
    _ort_int8(src, ort8, calib)
    q_ort = time.perf_counter() - t0
    runtimes = {k: dsedge.Runtime(p) for k, p in paths.items()}
    sessions = {"ort_int8_1t": _ort_session(ort8, 1), "ort_fp32_1t": _ort_session(src, 1),
                "ort_int8_2t": _ort_session(ort8, 2), "ort_fp32_2t": _ort_session(src, 2)}
    engines = {k: (lambda rt=rt: rt.run(feed)) for k, rt in runtimes.items()}
    engines.update({k: (lambda s=s: s.run(None, feed)) for k, s in sessions.items()})
    lat = _time_round_robin(engines, seconds)
    for rt in runtimes.values():
        rt.close()
    row = {"model": name, "latency": lat,
           "sizes": {k: os.path.getsize(p) for k, p in {**paths, "ort_int8": ort8, "fp32_onnx": src}.items()},
           "quantise_s": {"dsedge": round(q_dsedge, 1), "onnxruntime": round(q_ort, 1)}}
    row["ratio_int8"] = round(lat["dse_int8"]["ms"] / lat["ort_int8_1t"]["ms"], 2)
    row["ratio_fp32"] = round(lat["dse_fp32"]["ms"] / lat["ort_fp32_1t"]["ms"], 2)
    return row


def _cpu_flags() -> str:
    try:
        flags = next(line for line in open("/proc/cpuinfo") if line.startswith("flags")).split()
    except (OSError, StopIteration):
        return "?"
    return " ".join(f for f in ("avx2", "fma", "avx512f", "avx512_vnni", "avx_vnni") if f in flags) or "none"


def render(rows: list[dict], info: dict, cmd: str) -> str:
    def ms(row, k):
        return f"{row['latency'][k]['ms']:.1f}"
    out = [f"Machine: {info['cpu']}, {info['cores']} cores, CPU flags: {_cpu_flags()}; Python {info['python']}, "
           f"onnxruntime {info.get('onnxruntime', '?')}. Date: {info['date']}.",
           f"Command: `{cmd}`", "",
           "Batch 1, one feed, median ms of one inference (engines in turn, round by round, after a warm-up run). "
           "dsedge: `dsedge.Runtime` on the `.dse` (int8 default plan; fp32), one thread. onnxruntime: "
           "`quantize_static` QDQ, per-channel QInt8 weights, QUInt8 activations, MinMax (its fastest int8 "
           "form on x86), and the float model; intra-op threads 1 and 2. Ratio = dsedge / onnxruntime at 1 thread "
           "(issue 10's goals: int8 <= 0.8, fp32 <= 1.0).", "",
           "| model | dsedge int8 | onnxruntime int8 (1 / 2 threads) | int8 ratio | dsedge fp32 | onnxruntime fp32 "
           "(1 / 2 threads) | fp32 ratio | .dse int8 / QDQ int8 / fp32 ONNX size |",
           "|---|---:|---:|---:|---:|---:|---:|---|"]
    for r in rows:
        s = r["sizes"]
        out.append(f"| {r['model']} | {ms(r, 'dse_int8')} | {ms(r, 'ort_int8_1t')} / {ms(r, 'ort_int8_2t')} | "
                   f"{r['ratio_int8']:.1f}x | {ms(r, 'dse_fp32')} | {ms(r, 'ort_fp32_1t')} / {ms(r, 'ort_fp32_2t')} | "
                   f"{r['ratio_fp32']:.1f}x | {s['dse_int8'] / 2**20:.2f} / {s['ort_int8'] / 2**20:.2f} / "
                   f"{s['fp32_onnx'] / 2**20:.2f} MiB |")
    return "\n".join(out) + "\n"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--models", default=",".join(MODELS), help=f"comma-separated zoo names (default: {','.join(MODELS)})")
    ap.add_argument("--seconds", type=float, default=20.0, help="time budget per engine and model (default 20)")
    ap.add_argument("--json", default=None, help="also write the rows as JSON to this file")
    ap.add_argument("--write-benchmarks", action="store_true", help=f"replace the section '{TITLE}' in BENCHMARKS.md")
    a = ap.parse_args(argv)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name in a.models.split(","):
            print(f"{name} ...", file=sys.stderr, flush=True)
            rows.append(bench(name.strip(), a.seconds, tmp))
    info = machine_info()
    text = render(rows, info, command_line())
    print(text)
    if a.json:
        Path(a.json).write_text(json.dumps({"machine": info, "rows": rows}, indent=1))
    if a.write_benchmarks:
        replace_section(ROOT / "BENCHMARKS.md", TITLE, text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
