"""`dsedge plan` plans the graph the .dse is built from: an integer input that an If reads and every
calibration feed holds constant (silero VAD's sample rate) is pinned, as `dsedge quantize -o *.dse`
pins it, so the plan covers the nodes of the branch taken instead of one opaque If. Before, the plan
held the If alone (nothing to decide) and `quantize --plan ... -o *.dse` then quantised the folded
branch with no budget check; the precision benchmark's silero row (int8 = fp32, 1.24 MB) came from
the same gap (now 0.73 MB)."""
import json

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from dsedge.api import inspect_dse

from .test_quantize_cli import dsedge as cli


def _model(path):
    rng = np.random.default_rng(0)

    def branch(name, w):
        init = numpy_helper.from_array(w.astype(np.float32), f"{name}_w")
        return helper.make_graph([helper.make_node("MatMul", ["x", f"{name}_w"], [f"{name}_y"]),
                                  helper.make_node("Relu", [f"{name}_y"], [f"{name}_out"])],
                                 name, [], [helper.make_tensor_value_info(f"{name}_out", TensorProto.FLOAT, [1, 32])],
                                 initializer=[init])
    one = numpy_helper.from_array(np.array(1, np.int64), "one")
    g = helper.make_graph(
        [helper.make_node("Equal", ["mode", "one"], ["c"]),
         helper.make_node("If", ["c"], ["h"], then_branch=branch("a", rng.standard_normal((64, 32))),
                          else_branch=branch("b", rng.standard_normal((64, 32)))),
         helper.make_node("MatMul", ["h", "w_out"], ["y"])],
        "if_model", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 64]),
                     helper.make_tensor_value_info("mode", TensorProto.INT64, [])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 10])],
        initializer=[one, numpy_helper.from_array(rng.standard_normal((32, 10)).astype(np.float32), "w_out")])
    onnx.save(helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)]), path)


def test_plan_pins_a_constant_input_read_by_if_and_quantize_follows_it(tmp_path):
    _model(tmp_path / "m.onnx")
    rng = np.random.default_rng(1)
    np.savez(tmp_path / "calib.npz", x=rng.standard_normal((40, 1, 64)).astype(np.float32),
             mode=np.ones(40, np.int64))
    r = cli("plan", tmp_path / "m.onnx", "--calib", tmp_path / "calib.npz", "--max-drop", "5%",
            "-o", tmp_path / "plan.json", "--no-progress")
    assert r.returncode == 0, r.stderr
    plan = json.loads((tmp_path / "plan.json").read_text())
    ops = sorted(n["op"] for n in plan["nodes"])
    assert "If" not in ops and ops.count("MatMul") == 2, ops      # the then-branch's MatMul and the last one
    assert all(n["precision"].startswith("int8") for n in plan["nodes"] if n["op"] == "MatMul"), plan["nodes"]
    r = cli("quantize", tmp_path / "m.onnx", "--calib", tmp_path / "calib.npz", "--plan", tmp_path / "plan.json",
            "-o", tmp_path / "m.dse", "--no-progress")
    assert r.returncode == 0, r.stderr
    info = inspect_dse(tmp_path / "m.dse")
    assert info["guards"] == ["mode"]
    # the branch's MatMul runs in int8 (the last one, int8 with a float output, is listed by that output)
    assert info["nodes_by_op_dtype"].get("MatMul:int8") == 1, info["nodes_by_op_dtype"]
