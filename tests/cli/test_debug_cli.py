"""`dsedge debug` (dsedge/debug.py, api.debug) and its HTML report (dsedge/report_html.py).

The model is the precision planner's outlier model (tests/quant/test_precision_plan.py): gemm1's
output y has one channel 400x the others, so whatever quantises y (gemm2 in int8) loses the
answer. Debug must put gemm2 first and say to keep it float, for the reason it has; the report
is rendered by headless Chromium and checked for what the page shows."""
from __future__ import annotations

import json
import shutil
import subprocess
from html.parser import HTMLParser

import numpy as np
import onnx
import pytest
from click.testing import CliRunner
from onnx import TensorProto, helper, numpy_helper
from PIL import Image

from dsedge.api import debug, plan, write_debug_report
from dsedge.cli import main
from dsedge.report_html import render_debug_report
from tests.quant.test_precision_plan import feeds, outlier_model

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("debug")
    onnx.save(outlier_model(), d / "outlier.onnx")
    np.savez(d / "calib.npz", x=np.stack([f["x"] for f in feeds(160, 1)]))
    return d


@pytest.fixture(scope="module")
def result(files):
    # a 3 % budget: gemm1 in int8 changes about 1.3 % of the answers (outlier_model)
    return debug(str(files / "outlier.onnx"), str(files / "calib.npz"), max_drop=0.03, progress=False)


def test_the_bad_layer_comes_first_and_is_kept_float(result):
    top, second = result["layers"]
    assert top["name"] == "gemm2" and top["precision"] == "int8-fout"     # the default int8 plan quantises y
    assert top["fix"] == "keep float"
    assert "channels" in top["why"] and "one scale per tensor" in top["why"]   # the cause, named
    assert top["input"]["tensor"] == "y" and top["input"]["channel_spread"] > 30
    assert top["sensitivity"]["alone_int8_drop"] > 0.3 and top["sensitivity"]["share"] > 0.9
    assert second["name"] == "gemm1" and second["fix"] == "fine as int8"
    assert second["sensitivity"]["share"] < 0.05
    # gemm2's own output is where the error appears; gemm1's int8 output is fine as a tensor
    assert top["sqnr_db"] < 10 and top["loss_db"] > 20 and second["sqnr_db"] > 20
    s = result["sensitivity"]
    assert s["suggested_keep_float"] == ["gemm2"] and s["all_int8_drop"] > 0.3 and s["suggested_drop"] <= 0.03
    assert result["plan"]["source"] == "default int8 rules" and result["plan"]["drop"] == s["all_int8_drop"]


def test_json_shape(result):
    back = json.loads(json.dumps(result))        # plain JSON: no numpy, no inf
    assert set(back) >= {"model", "plan", "calibration", "output_sqnr_db", "sensitivity", "layers", "tried", "arena"}
    assert back["calibration"] == {"feeds": 160, "calibrated_on": 80, "held_back": 80, "compared_on": 8,
                                   "method": "auto"}
    for row in back["layers"]:
        assert {"name", "op", "precision", "range", "sqnr_db", "loss_db", "sensitivity", "fix", "why"} <= set(row)
    assert back["layers"][1]["range"][0] < 0 < back["layers"][1]["range"][1]     # gemm1's int8 range
    tried = back["tried"]
    assert tried[0]["why"] == "all int8" and all({"drop", "weight_elements_float", "macs_float"} <= set(t)
                                                  for t in tried)
    a = back["arena"]
    assert a["arena_bytes"] >= a["lower_bound_bytes"] > 0 and len(a["steps"]) >= 2
    for b in a["buffers"]:
        assert 0 <= b["offset"] and b["offset"] + b["bytes"] <= a["arena_bytes"] and b["first"] <= b["last"]


def test_cli_table_json_fast_and_plan(files, tmp_path):
    run = CliRunner().invoke
    model, calib = str(files / "outlier.onnx"), str(files / "calib.npz")
    r = run(main, ["debug", model, "--calib", calib, "--max-drop", "3%", "--no-progress"])
    assert r.exit_code == 0, r.output
    lines = r.output.splitlines()
    head = next(k for k, x in enumerate(lines) if x.startswith("node "))
    assert lines[head + 2].split()[0] == "gemm2" and "keep float" in lines[head + 2]
    assert "worst: gemm2: keep float" in r.output and "keep float gemm2" in r.output
    r = run(main, ["debug", model, "--calib", calib, "--no-progress", "--json", "--fast"])
    assert r.exit_code == 0, r.output
    d = json.loads(r.stdout)
    assert d["sensitivity"] is None and d["tried"] == [] and d["calibration"]["held_back"] == 0
    assert d["layers"][0]["name"] == "gemm2" and d["layers"][0]["fix"] == "keep float"   # by its own loss
    # a plan: its precision is shown, its recorded sensitivity reused (no plan evaluated again)
    p = plan(model, feeds(160, 1), max_drop=0.03, progress=False)
    (tmp_path / "p.json").write_text(p.to_json())
    r = run(main, ["debug", model, "--calib", calib, "--plan", str(tmp_path / "p.json"), "--no-progress", "--json"])
    assert r.exit_code == 0, r.output
    d = json.loads(r.stdout)
    top = d["layers"][0]
    assert d["plan"]["source"] == "precision plan" and d["plan"]["keep_float"] == ["gemm2"]
    assert top["name"] == "gemm2" and top["precision"] == "fp32" and top["fix"] == "keep float"
    assert d["sensitivity"]["evaluations"] == p.search["evaluations"] and len(d["tried"]) == len(p.tried)
    assert d["output_sqnr_db"]["logits"] > 20                      # the plan fixed it


def conv_model() -> onnx.ModelProto:
    """x[1,1,16,16] -> conv1 (+Relu) -> conv2 -> GlobalAveragePool -> logits[1,10]."""
    rng = np.random.default_rng(0)
    inits = [numpy_helper.from_array(rng.normal(0, 0.3, (8, 1, 3, 3)).astype(np.float32), "w1"),
             numpy_helper.from_array(rng.normal(0, 0.3, (10, 8, 3, 3)).astype(np.float32), "w2")]
    nodes = [helper.make_node("Conv", ["x", "w1"], ["y"], name="conv1", pads=[1, 1, 1, 1]),
             helper.make_node("Relu", ["y"], ["r"], name="relu1"),
             helper.make_node("Conv", ["r", "w2"], ["z"], name="conv2", pads=[1, 1, 1, 1]),
             helper.make_node("GlobalAveragePool", ["z"], ["p"], name="gap"),
             helper.make_node("Flatten", ["p"], ["logits"], name="flat")]
    g = helper.make_graph(nodes, "conv", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 1, 16, 16])],
                          [helper.make_tensor_value_info("logits", TensorProto.FLOAT, [1, 10])], inits)
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])


def test_an_outlier_in_the_calibration_data_gets_a_percentile_range(tmp_path):
    """One pixel of one calibration feed is 2000 (the rest ~N(0, 1)): its min..max range leaves the
    other values no int8 steps, and `auto` keeps min..max, whose histogram MSE the single outlier
    dominates. Debug names the outlier and suggests a percentile range; with it, int8 is fine."""
    onnx.save(conv_model(), tmp_path / "conv.onnx")
    x = np.random.default_rng(1).normal(0, 1, (200, 1, 1, 16, 16)).astype(np.float32)
    x[0, 0, 0, 5, 5] = 2000.0
    np.savez(tmp_path / "calib.npz", x=x)
    r = debug(str(tmp_path / "conv.onnx"), str(tmp_path / "calib.npz"), progress=False, arena=False)
    top = r["layers"][0]
    assert r["sensitivity"]["all_int8_drop"] > 0.5 and top["name"] == "conv1"
    assert top["fix"].startswith("use a percentile/mse range") and "its input 'x'" in top["why"] and "2000" in top["why"]
    r = debug(str(tmp_path / "conv.onnx"), str(tmp_path / "calib.npz"), method="percentile", progress=False,
              arena=False)
    assert r["plan"]["drop"] <= 0.01                                       # the default int8 plan is fine now
    assert {x["name"]: x["fix"] for x in r["layers"]}["conv1"] == "fine as int8"


def test_user_errors_exit_2_without_traceback(files, tmp_path):
    run = CliRunner().invoke
    model, calib = str(files / "outlier.onnx"), str(files / "calib.npz")
    (tmp_path / "bad.json").write_text('{"format": "something else"}')
    np.savez(tmp_path / "wrong.npz", nope=np.zeros((4, 1, 16), np.float32))
    cases = [
        (["debug", str(tmp_path / "missing.onnx"), "--calib", calib], "no such file"),
        (["debug", str(tmp_path / "model.dse"), "--calib", calib], "pass the ONNX model it was made from"),
        (["debug", model, "--calib", str(tmp_path / "missing.npz")], "missing.npz"),
        (["debug", model, "--calib", str(tmp_path / "wrong.npz")], "missing input(s) 'x'"),
        (["debug", model, "--calib", calib, "--plan", str(tmp_path / "bad.json")], "not a dsedge precision plan"),
        (["debug", model, "--calib", calib, "--report", str(tmp_path / "no" / "r.html")], "does not exist"),
        (["debug", model, "--calib", calib, "--report", str(tmp_path / "r.txt")], "*.html"),
        (["debug", model, "--calib", calib, "--max-drop", "150%"], "--max-drop"),
        (["debug", model, "--calib", calib, "--plan", str(tmp_path / "bad.json"), "--max-drop", "2%"],
         "--plan carries its own budget"),
    ]
    for args, text in cases:
        r = run(main, args + ["--no-progress"])
        assert r.exit_code == 2, (args, r.output)
        assert text in r.output and "Traceback" not in r.output, (args, r.output)


def test_report_is_self_contained_and_escaped(result):
    r = json.loads(json.dumps(result))
    r["layers"][0]["name"] = "<script>alert(1)</script>"
    page = render_debug_report(r)
    assert "<script" not in page and "&lt;script&gt;" in page
    low = page.lower()
    assert "src=" not in low and "<link" not in low and "url(" not in low and "@import" not in low
    assert low.count("<svg") == 4           # sensitivity, two curves, arena


class _Dom(HTMLParser):
    """Counts elements by tag and class, and collects the text of the layer table's rows."""

    def __init__(self):
        super().__init__()
        self.count: dict[tuple[str, str], int] = {}
        self.rows: list[list[str]] = []
        self._cell: list[str] | None = None
        self._row = False

    def handle_starttag(self, tag, attrs):
        for c in (dict(attrs).get("class") or "").split() or [""]:
            self.count[tag, c] = self.count.get((tag, c), 0) + 1
        if tag == "tr" and "layer" in (dict(attrs).get("class") or "").split():
            self.rows.append([])
            self._row = True
        elif tag == "td" and self._row:
            self._cell = []

    def handle_endtag(self, tag):
        if tag == "td" and self._cell is not None:
            self.rows[-1].append("".join(self._cell).strip())
            self._cell = None
        elif tag == "tr":
            self._row = False

    def handle_data(self, data):
        if self._cell is not None:
            self._cell.append(data)


def _chromium(*args) -> subprocess.CompletedProcess:
    return subprocess.run([CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
                           "--user-data-dir=" + str(args[0]), *args[1:]], capture_output=True, timeout=120)


def test_report_rendered_by_chromium(result, tmp_path):
    if CHROMIUM is None:
        pytest.skip("chromium is not installed (Debian: apt-get install chromium); .ci/run installs it")
    page = tmp_path / "report.html"
    size = write_debug_report(result, page)
    assert size == page.stat().st_size and size < 100_000
    got = _chromium(tmp_path / "profile", "--dump-dom", page.as_uri())
    assert got.returncode == 0, got.stderr.decode()[-2000:]
    dom = _Dom()
    dom.feed(got.stdout.decode())
    # the table: one row per layer, worst first, with its fix
    assert [row[1] for row in dom.rows] == ["gemm2", "gemm1"]
    assert dom.rows[0][9] == "keep float" and dom.rows[1][9] == "fine as int8"
    # the sensitivity chart: one bar per candidate group
    groups = {tuple(x["sensitivity"]["group"]) for x in result["layers"] if x["sensitivity"]}
    assert dom.count.get(("rect", "bar")) == len(groups) == 2
    # the curves: every plan tried is a point in each, all int8 and the suggestion marked
    assert dom.count.get(("circle", "pt")) == 2 * len(result["tried"])
    assert dom.count.get(("circle", "mark")) >= 4
    # the arena: one rectangle per buffer
    assert dom.count.get(("rect", "buf")) == len(result["arena"]["buffers"]) >= 2
    # and what it draws: the bars' red and the buffers' blue are on the screenshot
    shot = tmp_path / "report.png"
    got = _chromium(tmp_path / "profile", f"--screenshot={shot}", "--window-size=1300,2400", page.as_uri())
    assert got.returncode == 0 and shot.exists(), got.stderr.decode()[-2000:]
    px = np.asarray(Image.open(shot).convert("RGB")).reshape(-1, 3).astype(int)

    def share(rgb):
        return float(np.mean(np.abs(px - np.array(rgb)).sum(axis=1) < 12))
    assert share((0xd9, 0x53, 0x4f)) > 0.001      # the sensitivity bar
    assert share((0x7f, 0xb2, 0xe5)) > 0.0005     # arena buffers
