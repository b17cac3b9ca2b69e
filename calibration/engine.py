"""Float engines for calibration: run the optimised float graph and show every tensor.

Calibration needs, per feed, every float tensor of the float graph. The numpy reference
interpreter (`dsedge.interp`) is the executable spec, but its convolutions are slow; on
models onnxruntime can run, `OrtEngine` runs the same (already optimised) IR graph in
onnxruntime with every node output made a graph output. The IR is written at opset 21 (its
canonical form, so nothing is re-expressed) and its constants are handed to onnxruntime as
in-memory external initializers: the weights exist once, in the IR's own arrays.

Both engines have the same interface, `run(feed, hook=None, node_hook=None) -> {output: array}`
with the interpreter's hook semantics: `hook(name, value, node)` sees every top-level tensor
once (graph inputs with node None), `node_hook(node, args, outs)` sees every top-level node.
The float values differ between engines only by float rounding (onnxruntime's kernels are
checked against the reference op by op in tests/ops).

`float_engine(graph)` picks onnxruntime and falls back to the interpreter when onnxruntime
cannot load the graph, or (per feed) when it fails to run it; `DSEDGE_FLOAT_ENGINE=numpy`
forces the interpreter.
"""
from __future__ import annotations

import os
from typing import Mapping

import numpy as np

from dsedge.ir import Graph

_ORT_OPSET = 21          # the IR's canonical opset


class NumpyEngine:
    name = "numpy"

    def __init__(self, g: Graph):
        self.g = g

    def run(self, feed: Mapping[str, np.ndarray], hook=None, node_hook=None) -> dict[str, np.ndarray]:
        from dsedge.interp import run
        return run(self.g, feed, hook=hook, node_hook=node_hook)

    def close(self) -> None:
        pass


class OrtEngine:
    """The float graph in onnxruntime, every top-level node output fetched."""

    name = "onnxruntime"

    def __init__(self, g: Graph, want_dtypes: str = "f"):
        import onnxruntime as ort
        from onnx import helper

        from dsedge.converters.onnx.writer import _is_external, to_graph_proto

        self.g = g
        self.fallback = NumpyEngine(g)
        self.failures = 0
        produced = [o for n in g.nodes for o in n.outputs if o]
        fetch = []
        for o in produced:
            dt = g.tensor_info(o).dtype
            if dt is None or dt.kind in want_dtypes:
                fetch.append(o)
        for o in g.outputs:
            if o not in fetch and o in produced:
                fetch.append(o)
        gp = to_graph_proto(g, _ORT_OPSET, external_consts=True)
        del gp.output[:]
        gp.output.extend(helper.make_empty_tensor_value_info(o) for o in fetch)
        m = helper.make_model(gp, opset_imports=[helper.make_opsetid("", _ORT_OPSET)], producer_name="dsedge")
        m.ir_version = 10
        domains = {n.domain for _, n in g.walk() if n.domain and n.domain != "dsedge"}
        for d in sorted(domains):
            m.opset_import.append(helper.make_opsetid(d, 1))
        so = ort.SessionOptions()
        so.log_severity_level = 3
        # Every node output is fetched, so onnxruntime's arena would keep a second set of
        # activation buffers alive between runs: allocate per run instead.
        so.enable_cpu_mem_arena = False
        # Between runs this process does numpy work (observers): worker threads spinning for
        # the next run would take a core from it.
        so.add_session_config_entry("session.intra_op.allow_spinning", "0")
        names, vals = [], []
        self._keep = []      # the arrays behind the OrtValues, alive until the session has copied them
        for k, v in g.consts.items():
            if not _is_external(v):
                continue
            a = np.ascontiguousarray(v)
            self._keep.append(a)
            names.append(k)
            vals.append(ort.OrtValue.ortvalue_from_numpy(a))
        if names:       # onnxruntime copies them into the session; ours may go once it exists
            so.add_external_initializers(names, vals)
        # The NCHWc layout pass would re-pack every Conv weight: a third copy of the weights
        # during session creation, for little gain here (all activations are fetched in NCHW).
        self.sess = ort.InferenceSession(m.SerializeToString(), so, providers=["CPUExecutionProvider"],
                                         disabled_optimizers=["NchwcTransformer"])
        del self._keep, names, vals, so
        self.fetch = fetch
        self.inputs = [i.name for i in self.sess.get_inputs()]

    def close(self) -> None:
        """Release the session (and onnxruntime's copy of the weights)."""
        self.sess = None

    def _run(self, feed):
        if self.sess is None:
            raise RuntimeError("engine closed")
        vals = self.sess.run(self.fetch, {k: feed[k] for k in self.inputs})
        return dict(zip(self.fetch, vals))

    def run(self, feed: Mapping[str, np.ndarray], hook=None, node_hook=None) -> dict[str, np.ndarray]:
        from dsedge.interp import check_feeds
        feed = check_feeds(self.g, feed)
        try:
            env = self._run(feed)
        except Exception:   # onnxruntime refuses this feed: the reference decides (and names the problem)
            self.failures += 1
            return self.fallback.run(feed, hook=hook, node_hook=node_hook)
        g = self.g
        if hook is not None:
            for name in g.inputs:
                hook(name, feed[name], None)
        if hook is not None or node_hook is not None:
            for n in g.nodes:
                outs = [env.get(o) if o else None for o in n.outputs]
                if node_hook is not None:
                    args = [None if not i else (env[i] if i in env else feed[i] if i in feed else g.consts.get(i))
                            for i in n.inputs]
                    node_hook(n, args, outs)
                if hook is not None:
                    for o, v in zip(n.outputs, outs):
                        if o and v is not None:
                            hook(o, v, n)
        return {o: env[o] if o in env else feed[o] for o in g.outputs}


def float_engine(g: Graph, want_dtypes: str = "f"):
    """onnxruntime when it takes the graph, else the numpy reference interpreter.

    want_dtypes: dtype kinds of the node outputs to fetch ("f": float tensors, for observing;
    "fiub": everything, for node hooks that need integer operands too)."""
    choice = os.environ.get("DSEDGE_FLOAT_ENGINE", "").lower()
    if choice == "numpy":
        return NumpyEngine(g)
    try:
        return OrtEngine(g, want_dtypes)
    except Exception:
        if choice == "onnxruntime":
            raise
        return NumpyEngine(g)


SPILL_MIN_BYTES = 1 << 16     # constants at least this large are spilled
SPILL_MIN_TOTAL = 8 << 20     # ... when they add up to at least this


def spill_constants(g: Graph) -> int:
    """Move g's large constants to an anonymous temporary file, memory-mapped read-only.

    Used while onnxruntime holds its own copy of the weights: the process then keeps one copy in
    memory instead of two. The arrays keep their values, dtypes and shapes; pages come back from
    the file when read (the file has no name and vanishes with the last mapping). Returns the
    bytes spilled (0 when there is too little to gain or the temporary directory is unusable)."""
    import tempfile
    big = [(k, np.asarray(v)) for k, v in g.consts.items()
           if isinstance(v, np.ndarray) and not isinstance(v, np.memmap) and v.nbytes >= SPILL_MIN_BYTES
           and v.dtype.kind in "fiub"]
    total = sum(v.nbytes for _, v in big)
    if total < SPILL_MIN_TOTAL:
        return 0
    try:
        f = tempfile.TemporaryFile(prefix="dsedge-weights-")
        offsets, off = [], 0
        for _, v in big:
            off = -(-off // 64) * 64
            offsets.append(off)
            f.seek(off)
            f.write(np.ascontiguousarray(v).tobytes())
            off += v.nbytes
        f.flush()
        maps = [np.memmap(f, dtype=v.dtype, mode="r", offset=o, shape=v.shape) for (_, v), o in zip(big, offsets)]
        f.close()
    except (OSError, ValueError):
        return 0
    for (k, _), mm in zip(big, maps):
        g.consts[k] = mm
    return total
