"""One float node, timed in the C runtime (its profile's fastest run of the node) against
onnxruntime's session of the same one-node ONNX model, optionally for several builds of the
library alternating round by round (each in its own process: `DSEDGE_LIBRARY`), so a kernel
change can be measured before and after on a machine whose speed drifts (BENCHMARKS.md,
"Latency", session 14: the VM's two speeds).

    python3 benchmarks/one_node.py MaxPool 1,64,112,112 \\
        --attrs '{"kernel_shape": [3, 3], "strides": [2, 2], "pads": [1, 1, 1, 1]}' --lib old.so --lib new
    python3 benchmarks/one_node.py Conv 1,960,1,1 --weight 1280,960,1,1 --bias --attrs '{"kernel_shape": [1, 1]}'
    python3 benchmarks/one_node.py Transpose 1,3,85,40,40 --attrs '{"perm": [0, 1, 3, 4, 2]}'
    python3 benchmarks/one_node.py Resize 1,128,20,20 --consts '[null, ["float32", [1, 1, 2, 2]]]' \
        --attrs '{"mode": "nearest", "coordinate_transformation_mode": "asymmetric", "nearest_mode": "floor"}'

`--lib new` (or no --lib) is the library this checkout builds; any other value is a path to a
libdsedge shared library (e.g. one built from an older commit). Prints, per round and library,
the node's fastest and median of `--repeat` runs and the kernel that ran, then onnxruntime's."""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

import numpy as np

CHILD = """
import json, sys, numpy as np, dsedge.runtime as R
path, xpath, op, repeat = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
rt = R.Runtime(path, threads=1)
x = np.load(xpath)
prof = rt.profile({"x": x}, repeat=repeat, warmup=10)
n = [p for p in prof if p.op in (op, "FusedConv")][0]
print(json.dumps([n.min_ms, n.median_ms, n.kernel]))
"""


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("op")
    ap.add_argument("shape", help="input shape, e.g. 1,64,112,112")
    ap.add_argument("--attrs", default="{}", help="the node's ONNX attributes as JSON")
    ap.add_argument("--weight", default=None, help="a constant second input of this shape (Conv, Gemm, MatMul)")
    ap.add_argument("--bias", action="store_true", help="a constant third input (the weight's first dim)")
    ap.add_argument("--consts", default=None,
                    help='the inputs after x as JSON: null (absent) or [dtype, values] each (instead of --weight)')
    ap.add_argument("--lib", action="append", default=None, help="'new' or a libdsedge path; repeatable")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--repeat", type=int, default=300)
    a = ap.parse_args(argv)
    import onnx
    import onnxruntime as ort
    from onnx import TensorProto, helper, numpy_helper

    import dsedge
    from dsedge.api import save_result
    shape = [int(v) for v in a.shape.split(",")]
    attrs = json.loads(a.attrs)
    rng = np.random.default_rng(0)
    x = rng.standard_normal(shape).astype(np.float32)
    inits, ins = [], ["x"]
    if a.weight:
        ws = [int(v) for v in a.weight.split(",")]
        inits.append(numpy_helper.from_array((rng.standard_normal(ws) * 0.1).astype(np.float32), "w"))
        ins.append("w")
        if a.bias:
            inits.append(numpy_helper.from_array(rng.standard_normal(ws[0]).astype(np.float32), "b"))
            ins.append("b")
    for k, c in enumerate(json.loads(a.consts) if a.consts else []):
        if c is None:
            ins.append("")
        else:
            inits.append(numpy_helper.from_array(np.asarray(c[1], dtype=c[0]), f"c{k}"))
            ins.append(f"c{k}")
    node = helper.make_node(a.op, ins, ["y"], **attrs)
    g = helper.make_graph([node], "one", [helper.make_tensor_value_info("x", TensorProto.FLOAT, shape)],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)], inits)
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
    m.ir_version = 8
    with tempfile.TemporaryDirectory(prefix="dsedge-one-node-") as tmp:
        onnx_path, dse, xpath = os.path.join(tmp, "m.onnx"), os.path.join(tmp, "m.dse"), os.path.join(tmp, "x.npy")
        onnx.save(m, onnx_path)
        np.save(xpath, x)
        save_result(dsedge.quantize(onnx_path, [{"x": x}], precision="fp32", progress=False), dse)
        so = ort.SessionOptions()
        so.intra_op_num_threads = 1
        sess = ort.InferenceSession(onnx_path, so, providers=["CPUExecutionProvider"])
        libs = a.lib or ["new"]
        for rnd in range(a.rounds):
            for lib in libs:
                env = dict(os.environ)
                env.pop("DSEDGE_LIBRARY", None)
                if lib != "new":
                    env["DSEDGE_LIBRARY"] = lib
                out = subprocess.run([sys.executable, "-c", CHILD, dse, xpath, a.op, str(a.repeat)], env=env,
                                     capture_output=True, text=True, cwd=tmp)
                if out.returncode:
                    raise SystemExit(out.stderr[-2000:])
                mn, md, k = json.loads(out.stdout)
                print(f"round {rnd} {lib}: {mn:.4f} ms (median {md:.4f}) {k}")
            ts = []
            for _ in range(a.repeat):
                t = time.perf_counter()
                sess.run(None, {"x": x})
                ts.append(time.perf_counter() - t)
            print(f"round {rnd} onnxruntime: {min(ts) * 1e3:.4f} ms (median {float(np.median(ts)) * 1e3:.4f}), whole session run")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
