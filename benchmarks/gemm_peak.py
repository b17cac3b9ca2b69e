"""One float Gemm (M x K by a constant B, transB 0 or 1, bias [N]) in dsedge's C runtime against
onnxruntime's fp32 session, 1 thread, min and median of 30 runs after 3 warm-ups, in one process.

    python3 benchmarks/gemm_peak.py M K N TRANSB      # e.g. 40 1024 8210 1 (ddddocr common's classifier)
"""
from __future__ import annotations

import os
import sys
import tempfile
import time

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper, numpy_helper

import dsedge
from dsedge.api import save_result

M,K,N,tb = [int(v) for v in sys.argv[1:5]]
rng = np.random.default_rng(0)
B = (rng.standard_normal((N,K) if tb else (K,N))*0.05).astype(np.float32)
C = (rng.standard_normal(N)*0.1).astype(np.float32)
g = helper.make_graph([helper.make_node("Gemm", ["a","B","C"], ["y"], transB=tb)], "g",
    [helper.make_tensor_value_info("a", TensorProto.FLOAT, [M,K])],[helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
    [numpy_helper.from_array(B,"B"), numpy_helper.from_array(C,"C")])
d=tempfile.mkdtemp(prefix="dsedge-gemmpeak-"); src=f"{d}/g{tb}.onnx"
onnx.save(helper.make_model(g, opset_imports=[helper.make_opsetid("",17)]), src)
feeds=[{"a": rng.standard_normal((M,K)).astype(np.float32)} for _ in range(3)]
dse=f"{d}/g{tb}.dse"; save_result(dsedge.quantize(src, feeds, precision="fp32", progress=False), dse)
def tm(f, n=30):
    for _ in range(3): f()
    ts=[]
    for _ in range(n):
        t=time.perf_counter(); f(); ts.append(time.perf_counter()-t)
    return min(ts)*1e3, float(np.median(ts))*1e3
so=ort.SessionOptions(); so.intra_op_num_threads=1
s=ort.InferenceSession(src, so, providers=["CPUExecutionProvider"])
with dsedge.Runtime(dse) as rt:
    a=tm(lambda: rt.run(feeds[0])); b=tm(lambda: s.run(None, feeds[0]))
print(f"M{M} K{K} N{N} transB{tb}: dsedge {a[0]:.2f}/{a[1]:.2f} ms  ort {b[0]:.2f}/{b[1]:.2f} ms  dsedge {2*M*K*N/a[0]/1e6:.1f} GFLOP/s")
