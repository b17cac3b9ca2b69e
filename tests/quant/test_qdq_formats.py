"""QDQ files whose integer layers would saturate onnxruntime's u8 x s8 kernels on x86 CPUs
without VNNI (VPMADDUBSW adds two u8*s8 products into a saturating int16): activations near
255 and weights near 127 of one sign, K in the hundreds. The default QDQ format (u8u8) must
give, in onnxruntime, what the integer reference computes, on this CPU and under
`qemu-x86_64 -cpu Haswell` (onnxruntime's AVX2 path whatever the host has). The truth is the
int64 integer reference (dsedge.interp.execute on the quantised graph), never onnxruntime's
integer kernels."""
import os
import shutil
import subprocess
import sys
import textwrap

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

import dsedge
from dsedge.api import save_result
from dsedge.converters.onnx.qdq import DEFAULT_QDQ_FORMAT, QDQ_FORMATS
from dsedge.interp import execute


def _saturating(op: str, seed: int = 0):
    """A weighted layer with large positive weights and K in the hundreds (int8 output, so
    onnxruntime fuses it into an integer kernel), then a small second layer (float output)."""
    rng = np.random.default_rng(seed)
    if op in ("Conv", "ConvTranspose"):
        xs = [1, 64, 6, 6] if op == "Conv" else [1, 64, 4, 4]
        w = rng.uniform(0.5, 1, (8, 64, 3, 3) if op == "Conv" else (64, 8, 3, 3))
        pads = {"pads": [1, 1, 1, 1]} if op == "Conv" else {}
        first = helper.make_node(op, ["x", "w"], ["h"], name="layer", **pads)
        w2 = rng.uniform(-1, 1, (4, 8, 1, 1))
        second = helper.make_node("Conv", ["h", "w2"], ["y"], name="l2")
    else:
        xs = [4, 256]
        w = rng.uniform(0.5, 1, (16, 256) if op == "Gemm" else (256, 16))
        first = helper.make_node(op, ["x", "w"], ["h"], name="layer", **({"transB": 1} if op == "Gemm" else {}))
        w2 = rng.uniform(-1, 1, (16, 4))
        second = helper.make_node("MatMul", ["h", "w2"], ["y"], name="l2")
    g = helper.make_graph([first, second], "m", [helper.make_tensor_value_info("x", TensorProto.FLOAT, xs)],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
                          [numpy_helper.from_array(w.astype(np.float32), "w"),
                           numpy_helper.from_array(w2.astype(np.float32), "w2")])
    feeds = [{"x": rng.uniform(0, 1, xs).astype(np.float32)} for _ in range(8)]
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)]), feeds


def _quantised(tmp_path, op):
    m, feeds = _saturating(op)
    path = tmp_path / f"{op}.onnx"
    onnx.save(m, path)
    r = dsedge.quantize(str(path), feeds, progress=False)
    assert {p.name: p.precision for p in r.plan}["layer"] == "int8"
    return r, feeds


def _assert_matches_reference(got, ref, what):
    got, ref = np.asarray(got, np.float64), np.asarray(ref, np.float64)
    err = float(np.abs(got - ref).max() / np.abs(ref).max())
    assert err < 1e-5, f"{what}: onnxruntime differs from the integer reference by {err:.3g} of the output's range"


@pytest.mark.parametrize("op", ["Conv", "MatMul", "Gemm", "ConvTranspose"])
def test_default_qdq_file_is_exact_in_onnxruntime(tmp_path, op):
    r, feeds = _quantised(tmp_path, op)
    out = tmp_path / "q.onnx"
    save_result(r, out)
    onnx.checker.check_model(onnx.load(out), full_check=True)
    s = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    for f in feeds[:4]:
        _assert_matches_reference(s.run(None, f)[0], execute(r.graph, f)[0], f"{op}, {DEFAULT_QDQ_FORMAT}")


def test_u8u8_weights_dequantise_to_the_same_floats(tmp_path):
    r, _ = _quantised(tmp_path, "Conv")
    w_name = next(n.inputs[1] for n in r.graph.nodes if n.name == "layer")
    wq, p = r.graph.consts[w_name], r.graph.qparams[w_name]
    m = dsedge.converters.onnx.qdq.to_qdq_model(r.graph, fmt="u8u8")
    inits = {t.name: numpy_helper.to_array(t) for t in m.graph.initializer}
    dq = next(n for n in m.graph.node if n.op_type == "DequantizeLinear" and n.input[0].startswith(w_name))
    v, s, z = (inits[i] for i in dq.input)
    assert v.dtype == np.uint8 and z.dtype == np.uint8 and np.all(z == 128)
    shape = [-1 if i == p.axis else 1 for i in range(wq.ndim)]
    np.testing.assert_array_equal((v.astype(np.float32) - z.reshape(shape)) * s.reshape(shape),
                                  wq.astype(np.float32) * p.scale.reshape(shape))


def test_u8s7_weights_cannot_saturate_and_stay_close(tmp_path):
    """7-bit weights (|q| <= 64): 2 * 255 * 64 < 2^15. Another model than the integer reference
    (one bit less), so it is compared by SQNR, against the int64 reference."""
    r, feeds = _quantised(tmp_path, "MatMul")
    out = tmp_path / "q7.onnx"
    save_result(r, out, qdq_format="u8s7")
    m = onnx.load(out)
    inits = {t.name: numpy_helper.to_array(t) for t in m.graph.initializer}
    weights = [inits[n.input[0]] for n in m.graph.node
               if n.op_type == "DequantizeLinear" and inits.get(n.input[0], np.zeros(0)).dtype == np.int8]
    assert weights and all(int(np.abs(w.astype(np.int32)).max()) <= 64 for w in weights)
    s = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    ref = np.concatenate([execute(r.graph, f)[0] for f in feeds]).astype(np.float64)
    got = np.concatenate([s.run(None, f)[0] for f in feeds]).astype(np.float64)
    assert 10 * np.log10(np.sum(ref ** 2) / np.sum((ref - got) ** 2)) > 30


def test_dse_output_refuses_a_qdq_format(tmp_path):
    r, _ = _quantised(tmp_path, "MatMul")
    with pytest.raises(dsedge.errors.DseError, match="qdq-format"):
        save_result(r, tmp_path / "m.dse", qdq_format="u8s8")
    with pytest.raises(dsedge.errors.DseError, match="unknown QDQ format"):
        save_result(r, tmp_path / "m.onnx", qdq_format="u4")


def test_cli_choices_are_the_writers_formats():
    from dsedge.cli import quantize
    opt = next(p for p in quantize.params if p.name == "qdq_format")
    assert list(opt.type.choices) == list(QDQ_FORMATS)


_CHILD = textwrap.dedent("""
    import sys, numpy as np, onnxruntime as ort
    out = {}
    for path, feed in zip(sys.argv[2::2], sys.argv[3::2]):
        f = dict(np.load(feed))
        out[path] = ort.InferenceSession(path, providers=["CPUExecutionProvider"]).run(None, f)[0]
    np.savez(sys.argv[1], *[out[p] for p in sys.argv[2::2]])
""")


@pytest.mark.skipif(shutil.which("qemu-x86_64") is None or os.uname().machine != "x86_64",
                    reason="needs qemu-x86_64 (Debian's qemu-user) on an x86-64 host to emulate a CPU without VNNI")
def test_default_qdq_file_is_exact_on_a_cpu_without_vnni(tmp_path):
    """Under `qemu-x86_64 -cpu Haswell` (AVX2, no VNNI) onnxruntime takes its AVX2 kernels
    whatever the host has. The u8s8 file must saturate there (else this test checks nothing);
    the default file must still give the integer reference's result."""
    runs = []                                   # (path, feed, reference, the default format?)
    for op in ("Conv", "MatMul"):               # QLinearConv and QGemm
        r, feeds = _quantised(tmp_path, op)
        feed = tmp_path / f"{op}.feed.npz"
        np.savez(feed, **feeds[0])
        ref = execute(r.graph, feeds[0])[0]
        for is_default, fmt in ((True, DEFAULT_QDQ_FORMAT), (False, "u8s8")):
            path = tmp_path / f"{op}.{fmt}.{'default' if is_default else 'probe'}.onnx"
            save_result(r, path, qdq_format=fmt)
            runs.append((str(path), str(feed), ref, is_default))
    script, res = tmp_path / "child.py", tmp_path / "out.npz"
    script.write_text(_CHILD)
    args = [str(res)] + [a for p, f, _, _ in runs for a in (p, f)]
    p = subprocess.run(["qemu-x86_64", "-cpu", "Haswell", sys.executable, str(script), *args],
                       capture_output=True, text=True, timeout=600)
    assert p.returncode == 0, p.stderr[-2000:]
    got = np.load(res)
    for k, (path, _, ref, is_default) in enumerate(runs):
        y = got[f"arr_{k}"]
        if not is_default:
            assert np.abs(y - ref).max() > 1e-2 * np.abs(ref).max(), \
                f"{path}: no saturation under qemu's Haswell CPU: the emulation does not reach the AVX2 kernels"
        else:
            _assert_matches_reference(y, ref, f"{path} under qemu-x86_64 -cpu Haswell")
