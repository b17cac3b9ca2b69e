"""The NCHW8c prototype (nchwc.c beside this file) against dsedge's runtime and onnxruntime, one conv
shape at a time (issue 10, session 16: is a blocked-layout pass worth building?).

    python3 benchmarks/nchwc/compare.py [--set main|yolo|mnv2|all] [--only NAME,...] [--part K/N] [--rounds 3]
                                        [--repeat 100] [--json OUT]
    python3 benchmarks/nchwc/compare.py --merge RUN1.json RUN2.json ...   (one table from several runs)

Per shape, a one-node ONNX Conv with a bias (random weights, as benchmarks/one_node.py) is
 - quantised to an fp32 `.dse` and run in dsedge's C runtime (`Runtime.profile`, 1 thread: the
   node's fastest run; NCHW in and out, whatever kernel the runtime picks);
 - run in onnxruntime with its profiler (1 thread; each node's fastest run): its NCHWc transformer
   turns the Conv into ReorderInput -> nchwc Conv -> ReorderOutput, so the conv and the reorders
   are reported apart;
 - run by the prototype binary (`nchwc conv|dw ...`: the fastest run of each register tile shape,
   the best one reported, and the NCHW -> NCHW8c reorder of the input and NCHW8c -> NCHW of the
   output, each timed alone).
The three alternate within each round (each in its own process for the prototype), so the VM's
slow spells (BENCHMARKS.md, session 14) hit them alike; the table gives each column's fastest over
the rounds and the median over rounds of the paired ratios prototype / dsedge and prototype /
onnxruntime (conv alone, reorders excluded: inside a blocked chain they are not paid). `--merge`
renders several saved runs (e.g. taken minutes apart, in and out of the VM's slow spells) as one
table: each column's fastest over all their rounds, the paired ratios' median over all rounds.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

# name: (IC, OC, H, W, K, stride, pad, depthwise, count in its model)
MAIN = {
    "yolo down1": (16, 32, 160, 160, 3, 2, 1, False, 1),
    "yolo down2": (32, 64, 80, 80, 3, 2, 1, False, 1),
    "yolo down3": (64, 128, 40, 40, 3, 2, 1, False, 1),
    "yolo c3_2.m0.cv2": (32, 32, 40, 40, 3, 1, 1, False, 3),
    "yolo c3_3.m0.cv2": (64, 64, 20, 20, 3, 1, 1, False, 5),
    "mnv2 block1.dw s2": (96, 96, 112, 112, 3, 2, 1, True, 1),
    "mnv2 block2.dw s1": (144, 144, 56, 56, 3, 1, 1, True, 1),
    "mnv2 block14.dw s1": (960, 960, 7, 7, 3, 1, 1, True, 3),
    "mnv2 block14.expand": (160, 960, 7, 7, 1, 1, 0, False, 3),
    "mnv2 block14.project": (960, 160, 7, 7, 1, 1, 0, False, 2),
    "mnv2 head": (320, 1280, 7, 7, 1, 1, 0, False, 1),
    "resnet50 layer2.0.conv2": (128, 128, 56, 56, 3, 2, 1, False, 1),
    "resnet50 layer3.0.downsample": (512, 1024, 28, 28, 1, 2, 0, False, 1),
}


def model_shapes(model: str, tag: str) -> dict[str, tuple]:
    """Every distinct Conv of a zoo model (its default input size) with its count."""
    import onnx
    from onnx import shape_inference

    import dsedge.zoo as zoo
    m = shape_inference.infer_shapes(zoo.build(model))
    shp = {v.name: [d.dim_value for d in v.type.tensor_type.shape.dim]
           for v in list(m.graph.value_info) + list(m.graph.input)}
    inits = {i.name: list(i.dims) for i in m.graph.initializer}
    out: dict[tuple, list[str]] = {}
    for n in m.graph.node:
        if n.op_type != "Conv":
            continue
        a = {x.name: onnx.helper.get_attribute_value(x) for x in n.attribute}
        w = inits[n.input[1]]
        _, ic, h, wd = shp[n.input[0]]
        key = (ic, w[0], h, wd, w[2], a.get("strides", [1, 1])[0], a.get("pads", [0] * 4)[0], a.get("group", 1) > 1)
        out.setdefault(key, []).append(n.name)
    return {f"{tag} {names[0]}" + (f" (+{len(names) - 1})" if len(names) > 1 else ""): (*k, len(names))
            for k, names in out.items()}


def build_binary(tmp: str) -> str:
    exe = os.path.join(tmp, "nchwc")
    subprocess.run(["gcc", "-O3", "-std=gnu11", "-mavx2", "-mfma", "-o", exe,
                    str(HERE / "nchwc.c"), "-lm"], check=True)
    return exe


def one_node(tmp: str, ic, oc, h, w, k, s, p, dw) -> tuple[str, np.ndarray]:
    import onnx
    from onnx import TensorProto, helper, numpy_helper
    rng = np.random.default_rng(0)
    x = rng.standard_normal((1, ic, h, w)).astype(np.float32)
    wt = (rng.standard_normal((oc, 1 if dw else ic, k, k)) * 0.1).astype(np.float32)
    b = rng.standard_normal(oc).astype(np.float32)
    node = helper.make_node("Conv", ["x", "w", "b"], ["y"], kernel_shape=[k, k], strides=[s, s], pads=[p] * 4,
                            group=ic if dw else 1)
    g = helper.make_graph([node], "one", [helper.make_tensor_value_info("x", TensorProto.FLOAT, x.shape)],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
                          [numpy_helper.from_array(wt, "w"), numpy_helper.from_array(b, "b")])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
    m.ir_version = 8
    path = os.path.join(tmp, "m.onnx")
    onnx.save(m, path)
    return path, x


def measure(name, shape, exe, rounds, repeat, tmp) -> dict:
    import dsedge
    import dsedge.runtime as R
    from dsedge.api import save_result
    from node_gap import ort_node_times
    ic, oc, h, w, k, s, p, dw, count = shape
    path, x = one_node(tmp, ic, oc, h, w, k, s, p, dw)
    dse = os.path.join(tmp, "m.dse")
    save_result(dsedge.quantize(path, [{"x": x}], precision="fp32", progress=False), dse)
    argv = [exe, "dw", str(ic), str(h), str(w), str(k), str(s), str(p), str(repeat)] if dw else \
        [exe, "conv", str(ic), str(oc), str(h), str(w), str(k), str(s), str(p), str(repeat)]
    rows = []
    with R.Runtime(dse, threads=1) as rt:
        for _ in range(rounds):
            node = [n for n in rt.profile({"x": x}, repeat=repeat, warmup=5) if n.op in ("Conv", "FusedConv")][0]
            ort = ort_node_times(path, {"x": x}, repeat, tmp)
            proto = json.loads(subprocess.run(argv, check=True, capture_output=True, text=True).stdout)
            conv_o = [ms for op, ms in ort.values() if op.endswith("Conv")]
            reord_o = sum(ms for op, ms in ort.values() if op.startswith("Reorder"))
            rows.append({"ours": node.min_ms, "ours_kernel": node.kernel, "ort_conv": sum(conv_o),
                         "ort_reorders": reord_o, "ort_ops": sorted({op for op, _ in ort.values()}),
                         "proto": proto["conv_ms"], "tile": proto["tile"],
                         "reorder_in": proto["reorder_in_ms"], "reorder_out": proto["reorder_out_ms"], "raw": proto})
    best = {key: min(r[key] for r in rows) for key in ("ours", "ort_conv", "ort_reorders", "proto", "reorder_in",
                                                         "reorder_out")}
    return {"name": name, "shape": list(shape[:8]), "count": count, "rounds": rows, "min": best,
            "kernel": rows[-1]["ours_kernel"], "tile": min(rows, key=lambda r: r["proto"])["tile"],
            "ort_ops": rows[-1]["ort_ops"],
            "paired_proto_ours": float(np.median([r["proto"] / r["ours"] for r in rows])),
            "paired_proto_ort": float(np.median([r["proto"] / r["ort_conv"] for r in rows]))}


def merge(runs: list[list[dict]]) -> list[dict]:
    """One result per shape name from several runs' results (their rounds pooled)."""
    by: dict[str, dict] = {}
    for results in runs:
        for r in results:
            if r["name"] not in by:
                by[r["name"]] = {**r, "rounds": list(r["rounds"])}
            else:
                by[r["name"]]["rounds"] += r["rounds"]
    out = []
    for r in by.values():
        rows = r["rounds"]
        r["min"] = {key: min(x[key] for x in rows) for key in r["min"]}
        r["tile"] = min(rows, key=lambda x: x["proto"])["tile"]
        r["paired_proto_ours"] = float(np.median([x["proto"] / x["ours"] for x in rows]))
        r["paired_proto_ort"] = float(np.median([x["proto"] / x["ort_conv"] for x in rows]))
        out.append(r)
    return out


def table(results: list[dict]) -> str:
    out = ["| shape | x count | dsedge NCHW (kernel) | prototype NCHW8c (tile) | reorders in + out | "
           "onnxruntime NCHWc conv (+ its reorders) | prototype / dsedge | prototype / onnxruntime |",
           "|---|---:|---:|---:|---:|---:|---:|---:|"]
    for r in results:
        ic, oc, h, w, k, s, p, dw = r["shape"]
        oh = (h + 2 * p - k) // s + 1
        desc = f"{'dw ' if dw else ''}{ic}->{oc} {k}x{k}/{s} {h}->{oh}"
        m = r["min"]
        out.append(f"| {r['name']}: {desc} | {r['count']} | {m['ours']:.3f} ({r['kernel']}) | {m['proto']:.3f} ({r['tile']}) "
                   f"| {m['reorder_in']:.3f} + {m['reorder_out']:.3f} | {m['ort_conv']:.3f} (+{m['ort_reorders']:.3f}) "
                   f"| {r['paired_proto_ours']:.2f} | {r['paired_proto_ort']:.2f} |")
    tot = {key: sum(r["min"][key] * r["count"] for r in results) for key in ("ours", "proto", "ort_conv")}
    out.append(f"| sum x count | | {tot['ours']:.3f} | {tot['proto']:.3f} | | {tot['ort_conv']:.3f} | "
               f"{tot['proto'] / tot['ours']:.2f} | {tot['proto'] / tot['ort_conv']:.2f} |")
    return "\n".join(out)


def summary(results: list[dict]) -> str:
    """What the shapes' times add up to (each x its count) under three designs: dsedge as it is;
    a blocked chain (the prototype's conv, no reorder between convs; a conv with fewer than 8 input
    channels, the stem, stays on dsedge's NCHW kernel and reorders its output, as a layout pass
    would leave it without a dedicated NCHW-input kernel); and the prototype as a drop-in kernel of
    the NCHW runtime (both reorders around every conv). onnxruntime's conv, with and without its
    reorders, beside them."""
    def tot(f):
        return sum(f(r) * r["count"] for r in results)
    m = lambda r: r["min"]  # noqa: E731
    ours = tot(lambda r: m(r)["ours"])
    chain = tot(lambda r: m(r)["ours"] + m(r)["reorder_out"] if r["shape"][0] < 8 else m(r)["proto"])
    drop_in = tot(lambda r: min(m(r)["ours"], m(r)["proto"] + m(r)["reorder_in"] + m(r)["reorder_out"]))
    ort = tot(lambda r: m(r)["ort_conv"])
    ort_r = tot(lambda r: m(r)["ort_conv"] + m(r)["ort_reorders"])
    return (f"convs x count: dsedge {ours:.2f} ms; blocked chain (prototype) {chain:.2f} ms ({chain / ours:.2f}x, "
            f"{ours - chain:.2f} ms saved); prototype as a drop-in with reorders (where it wins) {drop_in:.2f} ms "
            f"({drop_in / ours:.2f}x); onnxruntime NCHWc conv {ort:.2f} ms (with its one-node reorders {ort_r:.2f}); "
            f"gap dsedge - onnxruntime {ours - ort:.2f} ms, blocked chain - onnxruntime {chain - ort:+.2f} ms")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--set", choices=("main", "yolo", "mnv2", "all"), default="main",
                    help="main: the shapes of issue 10's gap list; yolo, mnv2: every distinct Conv of the zoo's "
                         "yolo_detector / mobilenet_v2")
    ap.add_argument("--only", default=None, help="comma-separated substrings of the shape names to keep")
    ap.add_argument("--part", default=None, help="K/N: only the K-th of N equal slices of the shapes (short quiet runs)")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--repeat", type=int, default=100)
    ap.add_argument("--json", default=None)
    ap.add_argument("--merge", nargs="+", default=None, help="saved --json runs to render as one table")
    a = ap.parse_args(argv)
    if a.merge:
        results = merge([json.loads(Path(f).read_text()) for f in a.merge])
        print(table(results) + "\n\n" + summary(results))
        return 0
    shapes = {}
    if a.set in ("main", "all"):
        shapes.update(MAIN)
    if a.set in ("yolo", "all"):
        shapes.update(model_shapes("yolo_detector", "yolo"))
    if a.set in ("mnv2", "all"):
        shapes.update(model_shapes("mobilenet_v2", "mnv2"))
    if a.only:
        keep = a.only.split(",")
        shapes = {k: v for k, v in shapes.items() if any(s in k for s in keep)}
    if a.part:
        k, n = (int(v) for v in a.part.split("/"))
        names = list(shapes)
        shapes = {name: shapes[name] for name in names[(k - 1) * len(names) // n: k * len(names) // n]}
    results = []
    with tempfile.TemporaryDirectory(prefix="dsedge-nchwc-") as tmp:
        exe = build_binary(tmp)
        for name, shape in shapes.items():
            results.append(measure(name, shape, exe, a.rounds, a.repeat, tmp))
            r = results[-1]
            print(f"{name}: dsedge {r['min']['ours']:.4f} ({r['kernel']}), prototype {r['min']['proto']:.4f} "
                  f"({r['tile']}) + reorders {r['min']['reorder_in']:.4f} + {r['min']['reorder_out']:.4f}, "
                  f"onnxruntime {r['min']['ort_conv']:.4f} + {r['min']['ort_reorders']:.4f} {r['ort_ops']}",
                  file=sys.stderr, flush=True)
    print(table(results) + "\n\n" + summary(results))
    if a.json:
        Path(a.json).write_text(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
