"""Dynamic quantisation: int8 weights, activations quantised at run time (no calibration).

What `dsedge quantize model.onnx` does when no calibration data is given. The float graph is
optimised as for static quantisation (BatchNorm folding, activation fusion, constant
folding); then every weight-bearing node that has a dynamic int8 form
(`kinds.dynamic_why_not`: Conv, Gemm, MatMul with constant weights) gets int8 symmetric
per-channel weights and keeps a float32 input and output: per inference its input's range
is measured, the input quantised to int8 with that range, the products accumulated exactly
in int32 and the accumulator rescaled to float (docs/quant-arith.md §12). Every other node
stays float. No activation range is stored, so nothing depends on data the user did not give;
the price is the run-time min/max pass and float tensors between layers (a calibrated model
keeps activations int8 from layer to layer); which of the two is more accurate depends on the
model (README, "Without calibration data"). The summary says so and how to give calibration
data. Nodes inside If/Loop branches are not quantised dynamically (yet).
"""
from __future__ import annotations

from ..ir import Graph, Node
from ..passes.shapes import infer_shapes
from ..passes.simplify import eliminate_dead, optimize
from . import kinds
from .quantize import LayerPlan, QuantConfig, QuantResult, _kept_float, mark_fp16_arith, to_fp16_weights

DYNAMIC_PRECISION = "int8-dynamic"


def quantize_dynamic(graph: Graph, cfg: QuantConfig = QuantConfig(), *, copy: bool = True) -> QuantResult:
    """Quantise `graph` without calibration data (see the module docstring). `cfg.precision`
    fp16/fp32, `cfg.keep_float` and `cfg.fp16_arith_nodes` are honoured; calibration options do
    not apply."""
    g0 = graph.copy() if copy else graph
    fg = optimize(g0)
    plan: list[LayerPlan] = []
    if cfg.precision != "int8":
        qg = to_fp16_weights(fg) if cfg.precision == "fp16" else fg
        for n in fg.nodes:
            plan.append(LayerPlan(n.name, _op(n), cfg.precision, f"--precision {cfg.precision}"))
        mark_fp16_arith(qg, cfg, plan)
        return QuantResult(qg, fg, plan, {}, [], [], info={"calibration": {"mode": "none"}, "input_shapes": {},
                                                             "constant_inputs": {}})
    q = fg.copy()
    q.qparams = {}
    new_nodes = []
    for n in fg.nodes:
        nn = Node(n.op, list(n.inputs), list(n.outputs), dict(n.attrs), n.name, n.domain)
        if _kept_float(n, cfg):
            why = "--keep-float"
        else:
            why = kinds.dynamic_why_not(q, nn)
        if why is None:
            kinds.lower_dynamic(q, nn)
            plan.append(LayerPlan(n.name, _op(n), DYNAMIC_PRECISION,
                                  "weight-bearing: int8 weights, input quantised at run time"))
        else:
            if why == "no dynamic int8 form":
                why = ("control flow: the weights inside its branches stay float (not quantised dynamically yet)"
                       if list(n.subgraphs()) else "no calibration data (stays float)")
            plan.append(LayerPlan(n.name, _op(n), "fp32", why))
        new_nodes.append(nn)
    q.nodes = new_nodes
    eliminate_dead(q)
    infer_shapes(q)
    mark_fp16_arith(q, cfg, plan)     # --keep-float nodes asked for fp16 arithmetic
    info = {"calibration": {"mode": "dynamic", "feeds": 0}, "input_shapes": {}, "constant_inputs": {},
            "dynamic": True}
    return QuantResult(q, fg, plan, {}, [], [], info=info)


def _op(n: Node) -> str:
    return (n.domain + "." if n.domain else "") + n.op
