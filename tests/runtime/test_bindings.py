"""dsedge.Runtime (ctypes over the public C ABI) on hand-built .dse files: results equal numpy
bit for bit (fp32 Add/Relu are exact IEEE operations), the model's description and metadata,
new output arrays, clear errors; `dsedge run`; the digits model against the numpy reference
once the .dse exporter exists; and the CMake embedding example, on the host and for arm64
(zig cc) under qemu-aarch64."""
from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import dsedge
from dsedge.artifact import Artifact, NodeRec, QuantRec, TensorRec, op_id
from dsedge.errors import DseError, ModelError
from dsedge.runtime import _build

ROOT = Path(__file__).resolve().parents[2]
F = "float32"


def add_relu(names=("a", "b", "y"), shape_a=(2, 3), shape_b=(3,), metadata=None) -> Artifact:
    """y = relu(a + b) with b broadcast."""
    ts = (TensorRec.arena(names[0], F, shape_a, 0), TensorRec.arena(names[1], F, shape_b, 1024),
          TensorRec.arena("", F, shape_a, 2048), TensorRec.arena(names[2], F, shape_a, 3072))
    return Artifact(tensors=ts, nodes=(NodeRec(op_id("Add"), (0, 1), (2,), name="add"),
                                       NodeRec(op_id("Relu"), (2,), (3,), name="relu")),
                    inputs=(0, 1), outputs=(3,), arena_size=3136, metadata=metadata or {})


META = {"producer": "dsedge test", "source.character_list": ["a", "b", "ç"], "n": -7, "pi": 3.25, "blob": b"\x00\x01\xff"}


@pytest.fixture(scope="module")
def model_path(tmp_path_factory):
    p = tmp_path_factory.mktemp("bind") / "add_relu.dse"
    add_relu(metadata=META).write(p)
    return p


def feeds(seed=0):
    r = np.random.default_rng(seed)
    return {"a": r.standard_normal((2, 3)).astype(np.float32), "b": r.standard_normal(3).astype(np.float32)}


def test_run_matches_numpy_bit_for_bit(model_path):
    rt = dsedge.Runtime(model_path)
    for seed in range(5):
        f = feeds(seed)
        y = rt.run(f)["y"]
        assert y.dtype == np.float32 and y.shape == (2, 3)
        assert y.tobytes() == np.maximum(f["a"] + f["b"], np.float32(0)).tobytes()


def test_description_and_metadata(model_path):
    rt = dsedge.Runtime(model_path)
    assert [(s.name, s.shape, s.dtype) for s in rt.inputs] == [("a", (2, 3), np.float32), ("b", (3,), np.float32)]
    assert [(s.name, s.shape, s.qparams) for s in rt.outputs] == [("y", (2, 3), None)]
    assert rt.metadata == META
    assert rt.node_count == 2 and rt.arena_size == 3136
    assert dsedge.runtime.version() == "0.1.0"


def test_quantised_io_and_dtypes(tmp_path):
    """Int8 identity (the dtype-generic kernel): qparams reported, bytes passed through."""
    q = QuantRec((0.05,), (-3,))
    ts = (TensorRec.arena("x", "int8", (4, 5), 0, quant=q), TensorRec.arena("y", "int8", (4, 5), 64, quant=q))
    a = Artifact(tensors=ts, nodes=(NodeRec(op_id("Identity"), (0,), (1,)),), inputs=(0,), outputs=(1,), arena_size=128)
    rt = dsedge.Runtime(a.to_bytes())
    assert rt.path is None
    qp = rt.inputs[0].qparams
    assert qp.axis is None and qp.scale == np.float32(0.05) and qp.zero_point == -3
    x = np.arange(-10, 10, dtype=np.int8).reshape(4, 5)
    assert np.array_equal(rt.run({"x": x})["y"], x)


def test_loaded_from_bytes_outlives_the_bytes(model_path):
    data = bytearray(model_path.read_bytes())
    rt = dsedge.Runtime(data)
    data[:] = b"\0" * len(data)      # the runtime keeps its own aligned copy
    del data
    f = feeds(1)
    assert np.array_equal(rt.run(f)["y"], np.maximum(f["a"] + f["b"], 0))


def test_outputs_are_new_arrays_and_inputs_not_copied(model_path):
    rt = dsedge.Runtime(model_path)
    f1, f2 = feeds(1), feeds(2)
    y1 = rt.run(f1)["y"]
    keep = y1.copy()
    y2 = rt.run(f2)["y"]
    assert np.array_equal(y1, keep), "a later run changed an earlier output: it was a view into the arena"
    assert y1.flags.owndata and y2.flags.owndata and y1.flags.writeable
    y1[:] = 5                                        # writing an output does not touch the runtime
    assert np.array_equal(rt.run(f2)["y"], y2)
    a_t = np.ascontiguousarray(f1["a"].T).T          # non-contiguous: accepted, made contiguous
    assert not a_t.flags.c_contiguous
    assert np.array_equal(rt.run({"a": a_t, "b": f1["b"]})["y"], keep)
    assert np.array_equal(rt.run({"a": f1["a"].tolist(), "b": f1["b"].tolist()})["y"], keep)  # lists take the dtype


@pytest.mark.parametrize("bad, match", [
    ({"a": np.zeros((2, 3), np.float32), "c": np.zeros(3, np.float32)}, r"unknown input 'c'.*'a' \(float32\[2, 3\]\)"),
    ({"a": np.zeros((2, 3), np.float32)}, r"input 'b' is missing: expected float32 of shape \[3\]"),
    ({"a": np.zeros((2, 3), np.float64), "b": np.zeros(3, np.float32)}, r"input 'a': expected dtype float32, got float64"),
    ({"a": np.zeros((3, 2), np.float32), "b": np.zeros(3, np.float32)}, r"input 'a': expected shape \[2, 3\], got \[3, 2\]"),
])
def test_clear_errors(model_path, bad, match):
    rt = dsedge.Runtime(model_path)
    with pytest.raises(DseError, match=match):
        rt.run(bad)


def test_load_errors(tmp_path, model_path):
    with pytest.raises(ModelError, match="no such file"):
        dsedge.Runtime(tmp_path / "missing.dse")
    data = bytearray(model_path.read_bytes())
    data[70] ^= 0x40
    with pytest.raises(ModelError, match="checksum"):
        dsedge.Runtime(bytes(data))
    with pytest.raises(ModelError, match="not a .dse"):
        dsedge.Runtime(b"hello world, not a model at all" * 4)
    ts = (TensorRec.arena("x", F, (2,), 0), TensorRec.arena("y", "int8", (2,), 64))
    a = Artifact(tensors=ts, nodes=(NodeRec(op_id("Relu"), (0,), (1,), name="bad_relu"),), inputs=(0,), outputs=(1,), arena_size=128)
    with pytest.raises(ModelError, match="bad_relu"):
        dsedge.Runtime(a.to_bytes())


def test_cli_run(tmp_path, model_path):
    r = np.random.default_rng(3)
    a = r.standard_normal((4, 2, 3)).astype(np.float32)
    b = r.standard_normal((4, 3)).astype(np.float32)
    np.savez(tmp_path / "feed.npz", a=a, b=b)
    cmd = [sys.executable, "-m", "dsedge.cli", "run", str(model_path), "--input", str(tmp_path / "feed.npz"),
           "-o", str(tmp_path / "out.npz"), "--json"]
    p = subprocess.run(cmd, capture_output=True, text=True)
    assert p.returncode == 0, p.stderr
    y = np.load(tmp_path / "out.npz")["y"]
    assert y.shape == (4, 2, 3) and y.tobytes() == np.maximum(a + b[:, None, :], 0).tobytes()
    np.savez(tmp_path / "bad.npz", a=a[0].astype(np.float64), b=b[0])
    p = subprocess.run(cmd[:6] + [str(tmp_path / "bad.npz"), "-o", str(tmp_path / "o2.npz")], capture_output=True, text=True)
    assert p.returncode == 2 and "input 'a': expected dtype float32, got float64" in p.stderr and "Traceback" not in p.stderr


def test_digits_model_bit_exact_with_numpy_reference(tmp_path):
    """The real digits CNN: the C runtime equals the numpy integer reference byte for byte."""
    try:
        from dsedge.export.dse import save_dse
    except ImportError:
        pytest.skip("the .dse exporter (dsedge/export/dse.py) is not in this tree yet")
    import dsedge.zoo
    from dsedge.api import quantize
    from dsedge.interp import run as interp_run
    d = dsedge.zoo.digits_dir()
    calib = dict(np.load(d / "calib.npz"))
    feeds_ = [{k: v[i] for k, v in calib.items()} for i in range(16)]
    res = quantize(d / "model.onnx", feeds_, progress=False)
    save_dse(res, tmp_path / "digits.dse")
    rt = dsedge.Runtime(tmp_path / "digits.dse")
    ev = dict(np.load(d / "eval.npz"))
    name = rt.inputs[0].name
    for i in range(8):
        x = ev[name][i] if name in ev else next(iter(ev.values()))[i]
        got = rt.run({name: x.astype(np.float32)})
        ref = interp_run(res.graph, {name: x.astype(np.float32)})
        for o in rt.outputs:
            assert got[o.name].tobytes() == np.asarray(ref[o.name]).astype(got[o.name].dtype).tobytes(), o.name


# -- the CMake embedding example ------------------------------------------------------------

EMBED = ROOT / "runtimes" / "c" / "examples" / "embed"


def _embed_lines(out: str) -> list[str]:
    return [l for l in out.splitlines() if l.startswith("output ")]


@pytest.mark.skipif(shutil.which("cmake") is None, reason="cmake is not installed")
def test_embed_example_arm64(tmp_path, model_path):
    """The CMake embedding example cross-built for arm64 (CMake toolchain file, zig cc) and run
    under qemu prints the bytes the Python bindings give on this host. (The host CMake build of
    the runtime as a subdirectory is test_loader.py's test_header_compiles_as_cpp_and_cmake_subdirectory:
    building the whole library with CMake twice on the host cost CI a minute or more.)"""
    # the example's test pattern, element i: ((i * 7) % 13 - 6) / 4
    pat = lambda n: ((np.arange(n) * 7 % 13 - 6) / 4).astype(np.float32)
    y = dsedge.Runtime(model_path).run({"a": pat(6).reshape(2, 3), "b": pat(3)})["y"]
    h = 1469598103934665603
    for byte in y.tobytes():
        h = ((h ^ byte) * 1099511628211) % 2**64
    lines = [f"output y float32 [2, 3] bytes=24 fnv1a={h:016x}"]

    try:
        import ziglang  # noqa: F401
    except ImportError:
        pytest.skip("ziglang is not installed: no arm64 cross compiler")
    if shutil.which("qemu-aarch64") is None:
        pytest.skip("qemu-aarch64 is not installed (apt-get install qemu-user)")
    w = tmp_path / "zig"
    w.mkdir()
    # cc: every link names build.mk's DSE_LINK_OPT and DSE_LINK_STRIP, as the bundles' links do, so
    # that zig links the aarch64 libc every other arm64 build of the suite uses: CMake's compiler
    # identification links CMakeCCompilerId.c with no -O (CMAKE_TRY_COMPILE_TARGET_TYPE does not
    # cover it), and that one link made zig build a second, Debug musl libc + compiler_rt + UBSan
    # runtime for aarch64 (most of this test's 174 s in the session-15 CI). Compiles (-c) are
    # passed through unchanged.
    m = _build.manifest()
    link = " ".join([*m.link_opt, *m.link_strip])
    (w / "cc").write_text(f'#!/bin/sh\nfor a in "$@"; do\n  [ "$a" = -c ] && exec "{sys.executable}" -m ziglang '
                          f'cc -target aarch64-linux-musl "$@"\ndone\n'
                          f'exec "{sys.executable}" -m ziglang cc -target aarch64-linux-musl "$@" {link}\n')
    for name in ("ar", "ranlib"):
        (w / name).write_text(f'#!/bin/sh\nexec "{sys.executable}" -m ziglang {name} "$@"\n')
    for name in ("cc", "ar", "ranlib"):
        (w / name).chmod(0o755)
    (w / "toolchain.cmake").write_text(
        f"set(CMAKE_SYSTEM_NAME Linux)\nset(CMAKE_SYSTEM_PROCESSOR aarch64)\nset(CMAKE_C_COMPILER {w / 'cc'})\n"
        f"set(CMAKE_AR {w / 'ar'} CACHE FILEPATH \"\")\nset(CMAKE_RANLIB {w / 'ranlib'} CACHE FILEPATH \"\")\n"
        # CMake's compiler checks compile without linking: a check's link (no -O) would make zig
        # build a Debug libc for the target besides the one every other build shares
        "set(CMAKE_TRY_COMPILE_TARGET_TYPE STATIC_LIBRARY)\n"
        "set(CMAKE_FIND_ROOT_PATH /nonexistent)\nset(CMAKE_FIND_ROOT_PATH_MODE_LIBRARY ONLY)\n"
        "set(CMAKE_FIND_ROOT_PATH_MODE_INCLUDE ONLY)\nset(CMAKE_FIND_ROOT_PATH_MODE_PROGRAM NEVER)\n")
    arm = tmp_path / "arm64"
    r = subprocess.run(["cmake", "-S", str(EMBED), "-B", str(arm), f"-DCMAKE_TOOLCHAIN_FILE={w / 'toolchain.cmake'}",
                        "-DEMBED_STATIC=ON"], capture_output=True, text=True)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    r = subprocess.run(["cmake", "--build", str(arm), "-j2"], capture_output=True, text=True)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    assert b"\x7fELF" == (arm / "embed").read_bytes()[:4] and (arm / "embed").read_bytes()[18] == 183  # EM_AARCH64
    out_arm = subprocess.run(["qemu-aarch64", str(arm / "embed"), str(model_path)], capture_output=True, text=True,
                             check=True).stdout
    assert _embed_lines(out_arm) == lines
