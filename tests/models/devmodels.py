"""The dev models: real pretrained ONNX models shipped inside PyPI packages, and real inputs for
them built offline.

Models (located through the installed packages, never imported — ddddocr's package import
needs cv2):
  ddddocr 1.6.1     common.onnx (OCR, beta charset), common_old.onnx (OCR, dynamically
                    quantised by onnxruntime, old charset), common_det.onnx (YOLOX detector)
  silero-vad 6.2.3  every .onnx under silero_vad/data/

Inputs, prepared exactly the way the packages feed their models:
  OCR       text lines and captcha-style images rendered with PIL (DejaVu TTFs when
            installed — apt-get install fonts-dejavu-core — else PIL's default font), then
            ddddocr's preprocessing: resize to height 64 keeping the aspect ratio (LANCZOS),
            grayscale, /255, shape [1, 1, 64, W]. Output logits [T, 1, 8210] are decoded
            with CTC greedy decoding (collapse repeats, drop blank 0) and the charset from
            ddddocr/charsets.py (CHARSET_BETA for common.onnx, CHARSET_OLD for common_old).
  detector  a 416x416-letterboxed scene (shapes and large glyphs on a textured background),
            ddddocr's preproc: BGR, pad value 114, top-left aligned, CHW float32 in 0..255.
  VAD       speech synthesised by espeak-ng (apt-get install espeak-ng) resampled to 16 kHz,
            plus noise and silence; cut the way silero_vad's OnnxWrapper does: 512-sample
            windows with the previous 64 samples as context (input [1, 576]), state [2, 1, 128]
            carried from the previous window, sr = int64 16000. The sequence model
            (silero_vad_16k_sequence.onnx) gets [frames, 576] blocks with h/c [1, 1, 128].
            A window is speech when its probability is > 0.5.

`calibration_feeds(name, n)` returns n feed dicts for a model; states of the streaming VAD
models come from running the stream through onnxruntime (the oracle), so they are the states
the model really sees. Everything is deterministic for a given seed.
"""
from __future__ import annotations

import functools
import glob
import importlib.util
import os
import shutil
import subprocess
import tempfile
import wave

import numpy as np
from PIL import Image, ImageDraw, ImageFilter, ImageFont

SR = 16000
VAD_WINDOW, VAD_CONTEXT = 512, 64


# -- locating the models ---------------------------------------------------------------

def package_dir(pkg: str) -> str | None:
    spec = importlib.util.find_spec(pkg)
    return os.path.dirname(spec.origin) if spec and spec.origin else None


def dev_models() -> dict[str, str]:
    """{name: path} of every dev model installed on this machine."""
    out: dict[str, str] = {}
    d = package_dir("ddddocr")
    if d:
        for f in ("common", "common_old", "common_det"):
            p = os.path.join(d, f + ".onnx")
            if os.path.isfile(p):
                out[f"ddddocr/{f}"] = p
    s = package_dir("silero_vad")
    if s:
        for p in sorted(glob.glob(os.path.join(s, "data", "*.onnx"))):
            out[f"silero/{os.path.splitext(os.path.basename(p))[0]}"] = p
    return out


def model_path(name: str) -> str:
    models = dev_models()
    if name not in models:
        raise KeyError(f"dev model {name!r} is not installed (installed: {', '.join(models) or 'none'}); "
                       "pip install ddddocr==1.6.1 silero-vad==6.2.3")
    return models[name]


@functools.lru_cache(maxsize=None)
def charset(name: str) -> list[str]:
    """ddddocr's character list for an OCR model (index 0 is the CTC blank '')."""
    path = os.path.join(package_dir("ddddocr"), "charsets.py")
    spec = importlib.util.spec_from_file_location("_ddddocr_charsets", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return list(mod.CHARSET_BETA if name.endswith("/common") else mod.CHARSET_OLD)


# -- images ----------------------------------------------------------------------------

_FONT_DIRS = ("/usr/share/fonts/truetype/dejavu", "/usr/share/fonts/truetype", "/usr/share/fonts")


@functools.lru_cache(maxsize=None)
def font_files() -> tuple[str, ...]:
    found = []
    for d in _FONT_DIRS:
        found += sorted(glob.glob(os.path.join(d, "**", "DejaVu*.ttf"), recursive=True))
    return tuple(dict.fromkeys(found))


def font(size: int, index: int = 0):
    files = font_files()
    if files:
        return ImageFont.truetype(files[index % len(files)], size)
    return ImageFont.load_default(size=size)


_ALNUM = "ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnpqrstuvwxyz23456789"
_WORDS = ["hello", "world", "edge", "quant", "model", "sensor", "7429", "Berlin", "Tokyo", "invoice 2024",
          "total 13.50", "id 88412", "Station", "exit"]


def render_text_line(text: str, size: int = 40, font_index: int = 0, fg=(0, 0, 0), bg=(255, 255, 255)) -> Image.Image:
    f = font(size, font_index)
    box = ImageDraw.Draw(Image.new("RGB", (1, 1))).textbbox((0, 0), text, font=f)
    w, h = box[2] - box[0], box[3] - box[1]
    img = Image.new("RGB", (w + size // 2, h + size // 2), bg)
    ImageDraw.Draw(img).text((size // 4 - box[0], size // 4 - box[1]), text, fill=fg, font=f)
    return img


def render_captcha(text: str, seed: int = 0, width: int = 160, height: int = 60) -> Image.Image:
    """A captcha-style image: tinted noisy background, jittered rotated glyphs, lines, dots."""
    rng = np.random.default_rng(seed)
    bg = rng.integers(180, 256, 3)
    arr = np.clip(bg + rng.normal(0, 18, (height, width, 3)), 0, 255).astype(np.uint8)
    img = Image.fromarray(arr, "RGB")
    step = (width - 20) / max(len(text), 1)
    for k, ch in enumerate(text):
        size = int(rng.integers(int(height * 0.55), int(height * 0.8)))
        g = Image.new("RGBA", (size + 10, size + 10), (0, 0, 0, 0))
        color = tuple(int(c) for c in rng.integers(0, 120, 3)) + (255,)
        ImageDraw.Draw(g).text((5, 0), ch, fill=color, font=font(size, int(rng.integers(0, 8))))
        g = g.rotate(float(rng.uniform(-25, 25)), resample=Image.BICUBIC, expand=True)
        x = int(10 + k * step + rng.uniform(-3, 3))
        y = int(rng.uniform(-5, max(height - g.size[1] + 5, -4)))
        img.paste(g, (x, y), g)
    d = ImageDraw.Draw(img)
    for _ in range(int(rng.integers(2, 5))):
        pts = [(int(rng.integers(0, width)), int(rng.integers(0, height))) for _ in range(2)]
        d.line(pts, fill=tuple(int(c) for c in rng.integers(0, 200, 3)), width=int(rng.integers(1, 3)))
    for _ in range(150):
        x, y = int(rng.integers(0, width)), int(rng.integers(0, height))
        d.point((x, y), fill=tuple(int(c) for c in rng.integers(0, 256, 3)))
    return img.filter(ImageFilter.SMOOTH) if seed % 3 == 0 else img


def ocr_preprocess(img: Image.Image) -> np.ndarray:
    """ddddocr's OCR preprocessing: height 64 keeping aspect (LANCZOS), grayscale, /255, [1,1,64,W]."""
    w = int(img.size[0] * (64 / img.size[1]))
    img = img.resize((w, 64), Image.LANCZOS).convert("L")
    return (np.array(img).astype(np.float32) / 255.0)[None, None]


def ocr_texts(n: int, seed: int = 0) -> list[tuple[str, Image.Image]]:
    """n (text, image) pairs alternating clean text lines and captchas."""
    rng = np.random.default_rng(seed)
    out = []
    for k in range(n):
        if k % 2 == 0:
            text = _WORDS[int(rng.integers(0, len(_WORDS)))]
            out.append((text, render_text_line(text, int(rng.integers(28, 56)), int(rng.integers(0, 4)))))
        else:
            text = "".join(rng.choice(list(_ALNUM), int(rng.integers(4, 7))))
            out.append((text, render_captcha(text, seed=seed * 1000 + k)))
    return out


def render_scene(seed: int = 0, width: int = 480, height: int = 320) -> Image.Image:
    """A click-captcha-like scene: textured background, shapes, 3-5 large glyphs."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:height, 0:width]
    base = np.stack([np.sin(xx / rng.uniform(20, 60) + c) * 40 + np.cos(yy / rng.uniform(20, 60)) * 40 + 128
                     for c in rng.uniform(0, 6, 3)], -1)
    img = Image.fromarray(np.clip(base + rng.normal(0, 10, base.shape), 0, 255).astype(np.uint8), "RGB")
    d = ImageDraw.Draw(img)
    for _ in range(6):
        x0, y0 = int(rng.integers(0, width - 60)), int(rng.integers(0, height - 60))
        box = [x0, y0, x0 + int(rng.integers(20, 120)), y0 + int(rng.integers(20, 120))]
        fill = tuple(int(c) for c in rng.integers(0, 256, 3))
        (d.ellipse if rng.random() < 0.5 else d.rectangle)(box, fill=fill)
    for _ in range(int(rng.integers(3, 6))):
        ch = _ALNUM[int(rng.integers(0, len(_ALNUM)))]
        size = int(rng.integers(36, 64))
        g = Image.new("RGBA", (size + 16, size + 16), (0, 0, 0, 0))
        ImageDraw.Draw(g).text((8, 0), ch, fill=tuple(int(c) for c in rng.integers(0, 90, 3)) + (255,),
                               font=font(size, int(rng.integers(0, 8))), stroke_width=2,
                               stroke_fill=(255, 255, 255, 255))
        g = g.rotate(float(rng.uniform(-30, 30)), expand=True, resample=Image.BICUBIC)
        img.paste(g, (int(rng.integers(0, width - g.size[0])), int(rng.integers(0, height - g.size[1]))), g)
    return img


def det_preprocess(img: Image.Image, size: int = 416) -> np.ndarray:
    """ddddocr's detector preproc: BGR, bilinear resize to fit, pad 114 bottom/right, CHW float 0..255."""
    bgr = np.array(img.convert("RGB"))[:, :, ::-1]
    r = min(size / bgr.shape[0], size / bgr.shape[1])
    nw, nh = int(bgr.shape[1] * r), int(bgr.shape[0] * r)
    resized = np.array(Image.fromarray(np.ascontiguousarray(bgr)).resize((nw, nh), Image.BILINEAR))
    padded = np.full((size, size, 3), 114, np.uint8)
    padded[:nh, :nw] = resized
    return np.ascontiguousarray(padded.transpose(2, 0, 1), dtype=np.float32)[None]


# -- audio -----------------------------------------------------------------------------

_SENTENCES = ["the quick brown fox jumps over the lazy dog", "turn on the kitchen lights please",
              "edge devices run small models", "one two three four five six seven",
              "what is the weather like tomorrow"]


def resample(x: np.ndarray, sr_in: int, sr_out: int = SR) -> np.ndarray:
    """Band-limited resampling with numpy: FFT low-pass at the new Nyquist, then interpolation."""
    if sr_in == sr_out:
        return x.astype(np.float32)
    if sr_out < sr_in:
        spec = np.fft.rfft(x)
        freqs = np.fft.rfftfreq(len(x), 1.0 / sr_in)
        spec[freqs > 0.45 * sr_out] = 0
        x = np.fft.irfft(spec, len(x))
    t_out = np.arange(int(len(x) * sr_out / sr_in)) / sr_out
    return np.interp(t_out, np.arange(len(x)) / sr_in, x).astype(np.float32)


@functools.lru_cache(maxsize=None)
def espeak(text: str, voice: str = "en", speed: int = 160) -> np.ndarray | None:
    """Speech from espeak-ng at 16 kHz float32 in [-1, 1], or None when espeak-ng is missing."""
    exe = shutil.which("espeak-ng") or shutil.which("espeak")
    if not exe:
        return None
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "s.wav")
        subprocess.run([exe, "-v", voice, "-s", str(speed), "-w", out, text], check=True, capture_output=True)
        with wave.open(out, "rb") as w:
            sr, n, width = w.getframerate(), w.getnframes(), w.getsampwidth()
            raw = w.readframes(n)
    pcm = np.frombuffer(raw, dtype=np.int16 if width == 2 else np.uint8).astype(np.float32)
    pcm = pcm / 32768.0 if width == 2 else (pcm - 128) / 128.0
    return resample(pcm, sr)


def synthetic_voice(seconds: float, seed: int = 0) -> np.ndarray:
    """Fallback when espeak-ng is absent: a voiced, syllable-modulated harmonic signal."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * SR)) / SR
    f0 = 120 + 30 * np.sin(2 * np.pi * 0.7 * t)
    phase = 2 * np.pi * np.cumsum(f0) / SR
    sig = sum(np.sin(k * phase) / k for k in range(1, 12))
    env = np.clip(np.sin(2 * np.pi * 3.5 * t + rng.uniform(0, 6)), 0, None) ** 0.5
    return (0.3 * sig * env / np.max(np.abs(sig))).astype(np.float32)


def audio_clip(kind: str, seed: int = 0) -> np.ndarray:
    """'speech' (espeak-ng, noise added), 'noise' (white/pink), 'silence' (tiny dither)."""
    rng = np.random.default_rng(seed)
    if kind == "speech":
        s = espeak(_SENTENCES[seed % len(_SENTENCES)])
        if s is None:
            s = synthetic_voice(2.0, seed)
        s = 0.8 * s / max(float(np.max(np.abs(s))), 1e-6)
        pad = np.zeros(int(0.3 * SR), np.float32)
        s = np.concatenate([pad, s, pad])
        return (s + rng.normal(0, 0.005, s.shape)).astype(np.float32)
    if kind == "noise":
        white = rng.normal(0, 1, 2 * SR)
        if seed % 2:   # pink-ish: 1/f amplitude
            spec = np.fft.rfft(white)
            spec /= np.sqrt(np.maximum(np.arange(len(spec)), 1))
            white = np.fft.irfft(spec, len(white))
        return (0.1 * white / np.std(white)).astype(np.float32)
    if kind == "silence":
        return rng.normal(0, 1e-4, SR).astype(np.float32)
    raise ValueError(f"unknown audio kind {kind!r}")


def vad_windows(audio: np.ndarray) -> np.ndarray:
    """[n, 576]: each 512-sample window preceded by the previous 64 samples (zeros at the start)."""
    n = len(audio) // VAD_WINDOW
    padded = np.concatenate([np.zeros(VAD_CONTEXT, np.float32), audio[:n * VAD_WINDOW]])
    return np.stack([padded[k * VAD_WINDOW:k * VAD_WINDOW + VAD_WINDOW + VAD_CONTEXT] for k in range(n)])


def is_speech(prob, threshold: float = 0.5) -> np.ndarray:
    return np.asarray(prob).reshape(-1) > threshold


# -- feeds -----------------------------------------------------------------------------

@functools.lru_cache(maxsize=8)
def _ort_session(path: str):
    import onnxruntime as ort
    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    so.inter_op_num_threads = 1
    return ort.InferenceSession(path, so, providers=["CPUExecutionProvider"])


def _vad_stream_feeds(name: str, audio: np.ndarray) -> list[dict]:
    """Feeds for every window of a streaming silero model, states carried by onnxruntime."""
    sess = _ort_session(model_path(name))
    in_names = [i.name for i in sess.get_inputs()]
    state_name = "state" if "state" in in_names else None
    state = np.zeros((2, 1, 128), np.float32)
    feeds = []
    for win in vad_windows(audio):
        f = {"input": win[None].astype(np.float32)}
        if state_name:
            f["state"] = state
        if "sr" in in_names:
            f["sr"] = np.array(SR, np.int64)
        feeds.append(f)
        outs = sess.run(None, f)
        if state_name:
            state = outs[1]
    return feeds


def _vad_sequence_feeds(name: str, audio: np.ndarray, block: int) -> list[dict]:
    sess = _ort_session(model_path(name))
    h = c = np.zeros((1, 1, 128), np.float32)
    wins = vad_windows(audio)
    feeds = []
    for s in range(0, len(wins), block):
        f = {"input": wins[s:s + block].astype(np.float32), "h": h, "c": c}
        feeds.append(f)
        _, h, c = sess.run(None, f)
    return feeds


def calibration_feeds(name: str, n: int, seed: int = 0) -> list[dict[str, np.ndarray]]:
    """n real feed dicts for dev model `name` (see the module docstring)."""
    if name.startswith("ddddocr/") and name != "ddddocr/common_det":
        return [{"input1": ocr_preprocess(img)} for _, img in ocr_texts(n, seed)]
    if name == "ddddocr/common_det":
        return [{"images": det_preprocess(render_scene(seed + k))} for k in range(n)]
    if name.startswith("silero/"):
        kinds = ["speech", "noise", "speech", "silence"]
        feeds: list[dict] = []
        k = 0
        while len(feeds) < n:
            audio = audio_clip(kinds[k % len(kinds)], seed + k)
            if "sequence" in name:
                more = _vad_sequence_feeds(name, audio, block=16)
            else:
                more = _vad_stream_feeds(name, audio)
                # spread the picks over the clip's middle (speech), not only its first windows
                lo, hi = len(more) // 4, max(len(more) * 3 // 4, len(more) // 4 + 1)
                idx = np.linspace(lo, hi - 1, min(hi - lo, max(1, -(-n // len(kinds))))).astype(int)
                more = [more[i] for i in idx]
            feeds.extend(more)
            k += 1
        return feeds[:n]
    raise KeyError(f"unknown dev model {name!r}")


# -- decoders for task agreement -------------------------------------------------------

def ctc_greedy(logits: np.ndarray, chars: list[str]) -> str:
    """ddddocr's decoding: argmax per step over [T, 1, C] (or [T, C]), collapse repeats, drop blank 0."""
    idx = np.asarray(logits).reshape(np.shape(logits)[0], -1).argmax(-1)
    out, prev = [], None
    for i in idx:
        i = int(i)
        if i != prev and i != 0 and i < len(chars):
            out.append(chars[i])
        prev = i
    return "".join(out)


def ocr_decode(name: str, output: np.ndarray) -> str:
    return ctc_greedy(output, charset(name))


def det_boxes(output: np.ndarray, score_thr: float = 0.1, nms_thr: float = 0.45, size: int = 416) -> np.ndarray:
    """ddddocr's YOLOX decoding (strides 8/16/32, class-agnostic NMS): [k, 5] x1 y1 x2 y2 score."""
    out = np.asarray(output, np.float32)[0].copy()
    grids, strides = [], []
    for s in (8, 16, 32):
        h = w = size // s
        yv, xv = np.meshgrid(np.arange(h), np.arange(w), indexing="ij")
        grids.append(np.stack((xv, yv), 2).reshape(-1, 2))
        strides.append(np.full((h * w, 1), s))
    grids, strides = np.concatenate(grids), np.concatenate(strides)
    out[:, :2] = (out[:, :2] + grids) * strides
    out[:, 2:4] = np.exp(out[:, 2:4]) * strides
    scores = out[:, 4] * out[:, 5:].max(-1)
    keep = scores > score_thr
    b, sc = out[keep, :4], scores[keep]
    xyxy = np.stack([b[:, 0] - b[:, 2] / 2, b[:, 1] - b[:, 3] / 2, b[:, 0] + b[:, 2] / 2, b[:, 1] + b[:, 3] / 2], 1)
    kept = nms(xyxy, sc, nms_thr, pixel=1)
    return np.concatenate([xyxy[kept], sc[kept, None]], 1) if kept else np.zeros((0, 5), np.float32)


def nms(xyxy: np.ndarray, scores: np.ndarray, iou_thr: float, classes=None, pixel: int = 0) -> list[int]:
    """Greedy NMS: indices kept, best score first; a box goes when its IoU with a kept one
    exceeds iou_thr (only boxes of the same class compete when `classes` is given). pixel=1
    counts box sizes inclusively (x2 - x1 + 1), as ddddocr's decoder does."""
    order, kept = np.argsort(-scores, kind="stable"), []
    area = (xyxy[:, 2] - xyxy[:, 0] + pixel) * (xyxy[:, 3] - xyxy[:, 1] + pixel)
    while order.size:
        i, rest = order[0], order[1:]
        kept.append(int(i))
        xx1 = np.maximum(xyxy[i, 0], xyxy[rest, 0])
        yy1 = np.maximum(xyxy[i, 1], xyxy[rest, 1])
        xx2 = np.minimum(xyxy[i, 2], xyxy[rest, 2])
        yy2 = np.minimum(xyxy[i, 3], xyxy[rest, 3])
        inter = np.maximum(0, xx2 - xx1 + pixel) * np.maximum(0, yy2 - yy1 + pixel)
        iou = inter / np.maximum(area[i] + area[rest] - inter, 1e-9)
        if classes is not None:
            iou = np.where(classes[rest] == classes[i], iou, 0.0)
        order = rest[iou <= iou_thr]
    return kept


def task_output(name: str, outputs: list[np.ndarray]):
    """What the app would use: OCR text, detection boxes, or per-window speech decisions."""
    if name == "ddddocr/common_det":
        return det_boxes(outputs[0])
    if name.startswith("ddddocr/"):
        return ocr_decode(name, outputs[0])
    return is_speech(outputs[0])
