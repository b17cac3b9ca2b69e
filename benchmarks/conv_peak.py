"""One Conv, quantised by dsedge and by onnxruntime's quantize_static (QDQ, per channel, u8s8
and u8u8), timed at 1 thread: how close each engine's int8 kernel comes to the CPU's integer
multiply rate on a GEMM-shaped convolution (BENCHMARKS.md, "Latency": what bounds int8).

    python3 benchmarks/conv_peak.py C O H KH [W KW]     # e.g. 1280 512 508 1  (a 1x1, K = 1280)
                                                        #      256 512 512 5   (magika's 5x1 conv)

Prints min and median ms of 20 runs after 3 warm-ups and G multiply-adds per second (min)."""
from __future__ import annotations

import argparse
import os
import tempfile
import time

import numpy as np


def _time(fn, n=20):
    for _ in range(3):
        fn()
    ts = []
    for _ in range(n):
        t = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t)
    return min(ts), float(np.median(ts))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    for k in ("C", "O", "H", "KH"):
        ap.add_argument(k, type=int)
    ap.add_argument("W", type=int, nargs="?", default=1)
    ap.add_argument("KW", type=int, nargs="?", default=1)
    a = ap.parse_args(argv)
    import onnx
    import onnxruntime as ort
    from onnx import TensorProto, helper, numpy_helper
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static

    import dsedge
    from dsedge.api import save_result
    rng = np.random.default_rng(0)
    w = (rng.standard_normal((a.O, a.C, a.KH, a.KW)) * 0.05).astype(np.float32)
    b = (rng.standard_normal(a.O) * 0.1).astype(np.float32)
    g = helper.make_graph([helper.make_node("Conv", ["x", "w", "b"], ["y"], kernel_shape=[a.KH, a.KW])], "conv",
                          [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, a.C, a.H, a.W])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
                          [numpy_helper.from_array(w, "w"), numpy_helper.from_array(b, "b")])
    feeds = [{"x": rng.standard_normal((1, a.C, a.H, a.W)).astype(np.float32)} for _ in range(5)]
    macs = a.O * a.C * a.KH * a.KW * (a.H - a.KH + 1) * (a.W - a.KW + 1)
    with tempfile.TemporaryDirectory(prefix="dsedge-convpeak-") as tmp:
        src = os.path.join(tmp, "conv.onnx")
        onnx.save(helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)]), src)
        dse = os.path.join(tmp, "conv.dse")
        save_result(dsedge.quantize(src, feeds[:4], precision="int8", progress=False), dse)
        rows = []
        with dsedge.Runtime(dse) as rt:
            rows.append(("dsedge int8", _time(lambda: rt.run(feeds[4]))))
        so = ort.SessionOptions()
        so.intra_op_num_threads = 1
        for name, wt in (("u8s8", QuantType.QInt8), ("u8u8", QuantType.QUInt8)):
            class Reader(CalibrationDataReader):
                def __init__(self):
                    self.it = iter(feeds[:4])

                def get_next(self):
                    return next(self.it, None)
            q = os.path.join(tmp, f"conv_{name}.onnx")
            quantize_static(src, q, Reader(), quant_format=QuantFormat.QDQ, per_channel=True,
                            activation_type=QuantType.QUInt8, weight_type=wt)
            s = ort.InferenceSession(q, so, providers=["CPUExecutionProvider"])
            rows.append((f"onnxruntime {name}", _time(lambda s=s: s.run(None, feeds[4]))))
        s = ort.InferenceSession(src, so, providers=["CPUExecutionProvider"])
        rows.append(("onnxruntime fp32", _time(lambda: s.run(None, feeds[4]))))
    print(f"Conv {a.C}->{a.O}, kernel {a.KH}x{a.KW}, input {a.H}x{a.W}: {macs / 1e6:.0f} M multiply-adds, 1 thread")
    for name, (mn, med) in rows:
        print(f"  {name:18s} min {mn * 1e3:8.2f} ms  median {med * 1e3:8.2f} ms  {macs / mn / 1e9:5.1f} G/s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
