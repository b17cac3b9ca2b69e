"""`dsedge export --target` and the `dsedge-run` tool.

Host: the bundle's static dsedge-run reads .npy v1/v2/v3 (0-d too) in every supported dtype,
writes outputs under names used as relative paths (refusing absolute and '..'), reports
latency and peak RSS, refuses mismatched inputs; the bundle's python/ bindings load lib/.
Cross: dsedge installed with `pip install .` into a venv outside the checkout exports the
digits model (ONNX + --calib, quantised on the way) for arm64 and armv7; the bundles'
dsedge-run under qemu gives the same output bytes as the host bindings."""
from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import dsedge
from dsedge.artifact import Artifact, NodeRec, TensorRec, op_id

ROOT = Path(__file__).resolve().parents[2]
F = "float32"
HAVE_CC = bool(os.environ.get("CC") or shutil.which("cc") or shutil.which("gcc") or shutil.which("clang"))
pytestmark = pytest.mark.skipif(not HAVE_CC, reason="no C compiler")


def add_relu(out_name="y") -> Artifact:
    ts = (TensorRec.arena("a", F, (2, 3), 0), TensorRec.arena("b", F, (), 64), TensorRec.arena("", F, (2, 3), 128),
          TensorRec.arena(out_name, F, (2, 3), 192))
    return Artifact(tensors=ts, nodes=(NodeRec(op_id("Add"), (0, 1), (2,)), NodeRec(op_id("Relu"), (2,), (3,))),
                    inputs=(0, 1), outputs=(3,), arena_size=256, metadata={"producer": "test"})


def identity(dtype: str, shape) -> Artifact:
    ts = (TensorRec.arena("x", dtype, shape, 0), TensorRec.arena("out/deep/x_copy", dtype, shape, 64))
    return Artifact(tensors=ts, nodes=(NodeRec(op_id("Identity"), (0,), (1,)),), inputs=(0,), outputs=(1,), arena_size=128)


@pytest.fixture(scope="module")
def host_bundle(tmp_path_factory):
    from dsedge.api import export_bundle
    d = tmp_path_factory.mktemp("bundle")
    add_relu().write(d / "m.dse")
    m = export_bundle(d / "m.dse", d / "host", target="host")
    assert m["sizes"]["bin/dsedge-run"] > 0
    return d / "host"


def tool(bundle, *args, qemu=None):
    cmd = ([qemu] if qemu else []) + [str(bundle / "bin" / "dsedge-run"), *map(str, args)]
    return subprocess.run(cmd, capture_output=True, text=True)


def save_npy(path, arr, version):
    with open(path, "wb") as f:
        np.lib.format.write_array(f, np.asarray(arr), version=version)


def test_bundle_layout_and_python(host_bundle):
    for p in ("model.dse", "include/dsedge.h", "include/dsedge_ops.h", "lib/libdsedge.a", "lib/libdsedge.so",
              "bin/dsedge-run", "python/dsedge_runtime/__init__.py", "README.md", "manifest.json"):
        assert (host_bundle / p).is_file(), p
    code = ("import dsedge_runtime as d, numpy as np; rt = d.Runtime('model.dse');"
            "print(d.library_path()); print(rt.run({'a': np.ones((2, 3), np.float32), 'b': np.float32(-0.25)})['y'].sum())")
    r = subprocess.run([sys.executable, "-c", code], cwd=host_bundle, capture_output=True, text=True,
                       env={**os.environ, "PYTHONPATH": str(host_bundle / "python")})
    assert r.returncode == 0, r.stderr
    lib, total = r.stdout.split()
    assert Path(lib).resolve() == (host_bundle / "lib" / "libdsedge.so").resolve() and float(total) == 4.5


def test_archive_defines_only_the_api(host_bundle):
    """The bundle's library is built with internal functions static (runtimes/c/README.md,
    "Bundle build"): libdsedge.a defines no global symbol but the public API (dsedge.h) and the
    functions its two units share, and keeps no local function symbols (ld -r -x)."""
    nm = shutil.which("nm") or shutil.which("llvm-nm")
    if nm is None:
        pytest.skip("no nm")
    r = subprocess.run([nm, str(host_bundle / "lib" / "libdsedge.a")], capture_output=True, text=True, check=True)
    syms = [ln.split() for ln in r.stdout.splitlines() if len(ln.split()) == 3]
    api = set(re.findall(r"\b(dse_\w+)\(", (ROOT / "runtimes" / "c" / "include" / "dsedge.h").read_text()))
    shared = set(re.findall(r"^DSE_SHARED (?:\w+ )+\**(\w+)\(", "".join(
        h.read_text() for h in sorted((ROOT / "runtimes" / "c" / "src").glob("*.h"))), re.M))
    # the optimised variants of this architecture: their run (and own check) functions cross
    # from the hot unit to the kernel table (DSE_SHARED from the kernel list, src/internal.h)
    from dsedge.export.bundle import host_target
    from dsedge.runtime import kernel_list
    ks = kernel_list.kernels()
    ref_checks = {k.check for k in ks if k.isa == "REF"}
    shared |= {f for k in ks if k.isa != "REF" and k.arch == host_target()
               for f in (k.run, k.check) if f not in ref_checks}
    defined = {name for _, kind, name in syms if kind in "TDRB"}
    assert shared and defined - api == shared, (defined - api - shared, shared - defined)
    assert not [name for _, kind, name in syms if kind == "t"]


@pytest.mark.parametrize("version", [(1, 0), (2, 0), (3, 0)])
def test_tool_runs_and_matches_bindings(host_bundle, tmp_path, version):
    r = np.random.default_rng(version[0])
    a, b = r.standard_normal((2, 3)).astype(np.float32), np.float32(0.125)
    save_npy(tmp_path / "a.npy", a, version)
    save_npy(tmp_path / "b.npy", np.array(b), version)          # a 0-d array
    p = tool(host_bundle, host_bundle / "model.dse", "--input", f"a={tmp_path / 'a.npy'}", "--input",
             f"b={tmp_path / 'b.npy'}", "--output-dir", tmp_path / "out")
    assert p.returncode == 0, p.stderr
    y = np.load(tmp_path / "out" / "y.npy")
    ref = dsedge.Runtime(host_bundle / "model.dse").run({"a": a, "b": np.array(b)})["y"]
    assert y.dtype == np.float32 and y.tobytes() == ref.tobytes() == np.maximum(a + b, 0).tobytes()


@pytest.mark.parametrize("dtype", ["float32", "float16", "int64", "int32", "int8", "uint8", "bool"])
@pytest.mark.parametrize("shape", [(2, 3), ()], ids=["2x3", "0d"])
def test_tool_dtypes_and_nested_output_names(host_bundle, tmp_path, dtype, shape):
    identity(dtype, shape).write(tmp_path / "id.dse")
    x = (np.random.default_rng(0).standard_normal(shape) * 50).astype(dtype)
    np.save(tmp_path / "x.npy", x)
    p = tool(host_bundle, tmp_path / "id.dse", "--input", tmp_path / "x.npy", "--output-dir", tmp_path / "o")
    assert p.returncode == 0, p.stderr
    y = np.load(tmp_path / "o" / "out" / "deep" / "x_copy.npy")
    assert y.dtype == x.dtype and y.shape == shape and y.tobytes() == x.tobytes()


@pytest.mark.parametrize("name", ["../escape", "/tmp/abs", "a/../../b", "a//b"])
def test_tool_refuses_unsafe_output_names(host_bundle, tmp_path, name):
    add_relu(out_name=name).write(tmp_path / "m.dse")
    np.save(tmp_path / "a.npy", np.zeros((2, 3), np.float32))
    np.save(tmp_path / "b.npy", np.float32(1))
    p = tool(host_bundle, tmp_path / "m.dse", "--input", f"a={tmp_path / 'a.npy'}", "--input", f"b={tmp_path / 'b.npy'}",
             "--output-dir", tmp_path / "o")
    assert p.returncode != 0 and "refused" in p.stderr
    assert not list(tmp_path.rglob("*escape*")) and not Path("/tmp/abs.npy").exists()


def test_tool_errors_and_repeat(host_bundle, tmp_path):
    m = host_bundle / "model.dse"
    np.save(tmp_path / "a64.npy", np.zeros((2, 3), np.float64))
    np.save(tmp_path / "a.npy", np.zeros((2, 3), np.float32))
    np.save(tmp_path / "ashape.npy", np.zeros((3, 2), np.float32))
    np.save(tmp_path / "b.npy", np.float32(1))
    p = tool(host_bundle, m, "--input", f"a={tmp_path / 'a64.npy'}", "--input", f"b={tmp_path / 'b.npy'}")
    assert p.returncode == 2 and "input a expects float32 [2, 3], the file holds float64 [2, 3]" in p.stderr
    p = tool(host_bundle, m, "--input", f"a={tmp_path / 'ashape.npy'}", "--input", f"b={tmp_path / 'b.npy'}")
    assert p.returncode == 2 and "the file holds float32 [3, 2]" in p.stderr
    p = tool(host_bundle, m, "--input", f"zz={tmp_path / 'a.npy'}")
    assert p.returncode == 2 and "no such input" in p.stderr
    p = tool(host_bundle, m, "--input", f"a={tmp_path / 'a.npy'}")
    assert p.returncode == 2 and "input b is missing" in p.stderr
    (tmp_path / "junk.npy").write_bytes(b"\x93NUMPY\x01\x00\x10\x00{'descr': '<f4'")
    p = tool(host_bundle, m, "--input", f"a={tmp_path / 'junk.npy'}", "--input", f"b={tmp_path / 'b.npy'}")
    assert p.returncode == 2 and "junk.npy" in p.stderr
    p = tool(host_bundle, m, "--input", f"a={tmp_path / 'a.npy'}", "--input", f"b={tmp_path / 'b.npy'}", "--repeat", "7")
    assert p.returncode == 0, p.stderr
    lat, rss = p.stdout.strip().splitlines()
    stats = dict(kv.split("=") for kv in lat.split()[1:])
    assert lat.startswith("latency_ms") and stats["runs"] == "7"
    assert 0 <= float(stats["min"]) <= float(stats["median"]) and float(stats["min"]) <= float(stats["mean"])
    assert rss.startswith("peak_rss_kb=") and 0 < int(rss.split("=")[1]) < 200_000


def test_export_onnx_without_calib_is_dynamic(tmp_path):
    """`dsedge export model.onnx` with no --calib quantises dynamically (as `dsedge quantize`
    does) instead of refusing: the bundle's .dse keeps the float model's answers."""
    from dsedge.api import export_bundle
    import dsedge.zoo
    import onnxruntime as ort
    d = dsedge.zoo.digits_dir()
    m = export_bundle(d / "model.onnx", tmp_path / "b", target="host")
    assert m["model"]["quantized"] is True and m["model"]["dynamic"] is True
    x = np.load(d / "eval.npz")["image"][:16].astype(np.float32)   # (16, 1, 1, 8, 8): one feed each
    rt = dsedge.Runtime(tmp_path / "b" / "model.dse")
    name = rt.inputs[0].name
    sess = ort.InferenceSession(str(d / "model.onnx"), providers=["CPUExecutionProvider"])
    got = np.concatenate([rt.run({name: xi})[rt.outputs[0].name] for xi in x])
    want = np.concatenate([sess.run(None, {name: xi})[0] for xi in x])
    sqnr = 10 * np.log10(np.sum(want.astype(np.float64) ** 2) / np.sum((want - got).astype(np.float64) ** 2))
    assert sqnr > 35, sqnr


# -- cross targets from an installed wheel ---------------------------------------------------

def _have_zig() -> bool:
    try:
        import ziglang  # noqa: F401
        return True
    except ImportError:
        return bool(os.environ.get("CC"))


@pytest.fixture(scope="module")
def venv(tmp_path_factory):
    """dsedge installed with `pip install .` from a copy of the checkout into a fresh venv, the
    copy removed (the export must not need the checkout): the run's one such install, shared
    with tests/unit/test_install.py (tests.venvs.installed_venv)."""
    if not _have_zig():
        pytest.skip("no cross compiler (ziglang)")
    sys.path.insert(0, str(ROOT))
    from tests.venvs import installed_venv
    return installed_venv(tmp_path_factory)


@pytest.fixture(scope="module")
def digits_feed(tmp_path_factory):
    import dsedge.zoo
    d = tmp_path_factory.mktemp("feed")
    x = np.load(dsedge.zoo.digits_dir() / "eval.npz")
    arr = next(iter(x.values()))[3].astype(np.float32)
    np.save(d / "x.npy", arr)
    return d / "x.npy", arr


@pytest.mark.parametrize("target, qemu, machine", [("arm64", "qemu-aarch64", 183), ("armv7", "qemu-arm", 40)])
def test_cross_bundle_from_installed_wheel_under_qemu(venv, digits_feed, tmp_path, target, qemu, machine):
    if shutil.which(qemu) is None:
        pytest.skip(f"{qemu} is not installed (apt-get install qemu-user)")
    import dsedge.zoo
    digits = dsedge.zoo.digits_dir()
    work = tmp_path / "elsewhere"
    work.mkdir()
    env = {k: v for k, v in os.environ.items() if k not in ("CC", "AR", "PYTHONPATH")}
    r = subprocess.run([str(venv / "bin" / "dsedge"), "export", str(digits / "model.onnx"), "--calib",
                        str(digits / "calib.npz"), "--target", target, "-o", str(work / "bundle"), "--json",
                        "--no-progress"], capture_output=True, text=True, cwd=work, env=env)
    assert r.returncode == 0, r.stderr[-3000:]
    manifest = json.loads(r.stdout)
    b = work / "bundle"
    assert manifest["target"] == target and manifest["model"]["quantized"] is True
    for p in ("bin/dsedge-run", "lib/libdsedge.so"):
        assert (b / p).read_bytes()[18] == machine, p              # ELF e_machine of the target
    print(f"\n{target} bundle sizes: {manifest['sizes']}")
    if target == "arm64":   # issue 10's bound: the arm64 static library with every kernel under 400 KB
        assert manifest["sizes"]["lib/libdsedge.a"] < 400 * 1024, manifest["sizes"]   # (BENCHMARKS.md)
    x_path, x = digits_feed
    rt = dsedge.Runtime(b / "model.dse")                           # the host bindings, same .dse
    name = rt.inputs[0].name
    want = rt.run({name: x.reshape(rt.inputs[0].shape)})
    p = tool(b, b / "model.dse", "--input", f"{name}={x_path}", "--output-dir", tmp_path / "out", qemu=qemu)
    assert p.returncode == 0, p.stderr
    for o in rt.outputs:
        got = np.load(tmp_path / "out" / f"{o.name}.npy")
        assert got.dtype == want[o.name].dtype and got.tobytes() == want[o.name].tobytes(), o.name
