"""Recipe for the `digits` seed model: a tiny CNN on scikit-learn's bundled 8x8 digits.

Rebuilds `model.onnx`, `calib.npz` and `eval.npz` in this folder bit for bit:

    python models/digits/recipe.py            # writes the three files, prints sha256 + accuracy
    python models/digits/recipe.py --check    # rebuilds in memory, compares with the files

Data: `sklearn.datasets.load_digits` (1797 images, 8x8, pixels 0..16, no download). Pixels
are scaled to [0, 1] (x / 16). A seeded permutation splits it into 360 test images
(`eval.npz`: `image` [360,1,1,8,8] float32, `label` [360] int64), 64 held-out training
images for calibration (`calib.npz`: `image` [64,1,1,8,8]) and the remaining 1373 for fitting.

Network (NCHW, batch fixed to 1 in the export; input `image` [1,1,8,8], output `logits` [1,10]):

    Conv 3x3 1->8 pad 1 (no bias) -> BatchNormalization -> Relu
    Conv 3x3 8->16 stride 2 pad 1 -> Relu            # [1,16,4,4]
    Flatten -> Gemm 256->10 (transB=1)

Training: pure numpy in float64, manual backprop (im2col convolutions, BN in batch-statistics
mode with running averages for export), softmax cross-entropy, Adam with a cosine learning
rate, minibatches from a seeded generator. Everything is deterministic for a given numpy /
BLAS build; the .npz files are written with fixed zip timestamps and no compression so that
their bytes depend only on the arrays.
"""
from __future__ import annotations

import argparse
import hashlib
import io
import sys
import zipfile
from pathlib import Path

import numpy as np

SEED = 0
EPOCHS = 40
BATCH = 32
N_TEST = 360
N_CALIB = 64
BN_EPS = 1e-5
BN_MOMENTUM = 0.9  # running = m * running + (1 - m) * batch  (ONNX's convention)
OPSET = 13
HERE = Path(__file__).resolve().parent


# ----------------------------------------------------------------------------- data
def load_split(seed: int = SEED):
    """Return (x_fit, y_fit, x_calib, x_test, y_test); images float32 [N,1,8,8] in [0,1]."""
    from sklearn.datasets import load_digits

    d = load_digits()
    x = (d.images.astype(np.float32) / np.float32(16.0))[:, None, :, :]
    y = d.target.astype(np.int64)
    perm = np.random.default_rng(seed).permutation(len(x))
    test, calib, fit = perm[:N_TEST], perm[N_TEST:N_TEST + N_CALIB], perm[N_TEST + N_CALIB:]
    return x[fit], y[fit], x[calib], x[test], y[test]


# ----------------------------------------------------------------------------- layers
def _im2col(x, k, stride, pad):
    """x [N,C,H,W] -> cols [N, C*k*k, Ho*Wo] (zero padding)."""
    n, c, h, w = x.shape
    xp = np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)))
    ho, wo = (h + 2 * pad - k) // stride + 1, (w + 2 * pad - k) // stride + 1
    cols = np.empty((n, c, k, k, ho, wo), x.dtype)
    for i in range(k):
        for j in range(k):
            cols[:, :, i, j] = xp[:, :, i:i + stride * ho:stride, j:j + stride * wo:stride]
    return cols.reshape(n, c * k * k, ho * wo), (ho, wo)


def _col2im(dcols, shape, k, stride, pad, ho, wo):
    n, c, h, w = shape
    d = dcols.reshape(n, c, k, k, ho, wo)
    dxp = np.zeros((n, c, h + 2 * pad, w + 2 * pad), dcols.dtype)
    for i in range(k):
        for j in range(k):
            dxp[:, :, i:i + stride * ho:stride, j:j + stride * wo:stride] += d[:, :, i, j]
    return dxp[:, :, pad:pad + h, pad:pad + w]


def conv_fwd(x, w, b, stride, pad):
    k = w.shape[2]
    cols, (ho, wo) = _im2col(x, k, stride, pad)
    y = np.einsum("ok,nkp->nop", w.reshape(w.shape[0], -1), cols, optimize=True)
    if b is not None:
        y = y + b[None, :, None]
    return y.reshape(x.shape[0], w.shape[0], ho, wo), (x.shape, cols, ho, wo)


def conv_bwd(dy, w, cache, stride, pad):
    shape, cols, ho, wo = cache
    k = w.shape[2]
    dy2 = dy.reshape(dy.shape[0], dy.shape[1], -1)
    dw = np.einsum("nop,nkp->ok", dy2, cols, optimize=True).reshape(w.shape)
    db = dy2.sum(axis=(0, 2))
    dcols = np.einsum("ok,nop->nkp", w.reshape(w.shape[0], -1), dy2, optimize=True)
    return _col2im(dcols, shape, k, stride, pad, ho, wo), dw, db


def bn_fwd_train(x, gamma, beta):
    mu = x.mean(axis=(0, 2, 3))
    var = x.var(axis=(0, 2, 3))
    inv = 1.0 / np.sqrt(var + BN_EPS)
    xhat = (x - mu[None, :, None, None]) * inv[None, :, None, None]
    return gamma[None, :, None, None] * xhat + beta[None, :, None, None], (xhat, inv, mu, var)


def bn_bwd(dy, gamma, cache):
    xhat, inv, _, _ = cache
    m = dy.shape[0] * dy.shape[2] * dy.shape[3]
    dgamma = (dy * xhat).sum(axis=(0, 2, 3))
    dbeta = dy.sum(axis=(0, 2, 3))
    dxhat = dy * gamma[None, :, None, None]
    dx = (inv[None, :, None, None] / m) * (m * dxhat - dxhat.sum(axis=(0, 2, 3))[None, :, None, None]
                                           - xhat * (dxhat * xhat).sum(axis=(0, 2, 3))[None, :, None, None])
    return dx, dgamma, dbeta


# ----------------------------------------------------------------------------- model
def init_params(rng):
    he = lambda shape, fan_in: rng.standard_normal(shape) * np.sqrt(2.0 / fan_in)  # noqa: E731
    return {
        "w1": he((8, 1, 3, 3), 9),
        "gamma": np.ones(8), "beta": np.zeros(8),
        "w2": he((16, 8, 3, 3), 72), "b2": np.zeros(16),
        "w3": rng.standard_normal((10, 256)) * np.sqrt(1.0 / 256), "b3": np.zeros(10),
    }


def forward_train(p, x):
    a1, c1 = conv_fwd(x, p["w1"], None, 1, 1)
    z1, cb = bn_fwd_train(a1, p["gamma"], p["beta"])
    r1 = np.maximum(z1, 0)
    a2, c2 = conv_fwd(r1, p["w2"], p["b2"], 2, 1)
    r2 = np.maximum(a2, 0)
    f = r2.reshape(len(x), -1)
    logits = f @ p["w3"].T + p["b3"]
    return logits, (c1, cb, z1, c2, a2, f)


def backward(p, dlogits, cache):
    c1, cb, z1, c2, a2, f = cache
    g = {"w3": dlogits.T @ f, "b3": dlogits.sum(0)}
    dr2 = (dlogits @ p["w3"]).reshape(a2.shape) * (a2 > 0)
    dr1, g["w2"], g["b2"] = conv_bwd(dr2, p["w2"], c2, 2, 1)
    dz1 = dr1 * (z1 > 0)
    da1, g["gamma"], g["beta"] = bn_bwd(dz1, p["gamma"], cb)
    _, g["w1"], _ = conv_bwd(da1, p["w1"], c1, 1, 1)
    return g


def train(x, y, *, epochs: int = EPOCHS, seed: int = SEED, lr: float = 1e-2, wd: float = 1e-4):
    """Adam on softmax cross-entropy; returns float64 params incl. BN running statistics."""
    rng = np.random.default_rng(seed + 1)
    p = init_params(rng)
    m = {k: np.zeros_like(v) for k, v in p.items()}
    v = {k: np.zeros_like(v) for k, v in p.items()}
    run_mean, run_var = np.zeros(8), np.ones(8)
    x = x.astype(np.float64)
    steps_per_epoch = -(-len(x) // BATCH)
    total, t = epochs * steps_per_epoch, 0
    b1, b2 = 0.9, 0.999
    for _ in range(epochs):
        order = rng.permutation(len(x))
        for s in range(steps_per_epoch):
            idx = order[s * BATCH:(s + 1) * BATCH]
            logits, cache = forward_train(p, x[idx])
            z = logits - logits.max(1, keepdims=True)
            prob = np.exp(z)
            prob /= prob.sum(1, keepdims=True)
            prob[np.arange(len(idx)), y[idx]] -= 1.0
            g = backward(p, prob / len(idx), cache)
            _, _, mu, var = cache[1]
            n = len(idx) * 64
            run_mean = BN_MOMENTUM * run_mean + (1 - BN_MOMENTUM) * mu
            run_var = BN_MOMENTUM * run_var + (1 - BN_MOMENTUM) * var * n / (n - 1)
            t += 1
            rate = lr * 0.5 * (1 + np.cos(np.pi * (t - 1) / total))
            for k in p:
                gk = g[k] + (wd * p[k] if k.startswith("w") else 0.0)
                m[k] = b1 * m[k] + (1 - b1) * gk
                v[k] = b2 * v[k] + (1 - b2) * gk * gk
                p[k] = p[k] - rate * (m[k] / (1 - b1 ** t)) / (np.sqrt(v[k] / (1 - b2 ** t)) + 1e-8)
    p["mean"], p["var"] = run_mean, run_var
    return {k: val.astype(np.float32) for k, val in p.items()}


def forward_eval(p, x):
    """Inference-mode forward in numpy (float32 weights, float64 math): logits [N,10]."""
    x = x.astype(np.float64)
    a1, _ = conv_fwd(x, p["w1"].astype(np.float64), None, 1, 1)
    sc = p["gamma"] / np.sqrt(p["var"].astype(np.float64) + BN_EPS)
    z1 = (a1 - p["mean"][None, :, None, None]) * sc[None, :, None, None] + p["beta"][None, :, None, None]
    a2, _ = conv_fwd(np.maximum(z1, 0), p["w2"].astype(np.float64), p["b2"], 2, 1)
    return np.maximum(a2, 0).reshape(len(x), -1) @ p["w3"].T.astype(np.float64) + p["b3"]


# ----------------------------------------------------------------------------- export
def to_onnx(p) -> "onnx.ModelProto":
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    inits = [numpy_helper.from_array(np.ascontiguousarray(p[k]), name) for k, name in [
        ("w1", "conv1.weight"), ("gamma", "bn1.scale"), ("beta", "bn1.bias"), ("mean", "bn1.mean"),
        ("var", "bn1.var"), ("w2", "conv2.weight"), ("b2", "conv2.bias"), ("w3", "fc.weight"), ("b3", "fc.bias")]]
    nodes = [
        helper.make_node("Conv", ["image", "conv1.weight"], ["conv1"], name="conv1",
                         kernel_shape=[3, 3], pads=[1, 1, 1, 1], strides=[1, 1]),
        helper.make_node("BatchNormalization", ["conv1", "bn1.scale", "bn1.bias", "bn1.mean", "bn1.var"],
                         ["bn1"], name="bn1", epsilon=BN_EPS, momentum=BN_MOMENTUM),
        helper.make_node("Relu", ["bn1"], ["relu1"], name="relu1"),
        helper.make_node("Conv", ["relu1", "conv2.weight", "conv2.bias"], ["conv2"], name="conv2",
                         kernel_shape=[3, 3], pads=[1, 1, 1, 1], strides=[2, 2]),
        helper.make_node("Relu", ["conv2"], ["relu2"], name="relu2"),
        helper.make_node("Flatten", ["relu2"], ["flat"], name="flatten", axis=1),
        helper.make_node("Gemm", ["flat", "fc.weight", "fc.bias"], ["logits"], name="fc", transB=1),
    ]
    g = helper.make_graph(
        nodes, "digits",
        [helper.make_tensor_value_info("image", TensorProto.FLOAT, [1, 1, 8, 8])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, [1, 10])],
        initializer=inits)
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", OPSET)], producer_name="dsedge.zoo",
                          producer_version="1", doc_string="8x8 digit classifier (sklearn load_digits), "
                                                           "trained by models/digits/recipe.py")
    m.ir_version = 8
    helper.set_model_props(m, {
        "labels": ",".join(str(i) for i in range(10)),
        "preprocess": "8x8 grayscale, 0 = background; pixel values 0..16 from sklearn load_digits divided "
                      "by 16 to [0,1]; float32 NCHW [1,1,8,8]",
        "source": "sklearn.datasets.load_digits; recipe models/digits/recipe.py",
    })
    onnx.checker.check_model(m)
    return m


def npz_bytes(arrays: dict[str, np.ndarray]) -> bytes:
    """An .npz (np.load-compatible) whose bytes depend only on the arrays: fixed timestamps, stored."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_STORED) as zf:
        for key in sorted(arrays):
            info = zipfile.ZipInfo(key + ".npy", date_time=(1980, 1, 1, 0, 0, 0))
            info.external_attr = 0o644 << 16
            arr = io.BytesIO()
            np.lib.format.write_array(arr, np.ascontiguousarray(arrays[key]), version=(1, 0), allow_pickle=False)
            zf.writestr(info, arr.getvalue())
    return buf.getvalue()


def build(*, epochs: int = EPOCHS, seed: int = SEED) -> tuple[dict[str, bytes], float]:
    """Train and export; returns ({file name: bytes}, float test accuracy of the numpy forward)."""
    x_fit, y_fit, x_cal, x_te, y_te = load_split(seed)
    p = train(x_fit, y_fit, epochs=epochs, seed=seed)
    acc = float((forward_eval(p, x_te).argmax(1) == y_te).mean())
    files = {
        "model.onnx": to_onnx(p).SerializeToString(),
        "calib.npz": npz_bytes({"image": x_cal[:, None]}),
        "eval.npz": npz_bytes({"image": x_te[:, None], "label": y_te}),
    }
    return files, acc


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", type=Path, default=HERE, help="output folder (default: this recipe's folder)")
    ap.add_argument("--epochs", type=int, default=EPOCHS, help=f"training epochs (default {EPOCHS})")
    ap.add_argument("--check", action="store_true", help="rebuild in memory and compare with the files in --out")
    a = ap.parse_args(argv)
    files, acc = build(epochs=a.epochs)
    print(f"float test accuracy (numpy forward): {acc:.4f}", file=sys.stderr)
    bad = 0
    for name, data in files.items():
        path = a.out / name
        digest = hashlib.sha256(data).hexdigest()
        if a.check:
            same = path.exists() and path.read_bytes() == data
            bad += not same
            print(f"{'ok  ' if same else 'DIFF'} {name} {digest}")
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)
            print(f"{digest}  {name} ({len(data)} bytes)")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
