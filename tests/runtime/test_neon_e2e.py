"""A whole quantised model on the arm64 int8 kernels: MobileNetV2 (models/archs.py, small input
and width) quantised by dsedge, its group-1 Conv and its Gemm weights repacked into the N8K4
layouts with the exporter's scratch plan (here, until the exporter writes the layouts itself),
run under qemu-aarch64 with `-cpu max` (sdot) and `-cpu cortex-a53` (baseline NEON): the output
bytes equal the portable kernels' on the unpacked file (DSE_LOAD_REF_KERNELS), and the kernels
that ran are the optimised ones.
"""
from __future__ import annotations

import collections
import subprocess

import numpy as np
import pytest

from dsedge.artifact import CONST, Artifact, TensorRec, op_id, read
from tests.runtime.test_kernels_neon import QEMU64, build_runner, pack_n8k4, packed_plan

pytestmark = pytest.mark.skipif(QEMU64 is None, reason="qemu-aarch64 not installed (apt-get install qemu-user)")


def pack_artifact(art: Artifact) -> tuple[Artifact, int]:
    """The artifact with the int8 weights of its group-1 Conv, Gemm and MatMul nodes in layouts
    1/2 and a scratch region (at the arena's end) of the largest plan; and how many were packed."""
    conv, gemm, matmul = op_id("Conv", ""), op_id("Gemm", ""), op_id("MatMul", "")
    ts, plans, packed = list(art.tensors), [art.scratch_size], 0
    for node in art.nodes:
        if node.op not in (conv, gemm, matmul) or len(node.inputs) < 3:
            continue
        x, w, y = ts[node.inputs[0]], ts[node.inputs[1]], ts[node.outputs[0]]
        if w.dtype != "int8" or w.storage != CONST or x.dtype != "int8" or len(w.shape) < 2:
            continue
        W, a = np.frombuffer(w.data, np.int8).reshape(w.shape), dict(node.attrs)
        if node.op == conv:
            if int(a.get("group", 1)) != 1:
                continue
            layout, Wm, P = 1, W.reshape(W.shape[0], -1), int(np.prod(y.shape[2:]))
        elif node.op == gemm:
            layout, Wm = (1, W) if int(a.get("transB", 0)) else (2, W.T)
            P = x.shape[0]
        else:
            if len(w.shape) != 2:
                continue
            layout, Wm, P = 2, W.T, int(np.prod(x.shape[:-1]))
        ts[node.inputs[1]] = TensorRec(w.name, "int8", w.shape, CONST, 0, pack_n8k4(np.ascontiguousarray(Wm)), layout,
                                       w.quant)
        plans.append(packed_plan(Wm.shape[1], P))
        packed += 1
    off, size = -(-art.arena_size // 64) * 64, max(plans)
    return Artifact(tuple(ts), art.nodes, art.inputs, art.outputs, off + size, scratch_offset=off, scratch_size=size,
                    metadata=art.metadata), packed


def test_mobilenet_v2_arm64_kernels(tmp_path):
    onnx = pytest.importorskip("onnx")
    pytest.importorskip("onnxruntime")
    import dsedge
    from models import archs
    m = archs.mobilenet_v2(num_classes=10, input_size=48, width=0.35)
    onnx.save(m, tmp_path / "m.onnx")
    feeds = [{"input": np.random.default_rng(i).standard_normal((1, 3, 48, 48)).astype(np.float32)} for i in range(3)]
    dsedge.quantize(str(tmp_path / "m.onnx"), feeds, progress=False).save(str(tmp_path / "m.dse"))
    art = read(str(tmp_path / "m.dse"))
    packed, n = pack_artifact(art)
    assert n >= 20
    (tmp_path / "p.dse").write_bytes(packed.to_bytes())
    (tmp_path / "x.bin").write_bytes(feeds[0]["input"].tobytes())
    exe = build_runner(tmp_path, "aarch64")
    outs, ran = {}, {}
    for label, args, model in (("ref", ["-cpu", "max", str(exe), "-ref"], "m.dse"),
                               ("dot", ["-cpu", "max", str(exe)], "p.dse"),
                               ("neon", ["-cpu", "cortex-a53", str(exe)], "p.dse")):
        out = tmp_path / f"{label}.out"
        r = subprocess.run([QEMU64, *args], input=f"{tmp_path / model} {out} {tmp_path / 'x.bin'}\n",
                           capture_output=True, text=True, timeout=300)
        assert r.returncode == 0, r.stderr
        outs[label], ran[label] = out.read_bytes(), collections.Counter(r.stdout.split()[:-1])
    assert outs["dot"] == outs["ref"] and outs["neon"] == outs["ref"]
    assert ran["dot"]["dse_i8_conv__neon_dotprod"] == ran["neon"]["dse_i8_conv__neon"] >= 15
    assert ran["dot"]["dse_i8_dwconv__neon"] == ran["neon"]["dse_i8_dwconv__neon"] >= 10
    assert ran["dot"]["dse_i8_gemm__neon_dotprod"] == ran["neon"]["dse_i8_gemm__neon"] == 1
    assert not any(k.startswith("dse_i8_conv__ref") or k.startswith("dse_i8_gemm__ref") for k in ran["dot"])
