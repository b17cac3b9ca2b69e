"""End to end: every zoo and dev model, int8 / fp32 / mixed, gives the same bytes everywhere.

For each model (zoo: digits, mobilenet_v2, resnet50, yolo_detector, transformer_encoder at
small sizes; dev: ddddocr common (input1=1x1x64x160), common_det (160x160 instead of the
declared 416x416: YOLOX is fully convolutional), silero_vad (its `If`s on sr folded before
quantising), silero_vad_16k_sequence (16-window blocks)) and each precision — `int8`
(QuantConfig defaults; minmax ranges for the big models, MINMAX), `fp32`, `mixed` (int8 with
one op type kept float, MIXED_KEEP) — the model is quantised on real feeds and written with
`save_dse`; then, on held-out feeds:

 (a) host C (`dsedge.Runtime`) vs the numpy reference of the same file (`load_dse_graph` +
     `interp.run`), every held-out feed:
       * graph outputs: byte-identical when every computing node of the file is int8
         (QuantizeLinear at the inputs and int8-compute/float-out at the end included);
         fp32 models within OUT_TOL; int8 models with float parts within MIXED_OUT_TOL (a
         1-ulp float difference before a QuantizeLinear flips one int8 step now and then);
       * node by node, given identical inputs: a test-only copy of the artifact names every
         arena tensor, lists it as a graph output and gives it its own arena bytes (no
         reuse), so the C runtime returns every intermediate value; each node of the numpy
         graph is then run on the C runtime's own input values. Every int8 node (and every
         DequantizeLinear and float byte mover) must give the C bytes exactly; float nodes
         within NODE_TOL. The copy's graph outputs must equal the real file's (the memory
         plan — aliasing, in-place, concat slices — does not change a value).
 (b) host C vs the arm64 bundle's `bin/dsedge-run` under qemu-aarch64 on 2 feeds:
     byte-identical, every model and precision (one `dsedge export --target arm64` bundle;
     its runtime is model-independent, so every model's file runs on its tool). The arm
     bundles are exported with DSEDGE_REF_FLOAT=1 (reference float kernels: the documented
     way to get the same float bytes on every target) and compared with the host run with
     `kernels="ref"`; their int8 kernels stay optimised (NEON), which must give REF's bytes.
     The same for a static x86_64 `dsedge-run` built by zig cc (clang, musl: a second
     compiler), compared with the host's default (optimised) kernels.
 (c) armv7: `dsedge export --target armv7` builds, and digits (every precision) gives the
     host's bytes under qemu-arm.

`pytest -s` prints the table (model x precision: numpy==C, int8 nodes, float-node error,
plan independence, C==arm64 / x86_64 / armv7, seconds per stage).
"""
from __future__ import annotations

import functools
import os
import shutil
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

import dsedge
import dsedge.zoo as zoo
from dsedge.artifact import ARENA, Artifact, read
from dsedge.converters.onnx.reader import from_model_proto, load_onnx
from dsedge.export import load_dse_graph, save_dse
from dsedge.interp import execute, run
from dsedge.ir import Graph, TensorInfo
from dsedge.passes.control import fold_if, remaining_control_flow
from dsedge.passes.shapes import infer_shapes
from dsedge.passes.simplify import fold_constants
from dsedge.quant.quantize import QuantConfig, quantize_graph
from tests.models import devmodels as dm

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[2]

# -- the models ------------------------------------------------------------------------------

ZOO_KW = {   # small sizes keep the file under a few minutes on 2 cores (qemu included)
    "mobilenet_v2": dict(input_size=64, num_classes=10, width=0.5),
    "resnet50": dict(input_size=32, num_classes=10),
    "yolo_detector": dict(input_size=96, num_classes=3),
    "transformer_encoder": dict(seq=16, dim=64, heads=2, layers=2, vocab=100),
}
DEV = ["ddddocr/common", "ddddocr/common_det", "silero/silero_vad", "silero/silero_vad_16k_sequence"]
MODELS = ["digits", *ZOO_KW, *DEV]
# mixed plan: these op types stay float in an int8 model (the silero sequence model: one Conv,
# by node name; its only other int8-capable ops already stay float)
MIXED_KEEP = {"digits": "Gemm", "mobilenet_v2": "Add", "resnet50": "Add", "yolo_detector": "Concat",
              "transformer_encoder": "Add", "ddddocr/common": "Add", "ddddocr/common_det": "Concat",
              "silero/silero_vad": "Sigmoid", "silero/silero_vad_16k_sequence": "/encoder.1/Conv"}
PRECISIONS = ("int8", "fp32", "mixed")
N_QEMU = 2
# calibration feeds, held-out feeds (all run on the host); fewer for the three slow models
HEAVY = {"resnet50", "ddddocr/common", "ddddocr/common_det"}


def n_feeds(name: str) -> tuple[int, int]:
    return (4, 3) if name in HEAVY else (8, 4)
# the auto (MSE/entropy) range search costs ~10 s per big model; the byte-identity proof
# does not depend on how ranges were chosen, so the larger models calibrate with minmax
MINMAX = {"resnet50", "yolo_detector", "mobilenet_v2", "ddddocr/common", "ddddocr/common_det"}

# Float tolerances, as max |C - numpy| / max |numpy| over a tensor (kernels sum in their own
# documented order, numpy/BLAS in another; exp/tanh/erf are the runtime's own):
NODE_TOL = 1e-4      # one float node given identical inputs
OUT_TOL = 1e-3       # graph outputs of an fp32 model (differences add up through the layers)
# graph outputs of an int8 model with float parts: a float difference of 1 ulp just before a
# QuantizeLinear flips a value by one int8 step now and then, and the flip propagates; every
# int8 node is still checked exactly, node by node (below)
# (measured: up to 0.037 on common_det; a wrong kernel gives errors of order 1)
# A flipped step reaches only the outputs downstream of it (ddddocr-style OCR: a few characters;
# yolo: a few anchors, where exp() of a box logit can turn one step into an error of 0.46 of
# the output's maximum); a wrong kernel reaches most of them. So: at most MIXED_OUT_FRAC of an
# output's values may be off by more than MIXED_OUT_TOL (yolo measured: 1.0 %).
MIXED_OUT_TOL = 0.1
MIXED_OUT_FRAC = 0.02
BYTE_OPS = {"Concat", "Split", "Slice", "Gather", "Reshape", "Transpose", "Squeeze", "Unsqueeze", "Flatten",
            "MaxPool", "Pad", "Resize", "DepthToSpace", "Identity", "QuantizeLinear", "DequantizeLinear",
            "Relu", "Clip"}
EXACT_FLOAT_OPS = {"Concat", "Split", "Slice", "Gather", "Reshape", "Transpose", "Squeeze", "Unsqueeze",
                   "Flatten", "Identity", "Pad", "DequantizeLinear", "Relu", "Clip", "MaxPool"}


def _split(d: dict, n: int, start: int = 0) -> list[dict]:
    return [{k: v[i] for k, v in d.items()} for i in range(start, start + n)]


def _fit_width(x: np.ndarray, w: int) -> np.ndarray:
    """An OCR line [1,1,64,W] cropped or edge-padded to width w (the specialised shape)."""
    if x.shape[-1] >= w:
        return np.ascontiguousarray(x[..., :w])
    return np.pad(x, [(0, 0)] * (x.ndim - 1) + [(0, w - x.shape[-1])], mode="edge")


@functools.lru_cache(maxsize=None)
def load(name: str):
    """(float graph, calibration feeds, held-out feeds, input_shapes or None)."""
    N_CALIB, N_HOST = n_feeds(name)
    if name == "digits":
        g = load_onnx(str(zoo.digits_dir() / "model.onnx"))
        return g, _split(zoo.digits_calib(), N_CALIB), _split(zoo.digits_eval(), N_HOST), None
    if name in ZOO_KW:
        m = zoo.build(name, **ZOO_KW[name])
        return (from_model_proto(m), _split(zoo.random_feeds(m, N_CALIB, 0), N_CALIB),
                _split(zoo.random_feeds(m, N_HOST, 1), N_HOST), None)
    if name not in dm.dev_models():
        pytest.skip(f"dev model {name} is not installed (pip install ddddocr==1.6.1 silero-vad==6.2.3)")
    g = load_onnx(dm.model_path(name))
    if name == "ddddocr/common":
        feeds = [{"input1": _fit_width(f["input1"], 160)} for f in dm.calibration_feeds(name, N_CALIB + N_HOST)]
        return g, feeds[:N_CALIB], feeds[N_CALIB:], {"input1": (1, 1, 64, 160)}
    if name == "ddddocr/common_det":
        # YOLOX is fully convolutional: 160x160 instead of the declared 416x416 (6.8x less work)
        g.info["images"] = TensorInfo(np.dtype(np.float32), (1, 3, 160, 160))
        infer_shapes(g)
        feeds = [{"images": dm.det_preprocess(dm.render_scene(k), size=160)} for k in range(N_CALIB + N_HOST)]
        return g, feeds[:N_CALIB], feeds[N_CALIB:], None
    if name == "silero/silero_vad_16k_sequence":
        feeds = [f for f in dm.calibration_feeds(name, 3 * (N_CALIB + N_HOST)) if f["input"].shape[0] == 16]
        assert len(feeds) >= N_CALIB + N_HOST
        return g, feeds[:N_CALIB], feeds[-N_HOST:], None
    feeds = dm.calibration_feeds(name, N_CALIB + N_HOST)
    fold_sample_rate(g)
    return g, feeds[:N_CALIB], feeds[N_CALIB:], None


def fold_sample_rate(g: Graph) -> None:
    """silero_vad computes inside `If`s on `sr`; the quantiser does not look inside If bodies
    (everything would stay float), so sr = 16000 is folded first, as the export would."""
    g.info["input"] = TensorInfo(np.dtype(np.float32), (1, 576))
    g.info["state"] = TensorInfo(np.dtype(np.float32), (2, 1, 128))
    infer_shapes(g)
    while fold_if(g, {"sr": np.array(16000, np.int64)}) + fold_constants(g):
        infer_shapes(g)
    assert remaining_control_flow(g) == []


def quantise(name: str, precision: str):
    g, calib, _, _ = load(name)
    kw = dict(progress=False, eval_feeds=2, method="minmax" if name in MINMAX else "auto")
    if precision == "mixed":
        cfg = QuantConfig(keep_float=(MIXED_KEEP[name],), **kw)
    elif precision == "fp32":   # ranges are not used: 2 feeds (enough to pin silero's sr)
        cfg, calib = QuantConfig(precision="fp32", **{**kw, "method": "minmax"}), calib[:2]
    else:
        cfg = QuantConfig(precision=precision, **kw)
    return quantize_graph(g, calib, cfg)


# -- the test-only "every tensor is an output" copy ------------------------------------------

def debug_artifact(a: Artifact) -> tuple[Artifact, list[str]]:
    """Every arena tensor named (t<i> when unnamed), a graph output, and in its own bytes."""
    tensors, off = [], 0
    names = []
    used = {t.name for t in a.tensors if t.name}
    for i, t in enumerate(a.tensors):
        if t.storage != ARENA:
            tensors.append(t)
            names.append(t.name)
            continue
        nm = t.name or f"t{i}"
        while not t.name and nm in used:
            nm = "_" + nm
        used.add(nm)
        tensors.append(replace(t, name=nm, offset=off if t.nbytes else 0))   # empty: no bytes (loader's arena rule)
        names.append(nm)
        off += -(-t.nbytes // 64) * 64
    produced = [o for n in a.nodes for o in n.outputs if o >= 0]
    outputs = list(a.outputs) + [o for o in produced if o not in a.outputs]
    d = Artifact(tuple(tensors), a.nodes, a.inputs, tuple(outputs), off + a.scratch_size, off, a.scratch_size,
                 a.metadata, a.weights_crc)
    return d, names


def _node_kind(g: Graph, n) -> str:
    """'int8' (an int8 node: exact), 'exact' (a float node that only moves or rescales bytes), 'float'."""
    out_dt = g.tensor_info(n.outputs[0]).dtype if n.outputs[0] not in g.consts else None
    if "_q" in n.attrs or out_dt == np.int8 or out_dt == np.uint8:
        return "int8"
    if n.op in EXACT_FLOAT_OPS:
        return "exact"
    return "float"


def computing_all_int8(g: Graph) -> bool:
    """True when every node that computes (not a byte mover, not DequantizeLinear) is int8."""
    return all(_node_kind(g, n) == "int8" or n.op in EXACT_FLOAT_OPS for n in g.nodes)


def _scaled_err(ref: np.ndarray, got: np.ndarray) -> np.ndarray:
    """|got - ref| per value, over max |ref| (NaN where both are NaN counts as equal)."""
    ref, got = np.asarray(ref, np.float64), np.asarray(got, np.float64)
    both_nan = np.isnan(ref) & np.isnan(got)
    d = np.where(both_nan, 0.0, np.abs(ref - got))
    return d / max(float(np.max(np.abs(np.where(both_nan, 0, ref)), initial=0.0)), 1e-30)


def _rel_err(ref: np.ndarray, got: np.ndarray) -> float:
    e = _scaled_err(ref, got)
    return float(np.max(e)) if e.size else 0.0


def _frac_over(ref: np.ndarray, got: np.ndarray, tol: float) -> float:
    """Share of the values whose error exceeds tol * max |ref|."""
    e = _scaled_err(ref, got)
    return float(np.mean(~(e <= tol))) if e.size else 0.0


def node_by_node(dbg_bytes: bytes, g: Graph, feeds: list[dict]) -> dict:
    """Run the debug copy on the host C runtime; run each numpy node on C's own inputs.

    Returns the problems found, the worst float-node error and C's values of the graph
    outputs per feed (from the copy: compared with the real file's, they prove the memory
    plan does not change a value)."""
    rt = dsedge.Runtime(dbg_bytes)
    worst = 0.0
    bad: list[str] = []
    counts = {"int8": 0, "exact": 0, "float": 0}
    outputs = []
    for feed in feeds:
        c = rt.run({k: feed[k] for k in g.inputs})
        outputs.append({o: c[o] for o in g.outputs})
        env = {**{k: feed[k] for k in g.inputs}, **c}
        internal: set[str] = set()
        for k, n in enumerate(g.nodes):
            one = Graph(name="one")
            one.nodes = [n]
            one.consts = {i: g.consts[i] for i in n.inputs if i in g.consts}
            one.inputs = [i for i in n.inputs if i and i not in g.consts]
            one.outputs = [o for o in n.outputs if o]
            one.info, one.qparams = g.info, g.qparams
            ref = execute(one, {i: env[i] for i in one.inputs}, outputs=one.outputs)
            kind = _node_kind(g, n)
            counts[kind] += 1
            after_split = any(i in internal for i in one.inputs)
            for o, r in zip(one.outputs, ref):
                r = np.asarray(r)
                if o not in env:   # load_dse_graph's split of a fused node (float program + Q): no C value
                    env[o] = r
                    internal.add(o)
                    continue
                got = env[o]
                if after_split and kind == "int8" and r.shape == got.shape and r.dtype == got.dtype:
                    # the second half of a split node, on numpy's float: one int8 step where a
                    # 1-ulp float difference crosses a rounding boundary, as before any QuantizeLinear
                    md = float(np.max(np.abs(r.astype(np.float64) - got.astype(np.float64)), initial=0.0))
                    if md > 1:
                        bad.append(f"node {k} {n.op} (int8 after a fused float program, {n.name}) output {o}: "
                                   f"max |diff| {md:g} > 1 step")
                    continue
                if r.dtype != got.dtype or r.shape != got.shape:
                    bad.append(f"node {k} {n.op} ({kind}) output {o}: numpy {r.dtype}{list(r.shape)} "
                               f"vs C {got.dtype}{list(got.shape)}")
                elif kind in ("int8", "exact"):
                    if r.tobytes() != got.tobytes():
                        nd = int(np.sum(r != got))
                        md = float(np.max(np.abs(r.astype(np.float64) - got.astype(np.float64))))
                        bad.append(f"node {k} {n.op} ({kind}, {n.name}) output {o}: {nd}/{r.size} "
                                   f"elements differ, max |diff| {md:g}")
                else:
                    e = _rel_err(r, got)
                    worst = max(worst, e)
                    if e > NODE_TOL:
                        bad.append(f"node {k} {n.op} (float, {n.name}) output {o}: error {e:.3g} "
                                   f"(max |diff| / max |numpy|) > {NODE_TOL}")
    rt.close()
    return {"bad": bad, "worst": worst, "counts": counts, "outputs": outputs}


# -- bundles ---------------------------------------------------------------------------------

def _have_cross() -> bool:
    from dsedge.export.bundle import _zig, host_target
    return _zig() is not None and host_target() == "x86_64"


class Bundles:
    """`dsedge export --target arm64|armv7` started in the background at the first use (the
    compiles overlap with quantising), waited for when a tool is needed. x86_64: only the
    static `dsedge-run` (zig cc, clang + musl: a second compiler next to the host's gcc build
    the bindings use), compiled with the bundle's toolchain and flags."""

    def __init__(self, base: Path):
        self.base = base
        self.procs: dict[str, subprocess.Popen] = {}
        self.errors: dict[str, str] = {}

    def start(self, target: str, dse: Path) -> None:
        out = self.base / target
        env = {k: v for k, v in os.environ.items() if k not in ("CC", "AR")}   # zig, as a user gets it
        if target != "x86_64":
            env["DSEDGE_REF_FLOAT"] = "1"   # reference floats: the host's kernels="ref" bytes
        if target == "x86_64":
            from dsedge.export.bundle import _CROSS, _zig
            from dsedge.runtime import _build
            csrc = _build.csrc_dir()
            (out / "bin").mkdir(parents=True)
            m = _build.Manifest(csrc)   # the library's sources and flags (runtimes/c/build.mk)
            cmd = [*_zig(), "cc", "-target", _CROSS[target][0], *m.std, *m.opt, "-g0",
                   *(f"-I{d}" for d in m.include_dirs), *map(str, m.sources()),
                   *map(str, sorted((csrc / "tools").glob("*.c"))), "-static", "-o", str(out / "bin" / "dsedge-run"),
                   *m.libs]
        else:
            cmd = [sys.executable, "-m", "dsedge.cli", "export", str(dse), "--target", target, "-o", str(out),
                   "--json", "--no-progress"]
        self.procs[target] = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT,
                                              env=env)

    def tool(self, target: str) -> Path:
        p = self.procs[target]
        if p.returncode is None:
            _, err = p.communicate()
            if p.returncode != 0:
                self.errors[target] = err[-3000:]
        assert target not in self.errors, f"building the {target} runtime failed:\n{self.errors[target]}"
        return self.base / target / "bin" / "dsedge-run"


QEMU = {"arm64": "qemu-aarch64", "armv7": "qemu-arm", "x86_64": None}


def qemu_run(qemu: str | None, tool: Path, dse: Path, feed: dict, work: Path) -> dict[str, np.ndarray]:
    work.mkdir(parents=True, exist_ok=True)
    args = ([qemu] if qemu else []) + [str(tool), str(dse)]
    for k, v in feed.items():
        np.save(work / f"in_{len(args)}.npy", np.array(v, order="C"))
        args += ["--input", f"{k}={work / f'in_{len(args)}.npy'}"]
    args += ["--output-dir", str(work / "out")]
    r = subprocess.run(args, capture_output=True, text=True)
    assert r.returncode == 0, f"{' '.join(args)}:\n{r.stderr[-2000:]}"
    return {p.relative_to(work / "out").with_suffix("").as_posix(): np.load(p) for p in (work / "out").rglob("*.npy")}


# -- the test --------------------------------------------------------------------------------

TABLE: dict[tuple[str, str], dict] = {}


@pytest.fixture(scope="module")
def workdir():
    d = Path(tempfile.mkdtemp(prefix="dsedge-e2e-"))
    yield d
    shutil.rmtree(d, ignore_errors=True)


@pytest.fixture(scope="module")
def bundles(workdir):
    missing = [] if _have_cross() else ["zig on an x86_64 host (pip install ziglang)"]
    missing += [f"{q} (apt-get install qemu-user)" for q in ("qemu-aarch64", "qemu-arm") if shutil.which(q) is None]
    if missing:   # the host checks still run; the cross part is skipped (reported)
        yield "missing " + ", ".join(missing)
        return
    b = Bundles(workdir / "bundles")
    (workdir / "bundles").mkdir()
    # the bundles carry the digits int8 model; their runtime is model-independent
    r = quantise("digits", "int8")
    seed = workdir / "digits_seed.dse"
    save_dse(r, seed)
    for target in ("arm64", "armv7", "x86_64"):
        b.start(target, seed)
    yield b
    for p in b.procs.values():
        if p.returncode is None:
            p.kill()
            p.communicate()


def _feed_for(g: Graph, feed: dict) -> dict:
    return {k: np.array(feed[k], order="C") for k in g.inputs}


@pytest.mark.parametrize("name", MODELS)
def test_same_bytes_everywhere(name, bundles, workdir):
    _, _, held, shapes = load(name)
    problems: list[str] = []
    for precision in PRECISIONS:
        t0 = time.perf_counter()
        tm: dict[str, float] = {}
        res = quantise(name, precision)
        tm["quant"] = time.perf_counter() - t0
        path = workdir / f"{name.replace('/', '_')}_{precision}.dse"
        save_dse(res, path, input_shapes=shapes)
        art = read(path)
        g = load_dse_graph(path)
        feeds = [_feed_for(g, f) for f in held]
        all_int8 = computing_all_int8(g)
        if precision == "fp32":
            assert not any(_node_kind(g, n) == "int8" for n in g.nodes), f"{name} fp32 has int8 nodes"
        else:
            assert any(_node_kind(g, n) == "int8" and n.op not in BYTE_OPS for n in g.nodes), \
                f"{name} {precision}: no int8 compute node"
        row = {"nodes": len(g.nodes), "int8_nodes": sum(_node_kind(g, n) == "int8" for n in g.nodes),
               "all_int8": all_int8}
        # (a) host C vs numpy, graph outputs
        rt = dsedge.Runtime(path)
        host = []
        out_err = 0.0
        identical = True
        tm["numpy"] = tm["C"] = 0.0
        for f in feeds:
            t = time.perf_counter()
            ref = run(g, f)
            tm["numpy"] += time.perf_counter() - t
            t = time.perf_counter()
            got = rt.run(f)
            tm["C"] += time.perf_counter() - t
            host.append(got)
            for o in g.outputs:
                r, c = np.asarray(ref[o]), got[o]
                assert r.dtype == c.dtype and r.shape == c.shape, (name, precision, o)
                if r.tobytes() != c.tobytes():
                    identical = False
                    out_err = max(out_err, _rel_err(r, c))
                    if all_int8:
                        problems.append(f"{name} {precision}: output {o} differs from numpy in an all-int8 model "
                                        f"(relative error {_rel_err(r, c):.3g})")
                    elif precision == "fp32" and _rel_err(r, c) > OUT_TOL:
                        problems.append(f"{name} {precision}: output {o} error {_rel_err(r, c):.3g} > {OUT_TOL}")
                    elif precision != "fp32" and _frac_over(r, c, MIXED_OUT_TOL) > MIXED_OUT_FRAC:
                        problems.append(f"{name} {precision}: output {o}: {_frac_over(r, c, MIXED_OUT_TOL):.1%} of "
                                        f"the values off by more than {MIXED_OUT_TOL} (max error "
                                        f"{_rel_err(r, c):.3g})")
        rt.close()
        with dsedge.Runtime(path, kernels="ref") as rt_ref:   # what the REF-float arm bundles must give
            host_ref = [rt_ref.run(f) for f in feeds[:N_QEMU]]
        row.update(numpy_eq_c="identical" if identical else f"err {out_err:.2g}")
        # (a') node by node on the C runtime's own values, plus plan independence
        t = time.perf_counter()
        dbg, _ = debug_artifact(art)
        nb = node_by_node(dbg.to_bytes(), g, feeds[:2])
        tm["nodes"] = time.perf_counter() - t
        problems += [f"{name} {precision}: {b}" for b in nb["bad"][:10]]
        plan_ok = all(got[o].tobytes() == h[o].tobytes() for got, h in zip(nb["outputs"], host) for o in g.outputs)
        if not plan_ok:
            problems.append(f"{name} {precision}: outputs depend on the memory plan (aliasing bug?)")
        row.update(int8_nodes_exact=not any("(int8" in b for b in nb["bad"]), float_node_err=nb["worst"],
                   plan_independent=plan_ok, checked=nb["counts"])
        # (b) arm64 under qemu (and the zig-built x86_64 tool natively), 2 feeds; (c) armv7: digits
        t = time.perf_counter()
        for target in ("arm64", "x86_64", "armv7") if isinstance(bundles, Bundles) else ():
            if target == "armv7" and name != "digits":
                continue
            tool, qemu = bundles.tool(target), QEMU[target]
            with ThreadPoolExecutor(2) as ex:
                got = list(ex.map(lambda kf: qemu_run(qemu, tool, path, kf[1],
                                                      workdir / target / f"{path.stem}_{kf[0]}"),
                                  enumerate(feeds[:N_QEMU])))
            ok = True
            for h, c in zip(host if target == "x86_64" else host_ref, got):
                for o in g.outputs:
                    if o not in c or c[o].tobytes() != h[o].tobytes():
                        ok = False
                        problems.append(f"{name} {precision}: {target} output {o} differs from the host"
                                        + ("" if target == "x86_64" else " (reference kernels)"))
            row[f"c_eq_{target}"] = ok
        tm["cross"] = time.perf_counter() - t
        row["seconds"] = round(time.perf_counter() - t0, 1)
        row["times"] = " ".join(f"{k}={v:.1f}" for k, v in tm.items())
        TABLE[(name, precision)] = row
    assert not problems, "\n".join(problems)
    if not isinstance(bundles, Bundles):
        pytest.skip(f"host checks passed; cross targets not checked: {bundles}")


def test_node_check_sees_one_int8_step(workdir):
    """The node-by-node oracle is sensitive: one int8 node whose numpy parameters are off by
    one zero-point step (C unchanged) is reported, and only that node."""
    path = workdir / "digits_tamper.dse"
    save_dse(quantise("digits", "int8"), path)
    g = load_dse_graph(path)
    feeds = [_feed_for(g, f) for f in load("digits")[2][:1]]
    dbg = debug_artifact(read(path))[0].to_bytes()
    assert node_by_node(dbg, g, feeds)["bad"] == []
    conv = next(n for n in g.nodes if n.op == "Conv" and "_q" in n.attrs)
    conv.attrs["_q"] = {**conv.attrs["_q"], "zp_out": conv.attrs["_q"]["zp_out"] + 1}
    bad = node_by_node(dbg, g, feeds)["bad"]
    assert len(bad) == 1 and f"Conv (int8, {conv.name})" in bad[0], bad


def format_table() -> str:
    """The rows of the tests that ran, as a table (printed at the end of the run by
    tests/models/conftest.py; empty when none ran)."""
    if not TABLE:
        return ""
    yn = {True: "yes", False: "NO", None: "-"}
    lines = [f"{'model':31} {'prec':5} {'nodes':>5} {'int8':>4} {'all-int8':8} {'numpy==C outputs':17} "
             f"{'int8 nodes':10} {'float node':10} {'plan':4} {'C==arm64':8} {'C==x86_64':9} {'C==armv7':8} "
             f"{'s':>5}"]
    for (m, p), r in TABLE.items():
        lines.append(f"{m:31} {p:5} {r['nodes']:>5} {r['int8_nodes']:>4} {yn[r['all_int8']]:8} {r['numpy_eq_c']:17} "
                     f"{'exact' if r['int8_nodes_exact'] else 'DIFF':10} {r['float_node_err']:<10.2g} "
                     f"{yn[r['plan_independent']]:4} {yn[r.get('c_eq_arm64')]:8} {yn[r.get('c_eq_x86_64')]:9} "
                     f"{yn[r.get('c_eq_armv7')]:8} {r['seconds']:>5}  {r['times']}")
    return "\n".join(lines)
