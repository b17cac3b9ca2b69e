"""Per-node profiling and the kernel chosen per node: the C API (dse_session_run_profile,
dse_model_node_op/name/kernel/isa), `Runtime.profile()` / `Runtime.kernels()` /
`Runtime(kernels="ref")`, `dsedge profile`, and `dsedge-run --profile / --ref / --json` on the
host and in the arm64 bundle under qemu. Real behaviour: one row per node, in run order, with
the artifact's ops and names; kernel names from the kernel list (`--ref`: the reference ones);
times positive and shares adding up; the same output bytes with the chosen and the reference
kernels (the int8 exactness rule)."""
from __future__ import annotations

import ctypes as C
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
from dsedge.artifact import op_id, read
from dsedge.errors import DseError
from dsedge.runtime import _build, kernel_list

ROOT = Path(__file__).resolve().parents[2]
CDIR = ROOT / "runtimes" / "c"
CC = os.environ.get("CC") or shutil.which("cc") or shutil.which("gcc") or shutil.which("clang")
DSE_ERR_UNSUPPORTED = 10


@pytest.fixture(scope="module")
def digits(tmp_path_factory):
    """The digits model quantised to an int8 .dse (QuantizeLinear, 2 Conv, Flatten, Gemm), and one feed."""
    import dsedge.zoo
    from dsedge.api import quantize, save_result
    d = tmp_path_factory.mktemp("digits")
    z = dsedge.zoo.digits_dir()
    save_result(quantize(str(z / "model.onnx"), str(z / "calib.npz"), progress=False), str(d / "digits.dse"))
    rt = dsedge.Runtime(d / "digits.dse")
    x = next(iter(np.load(z / "eval.npz").values()))[3].astype(np.float32).reshape(rt.inputs[0].shape)
    np.save(d / "x.npy", x)
    return d / "digits.dse", {rt.inputs[0].name: x}


def _kernels_by_run():
    """{kernel name: {architecture: its entry}} (the neon variants are listed for arm64 and armv7)."""
    out = {}
    for k in kernel_list.kernels():
        out.setdefault(k.run, {})[k.arch] = k
    return out


def _c_op(name: str) -> str:
    from dsedge.ops.gen_c import c_name
    return c_name(name)


def _check_rows(rows, path, ref: bool, arch: str):
    """rows: dicts with index, op, name, kernel, isa; against the artifact and the kernel list."""
    art = read(path)
    ks = _kernels_by_run()
    assert [r["index"] for r in rows] == list(range(len(art.nodes)))
    for r, n in zip(rows, art.nodes):
        assert op_id(r["op"]) == n.op and r["name"] == (n.name or "")
        k = ks[r["kernel"]].get(arch) or ks[r["kernel"]].get("any")   # a kernel of the list, for this arch
        assert k is not None, (r["kernel"], arch)
        assert _c_op(r["op"]) == k.op and r["isa"] == k.isa_name
        if ref:
            assert k.isa == "REF" and r["kernel"].endswith("__ref")


# -- Python ------------------------------------------------------------------------------------

def test_runtime_profile_rows(digits):
    path, feeds = digits
    rt = dsedge.Runtime(path)
    before = rt.run(feeds)
    prof = rt.profile(feeds, repeat=5)
    assert len(prof) == rt.node_count == len(read(path).nodes) == 5 and prof.runs == 5
    _check_rows([r.__dict__ for r in prof], path, False, _build.host_arch())
    assert [r.kernel for r in prof] == rt.kernels()
    assert all(r.median_ms >= r.min_ms >= 0 for r in prof)
    assert all(r.median_ms > 0 for r in prof if r.op == "Conv") and prof.total_ms > 0
    assert sum(r.percent for r in prof) == pytest.approx(100, abs=1e-6)
    assert [r.median_ms for r in prof.by_time()] == sorted((r.median_ms for r in prof), reverse=True)
    ops = prof.by_op()
    assert sum(o["nodes"] for o in ops) == 5 and {o["op"] for o in ops} == {r.op for r in prof}
    assert "Conv" in prof.table() and rt.kernels()[1] in prof.table()
    after = rt.run(feeds)
    assert all(after[k].tobytes() == before[k].tobytes() for k in before)   # profiling runs the same nodes


def test_runtime_ref_kernels_same_bytes(digits):
    path, feeds = digits
    auto, ref = dsedge.Runtime(path), dsedge.Runtime(path, kernels="ref")
    assert ref.kernel_choice == "ref" and auto.kernel_choice == "auto"
    _check_rows(ref.nodes(), path, True, _build.host_arch())
    _check_rows(auto.nodes(), path, False, _build.host_arch())
    prof = ref.profile(feeds, repeat=2)
    assert all(r.isa == "ref" for r in prof) and prof.kernels == "ref"
    a, b = auto.run(feeds), ref.run(feeds)
    assert all(a[k].tobytes() == b[k].tobytes() for k in a)   # int8 variants give REF's bytes
    noamx = dsedge.Runtime(path, kernels="no-amx")   # DSE_LOAD_NO_AMX: every variant but AMX's
    assert noamx.kernel_choice == "no-amx" and not any(k.endswith("__amx") for k in noamx.kernels())
    assert [k.replace("__amx", "__avx512vnni") for k in auto.kernels()] == noamx.kernels()
    c = noamx.run(feeds)
    assert all(a[k].tobytes() == c[k].tobytes() for k in a)
    no512 = dsedge.Runtime(path, kernels="no-avx512")   # DSE_LOAD_NO_AVX512: neither avx512vnni's nor AMX's
    assert no512.kernel_choice == "no-avx512" and not any(k.endswith(("__amx", "__avx512vnni")) for k in no512.kernels())
    d = no512.run(feeds)
    assert all(a[k].tobytes() == d[k].tobytes() for k in a)
    with pytest.raises(DseError, match="kernels must be one of"):
        dsedge.Runtime(path, kernels="fast")
    with pytest.raises(DseError, match="repeat"):
        auto.profile(feeds, repeat=0)


def test_cli_profile(digits, tmp_path):
    path, feeds = digits
    np.savez(tmp_path / "in.npz", **feeds)
    r = subprocess.run([sys.executable, "-m", "dsedge.cli", "profile", str(path), "--repeat", "3", "--json", "-i",
                        str(tmp_path / "in.npz")], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    d = json.loads(r.stdout)
    assert d["runs"] == 3 and d["ref_kernels"] is False and len(d["nodes"]) == 5
    _check_rows(d["nodes"], path, False, _build.host_arch())
    r = subprocess.run([sys.executable, "-m", "dsedge.cli", "profile", str(path), "--ref", "--repeat", "2", "--top", "2"],
                       capture_output=True, text=True)   # random inputs; the table on stderr
    assert r.returncode == 0, r.stderr
    assert "reference kernels" in r.stderr and "dse_i8_conv__ref" in r.stderr and "... 3 more nodes" in r.stderr


# -- the C API and dsedge-run ------------------------------------------------------------------

@pytest.fixture(scope="module")
def host_tool(tmp_path_factory):
    d = tmp_path_factory.mktemp("tool")
    _build.build_binary([CC], d / "dsedge-run", csrc=CDIR, extra_sources=sorted((CDIR / "tools").glob("*.c")))
    return d / "dsedge-run"


def run_tool(tool, *args, qemu=None):
    return subprocess.run(([qemu] if qemu else []) + [str(tool), *map(str, args)], capture_output=True, text=True,
                          timeout=600)


TABLE_ROW = re.compile(r"^\s*(\d+)\s+(\d+)\s+(\S+)\s+(\S*)\s+(dse_\w+)\s+(\S+)\s+([\d.]+)\s+([\d.]+)$")


def _check_tool(tool, path, feed, arch, qemu=None):
    x = path.parent / "x.npy"
    for ref in (False, True):
        extra = ["--ref"] if ref else []
        p = run_tool(tool, path, "--input", x, "--profile", "--repeat", "3", *extra, qemu=qemu)
        assert p.returncode == 0, p.stderr
        lines = p.stdout.splitlines()
        assert lines[0].startswith(f"profile {path}: 5 nodes, 3 runs, {'reference' if ref else 'chosen'} kernels")
        rows = [TABLE_ROW.match(ln) for ln in lines[2:7]]
        assert all(rows), lines
        assert [int(r.group(1)) for r in rows] == [1, 2, 3, 4, 5]
        assert sorted(int(r.group(2)) for r in rows) == [0, 1, 2, 3, 4]
        med = [float(r.group(7)) for r in rows]
        assert med == sorted(med, reverse=True)
        assert lines[7] == "per op:" and sum(int(ln.split()[1]) for ln in lines[9:]) == 5
        p = run_tool(tool, path, "--input", x, "--profile", "--json", *extra, "--output-dir", path.parent / f"o{ref}{arch}",
                     qemu=qemu)
        assert p.returncode == 0, p.stderr
        d = json.loads(p.stdout)
        assert d["runs"] == 10 and d["ref_kernels"] is ref and d["total_ms"] > 0
        _check_rows(d["nodes"], path, ref, arch)
        assert {(r.group(2), r.group(5)) for r in rows} == {(str(n["index"]), n["kernel"]) for n in d["nodes"]}
        assert sum(n["percent"] for n in d["nodes"]) == pytest.approx(100, abs=0.01)
        assert all(n["median_ms"] > 0 for n in d["nodes"] if n["op"] == "Conv")
        assert sum(o["nodes"] for o in d["ops"]) == 5
    out = read(path).tensors[read(path).outputs[0]].name
    a, b = (np.load(path.parent / f"o{ref}{arch}" / f"{out}.npy") for ref in (False, True))
    assert a.tobytes() == b.tobytes()   # the chosen kernels give the reference kernels' bytes
    return a


def test_dsedge_run_profile(digits, host_tool):
    path, feeds = digits
    got = _check_tool(host_tool, path, feeds, _build.host_arch())
    want = dsedge.Runtime(path).run(feeds)
    assert got.tobytes() == next(iter(want.values())).tobytes()
    p = run_tool(host_tool, path, "--input", path.parent / "x.npy", "--json")
    assert p.returncode == 2 and "--json goes with --profile or --repeat" in p.stderr
    p = run_tool(host_tool, path, "--input", path.parent / "x.npy", "--repeat", "3", "--json")
    assert p.returncode == 0 and json.loads(p.stdout)["runs"] == 3
    p = run_tool(host_tool, path, "--input", path.parent / "x.npy", "--profile", "--json", "--no-amx")
    assert p.returncode == 0, p.stderr
    kernels = [n["kernel"] for n in json.loads(p.stdout)["nodes"]]
    assert not any(k.endswith("__amx") for k in kernels) and len(kernels) == 5
    p = run_tool(host_tool, path, "--input", path.parent / "x.npy", "--profile", "--json", "--no-avx512")
    assert p.returncode == 0, p.stderr
    kernels = [n["kernel"] for n in json.loads(p.stdout)["nodes"]]
    assert not any(k.endswith(("__amx", "__avx512vnni")) for k in kernels) and len(kernels) == 5


def test_profile_without_clock_is_unsupported(digits, tmp_path):
    """Built without a monotonic clock (-DDSE_NO_CLOCK), profiling fails cleanly with
    DSE_ERR_UNSUPPORTED and runs nothing; plain runs work."""
    from dsedge.runtime import _Error, _declare
    path, feeds = digits
    lib = tmp_path / "libnoclock.so"
    _build.build_binary([CC], lib, csrc=CDIR, opt=False, flags=["-O0", "-fPIC", "-shared", "-DDSE_NO_CLOCK"])
    L = C.CDLL(str(lib))
    _declare(L)
    h, s, err = C.c_void_p(), C.c_void_p(), _Error()
    assert L.dse_model_load_file(str(path).encode(), 0, C.byref(h), C.byref(err)) == 0
    assert L.dse_model_node_count(h) == 5 and L.dse_model_node_kernel(h, 5) is None and L.dse_model_node_op(h, 9) == -1
    assert L.dse_model_node_name(h, 1) == read(path).nodes[1].name.encode() and L.dse_model_node_op(h, 1) == op_id("Conv")
    assert L.dse_session_create(h, None, 0, C.byref(s), C.byref(err)) == 0
    x = next(iter(feeds.values()))
    assert L.dse_session_set_input(s, 0, x.ctypes.data, x.nbytes, C.byref(err)) == 0
    ns = (C.c_uint64 * 5)(*([7] * 5))
    assert L.dse_session_run_profile(s, ns, C.byref(err)) == DSE_ERR_UNSUPPORTED
    assert b"no monotonic clock" in err.message and list(ns) == [7] * 5
    assert L.dse_session_run_profile(s, None, C.byref(err)) == 1   # DSE_ERR_ARGUMENT
    assert L.dse_session_run(s, C.byref(err)) == 0
    L.dse_session_free(s)
    L.dse_model_free(h)


# -- the arm64 bundle under qemu ---------------------------------------------------------------

def test_arm64_bundle_profile_under_qemu(digits, tmp_path):
    """`dsedge export --target arm64`'s dsedge-run --profile (and --ref, --json) under
    qemu-aarch64: one row per node, arm64 or reference kernels from the list, the same bytes."""
    qemu = shutil.which("qemu-aarch64")
    if qemu is None:
        pytest.skip("qemu-aarch64 is not installed (apt-get install qemu-user)")
    try:
        import ziglang  # noqa: F401
    except ImportError:
        if not shutil.which("aarch64-linux-gnu-gcc"):
            pytest.skip("no arm64 cross compiler (pip install ziglang)")
    from dsedge.api import export_bundle
    path, feeds = digits
    b = tmp_path / "arm64"
    env = {k: os.environ.pop(k) for k in ("CC", "AR") if k in os.environ}
    try:
        export_bundle(path, b, target="arm64")
    finally:
        os.environ.update(env)
    shutil.copyfile(path.parent / "x.npy", b / "x.npy")
    got = _check_tool(b / "bin" / "dsedge-run", b / "model.dse", feeds, "arm64", qemu=qemu)
    want = dsedge.Runtime(path).run(feeds)
    assert got.tobytes() == next(iter(want.values())).tobytes()   # arm64 == the host's bytes
