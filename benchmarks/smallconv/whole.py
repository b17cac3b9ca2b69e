"""Whole-model fp32 timing for a before/after A/B of two checkouts (BENCHMARKS.md "Session 18"):
export the model with the imported dsedge (the active venv: run it from each checkout's own venv;
the .dse is cached per checkout and model under /tmp/sc), then time Runtime.run and onnxruntime's
session alternately in this process; prints one JSON line (min / median ms of each, the median of the
paired ratios). Threads: $TH (default 1).

    python3 benchmarks/smallconv/whole.py CHECKOUT MODEL N
    benchmarks/smallconv/whole.sh MODEL N ROUNDS      (under /work/s16/quiet: base and branch alternating)
"""
import json, os, sys, time, tempfile
import numpy as np
tree, model, n = sys.argv[1], sys.argv[2], int(sys.argv[3]); TH = int(os.environ.get("TH", "1"))
sys.path.insert(0, os.path.join(tree, "benchmarks")); sys.path.insert(0, tree)
import latency, dsedge, dsedge.runtime as R
from dsedge.api import save_result
import onnxruntime as ort
tmp = f"/tmp/sc/whole_{os.path.basename(tree)}_{model.replace('/', '_')}"
os.makedirs(tmp, exist_ok=True)
src = latency.prepare(model, 4, tmp)
dse = os.path.join(tmp, "fp32.dse")
if not os.path.exists(dse):
    r = dsedge.quantize(src["path"], src["calib"], precision="fp32", progress=False)
    save_result(r, dse, input_shapes={k: list(np.shape(v)) for k, v in src["feed"].items()})
so = ort.SessionOptions(); so.intra_op_num_threads = TH
s = ort.InferenceSession(src["path"], so, providers=["CPUExecutionProvider"])
feed = src["feed"]
with R.Runtime(dse, threads=TH) as rt:
    for _ in range(3): rt.run(feed); s.run(None, feed)
    td, to = [], []
    for _ in range(n):
        t = time.perf_counter(); rt.run(feed); td.append(time.perf_counter() - t)
        t = time.perf_counter(); s.run(None, feed); to.append(time.perf_counter() - t)
td, to = np.array(td) * 1e3, np.array(to) * 1e3
print(json.dumps({"tree": os.path.basename(tree), "model": model, "dse_min": td.min(), "dse_med": float(np.median(td)),
                  "ort_min": to.min(), "ort_med": float(np.median(to)), "paired_med": float(np.median(td / to))}))
