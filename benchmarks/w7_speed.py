"""7-bit against 8-bit weights in the C runtime: the same model quantised with `weight_bits=8` and
`weight_bits=7`, the two .dse files run alternately in one process (1 thread), median and min ms,
and how many nodes took the 7-bit AVX2 kernels (`dse_i8_*_w7__avx2`, exact `vpmaddubsw`).

    python3 benchmarks/w7_speed.py conv C O H KH [W KW]          # one Conv, e.g. conv 1280 512 508 1
    python3 benchmarks/w7_speed.py zoo NAME ['dict(kwargs)'] [RUNS]  # e.g. zoo resnet50, zoo mobilenet_v2 'dict(input_size=224)'
"""
from __future__ import annotations

import sys
import tempfile
import time

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

import dsedge
import dsedge.zoo as zoo
from dsedge.api import save_result


def _conv(C, O, H, KH, W=1, KW=1):
    rng = np.random.default_rng(0)
    w = (rng.standard_normal((O, C, KH, KW)) * 0.05).astype(np.float32)
    b = (rng.standard_normal(O) * 0.1).astype(np.float32)
    g = helper.make_graph([helper.make_node("Conv", ["x", "w", "b"], ["y"], kernel_shape=[KH, KW])], "conv",
                          [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, C, H, W])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
                          [numpy_helper.from_array(w, "w"), numpy_helper.from_array(b, "b")])
    feeds = [{"x": rng.standard_normal((1, C, H, W)).astype(np.float32)} for _ in range(9)]
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)]), feeds, O * C * KH * KW * (H - KH + 1) * (W - KW + 1)


def main(argv):
    if argv[0] == "conv":
        m, feeds, macs = _conv(*[int(v) for v in argv[1:]])
        runs = 60
    else:
        m = zoo.build(argv[1], **(eval(argv[2]) if len(argv) > 2 else {}))   # noqa: S307 (a local benchmark's argument)
        f = zoo.random_feeds(m, 9, 0)
        feeds, macs = [{k: a[i] for k, a in f.items()} for i in range(9)], 0
        runs = int(argv[3]) if len(argv) > 3 else 30
    d = tempfile.mkdtemp(prefix="dsedge-w7-")
    onnx.save(m, f"{d}/m.onnx")
    rts = {}
    for bits in (8, 7):
        save_result(dsedge.quantize(f"{d}/m.onnx", feeds[:8], precision="int8", progress=False, weight_bits=bits),
                    f"{d}/m{bits}.dse")
        rts[bits] = dsedge.Runtime(f"{d}/m{bits}.dse")
    ts = {8: [], 7: []}
    for _ in range(runs):
        for bits, rt in rts.items():
            t = time.perf_counter()
            rt.run(feeds[8])
            ts[bits].append(time.perf_counter() - t)
    for bits in (8, 7):
        mn, md = min(ts[bits]), float(np.median(ts[bits]))
        rate = f", {macs / mn / 1e9:.1f} G multiply-adds/s" if macs else ""
        print(f"weight_bits {bits}: median {md * 1e3:.2f} ms, min {mn * 1e3:.2f} ms{rate}")
    k7 = sum(k.endswith("_w7__avx2") for k in rts[7].kernels())
    print(f"7-bit / 8-bit median: {np.median(ts[7]) / np.median(ts[8]):.3f}; {k7} nodes on the 7-bit kernels")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
