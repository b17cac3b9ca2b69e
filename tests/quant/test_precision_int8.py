"""The int8 search of the precision planner (`plan(...)` without int4, dsedge/quant/precision.py):
its budget must hold on feeds it never saw, also when the held-back feeds happen to hold fewer
near-tied answers than the feeds the model will see (session 16: the default margin model, one
sigma pooled over probability margins, expected 0.05 % of cls's int8 answers to change on new
feeds, 0.60 % of 1,500 did; orient 0.01 % against 0.67 % of 1,200); and "meets" is one test everywhere
(`meets_budget`: 3 changed answers of 300 meet a 1 % budget in the search, the plan, the CLI and
the benchmark's table alike).

The model: x[1,16] -> Gemm -> Relu -> Gemm -> 4 logits -> Softmax, with one hidden channel 40x the
others (and read 40x weaker), so that int8 activations there change about 6 % of the answers,
all of them near-tied ones. The planner's last 300 feeds (held back) are answers far from a tie,
the first 300 (calibration) and the new feeds are ordinary: a held-back count sees no change."""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

import dsedge
from dsedge.api import plan, quantize, save_result
from dsedge.quant.precision import PrecisionPlan, meets_budget

ROOT = Path(__file__).resolve().parents[2]


def _weights():
    rng = np.random.default_rng(0)
    w1 = rng.normal(0, 0.35, (16, 32)).astype(np.float32)
    w1[:, 0] *= 40.0
    w2 = (rng.normal(0, 0.35, (32, 4)) * 3.0).astype(np.float32)
    w2[0, :] /= 40.0
    return w1, w2


def outlier_softmax() -> onnx.ModelProto:
    w1, w2 = _weights()
    inits = [numpy_helper.from_array(w1, "w1"), numpy_helper.from_array(np.zeros(32, np.float32), "b1"),
             numpy_helper.from_array(w2, "w2"), numpy_helper.from_array(np.zeros(4, np.float32), "b2")]
    nodes = [helper.make_node("Gemm", ["x", "w1", "b1"], ["h"], name="gemm1"),
             helper.make_node("Relu", ["h"], ["r"], name="relu"),
             helper.make_node("Gemm", ["r", "w2", "b2"], ["z"], name="gemm2"),
             helper.make_node("Softmax", ["z"], ["y"], name="softmax", axis=-1)]
    g = helper.make_graph(nodes, "outlier_softmax", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 16])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])], inits)
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])


def _feeds(n: int, seed: int) -> list[dict]:
    rng = np.random.default_rng(seed)
    return [{"x": rng.normal(0, 1, (1, 16)).astype(np.float32)} for _ in range(n)]


def planner_feeds(sess) -> list[dict]:
    """300 ordinary feeds, then 300 whose answer is far from a tie (logit margin above 2.5)."""
    w1, w2 = _weights()
    far = []
    for f in _feeds(4000, 5):
        z = np.sort((np.maximum(f["x"].astype(np.float64) @ w1, 0.0) @ w2)[0])
        if z[-1] - z[-2] > 2.5:
            far.append(f)
    return _feeds(300, 1) + far[:300]


def _changed_on_new(path, sess, r) -> float:
    """The share of 2,000 new answers (top-1) of `r`'s .dse in the C runtime that differ from
    onnxruntime's float model."""
    dse = path.with_suffix(".dse")
    save_result(r, dse)
    new = _feeds(2000, 99)
    with dsedge.Runtime(str(dse)) as rt:
        return float(np.mean([np.argmax(rt.run(f)["y"]) != np.argmax(sess.run(None, f)[0]) for f in new]))


def test_int8_plan_meets_the_budget_on_new_feeds(tmp_path):
    """Before session 16 the plan was int8 everywhere: 0 of its 300 held-back answers changed and
    the default margin model (probability margins, one pooled sigma) bounded the change at 0.6 %,
    while 5.9 % of 2,000 new answers changed. The strict model (margins as logit differences, the
    calibration feeds' margins too) expects about 2 %, and the plan the search then takes is
    confirmed on the calibration feeds as well."""
    path = tmp_path / "m.onnx"
    onnx.save(outlier_softmax(), path)
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    fs = planner_feeds(sess)
    assert _changed_on_new(path, sess, quantize(str(path), fs[:300], progress=False)) > 0.03   # int8: the premise
    p = plan(str(path), fs, max_drop=0.01, progress=False)
    assert p.meets and p.holdout == 300 and p.keep_float
    assert p.search["margin_model"] == "strict" and p.search["confirmed_on"] == "calibration feeds"
    first = p.tried[0]
    assert first["why"] == "all int8" and first["changed"] == 0.0 and first["expected_upper"] > 0.01
    assert _changed_on_new(path, sess, quantize(str(path), fs, plan=p, progress=False)) <= 0.01
    # the lockfile reproduces the same bytes
    lock = tmp_path / "plan.json"
    lock.write_text(p.to_json())
    a, b = tmp_path / "a.dse", tmp_path / "b.dse"
    save_result(quantize(str(path), fs, plan=str(lock), progress=False), a)
    save_result(quantize(str(path), fs, plan=p, progress=False), b)
    assert a.read_bytes() == b.read_bytes()


def changes_three_of_300(outputs, feed_list):
    """A user metric: 1.0 for the float model's own answers, else 297/300 (3 changed of 300)."""
    w1, w2 = _weights()
    same = all(np.allclose(o["y"][0, :2], _softmax(np.maximum(f["x"].astype(np.float64) @ w1, 0.0) @ w2)[0, :2],
                           atol=1e-6) for o, f in zip(outputs, feed_list))
    return 1.0 if same else 297 / 300


def _softmax(z):
    e = np.exp(z - z.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


def test_three_of_300_meets_a_one_percent_budget_everywhere(tmp_path):
    """1 - 297/300 is 0.010000000000000009 in floating point: the search used to take it as a
    miss (and kept nodes float to fix it) while PrecisionPlan.meets and the benchmark's table took
    it as a meet. Now one test, `meets_budget`, everywhere."""
    drop = 1 - 297 / 300
    # the search: int8 everywhere scores exactly 1 % below the float model, which meets 1 %
    path = tmp_path / "m.onnx"
    onnx.save(outlier_softmax(), path)
    p = plan(str(path), _feeds(600, 3), max_drop=0.01, progress=False,
             metric="tests.quant.test_precision_int8:changes_three_of_300")
    assert p.tried[0]["why"] == "all int8" and p.tried[0]["drop"] == pytest.approx(drop)
    assert p.keep_float == [] and p.meets and p.drop == pytest.approx(drop)
    assert drop > 0.01 and meets_budget(drop, 0.01) and not meets_budget(1 - 296 / 300, 0.01)
    assert meets_budget(0.0, 0.0) and not meets_budget(1 / 300, 0.0)
    assert PrecisionPlan([], drop, 0.01, "size", {}, 300, 300).meets
    assert not PrecisionPlan([], 1 - 296 / 300, 0.01, "size", {}, 300, 300).meets
    # the benchmark's table says "meets" for 3 of 300 changed on its scoring feeds too
    sys.path.insert(0, str(ROOT / "benchmarks"))
    import precision_plan as bench
    row = {"model": "m", "calib": 600, "eval": 300, "budget": "1%", "metric": "default",
           "planner": {"kept_float": 0, "evaluations": 1, "wall_s": 1.0, "peak_rss_mib": 1},
           **{k: {"agreement": 297 / 300, "bytes": 1000, "latency_ms": 1.0} for k in ("fp32", "int8", "planned")}}
    md = bench.to_markdown([row], "cmd")
    assert "| meets; int8 meets;" in md and "misses" not in md


def test_kept_answers_count_as_the_outputs():
    """The confirmation on the calibration feeds keeps the float model's answers (top-1 indices,
    decisions at 0.5) instead of its outputs: the same agreement, for outputs of any rank."""
    from dsedge.quant.precision import Metric, _Answers
    rng = np.random.default_rng(0)
    ref = [{"p": rng.random((2, 4, 50)).astype(np.float32), "t": rng.random((3,)).astype(np.float32)} for _ in range(30)]
    got = [{"p": r["p"] + rng.normal(0, 0.05, r["p"].shape).astype(np.float32),
            "t": r["t"] + rng.normal(0, 0.2, 3).astype(np.float32)} for r in ref]
    m = Metric({"p": "top1", "t": "threshold"})
    kept = [{o: _Answers(m.kinds[o], r[o]) for o in r} for r in ref]
    q = m.quality(ref, got)
    assert 0.3 < q < 0.99 and m.quality(kept, got) == q
    assert m.quality(kept, ref) == 1.0
    assert kept[0]["p"].value.nbytes < ref[0]["p"].nbytes / 20
