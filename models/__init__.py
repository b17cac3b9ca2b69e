"""dsedge.zoo: the small model zoo.

Two kinds of models:

  * `digits` - a tiny CNN trained on scikit-learn's 8x8 digits, committed in `digits/` with its
    calibration feeds (`calib.npz`, key `image` [64,1,1,8,8]) and test split (`eval.npz`, keys
    `image` [N,1,1,8,8] and `label` [N]); `digits/recipe.py` rebuilds all three bit for bit.
  * standard architectures (`mobilenet_v2`, `resnet50`, `yolo_detector`,
    `transformer_encoder`) built on demand from a seed by `archs.py`; nothing large is committed.

Feeds files and `random_feeds` share one format: {input name: array with a leading sample
axis}, i.e. `feeds[name][i]` is the i-th sample's value for that input.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx

from .archs import ARCHS
from .feeds import random_feeds

_DIGITS = "digits"


def digits_dir() -> Path:
    """Folder holding the committed digits model, calib.npz, eval.npz and recipe.py."""
    return Path(__file__).resolve().parent / _DIGITS


def load_digits_model() -> onnx.ModelProto:
    return onnx.load(str(digits_dir() / "model.onnx"))


def _load_npz(name: str) -> dict[str, np.ndarray]:
    with np.load(digits_dir() / name) as z:
        return {k: z[k] for k in z.files}


def digits_calib() -> dict[str, np.ndarray]:
    """64 calibration feeds: {'image': float32 [64,1,1,8,8]}."""
    return _load_npz("calib.npz")


def digits_eval() -> dict[str, np.ndarray]:
    """The test split: {'image': float32 [N,1,1,8,8], 'label': int64 [N]}."""
    return _load_npz("eval.npz")


def names() -> list[str]:
    """Everything `build` accepts: 'digits' and the architectures."""
    return [_DIGITS, *ARCHS]


def build(name: str, **kw) -> onnx.ModelProto:
    """Build an architecture (keyword arguments go to its builder) or load the digits model."""
    if name == _DIGITS:
        if kw:
            raise TypeError(f"zoo model 'digits' is pre-trained and takes no arguments, got {sorted(kw)}")
        return load_digits_model()
    try:
        fn = ARCHS[name]
    except KeyError:
        raise KeyError(f"unknown zoo model {name!r}; known: {', '.join(names())}") from None
    return fn(**kw)


__all__ = ["ARCHS", "build", "names", "random_feeds", "digits_dir", "load_digits_model", "digits_calib",
           "digits_eval"]
