"""A small int8 `.tflite` writer for the LiteRT column of benchmarks/latency.py: plain CNNs only.

dsedge writes no `.tflite`, and the usual ONNX -> TFLite paths (onnx2tf, TensorFlow's converter)
need TensorFlow. This writes the flatbuffer directly with what ai-edge-litert already ships
(`ai_edge_litert.schema_py_generated`, `flatbuffers`), so no new dependency. It covers what the
zoo CNNs are made of and refuses the rest (`Unsupported`, with the op): it is a benchmark
helper, not a converter for users.

    convert(float.onnx, calib_feeds, out.tflite) -> {"ops": {...}, "note": ...}

Steps: the inputs fixed to the feeds' shapes, onnxruntime's basic graph optimisations
(BatchNormalization folded into Conv, Identity removed, constants and shape chains folded) give
the graph; onnxruntime runs it on the calibration feeds with
every intermediate tensor as an output for per-tensor min/max (TFLite's own post-training
MinMax scheme); then, in NHWC:
  * activations int8, asymmetric (scale = (max - min) / 255, range widened to hold 0);
  * Conv -> CONV_2D / DEPTHWISE_CONV_2D, weights int8 symmetric per output channel, bias int32
    at s_in * s_w; ONNX pads that are not TFLite's SAME become an explicit PAD + VALID;
    a following Relu or Clip(0, 6) fused (RELU / RELU6); Gemm / MatMul with a constant
    matrix -> FULLY_CONNECTED (per-channel); Add / Mul of two activations (+ fused Relu);
    Sigmoid -> LOGISTIC (output 1/256, -128), HardSwish, HardSigmoid (MUL, ADD + RELU6, MUL), Softmax
    (TRANSPOSEs around it unless over the last axis), MaxPool, GlobalAveragePool -> MEAN,
    Concat, Slice, Resize (nearest, asymmetric), Flatten / Reshape (TRANSPOSE to NCHW order first
    unless the map is 1x1), Transpose, Split;
  * Reshape / Transpose / Split / elementwise ops after a layout change work in ONNX's order
    (a TRANSPOSE from NHWC first), e.g. a YOLO head; Add / Mul / Sub / Div by a constant take it
    as an int8 tensor with its own scale;
  * a float32 NHWC input with QUANTIZE, float32 outputs in ONNX's order through DEQUANTIZE.
Same weights and graph as the ONNX model, quantised the way TFLite's converter would.
"""
from __future__ import annotations

import os
import tempfile

import numpy as np


class Unsupported(Exception):
    """The model has an op (or a form of one) this writer does not map."""


def _optimised(src: str, dst: str) -> None:
    import onnxruntime as ort
    so = ort.SessionOptions()
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_BASIC
    so.optimized_model_filepath = dst
    so.log_severity_level = 3
    ort.InferenceSession(src, so, providers=["CPUExecutionProvider"])


def _ranges(model, calib: list[dict]) -> dict[str, tuple[float, float]]:
    """min/max of every float tensor over the calibration feeds (onnxruntime, all as outputs)."""
    import onnx
    import onnxruntime as ort
    m = onnx.shape_inference.infer_shapes(model)
    names = [o.name for o in m.graph.output]
    have = set(names)
    produced = {o for n in m.graph.node for o in n.output}
    for vi in m.graph.value_info:
        if vi.type.tensor_type.elem_type == onnx.TensorProto.FLOAT and vi.name not in have and vi.name in produced:
            m.graph.output.append(vi)
            names.append(vi.name)
            have.add(vi.name)
    so = ort.SessionOptions()
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    so.log_severity_level = 3
    s = ort.InferenceSession(m.SerializeToString(), so, providers=["CPUExecutionProvider"])
    inputs = {i.name for i in s.get_inputs()}
    r: dict[str, list[float]] = {}

    def add(n, v):
        lo, hi = r.get(n, (np.inf, -np.inf))
        r[n] = [min(lo, float(np.min(v))), max(hi, float(np.max(v)))]
    for f in calib:
        feed = {k: v for k, v in f.items() if k in inputs}
        for n, v in zip(names, s.run(names, feed)):
            add(n, v)
        for n, v in feed.items():
            if v.dtype == np.float32:
                add(n, v)
    return {k: (v[0], v[1]) for k, v in r.items()}


def _qparams(lo: float, hi: float) -> tuple[float, int]:
    lo, hi = min(lo, 0.0), max(hi, 0.0)
    s = (hi - lo) / 255.0 or 1e-8
    return s, int(np.clip(round(-128 - lo / s), -128, 127))


class _Writer:
    def __init__(self):
        from ai_edge_litert import schema_py_generated as S
        self.S = S
        self.tensors, self.buffers, self.ops, self.codes = [], [S.BufferT()], [], {}
        self.by_name: dict[str, int] = {}        # ONNX tensor -> TFLite tensor index
        self.shape: dict[str, list[int]] = {}   # ONNX tensor -> its NHWC (TFLite) shape

    def tensor(self, name, shape, ttype, data=None, scale=None, zp=None, qdim=0) -> int:
        S = self.S
        t = S.TensorT()
        t.name, t.shape, t.type = name.encode(), np.asarray(shape, np.int32), ttype
        t.buffer = 0
        if data is not None:
            b = S.BufferT()
            b.data = np.frombuffer(np.ascontiguousarray(data).tobytes(), np.uint8)
            self.buffers.append(b)
            t.buffer = len(self.buffers) - 1
        if scale is not None:
            q = S.QuantizationParametersT()
            q.scale = np.atleast_1d(np.asarray(scale, np.float32))
            q.zeroPoint = np.atleast_1d(np.asarray(zp, np.int64))
            q.quantizedDimension = qdim
            t.quantization = q
        self.tensors.append(t)
        return len(self.tensors) - 1

    def op(self, code: str, inputs, outputs, opt_type=None, opt=None, version=1) -> None:
        S = self.S
        c = getattr(S.BuiltinOperator, code)
        if c not in self.codes:
            oc = S.OperatorCodeT()
            oc.builtinCode, oc.deprecatedBuiltinCode, oc.version = c, min(c, 127), version
            self.codes[c] = len(self.codes)
        o = S.OperatorT()
        o.opcodeIndex, o.inputs, o.outputs = self.codes[c], list(inputs), list(outputs)
        if opt is not None:
            o.builtinOptionsType, o.builtinOptions = getattr(S.BuiltinOptions, opt_type), opt
        self.ops.append(o)

    def finish(self, inputs, outputs) -> bytes:
        import flatbuffers
        S = self.S
        sg = S.SubGraphT()
        sg.tensors, sg.inputs, sg.outputs, sg.operators, sg.name = self.tensors, inputs, outputs, self.ops, b"main"
        m = S.ModelT()
        m.version, m.subgraphs, m.buffers, m.description = 3, [sg], self.buffers, b"benchmarks/tflite_int8.py"
        codes = sorted(self.codes.items(), key=lambda kv: kv[1])
        m.operatorCodes = []
        for c, _ in codes:
            oc = S.OperatorCodeT()
            oc.builtinCode, oc.deprecatedBuiltinCode, oc.version = c, min(c, 127), 1
            m.operatorCodes.append(oc)
        b = flatbuffers.Builder(1 << 20)
        b.Finish(m.Pack(b), file_identifier=b"TFL3")
        return bytes(b.Output())


def _attr(node, name, default=None):
    import onnx
    for a in node.attribute:
        if a.name == name:
            return onnx.helper.get_attribute_value(a)
    return default


def _scalar(v):
    """A one-element constant as a float (None for anything else)."""
    if v is None or np.size(v) != 1:
        return None
    return float(np.asarray(v).reshape(-1)[0])


def _same_pads(in_hw, k, s, d):
    out = []
    for i in range(2):
        o = -(-in_hw[i] // s[i])
        total = max((o - 1) * s[i] + (k[i] - 1) * d[i] + 1 - in_hw[i], 0)
        out.append((total // 2, total - total // 2))
    return out


def convert(src: str, calib: list[dict], out_path: str) -> dict:
    import onnx
    from onnx import numpy_helper
    with tempfile.TemporaryDirectory(prefix="dsedge-tflite-") as tmp:
        m = onnx.load(src)              # inputs fixed to the feeds' shapes: Shape -> ... chains fold away
        for vi in m.graph.input:
            if vi.name in calib[0]:
                dims = vi.type.tensor_type.shape.dim
                for d, v in zip(dims, np.shape(calib[0][vi.name])):
                    d.ClearField("dim_param")
                    d.dim_value = int(v)
        fixed = os.path.join(tmp, "fixed.onnx")
        onnx.save(m, fixed)
        del m
        opt = os.path.join(tmp, "basic.onnx")
        _optimised(fixed, opt)
        model = onnx.load(opt)
    model = onnx.shape_inference.infer_shapes(model)
    g = model.graph
    consts = {t.name: numpy_helper.to_array(t) for t in g.initializer}
    for n in g.node:
        if n.op_type == "Constant":
            consts[n.output[0]] = numpy_helper.to_array(_attr(n, "value"))
    rng = _ranges(model, calib)
    # TFLite's CONCATENATION (and XNNPACK's) wants one scale for its inputs and output, as its
    # converter arranges: the inputs and output of each Concat share the union of their ranges
    parent: dict[str, str] = {}

    def find(a):
        while parent.get(a, a) != a:
            a = parent[a]
        return a
    for n in g.node:
        if n.op_type == "Concat":
            for i in n.input:
                if i in rng:
                    parent[find(i)] = find(n.output[0])
    groups: dict[str, list] = {}
    for k in list(parent):
        groups.setdefault(find(k), []).append(k)
    for root, members in groups.items():
        members = [*members, root]
        lo, hi = min(rng[m][0] for m in members if m in rng), max(rng[m][1] for m in members if m in rng)
        for m in members:
            rng[m] = (lo, hi)
    shapes = {}
    for vi in [*g.input, *g.value_info, *g.output]:
        shapes[vi.name] = [d.dim_value for d in vi.type.tensor_type.shape.dim]
    consumers: dict[str, list] = {}
    for n in g.node:
        for i in n.input:
            consumers.setdefault(i, []).append(n)
    outputs = {o.name for o in g.output}
    W = _Writer()
    S = W.S
    I8, F32, I32 = S.TensorType.INT8, S.TensorType.FLOAT32, S.TensorType.INT32
    qp: dict[str, tuple[float, int]] = {}

    def nhwc(shape):
        return [shape[0], shape[2], shape[3], shape[1]] if len(shape) == 4 else list(shape)

    lay: dict[str, str] = {}    # ONNX tensor -> "nhwc" (a 4-D map in TFLite's order) or "plain" (ONNX's order)

    def act(name, shape=None, same_as=None, fixed=None, layout=None) -> int:
        """The int8 TFLite tensor of ONNX activation `name` (qparams from its range, or
        `same_as`'s, or `fixed`); layout: `same_as`'s, else nhwc for 4-D, else plain."""
        if name not in rng and same_as is None and fixed is None:
            raise Unsupported(f"no range for {name!r}")
        q = fixed or (qp[same_as] if same_as else _qparams(*rng[name]))
        qp[name] = q
        layout = layout or (lay[same_as] if same_as else "nhwc" if len(shapes[name]) == 4 else "plain")
        shp = shape if shape is not None else nhwc(shapes[name]) if layout == "nhwc" else shapes[name]
        lay[name] = layout
        W.shape[name] = list(shp)
        W.by_name[name] = W.tensor(name, shp, I8, scale=q[0], zp=q[1])
        return W.by_name[name]

    def src_of(name, need_nhwc=False) -> int:
        if name not in W.by_name:
            raise Unsupported(f"input {name!r} is a constant or unmapped (only activations are)")
        if need_nhwc and lay[name] != "nhwc":
            raise Unsupported(f"a 4-D op on {name!r}, which is in ONNX order after a reshape")
        return W.by_name[name]

    def const_like(name, x, arr) -> int:
        """A constant operand of an elementwise op with activation x: int8 (own MinMax scale),
        broadcast-ready in x's layout."""
        arr = np.asarray(arr, np.float32)
        r = len(W.shape[x])
        if arr.ndim > r:
            raise Unsupported("a constant of higher rank than its activation")
        arr = arr.reshape((1,) * (r - arr.ndim) + arr.shape)
        if lay[x] == "nhwc":
            arr = arr.transpose(0, 2, 3, 1)
        sc, zp = _qparams(float(arr.min()), float(arr.max()))
        q = np.clip(np.round(arr / sc) + zp, -128, 127).astype(np.int8)
        return W.tensor(name, list(q.shape), I8, q, sc, zp)

    def as_nhwc(x) -> str:
        """x itself when it is an nhwc map, else (a 4-D tensor in ONNX's order) a TRANSPOSE of it
        to NHWC, registered as `x@nhwc`."""
        if lay.get(x) == "nhwc" or x not in W.by_name:
            return x
        if len(W.shape[x]) != 4:
            raise Unsupported(f"a 4-D op on {x!r} of rank {len(W.shape[x])}")
        y = x + "@nhwc"
        if y not in W.by_name:
            shp = W.shape[x]
            pt = W.tensor(y + "_perm", [4], I32, np.array([0, 2, 3, 1], np.int32))
            shapes[y], qp[y], lay[y], W.shape[y] = shapes[x], qp[x], "nhwc", [shp[0], shp[2], shp[3], shp[1]]
            W.by_name[y] = W.tensor(y, W.shape[y], I8, scale=qp[x][0], zp=qp[x][1])
            W.op("TRANSPOSE", [W.by_name[x], pt], [W.by_name[y]], "TransposeOptions", S.TransposeOptionsT())
        return y

    def to_nchw(x) -> int:
        """x (an nhwc 4-D map) transposed to ONNX's order: a new int8 tensor, same qparams."""
        shp = W.shape[x]
        pt = W.tensor(x + "_perm", [4], I32, np.array([0, 3, 1, 2], np.int32))
        xt = W.tensor(x + "_nchw", [shp[0], shp[3], shp[1], shp[2]], I8, scale=qp[x][0], zp=qp[x][1])
        W.op("TRANSPOSE", [W.by_name[x], pt], [xt], "TransposeOptions", S.TransposeOptionsT())
        return xt

    def fused(node):
        """(activation code, ONNX output name) of a Relu / Clip(0, 6) that is node's only consumer."""
        y = node.output[0]
        cs = consumers.get(y, [])
        if y in outputs or len(cs) != 1:
            return S.ActivationFunctionType.NONE, y
        c = cs[0]
        if c.op_type == "Relu":
            return S.ActivationFunctionType.RELU, c.output[0]
        if c.op_type == "Clip":
            lo = consts.get(c.input[1]) if len(c.input) > 1 and c.input[1] else _attr(c, "min")
            hi = consts.get(c.input[2]) if len(c.input) > 2 and c.input[2] else _attr(c, "max")
            if _scalar(lo) == 0.0 and _scalar(hi) == 6.0:
                return S.ActivationFunctionType.RELU6, c.output[0]
        return S.ActivationFunctionType.NONE, y

    skip: set[str] = set()
    ops_used: dict[str, int] = {}
    in_idx = []
    for vi in g.input:
        if vi.name in consts:
            continue
        shp = shapes[vi.name]
        if vi.type.tensor_type.elem_type != onnx.TensorProto.FLOAT:
            raise Unsupported(f"input {vi.name!r} is not float32")
        f = W.tensor(vi.name + "_float", nhwc(shp), F32)
        in_idx.append(f)
        q = act(vi.name)
        W.op("QUANTIZE", [f], [q])
    for n in g.node:
        if n.name in skip or n.op_type == "Constant":
            continue
        t = n.op_type
        ops_used[t] = ops_used.get(t, 0) + 1
        if t == "Conv":
            x, w = n.input[0], consts.get(n.input[1])
            if w is None or len(shapes.get(x, [])) != 4:
                raise Unsupported("Conv with non-constant weights or not 2-D")
            x = as_nhwc(x)
            b = consts.get(n.input[2]) if len(n.input) > 2 and n.input[2] else np.zeros(w.shape[0], np.float32)
            group = _attr(n, "group", 1)
            k = list(w.shape[2:])
            s, d = _attr(n, "strides", [1, 1]), _attr(n, "dilations", [1, 1])
            pads = _attr(n, "pads", [0, 0, 0, 0])
            cin = shapes[x][1]
            depthwise = group > 1 and group == cin and w.shape[1] == 1
            if group > 1 and not depthwise:
                raise Unsupported(f"grouped Conv (group {group})")
            a_code, y = fused(n)
            if y != n.output[0]:
                skip.add(consumers[n.output[0]][0].name)
            xi = src_of(x, need_nhwc=True)
            hw = W.shape[x][1:3]
            same = _same_pads(hw, k, s, d)
            if all(p == 0 for p in pads):
                padding = S.Padding.VALID
            elif [(pads[0], pads[2]), (pads[1], pads[3])] == same:
                padding = S.Padding.SAME
            else:                                  # explicit PAD (with x's zero point), then VALID
                pv = np.array([[0, 0], [pads[0], pads[2]], [pads[1], pads[3]], [0, 0]], np.int32)
                pt = W.tensor(n.name + "_pads", [4, 2], I32, data=pv)
                shp = [W.shape[x][0], hw[0] + pads[0] + pads[2], hw[1] + pads[1] + pads[3], W.shape[x][3]]
                xp = W.tensor(x + "_padded", shp, I8, scale=qp[x][0], zp=qp[x][1])
                W.op("PAD", [xi, pt], [xp], "PadOptions", S.PadOptionsT())
                xi, padding = xp, S.Padding.VALID
            sw = np.maximum(np.abs(w.reshape(w.shape[0], -1)).max(1), 1e-12) / 127.0
            wq = np.clip(np.round(w / sw[:, None, None, None]), -127, 127).astype(np.int8)
            bq = np.round(b / (qp[x][0] * sw)).astype(np.int32)
            if depthwise:
                wt = wq.transpose(1, 2, 3, 0)          # [1, kh, kw, O]
                wi = W.tensor(n.name + "_w", list(wt.shape), I8, wt, sw, np.zeros_like(sw, np.int64), qdim=3)
            else:
                wt = wq.transpose(0, 2, 3, 1)          # [O, kh, kw, I]
                wi = W.tensor(n.name + "_w", list(wt.shape), I8, wt, sw, np.zeros_like(sw, np.int64), qdim=0)
            bi = W.tensor(n.name + "_b", [len(bq)], I32, bq, qp[x][0] * sw, np.zeros_like(sw, np.int64))
            yi = act(y)
            if depthwise:
                o = S.DepthwiseConv2DOptionsT()
                o.depthMultiplier = w.shape[0] // cin
                W.op("DEPTHWISE_CONV_2D", [xi, wi, bi], [yi], "DepthwiseConv2DOptions", o)
            else:
                o = S.Conv2DOptionsT()
                W.op("CONV_2D", [xi, wi, bi], [yi], "Conv2DOptions", o)
            o.padding, o.strideH, o.strideW = padding, s[0], s[1]
            o.dilationHFactor, o.dilationWFactor, o.fusedActivationFunction = d[0], d[1], a_code
        elif t in ("Gemm", "MatMul"):
            x, w = n.input[0], consts.get(n.input[1])
            if w is None or w.ndim != 2 or len(W.shape.get(x, [])) != 2:
                raise Unsupported(f"{t} without a constant 2-D matrix on a 2-D input")
            if t == "Gemm":
                if _attr(n, "transA", 0) or _attr(n, "alpha", 1.0) != 1.0 or _attr(n, "beta", 1.0) != 1.0:
                    raise Unsupported("Gemm with transA/alpha/beta")
                w = w if _attr(n, "transB", 0) else w.T
                b = consts.get(n.input[2]) if len(n.input) > 2 and n.input[2] else np.zeros(w.shape[0], np.float32)
            else:
                w, b = w.T, np.zeros(w.shape[1], np.float32)
            b = np.broadcast_to(b, (w.shape[0],))
            a_code, y = fused(n)
            if y != n.output[0]:
                skip.add(consumers[n.output[0]][0].name)
            sw = np.maximum(np.abs(w).max(1), 1e-12) / 127.0
            wq = np.clip(np.round(w / sw[:, None]), -127, 127).astype(np.int8)
            bq = np.round(b / (qp[x][0] * sw)).astype(np.int32)
            wi = W.tensor(n.name + "_w", list(wq.shape), I8, wq, sw, np.zeros_like(sw, np.int64), qdim=0)
            bi = W.tensor(n.name + "_b", [len(bq)], I32, bq, qp[x][0] * sw, np.zeros_like(sw, np.int64))
            yi = act(y, [W.shape[x][0], w.shape[0]])
            o = S.FullyConnectedOptionsT()
            o.fusedActivationFunction = a_code
            W.op("FULLY_CONNECTED", [src_of(x), wi, bi], [yi], "FullyConnectedOptions", o)
        elif t in ("Add", "Mul", "Sub", "Div"):
            a, b = n.input
            if t == "Div":
                if b in W.by_name or consts.get(b) is None:
                    raise Unsupported("Div by an activation (no int8 DIV in TFLite)")
                t, cb = "Mul", 1.0 / consts[b]
            else:
                cb = consts.get(b)
            ca = consts.get(a)
            if a in W.by_name and b in W.by_name:
                sa, sb = W.shape[a], W.shape[b]
                if lay[a] != lay[b] or len(sa) != len(sb) or any(p != q and 1 not in (p, q) for p, q in zip(sa, sb)):
                    raise Unsupported(f"{t} of two activations of different ranks or layouts")
                x = a if np.prod(sa) >= np.prod(sb) else b
                ins = [W.by_name[a], W.by_name[b]]
            elif a in W.by_name and cb is not None:
                x, ins = a, [W.by_name[a], const_like(n.name + "_c", a, cb)]
            elif b in W.by_name and ca is not None:
                x, ins = b, [const_like(n.name + "_c", b, ca), W.by_name[b]]
            else:
                raise Unsupported(f"{t} with an unmapped operand")
            a_code, y = fused(n) if t in ("Add", "Sub") else (S.ActivationFunctionType.NONE, n.output[0])
            if y != n.output[0]:
                skip.add(consumers[n.output[0]][0].name)
            o = {"Add": S.AddOptionsT, "Sub": S.SubOptionsT, "Mul": S.MulOptionsT}[t]()
            o.fusedActivationFunction = a_code
            yshape = shapes[y] if lay[x] == "plain" else nhwc(shapes[y])
            W.op(t.upper(), ins, [act(y, yshape, layout=lay[x])], t + "Options", o)
        elif t in ("Relu", "Clip", "Sigmoid", "HardSwish"):
            x = n.input[0]
            code = {"Relu": "RELU", "Sigmoid": "LOGISTIC", "HardSwish": "HARD_SWISH"}.get(t)
            if t == "Clip":
                lo = consts.get(n.input[1]) if len(n.input) > 1 and n.input[1] else None
                hi = consts.get(n.input[2]) if len(n.input) > 2 and n.input[2] else None
                if (_scalar(lo), _scalar(hi)) != (0.0, 6.0):
                    raise Unsupported("Clip other than (0, 6)")
                code = "RELU6"
            fixed = (1.0 / 256, -128) if t == "Sigmoid" else None
            W.op(code, [src_of(x)], [act(n.output[0], W.shape[x], fixed=fixed, layout=lay[x])])
        elif t == "HardSigmoid":        # clip(a x + b, 0, 1) = RELU6(6a x + 6b) / 6: MUL, ADD + RELU6, MUL
            x = n.input[0]
            al, be = _attr(n, "alpha", 0.2), _attr(n, "beta", 0.5)
            lo, hi = sorted((6 * al * rng[x][0], 6 * al * rng[x][1]))
            rng[n.name + "_ax"], rng[n.name + "_r6"] = (lo, hi), (0.0, 6.0)
            shapes[n.name + "_ax"] = shapes[n.name + "_r6"] = shapes[x]
            xi = src_of(x)
            ins = [xi, const_like(n.name + "_a", x, np.float32(6 * al))]
            W.op("MUL", ins, [act(n.name + "_ax", W.shape[x], layout=lay[x])], "MulOptions", S.MulOptionsT())
            o = S.AddOptionsT()
            o.fusedActivationFunction = S.ActivationFunctionType.RELU6
            ins = [W.by_name[n.name + "_ax"], const_like(n.name + "_b", x, np.float32(6 * be))]
            W.op("ADD", ins, [act(n.name + "_r6", W.shape[x], layout=lay[x])], "AddOptions", o)
            ins = [W.by_name[n.name + "_r6"], const_like(n.name + "_s", x, np.float32(1 / 6))]
            W.op("MUL", ins, [act(n.output[0], W.shape[x], layout=lay[x])], "MulOptions", S.MulOptionsT())
        elif t == "Softmax":              # TFLite: over the last axis, output 1/256, -128
            x = n.input[0]
            r = len(shapes[x])
            ax = _attr(n, "axis", -1) % r
            if lay[x] == "nhwc":
                ax = {0: 0, 1: 3, 2: 1, 3: 2}[ax]
            o = S.SoftmaxOptionsT()
            o.beta = 1.0
            if ax == r - 1:
                W.op("SOFTMAX", [src_of(x)], [act(n.output[0], W.shape[x], fixed=(1.0 / 256, -128), layout=lay[x])],
                     "SoftmaxOptions", o)
            else:                           # TRANSPOSE the axis last, SOFTMAX, TRANSPOSE back
                perm = list(range(r))
                perm[ax], perm[-1] = perm[-1], perm[ax]
                shp = [W.shape[x][p] for p in perm]
                pt = W.tensor(n.name + "_perm", [r], I32, np.array(perm, np.int32))
                xt = W.tensor(n.name + "_in_t", shp, I8, scale=qp[x][0], zp=qp[x][1])
                W.op("TRANSPOSE", [src_of(x), pt], [xt], "TransposeOptions", S.TransposeOptionsT())
                yt = W.tensor(n.name + "_out_t", shp, I8, scale=1.0 / 256, zp=-128)
                W.op("SOFTMAX", [xt], [yt], "SoftmaxOptions", o)
                W.op("TRANSPOSE", [yt, pt], [act(n.output[0], W.shape[x], fixed=(1.0 / 256, -128), layout=lay[x])],
                     "TransposeOptions", S.TransposeOptionsT())
        elif t == "Slice":                # constant starts / ends / axes / steps -> STRIDED_SLICE
            x = n.input[0]
            ins = [consts.get(i) if i else None for i in n.input[1:]] + [None] * 4
            st, en, axes, steps = ins[:4]
            if st is None or en is None or (len(n.input) > 3 and n.input[3] and axes is None):
                raise Unsupported("Slice with non-constant bounds")
            r = len(shapes[x])
            axes = [a % r for a in (axes if axes is not None else range(len(st)))]
            steps = steps if steps is not None else [1] * len(axes)
            b, e, k = [0] * r, list(shapes[x]), [1] * r
            for a, s0, e0, k0 in zip(axes, st, en, steps):
                dim = shapes[x][a]
                s0 = int(np.clip(s0 + dim if s0 < 0 else s0, 0, dim))
                e0 = int(np.clip(e0 + dim if e0 < 0 else e0, 0, dim))
                if k0 != 1:
                    raise Unsupported("Slice with steps")
                b[a], e[a] = s0, e0
            if lay[x] == "nhwc":
                b, e, k = (nhwc(v) for v in (b, e, k))
            bt, et, kt = (W.tensor(n.name + f"_{nm}", [r], I32, np.array(v, np.int32))
                          for nm, v in (("begin", b), ("end", e), ("strides", k)))
            out = nhwc(shapes[n.output[0]]) if lay[x] == "nhwc" else shapes[n.output[0]]
            W.op("STRIDED_SLICE", [src_of(x), bt, et, kt], [act(n.output[0], out, same_as=x)],
                 "StridedSliceOptions", S.StridedSliceOptionsT())
        elif t == "MaxPool":
            x = as_nhwc(n.input[0])
            k, s = _attr(n, "kernel_shape"), _attr(n, "strides", [1, 1])
            pads = _attr(n, "pads", [0, 0, 0, 0])
            hw = W.shape[x][1:3]
            if _attr(n, "ceil_mode", 0) or any(v != 1 for v in _attr(n, "dilations", [1, 1])):
                raise Unsupported("MaxPool with ceil_mode or dilations")
            xi = src_of(x, need_nhwc=True)
            if all(p == 0 for p in pads):
                padding = S.Padding.VALID
            elif [(pads[0], pads[2]), (pads[1], pads[3])] == _same_pads(hw, k, s, [1, 1]):
                padding = S.Padding.SAME
            else:      # padded with the zero point: the same as -inf only after a Relu (all values >= 0)
                pv = np.array([[0, 0], [pads[0], pads[2]], [pads[1], pads[3]], [0, 0]], np.int32)
                pt = W.tensor(n.name + "_pads", [4, 2], I32, data=pv)
                shp = [W.shape[x][0], hw[0] + pads[0] + pads[2], hw[1] + pads[1] + pads[3], W.shape[x][3]]
                xp = W.tensor(x + "_padded", shp, I8, scale=qp[x][0], zp=qp[x][1])
                W.op("PAD", [xi, pt], [xp], "PadOptions", S.PadOptionsT())
                xi, padding = xp, S.Padding.VALID
            o = S.Pool2DOptionsT()
            o.padding, o.strideH, o.strideW, o.filterHeight, o.filterWidth = padding, s[0], s[1], k[0], k[1]
            W.op("MAX_POOL_2D", [xi], [act(n.output[0], nhwc(shapes[n.output[0]]), same_as=x)], "Pool2DOptions", o)
        elif t == "GlobalAveragePool":
            x = as_nhwc(n.input[0])
            ax = W.tensor(n.name + "_axes", [2], I32, np.array([1, 2], np.int32))
            o = S.ReducerOptionsT()
            o.keepDims = True
            W.op("MEAN", [src_of(x, need_nhwc=True), ax], [act(n.output[0])], "ReducerOptions", o)
        elif t in ("Flatten", "Reshape"):
            x = n.input[0]
            new = shapes[n.output[0]]
            if not new or min(new) <= 0:
                raise Unsupported(f"{t} to an unknown shape")
            xi = src_of(x)
            shp_in = W.shape[x]
            if lay[x] == "nhwc" and (shp_in[1] * shp_in[2] != 1 or len(new) == 4):
                xi = to_nchw(x)             # ONNX's order first: the result is in ONNX's order ("plain")
            st = W.tensor(n.name + "_shape", [len(new)], I32, np.array(new, np.int32))
            o = S.ReshapeOptionsT()
            o.newShape = list(new)
            W.op("RESHAPE", [xi, st], [act(n.output[0], new, same_as=x, layout="plain")], "ReshapeOptions", o)
        elif t == "Transpose":
            x = n.input[0]
            perm = list(_attr(n, "perm"))
            xi = src_of(x)
            if lay[x] == "nhwc":            # out[i] = nchw[perm[i]] = nhwc[inv[perm[i]]]
                perm = [[0, 3, 1, 2][p] for p in perm]
            pt = W.tensor(n.name + "_perm", [len(perm)], I32, np.array(perm, np.int32))
            W.op("TRANSPOSE", [xi, pt], [act(n.output[0], shapes[n.output[0]], same_as=x, layout="plain")],
                 "TransposeOptions", S.TransposeOptionsT())
        elif t == "Split":
            x = n.input[0]
            r = len(shapes[x])
            ax = _attr(n, "axis", 0) % r
            sizes = consts.get(n.input[1]) if len(n.input) > 1 and n.input[1] else _attr(n, "split")
            if sizes is None:
                sizes = [shapes[o][ax] for o in n.output]
            if lay[x] == "nhwc":
                ax = {0: 0, 1: 3, 2: 1, 3: 2}[ax]
            st = W.tensor(n.name + "_sizes", [len(sizes)], I32, np.array(sizes, np.int32))
            at = W.tensor(n.name + "_axis", [], I32, np.array(ax, np.int32))
            o = S.SplitVOptionsT()
            o.numSplits = len(sizes)
            outs = [act(y, same_as=x, shape=(nhwc(shapes[y]) if lay[x] == "nhwc" else shapes[y])) for y in n.output]
            W.op("SPLIT_V", [src_of(x), st, at], outs, "SplitVOptions", o)
        elif t == "Concat":
            ax = _attr(n, "axis")
            r = len(shapes[n.output[0]])
            ax = ax % r
            ins = [src_of(i) for i in n.input]
            ls = {lay[i] for i in n.input}
            if len(ls) != 1:
                raise Unsupported("Concat of tensors in different layouts")
            if ls == {"nhwc"}:
                ax = {0: 0, 1: 3, 2: 1, 3: 2}[ax]
            o = S.ConcatenationOptionsT()
            o.axis = ax
            y = act(n.output[0], layout=ls.pop())
            for k, i in enumerate(n.input):      # an input with other qparams (e.g. LOGISTIC's): requantise
                if qp[i] != qp[n.output[0]]:
                    rq = W.tensor(i + "_rq", W.shape[i], I8, scale=qp[n.output[0]][0], zp=qp[n.output[0]][1])
                    W.op("QUANTIZE", [ins[k]], [rq])
                    ins[k] = rq
            W.op("CONCATENATION", ins, [y], "ConcatenationOptions", o)
        elif t == "Resize":
            x = as_nhwc(n.input[0])
            if (_attr(n, "mode", b"nearest") != b"nearest" or
                    _attr(n, "coordinate_transformation_mode", b"half_pixel") != b"asymmetric"):
                raise Unsupported("Resize other than nearest / asymmetric")
            out = nhwc(shapes[n.output[0]])
            st = W.tensor(n.name + "_size", [2], I32, np.array(out[1:3], np.int32))
            o = S.ResizeNearestNeighborOptionsT()
            W.op("RESIZE_NEAREST_NEIGHBOR", [src_of(x, need_nhwc=True), st], [act(n.output[0], out, same_as=x)],
                 "ResizeNearestNeighborOptions", o)
        else:
            raise Unsupported(f"op {t}")
    out_idx = []
    for o in g.output:
        if o.name not in W.by_name:
            raise Unsupported(f"output {o.name!r} unmapped")
        xi = to_nchw(o.name) if lay[o.name] == "nhwc" else W.by_name[o.name]
        f = W.tensor(o.name, shapes[o.name], F32)
        W.op("DEQUANTIZE", [xi], [f])
        out_idx.append(f)
    data = W.finish(in_idx, out_idx)
    with open(out_path, "wb") as f:
        f.write(data)
    return {"ops": ops_used, "bytes": len(data)}
