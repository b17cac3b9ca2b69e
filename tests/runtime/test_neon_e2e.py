"""A whole quantised model on the arm64 int8 kernels: MobileNetV2 (models/archs.py, small input
and width) quantised and exported by dsedge (group-1 Conv and Gemm weights in the N8K4 layouts,
with the scratch plan), run under qemu-aarch64 with `-cpu max` (sdot) and `-cpu cortex-a53`
(baseline NEON): the output bytes equal the portable kernels' (DSE_LOAD_REF_KERNELS) on the same
file, and the kernels that ran are the optimised ones. The same network with its weights
unpacked (layout 0, no scratch: an artifact from before the layouts) gives those bytes too,
through REF.
"""
from __future__ import annotations

import collections
import subprocess

import numpy as np
import pytest

from dsedge.artifact import CONST, Artifact, TensorRec, read
from tests.runtime.test_kernels_neon import QEMU64, build_runner

pytestmark = pytest.mark.skipif(QEMU64 is None, reason="qemu-aarch64 not installed (apt-get install qemu-user)")


def unpack_artifact(art: Artifact) -> Artifact:
    """The artifact with every packed weight back in layout 0 and no scratch."""
    ts = list(art.tensors)
    for i, t in enumerate(ts):
        if t.layout in (1, 2):
            R = t.shape[1] if t.layout == 2 else t.shape[0]
            K = int(np.prod(t.shape)) // R
            Rp, Kp = -(-R // 8) * 8, -(-K // 4) * 4
            W = np.frombuffer(t.data, np.int8).reshape(Rp // 8, Kp // 4, 8, 4).transpose(0, 2, 1, 3).reshape(Rp, Kp)
            W = W[:R, :K]
            logical = W.T if t.layout == 2 else W.reshape(t.shape)
            ts[i] = TensorRec(t.name, "int8", t.shape, CONST, 0, np.ascontiguousarray(logical).tobytes(), 0, t.quant)
    end = max((t.offset + t.nbytes for t in ts if t.storage != CONST), default=0)
    return Artifact(tuple(ts), art.nodes, art.inputs, art.outputs, -(-end // 64) * 64, metadata=art.metadata)


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
    assert sum(t.layout in (1, 2) for t in art.tensors) >= 20 and art.scratch_size > 0
    (tmp_path / "u.dse").write_bytes(unpack_artifact(art).to_bytes())
    (tmp_path / "x.bin").write_bytes(feeds[0]["input"].tobytes())
    exe = build_runner(tmp_path, "aarch64")
    outs, ran = {}, {}
    for label, args, model in (("ref", ["-cpu", "max", str(exe), "-ref"], "m.dse"),
                               ("dot", ["-cpu", "max", str(exe)], "m.dse"),
                               ("neon", ["-cpu", "cortex-a53", str(exe)], "m.dse"),
                               ("unpacked", ["-cpu", "max", str(exe)], "u.dse")):
        out = tmp_path / f"{label}.out"
        r = subprocess.run([QEMU64, *args], input=f"{tmp_path / model} {out} {tmp_path / 'x.bin'}\n",
                           capture_output=True, text=True, timeout=300)
        assert r.returncode == 0, r.stderr
        outs[label], ran[label] = out.read_bytes(), collections.Counter(r.stdout.split()[:-1])
    assert outs["unpacked"] == outs["ref"]
    assert outs["dot"] == outs["ref"] and outs["neon"] == outs["ref"]
    assert ran["dot"]["dse_i8_conv__neon_dotprod"] == ran["neon"]["dse_i8_conv__neon"] >= 15
    assert ran["dot"]["dse_i8_dwconv__neon"] == ran["neon"]["dse_i8_dwconv__neon"] >= 10
    assert ran["dot"]["dse_i8_gemm__neon_dotprod"] == ran["neon"]["dse_i8_gemm__neon"] == 1
    assert not any(k.startswith("dse_i8_conv__ref") or k.startswith("dse_i8_gemm__ref") for k in ran["dot"])
    assert ran["unpacked"]["dse_i8_conv__ref"] >= 15 and ran["unpacked"]["dse_i8_dwconv__neon"] >= 10
