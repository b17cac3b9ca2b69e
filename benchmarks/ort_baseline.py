"""The onnxruntime quantisation baseline: the best that `quantize_static` does on a model.

dsedge must match, model by model, the *best* onnxruntime int8 result in output SQNR and task
agreement. This script produces that baseline:

  1. `quant_pre_process` (onnxruntime.quantization.shape_inference) on the float model. When it
     raises, retry with `skip_symbolic_shape=True`, then also `skip_optimization=True`, then use
     the model without pre-processing. Every attempt and its error is recorded.
  2. `quantize_static` (QDQ, per_channel=True, weights QInt8) for each of 7 variants:
     activations QUInt8 and QInt8 x calibrate_method MinMax / Entropy / Percentile, plus QUInt8
     MinMax with op_types_to_quantize=["Conv", "MatMul", "Gemm"]. A variant that fails is
     recorded with its error and the others go on.
  3. Every variant and the float model run in onnxruntime on the eval feeds; per output
     SQNR (dB) against the float outputs (all samples concatenated), the minimum over outputs,
     and an optional task metric `task(float_outputs, quant_outputs, extras) -> float` (higher
     is better; outputs stacked [n_samples, ...]; extras = non-input arrays of the eval npz,
     e.g. `label`). Built-in tasks: `top1` (arg-max agreement with float), `label` (accuracy).
  4. The best variant per metric. `--candidate Q.onnx` scores another quantised model (e.g.
     `dsedge quantize` output) with the same code and says whether it reaches the best.

Everything is written to a temporary directory that is removed afterwards (`--save-dir` keeps
the quantised models). Usage:

    python benchmarks/ort_baseline.py MODEL.onnx --calib CALIB.npz --eval EVAL.npz [--task top1] [--json]

Feeds: one .npz with a leading sample axis per input, or a directory of .npz files, one feed
each (see common.py). Exit code 0 when at least one variant succeeded, 1 when none did (or a
candidate falls short of the best), 2 for bad arguments or files.
"""
from __future__ import annotations

import argparse
import contextlib
import json
import logging
import math
import os
import shutil
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import onnx
import onnxruntime as ort
from onnxruntime.quantization import CalibrationDataReader, CalibrationMethod, QuantFormat, QuantType, quantize_static
from onnxruntime.quantization.shape_inference import quant_pre_process

if str(Path(__file__).resolve().parent) not in sys.path:
    sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import TASKS, FeedFileError, FeedSet, model_inputs, open_feeds, sqnr_db  # noqa: E402

Task = Callable[[dict, dict, dict], float]


@dataclass(frozen=True)
class Variant:
    name: str
    activation_type: str               # "QUInt8" | "QInt8"
    calibrate_method: str              # "MinMax" | "Entropy" | "Percentile"
    op_types_to_quantize: tuple[str, ...] | None = None


VARIANTS: tuple[Variant, ...] = (
    *(Variant(f"{'u8' if a == 'QUInt8' else 's8'}_{m.lower()}", a, m)
      for a in ("QUInt8", "QInt8") for m in ("MinMax", "Entropy", "Percentile")),
    Variant("u8_minmax_conv_matmul_gemm", "QUInt8", "MinMax", ("Conv", "MatMul", "Gemm")),
)

# (name, quant_pre_process keyword arguments); None = use the float model as it is
PREPROCESS_CHAIN: tuple[tuple[str, dict | None], ...] = (
    ("full", {}),
    ("skip_symbolic_shape", {"skip_symbolic_shape": True}),
    ("skip_symbolic_shape+skip_optimization", {"skip_symbolic_shape": True, "skip_optimization": True}),
    ("none", None),
)


class FeedReader(CalibrationDataReader):
    """onnxruntime calibration reader over a FeedSet (one feed at a time, read lazily)."""

    def __init__(self, feeds: FeedSet):
        self._feeds = feeds
        self._it = iter(feeds)

    def get_next(self):
        return next(self._it, None)

    def __len__(self):
        return len(self._feeds)


def _short(e: BaseException, limit: int = 400) -> str:
    msg = f"{type(e).__name__}: {e}".strip().replace("\n", " ")
    return msg if len(msg) <= limit else msg[:limit] + "..."


@contextlib.contextmanager
def _cwd(path: str):
    old = os.getcwd()
    os.chdir(path)
    try:
        yield
    finally:
        os.chdir(old)


def preprocess(model_path: str, out_path: str) -> tuple[str, str, list[dict]]:
    """Run the quant_pre_process retry chain. Returns (step used, model path to quantise, attempts)."""
    attempts = []
    for step, kw in PREPROCESS_CHAIN:
        if kw is None:
            attempts.append({"step": step, "ok": True, "error": None})
            return step, model_path, attempts
        try:
            if os.path.exists(out_path):
                os.remove(out_path)
            # quant_pre_process leaves temporary files (sym_shape_infer_temp.onnx, external data) in
            # the working directory when a step fails: run it beside its output
            with contextlib.redirect_stdout(sys.stderr), _cwd(os.path.dirname(os.path.abspath(out_path))):
                quant_pre_process(os.path.abspath(model_path), os.path.abspath(out_path), **kw)
            onnx.checker.check_model(out_path)
        except Exception as e:  # onnxruntime raises anything from AssertionError to its own errors
            attempts.append({"step": step, "ok": False, "error": _short(e)})
            continue
        attempts.append({"step": step, "ok": True, "error": None})
        return step, out_path, attempts
    raise AssertionError("unreachable: the chain ends with 'none'")


def quantize_variant(model_path: str, out_path: str, calib: FeedSet, v: Variant) -> None:
    """quantize_static with one variant's settings (QDQ, per-channel, QInt8 weights)."""
    with contextlib.redirect_stdout(sys.stderr):  # the calibrators print progress on stdout
        quantize_static(
            model_path, out_path, FeedReader(calib),
            quant_format=QuantFormat.QDQ,
            op_types_to_quantize=list(v.op_types_to_quantize) if v.op_types_to_quantize else None,
            per_channel=True,
            activation_type=getattr(QuantType, v.activation_type),
            weight_type=QuantType.QInt8,
            calibrate_method=getattr(CalibrationMethod, v.calibrate_method),
        )


def run_model(model_path: str, feeds: list[dict[str, np.ndarray]], threads: int = 0) -> dict[str, np.ndarray]:
    """Run a model in onnxruntime (CPU) on each feed; {output name: stacked [n_samples, ...]}."""
    so = ort.SessionOptions()
    so.log_severity_level = 3
    if threads:
        so.intra_op_num_threads = threads
    sess = ort.InferenceSession(model_path, so, providers=["CPUExecutionProvider"])
    names = [o.name for o in sess.get_outputs()]
    outs: dict[str, list] = {n: [] for n in names}
    for feed in feeds:
        for n, val in zip(names, sess.run(names, feed)):
            outs[n].append(np.asarray(val))
    return {n: np.stack(v) for n, v in outs.items()}


def score(ref: dict[str, np.ndarray], got: dict[str, np.ndarray], extras: dict, task: Task | None) -> dict:
    """Per-output SQNR, its minimum, and the task metric of one quantised model's outputs."""
    per = {n: sqnr_db(ref[n], got[n]) for n in ref}
    out = {"sqnr_db": per, "min_sqnr_db": min(per.values()) if per else float("nan")}
    if task is not None:
        out["task"] = float(task(ref, got, extras))
    return out


def _better(a: float, b: float) -> bool:
    return not math.isnan(a) and (math.isnan(b) or a > b)


def best_per_metric(variants: list[dict]) -> dict:
    """{metric: {"variant": name, "value": v}} over the successful variants; first wins ties."""
    best: dict[str, dict] = {}
    for v in variants:
        if not v["ok"]:
            continue
        metrics = {"min_sqnr_db": v["min_sqnr_db"], **{f"sqnr_db[{k}]": x for k, x in v["sqnr_db"].items()}}
        if "task" in v:
            metrics["task"] = v["task"]
        for m, x in metrics.items():
            if m not in best or _better(x, best[m]["value"]):
                best[m] = {"variant": v["name"], "value": x}
    return best


def run_baseline(model_path, calib, eval_feeds, *, task: Task | None = None,
                 variants: tuple[Variant, ...] = VARIANTS, candidate: str | None = None,
                 save_dir: str | None = None, threads: int = 0, log=None) -> dict:
    """The whole baseline for one model. `calib` / `eval_feeds` are paths or FeedSets."""
    model_path = str(model_path)
    inputs = model_inputs(onnx.load(model_path, load_external_data=False))
    calib = calib if isinstance(calib, FeedSet) else open_feeds(calib, inputs)
    evalset = eval_feeds if isinstance(eval_feeds, FeedSet) else open_feeds(eval_feeds, inputs)
    log = log or (lambda msg: None)
    eval_list = list(evalset)
    report: dict = {"model": model_path, "n_calib": len(calib), "n_eval": len(eval_list),
                    "onnxruntime": ort.__version__}
    with tempfile.TemporaryDirectory(prefix="dsedge-ortbl-") as tmp:
        t0 = time.perf_counter()
        step, pre_path, attempts = preprocess(model_path, os.path.join(tmp, "pre.onnx"))
        report["preprocess"] = {"used": step, "attempts": attempts, "seconds": time.perf_counter() - t0}
        log(f"pre-processing: {step}" + "".join(f"\n  {a['step']} failed: {a['error']}" for a in attempts if not a["ok"]))
        ref = run_model(model_path, eval_list, threads)
        report["outputs"] = list(ref)
        results = []
        for v in variants:
            row = {**asdict(v), "ok": False, "error": None}
            out = os.path.join(tmp, f"{v.name}.onnx")
            t0 = time.perf_counter()
            try:
                quantize_variant(pre_path, out, calib, v)
                row["quantize_s"] = time.perf_counter() - t0
                row["size_bytes"] = os.path.getsize(out)
                row.update(score(ref, run_model(out, eval_list, threads), evalset.extras, task))
                row["ok"] = True
                if save_dir:
                    os.makedirs(save_dir, exist_ok=True)
                    shutil.copy(out, os.path.join(save_dir, f"{v.name}.onnx"))
            except Exception as e:
                row["error"] = _short(e)
            log(f"{v.name:28s} " + (f"min SQNR {row['min_sqnr_db']:7.2f} dB" + (f"  task {row['task']:.4f}" if "task" in row else "")
                                    if row["ok"] else f"FAILED {row['error']}"))
            results.append(row)
        report["variants"] = results
        report["best"] = best_per_metric(results)
        if candidate:
            report["candidate"] = score_candidate(candidate, ref, eval_list, evalset.extras, task, report["best"], threads)
    return report


def score_candidate(path: str, ref: dict, eval_list: list, extras: dict, task: Task | None, best: dict,
                    threads: int = 0) -> dict:
    """Score another quantised model (e.g. dsedge's QDQ output) and compare with the best variants."""
    row = {"model": str(path), "ok": False, "error": None}
    try:
        row.update(score(ref, run_model(str(path), eval_list, threads), extras, task))
        row["ok"] = True
    except Exception as e:
        row["error"] = _short(e)
        return row
    metrics = {"min_sqnr_db": row["min_sqnr_db"], **{f"sqnr_db[{k}]": x for k, x in row["sqnr_db"].items()}}
    if "task" in row:
        metrics["task"] = row["task"]
    row["reaches_best"] = {m: (x >= best[m]["value"]) for m, x in metrics.items() if m in best}
    return row


def _jsonable(x):
    if isinstance(x, float) and not math.isfinite(x):
        return str(x)  # "inf", "-inf", "nan": JSON has no literal for them
    if isinstance(x, dict):
        return {k: _jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_jsonable(v) for v in x]
    return x


def format_table(report: dict) -> str:
    outs = report["outputs"]
    lines = [f"model {report['model']}: {report['n_calib']} calibration / {report['n_eval']} eval feeds, "
             f"onnxruntime {report['onnxruntime']}, pre-processing: {report['preprocess']['used']}",
             "| variant | " + " | ".join(f"SQNR {o} (dB)" for o in outs) + " | min SQNR | task | quantise s |",
             "|---|" + "---|" * (len(outs) + 3)]
    for v in report["variants"]:
        if v["ok"]:
            task = f"{v['task']:.4f}" if "task" in v else "-"
            lines.append(f"| {v['name']} | " + " | ".join(f"{v['sqnr_db'][o]:.2f}" for o in outs)
                         + f" | {v['min_sqnr_db']:.2f} | {task} | {v['quantize_s']:.2f} |")
        else:
            lines.append(f"| {v['name']} | failed: {v['error'][:120]} |" + " |" * (len(outs) + 2))
    lines.append("")
    for m, b in report["best"].items():
        lines.append(f"best {m}: {b['variant']} ({b['value']:.4f})")
    c = report.get("candidate")
    if c:
        if c["ok"]:
            lines.append(f"candidate {c['model']}: min SQNR {c['min_sqnr_db']:.2f} dB"
                         + (f", task {c['task']:.4f}" if "task" in c else "")
                         + "; reaches best: " + ", ".join(f"{m}={'yes' if ok else 'NO'}" for m, ok in c["reaches_best"].items()))
        else:
            lines.append(f"candidate {c['model']}: failed to run: {c['error']}")
    return "\n".join(lines)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("model", help="the float ONNX model")
    ap.add_argument("--calib", required=True, help="calibration feeds: .npz with a sample axis, or a directory of .npz")
    ap.add_argument("--eval", required=True, help="evaluation feeds, same layouts (extra arrays such as 'label' are kept for tasks)")
    ap.add_argument("--task", choices=sorted(TASKS), help="task metric: top1 = arg-max agreement with float, "
                    "label = accuracy against the eval set's 'label' array (default: none)")
    ap.add_argument("--variants", help="comma-separated subset of variant names (default: all 7: "
                    + ", ".join(v.name for v in VARIANTS) + ")")
    ap.add_argument("--candidate", help="another quantised ONNX model (e.g. dsedge's) to score against the best variant")
    ap.add_argument("--save-dir", help="keep the quantised models in this directory (default: temporary, removed)")
    ap.add_argument("--threads", type=int, default=0, help="onnxruntime intra-op threads for evaluation (default: all)")
    ap.add_argument("--json", action="store_true", help="print the report as JSON on stdout (default: a table on stderr)")
    a = ap.parse_args(argv)
    logging.getLogger().setLevel(logging.ERROR)  # onnxruntime.quantization logs through the root logger
    variants = VARIANTS
    if a.variants:
        by_name = {v.name: v for v in VARIANTS}
        unknown = [n for n in a.variants.split(",") if n not in by_name]
        if unknown:
            ap.error(f"unknown variant(s) {unknown}; known: {', '.join(by_name)}")
        variants = tuple(by_name[n] for n in a.variants.split(","))
    if not os.path.isfile(a.model):
        ap.error(f"{a.model}: no such model file")
    try:
        report = run_baseline(a.model, a.calib, a.eval, task=TASKS[a.task] if a.task else None, variants=variants,
                              candidate=a.candidate, save_dir=a.save_dir, threads=a.threads,
                              log=lambda m: print(m, file=sys.stderr, flush=True))
    except FeedFileError as e:
        print(f"ort_baseline: error: {e}", file=sys.stderr)
        return 2
    if a.json:
        print(json.dumps(_jsonable(report), indent=2))
    else:
        print(format_table(report), file=sys.stderr)
    if not any(v["ok"] for v in report["variants"]):
        return 1
    c = report.get("candidate")
    if c and (not c["ok"] or not all(c["reaches_best"].values())):
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
