"""Image and WAV calibration feeds (calibration/preprocess.py, media.py, resample.py).

Oracles: Pillow's own resize/crop and plain numpy arithmetic for the image path; known integer
samples for the WAV reader; analytic sines for the resampler (frequency, phase and amplitude
kept, tones above the output Nyquist frequency removed).
"""
import struct
import sys
import wave

import numpy as np
import pytest
from onnx import TensorProto, helper

from dsedge.calibration import open_feeds
from dsedge.calibration.preprocess import (AudioSpec, ImageSpec, parse_options, read_wav, resolve,
                                           spec_from_json)
from dsedge.calibration.resample import Resampler, resample
from dsedge.converters.onnx.reader import from_model_proto
from dsedge.errors import FeedError

Image = pytest.importorskip("PIL.Image")
from PIL import ImageDraw  # noqa: E402


def _graph(inputs):
    """inputs: [(name, TensorProto type, shape)]; every input -> Identity -> output."""
    ins, outs, nodes = [], [], []
    for k, (name, t, shape) in enumerate(inputs):
        ins.append(helper.make_tensor_value_info(name, t, shape))
        nodes.append(helper.make_node("Identity", [name], [f"y{k}"]))
        outs.append(helper.make_tensor_value_info(f"y{k}", t, None))
    m = helper.make_model(helper.make_graph(nodes, "g", ins, outs), opset_imports=[helper.make_opsetid("", 17)])
    return from_model_proto(m)


def _picture(w=40, h=30, seed=0):
    """An RGB picture with distinct colours per channel: shapes, a gradient, text."""
    rng = np.random.default_rng(seed)
    a = np.zeros((h, w, 3), np.uint8)
    a[:, :, 0] = np.linspace(0, 255, w)[None, :].astype(np.uint8)
    a[:, :, 2] = np.linspace(255, 0, h)[:, None].astype(np.uint8)
    img = Image.fromarray(a)
    d = ImageDraw.Draw(img)
    d.ellipse([w // 5, h // 5, w // 2, h // 2], fill=(20, 200, 60))
    d.rectangle([w // 2, h // 3, w - 3, h - 3], outline=(250, 250, 0), width=2)
    d.text((2, 2), "Ab7", fill=tuple(int(v) for v in rng.integers(0, 255, 3)))
    return img


# -- images -------------------------------------------------------------------------------

def test_image_defaults_nchw_rgb_against_pillow():
    g = _graph([("pixels", TensorProto.FLOAT, [1, 3, 16, 12])])
    spec = resolve(g, "image")
    assert (spec.layout, spec.color, spec.resize, spec.dtype) == ("nchw", "rgb", (12, 16), "float32")
    img = _picture()
    x = spec.array(img)
    ref = np.asarray(img.resize((12, 16), Image.BILINEAR), np.float64) / 255.0
    assert x.shape == (1, 3, 16, 12) and x.dtype == np.float32
    np.testing.assert_allclose(x[0].transpose(1, 2, 0), ref, atol=1e-7)


def test_image_mean_std_bgr_nhwc_against_numpy():
    g = _graph([("img", TensorProto.FLOAT, [1, 20, 24, 3])])
    spec = resolve(g, "image", "mean=0.485,0.456,0.406,std=0.229/0.224/0.225,color=bgr,filter=bicubic")
    assert spec.layout == "nhwc"
    img = _picture(50, 41)
    x = spec.array(img)
    px = np.asarray(img.resize((24, 20), Image.BICUBIC), np.float64)[:, :, ::-1]
    ref = (px / 255.0 - np.array([0.485, 0.456, 0.406])) / np.array([0.229, 0.224, 0.225])
    assert x.shape == (1, 20, 24, 3)
    np.testing.assert_allclose(x[0], ref, rtol=1e-6, atol=1e-6)
    assert not np.allclose(x[0], ref[:, :, ::-1], atol=1e-3)        # the channel order matters


def test_image_shorter_side_then_center_crop_against_pillow():
    g = _graph([("x", TensorProto.FLOAT, [1, 3, 8, 8])])
    spec = resolve(g, "image", "resize=10")
    assert spec.shorter == 10 and spec.crop == (8, 8)
    img = _picture(40, 25)                                 # 40x25 -> 16x10 -> centre 8x8
    r = img.resize((16, 10), Image.BILINEAR).crop((4, 1, 12, 9))
    np.testing.assert_allclose(spec.array(img)[0].transpose(1, 2, 0), np.asarray(r) / 255.0, atol=1e-7)


def test_image_gray_and_uint8_and_dynamic_width():
    g = _graph([("x", TensorProto.UINT8, [1, 1, 8, 8])])
    spec = resolve(g, "image")
    img = _picture()
    assert spec.color == "gray" and spec.scale == 1.0
    np.testing.assert_array_equal(spec.array(img)[0, 0], np.asarray(img.convert("L").resize((8, 8), Image.BILINEAR)))
    # ddddocr-style [1, 1, 64, ?]: height 64, width from the aspect ratio
    g = _graph([("x", TensorProto.FLOAT, [1, 1, 64, "w"])])
    spec = resolve(g, "image")
    assert spec.resize == (0, 64)
    assert spec.array(_picture(90, 30)).shape == (1, 1, 64, 192)


def test_spec_json_round_trip():
    g = _graph([("x", TensorProto.FLOAT, [1, 3, 16, 16])])
    s = resolve(g, "image", "resize=20,mean=0.5,std=0.25,color=bgr")
    assert spec_from_json(s.to_json()) == s and isinstance(s, ImageSpec)
    g = _graph([("input", TensorProto.FLOAT, [1, "n"]), ("state", TensorProto.FLOAT, [2, "b", 128]),
                ("sr", TensorProto.INT64, [])])
    a = resolve(g, "audio", "window=576,hop=512,sample_rate=16000")
    assert spec_from_json(a.to_json()) == a and isinstance(a, AudioSpec)
    assert [(o.name, o.shape, o.fill) for o in a.others] == [("state", (2, 1, 128), "zeros"), ("sr", (), "sample_rate")]
    with pytest.raises(dataclass_error()):
        a.window = 3                                                   # frozen


def dataclass_error():
    import dataclasses
    return dataclasses.FrozenInstanceError


@pytest.mark.parametrize("opts, match", [
    ("resize=10x10", "resize=12x16"),                 # does not fit [1, 3, 16, 12]
    ("crop=5", "resize=12x16"),
    ("color=gray", "takes 3"),
    ("mean=0.1,0.2", "mean has 2 values"),
    ("layout=nwhc", "layout=nchw or layout=nhwc"),
    ("size=3", "unknown option"),
    ("input=nope", "not an input"),
    ("resize=abc", "not N or WxH"),
])
def test_image_spec_errors_name_the_fix(opts, match):
    g = _graph([("pixels", TensorProto.FLOAT, [1, 3, 16, 12])])
    with pytest.raises(FeedError, match=match):
        resolve(g, "image", opts)


def test_parse_options_lists_continue():
    assert parse_options("resize=224,mean=0.485,0.456,0.406,std=0.2,layout=nchw") == {
        "resize": "224", "mean": "0.485/0.456/0.406", "std": "0.2", "layout": "nchw"}
    with pytest.raises(FeedError, match="twice"):
        parse_options("scale=1,scale=2")


def test_image_folder_feeds_in_name_order(tmp_path):
    g = _graph([("x", TensorProto.FLOAT, [1, 3, 16, 12])])
    pics = {"b.png": _picture(seed=1), "a.jpg": _picture(33, 21, seed=2), "c10.png": _picture(seed=3)}
    for name, p in pics.items():
        p.save(tmp_path / name, quality=95) if name.endswith(".jpg") else p.save(tmp_path / name)
    (tmp_path / "readme.txt").write_text("ignored")
    fs = open_feeds(tmp_path, g)
    assert len(fs) == 3 and fs.kind == "images"
    assert [p.split("/")[-1] for p in fs.labels()] == ["a.jpg", "b.png", "c10.png"]
    feeds = list(fs)
    ref = np.asarray(Image.open(tmp_path / "b.png").convert("RGB").resize((12, 16), Image.BILINEAR)) / 255.0
    np.testing.assert_allclose(feeds[1]["x"][0].transpose(1, 2, 0), ref, atol=1e-7)
    assert fs.shapes() == {"x": ((1, 3, 16, 12), np.dtype(np.float32))}
    assert open_feeds(tmp_path / "b.png", g).spec == fs.spec      # one image file is a feed set too


def test_bad_image_and_mixed_folder_fail_at_open(tmp_path):
    g = _graph([("x", TensorProto.FLOAT, [1, 3, 16, 12])])
    _picture().save(tmp_path / "ok.png")
    (tmp_path / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\nnot really")
    with pytest.raises(FeedError, match=r"broken.png: cannot read the image.*convert it to PNG"):
        open_feeds(tmp_path, g)
    (tmp_path / "broken.png").unlink()
    _write_wav(tmp_path / "a.wav", np.zeros(100, np.int16), 16000)
    with pytest.raises(FeedError, match="both images .1. and WAV files .1."):
        open_feeds(tmp_path, g)


def test_preprocess_rejected_for_npz(tmp_path):
    g = _graph([("x", TensorProto.FLOAT, [1, 3, 16, 12])])
    np.savez(tmp_path / "f.npz", x=np.zeros((1, 3, 16, 12), np.float32))
    with pytest.raises(FeedError, match="--preprocess applies to image or WAV"):
        open_feeds(tmp_path, g, preprocess="resize=12x16")


def test_missing_pillow_is_a_clear_error(monkeypatch):
    g = _graph([("x", TensorProto.FLOAT, [1, 3, 16, 12])])
    spec = resolve(g, "image")                                  # resolving needs no Pillow
    monkeypatch.setitem(sys.modules, "PIL", None)
    with pytest.raises(FeedError, match=r"Pillow.*dsedge\[images\]"):
        spec.array(np.zeros((4, 4, 3), np.uint8))


# -- WAV ------------------------------------------------------------------------------------

def _write_wav(path, frames: np.ndarray, rate: int, width: int = 2):
    """frames: integer samples [n] or [n, channels] in the container's own coding."""
    a = np.asarray(frames)
    ch = 1 if a.ndim == 1 else a.shape[1]
    if width == 1:
        raw = a.astype(np.uint8).tobytes()
    elif width == 3:
        v = a.astype(np.int64).reshape(-1) & 0xFFFFFF
        raw = np.stack([v & 255, (v >> 8) & 255, v >> 16], axis=1).astype(np.uint8).tobytes()
    else:
        raw = a.astype({2: "<i2", 4: "<i4"}[width]).tobytes()
    with wave.open(str(path), "wb") as w:
        w.setnchannels(ch)
        w.setsampwidth(width)
        w.setframerate(rate)
        w.writeframes(raw)


@pytest.mark.parametrize("width, lo, hi", [(1, 0, 256), (2, -2 ** 15, 2 ** 15), (3, -2 ** 23, 2 ** 23),
                                           (4, -2 ** 31, 2 ** 31)])
def test_wav_pcm_widths_and_stereo(tmp_path, width, lo, hi):
    rng = np.random.default_rng(width)
    s = rng.integers(lo, hi, size=(1000, 2), dtype=np.int64)
    _write_wav(tmp_path / "s.wav", s, 8000, width)
    x, sr = read_wav(tmp_path / "s.wav")
    unit = {1: 128.0, 2: 2.0 ** 15, 3: 2.0 ** 23, 4: 2.0 ** 31}[width]
    off = 128 if width == 1 else 0
    assert sr == 8000
    np.testing.assert_allclose(x, ((s[:, 0] - off) / unit + (s[:, 1] - off) / unit) / 2, rtol=0, atol=1e-12)


def test_float_wav_is_refused_with_the_fix(tmp_path):
    data = np.zeros(16, "<f4").tobytes()
    fmt = struct.pack("<HHIIHH", 3, 1, 16000, 64000, 4, 32)      # WAVE_FORMAT_IEEE_FLOAT
    body = b"WAVE" + b"fmt " + struct.pack("<I", len(fmt)) + fmt + b"data" + struct.pack("<I", len(data)) + data
    (tmp_path / "f.wav").write_bytes(b"RIFF" + struct.pack("<I", len(body)) + body)
    g = _graph([("input", TensorProto.FLOAT, [1, 512])])
    with pytest.raises(FeedError, match=r"f.wav: unsupported or corrupt WAV.*sox"):
        open_feeds(tmp_path, g)


def test_audio_windows_and_other_inputs(tmp_path):
    g = _graph([("input", TensorProto.FLOAT, [1, "n"]), ("state", TensorProto.FLOAT, [2, "b", 128]),
                ("sr", TensorProto.INT64, [])])
    t = np.arange(8000 + 300)
    _write_wav(tmp_path / "b.wav", np.rint(10000 * np.sin(2 * np.pi * 440 * t / 16000)), 16000)
    _write_wav(tmp_path / "a.wav", np.full(100, 1000), 16000)
    fs = open_feeds(tmp_path, g, preprocess="window=1000,hop=800")
    # a.wav: 100 samples -> 1 window; b.wav: 8300 -> ceil((8300 - 1000) / 800) + 1 = 11
    assert len(fs) == 12 and fs.labels()[:2] == [str(tmp_path / "a.wav") + "[0]", str(tmp_path / "b.wav") + "[0]"]
    feeds = list(fs)
    assert len(feeds) == 12
    assert feeds[0]["input"].shape == (1, 1000) and feeds[0]["sr"].dtype == np.int64 and int(feeds[0]["sr"]) == 16000
    np.testing.assert_array_equal(feeds[0]["input"][0, :100], np.float32(1000 / 32768))
    assert not feeds[0]["input"][0, 100:].any()                              # zero padding
    b = np.rint(10000 * np.sin(2 * np.pi * 440 * t / 16000)) / 32768
    np.testing.assert_array_equal(feeds[3]["input"][0], b[1600:2600].astype(np.float32))   # window 2 of b.wav
    last = feeds[-1]["input"][0]
    np.testing.assert_array_equal(last[:300], b[8000:].astype(np.float32))
    assert feeds[5]["state"].shape == (2, 1, 128) and not feeds[5]["state"].any()


def test_audio_default_window_from_shape_or_one_second(tmp_path):
    assert resolve(_graph([("x", TensorProto.FLOAT, [1, 576])]), "audio").window == 576
    s = resolve(_graph([("x", TensorProto.FLOAT, ["n"])]), "audio")
    assert (s.window, s.sample_rate, s.shape) == (16000, 16000, (16000,))
    with pytest.raises(FeedError, match="use window=576"):
        resolve(_graph([("x", TensorProto.FLOAT, [1, 576])]), "audio", "window=512")


def test_wav_resampled_streaming_equals_whole(tmp_path):
    """A 44.1 kHz file streamed in blocks gives the windows of resample(whole file)."""
    rng = np.random.default_rng(0)
    s = rng.integers(-20000, 20000, 44100 * 3 // 2)
    _write_wav(tmp_path / "n.wav", s, 44100)
    spec = resolve(_graph([("x", TensorProto.FLOAT, [1, 4000])]), "audio")
    from dsedge.calibration import preprocess
    blocks = preprocess.read_wav_blocks
    got = [f["x"] for f in spec.feeds(str(tmp_path / "n.wav"))]
    whole = resample(s / 32768.0, 44100, 16000)
    assert len(got) == spec.n_windows(len(whole)) == 6
    ref = list(spec.windows(whole))
    for a, b in zip(got, ref):
        np.testing.assert_array_equal(a, b)
    # and with a block size that does not divide anything
    preprocess.read_wav_blocks = lambda p: blocks(p, block_frames=997)
    try:
        got2 = [f["x"] for f in spec.feeds(str(tmp_path / "n.wav"))]
    finally:
        preprocess.read_wav_blocks = blocks
    for a, b in zip(got2, ref):
        np.testing.assert_array_equal(a, b)


# -- resampler --------------------------------------------------------------------------------

@pytest.mark.parametrize("sr_in", [8000, 22050, 44100, 48000])
def test_resampler_keeps_a_sine(sr_in):
    """An in-band sine comes out as the same sine at the new rate: frequency, phase, amplitude."""
    f, amp = 3000.0, 0.7
    x = amp * np.sin(2 * np.pi * f * np.arange(sr_in) / sr_in)
    y = resample(x, sr_in, 16000)
    assert len(y) == 16000
    t = np.arange(16000) / 16000
    core = slice(1000, 15000)                                 # away from the edges (zeros outside)
    ref = amp * np.sin(2 * np.pi * f * t)
    assert np.max(np.abs(y[core] - ref[core])) < 1e-4 * amp
    rms = np.sqrt(np.mean(y[core] ** 2))
    assert abs(20 * np.log10(rms / (amp / np.sqrt(2)))) < 0.01   # amplitude within 0.01 dB
    spec = np.abs(np.fft.rfft(y[core] * np.hanning(14000)))
    assert abs(np.argmax(spec) * 16000 / 14000 - f) < 16000 / 14000


@pytest.mark.parametrize("sr_in, f", [(44100, 9000.0), (44100, 15000.0), (48000, 12000.0), (22050, 10000.0)])
def test_resampler_rejects_aliasing(sr_in, f):
    """A tone above the output Nyquist frequency (8 kHz) would fold to 16000 - f: it must vanish."""
    x = np.sin(2 * np.pi * f * np.arange(sr_in) / sr_in)
    y = resample(x, sr_in, 16000)[1000:15000]
    assert 20 * np.log10(np.sqrt(np.mean(y ** 2)) / np.sqrt(0.5)) < -60


def test_resampler_nearest_would_alias():
    """The oracle is not vacuous: nearest-sample decimation keeps the folded tone."""
    x = np.sin(2 * np.pi * 9000 * np.arange(48000) / 48000)
    y = x[::3]
    assert np.sqrt(np.mean(y ** 2)) > 0.5


def test_resampler_streaming_identity_and_dc():
    x = np.random.default_rng(1).standard_normal(10007)
    whole = resample(x, 22050, 16000)
    r = Resampler(22050, 16000)
    parts = [r.feed(x[i:i + 313]) for i in range(0, len(x), 313)] + [r.flush()]
    np.testing.assert_array_equal(np.concatenate(parts), whole)
    np.testing.assert_array_equal(resample(x, 16000, 16000), x)
    dc = resample(np.full(5000, 0.25), 11025, 16000)
    np.testing.assert_allclose(dc[200:-200], 0.25, rtol=0, atol=1e-12)


def test_recurrent_state_is_carried_during_calibration(tmp_path):
    """stateN = state + sum(x): calibration must see the state the model really reaches (0, 4v,
    8v over three windows of a constant signal v), not zeros; each file starts from zeros."""
    from dsedge.calibration import calibrate
    nodes = [helper.make_node("ReduceSum", ["x"], ["s"], keepdims=1),
             helper.make_node("Add", ["state", "s"], ["stateN"]),
             helper.make_node("Identity", ["x"], ["y"])]
    m = helper.make_model(helper.make_graph(
        nodes, "rnn", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4]),
                       helper.make_tensor_value_info("state", TensorProto.FLOAT, [1, 1])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4]),
         helper.make_tensor_value_info("stateN", TensorProto.FLOAT, [1, 1])]),
        opset_imports=[helper.make_opsetid("", 13)])
    g = from_model_proto(m)
    _write_wav(tmp_path / "a.wav", np.full(12, 1000), 16000)
    _write_wav(tmp_path / "b.wav", np.full(4, 1000), 16000)
    fs = open_feeds(tmp_path, g)
    assert fs.spec.carry == (("stateN", "state"),)
    v = 1000 / 32768
    res = calibrate(g, fs, method="minmax", progress=False)
    lo, hi = res.ranges["state"]
    assert abs(hi - 8 * v) < 1e-6 and lo <= 0
    seen = [float(f["state"][0, 0]) for f in res.feeds]
    assert sorted(seen) == pytest.approx([0.0, 0.0, 4 * v, 8 * v], abs=1e-6)
    # without outputs handed back (plain iteration) the state stays zero; carry=none disables it
    assert all(not f["state"].any() for f in open_feeds(tmp_path, g))
    assert open_feeds(tmp_path, g, preprocess="carry=none").spec.carry == ()
    with pytest.raises(FeedError, match="not an output"):
        open_feeds(tmp_path, g, preprocess="carry=nope>state")
