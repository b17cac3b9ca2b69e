"""The Python API behind every CLI command (each command is one call here)."""
from __future__ import annotations

import hashlib
import json
import tempfile
import time
from dataclasses import fields
from pathlib import Path

import numpy as np

from .artifact import LAYOUT_F16W
from .errors import ModelError
from .export import export, save_dse
from .export.dse import RecordCache
from .export.specialize import input_shapes_from_cli
from .ir import Graph
from .quant.fp16 import ONNX_METADATA_KEY as FP16_ARITH_ONNX_KEY, marked as fp16_marked
from .quant.kinds import form_of
from .quant.precision import PrecisionPlan, plan_precision, quantize_with_plan
from .quant.quantize import QuantConfig, QuantResult
from .debug import DebugConfig, debug_graph
from .ops import REGISTRY
from .report_html import render_debug_report
from .runtime import Runtime
from .util import atomic_write_bytes, ort_session
from .util import progress as progress_bar


PREPROCESSING_ONNX_KEY = "dsedge.preprocessing"   # QDQ ONNX metadata_props; .dse: "preprocessing"


def load_graph(path) -> Graph:
    p = Path(path)
    if not p.exists():
        raise ModelError(f"{path}: no such file")
    if p.suffix.lower() == ".onnx" or p.suffix == "":
        from .converters.onnx.reader import load_onnx
        return load_onnx(p)
    if p.suffix.lower() == ".tflite":
        raise ModelError(f"{path}: TFLite import is not implemented yet", hint="convert it to ONNX first (tf2onnx)")
    from .converters.onnx.reader import load_onnx
    return load_onnx(p)


def node_macs(g: Graph, n) -> int | None:
    """Multiply-accumulates of one node from static shapes (None when unknown)."""
    def shape(name):
        info = g.tensor_info(name)
        return info.shape if info.is_static else None

    out = shape(n.outputs[0]) if n.outputs and n.outputs[0] else None
    if n.op in ("Conv", "Gemm", "MatMul") and out is None:
        return None                                   # a dynamic output shape: unknown, not 0
    if n.op == "Conv":
        w = shape(n.inputs[1])
        if w is None:
            return None
        return int(np.prod(out, dtype=np.int64) * int(np.prod(w[1:], dtype=np.int64)))
    if n.op == "ConvTranspose":
        x, w = shape(n.inputs[0]), shape(n.inputs[1])
        if x is None or w is None:
            return None
        return int(np.prod(x, dtype=np.int64) * int(np.prod(w[1:], dtype=np.int64)))
    if n.op in ("Gemm", "MatMul"):
        a = shape(n.inputs[0])
        if a is None:
            return None
        k = a[0] if (n.op == "Gemm" and n.attrs.get("transA", 0)) else a[-1]
        return int(np.prod(out, dtype=np.int64) * k)
    if n.op in ("LSTM", "GRU", "RNN"):
        x, w, r = shape(n.inputs[0]), shape(n.inputs[1]), shape(n.inputs[2])
        if x is None or w is None or r is None:
            return None
        steps = x[0] * x[1]
        return int(steps * (np.prod(w, dtype=np.int64) + np.prod(r, dtype=np.int64)))
    return 0


def int8_capable(g: Graph, n) -> tuple[bool, str]:
    """Whether a node has an int8 form, and why not."""
    d = REGISTRY.get(n.op, n.domain)
    if d is None or d.quant is None:
        return False, "no int8 form (stays float)"
    k = form_of(g, n)
    if k.weight_bearing:
        w = n.inputs[1] if len(n.inputs) > 1 else ""
        if w not in g.consts:
            return False, "weights are not constant"
    return True, k.name


def inspect_dse(path) -> dict:
    """What a `.dse` holds: inputs/outputs (names, shapes, dtypes, qparams), nodes by op and
    dtype, weight bytes, arena vs its lower bound, format overhead, metadata keys."""
    from .artifact import CONST, read
    a = read(path)
    size = Path(path).stat().st_size

    def tinfo(i):
        t = a.tensors[i]
        d = {"name": t.name, "dtype": t.dtype, "shape": list(t.shape)}
        if t.quant is not None:
            q = t.quant
            d["quant"] = ({"scale": q.scales[0], "zero_point": q.zero_points[0]} if q.axis is None else
                          {"axis": q.axis, "channels": len(q.scales)})
        return d

    by_op: dict[str, int] = {}
    for n in a.nodes:
        op = REGISTRY.by_id(n.op).name if n.op in {d.id for d in REGISTRY.all()} else f"op{n.op}"
        dt = a.tensors[n.outputs[0]].dtype if n.outputs and n.outputs[0] >= 0 else "?"
        key = f"{op}:{dt}"
        by_op[key] = by_op.get(key, 0) + 1
    meta = a.meta
    weight = sum(t.nbytes for t in a.tensors if t.storage == CONST)
    scales = sum(4 * len(t.quant.scales) for t in a.tensors if t.quant is not None)
    user = sum(len(str(v).encode()) for k, v in meta.items() if k.startswith("source."))
    plan = {}
    try:
        plan = json.loads(meta.get("memory_plan", "{}"))
    except ValueError:
        pass
    overhead = size - weight - scales - user
    return {
        "model": str(path), "format": "dse", "file_bytes": size,
        "inputs": [tinfo(i) for i in a.inputs], "outputs": [tinfo(i) for i in a.outputs],
        "nodes": len(a.nodes), "nodes_by_op_dtype": dict(sorted(by_op.items())),
        "weight_bytes": weight, "arena_bytes": a.arena_size, "scratch_bytes": a.scratch_size,
        "arena_lower_bound_bytes": plan.get("lower_bound_bytes"),
        "format_overhead_bytes": overhead, "format_overhead_pct": round(100 * overhead / size, 3) if size else None,
        "guards": sorted(k[len("guard."):] for k in meta if k.startswith("guard.")),
        "metadata_keys": sorted(meta),
        "producer": meta.get("producer"),
    }


def inspect_model(path) -> dict:
    if str(path).endswith(".dse"):
        if not Path(path).exists():
            raise ModelError(f"{path}: no such file")
        return inspect_dse(path)
    g = load_graph(path)
    from .passes.simplify import optimize
    opt = optimize(g.copy())
    def tinfo(name, graph):
        i = graph.tensor_info(name)
        return {"name": name, "dtype": None if i.dtype is None else str(i.dtype),
                "shape": None if i.shape is None else list(i.shape)}

    macs = 0
    macs_known = True
    layers = []
    for n in opt.nodes:
        m = node_macs(opt, n)
        if m is None:
            macs_known = False
        else:
            macs += m
        ok, why = int8_capable(opt, n)
        layers.append({"name": n.name, "op": (n.domain + "." if n.domain else "") + n.op,
                       "macs": m, "int8": ok, "why": why})
    weights = [c for c in g.consts.values() if c.dtype.kind == "f" and c.size > 1]
    return {
        "model": str(path),
        "opset": g.opset,
        "inputs": [tinfo(i, g) for i in g.inputs],
        "outputs": [tinfo(o, opt) for o in g.outputs],
        "ops": g.summary_counts(),
        "nodes": sum(1 for _ in g.walk()),
        "nodes_after_passes": len(opt.nodes),
        "parameters": int(sum(c.size for c in weights)),
        "weight_bytes": int(sum(c.nbytes for c in weights)),
        "macs": macs if macs_known else None,
        "int8_nodes": sum(1 for x in layers if x["int8"]),
        "layers": layers,
        "metadata": dict(g.metadata),
    }


def _file_size(path) -> int | None:
    try:
        return Path(path).stat().st_size
    except OSError:
        return None


class Quantized(QuantResult):
    """What `dsedge.quantize` returns: the quantiser's QuantResult (dsedge/quant/quantize.py)
    with the API's writers attached."""

    def save(self, path, **kw) -> None:
        """Write the quantised model: `*.onnx` (QDQ ONNX) or `*.dse` (the C runtime's artifact);
        keyword arguments as `save_result` (e.g. qdq_format="u8s8")."""
        save_result(self, path, **kw)

    def summary(self) -> dict:
        """Sizes aside, what `dsedge quantize --json` prints: precision per layer and why, SQNR."""
        return quantize_summary(self)


def _api_result(r: QuantResult) -> Quantized:
    return Quantized(**{f.name: getattr(r, f.name) for f in fields(r)})


def default_output_path(model, precision: str = "int8") -> str:
    """Where `dsedge quantize MODEL` writes without -o: `<stem>.int8.onnx` next to the input
    (`<stem>.fp16.onnx` / `<stem>.fp32.onnx` for those precisions)."""
    p = Path(model)
    stem = p.stem if p.suffix.lower() == ".onnx" else p.name
    return str(p.with_name(f"{stem}.{precision}.onnx"))


def parse_drop(text) -> float:
    """'1%' -> 0.01, '0.01' -> 0.01 (the --max-drop budget, a fraction of the metric)."""
    t = str(text).strip()
    try:
        v = float(t[:-1]) / 100.0 if t.endswith("%") else float(t)
    except ValueError:
        raise ModelError(f"--max-drop {text!r}: expected a percentage like 1% or a fraction like 0.01") from None
    if not 0.0 <= v < 1.0:
        raise ModelError(f"--max-drop {text!r}: must be at least 0 and below 100 %")
    return v


def _feed_list(g: Graph, calib, preprocess=None) -> tuple[list, object]:
    """Every feed of `calib` (path or feed dicts) as a list (the planner holds back the last
    ones), and the preprocessing spec of an image or WAV folder (None otherwise)."""
    feeds = calib
    if isinstance(calib, (str, Path)):
        from .calibration import open_feeds
        feeds = open_feeds(calib, g, preprocess=preprocess)
    spec = getattr(feeds, "spec", None)
    if hasattr(feeds, "items") and not isinstance(feeds, dict):
        return [f for _, f in feeds.items()], spec
    return ([feeds] if isinstance(feeds, dict) else list(feeds)), spec


def _sha256(path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for b in iter(lambda: f.read(1 << 20), b""):
            h.update(b)
    return h.hexdigest()


def parse_size(text, what: str = "--memory-budget") -> int:
    """'2MB' -> 2,000,000 bytes, '512KiB' -> 524,288, '1.5M' -> 1,500,000, '4096' -> 4096."""
    t = str(text).strip().replace(" ", "")
    units = {"": 1, "b": 1, "k": 10**3, "kb": 10**3, "kib": 2**10, "m": 10**6, "mb": 10**6, "mib": 2**20,
             "g": 10**9, "gb": 10**9, "gib": 2**30}
    num = t.rstrip("BbKkMmGgIi")
    try:
        v = float(num) * units[t[len(num):].lower()]
    except (ValueError, KeyError):
        raise ModelError(f"{what} {text!r}: expected a size like 2MB, 512KiB or 1500000") from None
    if not v > 0:
        raise ModelError(f"{what} {text!r}: must be more than 0 bytes")
    return int(v)


def _same_shapes(feeds) -> dict | None:
    shapes = {k: list(np.shape(v)) for k, v in feeds[0].items()}
    return shapes if all({k: list(np.shape(v)) for k, v in f.items()} == shapes for f in feeds) else None


def _shape_groups(feeds) -> list[list[int]]:
    """The feeds' indices grouped by their input shapes (groups in order of first appearance)."""
    groups: dict[tuple, list[int]] = {}
    for i, f in enumerate(feeds):
        groups.setdefault(tuple((k, tuple(np.shape(v))) for k, v in f.items()), []).append(i)
    return list(groups.values())


def _run_in_c(result, feeds) -> list:
    """A candidate plan run by the C runtime: exported as a .dse specialised to the feeds' shapes
    (one per distinct set of input shapes: a .dse has one input shape per input), loaded from
    memory, run on every feed: (outputs in the feeds' order, {"bytes": the .dse's bytes,
    "arena_bytes": its arena, "widened_bytes", "ms": the median time of one run}); with several
    shapes, the sizes are those of the shape that needs the most memory. Falls back to the
    numpy interpreter (outputs only) when the model cannot be written as a .dse for one of the
    shapes."""
    from .errors import DseError
    from .interp import run
    feeds = list(feeds)
    cache = RecordCache()        # the constants' records, built once for all the shapes
    # nodes in fp16 arithmetic are judged by their binary16 bytes (docs/quant-arith.md §16), which
    # the REF kernels give on any host (the optimised float kernels widen them)
    half = bool(fp16_marked(result.graph))
    outs: list = [None] * len(feeds)
    times, infos = [], []
    for idx in _shape_groups(feeds):
        shapes = {k: list(np.shape(v)) for k, v in feeds[idx[0]].items()}
        try:
            ex = export(result, input_shapes=shapes, cache=cache)
        except DseError:
            return [run(result.graph, f) for f in feeds]
        data = ex.artifact.to_bytes()
        widened = sum(2 * t.nbytes for t in ex.artifact.tensors if t.layout == LAYOUT_F16W)   # the loader's copies
        with Runtime(data, **({"kernels": "ref"} if half else {})) as rt:
            infos.append({"bytes": len(data), "arena_bytes": int(rt.arena_size), "widened_bytes": widened})
            for i in idx:
                t0 = time.perf_counter()
                outs[i] = rt.run(feeds[i])
                times.append(time.perf_counter() - t0)
    if not infos:
        return outs
    info = max(infos, key=lambda d: d["bytes"] + d["arena_bytes"] + d["widened_bytes"])
    return outs, ({**info, "ms": 1e3 * float(np.median(times))} if not half else info)


class _NodeTimes:
    """Per-node times of a plan for the latency objective (precision.plan_prepared's
    `node_times(result, precision) -> {node: ms}`): the candidate written as a .dse and each node
    timed by the C runtime's profiler on the host (`dsedge profile`), or, for the nodes a
    device profile names (`dsedge-run --profile --json` of the model's int8 and fp32 .dse on
    the target: `--latency-profile`), the device's times; a node the device profiles miss gets
    its host time scaled by the device/host ratio of the nodes they share, per precision."""

    def __init__(self, feeds, profiles=(), repeat: int = 5):
        self.feed, self.repeat = feeds[0], repeat
        self.measured: dict[str, dict[str, float]] = {"int8": {}, "float": {}}   # the device's, per precision
        for path in profiles:
            for name, prec, ms in _read_profile(path):
                self.measured[prec][name] = ms
        self.source = ("device profile " + ", ".join(str(p) for p in profiles)) if profiles else "host profile"
        self.device = bool(profiles)   # else the planner checks a "faster in float" node by timing the plans

    def host(self, result) -> dict[str, float]:
        with tempfile.TemporaryDirectory(prefix="dsedge-plan-") as d:
            path = Path(d) / "profile.dse"
            save_dse(result, path, input_shapes={k: list(np.shape(v)) for k, v in self.feed.items()})
            with Runtime(str(path)) as rt:
                prof = rt.profile(self.feed, repeat=self.repeat)
        out: dict[str, float] = {}
        for r in prof:
            out[r.name] = out.get(r.name, 0.0) + float(r.median_ms)
        return out

    def compare(self, a, b, rounds: int = 15, round_s: float = 2e-3) -> float:
        """Plan `a`'s time over plan `b`'s on this host: the median over `rounds` rounds of the
        ratio of their times on the first held-back feed, the two run alternately (first a, then
        b first) after two warm-up runs each, each round at least `round_s` per plan (a tiny model
        is run several times). The plans are timed in the same moments: this host's speed swings
        between moments by more than the 2 % a latency decision needs (digits: a plan timed 0.05
        ms against all int8's 0.03 ms had been judged faster from two medians taken apart)."""
        shapes = {k: list(np.shape(v)) for k, v in self.feed.items()}
        rts = [Runtime(export(r, input_shapes=shapes).artifact.to_bytes()) for r in (a, b)]
        try:
            for rt in rts:
                rt.run(self.feed)
                rt.run(self.feed)
            t0 = time.perf_counter()
            rts[0].run(self.feed)
            inner = max(1, min(1000, int(round_s / max(time.perf_counter() - t0, 1e-7))))
            ratios = []
            for i in range(rounds):
                t = [0.0, 0.0]
                for j in ((0, 1) if i % 2 == 0 else (1, 0)):
                    t0 = time.perf_counter()
                    for _ in range(inner):
                        rts[j].run(self.feed)
                    t[j] = time.perf_counter() - t0
                ratios.append(t[0] / max(t[1], 1e-12))
            return float(np.median(ratios))
        finally:
            for rt in rts:
                rt.close()

    def __call__(self, result, precision: str) -> dict[str, float]:
        host = self.host(result)
        dev = self.measured[precision]
        if not dev:
            return host
        shared = [k for k in host if k in dev]
        h = sum(host[k] for k in shared)
        ratio = sum(dev[k] for k in shared) / h if shared and h > 0 else 1.0
        return {k: dev.get(k, v * ratio) for k, v in host.items()}


def _read_profile(path) -> list[tuple[str, str, float]]:
    """(node, "int8" | "float", median ms) of every node of a `--profile --json` file, the
    precision told by the kernel that ran it (dse_f32_*: float; other dtypes: integer)."""
    try:
        d = json.loads(Path(path).read_text())
        rows = [(str(r["name"]), "float" if str(r["kernel"]).startswith("dse_f32_") else "int8",
                 float(r["median_ms"])) for r in d["nodes"]]
    except OSError as e:
        raise ModelError(f"{path}: cannot read the latency profile ({e.strerror})") from None
    except (ValueError, KeyError, TypeError) as e:
        raise ModelError(f"{path}: not a per-node profile ({type(e).__name__}: {e})",
                         hint="write one with `bin/dsedge-run MODEL.dse --profile --json > FILE` on the target "
                              "(or `dsedge profile MODEL.dse --json`)") from None
    if d.get("ref_kernels"):
        raise ModelError(f"{path}: a profile of the reference kernels (--ref) says little about the target's speed",
                         hint="profile without --ref")
    return rows


def plan(model, calib, *, max_drop=0.01, minimize: str = "size", holdout: int | None = None, metric: str | None = None,
         method: str = "auto", bias_correction: bool = True, progress: bool = True, preprocess=None,
         allow_constant=(), pin_constant_inputs: bool = False, runtime: str = "c", int4: bool = False,
         memory_budget=None, latency_profiles=(), a16w8: bool = False, fp16_arith: bool = False,
         input_shapes=None):
    """Plan each node's precision (int8 or float) of `model` under an accuracy budget on `calib`
    (dsedge/quant/precision.py): the last `holdout` feeds are held back and scored against the
    float model. Candidates run in the C runtime (`runtime="c"`; "numpy": the interpreter).
    `int4` (minimize="size"): int8 weight-bearing nodes may also get int4 weights (W4A8).
    `a16w8`: the weighted nodes the search keeps float get int16 activations with int8 weights
    (A16W8, docs/quant-arith.md §15) instead when that plan meets the budget.
    `fp16_arith`: at the end, the kept-float Conv/Gemm/MatMul nodes compute in binary16 (fp16
    weights and arithmetic, docs/quant-arith.md §16) when that plan still meets the budgets,
    judged with binary16 arithmetic (what an ARMv8.2-A FP16 device computes).
    `memory_budget` (bytes, or a size like "2MB"): the .dse plus its arena must fit in it.
    `minimize="latency"` costs each node by its time in the C runtime, per node, on this host, or
    from `latency_profiles` (`dsedge-run --profile --json` files of the model's int8 and fp32
    .dse measured on the target).
    Returns a PrecisionPlan (`.to_json()` is the lockfile for `quantize(plan=...)`)."""
    owned = not isinstance(model, Graph)
    g = load_graph(model) if owned else model
    feeds, _ = _feed_list(g, calib, preprocess)
    cfg = QuantConfig(method=method, bias_correction=bias_correction, progress=False,
                      pin_constant_inputs=pin_constant_inputs, allow_constant=tuple(allow_constant),
                      export_shapes=_export_shapes(input_shapes))
    mem = parse_size(memory_budget) if isinstance(memory_budget, str) else memory_budget
    if latency_profiles and minimize != "latency":
        raise ModelError("a latency profile is for --minimize latency")
    if (mem is not None or latency_profiles) and runtime != "c":
        raise ModelError("memory budgets and latency profiles need the C runtime to run the candidates")
    times = None
    if minimize == "latency" and runtime == "c":
        held_shapes = _same_shapes(list(feeds)[-1:])
        times = _NodeTimes(list(feeds)[-1:], latency_profiles) if held_shapes is not None else None
        for p in latency_profiles:   # read now: a bad file fails before the long part
            _read_profile(p)
    bar = None
    if progress:
        from .util import progress as progress_bar
        bar = progress_bar(None, desc="planning precision", enabled=True)

    def tick(i, why, drop):
        if bar is not None and hasattr(bar, "set_postfix_str"):
            bar.update(1)
            bar.set_postfix_str(f"{why[:40]}: drop {drop:.4f}")
    p, _ = plan_precision(g, feeds, max_drop=parse_drop(max_drop) if isinstance(max_drop, str) else float(max_drop),
                          objective=minimize, holdout=holdout, metric=metric, cfg=cfg, progress=tick,
                          copy_graph=not owned, run_plan=_run_in_c if runtime == "c" else None, int4=int4,
                          memory_budget=mem, node_times=times, a16w8=a16w8, fp16_arith=fp16_arith)
    if bar is not None and hasattr(bar, "close"):
        bar.close()
    if owned:
        p.model_sha256 = _sha256(model)
    return p


def load_plan(path):
    """A precision plan (lockfile) written by `dsedge plan`."""
    try:
        text = Path(path).read_text()
    except OSError as e:
        raise ModelError(f"{path}: cannot read the plan ({e.strerror})") from None
    return PrecisionPlan.from_json(text, str(path))


def quantize(model, calib=None, *, precision: str = "int8", method: str = "auto", keep_float=(),
             bias_correction: bool = True, progress: bool = True, pin_constant_inputs: bool = False,
             preprocess=None, allow_constant=(), plan=None, max_drop=None, minimize: str = "size",
             weight_bits: int = 8, weight_group: int = 0, node_weight_bits=(), holdout: int | None = None,
             metric: str | None = None, memory_budget=None, latency_profiles=(), a16w8=(), fp16_arith=(),
             input_shapes=None):
    """Import `model` (path or Graph), calibrate on `calib` (path or feed dicts), quantise.

    `pin_constant_inputs` (for a .dse, which guards them): integer inputs that If/Loop read and
    every feed holds constant become constants, and input shapes are fixed at the feeds' (one per
    input) where that folds more If/Loop nodes; `input_shapes` ({name: shape}, the .dse's shapes
    when the caller fixes them) that differ from the feeds' leave the shapes free.

    `fp16_arith` (node names, op types, or "all") gives those float Conv/Gemm/MatMul nodes (kept
    float with precision "int8", or every one with "fp16") fp16 weights and fp16 arithmetic
    (docs/quant-arith.md §16); the plan names the ones that are not eligible. With
    precision="mixed", any non-empty `fp16_arith` lets the planner try it for the nodes it keeps
    float (as `plan(fp16_arith=True)`).

    `a16w8` (node names, op types, or "all") gives those weight-bearing nodes (Conv, Gemm, MatMul
    with constant weights) int16 activations with int8 weights (A16W8, docs/quant-arith.md §15),
    for tensors whose range int8 cannot hold; the plan names the ones that are not eligible.

    `weight_bits=4` gives the weight-bearing int8 nodes (Conv, Gemm, MatMul) int4 weights
    (W4A8, docs/quant-arith.md §13), per output channel or, with `weight_group` 32 or 64, with
    integer group multipliers along K; `weight_bits=7` keeps int8 weights on a 63-step grid (codes
    in [-63, 63]: one bit less precise, multiplied exactly by the AVX2 kernels without VNNI with
    vpmaddubsw, kernels/avx2/conv_i8_w7.c); `node_weight_bits` ({node name or op type: 4, 7 or 8})
    overrides it per node. ConvTranspose keeps int8 weights.

    `calib` may be a folder of images or WAV files; `preprocess` (e.g. "resize=256,mean=...";
    see dsedge/calibration/preprocess.py) then says how they become feeds, and the resolved
    preprocessing is stored in the written model (`result.info["preprocessing"]`, JSON).
    Without `calib` (None): dynamic quantisation (dsedge/quant/dynamic.py): int8 weights for
    Conv/Gemm/MatMul, their inputs quantised per inference, everything else float.
    A float input that never varies across the feeds (all zeros, one value, the same array)
    while the model computes with it is an error (FeedError), unless named in `allow_constant`
    (see quant.quantize.check_degenerate_feeds for the cases that only warn).
    `precision="mixed"` plans each node's precision under `max_drop` (see `plan`; `minimize`,
    `holdout`, `metric`, `memory_budget`, `latency_profiles` go to it, and `weight_bits=4` lets it
    give int4 weights where the budget allows) and quantises with that plan; `plan` (a
    PrecisionPlan or the path of its lockfile) quantises with a plan made before: the same model
    and feeds give the same bytes.
    Returns a `QuantResult`; `.save(path)` writes QDQ ONNX (`.onnx`) or a `.dse` artifact.
    """
    planning = (holdout is not None or metric is not None or memory_budget is not None or bool(latency_profiles)
                or minimize != "size")
    if planning and precision != "mixed":
        raise ModelError("minimize, holdout, metric, memory_budget and latency_profiles are the precision "
                         "planner's", hint="use them with precision='mixed'")
    if plan is not None and fp16_arith:
        raise ModelError("a precision plan names its fp16-arithmetic nodes (`dsedge plan --fp16-arith` stores them)",
                         hint="leave fp16_arith out with a plan")
    if (precision == "mixed" or plan is not None) and a16w8:
        raise ModelError("A16W8 nodes are chosen with precision='int8' (or by `dsedge plan --a16w8`, which stores "
                         "them in the plan)", hint="leave a16w8 empty with a plan or precision='mixed'")
    if precision == "mixed" and int(weight_bits) == 7:
        raise ModelError("the precision planner does not choose 7-bit weights yet",
                         hint="use precision='int8' with weight_bits=7, or weight_bits 8 or 4 with precision='mixed'")
    if (plan is not None and int(weight_bits) != 8) or \
            ((precision == "mixed" or plan is not None) and (node_weight_bits or int(weight_group))):
        raise ModelError("a precision plan chooses each node's weight bits: with a plan, leave the weight bits "
                         "out; with precision='mixed', weight_bits=4 lets the planner choose int4 weights",
                         hint="leave weight_bits at 8 and node_weight_bits / weight_group out with a plan")
    if precision == "mixed" or plan is not None:
        return _quantize_planned(model, calib, plan, max_drop=0.01 if max_drop is None else max_drop,
                                 minimize=minimize, method=method, bias_correction=bias_correction, progress=progress,
                                 preprocess=preprocess, allow_constant=allow_constant,
                                 pin_constant_inputs=pin_constant_inputs, input_shapes=input_shapes,
                                 plan_opts=dict(holdout=holdout, metric=metric, memory_budget=memory_budget,
                                                latency_profiles=tuple(latency_profiles),
                                                int4=int(weight_bits) == 4, fp16_arith=bool(fp16_arith)))
    from .quant.quantize import QuantConfig, quantize_graph
    owned = not isinstance(model, Graph)
    g = load_graph(model) if owned else model
    cfg = QuantConfig(precision=precision, method=method, keep_float=tuple(keep_float),
                      bias_correction=bias_correction, progress=progress,
                      pin_constant_inputs=pin_constant_inputs, allow_constant=tuple(allow_constant),
                      export_shapes=_export_shapes(input_shapes), weight_bits=int(weight_bits), weight_group=int(weight_group),
                      node_weight_bits=tuple(sorted(dict(node_weight_bits).items())),
                      a16w8_nodes=tuple(a16w8), fp16_arith_nodes=tuple(fp16_arith))
    if calib is None:
        if cfg.a16w8_nodes:
            raise ModelError("A16W8 (int16 activations) needs calibration data", hint="pass calib")
        if cfg.weight_bits != 8 or cfg.node_weight_bits:
            raise ModelError("int4 and 7-bit weights need calibration data (dynamic quantisation has int8 weights)",
                             hint="pass calib, or leave weight_bits at 8 for dynamic quantisation")
        if preprocess:
            raise ModelError("preprocess applies to calibration feeds (a folder of images or WAV files)",
                             hint="pass calib, or leave preprocess out for dynamic quantisation")
        from .quant.dynamic import quantize_dynamic
        return _api_result(quantize_dynamic(g, cfg, copy=not owned))
    feeds = calib
    if isinstance(calib, (str, Path)):
        from .calibration import open_feeds
        from .errors import FeedError
        try:
            feeds = open_feeds(calib, g, preprocess=preprocess)
        except FeedError as e:
            if owned and str(e).startswith("--preprocess"):     # a spec that does not fit: name the model
                raise FeedError(f"{model}: {e}") from None
            raise
    elif preprocess:
        raise ModelError("preprocess applies to a folder of images or WAV files given as a path",
                         hint="pass calib as the folder's path")
    spec = getattr(feeds, "spec", None)
    result = quantize_graph(g, feeds, cfg, copy=not owned)
    if spec is not None:
        result.info["preprocessing"] = spec.to_json()
    return _api_result(result)


def _export_shapes(input_shapes) -> tuple:
    """{name: shape} or ["NAME=1x3x48x320", ...] -> QuantConfig.export_shapes."""
    return tuple(sorted(input_shapes_from_cli(input_shapes.items() if isinstance(input_shapes, dict)
                                              else input_shapes).items()))


def _quantize_planned(model, calib, plan_, *, max_drop, minimize, method, bias_correction, progress, preprocess,
                      allow_constant, pin_constant_inputs, input_shapes=None, plan_opts=None):
    if calib is None:
        raise ModelError("a precision plan needs calibration feeds", hint="pass --calib")
    owned = not isinstance(model, Graph)
    g = load_graph(model) if owned else model
    feeds, spec = _feed_list(g, calib, preprocess)      # read once, for the planner and the quantiser
    if plan_ is None:
        plan_ = plan(g.copy(), feeds, max_drop=max_drop, minimize=minimize, method=method,
                     bias_correction=bias_correction, progress=progress,
                     allow_constant=allow_constant, pin_constant_inputs=pin_constant_inputs, input_shapes=input_shapes,
                     **(plan_opts or {}))
    else:
        plan_ = _model_plan(model, plan_, owned)
    cfg = QuantConfig(method=method, bias_correction=bias_correction, progress=progress,
                      pin_constant_inputs=pin_constant_inputs, allow_constant=tuple(allow_constant),
                      export_shapes=_export_shapes(input_shapes))
    result = quantize_with_plan(g, feeds, plan_, cfg=cfg, copy_graph=not owned)
    if spec is not None:
        result.info["preprocessing"] = spec.to_json()
    result.info["precision_budget"] = {"keep_float": list(plan_.keep_float), "int4_weights": list(plan_.int4),
                                     **({"a16w8_nodes": list(plan_.a16w8)} if plan_.a16w8 else {}),
                                     **({"fp16_arith_nodes": list(plan_.fp16_arith)} if plan_.fp16_arith else {}),
                                     "fp16_weights": list(plan_.fp16), "drop": plan_.drop,
                                     "max_drop": plan_.budget, "objective": plan_.objective}
    return _api_result(result)


def _model_plan(model, plan_, owned: bool) -> PrecisionPlan:
    """A PrecisionPlan, or the one in the lockfile `plan_`, checked to be made for `model`."""
    if isinstance(plan_, PrecisionPlan):
        return plan_
    where = str(plan_)
    plan_ = load_plan(plan_)
    if owned and plan_.model_sha256 and plan_.model_sha256 != _sha256(model):
        raise ModelError(f"{where}: the plan was made for another model (sha256 differs from {model})",
                         hint="run `dsedge plan` on this model")
    return plan_


def debug(model, calib, *, plan=None, sensitivity: bool = True, max_drop=0.01, minimize: str = "size",
          holdout: int | None = None, metric: str | None = None, method: str = "auto", bias_correction: bool = True,
          preprocess=None, allow_constant=(), progress: bool = True, runtime: str = "c", arena: bool = True) -> dict:
    """Which layer of `model` hurts accuracy in int8, and what fixes it (dsedge/debug.py): per
    layer, its precision in the default int8 plan (or in `plan`, a PrecisionPlan or its lockfile),
    its output range, the SQNR of its output against the float model on the calibration feeds,
    its end-to-end sensitivity (the precision planner on held-back feeds, candidates run in the C
    runtime; `sensitivity=False` skips it) and a suggested fix, the layer that hurts most first;
    with the plans the planner tried and the arena of the plan's .dse. A dict (JSON-ready);
    `write_debug_report(result, path)` renders it as one HTML page."""
    if calib is None:
        raise ModelError("debugging a model needs calibration feeds", hint="pass --calib")
    if str(model).lower().endswith(".dse"):
        raise ModelError(f"{model}: dsedge debug compares a float model with its quantised form, and a .dse is "
                         "already quantised", hint="pass the ONNX model it was made from (`dsedge inspect` shows "
                                                   "a .dse's arena)")
    owned = not isinstance(model, Graph)
    g = load_graph(model) if owned else model
    plan_ = None if plan is None else _model_plan(model, plan, owned)
    feeds, _ = _feed_list(g, calib, preprocess)
    cfg = DebugConfig(sensitivity=sensitivity,
                      max_drop=parse_drop(max_drop) if isinstance(max_drop, str) else float(max_drop),
                      objective=minimize, holdout=holdout, metric=metric, arena=arena,
                      quant=QuantConfig(method=method, bias_correction=bias_correction, progress=progress,
                                        allow_constant=tuple(allow_constant)))
    bar = progress_bar(None, desc="sensitivity", enabled=progress) if progress and sensitivity else None

    def tick(i, why, drop):
        if bar is not None and hasattr(bar, "set_postfix_str"):
            bar.update(1)
            bar.set_postfix_str(f"{why[:40]}: drop {drop:.4f}")
    try:
        r = debug_graph(g, feeds, cfg, plan=plan_, run_plan=_run_in_c if runtime == "c" else None, progress=tick,
                        copy_graph=not owned)
    finally:
        if bar is not None and hasattr(bar, "close"):
            bar.close()
    return {"model": str(model) if owned else (g.name or "graph"),
            "plan_file": None if plan is None or isinstance(plan, PrecisionPlan) else str(plan), **r}


def write_debug_report(result: dict, path) -> int:
    """`dsedge debug --report`: `result` of `debug` as one self-contained HTML page (written
    atomically). Returns its size in bytes."""
    data = render_debug_report(result).encode()
    atomic_write_bytes(path, data)
    return len(data)


def save_result(result, path, *, input_shapes=None, io_dtype: str = "float32", qdq_format: str | None = None) -> None:
    """Write a quantised graph: `.onnx` -> QDQ ONNX (or float ONNX for fp16/fp32) with its int8
    tensors stored as `qdq_format` says (converters/onnx/qdq.py; default "u8u8", whose
    integer sums cannot saturate in onnxruntime on any x86 CPU); `.dse` -> the artifact, specialised to `input_shapes`
    ({name: shape} or ["NAME=1x3x48x320", ...]; default: the calibration feeds' shape) with graph
    inputs/outputs in `io_dtype`. Nodes in fp16 arithmetic (docs/quant-arith.md §16) carry the
    `.dse` attribute `fp16_arith`; ONNX has no standard way to say a float32 node computes in
    binary16, so an ONNX file holds them as float32 nodes on their fp16 weights (widened: the
    arithmetic of a target without FP16) and names them in metadata `dsedge.fp16_arith_nodes`."""
    p = str(path)
    if p.endswith(".dse") and qdq_format is not None:
        raise ModelError(f"{path}: --qdq-format applies to QDQ ONNX (*.onnx) output only")
    if p.endswith(".dse"):
        save_dse(result, path, input_shapes=input_shapes, io_dtype=io_dtype)
        return
    if input_shapes or io_dtype != "float32":
        raise ModelError(f"{path}: --input-shape and --io-dtype apply to .dse output only",
                         hint="name the output *.dse")
    if not p.endswith(".onnx"):
        raise ModelError(f"{path}: unknown output format", hint="name the output *.onnx (QDQ) or *.dse")
    g = result.graph
    if g.qparams:
        from .converters.onnx.qdq import DEFAULT_QDQ_FORMAT, to_qdq_model
        m = to_qdq_model(g, fmt=qdq_format or DEFAULT_QDQ_FORMAT)
    else:
        from .converters.onnx.writer import to_model_proto
        m = to_model_proto(g, fp16_weights=getattr(g, "fp16_weights", ()))
    pre = (getattr(result, "info", None) or {}).get("preprocessing")
    if pre:                              # how images / WAVs become this model's input
        p = m.metadata_props.add()
        p.key, p.value = PREPROCESSING_ONNX_KEY, pre
    half = fp16_marked(g)
    if half:    # ONNX cannot mark a float32 node's arithmetic: float32 compute on its fp16 weights here
        p = m.metadata_props.add()
        p.key, p.value = FP16_ARITH_ONNX_KEY, ",".join(half)
    from .util import atomic_write_bytes
    atomic_write_bytes(path, m.SerializeToString())


DYNAMIC_HINT = ("no calibration data: weights are int8 and the inputs of Conv/Gemm/MatMul are quantised at "
                "run time (dynamic); everything between them stays float and no error was measured. "
                "Calibrating does better at run time (activations stay int8 from layer to layer: no "
                "per-inference range pass, less memory traffic, int8 wherever the measured error allows) and "
                "measures the error (which model is more accurate depends on the model: check with "
                "`dsedge compare`): pass --calib FEEDS, a folder of images or WAV files (with --preprocess "
                "if the defaults from the input's shape do not fit), a folder of .npz files (one feed each, "
                "keys = the model's input names) or one .npz whose arrays carry a leading sample axis")


DYNAMIC_NONE_HINT = ("no calibration data, and no Conv/Gemm/MatMul with constant weights that can be quantised "
                     "dynamically (weights inside If/Loop branches are not yet): the model is only optimised and "
                     "stays float. Pass --calib FEEDS (a folder of images or WAV files, a folder of .npz files, "
                     "one feed each, or one .npz whose arrays carry a leading sample axis) to quantise it")


def quantize_summary(result, model_path=None, out_path=None) -> dict:
    """The summary `dsedge quantize` prints. The output SQNR is measured on the written model
    where that is cheap and exact: a QDQ ONNX file runs in onnxruntime (what its user gets);
    otherwise the quantised graph runs in the integer reference (what the C runtime computes)."""
    from .quant.quantize import evaluate, evaluate_onnx
    sq, engine = {}, None
    if result.eval_outputs:
        if out_path is not None and str(out_path).endswith(".onnx") and result.graph.qparams:
            try:
                sq, engine = evaluate_onnx(result, out_path), "onnxruntime"
            except ModelError:
                sq = {}
        if not sq:
            sq, engine = evaluate(result), "integer reference"
    counts: dict[str, int] = {}
    for p in result.plan:
        counts[p.precision] = counts.get(p.precision, 0) + 1
    dynamic = bool(result.info.get("dynamic"))
    warnings = list(result.info.get("warnings", ()))
    in_bytes = _file_size(model_path) if model_path else None
    out_bytes = _file_size(out_path) if out_path else None
    if in_bytes and out_bytes and out_bytes > in_bytes:
        warnings.append(f"{out_path} ({out_bytes:,d} B) is {out_bytes / in_bytes:.2f}x LARGER than its float source "
                        f"{model_path} ({in_bytes:,d} B): constants that stay float were stored in a bigger form "
                        "than the source's; please report it with the model")
    return {
        "model": None if model_path is None else str(model_path),
        "output": None if out_path is None else str(out_path),
        "dynamic": dynamic,
        "hint": (None if not dynamic else DYNAMIC_HINT if counts.get("int8-dynamic") else DYNAMIC_NONE_HINT),
        "input_bytes": in_bytes,
        "output_bytes": out_bytes,
        "warnings": warnings,
        "nodes_by_precision": counts,
        "output_sqnr_db": {k: (None if not np.isfinite(v) else round(v, 2)) for k, v in sq.items()},
        "sqnr_feeds": len(result.eval_outputs),
        "sqnr_engine": engine,
        "calibration": result.info.get("calibration", {}),
        "preprocessing": _describe_preprocessing(result.info.get("preprocessing")),
        "denormal_weights_flushed": int(result.info.get("denormal_weights_flushed", 0)),
        "layers": [p.as_dict() for p in result.plan],
    }


def _describe_preprocessing(text):
    if not text:
        return None
    from .calibration import spec_from_json
    spec = spec_from_json(text)
    return f"{spec.kind}: {spec.describe()}"


def stored_preprocessing(path):
    """The preprocessing spec stored in a written model (`.dse` metadata `preprocessing`, ONNX
    metadata_props `dsedge.preprocessing`), or None."""
    from .calibration import spec_from_json
    p = str(path)
    text = None
    if p.endswith(".dse"):
        from .artifact import read
        text = read(p).meta.get("preprocessing")
    else:
        try:
            import onnx
            m = onnx.load(p, load_external_data=False)
            text = {q.key: q.value for q in m.metadata_props}.get(PREPROCESSING_ONNX_KEY)
        except Exception:
            return None
    return spec_from_json(text) if text else None


_session = ort_session   # (dsedge.util: the quantiser's evaluation uses it too)


def _labels(data, key: str, n: int) -> np.ndarray:
    p = Path(data)
    try:
        if p.is_dir():
            files = sorted(f for f in p.iterdir() if f.suffix == ".npz")
            labels = np.array([np.load(f)[key].reshape(-1)[0] for f in files])
        else:
            labels = np.load(p)[key].reshape(-1)
    except KeyError:
        raise ModelError(f"{data}: no array {key!r} for --labels") from None
    if labels.shape[0] != n:
        raise ModelError(f"{data}: {labels.shape[0]} labels for {n} feeds")
    return labels


def compare(float_model, quant_model, data, *, limit: int | None = None, progress: bool = True,
            labels: str | None = None) -> dict:
    """Per-output SQNR, cosine similarity and top-1 agreement of two models on feeds; with
    `labels` (the name of an array of class ids in the data), the accuracy of both models'
    first output too."""
    from .calibration import open_feeds
    from .util import progress as bar
    ref_g = load_graph(float_model)
    from .calibration import is_media
    pre = stored_preprocessing(quant_model) if is_media(data) else None   # images / WAVs as calibrated
    feeds = open_feeds(data, ref_g, extra="ignore" if labels else "error", preprocess=pre)
    truth = _labels(data, labels, len(feeds)) if labels else None
    correct = [0, 0]
    a_sess, b_sess = _session(float_model), _session(quant_model)
    names = [o.name for o in a_sess.get_outputs()]
    b_names = {o.name for o in b_sess.get_outputs()}
    missing = [n for n in names if n not in b_names]
    if missing:
        raise ModelError(f"{quant_model}: outputs {', '.join(missing)} of {float_model} are missing")
    acc = {n: {"sig": 0.0, "err": 0.0, "dot": 0.0, "na": 0.0, "nb": 0.0, "agree": 0, "rows": 0} for n in names}
    count = 0
    for k, feed in enumerate(bar(feeds, total=len(feeds), desc="comparing", enabled=progress)):
        if limit is not None and k >= limit:
            break
        ra = a_sess.run(names, feed)
        rb = b_sess.run(names, feed)
        if truth is not None:
            correct[0] += int(np.asarray(ra[0]).reshape(-1).argmax() == truth[k])
            correct[1] += int(np.asarray(rb[0]).reshape(-1).argmax() == truth[k])
        for n, x, y in zip(names, ra, rb):
            x = np.asarray(x, np.float64)
            y = np.asarray(y, np.float64)
            s = acc[n]
            s["sig"] += float(np.sum(x * x))
            s["err"] += float(np.sum((x - y) ** 2))
            s["dot"] += float(np.sum(x * y))
            s["na"] += float(np.sum(x * x))
            s["nb"] += float(np.sum(y * y))
            if x.ndim >= 1 and x.shape[-1] > 1:
                s["agree"] += int(np.sum(x.argmax(-1) == y.argmax(-1)))
                s["rows"] += int(np.prod(x.shape[:-1]))
        count += 1
    out = {}
    from .quant.quantize import _sqnr
    for n, s in acc.items():
        cos = s["dot"] / np.sqrt(s["na"] * s["nb"]) if s["na"] > 0 and s["nb"] > 0 else None
        out[n] = {"sqnr_db": round(_sqnr(s["sig"], s["err"]), 2),
                  "cosine": None if cos is None else round(float(cos), 6),
                  "top1_agreement": round(s["agree"] / s["rows"], 4) if s["rows"] else None}
    res = {"float_model": str(float_model), "quant_model": str(quant_model), "feeds": count, "outputs": out}
    if truth is not None:
        res["accuracy"] = {"float": round(correct[0] / max(count, 1), 4), "quant": round(correct[1] / max(count, 1), 4)}
    return res


def export_bundle(model, out_dir, **kw) -> dict:
    """`dsedge export`: dsedge.export.bundle.export_bundle, quantising an ONNX model with
    `quantize` on the way (the options of `quantize` go in `quantize_options`)."""
    from .export.bundle import export_bundle as _export_bundle
    return _export_bundle(model, out_dir, quantize=quantize, **kw)
