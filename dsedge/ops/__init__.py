"""The op set. Importing this package declares every op in `REGISTRY`.

Id ranges per module (ids are append-only; never reuse or renumber):
  nn.py          1–99     conv, gemm/matmul, norms, pools, resize, softmax, LSTM
  elementwise.py 100–199  arithmetic, activations, comparisons, logic
  tensor.py      200–299  shape and data movement, casts, constants
  reduce.py      300–349  reductions, ArgMax, TopK, CumSum
  control.py     350–369  If, Loop
  quantized.py   370–399  QuantizeLinear, DequantizeLinear, onnxruntime quantised ops
  dsedge-internal ops (fused/lowered forms) use domain "dsedge" and ids from 1000.
"""
from .registry import REGISTRY, OpDef, QuantRule, op  # noqa: F401
from . import nn, elementwise, tensor, reduce, control, quantized, fused  # noqa: F401,E402
