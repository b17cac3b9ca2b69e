"""What re-quantising a model its authors quantised dynamically would cost (issue 11: ddddocr's
common_old, whose weights are already 8-bit: 13.5 of its 13.6 MB): the float model that a static
(or int4) re-quantisation would start from, against the model as given.

    python3 benchmarks/requantize_bound.py [--model ddddocr/common_old] [--feeds 200]

`dequantize_dynamic` below rewrites each integer product written the way onnxruntime's
`quantize_dynamic` writes it,

    xq, xs, xzp = DynamicQuantizeLinear(x)
    acc = ConvInteger(xq, Wq, xzp, Wzp)                  (or MatMulInteger)
    [acc = acc + Reshape(Cast(Floor(b / (xs * Ws))))]    (Conv's bias)
    y   = Cast(acc, float) * (xs * Ws)

as y = Conv(x, (Wq - Wzp) * Ws, b) (MatMul(x, (Wq - Wzp) * Ws)): the float model the weights were
rounded from, without the per-inference rounding of x. Printed: each rewritten product's output
SQNR against the given model's on one feed, and the share of feeds whose decoded answer the two
models agree on (dsedge's interpreter runs both; it is exact on the integer ops). Every
re-quantisation starts from that float model, so it cannot agree with the given model better than
the float model does, up to luck. Not in the library: with a 1 % budget against the model as
given, it would not help the model it was written for (BENCHMARKS.md, session 20).
"""
from __future__ import annotations

import numpy as np

import argparse
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests" / "models"))

from dsedge.ir import Graph, Node  # noqa: E402
from dsedge.ops import REGISTRY  # noqa: E402
from dsedge.passes.simplify import eliminate_dead  # noqa: E402

# the integer products and their float forms: (float op, the weights' per-channel axis)
FLOAT_FORM = {"ConvInteger": ("Conv", 0), "MatMulInteger": ("MatMul", -1)}


def _const(g: Graph, name: str) -> np.ndarray | None:
    return g.consts.get(name) if name else None


def _weight_scale(g: Graph, prod: dict, name: str, xs: str) -> np.ndarray | None:
    """Ws when `name` is Mul(xs, Ws) (either order) with Ws a float constant."""
    m = prod.get(name)
    if m is None or m.op != "Mul" or m.domain or len(m.inputs) != 2 or xs not in m.inputs:
        return None
    other = m.inputs[1] if m.inputs[0] == xs else m.inputs[0]
    ws = _const(g, other)
    return ws if ws is not None and ws.dtype == np.float32 else None


def _only_reader(cons: dict, name: str, op: str) -> Node | None:
    r = cons.get(name, [])
    return r[0] if len(r) == 1 and r[0].op == op and not r[0].domain else None


def _conv_bias(g: Graph, prod: dict, name: str, xs: str, ws: np.ndarray) -> np.ndarray | None:
    """b when `name` is Reshape(Cast(Floor(Div(b, Mul(xs, Ws))))) with b a float constant and the
    same Ws as the output's scale."""
    r = prod.get(name)
    if r is None or r.op != "Reshape" or r.domain:
        return None
    c = prod.get(r.inputs[0])
    f = prod.get(c.inputs[0]) if c is not None and c.op == "Cast" and not c.domain else None
    d = prod.get(f.inputs[0]) if f is not None and f.op == "Floor" and not f.domain else None
    if d is None or d.op != "Div" or d.domain:
        return None
    b = _const(g, d.inputs[0])
    ws2 = _weight_scale(g, prod, d.inputs[1], xs)
    if b is None or b.dtype != np.float32 or b.ndim != 1 or ws2 is None or not np.array_equal(ws2, ws):
        return None
    return b


def dequantize_dynamic(g: Graph) -> int:
    prod, cons = g.producers(), g.consumers()
    replace: dict[int, Node] = {}
    for n in g.nodes:
        form = None if n.domain else FLOAT_FORM.get(n.op)
        if form is None or len(n.inputs) < 2 or n.outputs[0] in g.outputs:
            continue
        fop, axis = form
        xq, wq = n.inputs[0], n.inputs[1]
        xzp = n.inputs[2] if len(n.inputs) > 2 else ""
        wzp = n.inputs[3] if len(n.inputs) > 3 else ""
        dq = prod.get(xq)
        if dq is None or dq.op != "DynamicQuantizeLinear" or dq.domain or dq.outputs[0] != xq \
                or (xzp and xzp != dq.outputs[2]):
            continue
        w, w0 = _const(g, wq), _const(g, wzp) if wzp else np.zeros((), np.int32)
        if w is None or w0 is None or w.dtype.kind not in "iu":
            continue
        xs = dq.outputs[1]
        add = _only_reader(cons, n.outputs[0], "Add") if fop == "Conv" else None
        cast = _only_reader(cons, add.outputs[0] if add is not None else n.outputs[0], "Cast")
        if cast is None or cast.attrs.get("to") != 1:
            continue
        mul = _only_reader(cons, cast.outputs[0], "Mul")
        if mul is None or len(mul.inputs) != 2:
            continue
        ws = _weight_scale(g, prod, mul.inputs[1] if mul.inputs[0] == cast.outputs[0] else mul.inputs[0], xs)
        if ws is None:
            continue
        bias = None
        if add is not None:
            bias = _conv_bias(g, prod, add.inputs[1] if add.inputs[0] == n.outputs[0] else add.inputs[0], xs, ws)
            if bias is None:
                continue
        ch = w.shape[axis] if w.ndim else 1
        if ws.size not in (1, ch) or w0.size not in (1, ch) or (bias is not None and bias.size != w.shape[0]):
            continue
        shape = [1] * w.ndim
        if w.ndim:
            shape[axis] = -1
        wf = ((w.astype(np.int32) - w0.astype(np.int32).reshape(shape if w0.size > 1 else ()))
              .astype(np.float32) * ws.astype(np.float32).reshape(shape if ws.size > 1 else ()))
        ins = [dq.inputs[0], g.add_const((n.name or wq) + "_dequantized", wf.astype(np.float32))]
        if bias is not None:
            ins.append(g.add_const((n.name or wq) + "_bias", bias.astype(np.float32)))
        attrs = {k: v for k, v in n.attrs.items() if k in REGISTRY.get(fop).attrs}
        replace[id(mul)] = Node(fop, ins, [mul.outputs[0]], attrs, n.name or mul.name)
    if not replace:
        return 0
    g.nodes = [replace.get(id(m), m) for m in g.nodes]
    eliminate_dead(g)
    return len(replace)


def main() -> None:
    import numpy as np
    import devmodels as dm
    from dsedge.api import load_graph
    from dsedge.interp import execute
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default="ddddocr/common_old")
    ap.add_argument("--feeds", type=int, default=200)
    a = ap.parse_args()
    g = load_graph(dm.model_path(a.model))
    f = dequantized = g.copy()
    n = dequantize_dynamic(dequantized)
    print(f"{a.model}: {n} integer products rewritten")
    feeds = dm.calibration_feeds(a.model, a.feeds, seed=5)
    names = [m.outputs[0] for m in dequantized.nodes if m.op in ("Conv", "MatMul")]
    g1, f1 = g.copy(), dequantized.copy()
    g1.outputs, f1.outputs = list(names), list(names)
    for k, x, y in zip(names, execute(g1, feeds[0]), execute(f1, feeds[0])):
        x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
        print(f"  {k}: SQNR of the float product against the given one {10 * np.log10((x ** 2).sum() / max(((x - y) ** 2).sum(), 1e-30)):.1f} dB")
    t, same = time.time(), 0
    for feed in feeds:
        same += bool(np.array_equal(np.asarray(dm.task_output(a.model, execute(g, feed)), dtype=object),
                                    np.asarray(dm.task_output(a.model, execute(f, feed)), dtype=object)))
    print(f"{a.model}: the dequantised float model agrees with the model as given on {same} of {len(feeds)} feeds "
          f"({100 * same / len(feeds):.2f} %), {time.time() - t:.0f} s")


if __name__ == "__main__":
    main()
