"""Concurrency of dsedge.Runtime: sessions of one shared model run in parallel threads with
results identical to sequential runs, and the GIL is released while the C runtime runs (a
Python thread makes progress during one long inference)."""
from __future__ import annotations

import threading

import numpy as np
import pytest

import dsedge
from dsedge.artifact import Artifact, NodeRec, TensorRec, op_id

F = "float32"


def chain(n_nodes: int, numel: int) -> Artifact:
    """x -> (+c) -> relu -> (+c) -> relu ... : `n_nodes` nodes over `numel` floats, ping-ponging
    between two arena halves (each node reads one half and writes the other)."""
    nb = numel * 4
    ts = [TensorRec.const("c", np.array([0.5], np.float32)), TensorRec.arena("x", F, (numel,), 0)]
    nodes = []
    for k in range(n_nodes):
        name = "y" if k == n_nodes - 1 else ""
        ts.append(TensorRec.arena(name, F, (numel,), nb * ((k + 1) % 2)))
        src, dst = len(ts) - 2, len(ts) - 1
        op = NodeRec(op_id("Add"), (src, 0), (dst,)) if k % 2 == 0 else NodeRec(op_id("Relu"), (src,), (dst,))
        nodes.append(op)
    return Artifact(tensors=tuple(ts), nodes=tuple(nodes), inputs=(1,), outputs=(len(ts) - 1,), arena_size=2 * nb)


def reference(x: np.ndarray, n_nodes: int) -> np.ndarray:
    y = x.copy()
    for k in range(n_nodes):
        y = y + np.float32(0.5) if k % 2 == 0 else np.maximum(y, np.float32(0))
    return y


def test_two_sessions_in_two_threads_identical():
    n = 40
    rt = dsedge.Runtime(chain(n, 50_000).to_bytes(), threads=2)
    xs = [np.random.default_rng(s).standard_normal(50_000).astype(np.float32) for s in range(8)]
    want = [reference(x, n) for x in xs]
    assert all(rt.run({"x": x})["y"].tobytes() == w.tobytes() for x, w in zip(xs, want))
    got: dict[int, list[bytes]] = {0: [], 1: []}
    errors = []

    def worker(t):
        try:
            for rep in range(3):
                for i in range(t, len(xs), 2):
                    got[t].append((i, rt.run({"x": xs[i]})["y"].tobytes()))
        except Exception as e:  # pragma: no cover - reported below
            errors.append(e)

    th = [threading.Thread(target=worker, args=(t,)) for t in (0, 1)]
    for t in th:
        t.start()
    for t in th:
        t.join()
    assert not errors, errors
    assert len(got[0]) == len(got[1]) == 12
    for t in (0, 1):
        for i, b in got[t]:
            assert b == want[i].tobytes(), (t, i)


def test_two_runtimes_share_nothing_but_agree():
    a = chain(10, 1000).to_bytes()
    r1, r2 = dsedge.Runtime(a), dsedge.Runtime(a)
    x = np.linspace(-3, 3, 1000, dtype=np.float32)
    assert r1.run({"x": x})["y"].tobytes() == r2.run({"x": x})["y"].tobytes() == reference(x, 10).tobytes()


def test_gil_released_during_run():
    """While a thread is inside dse_session_run (called through the bindings' own library
    object), another Python thread looks at the session's arena, supplied by the caller, and
    sees a state that is neither the one before the run nor the one after: a state that exists
    only while the C code runs. If the call held the GIL, no Python thread could run during it,
    so that state could never be seen. No timing threshold: the run only has to last long
    enough for the watcher to be scheduled at all, and is retried longer if it was not."""
    import ctypes as C
    from dsedge.runtime import _Error, _lib
    L = _lib()
    numel = 1 << 14
    x = np.zeros(numel, np.float32)
    for depth in (2001, 8001, 32001):        # odd: the last node (Add) writes the second half
        data = chain(depth, numel).to_bytes()
        buf = np.frombuffer(data, np.uint8).copy()
        h, err = C.c_void_p(), _Error()
        assert L.dse_model_load(buf.ctypes.data, buf.nbytes, C.byref(h), C.byref(err)) == 0, err.message
        size = L.dse_arena_size(h)
        raw = np.zeros(size + 64, np.uint8)
        off = (-raw.ctypes.data) % 64
        arena = raw[off:off + size]
        half0 = arena[:numel * 4].view(np.float32)   # x, then every odd node's result (Relu)
        s = C.c_void_p()
        assert L.dse_session_create(h, arena.ctypes.data, size, C.byref(s), C.byref(err)) == 0, err.message
        seen = set()
        started, done = threading.Event(), threading.Event()

        def runner():
            started.set()
            assert L.dse_session_set_input(s, 0, x.ctypes.data, x.nbytes, C.byref(err)) == 0
            assert L.dse_session_run(s, C.byref(err)) == 0
            done.set()

        t = threading.Thread(target=runner)
        t.start()
        started.wait()
        while not done.is_set():
            seen.add(float(half0[0]))
        t.join()
        before, after = 0.0, float(half0[0])
        L.dse_session_free(s)
        L.dse_model_free(h)
        assert after == float(reference(x, depth - 1)[0])        # the C run itself is right
        if seen - {before, after}:
            return                                               # an intermediate state was seen
    pytest.fail(f"no Python thread ran while dse_session_run ran (states seen: {sorted(seen)[:5]}): "
                "the call holds the GIL")


CLOSE_SCRIPT = r"""
import sys, threading, time
import numpy as np
sys.path.insert(0, sys.argv[1])
import dsedge
from dsedge.errors import DseError
from test_threads import chain, reference

depth, numel = 400, 1 << 18
rt = dsedge.Runtime(chain(depth, numel).to_bytes(), threads=1)
x = np.linspace(-2, 2, numel, dtype=np.float32)
want = reference(x, depth).tobytes()
inside, results, errors = threading.Event(), [], []

def worker():
    while True:
        inside.set()
        try:
            results.append(rt.run({"x": x})["y"].tobytes())
        except DseError as e:
            errors.append(str(e))
            return

th = [threading.Thread(target=worker) for _ in range(3)]   # 3 callers on 1 session: 2 wait for it
for t in th:
    t.start()
inside.wait()
time.sleep(0.1)   # let the callers get into dse_session_run / the session queue
rt.close()        # frees the arena and model only after the calls in progress have returned
for t in th:
    t.join()
rt.close()        # idempotent
try:
    rt.run({"x": x})
    errors.append("run after close did not raise")
except DseError as e:
    errors.append(str(e))
assert results and all(r == want for r in results), "a run gave a wrong result"
assert errors == ["this Runtime is closed"] * 4, errors
print("ok", len(results))
"""


def test_close_waits_for_runs_in_progress(tmp_path):
    """Issue 9 item 2: close() while other threads are inside run() (and waiting for the one
    session) freed the arena and model under them: a segfault. It now waits for those calls,
    each returns the right result, and every call after close() raises DseError. In a
    subprocess, so that a crash fails this test instead of killing pytest."""
    import subprocess
    import sys
    from pathlib import Path
    (tmp_path / "close_race.py").write_text(CLOSE_SCRIPT)
    r = subprocess.run([sys.executable, str(tmp_path / "close_race.py"), str(Path(__file__).parent)],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0 and r.stdout.startswith("ok"), (r.returncode, r.stdout, r.stderr[-2000:])
