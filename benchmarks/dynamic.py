"""Dynamic quantisation (no calibration data) against float and against calibrated int8.

For each model, on held-out feeds, the output SQNR against the float model (per output, all
feeds together; the minimum over outputs) and the task agreement with the float model
(digits: top-1; OCR: decoded string; VAD: speech decisions; detector: boxes within 2 px) of
  * dsedge, calibrated (`dsedge quantize --calib`, n_calib feeds): QDQ ONNX in onnxruntime;
  * dsedge, dynamic (`dsedge quantize` without --calib): QDQ ONNX in onnxruntime, and the
    `.dse` in the C runtime (specialised to the first eval feed's shapes; skipped when the
    model cannot be specialised without calibration feeds, e.g. control flow on an input);
  * onnxruntime's own `quantize_dynamic` (QInt8 and QUInt8 weights, per tensor, its defaults),
    for context: on x86 without VNNI its QInt8 form saturates (u8s8 kernels).

    python benchmarks/dynamic.py [--models digits,silero/silero_vad,ddddocr/common@w160] [--calib 32] [--eval 32]
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from dev_models import Scorer, _fixed_width, _ort_session  # noqa: E402


class _DigitsScorer(Scorer):
    def add(self, ref, got):
        for o, a, b in zip(self.out_names, ref, got):
            a = np.asarray(a, np.float64)
            b = np.asarray(b, np.float64).reshape(a.shape)
            self.sig[o] += float(np.sum(a * a))
            self.err[o] += float(np.sum((a - b) ** 2))
        self.agree += int(np.argmax(ref[0]) == np.argmax(got[0]))
        self.n += 1


def _feeds(name: str, n_calib: int, n_eval: int):
    if name == "digits":
        d = ROOT / "models" / "digits"
        c, e = np.load(d / "calib.npz")["image"], np.load(d / "eval.npz")["image"]
        return str(d / "model.onnx"), [{"image": x} for x in c[:n_calib]], [{"image": x} for x in e[:n_eval]]
    from tests.models import devmodels as dm
    base = name.split("@")[0]
    calib = dm.calibration_feeds(base, n_calib, seed=0)
    evalf = dm.calibration_feeds(base, n_eval, seed=1000)
    if "@w" in name:
        w = int(name.split("@w")[1])
        calib, evalf = _fixed_width(calib, w), _fixed_width(evalf, w)
    return dm.model_path(base), calib, evalf


def evaluate(name: str, n_calib: int, n_eval: int, log=print) -> dict:
    import dsedge
    from dsedge.api import quantize, save_result
    from dsedge.errors import DseError
    path, calib, evalf = _feeds(name, n_calib, n_eval)
    base = name.split("@")[0]
    fs = _ort_session(path)
    outs = [o.name for o in fs.get_outputs()]
    refs = [fs.run(outs, f) for f in evalf]
    mk = (lambda: _DigitsScorer(base, outs)) if name == "digits" else (lambda: Scorer(base, outs))
    rep: dict = {"model": name, "n_calib": len(calib), "n_eval": len(evalf), "rows": {}}

    def score_ort(label, p):
        s, sc = _ort_session(p), mk()
        for f, r in zip(evalf, refs):
            sc.add(r, s.run(outs, f))
        rep["rows"][label] = sc.result()

    with tempfile.TemporaryDirectory(prefix="dsedge-dyn-") as tmp:
        t0 = time.perf_counter()
        st = quantize(path, calib, progress=False)
        save_result(st, os.path.join(tmp, "static.onnx"))
        rep["static_seconds"] = time.perf_counter() - t0
        score_ort("dsedge calibrated int8, QDQ in onnxruntime", os.path.join(tmp, "static.onnx"))
        t0 = time.perf_counter()
        dy = quantize(path, None, progress=False)
        save_result(dy, os.path.join(tmp, "dyn.onnx"))
        rep["dynamic_seconds"] = time.perf_counter() - t0
        rep["dynamic_nodes"] = sum(p.precision == "int8-dynamic" for p in dy.plan)
        rep["nodes"] = len(dy.plan)
        score_ort("dsedge dynamic, QDQ in onnxruntime", os.path.join(tmp, "dyn.onnx"))
        try:
            shapes = {k: tuple(v.shape) for k, v in evalf[0].items()}
            save_result(dy, os.path.join(tmp, "dyn.dse"), input_shapes=shapes)
            sc = mk()
            with dsedge.Runtime(os.path.join(tmp, "dyn.dse")) as rt:
                for f, r in zip(evalf, refs):
                    if {k: tuple(v.shape) for k, v in f.items()} != shapes:
                        continue
                    o = rt.run(f)
                    sc.add(r, [o[n] for n in outs])
            rep["rows"]["dsedge dynamic, .dse in the C runtime"] = sc.result()
        except DseError as e:
            rep["rows"]["dsedge dynamic, .dse in the C runtime"] = {"error": str(e).splitlines()[0][:200]}
        from onnxruntime.quantization import QuantType, quantize_dynamic
        for wt in (QuantType.QInt8, QuantType.QUInt8):
            out = os.path.join(tmp, f"ort_{wt.name}.onnx")
            try:
                quantize_dynamic(path, out, weight_type=wt)
                score_ort(f"onnxruntime quantize_dynamic {wt.name}", out)
            except Exception as e:  # recorded, the others go on
                rep["rows"][f"onnxruntime quantize_dynamic {wt.name}"] = {"error": f"{type(e).__name__}: {e}"[:200]}
    for k, r in rep["rows"].items():
        log(f"  {k:45s} " + (f"{r['min_sqnr_db']:6.2f} dB  agree {r['task_agreement']:.3f}" if "error" not in r
                             else r["error"]))
    return rep


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", default="digits,silero/silero_vad,ddddocr/common@w160")
    ap.add_argument("--calib", type=int, default=32)
    ap.add_argument("--eval", type=int, default=32)
    a = ap.parse_args(argv)
    for m in a.models.split(","):
        print(m, flush=True)
        r = evaluate(m, a.calib, a.eval)
        print(f"  ({r['dynamic_nodes']} of {r['nodes']} nodes int8-dynamic; quantise {r['dynamic_seconds']:.1f} s "
              f"dynamic vs {r['static_seconds']:.1f} s calibrated)", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
