"""dsedge: quantise trained models and run them on edge devices.

    import dsedge
    g = dsedge.load("model.onnx")                          # the IR (dsedge.Graph)
    result = dsedge.quantize("model.onnx", "feeds/")       # calibrate + quantise (int8 default)
    result.save("model.int8.onnx")                         # QDQ ONNX; "model.dse" for the C runtime
    print(result.summary())                                # per-layer precision and why, SQNR
"""
from __future__ import annotations

__version__ = "0.1.0"

from .errors import DseError  # noqa: F401
from .ir import Graph, Node, QParams, TensorInfo  # noqa: F401
from .runtime import Runtime  # noqa: F401  (the C runtime's bindings; the library loads on first use)


def quantize(model, calib, **kw):
    """Import, calibrate and quantise; see `dsedge.api.quantize` for the options
    (precision, method, keep_float, bias_correction, progress)."""
    from .api import quantize as _quantize
    return _quantize(model, calib, **kw)


def load(path, **kw) -> Graph:
    """Import a model (ONNX today; TFLite and PyTorch later) into the dsedge IR."""
    p = str(path)
    if p.endswith(".onnx") or isinstance(path, (bytes, bytearray)):
        from .converters.onnx.reader import load_onnx
        return load_onnx(path, **kw)
    from .converters.onnx.reader import load_onnx
    return load_onnx(path, **kw)
