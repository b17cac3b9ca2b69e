"""The exporter writes a float SiLU whose only reader is a per-tensor int8 QuantizeLinear as one
`dsedge.ActFnQuantize` node (export/dse.py `_fuse_act_fn_quantize`, op 1002): in the default int8
plan of Conv -> SiLU -> Conv the SiLUs stay float after an int8 Conv's float output, and
Sigmoid + Mul + QuantizeLinear become one node. The fused artifact gives the unfused one's bytes in
the C runtime (default kernels and REF, 1 and 2 threads; inputs with NaN, infinities and saturating
values) and in the numpy interpreter (load_dse_graph), stays within one int8 step of onnxruntime's
float model where it agrees with the unfused file, and a SiLU whose sigmoid has another reader is
not fused. (Kernel-level bytes on every ISA: tests/runtime/test_act_fn_quantize.py.)"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import dsedge
from dsedge.export import dse as dse_mod
from dsedge.export import export, load_dse_graph
from dsedge.interp import execute

from .test_fuse_act_fn import _feeds, _graph, _ops


def _pair(monkeypatch, r, tmp_path):
    ex = export(r)
    ex.artifact.write(tmp_path / "fused.dse")
    with monkeypatch.context() as m:
        m.setattr(dse_mod, "_fuse_act_fn_quantize", lambda g: None)
        exu = export(r)
    exu.artifact.write(tmp_path / "unfused.dse")
    return ex, exu


def _hard_feed():
    feed = _feeds(1, 11)[0]
    feed["x"].reshape(-1)[7] = np.nan
    feed["x"].reshape(-1)[200:206] = [np.inf, -np.inf, 60.0, -60.0, 1e4, -1e4]
    return feed


def test_int8_silu_quantize_is_one_node_same_bytes(tmp_path, monkeypatch):
    r = dsedge.quantize(_graph(act="SiLU"), _feeds(), precision="int8", progress=False)
    ex, exu = _pair(monkeypatch, r, tmp_path)
    ops = _ops(ex.artifact)
    assert ops.count(("ActFnQuantize", 2)) == 2, ops
    assert not {"Sigmoid", "Mul", "Elementwise"} & {o for o, _ in ops}, ops
    opsu = [o for o, _ in _ops(exu.artifact)]
    assert opsu.count("Sigmoid") == 2 and opsu.count("Mul") == 2 and "ActFnQuantize" not in opsu
    assert ex.artifact.arena_size <= exu.artifact.arena_size
    for feed in (_feeds(1, 12)[0], _hard_feed()):
        for kernels in ("auto", "ref"):
            for threads in (1, 2):
                y = dsedge.Runtime(str(tmp_path / "fused.dse"), threads=threads, kernels=kernels).run(feed)
                yu = dsedge.Runtime(str(tmp_path / "unfused.dse"), threads=threads, kernels=kernels).run(feed)
                assert [v.tobytes() for v in y.values()] == [v.tobytes() for v in yu.values()], (kernels, threads)
    # the numpy interpreter on each artifact: the fused node gives the separate nodes' values
    back, back_u = load_dse_graph(ex.artifact), load_dse_graph(exu.artifact)
    assert sum(1 for n in back.nodes if n.op == "ActFnQuantize") == 2
    f = _feeds(1, 13)[0]
    yb = execute(back, {back.inputs[0]: f["x"]})[0]
    assert yb.tobytes() == execute(back_u, {back_u.inputs[0]: f["x"]})[0].tobytes()
    # the C runtime and numpy (their sigmoids differ in the last bits): the same int8 grid, nearly
    # everywhere the same values
    yc = next(iter(dsedge.Runtime(str(tmp_path / "fused.dse")).run(f).values()))
    assert np.allclose(yc, yb, rtol=0, atol=0.05 * float(np.abs(yb).max()))


def test_silu_whose_sigmoid_has_another_reader_is_not_fused(tmp_path, monkeypatch):
    r = dsedge.quantize(_graph(act="SiLU", sigmoid_reader=True), _feeds(), precision="int8", progress=False)
    ex, exu = _pair(monkeypatch, r, tmp_path)
    ops = [o for o, _ in _ops(ex.artifact)]
    assert ops.count("ActFnQuantize") <= 1 and "Sigmoid" in ops, ops   # hs1's sigmoid is read by conv4
    feed = _hard_feed()
    y = dsedge.Runtime(str(tmp_path / "fused.dse")).run(feed)
    yu = dsedge.Runtime(str(tmp_path / "unfused.dse")).run(feed)
    assert [v.tobytes() for v in y.values()] == [v.tobytes() for v in yu.values()]


def _whole_model(tmp_path, monkeypatch, model, feeds):
    from dsedge.converters.onnx.reader import load_onnx
    r = dsedge.quantize(load_onnx(model.SerializeToString() if hasattr(model, "SerializeToString") else model),
                        feeds[:-1], precision="int8", progress=False)
    ex, exu = _pair(monkeypatch, r, tmp_path)
    n = sum(1 for o, _ in _ops(ex.artifact) if o == "ActFnQuantize")
    for kernels in ("auto", "ref"):
        for threads in ((1, 2, 3) if kernels == "auto" else (1, 2)):
            y = dsedge.Runtime(str(tmp_path / "fused.dse"), threads=threads, kernels=kernels).run(feeds[-1])
            yu = dsedge.Runtime(str(tmp_path / "unfused.dse"), threads=threads, kernels=kernels).run(feeds[-1])
            assert [v.tobytes() for v in y.values()] == [v.tobytes() for v in yu.values()], (kernels, threads)
    return n


@pytest.mark.slow
def test_yolo_detector_int8_fused_same_bytes(tmp_path, monkeypatch):
    """The zoo's yolo_detector (SiLU after every Conv) at 96x96: its default int8 plan's SiLUs before an
    int8 Conv become ActFnQuantize nodes, with the unfused file's output bytes."""
    import dsedge.zoo as zoo
    m = zoo.build("yolo_detector", input_size=96, num_classes=3)
    arrs = zoo.random_feeds(m, n=9, seed=0)
    feeds = [{k: v[i] for k, v in arrs.items()} for i in range(9)]   # (n, 1, 3, 96, 96)
    assert _whole_model(tmp_path, monkeypatch, m, feeds) >= 10


@pytest.mark.slow
def test_nudenet_int8_fused_same_bytes(tmp_path, monkeypatch):
    """nudenet's YOLOv8n detector (when the package is installed: benchmarks/unseen_models.py)."""
    import importlib.util
    spec = importlib.util.find_spec("nudenet")
    path = Path(list(spec.submodule_search_locations)[0]) / "320n.onnx" if spec else None
    if path is None or not path.is_file():
        pytest.skip("nudenet not installed (pip install --no-deps nudenet==3.4.2)")
    import onnx
    rng = np.random.default_rng(0)
    feeds = [{"images": rng.random((1, 3, 320, 320), np.float32)} for _ in range(5)]
    assert _whole_model(tmp_path, monkeypatch, onnx.load(str(path)), feeds) >= 10
