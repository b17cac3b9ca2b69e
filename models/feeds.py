"""Realistic random feeds for zoo models (and any model with the zoo's metadata hints).

Format shared with calibration/eval .npz files: {input name: array [n, *input shape]}.
Images (`dsedge.zoo.input` = image_imagenet) are smooth photo-like RGB in [0,1] - a
low-resolution random field upsampled bilinearly plus fine noise - normalised with the
ImageNet mean/std; token inputs are uniform ids in [0, `dsedge.zoo.vocab`); a model with
`labels` metadata and a "[0,1]" preprocess note (the digits model) gets smooth [0,1] images;
any other float input is standard normal, any other integer input in [0, 10).
"""
from __future__ import annotations

import numpy as np
import onnx

_IMAGENET_MEAN = np.array([0.485, 0.456, 0.406], np.float32)
_IMAGENET_STD = np.array([0.229, 0.224, 0.225], np.float32)


def _smooth_images(rng: np.random.Generator, n: int, c: int, h: int, w: int) -> np.ndarray:
    """Photo-like RGB in [0,1]: a low-resolution random field upsampled (bilinear) plus fine noise."""
    gh, gw = max(2, h // 16), max(2, w // 16)
    coarse = rng.uniform(0.0, 1.0, (n, c, gh + 1, gw + 1))
    ys, xs = np.linspace(0, gh, h), np.linspace(0, gw, w)
    y0, x0 = np.minimum(ys.astype(int), gh - 1), np.minimum(xs.astype(int), gw - 1)
    fy, fx = (ys - y0)[:, None], (xs - x0)[None, :]
    a = coarse[:, :, y0][:, :, :, x0]
    b = coarse[:, :, y0][:, :, :, x0 + 1]
    cc = coarse[:, :, y0 + 1][:, :, :, x0]
    d = coarse[:, :, y0 + 1][:, :, :, x0 + 1]
    img = (a * (1 - fx) + b * fx) * (1 - fy) + (cc * (1 - fx) + d * fx) * fy
    img += rng.normal(0.0, 0.03, img.shape)
    return np.clip(img, 0.0, 1.0)


def random_feeds(model: onnx.ModelProto, n: int = 8, seed: int = 0) -> dict[str, np.ndarray]:
    """`n` realistic random samples for each graph input: {name: array [n, *input shape]}."""
    meta = {p.key: p.value for p in model.metadata_props}
    inits = {t.name for t in model.graph.initializer}
    return random_feeds_for_inputs([vi for vi in model.graph.input if vi.name not in inits], meta, n, seed)


def random_feeds_for_inputs(inputs, meta: dict[str, str], n: int, seed: int) -> dict[str, np.ndarray]:
    """The same for a list of graph-input ValueInfoProtos and a metadata dict."""
    kind = meta.get("dsedge.zoo.input", "")
    rng = np.random.default_rng(seed)
    out: dict[str, np.ndarray] = {}
    for vi in inputs:
        tt = vi.type.tensor_type
        shape = [d.dim_value if d.HasField("dim_value") and d.dim_value > 0 else 1 for d in tt.shape.dim]
        dtype = np.dtype(onnx.helper.tensor_dtype_to_np_dtype(tt.elem_type))
        if dtype.kind == "f" and kind == "image_imagenet" and len(shape) == 4 and shape[1] == 3:
            img = _smooth_images(rng, n * shape[0], 3, shape[2], shape[3]).astype(np.float32)
            img = (img - _IMAGENET_MEAN[:, None, None]) / _IMAGENET_STD[:, None, None]
            val = img.reshape([n, *shape])
        elif dtype.kind in "iu":
            hi = int(meta.get("dsedge.zoo.vocab", 10))
            val = rng.integers(0, hi, size=[n, *shape])
        elif "labels" in meta and "[0,1]" in meta.get("preprocess", ""):  # digits-like
            val = _smooth_images(rng, int(np.prod([n, *shape[:-2]])), 1, shape[-2], shape[-1]).reshape([n, *shape])
        else:
            val = rng.standard_normal([n, *shape])
        out[vi.name] = np.ascontiguousarray(val.astype(dtype))
    return out


