"""The onnxruntime quantisation baseline harness (benchmarks/ort_baseline.py) on a tiny model.

Checks that all 7 quantize_static variants run and give finite, plausible SQNRs, that the
quant_pre_process retry chain falls back when pre-processing raises, that a failing variant is
recorded rather than fatal, and the feed reader / SQNR / BENCHMARKS.md helpers in common.py.
"""
from __future__ import annotations

import math
import sys
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
import common  # noqa: E402
import ort_baseline  # noqa: E402


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


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    d = tmp_path_factory.mktemp("ortbl")
    _tiny_model(d / "m.onnx")
    rng = np.random.default_rng(1)
    np.savez(d / "calib.npz", x=rng.normal(size=(16, 1, 3, 8, 8)).astype(np.float32))
    np.savez(d / "eval.npz", x=rng.normal(size=(16, 1, 3, 8, 8)).astype(np.float32),
             label=rng.integers(0, 5, 16))
    return d


@pytest.mark.slow
def test_all_variants_give_finite_sqnr(tiny):
    rep = ort_baseline.run_baseline(tiny / "m.onnx", tiny / "calib.npz", tiny / "eval.npz", task=common.top1_agreement)
    assert rep["preprocess"]["used"] == "full"
    assert [v["name"] for v in rep["variants"]] == [v.name for v in ort_baseline.VARIANTS] and len(rep["variants"]) == 7
    for v in rep["variants"]:
        assert v["ok"], v
        assert math.isfinite(v["sqnr_db"]["y"]), v   # inf would mean nothing was quantised
        assert 15.0 < v["sqnr_db"]["y"] < 80.0, v    # int8 on a 2-layer net: ~30-45 dB
        assert 0.0 <= v["task"] <= 1.0
    best = rep["best"]["min_sqnr_db"]
    assert best["value"] == max(v["min_sqnr_db"] for v in rep["variants"])
    assert {"min_sqnr_db", "sqnr_db[y]", "task"} <= set(rep["best"])


def test_retry_chain_when_pre_process_raises(tiny, monkeypatch):
    real = ort_baseline.quant_pre_process
    calls = []

    def flaky(inp, out, **kw):
        calls.append(kw)
        if not kw.get("skip_symbolic_shape"):
            raise AssertionError("symbolic shape inference failed")
        return real(inp, out, **kw)

    monkeypatch.setattr(ort_baseline, "quant_pre_process", flaky)
    one = (ort_baseline.VARIANTS[0],)
    rep = ort_baseline.run_baseline(tiny / "m.onnx", tiny / "calib.npz", tiny / "eval.npz", variants=one)
    assert rep["preprocess"]["used"] == "skip_symbolic_shape"
    assert [a["ok"] for a in rep["preprocess"]["attempts"]] == [False, True]
    assert "symbolic shape inference failed" in rep["preprocess"]["attempts"][0]["error"]
    assert calls == [{}, {"skip_symbolic_shape": True}]
    assert rep["variants"][0]["ok"] and math.isfinite(rep["variants"][0]["min_sqnr_db"])

    def broken(inp, out, **kw):
        raise RuntimeError("boom")

    monkeypatch.setattr(ort_baseline, "quant_pre_process", broken)
    rep = ort_baseline.run_baseline(tiny / "m.onnx", tiny / "calib.npz", tiny / "eval.npz", variants=one)
    assert [a["step"] for a in rep["preprocess"]["attempts"]] == [s for s, _ in ort_baseline.PREPROCESS_CHAIN]
    assert rep["preprocess"]["used"] == "none"
    assert rep["variants"][0]["ok"] and math.isfinite(rep["variants"][0]["min_sqnr_db"])


def test_failing_variant_is_recorded_not_fatal(tiny):
    bad = ort_baseline.Variant("bogus", "QUInt8", "NoSuchMethod")
    rep = ort_baseline.run_baseline(tiny / "m.onnx", tiny / "calib.npz", tiny / "eval.npz",
                                    variants=(bad, ort_baseline.VARIANTS[0]))
    assert not rep["variants"][0]["ok"] and "NoSuchMethod" in rep["variants"][0]["error"]
    assert rep["variants"][1]["ok"]
    assert rep["best"]["min_sqnr_db"]["variant"] == ort_baseline.VARIANTS[0].name


def test_feed_layouts_and_helpers(tiny, tmp_path):
    inputs = common.model_inputs(onnx.load(str(tiny / "m.onnx")))
    fs = common.open_feeds(tiny / "eval.npz", inputs)
    assert len(fs) == 16 and set(fs.extras) == {"label"}
    feeds = list(fs)
    assert feeds[3]["x"].shape == (1, 3, 8, 8) and set(feeds[3]) == {"x"}
    with np.load(tiny / "eval.npz") as z:
        common.write_feed_dir({"x": z["x"]}, tmp_path / "dir")
        np.testing.assert_array_equal(np.stack(list(d["x"] for d in common.open_feeds(tmp_path / "dir", inputs))), z["x"])
        # rank == model rank with batch 1: the batch axis doubles as the sample axis
        np.savez(tmp_path / "flat.npz", x=z["x"][:, 0])
    fl = list(common.open_feeds(tmp_path / "flat.npz", inputs))
    assert len(fl) == 16 and fl[0]["x"].shape == (1, 3, 8, 8)
    with pytest.raises(common.FeedFileError, match="missing input"):
        np.savez(tmp_path / "wrong.npz", z=np.zeros((2, 1, 3, 8, 8), np.float32))
        common.open_feeds(tmp_path / "wrong.npz", inputs)

    ref = np.array([3.0, -4.0])
    assert common.sqnr_db(ref, ref + [0.3, 0.4]) == pytest.approx(20.0)   # 25 / 0.25 = 100
    assert common.sqnr_db(ref, ref) == math.inf

    md = tmp_path / "B.md"
    common.replace_section(md, "A", "one")
    common.replace_section(md, "B", "two")
    common.replace_section(md, "A", "three")
    text = md.read_text()
    assert "one" not in text and text.index("## A") < text.index("three") < text.index("## B") < text.index("two")


@pytest.mark.slow
def test_measure_child_ignores_parent_memory():
    """A child's ru_maxrss would start at the parent's high-water RSS; the launcher prevents that."""
    ballast = np.ones(32_000_000)  # 256 MB touched in this (parent) process
    small = common.measure_child([sys.executable, "-c", "pass"])
    big = common.measure_child([sys.executable, "-c", "import numpy as np; a = np.ones(24_000_000); a += 1"])
    del ballast
    assert small.returncode == 0 and big.returncode == 0
    assert small.peak_rss_mb < 100, small
    assert 180 < big.peak_rss_mb < 400, big          # 192 MB array + interpreter and numpy
    assert small.wall_s > 0 and big.wall_s > small.wall_s
    assert common.measure_child([sys.executable, "-c", "import sys; sys.exit(3)"]).returncode == 3


def test_cli_json_stdout_is_clean(tiny, capsys):
    """onnxruntime's calibrators print progress; with --json stdout must still be one JSON document."""
    import json
    rc = ort_baseline.main([str(tiny / "m.onnx"), "--calib", str(tiny / "calib.npz"), "--eval", str(tiny / "eval.npz"),
                            "--variants", "u8_entropy", "--task", "label", "--json"])
    assert rc == 0
    rep = json.loads(capsys.readouterr().out)
    assert rep["variants"][0]["name"] == "u8_entropy" and rep["variants"][0]["ok"]
    assert 0.0 <= rep["best"]["task"]["value"] <= 1.0
