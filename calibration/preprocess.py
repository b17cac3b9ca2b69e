"""Preprocessing of images and WAV audio into model feeds, as frozen, serialisable specs.

`--preprocess` takes comma-separated `key=value` options; a list value continues over the
following commas (`mean=0.485,0.456,0.406,std=0.229,0.224,0.225`; `/` also separates list
items). `resolve(graph, kind, options)` turns the options plus the model's input (name, shape,
dtype) into an `ImageSpec` or an `AudioSpec`: frozen dataclasses holding every resolved value,
so that the spec alone (no graph) reproduces the feeds. `spec.to_json()` is what the exporters
store (`.dse` metadata key `preprocessing`, QDQ ONNX `metadata_props` key
`dsedge.preprocessing`); `spec_from_json` reads it back (`dsedge run`, `dsedge.Runtime`).

Images (Pillow, imported only when an image is read; `pip install dsedge[images]`):
  decode -> EXIF orientation -> color (rgb | bgr | gray) -> resize -> center crop
  -> x = (pixel * scale - mean) / std -> layout (nchw | nhwc) -> the input's dtype.
  Options and defaults (from the input's shape and dtype):
    input    the image input (default: the one input of rank 3 or 4 whose channel axis,
             1 or 3, is second or last)
    resize   `N`: shorter side to N, aspect kept (then a center crop to the model's size);
             `WxH`: exactly W x H; `0xH` / `Wx0`: that height / width, aspect kept.
             Default: the model's static W x H (exactly); a dynamic width or height keeps the
             aspect ratio; both dynamic: no resize.
    crop     `N` or `WxH`: center crop after the resize (default: none, or the model's size
             after `resize=N`)
    filter   bilinear | bicubic | lanczos | box | nearest (default bilinear; Pillow's resize,
             which low-pass filters when it shrinks)
    color    rgb | bgr | gray (default: gray for 1 channel, rgb for 3)
    layout   nchw | nhwc (default: where the input's channel axis is; a rank-3 input has no
             batch axis)
    scale    pixel multiplier (default 1/255 for a float input, 1 for an integer input)
    mean, std  per channel (or one value for all); default 0 and 1
  The final size must equal the model's static height and width, else an error names the
  option to change.

WAV audio (standard library `wave`; PCM 8/16/24/32-bit, mono or stereo averaged to mono,
scaled to [-1, 1)), resampled to `sample_rate` (calibration/resample.py), cut into windows:
    input        the signal input (default: the float input of rank 1..3 whose leading
                 dimensions are 1 or dynamic)
    sample_rate  the model's rate (default 16000)
    window       samples per feed (default: the input's static last dimension; a dynamic one:
                 sample_rate, i.e. 1 s chunks)
    hop          samples between window starts (default: window, no overlap)
    scale        gain applied to the [-1, 1) signal (default 1)
  A file gives ceil((n - window) / hop) + 1 windows (at least 1); the last one is zero-padded.
    carry        recurrent state, `OUTPUT>INPUT[/...]` or `none` (default: an output named like a
                 zero-filled float input plus N, n, _out, _next: silero's stateN > state)
  Every other input of the model gets zeros of its shape (dynamic dims 1), which is the initial
  state of a streaming model, except an integer scalar whose name contains `sr` or `rate`,
  which gets the sample rate (silero-vad's `sr`). A carried state starts at zeros in each file
  and then takes the model's output for the previous window: during calibration from the float
  model (calibration/collect.py hands each feed's outputs back), when running from the
  artifact's own outputs (`dsedge run`, `Runtime.run_file`). Without outputs (e.g. `compare`)
  it stays zero.
"""
from __future__ import annotations

import dataclasses
import json
import re
import wave
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Optional

import numpy as np

from dsedge.errors import FeedError

from .resample import Resampler, resample

IMAGE_EXTS = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm", ".pgm", ".pbm")
AUDIO_EXTS = (".wav",)
FILTERS = ("bilinear", "bicubic", "lanczos", "box", "nearest")
DEFAULT_SAMPLE_RATE = 16000
_IMAGE_KEYS = ("input", "resize", "crop", "filter", "color", "layout", "scale", "mean", "std")
_AUDIO_KEYS = ("input", "sample_rate", "window", "hop", "scale", "carry")
_WAV_FIX = "convert it to PCM WAV, e.g. `sox in.wav -b 16 -e signed-integer out.wav`"


@dataclass(frozen=True)
class OtherInput:
    """A model input the preprocessing does not produce: filled with zeros or the sample rate."""

    name: str
    dtype: str
    shape: tuple[int, ...]
    fill: str = "zeros"          # "zeros" | "sample_rate"


@dataclass(frozen=True)
class ImageSpec:
    input: str
    dtype: str                              # the input's numpy dtype name
    batch: bool                             # rank 4 (with a batch axis of 1) or rank 3
    layout: str                             # "nchw" | "nhwc"
    color: str                              # "rgb" | "bgr" | "gray"
    resize: Optional[tuple[int, int]]       # (W, H); 0 = keep the aspect ratio; None = no resize
    shorter: Optional[int]                  # resize the shorter side to this (aspect kept)
    crop: Optional[tuple[int, int]]         # (W, H) center crop after the resize
    filter: str
    scale: float
    mean: tuple[float, ...]
    std: tuple[float, ...]
    others: tuple[OtherInput, ...] = ()
    kind: str = "image"

    @property
    def channels(self) -> int:
        return 1 if self.color == "gray" else 3

    def to_json(self) -> str:
        return _to_json(self)

    def describe(self) -> str:
        parts = [f"input={self.input}"]
        if self.shorter:
            parts.append(f"resize={self.shorter}")
        elif self.resize:
            parts.append(f"resize={self.resize[0]}x{self.resize[1]}")
        if self.crop:
            parts.append(f"crop={self.crop[0]}x{self.crop[1]}")
        parts += [f"filter={self.filter}", f"color={self.color}", f"layout={self.layout}",
                  f"scale={self.scale:g}", "mean=" + "/".join(f"{v:g}" for v in self.mean),
                  "std=" + "/".join(f"{v:g}" for v in self.std)]
        return ",".join(parts)

    # -- applying
    def array(self, image) -> np.ndarray:
        """A PIL image (or an HxW / HxWxC uint8 array) -> the input array."""
        img = _to_pil(image)
        pil = _pil()
        if self.color == "gray":
            img = img.convert("L")
        else:
            img = img.convert("RGB")
        w0, h0 = img.size
        size = None
        if self.shorter:
            s = self.shorter / min(w0, h0)
            size = (max(1, round(w0 * s)), max(1, round(h0 * s)))
        elif self.resize:
            rw, rh = self.resize
            if rw == 0:
                rw = max(1, round(w0 * rh / h0))
            if rh == 0:
                rh = max(1, round(h0 * rw / w0))
            size = (rw, rh)
        if size is not None and size != img.size:
            img = img.resize(size, resample=_filter(pil, self.filter))
        if self.crop:
            cw, ch = self.crop
            w, h = img.size
            if cw > w or ch > h:
                raise FeedError(f"the image is {w}x{h} after resizing, smaller than the crop {cw}x{ch}",
                                hint="make `resize` at least the crop size")
            left, top = (w - cw) // 2, (h - ch) // 2
            img = img.crop((left, top, left + cw, top + ch))
        a = np.asarray(img)
        if a.ndim == 2:
            a = a[:, :, None]
        if self.color == "bgr":
            a = a[:, :, ::-1]
        dt = np.dtype(self.dtype)
        x = (a.astype(np.float64) * self.scale - np.asarray(self.mean, np.float64)) / np.asarray(self.std, np.float64)
        if dt.kind == "f":
            x = x.astype(dt)
        else:                                    # an integer input: round and saturate
            info = np.iinfo(dt)
            x = np.clip(np.rint(x), info.min, info.max).astype(dt)
        if self.layout == "nchw":
            x = x.transpose(2, 0, 1)
        if self.batch:
            x = x[None]
        return np.ascontiguousarray(x)

    def feeds(self, source) -> Iterator[dict[str, np.ndarray]]:
        """One feed dict from an image path, a PIL image or a uint8 array."""
        img = read_image(source) if isinstance(source, (str, Path)) else source
        try:
            x = self.array(img)
        except FeedError as e:
            raise FeedError(f"{source if isinstance(source, (str, Path)) else 'image'}: {e}") from None
        yield {self.input: x, **_other_values(self.others, None)}


@dataclass(frozen=True)
class AudioSpec:
    input: str
    dtype: str
    shape: tuple[int, ...]                  # the input's shape with the window as last dim
    sample_rate: int
    window: int
    hop: int
    scale: float = 1.0
    others: tuple[OtherInput, ...] = ()
    carry: tuple[tuple[str, str], ...] = ()    # (output, input): recurrent state fed to the next window
    kind: str = "audio"

    def to_json(self) -> str:
        return _to_json(self)

    def describe(self) -> str:
        return (f"input={self.input},sample_rate={self.sample_rate},window={self.window},hop={self.hop},"
                f"scale={self.scale:g},carry=" + ("/".join(f"{o}>{i}" for o, i in self.carry) or "none"))

    def n_windows(self, n_samples: int) -> int:
        if n_samples <= self.window:
            return 1
        return -(-(n_samples - self.window) // self.hop) + 1

    def windows(self, signal) -> Iterator[np.ndarray]:
        """The windows of a mono signal already at `sample_rate` (zero-padded at the end)."""
        x = np.asarray(signal, np.float64).reshape(-1)
        for k in range(self.n_windows(len(x))):
            w = x[k * self.hop:k * self.hop + self.window]
            if len(w) < self.window:
                w = np.concatenate([w, np.zeros(self.window - len(w))])
            yield self._shape(w)

    def _shape(self, w: np.ndarray) -> np.ndarray:
        return (w * self.scale).astype(np.dtype(self.dtype)).reshape(self.shape)

    def feeds(self, source, sample_rate: int | None = None, state=None) -> Iterator[dict[str, np.ndarray]]:
        """Feed dicts, one per window, from a WAV path or a 1-D array at `sample_rate` (default:
        the spec's rate). A file is streamed: memory stays at one block plus one window.

        Recurrent state (`carry`): each feed's state inputs start at zeros; when `state` (a
        callable) is given, it is called after each feed is consumed and returns the outputs of
        that window ({name: array}, or None), whose carried outputs feed the next window."""
        others = _other_values(self.others, self.sample_rate)
        if isinstance(source, (str, Path)):
            for w in self._stream_windows(read_wav_blocks(source)):
                yield {self.input: w, **others}
                others = self._next_state(others, state)
            return
        x = np.asarray(source, np.float64)
        if x.ndim == 2:                     # (samples, channels)
            x = x.mean(axis=1)
        sr = self.sample_rate if sample_rate is None else int(sample_rate)
        if sr != self.sample_rate:
            x = resample(x, sr, self.sample_rate)
        for w in self.windows(x):
            yield {self.input: w, **others}
            others = self._next_state(others, state)

    def _next_state(self, others, state):
        if not self.carry or state is None:
            return others
        outs = state()
        if not outs:
            return others
        nxt = dict(others)
        for o, i in self.carry:
            if o in outs:
                nxt[i] = np.asarray(outs[o]).astype(others[i].dtype).reshape(others[i].shape)
        return nxt

    def _stream_windows(self, blocks) -> Iterator[np.ndarray]:
        sr, _, _ = next(blocks)
        r = Resampler(sr, self.sample_rate)
        buf = np.zeros(0, np.float64)
        start = 0                                # absolute index of buf[0]
        k = 0                                    # next window
        total = 0
        for _, _, x in blocks:
            y = r.feed(x)
            total += len(y)
            buf = np.concatenate([buf, y])
            while k * self.hop + self.window <= start + len(buf):
                a = k * self.hop - start
                yield self._shape(buf[a:a + self.window])
                k += 1
            drop = min(k * self.hop - start, len(buf))
            if drop > 0:
                buf, start = buf[drop:], start + drop
        y = r.flush()
        total += len(y)
        buf = np.concatenate([buf, y])
        n = self.n_windows(total)
        while k < n:
            a = k * self.hop - start
            w = buf[max(a, 0):a + self.window]
            yield self._shape(np.concatenate([w, np.zeros(self.window - len(w))]))
            k += 1


Spec = ImageSpec | AudioSpec


def _to_json(spec) -> str:
    d = dataclasses.asdict(spec)
    d = {"kind": d.pop("kind"), **d}
    return json.dumps(d, separators=(",", ":"), sort_keys=False)


def _tup(v):
    return None if v is None else tuple(v)


def spec_from_json(text: str) -> Spec:
    """The spec a `to_json()` string describes (the artifact's `preprocessing` metadata)."""
    try:
        d = json.loads(text)
        kind = d.pop("kind")
        others = tuple(OtherInput(o["name"], o["dtype"], tuple(o["shape"]), o["fill"]) for o in d.pop("others", []))
        if kind == "image":
            for k in ("resize", "crop", "mean", "std"):
                d[k] = _tup(d[k])
            return ImageSpec(**d, others=others)
        if kind == "audio":
            d["shape"] = tuple(d["shape"])
            d["carry"] = tuple(tuple(c) for c in d.get("carry", ()))
            return AudioSpec(**d, others=others)
    except (ValueError, KeyError, TypeError, AttributeError) as e:
        raise FeedError(f"unreadable preprocessing metadata ({type(e).__name__}: {e}): {text[:200]!r}") from None
    raise FeedError(f"unknown preprocessing kind {kind!r} in the metadata")


def _other_values(others, sample_rate) -> dict[str, np.ndarray]:
    out = {}
    for o in others:
        a = np.zeros(o.shape, np.dtype(o.dtype))
        if o.fill == "sample_rate":
            a[...] = DEFAULT_SAMPLE_RATE if sample_rate is None else sample_rate
        out[o.name] = a
    return out


# -- option parsing ----------------------------------------------------------------------

def parse_options(text: str | None) -> dict[str, str]:
    """`resize=224,mean=0.485,0.456,0.406,std=...` -> {key: value}; list items continue a key."""
    out: dict[str, str] = {}
    if not text:
        return out
    last = None
    for tok in (t.strip() for t in str(text).split(",")):
        if not tok:
            continue
        if "=" in tok:
            k, v = tok.split("=", 1)
            k = k.strip().lower().replace("-", "_")
            if k in out:
                raise FeedError(f"--preprocess: {k!r} given twice")
            out[k] = v.strip()
            last = k
        elif last is not None:
            out[last] += "/" + tok
        else:
            raise FeedError(f"--preprocess: {tok!r} is not key=value",
                            hint="e.g. --preprocess resize=224,mean=0.485,0.456,0.406,std=0.229,0.224,0.225")
    return out


def _floats(key: str, v: str) -> tuple[float, ...]:
    try:
        vals = tuple(float(x) for x in re.split(r"[/:;\s]+", v.strip("[]() ")) if x)
    except ValueError:
        raise FeedError(f"--preprocess: {key}={v!r} is not a list of numbers") from None
    if not vals:
        raise FeedError(f"--preprocess: {key} is empty")
    return vals


def _number(key: str, v: str) -> float:
    try:
        if "/" in v:                       # scale=1/255
            a, b = v.split("/", 1)
            return float(a) / float(b)
        return float(v)
    except (ValueError, ZeroDivisionError):
        raise FeedError(f"--preprocess: {key}={v!r} is not a number") from None


def _int(key: str, v: str, minimum: int = 1) -> int:
    try:
        n = int(v)
    except ValueError:
        raise FeedError(f"--preprocess: {key}={v!r} is not an integer") from None
    if n < minimum:
        raise FeedError(f"--preprocess: {key} must be >= {minimum}, got {n}")
    return n


def _size(key: str, v: str) -> tuple[int, int] | int:
    m = re.fullmatch(r"\s*(\d+)\s*(?:[x*]\s*(\d+))?\s*", v.lower())
    if not m:
        raise FeedError(f"--preprocess: {key}={v!r} is not N or WxH")
    if m.group(2) is None:
        return _int(key, m.group(1))
    w, h = int(m.group(1)), int(m.group(2))
    if w == 0 and h == 0:
        raise FeedError(f"--preprocess: {key}={v!r}: at most one side may be 0 (keep the aspect ratio)")
    return w, h


# -- resolving against the model ----------------------------------------------------------

def _static(d) -> int | None:
    return d if isinstance(d, int) and d >= 0 else None


def _input_infos(graph) -> list[tuple[str, tuple | None, np.dtype | None]]:
    out = []
    for name in graph.inputs:
        info = graph.tensor_info(name)
        out.append((name, None if info.shape is None else tuple(info.shape), info.dtype))
    return out


def _image_layout(shape) -> str | None:
    """'nchw' / 'nhwc' when the shape has a channel axis of 1 or 3 in one of those places."""
    if shape is None or len(shape) not in (3, 4):
        return None
    s = shape[1:] if len(shape) == 4 else shape
    if len(shape) == 4 and _static(shape[0]) not in (None, 1):
        return None
    c_first, c_last = _static(s[0]), _static(s[2])
    if c_first in (1, 3) and c_last not in (1, 3):
        return "nchw"
    if c_last in (1, 3) and c_first not in (1, 3):
        return "nhwc"
    if c_first in (1, 3):
        return "nchw"
    return None


def _others(infos, chosen: str, where: str) -> tuple[OtherInput, ...]:
    out = []
    for name, shape, dtype in infos:
        if name == chosen:
            continue
        if shape is None or dtype is None:
            raise FeedError(f"{where}: input {name!r} has no declared shape or dtype, so the preprocessing "
                            "cannot fill it", hint="give .npz feeds for this model")
        shp = tuple(_static(d) or 1 if _static(d) != 0 else 0 for d in shape)
        low = name.lower()
        fill = "sample_rate" if (dtype.kind in "iu" and int(np.prod(shp)) == 1
                                 and ("sr" in low or "rate" in low)) else "zeros"
        out.append(OtherInput(name, np.dtype(dtype).name, shp, fill))
    return tuple(out)


def resolve(graph, kind: str, options=None, *, where: str = "--preprocess") -> Spec:
    """Options (a string, a dict, or None for all defaults) + the model's inputs -> a spec."""
    opts = parse_options(options) if not isinstance(options, dict) else dict(options)
    infos = _input_infos(graph)
    keys = _IMAGE_KEYS if kind == "image" else _AUDIO_KEYS
    unknown = [k for k in opts if k not in keys]
    if unknown:
        raise FeedError(f"{where}: unknown option(s) {', '.join(unknown)} for {kind} feeds",
                        hint=f"{kind} options are {', '.join(keys)}")
    if kind == "image":
        return _resolve_image(infos, opts, where)
    if kind == "audio":
        return _resolve_audio(infos, opts, where, list(graph.outputs))
    raise ValueError(kind)


def _pick(infos, opts, where, ok, what: str):
    if "input" in opts:
        for t in infos:
            if t[0] == opts["input"]:
                return t
        raise FeedError(f"{where}: input={opts['input']!r} is not an input of the model",
                        hint="the model's inputs are " + ", ".join(repr(t[0]) for t in infos))
    cands = [t for t in infos if ok(t)]
    if len(cands) != 1:
        desc = ", ".join(f"{n!r} {list(s) if s is not None else '?'} {dt}" for n, s, dt in infos)
        raise FeedError(f"{where}: {'no' if not cands else 'more than one'} input looks like {what} ({desc})",
                        hint="name it with --preprocess input=NAME")
    return cands[0]


def _resolve_image(infos, opts, where) -> ImageSpec:
    name, shape, dtype = _pick(infos, opts, where, lambda t: _image_layout(t[1]) is not None
                               and t[2] is not None and t[2].kind in "fiu", "an image (rank 3 or 4, 1 or 3 channels)")
    if shape is None or len(shape) not in (3, 4):
        raise FeedError(f"{where}: input {name!r} has shape {shape}; an image input has rank 3 or 4")
    layout = opts.get("layout", "").lower() or _image_layout(shape)
    if layout not in ("nchw", "nhwc"):
        raise FeedError(f"{where}: layout={opts.get('layout')!r}", hint="use layout=nchw or layout=nhwc")
    s = shape[1:] if len(shape) == 4 else shape
    c, h, w = (s[0], s[1], s[2]) if layout == "nchw" else (s[2], s[0], s[1])
    c, h, w = _static(c), _static(h), _static(w)
    color = opts.get("color", "").lower() or ("gray" if c == 1 else "rgb")
    if color not in ("rgb", "bgr", "gray"):
        raise FeedError(f"{where}: color={color!r}", hint="use color=rgb, bgr or gray")
    nch = 1 if color == "gray" else 3
    if c is not None and c != nch:
        raise FeedError(f"{where}: color={color} gives {nch} channel(s) but input {name!r} {list(shape)} "
                        f"({layout}) takes {c}", hint=f"use color={'gray' if c == 1 else 'rgb'} or the other layout")
    dt = np.dtype(dtype) if dtype is not None else np.dtype(np.float32)
    flt = opts.get("filter", "bilinear").lower()
    if flt not in FILTERS:
        raise FeedError(f"{where}: filter={flt!r}", hint=f"use one of {', '.join(FILTERS)}")
    resize = shorter = crop = None
    if "resize" in opts:
        r = _size("resize", opts["resize"])
        if isinstance(r, int):
            shorter = r
        else:
            resize = r
    elif w is not None and h is not None:
        resize = (w, h)
    elif h is not None:
        resize = (0, h)
    elif w is not None:
        resize = (w, 0)
    if "crop" in opts:
        cr = _size("crop", opts["crop"])
        crop = (cr, cr) if isinstance(cr, int) else cr
        if 0 in crop:
            raise FeedError(f"{where}: crop={opts['crop']!r} must not be 0")
    elif shorter is not None:
        if w is None or h is None:
            raise FeedError(f"{where}: resize={shorter} (shorter side) needs a crop for input {name!r} "
                            f"{list(shape)} whose size is not fixed", hint="give crop=WxH or resize=WxH")
        crop = (w, h)
    # the final size must fit the model
    final = crop or (resize if resize and 0 not in resize else None)
    if final is not None:
        fw, fh = final
        bad = (w is not None and fw != w) or (h is not None and fh != h)
        if bad:
            raise FeedError(f"{where}: the preprocessed image is {fw}x{fh} (WxH) but input {name!r} "
                            f"{list(shape)} ({layout}) takes {w or '?'}x{h or '?'}",
                            hint=f"use resize={w or fw}x{h or fh} or a crop of that size")
    elif resize is not None:                   # one side kept from the aspect ratio
        rw, rh = resize
        if (rw and w is not None and rw != w) or (rh and h is not None and rh != h):
            raise FeedError(f"{where}: resize={rw}x{rh} does not fit input {name!r} {list(shape)} ({layout})",
                            hint=f"use resize={w or 0}x{h or 0}")
        if (rw == 0 and w is not None) or (rh == 0 and h is not None):
            raise FeedError(f"{where}: resize={rw}x{rh} keeps the aspect ratio on a side input {name!r} "
                            f"{list(shape)} fixes", hint=f"use resize={w or 0}x{h or 0}")
    elif w is not None or h is not None:
        raise FeedError(f"{where}: input {name!r} {list(shape)} needs a fixed size", hint="give resize=WxH")
    scale = _number("scale", opts["scale"]) if "scale" in opts else (1 / 255 if dt.kind == "f" else 1.0)

    def per_channel(key, default):
        if key not in opts:
            return (default,) * nch
        v = _floats(key, opts[key])
        if len(v) == 1:
            v = v * nch
        if len(v) != nch:
            raise FeedError(f"{where}: {key} has {len(v)} values, the image has {nch} channel(s) ({color})",
                            hint=f"give one value or {nch}")
        return v
    mean, std = per_channel("mean", 0.0), per_channel("std", 1.0)
    if any(s_ == 0 for s_ in std):
        raise FeedError(f"{where}: std must not be 0")
    return ImageSpec(input=name, dtype=dt.name, batch=len(shape) == 4, layout=layout, color=color,
                     resize=resize, shorter=shorter, crop=crop, filter=flt, scale=float(scale),
                     mean=tuple(map(float, mean)), std=tuple(map(float, std)),
                     others=_others(infos, name, where))


def _audio_ok(t) -> bool:
    name, shape, dtype = t
    if shape is None or dtype is None or dtype.kind != "f" or not 1 <= len(shape) <= 3:
        return False
    return all(_static(d) in (None, 1) for d in shape[:-1]) and _static(shape[-1]) not in (1,)


def _resolve_audio(infos, opts, where, graph_outputs=()) -> AudioSpec:
    name, shape, dtype = _pick(infos, opts, where, _audio_ok,
                               "an audio signal (float, rank 1..3, leading dimensions 1)")
    if shape is None or not 1 <= len(shape) <= 3 or any(_static(d) not in (None, 1) for d in shape[:-1]):
        raise FeedError(f"{where}: input {name!r} has shape {shape}; an audio input is [N], [1, N] or [1, 1, N]")
    sr = _int("sample_rate", opts["sample_rate"]) if "sample_rate" in opts else DEFAULT_SAMPLE_RATE
    last = _static(shape[-1])
    window = _int("window", opts["window"]) if "window" in opts else (last or sr)
    if last is not None and window != last:
        raise FeedError(f"{where}: window={window} but input {name!r} {list(shape)} takes {last} samples",
                        hint=f"use window={last}")
    hop = _int("hop", opts["hop"]) if "hop" in opts else window
    scale = _number("scale", opts["scale"]) if "scale" in opts else 1.0
    others = _others(infos, name, where)
    return AudioSpec(input=name, dtype=np.dtype(dtype).name, shape=tuple([1] * (len(shape) - 1) + [window]),
                     sample_rate=sr, window=window, hop=hop, scale=float(scale), others=others,
                     carry=_carry(graph_outputs, others, opts.get("carry"), where))


_STATE_SUFFIXES = ("N", "n", "_out", "_next", "out", "_new")


def _carry(outputs, others, opt, where) -> tuple[tuple[str, str], ...]:
    """(output, input) pairs of recurrent state: `carry=stateN>state/...`, `carry=none`, or by
    name, an output called like a zero-filled float input plus N / n / _out / _next (silero's
    state -> stateN, h -> hn)."""
    zeros = {o.name for o in others if o.fill == "zeros" and np.dtype(o.dtype).kind == "f"}
    if opt is not None:
        if opt.strip().lower() in ("none", "no", ""):
            return ()
        pairs = []
        for item in re.split(r"[/;\s]+", opt.strip()):
            if not item:
                continue
            if ">" not in item:
                raise FeedError(f"{where}: carry={opt!r}: each item is OUTPUT>INPUT", hint="e.g. carry=stateN>state")
            o, i = (x.strip() for x in item.split(">", 1))
            if o not in outputs:
                raise FeedError(f"{where}: carry: {o!r} is not an output of the model",
                                hint="the model's outputs are " + ", ".join(map(repr, outputs)))
            if i not in zeros:
                raise FeedError(f"{where}: carry: {i!r} is not a float input other than the signal")
            pairs.append((o, i))
        return tuple(pairs)
    out = []
    for i in sorted(zeros):
        for suf in _STATE_SUFFIXES:
            if i + suf in outputs:
                out.append((i + suf, i))
                break
    return tuple(out)


# -- readers ------------------------------------------------------------------------------

def _pil():
    try:
        from PIL import Image
    except ImportError:
        raise FeedError("reading images needs Pillow, which is not installed",
                        hint="pip install 'dsedge[images]' (or pip install pillow)") from None
    return Image


def _filter(Image, name: str):
    R = getattr(Image, "Resampling", Image)
    return {"bilinear": R.BILINEAR, "bicubic": R.BICUBIC, "lanczos": R.LANCZOS, "box": R.BOX,
            "nearest": R.NEAREST}[name]


def _to_pil(image):
    Image = _pil()
    if isinstance(image, Image.Image):
        return image
    a = np.asarray(image)
    if a.dtype != np.uint8 or a.ndim not in (2, 3) or (a.ndim == 3 and a.shape[2] not in (1, 3, 4)):
        raise FeedError(f"an image array must be uint8 HxW or HxWxC (C = 1, 3, 4), got {a.dtype} {list(a.shape)}")
    if a.ndim == 3 and a.shape[2] == 1:
        a = a[:, :, 0]
    return Image.fromarray(a)


def read_image(path):
    """Decode an image file fully (EXIF orientation applied); a FeedError names the file."""
    Image = _pil()
    from PIL import ImageOps
    try:
        with Image.open(path) as im:
            im.load()
            im = ImageOps.exif_transpose(im)
            if im.mode not in ("RGB", "L"):
                if "A" in im.mode or im.mode == "P" and "transparency" in im.info:
                    bg = Image.new("RGBA", im.size, (255, 255, 255, 255))   # transparency on white
                    im = Image.alpha_composite(bg, im.convert("RGBA"))
                im = im.convert("L" if im.mode in ("1", "I", "I;16", "F") else "RGB")
            return im
    except FeedError:
        raise
    except Exception as e:
        raise FeedError(f"{path}: cannot read the image ({type(e).__name__}: {e})",
                        hint="remove it from the folder or convert it to PNG or JPEG") from None


def check_image(path) -> tuple[int, int]:
    """Open the header only (cheap): (W, H); a FeedError names an unreadable file."""
    Image = _pil()
    try:
        with Image.open(path) as im:
            return im.size
    except Exception as e:
        raise FeedError(f"{path}: cannot read the image ({type(e).__name__}: {e})",
                        hint="remove it from the folder or convert it to PNG or JPEG") from None


def wav_info(path) -> tuple[int, int, int, int]:
    """(sample rate, channels, sample width in bytes, frames) from the header."""
    try:
        with wave.open(str(path), "rb") as w:
            info = (w.getframerate(), w.getnchannels(), w.getsampwidth(), w.getnframes())
    except (wave.Error, EOFError) as e:
        raise FeedError(f"{path}: unsupported or corrupt WAV ({e}); only PCM 8/16/24/32-bit is read",
                        hint=_WAV_FIX) from None
    except OSError as e:
        raise FeedError(f"{path}: cannot read ({e})") from None
    sr, ch, width, n = info
    if width not in (1, 2, 3, 4) or ch < 1 or sr <= 0:
        raise FeedError(f"{path}: unsupported WAV: {8 * width}-bit, {ch} channel(s), {sr} Hz", hint=_WAV_FIX)
    return info


def _decode(raw: bytes, width: int, ch: int) -> np.ndarray:
    if width == 1:
        x = (np.frombuffer(raw, np.uint8).astype(np.float64) - 128.0) / 128.0
    elif width == 2:
        x = np.frombuffer(raw, "<i2").astype(np.float64) / 32768.0
    elif width == 3:
        b = np.frombuffer(raw, np.uint8).reshape(-1, 3).astype(np.int32)
        v = b[:, 0] | (b[:, 1] << 8) | (b[:, 2] << 16)
        v = np.where(v >= 1 << 23, v - (1 << 24), v)
        x = v.astype(np.float64) / float(1 << 23)
    else:
        x = np.frombuffer(raw, "<i4").astype(np.float64) / float(1 << 31)
    if ch > 1:
        x = x.reshape(-1, ch).mean(axis=1)
    return x


def read_wav_blocks(path, block_frames: int = 1 << 16):
    """Yields (rate, channels, None) first, then (rate, channels, mono float64 block) per block."""
    sr, ch, width, n = wav_info(path)
    yield sr, ch, None
    try:
        with wave.open(str(path), "rb") as w:
            while True:
                raw = w.readframes(block_frames)
                if not raw:
                    break
                usable = len(raw) - len(raw) % (width * ch)
                yield sr, ch, _decode(raw[:usable], width, ch)
    except (wave.Error, EOFError, OSError) as e:
        raise FeedError(f"{path}: cannot read the WAV data ({e})", hint=_WAV_FIX) from None


def read_wav(path) -> tuple[np.ndarray, int]:
    """(mono float64 signal in [-1, 1), sample rate) of a whole PCM WAV file."""
    blocks = read_wav_blocks(path)
    sr, _, _ = next(blocks)
    parts = [b for _, _, b in blocks]
    return (np.concatenate(parts) if parts else np.zeros(0)), sr


def media_kind(path) -> str | None:
    """'image', 'audio' or None from a file name."""
    s = Path(path).suffix.lower()
    return "image" if s in IMAGE_EXTS else "audio" if s in AUDIO_EXTS else None
