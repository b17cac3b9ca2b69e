"""W4A8 and 7-bit weights vs W8A8: .dse size and top-1 agreement with the float model (and accuracy
where labels exist).

    python benchmarks/w4a8.py [--only W8A8,W7A8] [digits] [mobilenet_v2] [cls] [orient] [magika]

digits: the zoo model, calibrated on models/digits/calib.npz, scored on eval.npz (360 labelled
images). mobilenet_v2: the zoo architecture (models/archs.py, its deterministic initial weights,
width 1.0, 96x96 input, 100 classes), 32 calibration and 100 evaluation feeds of standard normal
noise (seeded): agreement only. Outputs of the integer graph come from the numpy reference, which
the C runtime matches byte for byte (tests/quant/test_w4a8.py). cls, orient, magika: the real
models of benchmarks/unseen_models.py (their wheels installed), 200 calibration feeds and
UNSEEN_EVAL scoring feeds of its own, top-1 agreement with onnxruntime's float model, run in the
C runtime (int4 nodes on reference kernels: slow, hence fewer feeds for the larger models)."""
from __future__ import annotations

import os
import sys
import tempfile

import numpy as np

import dsedge
from dsedge import zoo
from dsedge.interp import execute

VARIANTS = (("W8A8", 8, 0), ("W7A8", 7, 0), ("W4A8", 4, 0), ("W4A8 g32", 4, 32), ("W4A8 g64", 4, 64))
UNSEEN_EVAL = {"cls": 300, "orient": 100, "magika": 40}


def _unseen(name):
    """(rows) for a real model of benchmarks/unseen_models.py, scored in the C runtime."""
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    import onnxruntime as ort
    import unseen_models as um
    path = um.model_paths()[name]
    calib, evalf = um.feeds(name, 200, 0), um.feeds(name, UNSEEN_EVAL[name], 1000)
    sess = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
    out = um.OUTPUT.get(name, sess.get_outputs()[0].name)
    ref = [sess.run([out], f)[0] for f in evalf]
    rows = []
    for label, bits, grp in VARIANTS:
        r = dsedge.quantize(path, calib, weight_bits=bits, weight_group=grp, progress=False)
        dse = os.path.join(tempfile.mkdtemp(), "m.dse")
        r.save(dse)
        with dsedge.Runtime(dse) as rt:
            agree = float(np.mean([um.agree(name, a, rt.run(f)[out]) for a, f in zip(ref, evalf)]))
        rows.append((name, label, os.path.getsize(dse), agree, "", ""))
        print(f"| {name} | {label} | {os.path.getsize(dse)} | {agree:.3f} |  |  |", flush=True)
    return rows


def _data(name):
    if name == "digits":
        c, e = zoo.digits_calib(), zoo.digits_eval()
        return (str(zoo.digits_dir() / "model.onnx"), [{"image": x} for x in c["image"]],
                [{"image": x} for x in e["image"]], e["label"])
    import onnx
    m = zoo.build("mobilenet_v2", num_classes=100, input_size=96)
    path = os.path.join(tempfile.mkdtemp(), "mobilenet_v2.onnx")
    onnx.save(m, path)
    inp = m.graph.input[0].name
    feed = lambda i: {inp: np.random.default_rng(i).standard_normal((1, 3, 96, 96)).astype(np.float32)}  # noqa: E731
    return path, [feed(i) for i in range(32)], [feed(1000 + i) for i in range(100)], None


def main(names):
    rows = []
    for name in names:
        if name in UNSEEN_EVAL:
            rows += _unseen(name)
            continue
        path, calib, evalf, labels = _data(name)
        ref = None
        for label, bits, grp in VARIANTS:
            r = dsedge.quantize(path, calib, weight_bits=bits, weight_group=grp, progress=False)
            out = os.path.join(tempfile.mkdtemp(), "m.dse")
            r.save(out)
            if ref is None:
                ref = [np.argmax(execute(r.float_graph, f)[0]) for f in evalf]
            got = [np.argmax(execute(r.graph, f)[0]) for f in evalf]
            agree = float(np.mean([a == b for a, b in zip(ref, got)]))
            acc = "" if labels is None else f"{np.mean(np.asarray(got) == labels):.4f}"
            fl = "" if labels is None else f"{np.mean(np.asarray(ref) == labels):.4f}"
            rows.append((name, label, os.path.getsize(out), agree, acc, fl))
            print(f"| {name} | {label} | {os.path.getsize(out)} | {agree:.3f} | {acc} | {fl} |", flush=True)
    return rows


if __name__ == "__main__":
    print("| model | weights | .dse bytes | top-1 agreement with float | top-1 accuracy | float accuracy |")
    print("|---|---|---|---|---|---|")
    args = sys.argv[1:]
    if args[:1] == ["--only"]:
        only = set(args[1].split(","))
        VARIANTS = tuple(v for v in VARIANTS if v[0] in only)
        args = args[2:]
    main(args or ["digits", "mobilenet_v2"])
