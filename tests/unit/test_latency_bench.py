"""benchmarks/latency.py (issue 10's latency/memory/size command) on one tiny model: it runs end
to end with --repeat 2 --no-write --json, and the JSON has the fields BENCHMARKS.md is made of.
No timed assertion: only that the numbers exist and are positive."""
from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))

pytestmark = pytest.mark.slow   # it quantises (twice with dsedge, twice with onnxruntime)


def _tiny_model(path: Path) -> None:
    rng = np.random.default_rng(0)
    w = rng.normal(0, 0.3, (4, 3, 3, 3)).astype(np.float32)
    b = rng.normal(0, 0.1, 4).astype(np.float32)
    fw = rng.normal(0, 0.1, (5, 4 * 8 * 8)).astype(np.float32)
    fb = rng.normal(0, 0.1, 5).astype(np.float32)
    nodes = [helper.make_node("Conv", ["x", "w", "b"], ["c"], pads=[1, 1, 1, 1], name="conv"),
             helper.make_node("Relu", ["c"], ["r"], name="relu"),
             helper.make_node("Flatten", ["r"], ["f"], name="flat"),
             helper.make_node("Gemm", ["f", "fw", "fb"], ["y"], transB=1, name="fc")]
    g = helper.make_graph(nodes, "tiny", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 8, 8])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 5])],
                          [numpy_helper.from_array(a, n) for a, n in ((w, "w"), (b, "b"), (fw, "fw"), (fb, "fb"))])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)])
    m.ir_version = 8
    onnx.save(m, str(path))


def test_latency_json(tmp_path, capsys):
    import latency
    model = tmp_path / "tiny.onnx"
    _tiny_model(model)
    out = tmp_path / "lat.json"
    bench = Path(latency.ROOT / "BENCHMARKS.md")
    before = bench.read_bytes() if bench.exists() else None
    rc = latency.main(["--models", f"{model},no_such_model", "--repeat", "2", "--warmup", "1", "--calib", "4",
                       "--no-write", "--no-memory", "--no-libs", "--json", str(out)])
    assert rc == 0
    assert (bench.read_bytes() if bench.exists() else None) == before      # --no-write
    res = json.loads(out.read_text())
    for k in ("command", "cpu", "machine", "capabilities", "threads", "repeat", "rows"):
        assert k in res, k
    assert res["threads"] == [1, 2] and res["repeat"] == 2
    assert isinstance(res["cpu"]["flags"], list) and res["cpu"]["model"]
    assert set(res["capabilities"]) >= {"threads", "kernels", "threads_how"}
    row, bad = res["rows"]
    assert bad["model"] == "no_such_model" and "unknown model" in bad["errors"]["model"]   # a row, not a crash
    assert row["errors"] == {}, row["errors"]
    assert row["conv_heavy"] is True and row["group"] == "file"
    for k in ("dse_int8@1", "dse_fp32@1", "ort_u8s8@1", "ort_u8u8@1", "ort_fp32@1", "ort_fp32@2"):
        lat = row["latency"][k]
        assert lat["runs"] == 2 and 0 < lat["p10_ms"] <= lat["median_ms"] <= lat["p90_ms"], (k, lat)
    if res["capabilities"]["threads"]:
        assert row["latency"]["dse_int8@2"]["runs"] == 2
    else:
        assert row["latency"]["dse_int8@2"]["na"].startswith("n/a")
    assert row["ort_int8_best"] in ("u8s8", "u8u8") and row["baseline"] == "ort_" + row["ort_int8_best"]
    assert row["ratios"]["1"]["int8"] > 0 and row["ratios"]["1"]["fp32"] > 0
    assert set(row["goals"]) >= {"int8", "fp32"}
    assert row["sqnr_db"]["dse_fp32@1"] > 60 and row["sqnr_db"]["dse_int8@1"] > 20
    for k in ("dse_int8", "dse_fp32", "ort_u8s8", "ort_u8u8", "fp32_onnx"):
        assert row["sizes"][k] > 0, k
    assert row["litert_from"] == "benchmarks/tflite_int8.py" and row["sizes"]["tflite"] > 0   # Conv, Relu, Gemm map
    assert row["latency"]["litert_int8@1"]["runs"] == 2 and row["sqnr_db"]["litert_int8@1"] > 10   # NHWC right (wrong: ~0 dB)
    text = capsys.readouterr().out
    assert "| tiny.onnx (conv) | 1 |" in text and "goal met" in text
    # the tables re-render from the JSON alone
    assert latency.render(res) in text
