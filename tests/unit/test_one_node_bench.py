"""benchmarks/one_node.py: a one-node model timed in the C runtime (each library in its own process)
and in onnxruntime. No timed assertion: that every round prints the kernel that ran and positive times."""
from __future__ import annotations

import re
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))


def test_one_node_runs_and_names_the_kernel(capsys):
    import one_node
    assert one_node.main(["MaxPool", "1,2,9,9", "--attrs", '{"kernel_shape": [3, 3], "strides": [2, 2]}',
                          "--rounds", "1", "--repeat", "3"]) == 0
    out = capsys.readouterr().out
    m = re.search(r"round 0 new: ([0-9.]+) ms \(median ([0-9.]+)\) (dse_f32_maxpool__\w+)", out)
    assert m and float(m.group(1)) > 0, out
    assert re.search(r"round 0 onnxruntime: [0-9.]+ ms", out), out
