"""dsedge.runtime: run a `.dse` model with the C runtime, from Python.

    import dsedge
    rt = dsedge.Runtime("model.dse")            # or Runtime(open(...).read()); threads=N, sessions=S
    rt.inputs[0].name, rt.inputs[0].shape, rt.inputs[0].dtype, rt.inputs[0].qparams
    rt.metadata["source.character_list"]        # the model's metadata as a dict
    out = rt.run({"image": x})                  # {output name: new numpy array}
    out = rt.run_file("digit.png")              # an image or WAV file (or PIL image / audio array)
    feeds = rt.preprocess("speech.wav")         # ... through the preprocessing stored in the artifact
    rt.kernels()                                # the kernel chosen for each node, e.g. "dse_i8_conv__avx2"
    prof = rt.profile({"image": x}, repeat=20)  # per-node median times; print(prof.table())
    Runtime("model.dse", kernels="ref")         # only the reference kernels (to compare with the optimised ones)

These bindings call the same public C ABI an application embeds (`include/dsedge.h`: load,
session, set_input, run, get_output) through `ctypes`, so what the Python tests exercise is
what ships. The library is the C runtime compiled by `pip install` into this package
(`_libdsedge*.so`, built by setup.py from the C sources that ship as `csrc/`); in a source
checkout whose C sources changed since that build, a current copy is compiled once into
`~/.cache/dsedge/` (named by a hash of the sources). `DSEDGE_LIBRARY=/path/libdsedge.so`
overrides both. A copy of this file is also the `python/` folder of an export bundle, where it
loads the bundle's `lib/libdsedge.so` and needs nothing but numpy.

Threads and the GIL: `threads=N` runs each inference on N threads (the C session option
`threads`: the calling thread and N - 1 workers the session starts once; the outputs are the
same bytes for every N). ctypes releases the GIL for the duration of every foreign call, so
while one thread is inside `dse_session_run` other Python threads keep running. A `Runtime`
holds `sessions` sessions (one arena and one set of threads each); `run()` takes a free
session (waiting, GIL released, if all are busy), so up to `sessions` calls run in parallel
from different threads on one shared, immutable model.

Closing: `close()` (also `with Runtime(...)`, and garbage collection) frees the sessions and the
model, so it first marks the Runtime closed and then waits, GIL released, until every `run()`
already in progress (also one waiting for a free session) has returned; a `run()` that starts
after that raises DseError("... closed"). The native handles are never freed under a running
call (that was a use-after-free: a segfault).

Copies: an input array that is C-contiguous with the model's dtype and shape is handed to the
C runtime as is (its pointer; the runtime copies it into the arena, DESIGN.md §5); others are
refused with a DseError naming the input and what was expected (non-contiguous arrays are made
contiguous first). Outputs are new arrays, never views into the arena, so they stay valid after
the next run.
"""
from __future__ import annotations

import ctypes as C
import os
import queue
import sys
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

import numpy as np

try:  # inside the dsedge package
    from ..errors import DseError, ModelError
    _IN_PACKAGE = True
except ImportError:  # a standalone copy (export bundle)
    _IN_PACKAGE = False

    class DseError(Exception):
        """An error the user can act on; the message names the input, file or node."""

    class ModelError(DseError):
        """The .dse file cannot be loaded."""

__all__ = ["Runtime", "TensorSpec", "QuantParams", "DseError", "library_path", "version", "run_feeds", "NodeProfile",
           "Profile"]

# Dtype ids of docs/format.md §5 -> numpy dtypes (int4/uint4 stay packed bytes).
_NP_DTYPES = {1: "<f4", 2: "<f2", 3: "<f8", 4: "i1", 5: "u1", 6: "<i2", 7: "<u2", 8: "<i4", 9: "<u4",
              10: "<i8", 11: "<u8", 12: "?", 13: None, 14: None}
_DTYPE_NAMES = {1: "float32", 2: "float16", 3: "float64", 4: "int8", 5: "uint8", 6: "int16", 7: "uint16",
                8: "int32", 9: "uint32", 10: "int64", 11: "uint64", 12: "bool", 13: "int4", 14: "uint4"}
_META_STRING, _META_INT64, _META_FLOAT64, _META_BYTES, _META_STRINGS = 1, 2, 3, 4, 5
_Q_NONE, _Q_TENSOR, _Q_AXIS = 0, 1, 2
_LOAD_VERIFY_WEIGHTS = 1
_LOAD_REF_KERNELS = 2
_LOAD_NO_AMX = 4
_LOAD_NO_AVX512 = 8
_KERNEL_CHOICES = {"auto": 0, "ref": _LOAD_REF_KERNELS, "no-amx": _LOAD_NO_AMX, "no-avx512": _LOAD_NO_AVX512}
_MAX_THREADS = 256   # DSE_MAX_THREADS (include/dsedge.h)


class _Error(C.Structure):
    _fields_ = [("code", C.c_int), ("message", C.c_char * 256)]


class _TensorInfo(C.Structure):
    _fields_ = [("name", C.c_char_p), ("dtype", C.c_int), ("rank", C.c_size_t), ("dims", C.c_size_t * 8),
                ("nbytes", C.c_size_t), ("quant", C.c_int), ("axis", C.c_int), ("group_size", C.c_size_t),
                ("quant_count", C.c_size_t), ("scales", C.POINTER(C.c_float)),
                ("zero_points", C.POINTER(C.c_int32))]


class _SessionOptions(C.Structure):
    _fields_ = [("struct_size", C.c_size_t), ("threads", C.c_uint)]


class _Meta(C.Structure):
    _fields_ = [("key", C.c_char_p), ("type", C.c_int), ("str", C.c_char_p), ("i64", C.c_int64),
                ("f64", C.c_double), ("bytes", C.c_void_p), ("size", C.c_size_t),
                ("strings", C.POINTER(C.c_char_p)), ("count", C.c_size_t)]


@dataclass(frozen=True)
class QuantParams:
    """real = scale * (q - zero_point). axis None: per tensor (one scale); else per axis."""

    scales: tuple[float, ...]
    zero_points: tuple[int, ...]
    axis: int | None = None
    group_size: int = 0

    @property
    def scale(self) -> float:
        return self.scales[0]

    @property
    def zero_point(self) -> int:
        return self.zero_points[0]


@dataclass(frozen=True)
class TensorSpec:
    """A graph input or output: name, static shape, numpy dtype, quantisation (or None)."""

    name: str
    shape: tuple[int, ...]
    dtype: np.dtype
    qparams: QuantParams | None
    nbytes: int
    dtype_name: str


# -- the library --------------------------------------------------------------------------

_LIB = None
_LIB_PATH: str | None = None
_LIB_LOCK = threading.Lock()


def _ext_suffixes() -> list[str]:
    import importlib.machinery
    return list(importlib.machinery.EXTENSION_SUFFIXES)


def _candidates_standalone() -> list[Path]:
    here = Path(__file__).resolve().parent
    name = "libdsedge.dylib" if sys.platform == "darwin" else "libdsedge.so"
    return [here / name, here.parent / "lib" / name, here.parent.parent / "lib" / name]


def _open(path: str):
    return C.CDLL(path)   # CDLL (not PyDLL): every call releases the GIL


def _find_and_open():
    env = os.environ.get("DSEDGE_LIBRARY")
    if env:
        return env, _open(env)
    if not _IN_PACKAGE:
        for p in _candidates_standalone():
            if p.is_file():
                return str(p), _open(str(p))
        raise DseError("libdsedge.so not found next to the dsedge runtime bindings "
                       f"(looked in {', '.join(map(str, _candidates_standalone()))}); set DSEDGE_LIBRARY")
    from . import _build
    here = Path(__file__).resolve().parent
    want = None
    try:
        want = _build.source_hash()
    except (OSError, FileNotFoundError):
        pass
    for suffix in _ext_suffixes():
        p = here / f"_libdsedge{suffix}"
        if p.is_file():
            lib = _open(str(p))
            try:
                f = lib.dsedge_py_source_hash
                f.restype = C.c_char_p
                have = f().decode()
            except AttributeError:
                have = None
            if want is None or have == want:
                return str(p), lib
    if want is None:
        raise DseError("the dsedge C runtime is not built and its sources are missing; reinstall dsedge")
    import platform
    out = _build.cache_dir() / f"libdsedge-{want}-{sys.platform}-{platform.machine()}.so"
    if not out.is_file():
        try:
            _build.build_shared(out)
        except RuntimeError as e:
            raise DseError(str(e)) from None
    return str(out), _open(str(out))


def _lib():
    global _LIB, _LIB_PATH
    if _LIB is not None:
        return _LIB
    with _LIB_LOCK:
        if _LIB is None:
            path, L = _find_and_open()
            _declare(L)
            _LIB_PATH, _LIB = path, L
    return _LIB


def _declare(L) -> None:
    P, S = C.c_void_p, C.c_size_t
    E = C.POINTER(_Error)
    sig = {
        "dse_version": ([], C.c_char_p),
        "dse_status_string": ([C.c_int], C.c_char_p),
        "dse_model_load": ([P, S, C.POINTER(P), E], C.c_int),
        "dse_model_load_ex": ([P, S, C.c_uint, C.POINTER(P), E], C.c_int),
        "dse_model_load_file": ([C.c_char_p, C.c_uint, C.POINTER(P), E], C.c_int),
        "dse_model_free": ([P], None),
        "dse_model_input_count": ([P], S),
        "dse_model_output_count": ([P], S),
        "dse_model_input": ([P, S, C.POINTER(_TensorInfo)], C.c_int),
        "dse_model_output": ([P, S, C.POINTER(_TensorInfo)], C.c_int),
        "dse_model_node_count": ([P], S),
        "dse_model_metadata_count": ([P], S),
        "dse_model_metadata_at": ([P, S, C.POINTER(_Meta)], C.c_int),
        "dse_arena_size": ([P], S),
        "dse_session_create": ([P, P, S, C.POINTER(P), E], C.c_int),
        "dse_session_create_ex": ([P, P, S, C.POINTER(_SessionOptions), C.POINTER(P), E], C.c_int),
        "dse_session_threads": ([P], C.c_uint),
        "dse_session_free": ([P], None),
        "dse_session_set_input": ([P, S, P, S, E], C.c_int),
        "dse_session_run": ([P, E], C.c_int),
        "dse_session_get_output": ([P, S, C.POINTER(P), C.POINTER(S)], C.c_int),
        "dse_op_name": ([C.c_int], C.c_char_p),
    }
    for name, (args, res) in sig.items():
        f = getattr(L, name)
        f.argtypes, f.restype = args, res
    optional = {   # per-node queries and profiling: absent from a library older than these bindings
        "dse_model_node_op": ([P, S], C.c_int),
        "dse_model_node_name": ([P, S], C.c_char_p),
        "dse_model_node_kernel": ([P, S], C.c_char_p),
        "dse_model_node_isa": ([P, S], C.c_char_p),
        "dse_session_run_profile": ([P, C.POINTER(C.c_uint64), E], C.c_int),
    }
    for name, (args, res) in optional.items():
        f = getattr(L, name, None)
        if f is not None:
            f.argtypes, f.restype = args, res


def library_path() -> str:
    """The shared library the bindings loaded."""
    _lib()
    return _LIB_PATH or ""


def version() -> str:
    """The C runtime's version string."""
    return _lib().dse_version().decode()


# -- the runtime --------------------------------------------------------------------------

def _aligned_copy(data) -> tuple[np.ndarray, int]:
    """`data` copied to a 64-byte aligned buffer (weights are used in place: must outlive the model)."""
    mv = memoryview(data).cast("B")
    raw = np.empty(len(mv) + 64, np.uint8)
    start = (-raw.ctypes.data) % 64
    raw[start:start + len(mv)] = np.frombuffer(mv, np.uint8)
    return raw, raw.ctypes.data + start


@dataclass(frozen=True)
class NodeProfile:
    """One node's time in a Runtime.profile(): its index (run order), op, name, the kernel chosen
    at load and its ISA, the median and fastest time over the runs (ms), and its share (%) of the
    sum of every node's median."""

    index: int
    op: str
    name: str
    kernel: str
    isa: str
    median_ms: float
    min_ms: float
    percent: float


@dataclass(frozen=True)
class Profile:
    """Runtime.profile()'s result: one NodeProfile per node, in run order (iterate, index or
    len() it like a list), plus the number of timed runs, the median per-run total (ms) and
    which kernels ran ("auto": the variants chosen for this CPU, "ref": reference only)."""

    rows: tuple[NodeProfile, ...]
    runs: int
    total_ms: float
    kernels: str

    def __iter__(self):
        return iter(self.rows)

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, i):
        return self.rows[i]

    def by_time(self) -> list[NodeProfile]:
        """The rows, slowest first."""
        return sorted(self.rows, key=lambda r: (-r.median_ms, r.index))

    def by_op(self) -> list[dict]:
        """Per op: {"op", "nodes", "ms" (sum of its nodes' medians), "percent"}, slowest first."""
        ops: dict[str, dict] = {}
        for r in self.rows:
            o = ops.setdefault(r.op, {"op": r.op, "nodes": 0, "ms": 0.0, "percent": 0.0})
            o["nodes"] += 1
            o["ms"] += r.median_ms
            o["percent"] += r.percent
        return sorted(ops.values(), key=lambda o: -o["ms"])

    def to_dict(self) -> dict:
        """What `dsedge profile --json` and `dsedge-run --profile --json` print."""
        return {"runs": self.runs, "ref_kernels": self.kernels == "ref", "total_ms": self.total_ms,
                "sum_ms": sum(r.median_ms for r in self.rows),
                "nodes": [dict(r.__dict__) for r in self.rows], "ops": self.by_op()}

    def table(self, limit: int | None = None) -> str:
        """The nodes slowest first (at most `limit`), then the per-op summary, as text."""
        rows = self.by_time()[:limit]
        w = max([4, *(len(r.name) for r in rows)])
        kw = max([6, *(len(r.kernel) for r in rows)])
        lines = [f"{len(self.rows)} nodes, {self.runs} runs, {'reference' if self.kernels == 'ref' else 'chosen'} "
                 f"kernels; median run {self.total_ms:.4f} ms",
                 f"{'rank':>4} {'node':>5}  {'op':<20} {'name':<{w}}  {'kernel':<{kw}}  {'isa':<12} {'median_ms':>10} {'%':>6}"]
        for i, r in enumerate(rows, 1):
            lines.append(f"{i:>4} {r.index:>5}  {r.op:<20} {r.name:<{w}}  {r.kernel:<{kw}}  {r.isa:<12} "
                         f"{r.median_ms:>10.4f} {r.percent:>6.2f}")
        if limit is not None and len(self.rows) > limit:
            lines.append(f"... {len(self.rows) - limit} more nodes")
        lines += ["", f"{'op':<20} {'nodes':>5} {'total_ms':>10} {'%':>6}"]
        lines += [f"{o['op']:<20} {o['nodes']:>5} {o['ms']:>10.4f} {o['percent']:>6.2f}" for o in self.by_op()]
        return "\n".join(lines)


class Runtime:
    """A loaded `.dse` model with `sessions` sessions of `threads` threads each. See the module
    docstring.

    Attributes: `inputs`, `outputs` (tuples of TensorSpec), `metadata` (dict), `arena_size`,
    `node_count`, `path` (None when loaded from bytes), `threads` (per inference: 1 where the
    library was built without threads), `sessions`, `kernel_choice` ("auto", "ref", "no-amx" or
    "no-avx512"). `kernels="ref"` loads with only the portable reference kernels (DSE_LOAD_REF_KERNELS);
    "no-amx" with the optimised variants but not the AMX ones (DSE_LOAD_NO_AMX); "no-avx512" neither
    the avx512vnni nor the AMX ones (DSE_LOAD_NO_AVX512: the AVX2 and AVX-VNNI ones); "auto" (the
    default) lets the loader pick the optimised variants this CPU runs.
    """

    def __init__(self, model, threads: int = 1, *, sessions: int = 1, verify_weights: bool = False,
                 kernels: str = "auto"):
        for what, v in (("threads", threads), ("sessions", sessions)):
            if not isinstance(v, int) or isinstance(v, bool) or v < 1:
                raise DseError(f"{what} must be an integer >= 1, got {v!r}")
        if threads > _MAX_THREADS:
            raise DseError(f"threads must be at most {_MAX_THREADS}, got {threads}")
        if kernels not in _KERNEL_CHOICES:
            raise DseError(f"kernels must be one of {', '.join(map(repr, _KERNEL_CHOICES))}, got {kernels!r}")
        self.kernel_choice = kernels
        L = self._L = _lib()
        self._model = None
        self._state = threading.Condition()   # guards _closed and _active (run() calls in progress)
        self._closed = False
        self._active = 0
        self._pool: queue.LifoQueue = queue.LifoQueue()
        self._sessions: list[C.c_void_p] = []
        self._buf = None
        flags = (_LOAD_VERIFY_WEIGHTS if verify_weights else 0) | _KERNEL_CHOICES[kernels]
        h, err = C.c_void_p(), _Error()
        if isinstance(model, (bytes, bytearray, memoryview)):
            self.path = None
            where = "<bytes>"
            self._buf, ptr = _aligned_copy(model)
            st = L.dse_model_load_ex(ptr, len(memoryview(model).cast("B")), flags, C.byref(h), C.byref(err))
        else:
            self.path = os.fspath(model)
            where = self.path
            if not os.path.isfile(self.path):
                raise ModelError(f"{where}: no such file")
            st = L.dse_model_load_file(os.fsencode(self.path), flags, C.byref(h), C.byref(err))
        if st != 0:
            msg = err.message.decode("utf-8", "replace") or L.dse_status_string(st).decode()
            raise ModelError(f"{where}: cannot load: {msg} ({L.dse_status_string(st).decode()})")
        self._model = h
        self.inputs = tuple(self._spec(i, False) for i in range(L.dse_model_input_count(h)))
        self.outputs = tuple(self._spec(i, True) for i in range(L.dse_model_output_count(h)))
        self.metadata = self._read_metadata()
        self.arena_size = int(L.dse_arena_size(h))
        self.node_count = int(L.dse_model_node_count(h))
        self.threads, self.sessions = threads, sessions
        self._by_name = {s.name: (i, s) for i, s in enumerate(self.inputs)}
        opt = _SessionOptions(C.sizeof(_SessionOptions), threads)
        for _ in range(sessions):
            s = C.c_void_p()
            if L.dse_session_create_ex(h, None, 0, C.byref(opt), C.byref(s), C.byref(err)) != 0:
                self.close()
                raise DseError(f"{where}: cannot create a session: {err.message.decode('utf-8', 'replace')}")
            self._sessions.append(s)
            self._pool.put(s)
        self.threads = int(L.dse_session_threads(self._sessions[0]))   # 1 where the build has no threads

    # -- description
    def _spec(self, i: int, output: bool) -> TensorSpec:
        ti = _TensorInfo()
        (self._L.dse_model_output if output else self._L.dse_model_input)(self._model, i, C.byref(ti))
        shape = tuple(int(ti.dims[d]) for d in range(ti.rank))
        npd = _NP_DTYPES.get(ti.dtype)
        dtype = np.dtype(npd) if npd else np.dtype(np.uint8)
        q = None
        if ti.quant != _Q_NONE and ti.quant_count:
            n = ti.quant_count
            q = QuantParams(tuple(float(ti.scales[k]) for k in range(n)),
                            tuple(int(ti.zero_points[k]) for k in range(n)),
                            None if ti.quant == _Q_TENSOR else int(ti.axis), int(ti.group_size))
        return TensorSpec((ti.name or b"").decode(), shape, dtype, q, int(ti.nbytes),
                          _DTYPE_NAMES.get(ti.dtype, f"dtype{ti.dtype}"))

    def _read_metadata(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for i in range(self._L.dse_model_metadata_count(self._model)):
            m = _Meta()
            self._L.dse_model_metadata_at(self._model, i, C.byref(m))
            key = m.key.decode()
            if m.type == _META_STRING:
                out[key] = (m.str or b"").decode()
            elif m.type == _META_INT64:
                out[key] = int(m.i64)
            elif m.type == _META_FLOAT64:
                out[key] = float(m.f64)
            elif m.type == _META_BYTES:
                out[key] = C.string_at(m.bytes, m.size) if m.size else b""
            elif m.type == _META_STRINGS:
                out[key] = [m.strings[k].decode() for k in range(m.count)]
        return out

    def __repr__(self) -> str:
        def fmt(specs):
            return ", ".join(f"{s.name}: {s.dtype_name}{list(s.shape)}" for s in specs)
        return f"Runtime({self.path or '<bytes>'}, inputs=[{fmt(self.inputs)}], outputs=[{fmt(self.outputs)}])"

    # -- running
    def _check_feeds(self, feeds: Mapping[str, Any]) -> list[np.ndarray]:
        if not isinstance(feeds, Mapping):
            if len(self.inputs) == 1 and not isinstance(feeds, (list, tuple)):
                feeds = {self.inputs[0].name: feeds}
            else:
                raise DseError("run() takes a dict {input name: array}; inputs: "
                               + ", ".join(repr(s.name) for s in self.inputs))
        unknown = [k for k in feeds if k not in self._by_name]
        if unknown:
            raise DseError(f"unknown input {unknown[0]!r}; the model's inputs are "
                           + ", ".join(f"{s.name!r} ({s.dtype_name}{list(s.shape)})" for s in self.inputs))
        arrays = []
        for s in self.inputs:
            if s.name not in feeds:
                raise DseError(f"input {s.name!r} is missing: expected {s.dtype_name} of shape {list(s.shape)}")
            a = feeds[s.name]
            if not isinstance(a, np.ndarray):
                a = np.asarray(a, dtype=s.dtype)   # lists and scalars take the model's dtype
            if a.dtype != s.dtype:
                raise DseError(f"input {s.name!r}: expected dtype {s.dtype_name}, got {a.dtype} "
                               f"(convert with .astype(np.{s.dtype_name}))")
            if a.shape != s.shape:
                raise DseError(f"input {s.name!r}: expected shape {list(s.shape)}, got {list(a.shape)}")
            if not a.flags.c_contiguous:
                a = np.ascontiguousarray(a)
            if a.nbytes != s.nbytes:
                raise DseError(f"input {s.name!r}: {a.nbytes} bytes, the model takes {s.nbytes}")
            arrays.append(a)
        return arrays

    def run(self, feeds: Mapping[str, Any]) -> dict[str, np.ndarray]:
        """Run one inference: {input name: array} -> {output name: new array}.

        Thread-safe; up to `sessions` calls run in parallel, the GIL is released while the C
        runtime runs. Raises DseError once the Runtime is closed (close() waits for calls that
        started before it)."""
        with self._state:
            if self._closed:
                raise DseError("this Runtime is closed")
            self._active += 1
        try:
            return self._run(self._check_feeds(feeds))
        finally:
            with self._state:
                self._active -= 1
                if not self._active:
                    self._state.notify_all()

    def _run(self, arrays: list[np.ndarray]) -> dict[str, np.ndarray]:
        L, err = self._L, _Error()
        s = self._pool.get()
        try:
            for i, a in enumerate(arrays):
                ptr = a.__array_interface__["data"][0]
                if L.dse_session_set_input(s, i, ptr, a.nbytes, C.byref(err)) != 0:
                    raise DseError(f"input {self.inputs[i].name!r}: {err.message.decode('utf-8', 'replace')}")
            if L.dse_session_run(s, C.byref(err)) != 0:
                raise DseError(f"run failed: {err.message.decode('utf-8', 'replace')}")
            out = {}
            p, n = C.c_void_p(), C.c_size_t()
            for i, spec in enumerate(self.outputs):
                L.dse_session_get_output(s, i, C.byref(p), C.byref(n))
                packed = spec.dtype_name in ("int4", "uint4")   # returned as packed bytes
                arr = np.empty((n.value,) if packed else spec.shape, spec.dtype)   # a new array, not a view
                if n.value:
                    C.memmove(arr.ctypes.data, p.value, n.value)
                out[spec.name] = arr
            return out
        finally:
            self._pool.put(s)

    __call__ = run

    # -- kernels and per-node profile
    def _node_fn(self, name: str):
        f = getattr(self._L, name, None)
        if f is None:
            raise DseError(f"the dsedge library {library_path()} predates per-node queries ({name}); rebuild it")
        return f

    def kernels(self) -> list[str]:
        """The kernel chosen at load for each node, in run order (e.g. "dse_i8_conv__avx2", or
        "dse_i8_conv__ref" with kernels="ref"; docs/kernels.md)."""
        f = self._node_fn("dse_model_node_kernel")
        return [f(self._model, i).decode() for i in range(self.node_count)]

    def nodes(self) -> list[dict]:
        """Each node in run order: {"index", "op", "name", "kernel", "isa"}."""
        L, h = self._L, self._model
        op, name, isa = (self._node_fn(n) for n in ("dse_model_node_op", "dse_model_node_name", "dse_model_node_isa"))
        return [{"index": i, "op": L.dse_op_name(op(h, i)).decode(), "name": name(h, i).decode("utf-8", "replace"),
                 "kernel": k, "isa": isa(h, i).decode()} for i, k in enumerate(self.kernels())]

    def profile(self, feeds: Mapping[str, Any], repeat: int = 10, warmup: int = 1) -> Profile:
        """Time every node: `warmup` untimed runs, then `repeat` runs of dse_session_run_profile
        on `feeds` (as run() takes them). Returns a Profile: one NodeProfile per node, in run order.
        Raises DseError where the platform has no monotonic clock."""
        if not isinstance(repeat, int) or repeat < 1:
            raise DseError(f"repeat must be an integer >= 1, got {repeat!r}")
        prof = self._node_fn("dse_session_run_profile")
        nodes = self.nodes()
        with self._state:
            if self._closed:
                raise DseError("this Runtime is closed")
            self._active += 1
        try:
            arrays = self._check_feeds(feeds)
            ns = np.zeros((repeat, max(self.node_count, 1)), np.uint64)
            L, err = self._L, _Error()
            s = self._pool.get()
            try:
                for i, a in enumerate(arrays):
                    if L.dse_session_set_input(s, i, a.__array_interface__["data"][0], a.nbytes, C.byref(err)) != 0:
                        raise DseError(f"input {self.inputs[i].name!r}: {err.message.decode('utf-8', 'replace')}")
                for _ in range(warmup):
                    if L.dse_session_run(s, C.byref(err)) != 0:
                        raise DseError(f"run failed: {err.message.decode('utf-8', 'replace')}")
                for r in range(repeat):
                    row = ns[r].ctypes.data_as(C.POINTER(C.c_uint64))
                    if prof(s, row, C.byref(err)) != 0:
                        raise DseError(f"profile failed: {err.message.decode('utf-8', 'replace')}")
            finally:
                self._pool.put(s)
        finally:
            with self._state:
                self._active -= 1
                if not self._active:
                    self._state.notify_all()
        ms = ns[:, :self.node_count].astype(np.float64) / 1e6
        med = np.median(ms, axis=0) if self.node_count else np.zeros(0)
        total = float(med.sum())
        rows = tuple(NodeProfile(n["index"], n["op"], n["name"], n["kernel"], n["isa"], float(med[i]),
                                 float(ms[:, i].min()), float(100 * med[i] / total) if total > 0 else 0.0)
                     for i, n in enumerate(nodes))
        return Profile(rows, repeat, float(np.median(ms.sum(axis=1))), self.kernel_choice)

    # -- images and audio, through the preprocessing stored in the artifact
    @property
    def preprocessing(self):
        """The artifact's preprocessing (an ImageSpec or AudioSpec of dsedge.calibration), or
        None when the model was not calibrated from images or WAV files."""
        text = self.metadata.get("preprocessing")
        if not text:
            return None
        return _preprocess_module().spec_from_json(text)

    def preprocess(self, source, *, sample_rate: int | None = None) -> dict[str, np.ndarray]:
        """The feeds for an image (path, PIL image or uint8 HxW[xC] array) or audio (WAV path,
        or a 1-D float array at `sample_rate`, default the model's), made with the stored
        preprocessing exactly as during calibration. An image gives one feed dict; audio gives
        one inference per window, every array stacked along a new leading axis (as `run_feeds`
        and `dsedge run` take them)."""
        spec = self._media_spec(source)
        if spec.kind == "image":
            spec = _fit_image(spec, self._by_name.get(spec.input, (0, None))[1])
            feeds = [self._to_io(f) for f in spec.feeds(source)]
            return feeds[0]
        src = os.fspath(source) if isinstance(source, os.PathLike) else source
        feeds = [self._to_io(f) for f in (spec.feeds(src) if isinstance(src, str) else
                                          spec.feeds(src, sample_rate=sample_rate))]
        return {k: np.stack([f[k] for f in feeds]) for k in feeds[0]}

    def run_file(self, source, *, sample_rate: int | None = None) -> dict[str, np.ndarray]:
        """`preprocess(source)` then run: an image gives one inference's outputs; audio gives
        every window's outputs stacked along a new leading axis. A recurrent state the
        preprocessing carries (e.g. silero's stateN -> state) flows from each window's outputs
        into the next window, starting from zeros."""
        spec = self._media_spec(source)
        if spec.kind == "audio" and spec.carry:
            src = os.fspath(source) if isinstance(source, os.PathLike) else source
            last: dict = {}
            outs = []
            feeds = (spec.feeds(src, state=lambda: last.get("out")) if isinstance(src, str) else
                     spec.feeds(src, sample_rate=sample_rate, state=lambda: last.get("out")))
            for f in feeds:
                o = self.run(self._to_io(f))
                last["out"] = self._from_io(o)
                outs.append(o)
            return {k: np.stack([o[k] for o in outs]) for k in outs[0]}
        feeds = self.preprocess(source, sample_rate=sample_rate)
        return run_feeds(self, feeds)[0]

    def _from_io(self, outs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Dequantise int8/uint8 graph outputs (--io-dtype) to float32."""
        res = {}
        for spec in self.outputs:
            a = outs[spec.name]
            if spec.dtype.kind in "iu" and spec.qparams is not None and spec.qparams.axis is None:
                a = ((a.astype(np.float64) - spec.qparams.zero_point) * spec.qparams.scale).astype(np.float32)
            res[spec.name] = a
        return res

    def _media_spec(self, source):
        """The stored spec, checked against the kind of file `source` is."""
        spec = self.preprocessing
        if spec is None:
            raise DseError(f"{self.path or '<bytes>'}: the model carries no preprocessing metadata, so it cannot "
                           "take an image or a WAV file directly",
                           hint="quantise it with --calib on a folder of images or WAV files (and --preprocess), "
                                "or give the input arrays")
        if isinstance(source, (str, os.PathLike)):
            kind = _preprocess_module().media_kind(source)
            if kind != spec.kind:
                raise DseError(f"{os.fspath(source)}: the model was calibrated on {spec.kind} files and takes "
                               f"{'images' if spec.kind == 'image' else 'WAV files'}",
                               hint="give " + ("an image (.png, .jpg, ...)" if spec.kind == "image" else "a .wav file"))
        return spec

    def _to_io(self, feed: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Quantise float feeds for a model whose inputs are int8/uint8 (--io-dtype)."""
        out = {}
        for k, a in feed.items():
            spec = self._by_name.get(k, (0, None))[1]
            if spec is not None and a.dtype.kind == "f" and spec.dtype.kind in "iu" and spec.qparams is not None:
                info = np.iinfo(spec.dtype)
                q = np.rint(a.astype(np.float64) / spec.qparams.scale) + spec.qparams.zero_point
                a = np.clip(q, info.min, info.max).astype(spec.dtype)
            out[k] = a
        return out

    # -- lifetime
    def close(self) -> None:
        """Free the sessions and the model (also done when the Runtime is garbage collected).
        Waits for run() calls in progress; later calls raise DseError. Idempotent."""
        L = getattr(self, "_L", None)
        state = getattr(self, "_state", None)
        if L is None or state is None:
            return
        with state:   # held while freeing: a second close() waits, then finds nothing to free
            self._closed = True
            while self._active:
                state.wait()
            for s in getattr(self, "_sessions", []):
                L.dse_session_free(s)
            self._sessions = []
            if getattr(self, "_model", None) is not None:
                L.dse_model_free(self._model)
                self._model = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __del__(self):
        try:
            self.close()
        except Exception:
            pass



def _preprocess_module():
    try:
        if _IN_PACKAGE:
            from ..calibration import preprocess
        else:                               # a bundle's copy: the preprocessing lives in dsedge
            from dsedge.calibration import preprocess
    except ImportError:
        raise DseError("running on an image or a WAV file needs the dsedge package (pip install 'dsedge[images]')") \
            from None
    return preprocess


def _fit_image(spec, tensor):
    """The image spec resized exactly to a .dse input's static size (the artifact is specialised
    to one shape; calibration may have kept the aspect ratio on a dynamic side)."""
    if tensor is None:
        return spec
    import dataclasses
    shp = tensor.shape[1:] if spec.batch else tensor.shape
    if len(shp) != 3:
        return spec
    h, w = (shp[1], shp[2]) if spec.layout == "nchw" else (shp[0], shp[1])
    final = spec.crop or (spec.resize if spec.resize and 0 not in spec.resize else None)
    if final == (w, h):
        return spec
    return dataclasses.replace(spec, resize=(w, h), shorter=None, crop=None)


def run_feeds(rt: Runtime, feeds: Mapping[str, np.ndarray]) -> tuple[dict[str, np.ndarray], int]:
    """Run arrays that have either the inputs' shapes (one inference) or one extra leading
    sample axis of a common length N (N inferences, outputs stacked along a new axis 0).
    Returns (outputs, number of inferences). Used by `dsedge run`."""
    n = None
    for s in rt.inputs:
        a = feeds.get(s.name)
        if a is None or np.shape(a) == s.shape:
            continue
        if np.ndim(a) == len(s.shape) + 1 and np.shape(a)[1:] == s.shape:
            if n not in (None, np.shape(a)[0]):
                raise DseError(f"input {s.name!r}: {np.shape(a)[0]} samples, other inputs have {n}")
            n = np.shape(a)[0]
    if n is None:
        return rt.run(feeds), 1
    for s in rt.inputs:
        if s.name in feeds and np.shape(feeds[s.name]) != (n, *s.shape):
            raise DseError(f"input {s.name!r}: expected shape {[n, *s.shape]} (a leading sample axis like the "
                           f"other inputs) or {list(s.shape)}, got {list(np.shape(feeds[s.name]))}")
    outs = [rt.run({k: v[i] for k, v in feeds.items()}) for i in range(n)]
    return {o.name: np.stack([r[o.name] for r in outs]) for o in rt.outputs}, n
