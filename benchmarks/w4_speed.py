"""int4 weights (W4A8, per channel) against int8 and 7-bit weights in the C runtime: the same model
quantised with `weight_bits=8`, `7` and `4`, and the int4 model once more in the row layouts 3/4
that the exporter wrote before the int4 N8K4 layouts 6/7 (`int4-rows`: its int4 nodes then run the
W4A8 REF kernels, as every int4 node did before the AVX2 W4 kernels). The files run alternately in
one process (1 thread, `rounds` rounds of one run each); printed per file: median and min wall ms, min
and median CPU ms of the calling thread (the runtime runs a 1-thread session on it; on a shared machine
the CPU time is the steadier figure), the paired median of each file's wall time over int8's in the same
round, and the kernels the int4 nodes got.

    python3 benchmarks/w4_speed.py conv C O H KH [W KW] [RUNS]     # one Conv, e.g. conv 1280 512 7 1 7 1
    python3 benchmarks/w4_speed.py zoo NAME ['dict(kwargs)'] [RUNS]  # e.g. zoo mobilenet_v2 'dict(input_size=224)'
    python3 benchmarks/w4_speed.py unseen NAME [RUNS]               # cls, orient, ... (benchmarks/unseen_models.py)

`--variants int8,int4` (default int8,int7,int4,int4-rows) picks the files.
"""
from __future__ import annotations

import os
import sys
import tempfile
import time
from unittest import mock

import numpy as np
import onnx

import dsedge
import dsedge.zoo as zoo
from dsedge.api import save_result
from dsedge.artifact import LAYOUT_I4, LAYOUT_I4_T
from dsedge.export import dse as dse_mod
from dsedge.quant.kinds.weighted import W4A8

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from w7_speed import _conv  # noqa: E402

VARIANTS = {"int8": 8, "int7": 7, "int4": 4, "int4-rows": 4}


def _rows_layout(self, g, n):
    """Layouts 3/4 for every int4 weight (the exporter before layouts 6/7)."""
    return LAYOUT_I4 if n.op == "Conv" or (n.op == "Gemm" and int(n.attrs.get("transB", 0) or 0)) else LAYOUT_I4_T


def _no_w4_scratch(node, shapes, out_dtype, _orig=dse_mod.scratch_bytes):
    return 0 if (node.attrs.get("_q") or {}).get("kind") == "w4a8" else _orig(node, shapes, out_dtype)


def _save(path: str, feeds: list[dict], variant: str, out: str) -> None:
    res = dsedge.quantize(path, feeds, precision="int8", progress=False, weight_bits=VARIANTS[variant])
    if variant == "int4-rows":
        with mock.patch.object(W4A8, "weight_layout", _rows_layout), \
                mock.patch("dsedge.export.dse.scratch_bytes", _no_w4_scratch):
            save_result(res, out)
    else:
        save_result(res, out)


def main(argv):
    variants = list(VARIANTS)
    if "--variants" in argv:
        i = argv.index("--variants")
        variants = argv[i + 1].split(",")
        argv = argv[:i] + argv[i + 2:]
    d = tempfile.mkdtemp(prefix="dsedge-w4-")
    macs = 0
    if argv[0] == "conv":
        nums = [int(v) for v in argv[1:]]
        dims, runs = (nums[:-1], nums[-1]) if len(nums) in (5, 7) else (nums, 60)
        m, feeds, macs = _conv(*dims)
        path = f"{d}/m.onnx"
        onnx.save(m, path)
    elif argv[0] == "zoo":
        m = zoo.build(argv[1], **(eval(argv[2]) if len(argv) > 2 else {}))   # noqa: S307 (a local benchmark's argument)
        f = zoo.random_feeds(m, 9, 0)
        feeds = [{k: a[i] for k, a in f.items()} for i in range(9)]
        runs = int(argv[3]) if len(argv) > 3 else 30
        path = f"{d}/m.onnx"
        onnx.save(m, path)
    else:
        import unseen_models as um
        path = um.model_paths()[argv[1]]
        feeds = um.feeds(argv[1], 9, 0)
        runs = int(argv[2]) if len(argv) > 2 else 30
    rts = {}
    for v in variants:
        _save(path, feeds[:8], v, f"{d}/{v}.dse")
        rts[v] = dsedge.Runtime(f"{d}/{v}.dse")
    ts = {v: [] for v in variants}
    cpu = {v: [] for v in variants}
    for _ in range(runs):
        for v, rt in rts.items():
            t, c = time.perf_counter(), time.thread_time()
            rt.run(feeds[8])
            ts[v].append(time.perf_counter() - t)
            cpu[v].append(time.thread_time() - c)
    base = variants[0]
    for v in variants:
        mn, md = min(ts[v]), float(np.median(ts[v]))
        rate = f", {macs / mn / 1e9:.1f} G multiply-adds/s" if macs else ""
        paired = float(np.median(np.array(ts[v]) / np.array(ts[base])))
        kern = [k for k in rts[v].kernels() if "_w4__" in k or "_w7__" in k]
        kinds = {k: kern.count(k) for k in sorted(set(kern))}
        cmin, cmed = min(cpu[v]), float(np.median(cpu[v]))
        print(f"{v:9s}: median {md * 1e3:8.2f} ms, min {mn * 1e3:8.2f} ms{rate}; CPU min {cmin * 1e3:8.2f} ms, "
              f"median {cmed * 1e3:8.2f} ms; paired median / {base} {paired:.3f}; "
              f"{os.path.getsize(f'{d}/{v}.dse')} B; {kinds or ''}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
