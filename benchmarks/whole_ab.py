"""Whole-model latency of one library build against onnxruntime, 1 and 2 threads, for before/after
comparisons of a runtime change (the library is the one `dsedge.runtime` loads: `DSEDGE_LIBRARY=...`
selects another build), one process per build, alternated by the caller:

    python3 benchmarks/whole_ab.py minilm --prec fp32 --work /tmp/wab --prepare      # once: .dse, feed
    for r in 1 2 3; do for L in old.so new.so; do
        /work/s16/quiet bash -c "sleep 3; DSEDGE_LIBRARY=$L python3 benchmarks/whole_ab.py minilm --prec fp32 --work /tmp/wab"
    done; done

MODEL: any name benchmarks/latency.py takes (same feeds; the `.dse` as benchmarks/node_gap.py makes it).
Per round, each engine (dsedge 1 and 2 threads; with --ort, onnxruntime fp32 1 and 2 threads on the
float model: int8 rows have no onnxruntime baseline here, see latency.py) runs a burst of 5, after 3
warm-up runs each. Printed: each engine's fastest and median of all runs, the median over rounds of the
per-round ratio dsedge / onnxruntime (fastest of each burst: paired), and the 2-thread speed-up of both.
"""
from __future__ import annotations

import argparse
import os
import pickle
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))


def prepare(model: str, prec: str, work: Path, calib: int) -> None:
    import dsedge
    import latency
    from dsedge.api import save_result
    work.mkdir(parents=True, exist_ok=True)
    src = latency.prepare(model, calib, str(work))
    feed = src["feed"]
    r = dsedge.quantize(src["path"], src["calib"], precision=prec, progress=False)
    save_result(r, str(work / f"{prec}.dse"), input_shapes={k: list(np.shape(v)) for k, v in feed.items()})
    (work / "feed.pkl").write_bytes(pickle.dumps({"feed": feed, "path": src["path"]}))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("model")
    ap.add_argument("--prec", choices=("fp32", "int8"), default="fp32")
    ap.add_argument("--work", required=True, help="directory for the .dse and the feed (kept between runs)")
    ap.add_argument("--prepare", action="store_true", help="write the .dse and feed into --work, then exit")
    ap.add_argument("--rounds", type=int, default=12)
    ap.add_argument("--ort", action="store_true", help="time onnxruntime fp32 too (paired ratios)")
    ap.add_argument("--calib", type=int, default=16)
    a = ap.parse_args(argv)
    work = Path(a.work)
    if a.prepare:
        prepare(a.model, a.prec, work, a.calib)
        return 0
    import dsedge.runtime as R
    d = pickle.loads((work / "feed.pkl").read_bytes())
    feed = d["feed"]
    eng = {}
    for t in (1, 2):
        rt = R.Runtime(str(work / f"{a.prec}.dse"), threads=t)
        eng[f"dse{t}"] = (lambda rt=rt: rt.run(feed))
    if a.ort:
        import onnxruntime as ort
        for t in (1, 2):
            so = ort.SessionOptions()
            so.intra_op_num_threads = t
            s = ort.InferenceSession(d["path"], so, providers=["CPUExecutionProvider"])
            eng[f"ort{t}"] = (lambda s=s: s.run(None, feed))
    times = {k: [] for k in eng}
    for f in eng.values():
        for _ in range(3):
            f()
    for _ in range(a.rounds):
        for k, f in eng.items():
            for _ in range(5):
                t0 = time.perf_counter()
                f()
                times[k].append((time.perf_counter() - t0) * 1e3)
    burst = {k: np.array(v).reshape(a.rounds, 5).min(1) for k, v in times.items()}
    out = [f"{k} min {np.min(v):.2f} med {np.median(v):.2f} ms" for k, v in times.items()]
    if a.ort:
        out += [f"paired {t}t {np.median(burst[f'dse{t}'] / burst[f'ort{t}']):.3f}" for t in (1, 2)]
        out.append(f"2t speed-up ort {np.median(burst['ort1'] / burst['ort2']):.2f}")
    out.append(f"2t speed-up dsedge {np.median(burst['dse1'] / burst['dse2']):.2f}")
    lib = os.path.basename(os.environ.get("DSEDGE_LIBRARY", "") or R.library_path())
    print(f"{lib} {a.model} {a.prec}: " + " | ".join(out), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
