"""Quantisation cost: wall time and peak RSS of onnxruntime's quantiser vs `dsedge quantize`.

For each zoo model (default MobileNetV2 and ResNet-50, built by `dsedge.zoo.build`) and N
calibration feeds from `dsedge.zoo.random_feeds(model, N, seed)` (written as a directory of
.npz files, one feed each, which both tools read lazily), two quantisations run, each in a
fresh Python process:

  (a) onnxruntime: `quant_pre_process` (with ort_baseline.py's retry chain) + `quantize_static`,
      QDQ, per-channel, QInt8 weights, QUInt8 activations, MinMax - the usual recipe;
  (b) dsedge: `dsedge quantize MODEL --calib DIR -o OUT.onnx` with its default method.

Wall time is measured around the child process (interpreter start and imports included, the
same for both); peak RSS is the child's own `ru_maxrss` from `os.wait4` (see common.py). After
both children have exited, each output model is run in onnxruntime on separate eval feeds and
its output SQNR against the float model is reported, so a fast-but-wrong quantiser shows.
Results: a markdown table (machine, date, load average, exact command) on stdout with the
ratios dsedge / onnxruntime (goal: <= 0.5 for both time and memory), and the section
"Quantisation cost" of BENCHMARKS.md at the repo root is replaced (or appended).

    python benchmarks/bench_quantize.py [--models mobilenet_v2,resnet50] [--feeds 32] [--repeat 1]

The machine may be shared: timings are only as quiet as the machine; the load average before
each run is recorded next to the numbers.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))
from common import command_line, machine_info, measure_child, replace_section, sqnr_db, write_feed_dir  # noqa: E402

SECTION = "Quantisation cost (benchmarks/bench_quantize.py)"
GOAL = 0.5


def dsedge_quantize_cmd(model: str, calib: str, out: str) -> list[str]:
    """The one dsedge-specific piece: the command that quantises MODEL with the default method."""
    return [sys.executable, "-m", "dsedge.cli", "quantize", model, "--calib", calib, "-o", out]


def ort_quantize_cmd(model: str, calib: str, out: str) -> list[str]:
    return [sys.executable, str(Path(__file__).resolve()), "--child-ort", model, calib, out]


def _child_ort(model: str, calib: str, out: str) -> int:
    """Child process (a): onnxruntime pre-processing + quantize_static. Imports no dsedge."""
    import logging
    import time

    import ort_baseline as ob
    from common import model_inputs, open_feeds
    import onnx

    logging.getLogger().setLevel(logging.ERROR)
    t0 = time.perf_counter()
    feeds = open_feeds(calib, model_inputs(onnx.load(model, load_external_data=False)))
    with tempfile.TemporaryDirectory(prefix="dsedge-benchq-") as tmp:
        step, pre, attempts = ob.preprocess(model, os.path.join(tmp, "pre.onnx"))
        t1 = time.perf_counter()
        ob.quantize_variant(pre, out, feeds, ob.VARIANTS[0])  # u8_minmax: QUInt8 MinMax QDQ per-channel
        t2 = time.perf_counter()
    print(json.dumps({"preprocess": step, "preprocess_s": t1 - t0, "quantize_s": t2 - t1}))
    return 0


def float_floor_cmd(model: str, calib: str, out: str) -> list[str]:
    return [sys.executable, str(Path(__file__).resolve()), "--child-float", model, calib, out]


def _child_float(model: str, calib: str, out: str) -> int:
    """Child process (c), the floor: start Python, load the float model in onnxruntime (default
    options) and run it once on every calibration feed, fetching only its outputs. Any quantiser
    that observes every feed's activations does at least this much. Writes a copy of the model
    to OUT so the harness sees an output file."""
    import shutil
    import time

    import onnxruntime as ort
    import onnx
    from common import model_inputs, open_feeds

    t0 = time.perf_counter()
    feeds = open_feeds(calib, model_inputs(onnx.load(model, load_external_data=False)))
    so = ort.SessionOptions()
    so.log_severity_level = 3
    sess = ort.InferenceSession(model, so, providers=["CPUExecutionProvider"])
    for f in feeds:
        sess.run(None, f)
    shutil.copyfile(model, out)
    print(json.dumps({"inference_s": time.perf_counter() - t0}))
    return 0


def _eval_sqnr(model: str, quant: str, feeds) -> float:
    import ort_baseline as ob
    ref, got = ob.run_model(model, feeds), ob.run_model(quant, feeds)
    return min(sqnr_db(ref[k], got[k]) for k in ref)


def bench_model(name: str, n_feeds: int, seed: int, repeat: int, n_eval: int, log) -> dict:
    from dsedge import zoo

    with tempfile.TemporaryDirectory(prefix=f"dsedge-benchq-{name}-") as tmp:
        model = zoo.build(name)
        mpath = os.path.join(tmp, "model.onnx")
        import onnx
        onnx.save(model, mpath)
        calib = write_feed_dir(zoo.random_feeds(model, n_feeds, seed), os.path.join(tmp, "calib"))
        ev = zoo.random_feeds(model, n_eval, seed + 1)
        eval_list = [{k: v[i] for k, v in ev.items()} for i in range(n_eval)]
        del model, ev
        row: dict = {"model": name, "feeds": n_feeds, "model_mb": os.path.getsize(mpath) / 1e6}
        for tool, mk in (("onnxruntime", ort_quantize_cmd), ("dsedge", dsedge_quantize_cmd),
                         ("float inference only", float_floor_cmd)):
            out = os.path.join(tmp, f"{tool}.onnx")
            runs = []
            for r in range(repeat):
                if os.path.exists(out):
                    os.remove(out)
                load = os.getloadavg()[0]
                log(f"{name}: {tool} run {r + 1}/{repeat} (load average {load:.2f}) ...")
                res = measure_child(mk(mpath, calib, out), env={**os.environ, "PYTHONWARNINGS": "ignore"})
                runs.append({"wall_s": res.wall_s, "peak_rss_mb": res.peak_rss_mb, "rc": res.returncode,
                             "load_avg": load})
                if res.returncode != 0 or not os.path.exists(out):
                    err = (res.stderr.strip().splitlines() or ["(no output)"])[-1]
                    runs[-1]["error"] = f"exit {res.returncode}: {err[:300]}"
                    log(f"  failed: {runs[-1]['error']}")
                    break
                if tool != "dsedge":
                    try:
                        runs[-1].update(json.loads(res.stdout.strip().splitlines()[-1]))
                    except (ValueError, IndexError):
                        pass
                log(f"  {res.wall_s:.2f} s, {res.peak_rss_mb:.0f} MiB")
            ok = [r for r in runs if "error" not in r]
            t = {"runs": runs, "ok": bool(ok) and len(ok) == len(runs)}
            if t["ok"]:
                t["wall_s"] = statistics.median(r["wall_s"] for r in ok)
                t["peak_rss_mb"] = statistics.median(r["peak_rss_mb"] for r in ok)
                if tool == "float inference only":
                    t["row"] = tool
                    row[tool] = t
                    continue
                try:
                    t["sqnr_db"] = _eval_sqnr(mpath, out, eval_list)
                except Exception as e:  # the quantised model does not run in onnxruntime
                    t["sqnr_error"] = f"{type(e).__name__}: {str(e)[:200]}"
            else:
                t["error"] = runs[-1].get("error")
            row[tool] = t
        a, b, c = row["onnxruntime"], row["dsedge"], row["float inference only"]
        if a["ok"] and b["ok"]:
            row["ratio_wall"] = b["wall_s"] / a["wall_s"]
            row["ratio_rss"] = b["peak_rss_mb"] / a["peak_rss_mb"]
        if a["ok"] and c["ok"]:
            row["floor_ratio_wall"] = c["wall_s"] / a["wall_s"]
    return row


def _cell(t: dict, key: str, fmt: str) -> str:
    return format(t[key], fmt) if t.get("ok") and key in t else "-"


def to_markdown(rows: list[dict], info: dict, cmd: str, repeat: int) -> str:
    lines = [f"Machine: {info['cpu']}, {info['cores']} logical cores, {info['os']}; Python {info['python']}, "
             f"numpy {info['numpy']}, onnxruntime {info.get('onnxruntime', '?')}. Date: {info['date']}.",
             f"Command: `{cmd}`",
             "",
             f"Each number is the median of {repeat} run(s), each a fresh process: wall time includes interpreter "
             "start-up and imports; peak RSS is the child's `ru_maxrss`. onnxruntime = `quant_pre_process` + "
             "`quantize_static` (QDQ, per-channel, QInt8 weights, QUInt8 activations, MinMax); dsedge = "
             "`dsedge quantize` with its default method. SQNR: min over outputs of the quantised model vs float "
             f"in onnxruntime on separate eval feeds. Goal: ratio dsedge/onnxruntime <= {GOAL} for time and memory.",
             "",
             "| model | feeds | tool | wall (s) | peak RSS (MiB) | output SQNR (dB) | load avg | note |",
             "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        for tool in ("onnxruntime", "dsedge", "float inference only"):
            t = r[tool]
            note = "" if t["ok"] else f"failed: {t.get('error', '')}".replace("|", "/")
            if t.get("sqnr_error"):
                note = f"output does not run in onnxruntime: {t['sqnr_error']}".replace("|", "/")
            if tool == "onnxruntime" and t["ok"] and "preprocess" in t["runs"][0]:
                r0 = t["runs"][0]
                note = (f"pre-processing: {r0['preprocess']}; in-process {r0['preprocess_s']:.2f} s load+pre-process "
                        f"+ {r0['quantize_s']:.2f} s quantize_static")
            load = max(x["load_avg"] for x in t["runs"])
            lines.append(f"| {r['model']} | {r['feeds']} | {tool} | {_cell(t, 'wall_s', '.2f')} | "
                         f"{_cell(t, 'peak_rss_mb', '.0f')} | {_cell(t, 'sqnr_db', '.2f')} | {load:.2f} | {note} |")
    loads = [x["load_avg"] for r in rows for tool in ("onnxruntime", "dsedge", "float inference only")
             for x in r[tool]["runs"]]
    cores = int(info.get("cores") or 1)
    if loads and max(loads) > 0.5 * cores:
        lines += ["", f"Note: the machine was busy during this run (1-minute load average up to {max(loads):.1f} "
                      f"on {cores} cores, other jobs running): wall times are noisy and only roughly comparable; "
                      "peak RSS is not affected. Rerun with `--repeat 3` on a quiet machine when the numbers matter."]
    lines += ["", "'float inference only' is the floor: Python start, onnxruntime loading the float model and "
                  "running it once on every feed (outputs only). Any quantiser that observes every feed does at "
                  "least that much work.",
              "", "| model | wall dsedge/onnxruntime | peak RSS dsedge/onnxruntime | goal met | floor: float inference / "
                  "onnxruntime quantiser |", "|---|---|---|---|---|"]
    for r in rows:
        floor = f"{r['floor_ratio_wall']:.2f}" if "floor_ratio_wall" in r else "n/a"
        if "ratio_wall" in r:
            met = "yes" if r["ratio_wall"] <= GOAL and r["ratio_rss"] <= GOAL else "no"
            lines.append(f"| {r['model']} | {r['ratio_wall']:.2f} | {r['ratio_rss']:.2f} | {met} | {floor} |")
        else:
            lines.append(f"| {r['model']} | n/a | n/a | n/a (a run failed) | {floor} |")
    return "\n".join(lines)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--models", default="mobilenet_v2,resnet50", help="comma-separated zoo names (default: %(default)s)")
    ap.add_argument("--feeds", type=int, default=32, help="calibration feeds (default: %(default)s)")
    ap.add_argument("--eval-feeds", type=int, default=8, help="eval feeds for the SQNR column (default: %(default)s)")
    ap.add_argument("--seed", type=int, default=0, help="seed of the random feeds (default: %(default)s)")
    ap.add_argument("--repeat", type=int, default=1, help="runs per tool and model; the median is reported (default: 1)")
    ap.add_argument("--benchmarks-md", default=str(ROOT / "BENCHMARKS.md"),
                    help="file whose section is replaced (default: BENCHMARKS.md at the repo root)")
    ap.add_argument("--no-write", action="store_true", help="do not touch BENCHMARKS.md")
    ap.add_argument("--json", action="store_true", help="print the raw results as JSON on stdout instead of markdown")
    ap.add_argument("--child-ort", nargs=3, metavar=("MODEL", "CALIB", "OUT"), help=argparse.SUPPRESS)
    ap.add_argument("--child-float", nargs=3, metavar=("MODEL", "CALIB", "OUT"), help=argparse.SUPPRESS)
    a = ap.parse_args(argv)
    if a.child_ort:
        return _child_ort(*a.child_ort)
    if a.child_float:
        return _child_float(*a.child_float)
    cmd = command_line()
    log = lambda m: print(m, file=sys.stderr, flush=True)  # noqa: E731
    rows = [bench_model(m, a.feeds, a.seed, a.repeat, a.eval_feeds, log) for m in a.models.split(",")]
    info = machine_info()
    md = to_markdown(rows, info, cmd, a.repeat)
    print(json.dumps({"machine": info, "command": cmd, "results": rows}, indent=2) if a.json else md)
    if not a.no_write:
        replace_section(a.benchmarks_md, SECTION, md)
        log(f"wrote section '{SECTION}' of {a.benchmarks_md}")
    return 0 if all("ratio_wall" in r for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
