"""The AVX2 float32 LSTM/GRU variants (runtimes/c/kernels/avx2/rnn.c) against the REF kernels of
the same library (DSE_LOAD_REF_KERNELS) and onnxruntime.

Tolerance (the file's header, docs/kernels.md "Optimised float variants"): 2e-5 of the output's
largest magnitude, against REF and against onnxruntime (layout 0; onnxruntime's CPU kernels
refuse layout 1), as REF itself against the numpy reference (test_kernels_f32_nn.py). The shapes
hit every tail: hidden and input sizes not multiples of 8, batch > 1, both directions,
sequence_lens with shorter (and empty) rows, initial states, peepholes, clip, input_forget,
linear_before_reset, layout 1, several input-projection chunks; the variant's bytes are the same
for 1, 2 and 3 threads (check_variant), also where one direction is split over threads. An
artifact planned with REF's scratch only (3*B*H floats: written before this variant) runs REF.
"""
from __future__ import annotations

import numpy as np
import pytest

from dsedge.export.scratch import rnn_f32_plan

from .test_kernels_f32_avx2 import AVX2, REF_KERNELS, check_variant, lib, lib_ref_float, run  # noqa: F401 (fixtures)
from .test_kernels_f32_nn import _scratch_from_exporter, make_node, ort, ref, rnd

TOL = 2e-5

# direction, T, B, I, H, bias, seq_lens, initial states, peephole (LSTM), layout, clip, extra
# (extra: input_forget for LSTM, linear_before_reset for GRU)
CASES = [
    ("forward", 5, 1, 3, 4, True, None, False, False, 0, None, 0),
    ("reverse", 4, 3, 5, 3, True, [4, 2, 3], True, False, 0, None, 0),
    ("bidirectional", 6, 2, 4, 5, True, [6, 3], True, True, 0, None, 0),
    ("bidirectional", 3, 2, 3, 2, False, None, False, False, 1, 0.8, 1),
    ("forward", 7, 1, 2, 6, True, None, True, True, 0, 1.5, 1),
    ("bidirectional", 9, 3, 37, 21, True, [9, 0, 5], True, True, 0, None, 0),     # tails of 8, an empty row
    ("reverse", 8, 2, 16, 24, False, [3, 8], True, False, 1, 2.0, 0),              # layout 1, clip
    ("bidirectional", 12, 4, 11, 13, True, [12, 7, 1, 10], True, True, 1, None, 1),
    ("forward", 40, 4, 60, 100, True, [40, 33, 17, 40], True, False, 0, None, 0),  # 2 chunks (Tc 35 LSTM, 45 GRU)
    ("forward", 6, 4, 64, 256, True, None, True, False, 0, None, 0),               # steps over threads
    ("bidirectional", 5, 2, 33, 200, True, [5, 3], True, True, 1, None, 0),        # steps over threads, 2 directions
]


def _inputs(rng, op, case):
    dirn, T, B, I, H, bias, lens, init, peep, layout, clip, extra = case
    G = 4 if op == "LSTM" else 3
    D = 2 if dirn == "bidirectional" else 1
    x = rnd(rng, *((B, T, I) if layout else (T, B, I)))
    sw = 1.5 / np.sqrt(I + H)
    w, r = rnd(rng, D, G * H, I, scale=sw), rnd(rng, D, G * H, H, scale=sw)
    b = rnd(rng, D, 2 * G * H, scale=0.3) if bias else None
    sl = np.array(lens, np.int32) if lens is not None else None
    st = (B, D, H) if layout else (D, B, H)
    h0 = rnd(rng, *st) if init else None
    ins = [x, w, r, b, sl, h0]
    if op == "LSTM":
        ins += [rnd(rng, *st) if init else None, rnd(rng, D, 3 * H, scale=0.5) if peep else None]
    attrs = dict(direction=dirn, hidden_size=H, layout=layout)
    if clip is not None:
        attrs["clip"] = clip
    attrs["input_forget" if op == "LSTM" else "linear_before_reset"] = extra
    while ins and ins[-1] is None:
        ins.pop()
    return ins, attrs


def _close(c, r, tol=TOL):
    r = np.asarray(r, np.float32)
    assert c.shape == r.shape, (c.shape, r.shape)
    scale = float(np.abs(r).max()) if r.size else 0.0
    np.testing.assert_allclose(c, r, rtol=tol, atol=tol * max(scale, 1e-30))


def _node(op, ins, attrs, scratch=None, outs=None):
    r = ref(op, *ins, **attrs)
    need = _scratch_from_exporter(op, ins, attrs) if scratch is None else scratch
    cins = [None if a is None else (a, k != 0) for k, a in enumerate(ins)]
    art, feeds = make_node(op, cins, outs or [("float32", a.shape) for a in r], attrs, scratch=need)
    return art, feeds, r


@pytest.mark.parametrize("op", ["LSTM", "GRU"])
@pytest.mark.parametrize("case", range(len(CASES)))
def test_rnn(lib, op, case):
    rng = np.random.default_rng(case + (0 if op == "LSTM" else 50))
    ins, attrs = _inputs(rng, op, CASES[case])
    art, feeds, r = _node(op, ins, attrs)
    o, _ = check_variant(lib, art, feeds, f"dse_f32_{op.lower()}__avx2", tol=lambda a, b: _close(b, a))
    outs, _ = run(lib, art, feeds)
    for c, rr in zip(outs, r):
        _close(c, rr)
    if not attrs["layout"]:   # onnxruntime's CPU LSTM/GRU refuse layout=1
        # (an empty sequence: onnxruntime gives Y_h = Y_c = 0, REF and the numpy reference the
        # initial state; only Y is compared then)
        empty = len(ins) > 4 and ins[4] is not None and (ins[4] == 0).any()
        for c, oo in list(zip(outs, ort(op, ins, attrs, n_out=len(r))))[:1 if empty else None]:
            _close(c, oo)


def test_scratch_formula_matches_the_kernel():
    """The exporter's plan (dsedge/export/scratch.py) is the C formula (internal.h dse__rnn_f32_plan):
    spot values, and the chunk of CASES[8] is smaller than T."""
    assert rnn_f32_plan(20, 1, 512, 512, 4) == 4 * (3 * 512 + 2 * 2048 + 20 * (2048 + 512))   # ddddocr's LSTM: one chunk
    per = 4 * (400 + 60)
    assert rnn_f32_plan(40, 4, 60, 100, 4) == 4 * (3 * 400 + 2 * 4 * 400 + (65536 // per) * 4 * 460)
    assert rnn_f32_plan(3, 100, 4000, 500, 4) == 4 * (3 * 100 * 500 + 2 * 100 * 2000 + 1 * 100 * 6000)   # chunk >= 1


@pytest.mark.parametrize("op", ["LSTM", "GRU"])
def test_optional_outputs(lib, op):
    """Y absent (only Y_h, or Y_h and Y_c) and Y alone: the same bytes as with every output."""
    rng = np.random.default_rng(7)
    ins, attrs = _inputs(rng, op, CASES[7])
    art, feeds, r = _node(op, ins, attrs)
    full, ks = run(lib, art, feeds)
    if AVX2:
        assert ks == [f"dse_f32_{op.lower()}__avx2"]
    shapes = [("float32", a.shape) for a in r]
    for keep in ([1], [0], [1, 2] if op == "LSTM" else [0, 1]):
        art2, feeds2, _ = _node(op, ins, attrs, outs=[shapes[k] if k in keep else None for k in range(len(shapes))])
        part, _ = run(lib, art2, feeds2)
        for k, p in zip(keep, part):
            assert p.tobytes() == full[k].tobytes(), keep


@pytest.mark.parametrize("op", ["LSTM", "GRU"])
def test_old_plan_and_fp16_weights_run_ref(lib, op):
    """An artifact planned with REF's scratch only (3*B*H floats) and one with float16 weights
    run REF: the same bytes as REF."""
    rng = np.random.default_rng(3)
    ins, attrs = _inputs(rng, op, CASES[2])
    B, H = ins[0].shape[1], attrs["hidden_size"]
    art, feeds, _ = _node(op, ins, attrs, scratch=3 * B * H * 4)
    o, ks = run(lib, art, feeds)
    assert ks == [f"dse_f32_{op.lower()}__ref"]
    r, _ = run(lib, art, feeds, flags=REF_KERNELS)
    assert all(a.tobytes() == b.tobytes() for a, b in zip(o, r))
    ins16 = list(ins)
    ins16[1] = ins[1].astype(np.float16)
    art, feeds, _ = _node(op, ins16, attrs)
    _, ks = run(lib, art, feeds)
    assert ks == [f"dse_f32_{op.lower()}__ref"]


def test_ref_float_build_runs_ref(lib, lib_ref_float):
    """make REF_FLOAT=1: REF takes the LSTM and GRU, with the default build's REF bytes."""
    for op in ("LSTM", "GRU"):
        ins, attrs = _inputs(np.random.default_rng(5), op, CASES[2])
        art, feeds, _ = _node(op, ins, attrs)
        o, ks = run(lib_ref_float, art, feeds)
        assert ks == [f"dse_f32_{op.lower()}__ref"], ks
        r, _ = run(lib, art, feeds, flags=REF_KERNELS)
        assert all(a.tobytes() == b.tobytes() for a, b in zip(o, r))
