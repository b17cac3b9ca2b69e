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
    for prec, base in (("int8", row["baseline"]), ("fp32", "ort_fp32")):   # paired: round by round
        a, b = row["latency"][f"dse_{prec}@1"]["runs_ms"], row["latency"][f"{base}@1"]["runs_ms"]
        assert len(a) == len(b) == 2
        assert row["paired_ratios"]["1"][prec] == pytest.approx(float(np.median(np.array(a) / np.array(b))))
    assert set(row["goals"]) >= {"int8", "fp32"}
    assert row["sqnr_db"]["dse_fp32@1"] > 60 and row["sqnr_db"]["dse_int8@1"] > 20
    for k in ("dse_int8", "dse_fp32", "ort_u8s8", "ort_u8u8", "fp32_onnx"):
        assert row["sizes"][k] > 0, k
    litert = latency.litert_version() is not None
    if litert:
        assert row["litert_from"] == "benchmarks/tflite_int8.py" and row["sizes"]["tflite"] > 0   # Conv, Relu, Gemm map
        assert row["latency"]["litert_int8@1"]["runs"] == 2
        assert row["sqnr_db"]["litert_int8@1"] > 10           # the NHWC conversion is right (wrong: ~0 dB)
    else:
        assert row["litert"].startswith("n/a"), row["litert"]   # the column says why, the run goes on
    text = capsys.readouterr().out
    assert "| tiny.onnx (conv) | 1 |" in text and "goal met" in text
    # the tables re-render from the JSON alone
    assert latency.render(res) in text
    if not litert:
        pytest.skip("ai-edge-litert is not installed (pip install ai-edge-litert==2.3.0): the LiteRT column unchecked")


def test_tool_rss_parses_dsedge_run(tmp_path):
    """The peak-RSS step against a stand-in dsedge-run (no compiler needed): inputs written as
    .npy, the tool's VmHWM read, the bound artifact + arena + inputs + outputs + 2 MiB applied,
    --threads only when the tool has it."""
    import dsedge
    import latency
    from dsedge.api import save_result
    model = tmp_path / "tiny.onnx"
    _tiny_model(model)
    feeds = [{"x": np.random.default_rng(i).normal(size=(1, 3, 8, 8)).astype(np.float32)} for i in range(3)]
    dse = tmp_path / "tiny.dse"
    save_result(dsedge.quantize(str(model), feeds, progress=False), str(dse))
    tool = tmp_path / "dsedge-run"
    tool.write_text("#!/bin/sh\necho \"$@\" > \"$(dirname \"$0\")/args\"\n"
                    "echo 'latency_ms min=0.5 median=0.7 mean=0.8 runs=3'\necho 'peak_rss_kb=1500'\n")
    tool.chmod(0o755)
    m = latency.tool_rss(tool, str(dse), feeds[0], 1, {}, tmp_path / "w")
    args = (tmp_path / "args").read_text().split()
    assert args[0] == str(dse) and "--repeat" in args and any(a.startswith("x=") and a.endswith(".npy") for a in args)
    assert m["vmhwm"] == 1500 * 1024 and m["peak"] >= m["vmhwm"] and m["tool_median_ms"] == 0.7
    assert m["need"] == dse.stat().st_size + m["arena"] + m["io"] and m["io"] == 3 * 64 * 4 + 5 * 4
    assert m["within"] == (m["peak"] - m["need"] <= latency.RSS_SLACK)
    assert "n/a" in latency.tool_rss(tool, str(dse), feeds[0], 2, {"threads": False}, tmp_path / "w2")["error"]
    latency.tool_rss(tool, str(dse), feeds[0], 2, {"threads": True}, tmp_path / "w3")
    assert "--threads" in (tmp_path / "args").read_text().split()
