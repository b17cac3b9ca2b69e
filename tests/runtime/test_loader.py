"""The C loader and session against Python-written .dse files: tiny graphs run end to end and
match numpy; the API reports names, shapes, dtypes, quantisation and metadata; corrupt files
give error codes and never crash (every truncation and table bit flip in-process, and the
committed corpus under an ASan+UBSan build). Skips only when no C compiler is present."""
from __future__ import annotations

import ctypes as C
import os
import shutil
import struct
import subprocess
import zlib
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from tests.runtime._make import make_checked, san_binary   # shared builds (one per configuration)

from dsedge.runtime import _Error, _declare
from dsedge.artifact import _strings, Artifact, NodeRec, QuantRec, TensorRec, op_id, read
from dsedge.errors import ModelError

ROOT = Path(__file__).resolve().parents[2]
CDIR = ROOT / "runtimes" / "c"
CC = os.environ.get("CC") or shutil.which("cc") or shutil.which("gcc") or shutil.which("clang")
pytestmark = pytest.mark.skipif(CC is None or shutil.which("make") is None, reason="no C compiler or make")

(OK, ERR_ARGUMENT, ERR_NOMEM, ERR_IO, ERR_MAGIC, ERR_VERSION, ERR_TRUNCATED, ERR_CHECKSUM, ERR_FORMAT,
 ERR_RANGE, ERR_UNSUPPORTED, ERR_ALIGNMENT, ERR_NOT_FOUND, ERR_STATE) = range(14)


Error = _Error   # the bindings' declaration of dse_error


class TensorInfo(C.Structure):
    _fields_ = [("name", C.c_char_p), ("dtype", C.c_int), ("rank", C.c_size_t), ("dims", C.c_size_t * 8),
                ("nbytes", C.c_size_t), ("quant", C.c_int), ("axis", C.c_int), ("group_size", C.c_size_t),
                ("quant_count", C.c_size_t), ("scales", C.POINTER(C.c_float)), ("zero_points", C.POINTER(C.c_int32))]


class Meta(C.Structure):
    _fields_ = [("key", C.c_char_p), ("type", C.c_int), ("str", C.c_char_p), ("i64", C.c_int64), ("f64", C.c_double),
                ("bytes", C.c_void_p), ("size", C.c_size_t), ("strings", C.POINTER(C.c_char_p)), ("count", C.c_size_t)]


@pytest.fixture(scope="module")
def build(tmp_path_factory):
    return make_checked(CC, "all")


@pytest.fixture(scope="module")
def lib(build):
    L = C.CDLL(str(build / "libdsedge.so"))
    P = C.c_void_p
    _declare(L)   # the public C API's signatures, as the bindings declare them
    L.dse_model_input.argtypes = L.dse_model_output.argtypes = [P, C.c_size_t, C.POINTER(TensorInfo)]
    L.dse_model_find_input.argtypes = [P, C.c_char_p]
    L.dse_model_metadata.argtypes = [P, C.c_char_p, C.POINTER(Meta)]
    return L


def aligned(data: bytes, align: int = 64, shift: int = 0):
    """A buffer holding `data` at an address that is `shift` bytes past a multiple of `align`."""
    raw = np.zeros(len(data) + 2 * align, np.uint8)
    start = (-raw.ctypes.data) % align + shift
    raw[start:start + len(data)] = np.frombuffer(data, np.uint8)
    return raw, raw.ctypes.data + start


class Model:
    def __init__(self, lib, data: bytes, flags: int = 0, shift: int = 0):
        self.lib, self.keep = lib, aligned(data, shift=shift)
        self.h, self.err = C.c_void_p(), Error()
        self.status = lib.dse_model_load_ex(self.keep[1], len(data), flags, C.byref(self.h), C.byref(self.err))

    def __enter__(self):
        return self

    def __exit__(self, *a):
        self.lib.dse_model_free(self.h)

    def info(self, i, output=False):
        ti = TensorInfo()
        assert (self.lib.dse_model_output if output else self.lib.dse_model_input)(self.h, i, C.byref(ti)) == OK
        return ti

    def run(self, *inputs):
        s, e = C.c_void_p(), Error()
        assert self.lib.dse_session_create(self.h, None, 0, C.byref(s), C.byref(e)) == OK, e.message
        try:
            for i, x in enumerate(inputs):
                x = np.ascontiguousarray(x)
                assert self.lib.dse_session_set_input(s, i, x.ctypes.data, x.nbytes, C.byref(e)) == OK, e.message
            assert self.lib.dse_session_run(s, C.byref(e)) == OK, e.message
            outs = []
            for i in range(self.lib.dse_model_output_count(self.h)):
                p, n = C.c_void_p(), C.c_size_t()
                assert self.lib.dse_session_get_output(s, i, C.byref(p), C.byref(n)) == OK
                outs.append(C.string_at(p, n.value))
            return outs
        finally:
            self.lib.dse_session_free(s)


F = "float32"


def add_relu_artifact(sa, sb, const_b=False, **kw) -> tuple[Artifact, np.ndarray]:
    """y = relu(a + b) with numpy broadcasting; b a constant when const_b."""
    so = np.broadcast_shapes(sa, sb)
    nb = 4 * int(np.prod(sa)) + 4 * int(np.prod(sb))
    bval = np.random.default_rng(1).standard_normal(sb).astype(np.float32)
    tb = TensorRec.const("b", bval) if const_b else TensorRec.arena("b", F, sb, -(-4 * int(np.prod(sa)) // 64) * 64)
    off = -(-nb // 64) * 64 + 64
    no = 4 * int(np.prod(so))
    ts = (TensorRec.arena("a", F, sa, 0), tb, TensorRec.arena("sum", F, so, off),
          TensorRec.arena("y", F, so, off + -(-no // 64) * 64))
    # empty tensors at 0; the arena no larger than the tensors need, rounded up to 64 (the loader's rule)
    ts = tuple(replace(t, offset=0) if t.storage == 1 and not t.nbytes else t for t in ts)
    end = max(t.offset + t.nbytes for t in ts if t.storage == 1)
    art = Artifact(ts, (NodeRec(op_id("Add"), (0, 1), (2,), name="add"), NodeRec(op_id("Relu"), (2,), (3,), name="relu")),
                   (0,) if const_b else (0, 1), (3, 2), max(-(-end // 64) * 64, 64), **kw)
    return art, bval


@pytest.mark.parametrize("sa, sb", [((2, 3), (2, 3)), ((2, 1, 4), (3, 1)), ((5,), ()), ((1,), (3, 2, 1)),
                                    ((2, 3, 1, 5), (1, 3, 4, 1)), ((0, 3), (1, 3)), ((7, 1, 1, 1, 1, 1, 2), (2,))])
@pytest.mark.parametrize("const_b", [False, True])
def test_add_relu_matches_numpy(lib, sa, sb, const_b):
    art, bval = add_relu_artifact(sa, sb, const_b)
    a = np.random.default_rng(0).standard_normal(sa).astype(np.float32)
    a.flat[:1] = -0.0
    with Model(lib, art.to_bytes()) as m:
        assert m.status == OK, m.err.message
        y, s = m.run(a) if const_b else m.run(a, bval)
    ref = a + bval
    assert s == ref.tobytes()
    assert y == np.maximum(ref, np.float32(0)).tobytes()   # bit-exact, including -0.0 handling


def test_identity_any_dtype_and_const_output(lib):
    c = TensorRec.const("table", np.arange(5, dtype=np.int16))
    ts = (TensorRec.arena("x", "uint8", (3, 3), 0), TensorRec.arena("y", "uint8", (3, 3), 16), c)
    art = Artifact(ts, (NodeRec(op_id("Identity"), (0,), (1,)),), (0,), (1, 2), 32)
    x = np.arange(9, dtype=np.uint8).reshape(3, 3)
    with Model(lib, art.to_bytes()) as m:
        assert m.status == OK, m.err.message
        assert m.run(x) == [x.tobytes(), np.arange(5, dtype=np.int16).tobytes()]


def test_api_reports_io_quant_and_metadata(lib):
    q = QuantRec(np.array([0.5, 0.25, 0.125]), [1, -2, 3], axis=1)
    ts = (TensorRec.arena("image", "int8", (1, 3, 2, 2), 0, quant=q), TensorRec.arena("out", "int8", (1, 3, 2, 2), 64, quant=q))
    art = Artifact(ts, (NodeRec(op_id("Identity"), (0,), (1,), name="copy"),), (0,), (1,), 128,
                   metadata={"producer": "dsedge 0.1.0", "source.character_list": ["a", "b", "中"], "n": -3,
                             "ratio": 0.5, "raw": b"\x00\x01"})
    with Model(lib, art.to_bytes()) as m:
        L = m.lib
        assert m.status == OK and L.dse_model_input_count(m.h) == 1 and L.dse_arena_size(m.h) == 128
        ti = m.info(0)
        assert ti.name == b"image" and ti.dtype == 4 and ti.rank == 4 and list(ti.dims[:4]) == [1, 3, 2, 2]
        assert ti.nbytes == 12 and ti.quant == 2 and ti.axis == 1 and ti.quant_count == 3
        assert ti.scales[:3] == [0.5, 0.25, 0.125] and ti.zero_points[:3] == [1, -2, 3]
        assert m.info(0, output=True).name == b"out"
        assert L.dse_model_find_input(m.h, b"image") == 0 and L.dse_model_find_input(m.h, b"nope") == -1
        md = Meta()
        assert L.dse_model_metadata(m.h, b"source.character_list", C.byref(md)) == OK
        assert md.type == 5 and [md.strings[i].decode() for i in range(md.count)] == ["a", "b", "中"]
        assert L.dse_model_metadata(m.h, b"n", C.byref(md)) == OK and md.type == 2 and md.i64 == -3
        assert L.dse_model_metadata(m.h, b"ratio", C.byref(md)) == OK and md.f64 == 0.5
        assert L.dse_model_metadata(m.h, b"raw", C.byref(md)) == OK and C.string_at(md.bytes, md.size) == b"\x00\x01"
        assert L.dse_model_metadata(m.h, b"producer", C.byref(md)) == OK and md.str == b"dsedge 0.1.0"
        assert L.dse_model_metadata(m.h, b"missing", C.byref(md)) == ERR_NOT_FOUND
    assert lib.dse_version() == b"0.1.0" and lib.dse_status_string(ERR_CHECKSUM).startswith(b"checksum")


def test_session_arena_and_state_errors(lib):
    art, bval = add_relu_artifact((4,), (4,))
    with Model(lib, art.to_bytes()) as m:
        s, e = C.c_void_p(), Error()
        n = lib.dse_arena_size(m.h)
        raw, p = aligned(bytes(n + 64), shift=8)
        assert lib.dse_session_create(m.h, p, n, C.byref(s), C.byref(e)) == ERR_ALIGNMENT
        raw, p = aligned(bytes(n))
        assert lib.dse_session_create(m.h, p, n - 1, C.byref(s), C.byref(e)) == ERR_ARGUMENT
        assert lib.dse_session_create(m.h, p, n, C.byref(s), C.byref(e)) == OK   # caller's arena
        x = np.ones(4, np.float32)
        assert lib.dse_session_set_input(s, 0, x.ctypes.data, 8, C.byref(e)) == ERR_ARGUMENT
        assert lib.dse_session_set_input(s, 0, x.ctypes.data, 16, C.byref(e)) == OK
        assert lib.dse_session_run(s, C.byref(e)) == ERR_STATE and b"(b)" in e.message
        assert lib.dse_session_set_input(s, 1, bval.ctypes.data, 16, C.byref(e)) == OK
        assert lib.dse_session_run(s, C.byref(e)) == OK
        y = np.frombuffer(raw.tobytes(), np.float32)
        assert np.maximum(x + bval, 0).tobytes() in raw.tobytes() and y.size
        lib.dse_session_free(s)


def test_load_file_and_weight_crc(lib, tmp_path):
    art, bval = add_relu_artifact((3,), (3,), const_b=True, weights_crc=True)
    p = tmp_path / "m.dse"
    art.write(p)
    h, e = C.c_void_p(), Error()
    assert lib.dse_model_load_file(str(p).encode(), 1, C.byref(h), C.byref(e)) == OK, e.message
    lib.dse_model_free(h)
    assert lib.dse_model_load_file(str(tmp_path / "none.dse").encode(), 0, C.byref(h), C.byref(e)) == ERR_IO
    data = bytearray(art.to_bytes())
    data[-1] ^= 0x20                                                  # corrupt a weight
    with Model(lib, bytes(data)) as m:
        assert m.status == OK                                         # not verified by default
    with Model(lib, bytes(data), flags=1) as m:
        assert m.status == ERR_CHECKSUM and b"weight" in m.err.message


def _fixcrc(b: bytearray) -> bytes:
    ts = struct.unpack_from("<Q", b, 24)[0]
    struct.pack_into("<I", b, 60, zlib.crc32(b[64:64 + ts], zlib.crc32(b[:60])))
    return bytes(b)


def test_unsupported_ops_and_kernel_checks_name_the_node(lib):
    art, _ = add_relu_artifact((2,), (2,))
    data = art.to_bytes()
    sub, rec = op_id("Hardmax"), bytes([op_id("Add"), _strings(art).index("add"), 2])   # op, name, n_in
    raw = bytearray(data)
    i = raw.index(rec, 64)
    raw[i] = sub
    with Model(lib, bytes(raw)) as m:                              # tables changed, CRC stale
        assert m.status == ERR_CHECKSUM
    with Model(lib, _fixcrc(raw)) as m:
        assert m.status == ERR_UNSUPPORTED and b"add" in m.err.message and b"Hardmax" in m.err.message
    unknown = Artifact(art.tensors, (NodeRec(65000, (0, 1), (2,), name="future"), art.nodes[1]), art.inputs,
                       art.outputs, art.arena_size)                # an id no op has (yet)
    with Model(lib, unknown.to_bytes()) as m:
        assert m.status == ERR_UNSUPPORTED and b"unknown" in m.err.message and b"future" in m.err.message
    # Add whose output shape is not the broadcast shape: refused at load, naming the node.
    bad = Artifact((TensorRec.arena("a", F, (2,), 0), TensorRec.arena("b", F, (2,), 16), TensorRec.arena("y", F, (3,), 32)),
                   (NodeRec(op_id("Add"), (0, 1), (2,), name="badadd"),), (0, 1), (2,), 64)
    with Model(lib, bad.to_bytes()) as m:
        assert m.status == ERR_FORMAT and b"badadd" in m.err.message


def test_refusal_messages_name_the_node_and_show_numbers(lib):
    """A kernel's check refuses with a message id and numbers (runtimes/c/src/messages.inc); the
    loader formats it once, naming the node, and names each kernel when several refuse."""
    x = TensorRec.arena("x", F, (1, 3, 8, 8), 0)
    w = TensorRec.const("w", np.zeros((4, 3, 3, 3), np.float32))
    y = TensorRec.arena("y", F, (1, 4, 5, 6), 1024)
    geo = {"kernel_shape": (3, 3), "strides": (1, 1), "pads": (0, 0, 0, 0), "dilations": (1, 1), "group": 1}
    conv = Artifact((x, w, y), (NodeRec(op_id("Conv"), (0, 1), (2,), geo, name="conv1"),), (0,), (2,), 2048)
    with Model(lib, conv.to_bytes()) as m:
        msg = m.err.message.decode()
        assert m.status == ERR_FORMAT and msg.startswith("node 0 (Conv conv1): "), msg
        assert "dse_i8_conv__ref: int8 Conv needs" in msg and \
            "dse_f32_conv__ref: spatial axis 0: output 5, but the geometry gives 6" in msg, msg
    pad = Artifact((TensorRec.arena("x", F, (2, 3), 0), TensorRec.const("p", np.array([0, 1, 0, 1], np.int64)),
                    TensorRec.arena("y", F, (2, 3), 64)),
                   (NodeRec(op_id("Pad"), (0, 1), (2,), {"mode": "reflect"}, name="pad"),), (0,), (2,), 128)
    with Model(lib, pad.to_bytes()) as m:   # one kernel: its message alone, with %0..%2 filled in
        assert m.status == ERR_FORMAT and m.err.message == b"node 0 (Pad pad): output dim 1 is 3, padding gives 5", \
            m.err.message
    pad = Artifact(pad.tensors, (NodeRec(op_id("Pad"), (0, 1), (2,), {"mode": "mirror"}, name="pad"),), (0,), (2,), 128)
    with Model(lib, pad.to_bytes()) as m:   # a string (%s)
        assert m.status == ERR_FORMAT and b"mode mirror is not one of constant, reflect, edge, wrap" in m.err.message


def test_alignment_and_version(lib):
    art, _ = add_relu_artifact((2,), (2,))
    data = art.to_bytes()
    with Model(lib, data, shift=4) as m:
        assert m.status == ERR_ALIGNMENT
    raw = bytearray(data)
    raw[8] = 2
    with Model(lib, _fixcrc(raw)) as m:
        assert m.status == ERR_VERSION


def test_every_truncation_and_table_bit_flip_is_an_error(lib):
    art, _ = add_relu_artifact((2, 1), (3,), metadata={"producer": "x", "l": ["a", "b"]})
    data = art.to_bytes()
    for n in range(len(data)):
        with Model(lib, data[:n]) as m:
            assert m.status in (ERR_MAGIC, ERR_TRUNCATED), n
    tend = 64 + struct.unpack_from("<Q", data, 24)[0]
    accepted = 0
    for i in range(tend):
        for bit in range(8):
            raw = bytearray(data)
            raw[i] ^= 1 << bit
            with Model(lib, bytes(raw)) as m:                     # stale CRC: always refused
                assert m.status != OK
            fixed = _fixcrc(raw) if i < 60 or i >= 64 else bytes(raw)
            with Model(lib, fixed) as m:                          # CRC fixed: refused or still runnable
                if m.status == OK:
                    accepted += 1
                    m.run(*[np.zeros(m.info(k).nbytes, np.uint8) for k in range(lib.dse_model_input_count(m.h))])
                    try:                                          # the Python reader agrees it is valid
                        read(fixed)
                    except ModelError as e:
                        pytest.fail(f"C accepted byte {i} bit {bit}, Python refused: {e}")
                else:
                    assert m.status in (ERR_MAGIC, ERR_VERSION, ERR_TRUNCATED, ERR_FORMAT, ERR_RANGE,
                                        ERR_UNSUPPORTED, ERR_CHECKSUM), m.status
                    assert m.err.message
    assert 0 < accepted < tend * 8 // 2


def test_corpus_under_asan_ubsan(tmp_path):
    """Every committed corpus file (seeds + mutants) through an ASan+UBSan build: no crash,
    no sanitizer report, every seed runs."""
    try:
        exe = san_binary(tmp_path / "dse_corpus_asan", [CDIR / "tests" / "corpus_runner.c"])
    except RuntimeError as e:
        if "sanitize" in str(e):
            pytest.skip(f"compiler lacks ASan/UBSan: {str(e)[-200:]}")
        raise
    corpus = CDIR / "tests" / "corpus"
    assert len(list(corpus.glob("*.dse"))) >= 100
    r = subprocess.run([str(exe), str(corpus)], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0 and "ERROR: AddressSanitizer" not in r.stderr and "runtime error" not in r.stderr, r.stderr[-2000:]
    lines = r.stdout.splitlines()
    assert len(lines) == len(list(corpus.glob("*.dse")))
    status = {ln.split(" ", 2)[1].rstrip(":").rsplit("/", 1)[1]: int(ln.split(" ", 1)[0]) for ln in lines}
    assert all(status[f] == OK for f in status if f.startswith("seed_"))
    mutants = {f: v for f, v in status.items() if not f.startswith("fuzz_")}   # fuzz_*: minimised libFuzzer corpus, mostly loadable
    assert sum(v != OK for v in mutants.values()) > len(mutants) // 2


def test_sizes_beyond_size_t_refused_on_32_bit(lib, tmp_path):
    """A 32-bit build (zig cc, armv7 musl under qemu-arm: the target the other armv7 tests build
    for, so zig's libc for it is built once) refuses sizes that only fit 64 bits with
    DSE_ERR_RANGE, where the 64-bit build loads the same file."""
    from dsedge.export.bundle import zig_tool_cc
    zcc = zig_tool_cc("armv7")   # the bundles' armv7 compiler and CPU flags: zig's libc built once
    if zcc is None:
        pytest.skip("no zig (pip install ziglang) for the 32-bit build")
    qemu = shutil.which("qemu-arm")
    if qemu is None:
        pytest.skip("qemu-arm not installed (apt install qemu-user)")
    exe = tmp_path / "dse_corpus32"
    from dsedge.runtime import _build   # the library's sources and flags (runtimes/c/build.mk)
    _build.build_binary(zcc, exe, csrc=CDIR, arch="armv7", extra_sources=[CDIR / "tests" / "corpus_runner.c"],
                        ldflags=["-static"])   # a link flag: the objects are test_kernels_neon's armv7 runner's
    big = Artifact((TensorRec.arena("x", F, (65536, 65537), 0), TensorRec.arena("y", F, (65536, 65537), 0)),
                   (NodeRec(op_id("Relu"), (0,), (1,)),), (0,), (1,), 4 * 65536 * 65537)
    seed = add_relu_artifact((2,), (3, 1))[0]
    for name, art in (("big", big), ("seed", seed)):
        (tmp_path / f"{name}.dse").write_bytes(art.to_bytes())
        with Model(lib, art.to_bytes()) as m:
            assert m.status == OK, m.err.message                  # 64-bit host: fine
    out = subprocess.run([qemu, str(exe), str(tmp_path / "big.dse"), str(tmp_path / "seed.dse")], capture_output=True,
                         text=True, timeout=120).stdout.splitlines()
    assert out[0].startswith(f"{ERR_RANGE} ") and "does not fit this platform" in out[0], out
    assert out[1].startswith("0 "), out


def test_header_compiles_as_cpp_and_cmake_subdirectory(tmp_path):
    cxx = shutil.which("c++") or shutil.which("g++") or shutil.which("clang++")
    if cxx:
        (tmp_path / "t.cpp").write_text('#include "dsedge.h"\nint main() { return dse_format_version() == 1 ? 0 : 1; }\n')
        subprocess.run([cxx, "-std=c++11", "-Wall", "-Werror", "-fsyntax-only", f"-I{CDIR / 'include'}",
                        str(tmp_path / "t.cpp")], check=True)
    cmake = shutil.which("cmake")
    if cmake is None:
        return
    app = tmp_path / "app"
    app.mkdir()
    (app / "CMakeLists.txt").write_text(
        "cmake_minimum_required(VERSION 3.16)\nproject(app C)\n"
        f'add_subdirectory("{CDIR.as_posix()}" dsedge)\n'
        "add_executable(app main.c)\ntarget_link_libraries(app PRIVATE dsedge)\n")
    (app / "main.c").write_text('#include <stdio.h>\n#include "dsedge.h"\n'
                                'int main(void) { puts(dse_version()); return 0; }\n')
    b = tmp_path / "b"
    subprocess.run([cmake, "-S", str(app), "-B", str(b), f"-DCMAKE_C_COMPILER={CC}"], check=True, capture_output=True)
    subprocess.run([cmake, "--build", str(b), "-j", "2"], check=True, capture_output=True)
    assert subprocess.run([str(b / "app")], capture_output=True, text=True).stdout.strip() == "0.1.0"


def test_corpus_is_current():
    """The committed corpus is what runtimes/c/tests/make_corpus.py generates (re-run it after
    a format change)."""
    import importlib.util
    spec = importlib.util.spec_from_file_location("make_corpus", CDIR / "tests" / "make_corpus.py")
    mc = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mc)
    for name, art in mc.seeds().items():
        assert (CDIR / "tests" / "corpus" / f"seed_{name}.dse").read_bytes() == art.to_bytes(), \
            "stale corpus: run python runtimes/c/tests/make_corpus.py"
