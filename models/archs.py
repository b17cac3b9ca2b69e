"""Standard architectures built in the repo with `onnx.helper` (no download, no torch).

Each builder returns an `onnx.ModelProto` whose weights come from a seeded generator, so the
same arguments give the same bytes (on one machine: the BN statistics below are measured with
onnxruntime, whose float kernels may differ in the last bit between CPU families). Weights are
untrained but keep activations O(1) through the whole network, as a trained model's do:

  * conv / linear weights: He-normal (std sqrt(2 / fan_in)), fan_in = C_in/groups * kh * kw;
  * BatchNormalization: gamma ~ U(0.8, 1.2), beta ~ N(0, 0.1); the last BN of each residual
    branch gets gamma * 0.25 (like zero-init-residual) so residual sums grow slowly with depth;
  * BN running mean/var are *measured* (`_Builder.calibrate_bn`): one onnxruntime run of the
    graph with every BN in training mode on CALIB_SAMPLES random ImageNet-normalised images
    (`feeds.random_feeds_for_inputs`, seed 1). Without it, input-independent offsets pile up
    with depth and the logits barely depend on the image. `calibrate=False` skips it.

Builders (all graphs have batch 1):

  mobilenet_v2(num_classes=1000, input_size=224, width=1.0)   opset 13, input `input` [1,3,S,S]
      inverted residuals (1x1 expand, 3x3 depthwise, 1x1 linear project), ReLU6 as Clip,
      BN left unfolded, GlobalAveragePool + Flatten + Gemm -> `logits` [1,num_classes].
  resnet50(num_classes=1000, input_size=224)                  opset 13, input `input` [1,3,S,S]
      ResNet-50 v1.5 (stride on the 3x3 conv), bottlenecks [3,4,6,3], BN unfolded.
  yolo_detector(num_classes=80, input_size=320, width=0.25)   opset 13, input `images` [1,3,S,S]
      CSP backbone (Conv+SiLU with BN already folded into the conv bias, as exported
      detectors are), SPPF (three chained MaxPool 5x5), PAN neck (Resize nearest x2 +
      Concat), three-scale head: Reshape/Transpose/Sigmoid, YOLOv5 box decoding with Split,
      grid/anchor constants, Concat -> `output` [1, 3*(S/8)^2 + 3*(S/16)^2 + 3*(S/32)^2, 5+nc].
  transformer_encoder(seq=128, dim=256, heads=4, layers=4, vocab=1000)   opset 17
      input `tokens` int64 [1,seq]; Gather token embedding + learned positions, post-LN
      BERT-style layers (LayerNormalization, MatMul attention with Softmax, Reshape with 0
      dims, GELU as 0.5*x*(1+Erf(x/sqrt 2))) -> `hidden` [1,seq,dim].

Every model carries metadata_props `dsedge.zoo.arch` and `dsedge.zoo.input` ("image_imagenet"
or "tokens", plus `dsedge.zoo.vocab` for token models) that `dsedge.zoo.random_feeds` reads.
"""
from __future__ import annotations

import math

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from .feeds import random_feeds_for_inputs

CALIB_SAMPLES = 4  # random images whose statistics become the BN running stats


class _Builder:
    """Accumulates nodes and initializers; names are unique and readable."""

    def __init__(self, seed: int):
        self.rng = np.random.default_rng(seed)
        self.nodes: list[onnx.NodeProto] = []
        self.inits: list[onnx.TensorProto] = []
        self.count: dict[str, int] = {}

    def name(self, base: str) -> str:
        k = self.count.get(base, 0)
        self.count[base] = k + 1
        return f"{base}_{k}" if k else base

    def const(self, base: str, arr) -> str:
        n = self.name(base)
        self.inits.append(numpy_helper.from_array(np.ascontiguousarray(arr), n))
        return n

    def node(self, op: str, inputs: list[str], base: str | None = None, n_out: int = 1, **attrs):
        name = self.name(base or op.lower())
        outs = [name] if n_out == 1 else [f"{name}:{i}" for i in range(n_out)]
        self.nodes.append(helper.make_node(op, inputs, outs, name=name, **attrs))
        return outs[0] if n_out == 1 else outs

    # ------------------------------------------------------------------ weights
    def he(self, shape, fan_in: int) -> np.ndarray:
        return (self.rng.standard_normal(shape) * math.sqrt(2.0 / fan_in)).astype(np.float32)

    def bn_stats(self, c: int, gain: float = 1.0):
        """gamma, beta and starting running stats; `calibrate_bn` replaces mean/var by measured ones."""
        var = self.rng.uniform(0.5, 1.5, c)
        mean = self.rng.normal(0.0, 0.1, c)
        gamma = self.rng.uniform(0.8, 1.2, c) * gain
        beta = self.rng.normal(0.0, 0.1, c)
        return [a.astype(np.float32) for a in (gamma, beta, mean, var)]

    # ------------------------------------------------------------------ layers
    def conv(self, x, cin, cout, k, stride=1, groups=1, bias=False, base="conv", pad=None):
        p = k // 2 if pad is None else pad
        w = self.const(f"{base}.weight", self.he((cout, cin // groups, k, k), cin // groups * k * k))
        ins = [x, w]
        if bias:
            ins.append(self.const(f"{base}.bias", self.rng.normal(0, 0.05, cout).astype(np.float32)))
        return self.node("Conv", ins, base, kernel_shape=[k, k], strides=[stride, stride],
                         pads=[p, p, p, p], group=groups, dilations=[1, 1])

    def bn(self, x, c, gain=1.0, base="bn"):
        g, b, m, v = self.bn_stats(c, gain)
        ins = [x] + [self.const(f"{base}.{k}", a) for k, a in zip(("scale", "bias", "mean", "var"), (g, b, m, v))]
        return self.node("BatchNormalization", ins, base, epsilon=1e-5)

    def relu6(self, x):
        lo = self.const("clip.min", np.array(0.0, np.float32))
        hi = self.const("clip.max", np.array(6.0, np.float32))
        return self.node("Clip", [x, lo, hi], "relu6")

    def silu(self, x):
        return self.node("Mul", [x, self.node("Sigmoid", [x], "sigmoid")], "silu")

    def linear(self, x, din, dout, base="fc", gemm=True):
        if gemm:  # Gemm with transB=1, the torch export form
            w = self.const(f"{base}.weight", self.he((dout, din), din) / np.float32(math.sqrt(2)))
            b = self.const(f"{base}.bias", np.zeros(dout, np.float32))
            return self.node("Gemm", [x, w, b], base, transB=1)
        w = self.const(f"{base}.weight", self.he((din, dout), din) / np.float32(math.sqrt(2)))
        b = self.const(f"{base}.bias", self.rng.normal(0, 0.02, dout).astype(np.float32))
        return self.node("Add", [self.node("MatMul", [x, w], f"{base}.matmul"), b], f"{base}.add")

    # ------------------------------------------------------------------ finishing
    def calibrate_bn(self, inputs: list[onnx.ValueInfoProto], feeds: dict[str, np.ndarray]):
        """Set every BN's running mean/var to the statistics its input really has on `feeds`.

        One onnxruntime run of a copy of the graph (batch = the feeds' leading axis) in which
        every BatchNormalization is in training mode with momentum 0: each layer normalises
        with its batch statistics, which come out as the running stats - the state of a
        trained network, computed for all layers at once.
        """
        bns = [n for n in self.nodes if n.op_type == "BatchNormalization"]
        if not bns:
            return
        import onnxruntime as ort

        producer = {o: n for n in self.nodes for o in n.output}
        need, todo = set(), [bn.input[0] for bn in bns]
        while todo:  # only the nodes the BN inputs depend on
            n = producer.get(todo.pop())
            if n is not None and id(n) not in need:
                need.add(id(n))
                todo.extend(i for i in n.input if i)
        nodes, outs = [], []
        for n in self.nodes:
            if n.op_type == "BatchNormalization":
                k = len(outs) // 2
                outs += [f"__mean{k}", f"__var{k}"]
                nodes.append(helper.make_node("BatchNormalization", list(n.input), [n.output[0], *outs[-2:]],
                                              epsilon=1e-5, momentum=0.0, training_mode=1))
            elif id(n) in need:
                nodes.append(n)
        batch_inputs = []
        for vi in inputs:
            dims = [d.dim_value for d in vi.type.tensor_type.shape.dim]
            batch_inputs.append(helper.make_tensor_value_info(vi.name, vi.type.tensor_type.elem_type, ["N", *dims[1:]]))
        g = helper.make_graph(nodes, "calibrate_bn", batch_inputs,
                              [helper.make_tensor_value_info(o, TensorProto.FLOAT, None) for o in outs],
                              initializer=[t for t in self.inits if t.name in {i for n in nodes for i in n.input}])
        m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 15)])
        m.ir_version = 8
        so = ort.SessionOptions()
        so.intra_op_num_threads = 1  # one reduction order: the same weights on every machine run
        sess = ort.InferenceSession(m.SerializeToString(), so, providers=["CPUExecutionProvider"])
        res = sess.run(None, feeds)
        vals = {}
        for k, bn in enumerate(bns):
            vals[bn.input[3]] = res[2 * k].astype(np.float32)
            vals[bn.input[4]] = np.maximum(res[2 * k + 1], 1e-4).astype(np.float32)
        self.inits = [numpy_helper.from_array(vals[t.name], t.name) if t.name in vals else t for t in self.inits]

    def fold_bn(self):
        """Fold each BatchNormalization into the Conv feeding it (the form exported detectors have)."""
        init = {t.name: i for i, t in enumerate(self.inits)}
        arr = lambda k: numpy_helper.to_array(self.inits[init[k]]).astype(np.float64)  # noqa: E731
        producer = {o: n for n in self.nodes for o in n.output}
        readers: dict[str, int] = {}
        for n in self.nodes:
            for i in n.input:
                readers[i] = readers.get(i, 0) + 1
        keep = []
        for n in self.nodes:
            conv = producer.get(n.input[0]) if n.op_type == "BatchNormalization" else None
            if conv is None or conv.op_type != "Conv" or readers[n.input[0]] != 1:
                keep.append(n)
                continue
            eps = next((a.f for a in n.attribute if a.name == "epsilon"), 1e-5)
            g, b, m, v = (arr(k) for k in n.input[1:5])
            s = g / np.sqrt(v + eps)
            w = arr(conv.input[1]) * s[:, None, None, None]
            bias = (arr(conv.input[2]) if len(conv.input) > 2 and conv.input[2] else 0.0) - m
            self.inits[init[conv.input[1]]] = numpy_helper.from_array(w.astype(np.float32), conv.input[1])
            bname = self.const(f"{conv.name}.bias", (bias * s + b).astype(np.float32))
            conv.input[:] = [conv.input[0], conv.input[1], bname]
            conv.output[0] = n.output[0]
        self.nodes = keep
        used = {i for n in self.nodes for i in n.input}
        self.inits = [t for t in self.inits if t.name in used]

    def model(self, name, inputs, outputs, opset, meta: dict[str, str], *, calibrate: bool = False,
              fold: bool = False) -> onnx.ModelProto:
        # the last node produces the (single) graph output: give it the output's name
        self.nodes[-1].output[0] = outputs[0].name
        if calibrate:
            feeds = random_feeds_for_inputs(inputs, meta, CALIB_SAMPLES, seed=1)
            self.calibrate_bn(inputs, {k: v.reshape(-1, *v.shape[2:]) for k, v in feeds.items()})
        if fold:
            self.fold_bn()
        g = helper.make_graph(self.nodes, name, inputs, outputs, initializer=self.inits)
        m = helper.make_model(g, opset_imports=[helper.make_opsetid("", opset)], producer_name="dsedge.zoo",
                              producer_version="1")
        m.ir_version = 8
        helper.set_model_props(m, {"dsedge.zoo.arch": name, **meta})
        onnx.checker.check_model(m)
        return m


def _image_input(name, size):
    return helper.make_tensor_value_info(name, TensorProto.FLOAT, [1, 3, size, size])


_IMAGENET_META = {"dsedge.zoo.input": "image_imagenet",
                  "preprocess": "RGB, NCHW float32, x/255 then (x - [0.485,0.456,0.406]) / [0.229,0.224,0.225]"}


def _divisible(v: float, d: int = 8) -> int:
    n = max(d, int(v + d / 2) // d * d)
    return n + d if n < 0.9 * v else n


# ------------------------------------------------------------------------ MobileNetV2
def mobilenet_v2(num_classes: int = 1000, input_size: int = 224, width: float = 1.0, *, seed: int = 0,
                 calibrate: bool = True):
    b = _Builder(seed)
    cin = _divisible(32 * width)
    x = b.relu6(b.bn(b.conv("input", 3, cin, 3, 2, base="stem"), cin, base="stem.bn"))
    cfg = [(1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1), (6, 160, 3, 2), (6, 320, 1, 1)]
    blk = 0
    for t, c, n, s in cfg:
        cout = _divisible(c * width)
        for i in range(n):
            stride = s if i == 0 else 1
            p = f"block{blk}"
            hidden = cin * t
            h = x
            if t != 1:
                h = b.relu6(b.bn(b.conv(h, cin, hidden, 1, base=f"{p}.expand"), hidden, base=f"{p}.expand.bn"))
            h = b.relu6(b.bn(b.conv(h, hidden, hidden, 3, stride, groups=hidden, base=f"{p}.dw"), hidden,
                             base=f"{p}.dw.bn"))
            res = stride == 1 and cin == cout
            h = b.bn(b.conv(h, hidden, cout, 1, base=f"{p}.project"), cout, gain=0.5 if res else 1.0,
                     base=f"{p}.project.bn")
            x = b.node("Add", [x, h], f"{p}.add") if res else h
            cin = cout
            blk += 1
    last = _divisible(1280 * max(1.0, width))
    x = b.relu6(b.bn(b.conv(x, cin, last, 1, base="head"), last, base="head.bn"))
    x = b.node("Flatten", [b.node("GlobalAveragePool", [x], "pool")], "flatten", axis=1)
    b.linear(x, last, num_classes, base="logits")
    return b.model("mobilenet_v2", [_image_input("input", input_size)],
                   [helper.make_tensor_value_info("logits", TensorProto.FLOAT, [1, num_classes])], 13,
                   _IMAGENET_META, calibrate=calibrate)


# ------------------------------------------------------------------------ ResNet-50
def resnet50(num_classes: int = 1000, input_size: int = 224, *, seed: int = 0, calibrate: bool = True):
    b = _Builder(seed)
    x = b.node("Relu", [b.bn(b.conv("input", 3, 64, 7, 2, base="conv1"), 64, base="bn1")], "relu")
    x = b.node("MaxPool", [x], "maxpool", kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1])
    cin = 64
    for li, (n, width, stride) in enumerate([(3, 64, 1), (4, 128, 2), (6, 256, 2), (3, 512, 2)], start=1):
        cout = width * 4
        for i in range(n):
            p = f"layer{li}.{i}"
            s = stride if i == 0 else 1
            h = b.node("Relu", [b.bn(b.conv(x, cin, width, 1, base=f"{p}.conv1"), width, base=f"{p}.bn1")])
            h = b.node("Relu", [b.bn(b.conv(h, width, width, 3, s, base=f"{p}.conv2"), width, base=f"{p}.bn2")])
            h = b.bn(b.conv(h, width, cout, 1, base=f"{p}.conv3"), cout, gain=0.25, base=f"{p}.bn3")
            if i == 0:
                x = b.bn(b.conv(x, cin, cout, 1, s, base=f"{p}.downsample"), cout, base=f"{p}.downsample.bn")
            x = b.node("Relu", [b.node("Add", [x, h], f"{p}.add")], f"{p}.relu")
            cin = cout
    x = b.node("Flatten", [b.node("GlobalAveragePool", [x], "avgpool")], "flatten", axis=1)
    b.linear(x, cin, num_classes, base="fc")
    return b.model("resnet50", [_image_input("input", input_size)],
                   [helper.make_tensor_value_info("logits", TensorProto.FLOAT, [1, num_classes])], 13,
                   _IMAGENET_META, calibrate=calibrate)


# ------------------------------------------------------------------------ YOLO-style detector
def yolo_detector(num_classes: int = 80, input_size: int = 320, width: float = 0.25, *, seed: int = 0,
                  calibrate: bool = True):
    if input_size % 32:
        raise ValueError(f"yolo_detector: input_size must be a multiple of 32, got {input_size}")
    b = _Builder(seed)
    ch = lambda c: max(8, _divisible(c * width))  # noqa: E731

    def cbs(x, cin, cout, k, s=1, base="conv"):
        return b.silu(b.bn(b.conv(x, cin, cout, k, s, base=base), cout, base=f"{base}.bn"))

    def csp(x, cin, cout, n, shortcut, base):
        """C3 block: two 1x1 branches, n bottlenecks on one, Concat, 1x1 fuse."""
        c_ = cout // 2
        a = cbs(x, cin, c_, 1, base=f"{base}.cv1")
        for i in range(n):
            h = cbs(cbs(a, c_, c_, 1, base=f"{base}.m{i}.cv1"), c_, c_, 3, base=f"{base}.m{i}.cv2")
            a = b.node("Add", [a, h], f"{base}.m{i}.add") if shortcut else h
        c = cbs(x, cin, c_, 1, base=f"{base}.cv2")
        return cbs(b.node("Concat", [a, c], f"{base}.cat", axis=1), 2 * c_, cout, 1, base=f"{base}.cv3")

    c1, c2, c3, c4, c5 = ch(64), ch(128), ch(256), ch(512), ch(1024)
    x = cbs("images", 3, c1, 3, 2, base="stem")     # /2
    x = cbs(x, c1, c2, 3, 2, base="down1")                              # /4
    x = csp(x, c2, c2, 1, True, "c3_1")
    x = cbs(x, c2, c3, 3, 2, base="down2")                              # /8
    p3 = csp(x, c3, c3, 2, True, "c3_2")
    x = cbs(p3, c3, c4, 3, 2, base="down3")                             # /16
    p4 = csp(x, c4, c4, 3, True, "c3_3")
    x = cbs(p4, c4, c5, 3, 2, base="down4")                             # /32
    x = csp(x, c5, c5, 1, True, "c3_4")
    # SPPF: 1x1 -> three chained 5x5 max pools -> concat -> 1x1
    s = cbs(x, c5, c5 // 2, 1, base="sppf.cv1")
    pools = [s]
    for i in range(3):
        pools.append(b.node("MaxPool", [pools[-1]], f"sppf.pool{i}", kernel_shape=[5, 5], strides=[1, 1],
                            pads=[2, 2, 2, 2]))
    p5 = cbs(b.node("Concat", pools, "sppf.cat", axis=1), 2 * c5, c5, 1, base="sppf.cv2")
    # PAN neck
    scales = b.const("up.scales", np.array([1, 1, 2, 2], np.float32))

    def up(t, base):
        return b.node("Resize", [t, "", scales], base, mode="nearest",
                      coordinate_transformation_mode="asymmetric", nearest_mode="floor")

    h5 = cbs(p5, c5, c4, 1, base="neck.lat5")
    x = csp(b.node("Concat", [up(h5, "neck.up5"), p4], "neck.cat4", axis=1), 2 * c4, c4, 1, False, "neck.c3_4")
    h4 = cbs(x, c4, c3, 1, base="neck.lat4")
    o3 = csp(b.node("Concat", [up(h4, "neck.up4"), p3], "neck.cat3", axis=1), 2 * c3, c3, 1, False, "neck.c3_3")
    x = cbs(o3, c3, c3, 3, 2, base="neck.down3")
    o4 = csp(b.node("Concat", [x, h4], "neck.cat4b", axis=1), 2 * c3, c4, 1, False, "neck.c3_4b")
    x = cbs(o4, c4, c4, 3, 2, base="neck.down4")
    o5 = csp(b.node("Concat", [x, h5], "neck.cat5b", axis=1), 2 * c4, c5, 1, False, "neck.c3_5b")
    # Detect head (YOLOv5 export form)
    no, na = 5 + num_classes, 3
    anchors = np.array([[10, 13, 16, 30, 33, 23], [30, 61, 62, 45, 59, 119], [116, 90, 156, 198, 373, 326]],
                       np.float32).reshape(3, 3, 2)
    outs = []
    split = b.const("head.split", np.array([2, 2, no - 4], np.int64))
    for i, (feat, c, stride) in enumerate([(o3, c3, 8), (o4, c4, 16), (o5, c5, 32)]):
        hw = input_size // stride
        p = f"head.{i}"
        y = b.conv(feat, c, na * no, 1, bias=True, base=f"{p}.conv")
        y = b.node("Reshape", [y, b.const(f"{p}.shape", np.array([1, na, no, hw, hw], np.int64))], f"{p}.reshape")
        y = b.node("Sigmoid", [b.node("Transpose", [y], f"{p}.transpose", perm=[0, 1, 3, 4, 2])], f"{p}.sigmoid")
        xy, wh, conf = b.node("Split", [y, split], f"{p}.split", n_out=3, axis=4)
        gy, gx = np.meshgrid(np.arange(hw, dtype=np.float32), np.arange(hw, dtype=np.float32), indexing="ij")
        grid = (np.stack([gx, gy], -1) - 0.5)[None, None].astype(np.float32)          # [1,1,hw,hw,2]
        two = b.const(f"{p}.two", np.array(2.0, np.float32))
        xy = b.node("Mul", [b.node("Add", [b.node("Mul", [xy, two], f"{p}.xy2"), b.const(f"{p}.grid", grid)],
                                   f"{p}.xyg"), b.const(f"{p}.stride", np.array(stride, np.float32))], f"{p}.xy")
        wh2 = b.node("Mul", [wh, two], f"{p}.wh2")
        wh = b.node("Mul", [b.node("Mul", [wh2, wh2], f"{p}.whsq"),
                            b.const(f"{p}.anchor", anchors[i][None, :, None, None, :])], f"{p}.wh")
        y = b.node("Concat", [xy, wh, conf], f"{p}.cat", axis=4)
        outs.append(b.node("Reshape", [y, b.const(f"{p}.flat", np.array([1, -1, no], np.int64))], f"{p}.flat"))
    b.node("Concat", outs, "output", axis=1)
    n_boxes = na * sum((input_size // s) ** 2 for s in (8, 16, 32))
    return b.model("yolo_detector", [_image_input("images", input_size)],
                   [helper.make_tensor_value_info("output", TensorProto.FLOAT, [1, n_boxes, no])], 13,
                   {"dsedge.zoo.input": "image_imagenet",
                    "preprocess": "RGB, NCHW float32, letterboxed; dsedge.zoo feeds use ImageNet normalisation",
                    "names": ",".join(f"class{i}" for i in range(num_classes))},
                   calibrate=calibrate, fold=True)


# ------------------------------------------------------------------------ Transformer encoder
def transformer_encoder(seq: int = 128, dim: int = 256, heads: int = 4, layers: int = 4, vocab: int = 1000,
                        *, seed: int = 0):
    if dim % heads:
        raise ValueError(f"transformer_encoder: dim {dim} is not divisible by heads {heads}")
    b = _Builder(seed)
    hd = dim // heads
    emb = b.const("embed.tokens", (b.rng.standard_normal((vocab, dim)) * 0.5).astype(np.float32))
    pos = b.const("embed.positions", (b.rng.standard_normal((1, seq, dim)) * 0.1).astype(np.float32))
    x = b.node("Add", [b.node("Gather", [emb, "tokens"], "embed.gather", axis=0), pos], "embed.add")

    def layernorm(t, base):
        g = b.const(f"{base}.weight", b.rng.uniform(0.8, 1.2, dim).astype(np.float32))
        be = b.const(f"{base}.bias", b.rng.normal(0, 0.05, dim).astype(np.float32))
        return b.node("LayerNormalization", [t, g, be], base, axis=-1, epsilon=1e-5)

    x = layernorm(x, "embed.ln")
    split_heads = b.const("shape.heads", np.array([0, 0, heads, hd], np.int64))
    merge_heads = b.const("shape.merge", np.array([0, 0, dim], np.int64))
    scale = b.const("attn.scale", np.array(math.sqrt(hd), np.float32))
    sqrt2 = b.const("gelu.sqrt2", np.array(math.sqrt(2.0), np.float32))
    one = b.const("gelu.one", np.array(1.0, np.float32))
    half = b.const("gelu.half", np.array(0.5, np.float32))
    for li in range(layers):
        p = f"layer{li}"

        def heads_of(t, perm, name):
            return b.node("Transpose", [b.node("Reshape", [t, split_heads], f"{name}.reshape")], f"{name}.t",
                          perm=perm)

        q = heads_of(b.linear(x, dim, dim, f"{p}.q", gemm=False), [0, 2, 1, 3], f"{p}.q")     # [1,h,s,hd]
        k = heads_of(b.linear(x, dim, dim, f"{p}.k", gemm=False), [0, 2, 3, 1], f"{p}.k")     # [1,h,hd,s]
        v = heads_of(b.linear(x, dim, dim, f"{p}.v", gemm=False), [0, 2, 1, 3], f"{p}.v")
        att = b.node("Div", [b.node("MatMul", [q, k], f"{p}.qk"), scale], f"{p}.scale")
        att = b.node("Softmax", [att], f"{p}.softmax", axis=-1)
        ctx = b.node("Transpose", [b.node("MatMul", [att, v], f"{p}.av")], f"{p}.ctx.t", perm=[0, 2, 1, 3])
        ctx = b.node("Reshape", [ctx, merge_heads], f"{p}.ctx.merge")
        x = layernorm(b.node("Add", [x, b.linear(ctx, dim, dim, f"{p}.out", gemm=False)], f"{p}.res1"), f"{p}.ln1")
        h = b.linear(x, dim, 4 * dim, f"{p}.ffn1", gemm=False)
        erf = b.node("Erf", [b.node("Div", [h, sqrt2], f"{p}.gelu.div")], f"{p}.gelu.erf")
        h = b.node("Mul", [b.node("Mul", [h, b.node("Add", [erf, one], f"{p}.gelu.add")], f"{p}.gelu.mul"), half],
                   f"{p}.gelu")
        x = layernorm(b.node("Add", [x, b.linear(h, 4 * dim, dim, f"{p}.ffn2", gemm=False)], f"{p}.res2"),
                      f"{p}.ln2")
    return b.model("transformer_encoder", [helper.make_tensor_value_info("tokens", TensorProto.INT64, [1, seq])],
                   [helper.make_tensor_value_info("hidden", TensorProto.FLOAT, [1, seq, dim])], 17,
                   {"dsedge.zoo.input": "tokens", "dsedge.zoo.vocab": str(vocab)})


ARCHS = {
    "mobilenet_v2": mobilenet_v2,
    "resnet50": resnet50,
    "yolo_detector": yolo_detector,
    "transformer_encoder": transformer_encoder,
}
