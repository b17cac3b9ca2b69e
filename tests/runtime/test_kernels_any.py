"""The dtype-generic byte-moving C kernels (runtimes/c/kernels/ref: identity, reshape,
transpose, concat, split, slice, gather, tile, expand, pad, depth_to_space, resize_nearest)
against the numpy reference (dsedge.ops REGISTRY), byte for byte, for float32, float16,
int8, int64 and bool data.

Each case is a one-node .dse written with dsedge.artifact as docs/kernels.md describes (data
and run-time indices as graph inputs, shapes/axes/pads/scales as constants), loaded and run
through the public C API (include/dsedge.h) via ctypes. Out-of-range Gather indices fill the
output block with real zero (0 bytes, or the zero point of a quantised int8 output) and never
read out of bounds; the same cases with every input constant run under the ASan+UBSan build
(`_make.san_binary`) and, cross-compiled with `zig cc -target aarch64-linux-musl`, under
qemu-aarch64, where the printed outputs must equal the numpy reference too.
"""
from __future__ import annotations

import ctypes as C
import itertools
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tests.runtime._make import make_checked, san_binary   # shared builds (one per configuration)

from dsedge.runtime import _Error, _declare
from dsedge.artifact import CONST, Artifact, NodeRec, QuantRec, TensorRec, op_id
from dsedge.ops import REGISTRY

ROOT = Path(__file__).resolve().parents[2]
CDIR = ROOT / "runtimes" / "c"
CC = os.environ.get("CC") or shutil.which("cc") or shutil.which("gcc") or shutil.which("clang")
pytestmark = pytest.mark.skipif(CC is None or shutil.which("make") is None, reason="no C compiler or make")

OK, ERR_FORMAT = 0, 8
DTYPES = ["float32", "float16", "int8", "int64", "bool"]
I64 = np.int64


Error = _Error   # the bindings' declaration of dse_error


@pytest.fixture(scope="module")
def build(tmp_path_factory):
    return make_checked(CC, "all")


@pytest.fixture(scope="module")
def lib(build):
    L = C.CDLL(str(build / "libdsedge.so"))
    _declare(L)   # the public C API's signatures, as the bindings declare them
    return L


def rand(shape, dtype, rng):
    if dtype == "bool":
        return rng.random(shape) < 0.5
    if dtype in ("float32", "float16"):
        return rng.standard_normal(shape).astype(dtype)
    info = np.iinfo(dtype)
    return rng.integers(max(info.min, -2**40), min(info.max, 2**40), size=shape, endpoint=True).astype(dtype)


# -- building and running one-node artifacts ----------------------------------------------

def const_rec(name, a):
    """A CONST record that keeps rank 0 (TensorRec.const goes through np.ascontiguousarray,
    which turns a scalar into shape (1,); dsedge/export/dse.py works around it the same way)."""
    a = np.asarray(a)
    dt = "bool" if a.dtype == np.bool_ else a.dtype.name
    return TensorRec(name, dt, a.shape, CONST, 0, a.astype(a.dtype.newbyteorder("<")).tobytes())


class Case:
    """One node: inputs are (array, is_const) or None; outputs are the reference's arrays."""

    def __init__(self, op, inputs, attrs=None, *, dse_attrs=None, outputs=None, quant=None, alias=None):
        self.op, self.inputs = op, inputs
        self.attrs = dict(attrs or {})
        self.dse_attrs = {**self.attrs, **(dse_attrs or {})}
        if outputs is None:
            outputs = REGISTRY.get(op).call([None if i is None else i[0] for i in inputs], self.attrs)
        self.outputs = [np.array(o, order="C") for o in outputs]
        self.quant, self.alias = quant, alias or {}

    def artifact(self, all_const=False) -> Artifact:
        tensors, ins, graph_in, pos = [], [], [], 0

        def arena(name, arr, q=None, at=None):
            nonlocal pos
            off = pos if at is None else at
            if at is None and not arr.nbytes:
                off = 0   # an empty tensor takes no bytes (the loader's arena rule counts only bytes)
            tensors.append(TensorRec.arena(name, "bool" if arr.dtype == np.bool_ else arr.dtype.name, arr.shape, off, quant=q))
            if at is None:
                pos += -(-arr.nbytes // 64) * 64
            return len(tensors) - 1

        for k, i in enumerate(self.inputs):
            if i is None:
                ins.append(-1)
            elif i[1] or all_const:
                tensors.append(const_rec(f"c{k}", i[0]))
                ins.append(len(tensors) - 1)
            else:
                ins.append(arena(f"in{k}", i[0], self.quant, self.alias.get(("in", k))))
                graph_in.append(ins[-1])
        outs = [arena(f"out{k}", o, self.quant, self.alias.get(("out", k))) for k, o in enumerate(self.outputs)]
        size = max([t.offset + t.nbytes for t in tensors if t.storage == 1 and t.nbytes] + [1])
        node = NodeRec(op_id(self.op), tuple(ins), tuple(outs), self.dse_attrs, name="n")
        return Artifact(tensors=tuple(tensors), nodes=(node,), inputs=tuple(graph_in), outputs=tuple(outs),
                        arena_size=-(-size // 64) * 64)   # no more than the loader allows

    def graph_inputs(self):
        return [i[0] for i in self.inputs if i is not None and not i[1]]


def load(lib, data: bytes):
    raw = np.zeros(len(data) + 128, np.uint8)
    start = (-raw.ctypes.data) % 64
    raw[start:start + len(data)] = np.frombuffer(data, np.uint8)
    h, err = C.c_void_p(), Error()
    st = lib.dse_model_load_ex(raw.ctypes.data + start, len(data), 1, C.byref(h), C.byref(err))
    return st, h, err, raw


def run_c(lib, case: Case, repeat=1):
    st, h, err, keep = load(lib, case.artifact().to_bytes())
    assert st == OK, err.message.decode()
    s, e = C.c_void_p(), Error()
    try:
        assert lib.dse_session_create(h, None, 0, C.byref(s), C.byref(e)) == OK, e.message
        for _ in range(repeat):
            for i, x in enumerate(case.graph_inputs()):
                x = np.ascontiguousarray(x)
                assert lib.dse_session_set_input(s, i, x.ctypes.data, x.nbytes, C.byref(e)) == OK, e.message
            assert lib.dse_session_run(s, C.byref(e)) == OK, e.message
        outs = []
        for i in range(lib.dse_model_output_count(h)):
            p, n = C.c_void_p(), C.c_size_t()
            assert lib.dse_session_get_output(s, i, C.byref(p), C.byref(n)) == OK
            outs.append(C.string_at(p, n.value) if n.value else b"")
        return outs
    finally:
        lib.dse_session_free(s)
        lib.dse_model_free(h)


def expect_same(lib, case: Case):
    if isinstance(lib, _Collect):
        return
    got = run_c(lib, case)
    assert len(got) == len(case.outputs)
    for k, (g, want) in enumerate(zip(got, case.outputs)):
        assert g == want.tobytes(), f"{case.op} output {k}: C {np.frombuffer(g, want.dtype)[:16]} != numpy {want.reshape(-1)[:16]}"


def expect_refused(lib, case: Case, words: str):
    if isinstance(lib, _Collect):
        return
    st, h, err, keep = load(lib, case.artifact().to_bytes())
    lib.dse_model_free(h)
    assert st == ERR_FORMAT and words in err.message.decode(), (st, err.message)


class _Collect:
    """Stands in for the library: `check` records the case instead of running it, so the
    ASan+UBSan and qemu-aarch64 tests rebuild every case themselves, whatever else runs
    (alone, `-k`, another order, another worker)."""

    def __init__(self):
        self.cases: list[Case] = []


CASE_TESTS = []   # the tests whose `check` calls make up the sanitizer / arm64 corpus


def collected(fn):
    """Register a test whose `check` calls are re-run under ASan+UBSan and qemu-aarch64."""
    CASE_TESTS.append(fn)
    return fn


def all_cases() -> list[Case]:
    """Every case of the registered tests, over each test's whole parametrize grid."""
    rec = _Collect()
    for fn in CASE_TESTS:
        grids = [[{}]]
        for m in getattr(fn, "pytestmark", []):
            if m.name != "parametrize":
                continue
            names = [n.strip() for n in m.args[0].split(",")] if isinstance(m.args[0], str) else list(m.args[0])
            grids.append([dict(zip(names, v if len(names) > 1 else (v,))) for v in m.args[1]])
        for combo in itertools.product(*grids):
            fn(rec, **{k: v for d in combo for k, v in d.items()})
    assert rec.cases, "no case collected"
    return rec.cases


def check(lib, case: Case):
    if isinstance(lib, _Collect):
        lib.cases.append(case)
    else:
        expect_same(lib, case)


def X(a):
    return (a, False)   # a graph input (arena)


def K(a):
    return (np.asarray(a), True)   # a constant


# -- cases --------------------------------------------------------------------------------

@collected
@pytest.mark.parametrize("dtype", DTYPES)
def test_reshape_family(lib, dtype):
    rng = np.random.default_rng(1)
    x = rand((2, 3, 1, 4), dtype, rng)
    check(lib, Case("Identity", [X(x)]))
    check(lib, Case("Reshape", [X(x), K(np.array([4, -1, 3], I64))]))
    check(lib, Case("Reshape", [X(x), K(np.array([0, 0, 4], I64))]))
    check(lib, Case("Flatten", [X(x)], {"axis": 2}))
    check(lib, Case("Flatten", [X(x)], {"axis": 0}))
    check(lib, Case("Squeeze", [X(x), K(np.array([2], I64))]))
    check(lib, Case("Squeeze", [X(x)]))
    check(lib, Case("Unsqueeze", [X(x), K(np.array([0, -1], I64))]))


def test_identity_and_reshape_in_place(lib):
    """The planner may alias output and input: the kernel must leave the bytes alone."""
    x = np.arange(24, dtype=np.float32).reshape(2, 3, 4)
    expect_same(lib, Case("Identity", [X(x)], alias={("out", 0): 0}))
    expect_same(lib, Case("Reshape", [X(x), K(np.array([6, 4], I64))], alias={("out", 0): 0}))
    # partial overlap (output shifted by 64 bytes into the input): refused at load (kernel trait SAME)
    expect_refused(lib, Case("Identity", [X(np.arange(48, dtype=np.float32))], alias={("in", 0): 0, ("out", 0): 64}),
                   "partly overlaps output 0")


@collected
@pytest.mark.parametrize("dtype", DTYPES)
def test_transpose(lib, dtype):
    rng = np.random.default_rng(2)
    for shape in [(5,), (3, 7), (2, 3, 4), (2, 1, 3, 5), (1, 2, 3, 2, 2), (2, 1, 2, 3, 1, 2, 2, 3)]:
        x = rand(shape, dtype, rng)
        perms = {tuple(rng.permutation(len(shape))) for _ in range(4)} | {tuple(range(len(shape)))}
        for perm in sorted(perms):
            check(lib, Case("Transpose", [X(x)], {"perm": tuple(int(p) for p in perm)}))
        check(lib, Case("Transpose", [X(x)]))   # absent perm: reversed axes
    check(lib, Case("Transpose", [X(rand((), dtype, rng))]))
    check(lib, Case("Transpose", [X(rand((3, 0, 2), dtype, rng))], {"perm": (2, 0, 1)}))


@collected
@pytest.mark.parametrize("dtype", DTYPES)
def test_concat(lib, dtype):
    rng = np.random.default_rng(3)
    for axis in (0, 1, 2, -1, -3):
        a, b, c = (rand(s, dtype, rng) for s in ((2, 3, 4), (2, 3, 4), (2, 3, 4)))
        sizes = [1, 3, 2]
        ax = axis % 3
        parts = [rand(tuple(sz if d == ax else (2, 3, 4)[d] for d in range(3)), dtype, rng) for sz in sizes]
        check(lib, Case("Concat", [X(p) for p in parts], {"axis": axis}))
        check(lib, Case("Concat", [X(a), K(b), None, X(c)], {"axis": axis}))
    check(lib, Case("Concat", [X(rand((2, 0), dtype, rng)), X(rand((2, 3), dtype, rng))], {"axis": 1}))


def test_concat_in_place_slices(lib):
    """Inputs the planner wrote straight into their slice of the output are not copied."""
    a = np.arange(16, dtype=np.float32).reshape(1, 16)
    b = -np.arange(32, dtype=np.float32).reshape(2, 16)
    case = Case("Concat", [X(a), X(b)], {"axis": 0}, alias={("in", 0): 0, ("in", 1): 64, ("out", 0): 0})
    expect_same(lib, case)


@collected
def test_concat_int8_byte_form_and_requantising_refused(lib):
    rng = np.random.default_rng(4)
    a, b = rand((2, 3), "int8", rng), rand((2, 5), "int8", rng)
    q = QuantRec((0.05,), (-3,))
    attrs = {"zps_in": (-3, -3), "rescale": (0, 0), "rescale_M": (0, 0), "rescale_shift": (0, 0), "zp_out": -3}
    check(lib, Case("Concat", [X(a), X(b)], {"axis": 1}, dse_attrs=attrs, quant=q))
    bad = {**attrs, "rescale": (0, 1)}
    expect_refused(lib, Case("Concat", [X(a), X(b)], {"axis": 1}, dse_attrs=bad, quant=q), "requantised")


@collected
@pytest.mark.parametrize("dtype", DTYPES)
def test_split(lib, dtype):
    rng = np.random.default_rng(5)
    x = rand((4, 7, 3), dtype, rng)
    check(lib, Case("Split", [X(x), K(np.array([2, 0, 5], I64))], {"axis": 1}))
    check(lib, Case("Split", [X(x)], {"axis": -2, "num_outputs": 3}))   # 3, 3, 1
    check(lib, Case("Split", [X(x)], {"axis": 0, "num_outputs": 2}))
    check(lib, Case("Split", [X(x), K(np.array([3], I64))], {"axis": 2}))
    # no split input, no num_outputs: sizes from the outputs' shapes
    outs = np.split(x, [1, 4], axis=0)
    check(lib, Case("Split", [X(x)], {"axis": 0}, outputs=outs))


SLICES = [  # starts, ends, axes, steps
    ([1], [3], None, None),
    ([0, 1], [2, 5], [0, 2], None),
    ([-1], [-10**18], [1], [-1]),
    ([10], [-100], [2], [-2]),
    ([2**63 - 1], [-2**63], [-1], [-3]),
    ([-2**63], [2**63 - 1], [0], [2]),
    ([1, 0, 4], [2**63 - 1, 7, 0], [0, 1, 2], [5, 3, -1]),
    ([0], [5], [2], [2**63 - 1]),
    ([5], [0], [2], [-2**63]),
    ([3], [1], [1], [1]),          # empty
    ([0, 0], [1, 1], [-1, -3], [1, 1]),
]


@collected
@pytest.mark.parametrize("dtype", DTYPES)
def test_slice(lib, dtype):
    rng = np.random.default_rng(6)
    x = rand((3, 6, 5), dtype, rng)
    for starts, ends, axes, steps in SLICES:
        for pdt in (I64, np.int32):
            if pdt is np.int32 and any(abs(v) >= 2**31 for v in starts + ends + (steps or [])):
                continue
            ins = [X(x), K(np.array(starts, pdt)), K(np.array(ends, pdt))]
            ins.append(None if axes is None else K(np.array(axes, pdt)))
            ins.append(None if steps is None else K(np.array(steps, pdt)))
            if steps is None:
                ins = ins[:4] if axes is not None else ins[:3]
            check(lib, Case("Slice", ins))


@collected
@pytest.mark.parametrize("dtype", DTYPES)
def test_gather(lib, dtype):
    rng = np.random.default_rng(7)
    x = rand((4, 5, 3), dtype, rng)
    for axis in (0, 1, 2, -1):
        dim = x.shape[axis]
        for idx_dtype in (I64, np.int32):
            idx = rng.integers(-dim, dim, size=(2, 3)).astype(idx_dtype)
            check(lib, Case("Gather", [X(x), X(idx)], {"axis": axis}))
            check(lib, Case("Gather", [X(x), K(idx)], {"axis": axis}))
        check(lib, Case("Gather", [X(x), X(np.array(-1, I64))], {"axis": axis}))   # scalar index: rank drops
    check(lib, Case("Gather", [X(x), X(np.zeros((0,), I64))], {"axis": 1}))


def gather_oob_expected(x, idx, axis, fill):
    dim = x.shape[axis]
    ok = (idx >= -dim) & (idx < dim)
    y = np.take(x, np.where(ok, idx, 0).astype(I64), axis=axis)
    mask = ok.reshape((1,) * axis + ok.shape + (1,) * (x.ndim - axis - 1))
    return np.where(mask, y, np.asarray(fill).astype(x.dtype))


@collected
@pytest.mark.parametrize("dtype", DTYPES)
def test_gather_out_of_range_indices_fill_zero(lib, dtype):
    rng = np.random.default_rng(8)
    x = rand((4, 5, 3), dtype, rng)
    bad = np.array([[0, 5, -6, 2**62], [-2**63, 2**63 - 1, -5, 4]], I64)
    for axis in (0, 1, 2):
        idx = np.clip(bad, -2**31, 2**31 - 1).astype(np.int32) if axis == 2 else bad
        want = gather_oob_expected(x, idx, axis, 0)
        for const in (False, True):
            case = Case("Gather", [(x, False), (idx, const)], {"axis": axis}, outputs=[want])
            check(lib, case)
    e = rand((3, 2), dtype, rng)   # GatherElements
    gi = np.array([[0, 9], [-4, 2], [-3, -1]], I64)
    ok = (gi >= -3) & (gi < 3)
    want = np.where(ok, REGISTRY.get("GatherElements").call([e, np.where(ok, gi, 0)], {"axis": 0})[0],
                    np.zeros((), e.dtype))
    check(lib, Case("GatherElements", [X(e), X(gi)], {"axis": 0}, outputs=[want]))


@collected
def test_gather_out_of_range_int8_fills_zero_point(lib):
    x = np.arange(-10, 10, dtype=np.int8).reshape(4, 5)
    idx = np.array([1, 7, -1, -9], I64)
    want = gather_oob_expected(x, idx, 0, -7)
    check(lib, Case("Gather", [X(x), X(idx)], {"axis": 0}, outputs=[want], quant=QuantRec((0.1,), (-7,))))


@collected
@pytest.mark.parametrize("dtype", DTYPES)
def test_gather_elements(lib, dtype):
    rng = np.random.default_rng(9)
    x = rand((3, 4, 5), dtype, rng)
    for axis in (0, 1, 2, -2):
        shape = [2, 3, 4]
        shape[axis % 3] = 6
        idx = rng.integers(-x.shape[axis], x.shape[axis], size=shape)
        check(lib, Case("GatherElements", [X(x), X(idx.astype(I64))], {"axis": axis}))
        check(lib, Case("GatherElements", [X(x), K(idx.astype(np.int32))], {"axis": axis}))


@collected
@pytest.mark.parametrize("dtype", DTYPES)
def test_tile_and_expand(lib, dtype):
    rng = np.random.default_rng(10)
    x = rand((2, 1, 3), dtype, rng)
    for reps in ([1, 1, 1], [2, 3, 1], [1, 2, 4], [3, 1, 2], [2, 0, 1]):
        check(lib, Case("Tile", [X(x), K(np.array(reps, I64))]))
    check(lib, Case("Tile", [X(rand((5,), dtype, rng)), K(np.array([3], I64))]))
    for shape in ([2, 4, 3], [3, 1, 2, 1, 1], [1], [4, 2, 5, 3], [2, 0, 3], [1, 1, 3]):
        check(lib, Case("Expand", [X(x), K(np.array(shape, I64))]))
    check(lib, Case("Expand", [X(rand((3, 1), dtype, rng)), K(np.array([2, 1, 4], I64))]))


PADS = [  # pads, axes
    ([1, 2, 0, 3], None),
    ([0, 0, 0, 0], None),
    ([-1, 1, 2, -2], None),
    ([7, 5], [1]),
    ([2, 9], [-1]),
    ([3, 0, 0, 4], [0, 1]),
]


@collected
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("mode", ["constant", "reflect", "edge", "wrap"])
def test_pad(lib, dtype, mode):
    rng = np.random.default_rng(11)
    x = rand((3, 4), dtype, rng)
    for pads, axes in PADS:
        ins = [X(x), K(np.array(pads, I64))]
        if mode == "constant":
            ins.append(K(rand((), dtype, rng)))
        elif axes is not None:
            ins.append(None)
        if axes is not None:
            ins.append(K(np.array(axes, I64)))
        check(lib, Case("Pad", ins, {"mode": mode}))
    x3 = rand((2, 3, 1), dtype, rng)
    check(lib, Case("Pad", [X(x3), K(np.array([1, 0, 2, 0, 2, 3], I64))], {"mode": mode}))
    if mode == "constant":   # no constant_value: zero
        check(lib, Case("Pad", [X(x), K(np.array([1, 1, 1, 1], I64))], {"mode": mode}))


@collected
def test_pad_int8_pad_value_attribute(lib):
    """int8 form (docs/kernels.md): no constant_value input, INT pad_value = the zero point."""
    x = np.arange(-6, 6, dtype=np.int8).reshape(3, 4)
    want = np.pad(x, [(1, 2), (0, 3)], constant_values=np.int8(-17))
    case = Case("Pad", [X(x), K(np.array([1, 0, 2, 3], I64))], {"mode": "constant"}, dse_attrs={"pad_value": -17},
                outputs=[want], quant=QuantRec((0.02,), (-17,)))
    check(lib, case)


@collected
@pytest.mark.parametrize("dtype", DTYPES)
def test_depth_space(lib, dtype):
    rng = np.random.default_rng(12)
    x = rand((2, 12, 2, 3), dtype, rng)
    for bs in (1, 2):
        for mode in ("DCR", "CRD"):
            check(lib, Case("DepthToSpace", [X(x)], {"blocksize": bs, "mode": mode}))
    check(lib, Case("SpaceToDepth", [X(rand((2, 3, 4, 6), dtype, rng))], {"blocksize": 2}))
    check(lib, Case("SpaceToDepth", [X(rand((1, 2, 3, 3), dtype, rng))], {"blocksize": 3}))


CTMS = ["half_pixel", "half_pixel_symmetric", "pytorch_half_pixel", "align_corners", "asymmetric",
        "tf_half_pixel_for_nn", "tf_crop_and_resize"]
NEAREST = ["round_prefer_floor", "round_prefer_ceil", "floor", "ceil"]


def resize_case(x, scales=None, sizes=None, roi=None, **attrs):
    f32 = lambda v: None if v is None else K(np.array(v, np.float32))  # noqa: E731
    ins = [X(x), f32(roi), f32(scales), None if sizes is None else K(np.array(sizes, I64))]
    while ins[-1] is None:
        ins.pop()
    return Case("Resize", ins, {"mode": "nearest", **attrs})


@collected
@pytest.mark.parametrize("dtype", ["int8", "float16", "float32"])
@pytest.mark.parametrize("ctm", CTMS)
def test_resize_nearest_modes(lib, ctm, dtype):
    """int8/float16 run this kernel; float32 runs whichever float32 Resize kernel the table lists first."""
    rng = np.random.default_rng(13)
    x = rand((1, 2, 5, 7), dtype, rng)
    roi = [0, 0, 0.1, -0.2, 1, 1, 0.8, 1.3] if ctm == "tf_crop_and_resize" else None
    for nm in NEAREST:
        kw = {"coordinate_transformation_mode": ctm, "nearest_mode": nm}
        if ctm == "tf_crop_and_resize":
            kw["extrapolation_value"] = -3.0
        for scales in ([1, 1, 2, 3], [1, 1, 0.6, 0.5], [1, 1, 1.5, 0.75], [1, 1, 2.5, 1.0], [1, 1, 0.2, 1 / 7]):
            check(lib, resize_case(x, scales=scales, roi=roi, **kw))
        for sizes in ([1, 2, 9, 4], [1, 2, 1, 1], [1, 2, 5, 13], [1, 2, 3, 7]):
            check(lib, resize_case(x, sizes=sizes, roi=roi, **kw))


@collected
@pytest.mark.parametrize("dtype", DTYPES)
def test_resize_nearest_dtypes_axes_policies(lib, dtype):
    rng = np.random.default_rng(14)
    x = rand((2, 3, 4, 6), dtype, rng)
    check(lib, resize_case(x, scales=[1, 1, 2, 2]))
    check(lib, resize_case(x, scales=[1, 1, 0.5, 0.5], nearest_mode="ceil"))
    check(lib, resize_case(x, sizes=[3, 5], axes=(2, -1), coordinate_transformation_mode="asymmetric"))
    check(lib, resize_case(x, sizes=[7, 7], axes=(2, 3), keep_aspect_ratio_policy="not_larger"))
    check(lib, resize_case(x, sizes=[7, 7], axes=(2, 3), keep_aspect_ratio_policy="not_smaller",
                           coordinate_transformation_mode="align_corners"))
    check(lib, resize_case(x, scales=[1, 1, 1, 1]))        # same shape: a copy
    check(lib, resize_case(x, scales=[1, 1, 1.1, 1.1]))    # same shape, other scale: still a copy (onnxruntime)
    check(lib, resize_case(x, scales=[2, 1, 1, 3], coordinate_transformation_mode="tf_crop_and_resize",
                           roi=[0, 0, 0, -0.5, 1, 1, 1, 1.5]))
    check(lib, resize_case(rand((5,), dtype, rng), scales=[2.6], nearest_mode="round_prefer_ceil"))
    wide = rand((1, 1, 2, 700), dtype, rng)                # last axis longer than the index table
    check(lib, resize_case(wide, scales=[1, 1, 1.5, 1.7]))


@collected
def test_resize_nearest_int8_matches_integer_reference(lib):
    """The int8 form of Resize (dsedge/quant/kinds/moving.py) resamples float32 copies of the bytes and
    casts back: the byte kernel must give the same, extrapolation included."""
    rng = np.random.default_rng(15)
    x = rand((1, 3, 4, 5), "int8", rng)
    for kw in ({"coordinate_transformation_mode": "half_pixel"},
               {"coordinate_transformation_mode": "tf_crop_and_resize", "extrapolation_value": -5.7}):
        roi = [0, 0, -0.25, 0.1, 1, 1, 1.2, 0.9] if "extrapolation_value" in kw else None
        ref = REGISTRY.get("Resize").call([x.astype(np.float32), None if roi is None else np.array(roi, np.float32),
                                           np.array([1, 1, 1.75, 2.2], np.float32)], {"mode": "nearest", **kw})[0]
        want = np.asarray(ref).astype(np.int8)
        case = resize_case(x, scales=[1, 1, 1.75, 2.2], roi=roi, **kw)
        case.outputs = [want]
        case.quant = QuantRec((0.1,), (3,))
        check(lib, case)


@collected
def test_upsample_nearest(lib):
    x = np.arange(2 * 3 * 4, dtype=np.float32).reshape(1, 2, 3, 4)
    for scales in ([1, 1, 2, 2], [1, 1, 0.5, 0.6], [1, 1, 1.5, 3]):
        check(lib, Case("Upsample", [X(x), K(np.array(scales, np.float32))], {"mode": "nearest"}))


def test_refusals(lib):
    """check() refuses nodes whose shapes or parameters do not fit (DSE_ERR_FORMAT at load)."""
    x = np.zeros((2, 3), np.float32)
    y = np.zeros((3, 3), np.float32)
    expect_refused(lib, Case("Transpose", [X(x)], {"perm": (0, 1)}, outputs=[x.T.copy()]), "perm")
    expect_refused(lib, Case("Reshape", [X(x), K(np.array([7], I64))], outputs=[np.zeros(7, np.float32)]), "elements")
    expect_refused(lib, Case("Concat", [X(x), X(x)], {"axis": 0}, outputs=[y]), "add up")
    expect_refused(lib, Case("Slice", [X(x), K(np.array([0], I64)), K(np.array([1], I64))], outputs=[x]), "slice gives")
    expect_refused(lib, Case("Slice", [X(x), K(np.array([0], I64)), K(np.array([1], I64)), K(np.array([0], I64)),
                                       K(np.array([0], I64))], outputs=[x[:1]]), "step 0")
    expect_refused(lib, Case("Gather", [X(x), X(np.zeros(2, np.float32))], outputs=[x]), "int64 or int32")
    expect_refused(lib, Case("Tile", [X(x), K(np.array([2, 1], I64))], outputs=[x]), "repeats")
    expect_refused(lib, Case("Expand", [X(x), K(np.array([4, 3], I64))], outputs=[np.zeros((4, 3), np.float32)]),
                   "broadcast")
    expect_refused(lib, Case("Pad", [X(x), K(np.array([1, 1, 1, 1], I64))], {"mode": "reflect"}, outputs=[x]),
                   "padding gives")
    expect_refused(lib, Case("Pad", [X(x), K(np.array([0, 1, 0, 0], I64))], {"mode": "mirror"},
                             outputs=[np.zeros((2, 4), np.float32)]), "mode")
    expect_refused(lib, Case("Split", [X(x), K(np.array([1, 1], I64))], {"axis": 1},
                             outputs=[x[:, :1].copy(), x[:, 1:2].copy()]), "add up")
    expect_refused(lib, Case("DepthToSpace", [X(np.zeros((1, 3, 2, 2), np.float32))], {"blocksize": 2},
                             outputs=[np.zeros((1, 1, 4, 4), np.float32)]), "blocksize")
    expect_refused(lib, resize_case(np.zeros((1, 1, 2, 2), np.int8), scales=[1, 1, 2, 2], mode="linear"), "nearest")
    big = resize_case(np.zeros((1, 1, 2, 2), np.int8), scales=[1, 1, 2, 2])
    big.outputs = [np.zeros((1, 1, 4, 5), np.int8)]
    expect_refused(lib, big, "resize plan")


def test_repeated_runs_are_stable(lib):
    """Nothing is carried between runs (no hidden state): three runs give the reference."""
    rng = np.random.default_rng(16)
    x = rand((2, 5, 6), "float32", rng)
    case = Case("Pad", [X(x), K(np.array([0, 3, 2, 0, 4, 1], I64))], {"mode": "reflect"})
    assert run_c(lib, case, repeat=3)[0] == case.outputs[0].tobytes()


# -- the same cases, every input constant, under ASan+UBSan and on arm64 (qemu) ---------------

def _combined(tmp_path, cases) -> Path:
    """All cases as one .dse (every input constant, one node per case, every output a graph
    output), so a sanitizer or emulator run is one process."""
    tensors, nodes, outs, pos = [], [], [], 0
    for k, case in enumerate(cases):
        a = case.artifact(all_const=True)
        base = len(tensors)
        for t in a.tensors:
            if t.storage == CONST:
                tensors.append(TensorRec(f"k{k}.{t.name}", t.dtype, t.shape, CONST, 0, t.data))
            else:
                tensors.append(TensorRec.arena(f"k{k}.{t.name}", t.dtype, t.shape, pos + t.offset, quant=t.quant))
        n = a.nodes[0]
        nodes.append(NodeRec(n.op, tuple(-1 if i < 0 else i + base for i in n.inputs), tuple(o + base for o in n.outputs),
                             n.attrs, name=f"case{k}"))
        outs += [o + base for o in a.outputs]
        pos += a.arena_size
    p = tmp_path / "all_cases.dse"
    Artifact(tensors=tuple(tensors), nodes=tuple(nodes), inputs=(), outputs=tuple(outs), arena_size=pos).write(p)
    return p


def _check_runner(cmd_prefix, path, cases, env=None):
    r = subprocess.run(cmd_prefix + ["--run", str(path)], capture_output=True, text=True, timeout=300, env=env)
    assert r.returncode == 0, r.stderr[-3000:]
    lines = r.stdout.splitlines()
    assert lines[-1].startswith("0 "), lines[-1]
    got = [bytes.fromhex(line.split(":", 1)[1].replace(" ", "")) for line in lines[:-1]]
    want = [(case, k, o.tobytes()) for case in cases for k, o in enumerate(case.outputs)]
    assert len(got) == len(want)
    bad = [(case.op, case.attrs, k) for g, (case, k, w) in zip(got, want) if g != w]
    assert not bad, f"{len(bad)} outputs differ, first: {bad[:3]}"


def test_all_cases_under_asan_ubsan(tmp_path):
    cases = all_cases()
    try:
        exe = san_binary(tmp_path / "dse_corpus_asan", [CDIR / "tests" / "corpus_runner.c"])
    except RuntimeError as e:
        if "sanitize" in str(e):
            pytest.skip("the compiler has no ASan/UBSan runtime")
        raise
    env = {**os.environ, "ASAN_OPTIONS": "detect_leaks=1:abort_on_error=1", "UBSAN_OPTIONS": "halt_on_error=1"}
    _check_runner([str(exe)], _combined(tmp_path, cases), cases, env)


def _zig():
    try:
        import ziglang  # noqa: F401
    except ImportError:
        return None
    return [sys.executable, "-m", "ziglang", "cc"]


def test_all_cases_on_arm64_qemu(tmp_path):
    zig, qemu = _zig(), shutil.which("qemu-aarch64")
    if zig is None or qemu is None:
        pytest.skip("needs ziglang and qemu-aarch64")
    cases = all_cases()
    from dsedge.runtime import _build   # the library's sources and flags (runtimes/c/build.mk)
    exe = tmp_path / "dse_corpus_arm64"
    # zig's default cache keeps musl built between runs
    _build.build_binary([*zig, "-target", "aarch64-linux-musl"], exe, csrc=CDIR, arch="arm64",
                        extra_sources=[CDIR / "tests" / "corpus_runner.c"])
    _check_runner([qemu, str(exe)], _combined(tmp_path, cases), cases)
