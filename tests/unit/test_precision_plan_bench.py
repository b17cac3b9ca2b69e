"""benchmarks/precision_plan.py on the zoo's digits (trained, real digits; plans in seconds): a row
with the three artifacts, --keep writes them with the plan and the timing feed, and --retime times
the kept files again (alternating) into the JSON. No timed assertion: only that the numbers exist."""
from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))

pytestmark = pytest.mark.slow   # it plans and quantises digits three times


def test_keep_and_retime(tmp_path):
    import precision_plan as pp
    keep, js = tmp_path / "keep", tmp_path / "pp.json"
    assert pp.main(["--models", "digits", "--json", str(js), "--keep", str(keep)]) == 0
    (row,) = json.loads(js.read_text())
    assert "error" not in row, row
    for k in ("fp32", "int8", "planned"):
        assert row[k]["bytes"] == (keep / "digits" / f"{k}.dse").stat().st_size
        assert 0 <= row[k]["agreement"] <= 1 and row[k]["latency_ms"] > 0
    assert (keep / "digits" / "plan.json").exists() and (keep / "digits" / "feed.npz").exists()
    assert row["planner"]["wall_s"] > 0 and row["planner"]["cpu_s"] > 0 and row["planner"]["peak_rss_mib"] > 0
    assert pp.main(["--models", "digits", "--json", str(js), "--keep", str(keep), "--retime"]) == 0
    (again,) = json.loads(js.read_text())
    assert again["latency_how"].startswith("retimed")
    assert all(again[k]["latency_ms"] > 0 and again[k]["bytes"] == row[k]["bytes"] for k in ("fp32", "int8", "planned"))
    with pytest.raises(SystemExit):
        pp.main(["--models", "digits", "--retime"])   # needs --keep and --json
    # --int4: a row of its own, planned with int4 weights allowed (digits' budget takes them)
    assert pp.main(["--models", "digits", "--json", str(js), "--keep", str(keep), "--int4"]) == 0
    rows = {r["model"]: r for r in json.loads(js.read_text())}
    w4 = rows["digits +int4"]
    assert "error" not in w4 and (keep / "digits +int4" / "planned.dse").exists()
    assert w4["planned"]["bytes"] < rows["digits"]["planned"]["bytes"]   # int4 weights: a smaller file
