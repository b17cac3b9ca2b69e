"""Write real exported models as fuzz seeds (not committed: regenerate them).

    python runtimes/c/fuzz/model_seeds.py OUT_DIR

The loader fuzzer (fuzz_loader.c) starts from the committed corpus (runtimes/c/tests/corpus)
and these: the digits CNN int8, fp16 (layout-5 weights), fp32, A16W8 (int16 activations) and W4A8 with groups of 32, a
small mobilenet_v2 int8 and W4A8 (int4 weights in layouts 6 and 3), a small
transformer_encoder int8, digits and the transformer quantised dynamically, and silero VAD int8 (its `sr` If folded behind a guard, when
silero-vad is installed). Real models give the fuzzer every kernel family's `check` and `run`
paths to mutate from; hand-made seeds reach only the parser. Deterministic for a given tree.
"""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[3]))

FAST = dict(progress=False, eval_feeds=2)


def _quant(onnx_model, feeds, precision="int8", **cfg):
    from dsedge.converters.onnx.reader import load_onnx
    from dsedge.quant.quantize import QuantConfig, quantize_graph
    src = onnx_model if isinstance(onnx_model, str) else onnx_model.SerializeToString()
    return quantize_graph(load_onnx(src), feeds, QuantConfig(precision=precision, **FAST, **cfg))


def seeds() -> dict[str, bytes]:
    import dsedge.zoo as zoo
    from dsedge.export import to_artifact
    out = {}
    calib = zoo.digits_calib()
    feeds = _to_list({"image": calib["image"][:16]})
    digits = zoo.build("digits")
    for prec in ("int8", "fp16", "fp32"):   # fp16: weights in layout 5, widened at load
        out[f"digits_{prec}"] = to_artifact(_quant(digits, feeds, prec)).to_bytes()
    out["digits_int8_io_int8"] = to_artifact(_quant(digits, feeds), io_dtype="int8").to_bytes()
    # A16W8 (int16 activations): the int16 Conv/Gemm kernels and int16 QuantizeLinear/DequantizeLinear
    out["digits_a16w8"] = to_artifact(_quant(digits, feeds, a16w8_nodes=("conv2", "fc"))).to_bytes()
    mb = zoo.build("mobilenet_v2", num_classes=10, input_size=32, width=0.35)
    out["mobilenet_v2_int8"] = to_artifact(_quant(mb, _to_list(zoo.random_feeds(mb, 4, seed=0)))).to_bytes()
    # W4A8: per-channel int4 weights in the N8K4 layouts 6/7 (the AVX2 W4 kernels) and depthwise in layout 3;
    # groups of 32 (layout 3, multipliers) on digits
    out["mobilenet_v2_w4"] = to_artifact(_quant(mb, _to_list(zoo.random_feeds(mb, 4, seed=0)), weight_bits=4)).to_bytes()
    out["digits_w4_g32"] = to_artifact(_quant(digits, feeds, weight_bits=4, weight_group=32)).to_bytes()
    tr = zoo.build("transformer_encoder", seq=8, dim=32, heads=2, layers=1, vocab=50)
    out["transformer_int8"] = to_artifact(_quant(tr, _to_list(zoo.random_feeds(tr, 4, seed=0)))).to_bytes()
    # dynamic quantisation (no calibration: kernels/ref/dyn_i8.c), Conv + Gemm and MatMul
    from dsedge.converters.onnx.reader import load_onnx
    from dsedge.quant.dynamic import quantize_dynamic
    from dsedge.quant.quantize import QuantConfig
    for name, m, shapes in (("digits", digits, None), ("transformer", tr, None)):
        g = load_onnx(m if isinstance(m, str) else m.SerializeToString())
        res = quantize_dynamic(g, QuantConfig(progress=False))
        out[f"{name}_dynamic"] = to_artifact(res, input_shapes=shapes).to_bytes()
    try:
        from tests.models import devmodels as dm
        dev = dm.dev_models()
    except Exception:   # PIL or the packages missing
        dev = {}
    if "silero/silero_vad" in dev:
        out["silero_int8"] = to_artifact(_quant(dev["silero/silero_vad"], dm.calibration_feeds("silero/silero_vad", 4))).to_bytes()
    return out


def _to_list(feeds: dict) -> list[dict]:
    n = len(next(iter(feeds.values())))
    return [{k: v[i] for k, v in feeds.items()} for i in range(n)]


def main(argv: list[str]) -> int:
    out = Path(argv[1] if len(argv) > 1 else "build/fuzz_seeds")
    out.mkdir(parents=True, exist_ok=True)
    for name, data in seeds().items():
        (out / f"model_{name}.dse").write_bytes(data)
        print(f"{name}: {len(data)} bytes", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
