"""Where dsedge's time goes against onnxruntime's, node by node, on one model (issue 10: "where a
goal is missed, profile and say what bounds it").

    python3 benchmarks/node_gap.py MODEL [--prec fp32|int8] [--repeat 200] [--top 25] [--json OUT]

MODEL: any name benchmarks/latency.py takes (a zoo architecture, a dev or unseen real model, an
.onnx path), with the same feeds. dsedge: `Runtime.profile()` on the fp32 `.dse` or the default int8
plan's `.dse` (1 thread); onnxruntime: its own profiler on the float model or on its u8s8 QDQ model
(`quantize_static` as latency.py makes it; 1 thread). Each node's time is the FASTEST of `--repeat`
runs on both sides: this VM's speed changes for seconds at a time (session 14: whole models 1.5-1.7x
slower for dsedge and 1.3-1.4x for onnxruntime in the slow spells, a pure FMA loop not at all), so
medians mix two machines while minimums compare the fast one.

Printed: the totals, the time per op type on each side, and the nodes matched by name (onnxruntime
renames the nodes it fuses or converts to NCHWc: `<name>_token_N`, `<name>_nchwc`; unmatched nodes
count in the totals only), largest gap first.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))


def ort_node_times(path: str, feed: dict, repeat: int, tmp: str) -> dict[str, tuple[str, float]]:
    """{node name: (op type, fastest ms)} from onnxruntime's profiler, 1 thread."""
    import onnxruntime as ort
    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    so.enable_profiling = True
    so.profile_file_prefix = os.path.join(tmp, "ort")
    s = ort.InferenceSession(path, so, providers=["CPUExecutionProvider"])
    for _ in range(repeat + 3):
        s.run(None, feed)
    ev = json.loads(Path(s.end_profiling()).read_text())
    seen: dict[str, tuple[str, list]] = {}
    for e in ev:
        if e.get("cat") == "Node" and e["name"].endswith("_kernel_time"):
            name = e["name"][: -len("_kernel_time")]
            seen.setdefault(name, (e["args"].get("op_name", "?"), []))[1].append(e["dur"] / 1000)
    return {k: (op, float(np.min(v[3:] or v))) for k, (op, v) in seen.items()}


OP_OF = {"QLinearConv": "Conv", "FusedConv": "Conv", "QLinearAdd": "Add", "QLinearMul": "Mul", "QGemm": "Gemm",
         "QLinearGlobalAveragePool": "GlobalAveragePool", "QLinearMatMul": "MatMul", "FusedMatMul": "MatMul",
         "QLinearSigmoid": "Sigmoid", "QLinearConcat": "Concat"}   # onnxruntime's op -> the graph's


def base_name(ort_name: str) -> str:
    """The graph node a name of onnxruntime's profile stands for (its fusions' suffixes removed)."""
    return re.sub(r"(_token_\d+|_nchwc)+$", "", ort_name)


def _source_producers(path: str) -> dict[str, str]:
    """Node name -> the name of the node producing its first input, in the source ONNX graph."""
    import onnx
    g = onnx.load(path, load_external_data=False).graph
    prod = {o: n.name for n in g.node for o in n.output}
    return {n.name: prod[n.input[0]] for n in g.node if n.name and n.input and n.input[0] in prod}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("model")
    ap.add_argument("--prec", choices=("fp32", "int8"), default="fp32")
    ap.add_argument("--repeat", type=int, default=200)
    ap.add_argument("--top", type=int, default=25)
    ap.add_argument("--calib", type=int, default=16)
    ap.add_argument("--json", default=None)
    a = ap.parse_args(argv)
    import dsedge
    import dsedge.runtime as R
    import latency
    from dsedge.api import save_result
    with tempfile.TemporaryDirectory(prefix="dsedge-node-gap-") as tmp:
        src = latency.prepare(a.model, a.calib, tmp)
        feed = src["feed"]
        r = dsedge.quantize(src["path"], src["calib"], precision=a.prec, progress=False)
        dse = os.path.join(tmp, f"{a.prec}.dse")
        try:
            save_result(r, dse, input_shapes={k: list(np.shape(v)) for k, v in feed.items()})
        except Exception:  # noqa: BLE001 - an input the specialiser folded away: default shapes (as latency.py)
            save_result(r, dse)
        if a.prec == "int8":
            forms = latency.ort_quantize(src["path"], src["calib"], tmp)["forms"]
            if not isinstance(forms.get("u8s8"), str):
                raise SystemExit(f"onnxruntime could not quantise {a.model}: {forms.get('u8s8')}")
            ort_path = forms["u8s8"]
        else:
            ort_path = src["path"]
        with R.Runtime(dse, threads=1) as rt:
            prof = rt.profile(feed, repeat=a.repeat, warmup=3)
        ours = [(n.name, n.op, n.kernel, n.min_ms) for n in prof]
        theirs = ort_node_times(ort_path, feed, a.repeat, tmp)
        back = _source_producers(ort_path)
    by_op_d: dict[str, float] = {}
    for _, op, _, ms in ours:
        by_op_d[op] = by_op_d.get(op, 0.0) + ms
    by_op_o: dict[str, float] = {}
    matched: dict[str, float] = {}
    names_ours = {n for n, *_ in ours}
    where: dict[str, str] = {}
    for name, (op, ms) in theirs.items():
        by_op_o[op] = by_op_o.get(op, 0.0) + ms
        b = base_name(name)
        # onnxruntime names a fused node after the last node it absorbed (Conv + BatchNormalization
        # is "<bn>"): walk back to the node dsedge kept (its passes fold the same nodes)
        for _ in range(3):
            if b in names_ours or b not in back:
                break
            b = back[b]
        where[name] = b
        matched[b] = matched.get(b, 0.0) + ms
    td, to = sum(by_op_d.values()), sum(by_op_o.values())
    print(f"{a.model} {a.prec}: dsedge {td:.3f} ms, onnxruntime {to:.3f} ms ({td / to:.2f}x), "
          f"sums of each node's fastest of {a.repeat} runs, 1 thread")
    print("\nper op type (dsedge | onnxruntime):")
    for op in sorted(set(by_op_d) | set(by_op_o), key=lambda o: -max(by_op_d.get(o, 0), by_op_o.get(o, 0))):
        print(f"  {op:28s} {by_op_d.get(op, 0.0):8.3f} | {by_op_o.get(op, 0.0):8.3f}")
    rows = [(name, op, k, ms, matched[name]) for name, op, k, ms in ours if name in matched]
    # the rest: in run order per op type, when both sides have as many (onnxruntime names a fused
    # Conv after its activation or BatchNormalization; its int8 ops are QLinear*)
    ours_left: dict[str, list] = {}
    for name, op, k, ms in ours:
        if name not in matched:   # dsedge's FusedConv (a Conv with its activation) is onnxruntime's Conv
            ours_left.setdefault(OP_OF.get(op, op), []).append((name, op, k, ms))
    theirs_left: dict[str, list] = {}
    for name, (op, ms) in theirs.items():
        if where[name] not in names_ours:
            theirs_left.setdefault(OP_OF.get(op, op), []).append(ms)
    for op, lst in ours_left.items():
        if len(theirs_left.get(op, [])) == len(lst):
            rows += [(name, o, k, ms, t) for (name, o, k, ms), t in zip(lst, theirs_left[op])]
    rows.sort(key=lambda x: -(x[3] - x[4]))
    print(f"\nnodes matched by name, or in order within an op type ({len(rows)} of {len(ours)}), largest gap first:")
    print(f"  {'node':34s} {'op':12s} {'dsedge kernel':30s} {'dsedge':>8s} {'ort':>8s} {'ratio':>6s}")
    for name, op, k, ms, o in rows[: a.top]:
        print(f"  {name[:34]:34s} {op[:12]:12s} {k[:30]:30s} {ms:8.3f} {o:8.3f} {ms / o if o else float('inf'):6.2f}")
    if a.json:
        Path(a.json).write_text(json.dumps({"model": a.model, "prec": a.prec, "repeat": a.repeat,
                                            "dsedge": ours, "onnxruntime": theirs}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
