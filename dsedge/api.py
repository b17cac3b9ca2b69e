"""The Python API behind every CLI command (each command is one call here)."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from .errors import ModelError
from .ir import Graph
from .ops import REGISTRY


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
    q = d.quant
    if q.kind == "weighted":
        w = n.inputs[1] if len(n.inputs) > 1 else ""
        if w not in g.consts:
            return False, "weights are not constant"
    return True, q.kind


def inspect_dse(path) -> dict:
    """What a `.dse` holds: inputs/outputs (names, shapes, dtypes, qparams), nodes by op and
    dtype, weight bytes, arena vs its lower bound, format overhead, metadata keys."""
    import json
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


def quantize(model, calib, *, precision: str = "int8", method: str = "auto", keep_float=(),
             bias_correction: bool = True, progress: bool = True, pin_constant_inputs: bool = False,
             allow_constant=()):
    """Import `model` (path or Graph), calibrate on `calib` (path or feed dicts), quantise.

    A float input that never varies across the feeds (all zeros, one value, the same array)
    while the model computes with it is an error (FeedError), unless named in `allow_constant`
    (see quant.quantize.check_degenerate_feeds for the cases that only warn).
    Returns a `QuantResult`; `.save(path)` writes QDQ ONNX (`.onnx`) or a `.dse` artifact.
    """
    from .quant.quantize import QuantConfig, quantize_graph
    owned = not isinstance(model, Graph)
    g = load_graph(model) if owned else model
    cfg = QuantConfig(precision=precision, method=method, keep_float=tuple(keep_float),
                      bias_correction=bias_correction, progress=progress,
                      pin_constant_inputs=pin_constant_inputs, allow_constant=tuple(allow_constant))
    feeds = calib
    if isinstance(calib, (str, Path)):
        from .calibration import open_feeds
        feeds = open_feeds(calib, g)
    return quantize_graph(g, feeds, cfg, copy=not owned)


def save_result(result, path, *, input_shapes=None, io_dtype: str = "float32") -> None:
    """Write a quantised graph: `.onnx` -> QDQ ONNX (or float ONNX for fp16/fp32); `.dse` -> the
    artifact, specialised to `input_shapes` ({name: shape} or ["NAME=1x3x48x320", ...]; default:
    the calibration feeds' shape) with graph inputs/outputs in `io_dtype`."""
    p = str(path)
    if p.endswith(".dse"):
        from .export import save_dse
        save_dse(result, path, input_shapes=input_shapes, io_dtype=io_dtype)
        return
    if input_shapes or io_dtype != "float32":
        raise ModelError(f"{path}: --input-shape and --io-dtype apply to .dse output only",
                         hint="name the output *.dse")
    if not p.endswith(".onnx"):
        raise ModelError(f"{path}: unknown output format", hint="name the output *.onnx (QDQ) or *.dse")
    g = result.graph
    if g.qparams:
        from .converters.onnx.qdq import save_qdq
        save_qdq(g, path)
    else:
        from .converters.onnx.writer import save_onnx
        save_onnx(g, path, fp16_weights=getattr(g, "fp16_weights", ()))


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
        "input_bytes": in_bytes,
        "output_bytes": out_bytes,
        "warnings": warnings,
        "nodes_by_precision": counts,
        "output_sqnr_db": {k: (None if not np.isfinite(v) else round(v, 2)) for k, v in sq.items()},
        "sqnr_feeds": len(result.eval_outputs),
        "sqnr_engine": engine,
        "calibration": result.info.get("calibration", {}),
        "layers": [p.as_dict() for p in result.plan],
    }


def _session(path):
    import onnxruntime as ort
    so = ort.SessionOptions()
    so.log_severity_level = 3
    try:
        return ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])
    except Exception as e:
        raise ModelError(f"{path}: onnxruntime cannot load it: {str(e).splitlines()[0][:300]}") from None


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
    feeds = open_feeds(data, ref_g, extra="ignore" if labels else "error")
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
