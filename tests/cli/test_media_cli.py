"""Calibration from image / WAV folders end to end: `dsedge quantize --calib photos/ --preprocess`,
the preprocessing stored in the artifact, and `dsedge run -i digit.png` / `Runtime.run_file`.

The digits seed model (models/digits: 8x8 grayscale, ink = 1, background = 0, float32 NCHW)
is calibrated (a) from PNGs written from its own calib.npz and (b) from digits rendered with
DejaVu fonts; the quantised model's accuracy on eval.npz must stay that of the npz-calibrated
model. The image path is checked against Pillow's own resize computed here.
"""
import json
import os
import subprocess
import sys
import wave
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest

Image = pytest.importorskip("PIL.Image")
from PIL import ImageDraw, ImageFont  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
DIGITS = ROOT / "models" / "digits"
FONT_DIR = "/usr/share/fonts/truetype/dejavu"


def cli(*args, cwd=None):
    env = dict(os.environ)
    env.pop("DSEDGE_DEBUG", None)
    return subprocess.run([sys.executable, "-m", "dsedge.cli", *map(str, args)], capture_output=True, text=True,
                          cwd=cwd, env=env, timeout=600)


def _render_digit(d: int, rng, size: int = 32):
    fonts = sorted(os.listdir(FONT_DIR)) if os.path.isdir(FONT_DIR) else []
    fonts = [f for f in fonts if f.endswith(".ttf")]
    f = (ImageFont.truetype(os.path.join(FONT_DIR, fonts[int(rng.integers(len(fonts)))]), int(rng.integers(22, 30)))
         if fonts else ImageFont.load_default())
    img = Image.new("L", (size, size), 0)
    dr = ImageDraw.Draw(img)
    bb = dr.textbbox((0, 0), str(d), font=f)
    w, h = bb[2] - bb[0], bb[3] - bb[1]
    dr.text(((size - w) / 2 - bb[0] + int(rng.integers(-2, 3)), (size - h) / 2 - bb[1] + int(rng.integers(-2, 3))),
            str(d), fill=255, font=f)
    return img


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    root = tmp_path_factory.mktemp("media")
    png = root / "from_npz"
    png.mkdir()
    for i, x in enumerate(np.load(DIGITS / "calib.npz")["image"]):
        Image.fromarray(np.rint(x[0, 0] * 255).astype(np.uint8)).save(png / f"{i:03d}.png")
    rend = root / "rendered"
    rend.mkdir()
    rng = np.random.default_rng(0)
    for k in range(40):
        _render_digit(k % 10, rng).save(rend / f"{k:03d}_{k % 10}.png")
    return root, png, rend


def _accuracy_dse(path) -> float:
    import dsedge
    e = np.load(DIGITS / "eval.npz")
    with dsedge.Runtime(str(path)) as rt:
        return float(np.mean([rt.run({"image": x})["logits"].argmax() == y for x, y in zip(e["image"], e["label"])]))


def _accuracy_onnx(path) -> float:
    e = np.load(DIGITS / "eval.npz")
    s = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return float(np.mean([s.run(None, {"image": x})[0].argmax() == y for x, y in zip(e["image"], e["label"])]))


@pytest.fixture(scope="module")
def npz_models(tmp_path_factory):
    d = tmp_path_factory.mktemp("npz")
    out = {}
    for ext in ("onnx", "dse"):
        r = cli("quantize", DIGITS / "model.onnx", "--calib", DIGITS / "calib.npz", "-o", d / f"m.{ext}",
                   "--no-progress")
        assert r.returncode == 0, r.stderr
        out[ext] = d / f"m.{ext}"
    return out


def test_png_folder_calibration_matches_npz(folders, npz_models, tmp_path):
    _, png, _ = folders
    out = tmp_path / "png.onnx"
    r = cli("quantize", DIGITS / "model.onnx", "--calib", png, "-o", out, "--no-progress", "--json")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["calibration"]["feeds"] == 64
    acc_png, acc_npz = _accuracy_onnx(out), _accuracy_onnx(npz_models["onnx"])
    assert acc_npz > 0.95 and abs(acc_png - acc_npz) <= 0.01, (acc_png, acc_npz)
    meta = {p.key: p.value for p in onnx.load(str(out)).metadata_props}
    spec = json.loads(meta["dsedge.preprocessing"])
    assert spec["kind"] == "image" and spec["color"] == "gray" and spec["resize"] == [8, 8]
    assert meta["labels"] == "0,1,2,3,4,5,6,7,8,9"                  # the source metadata is kept too
    # compare on the image folder reads it with the preprocessing stored in the quantised model
    r = cli("compare", DIGITS / "model.onnx", out, "--data", png, "--json", "--no-progress")
    assert r.returncode == 0, r.stderr
    res = json.loads(r.stdout)
    r = cli("compare", DIGITS / "model.onnx", npz_models["onnx"], "--data", DIGITS / "calib.npz", "--json",
            "--no-progress")
    ref = json.loads(r.stdout)                    # the same 64 images as arrays, npz-calibrated model
    assert res["feeds"] == 64 and res["outputs"]["logits"]["top1_agreement"] == 1.0
    # calibrated from the PNGs it is no worse than from the arrays (both ~50 dB with u8u8 weights)
    assert res["outputs"]["logits"]["sqnr_db"] > ref["outputs"]["logits"]["sqnr_db"] - 1.0, (res, ref)


def test_rendered_digits_to_dse_and_run_png_equals_npz(folders, npz_models, tmp_path):
    _, _, rend = folders
    out = tmp_path / "rend.dse"
    r = cli("quantize", DIGITS / "model.onnx", "--calib", rend, "--preprocess", "filter=bilinear,scale=1/255",
               "-o", out, "--no-progress")
    assert r.returncode == 0, r.stderr
    acc, acc_npz = _accuracy_dse(out), _accuracy_dse(npz_models["dse"])
    assert acc_npz > 0.95 and abs(acc - acc_npz) <= 0.02, (acc, acc_npz)
    # dsedge run on the PNG == dsedge run on the array computed here with Pillow (32x32 -> 8x8)
    png = rend / "007_7.png"
    x = (np.asarray(Image.open(png).resize((8, 8), Image.BILINEAR), np.float64) / 255.0).astype(np.float32)
    np.savez(tmp_path / "seven.npz", image=x[None, None])
    a = cli("run", out, "-i", png, "-o", tmp_path / "a.npz")
    b = cli("run", out, "-i", tmp_path / "seven.npz", "-o", tmp_path / "b.npz")
    assert a.returncode == 0 and b.returncode == 0, a.stderr + b.stderr
    la, lb = np.load(tmp_path / "a.npz")["logits"], np.load(tmp_path / "b.npz")["logits"]
    assert la.shape == (1, 10)
    np.testing.assert_array_equal(la, lb)

    import dsedge
    with dsedge.Runtime(str(out)) as rt:
        assert rt.preprocessing.color == "gray"
        np.testing.assert_array_equal(rt.run_file(png)["logits"], lb)
        np.testing.assert_array_equal(rt.run_file(Image.open(png))["logits"], lb)          # a PIL image
        np.testing.assert_array_equal(rt.preprocess(np.asarray(Image.open(png)))["image"], x[None, None])
    _sine_wav(tmp_path / "tone.wav", 440, 16000)
    r = cli("run", out, "-i", tmp_path / "tone.wav", "-o", tmp_path / "t.npz")
    assert r.returncode == 2 and "calibrated on image files and takes images" in r.stderr, r.stderr


def test_run_image_on_model_without_preprocessing(folders, npz_models, tmp_path):
    _, png, _ = folders
    r = cli("run", npz_models["dse"], "-i", png / "000.png", "-o", tmp_path / "o.npz")
    assert r.returncode == 2 and "carries no preprocessing metadata" in r.stderr
    assert "Traceback" not in r.stderr


def test_user_errors_exit_2(folders, tmp_path):
    _, png, _ = folders
    r = cli("quantize", DIGITS / "model.onnx", "--calib", png, "--preprocess", "resize=10x10", "-o",
               tmp_path / "x.onnx", "--no-progress")
    assert r.returncode == 2, r.stderr
    assert "model.onnx" in r.stderr and "resize=8x8" in r.stderr and "Traceback" not in r.stderr
    bad = tmp_path / "bad"
    bad.mkdir()
    Image.new("L", (8, 8)).save(bad / "a.png")
    (bad / "b.png").write_bytes(b"GIF89a garbage")
    r = cli("quantize", DIGITS / "model.onnx", "--calib", bad, "-o", tmp_path / "x.onnx", "--no-progress")
    assert r.returncode == 2 and "b.png: cannot read the image" in r.stderr and "Traceback" not in r.stderr
    r = cli("quantize", DIGITS / "model.onnx", "--calib", DIGITS / "calib.npz", "--preprocess", "resize=8",
               "-o", tmp_path / "x.onnx", "--no-progress")
    assert r.returncode == 2 and "--preprocess applies to image or WAV" in r.stderr
    r = cli("export", DIGITS / "model.onnx", "-o", tmp_path / "b", "--preprocess", "resize=8")
    assert r.returncode == 2 and "--calib" in r.stderr


def _sine_wav(path, f, rate, seconds=0.5, amp=0.5):
    t = np.arange(int(rate * seconds)) / rate
    s = np.rint(amp * 32767 * np.sin(2 * np.pi * f * t)).astype("<i2")
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(s.tobytes())


def _audio_model(path, n=400):
    """input [1, n] float -> ReduceMean(x * x) (signal power) and a Conv1d band detector."""
    from onnx import TensorProto, helper, numpy_helper
    rng = np.random.default_rng(0)
    w = rng.standard_normal((4, 1, 16)).astype(np.float32)
    nodes = [helper.make_node("Unsqueeze", ["x", "ax"], ["x3"]),
             helper.make_node("Conv", ["x3", "w"], ["c"], strides=[8]),
             helper.make_node("Relu", ["c"], ["r"]),
             helper.make_node("ReduceMean", ["r"], ["y"], axes=[2], keepdims=0)]
    g = helper.make_graph(nodes, "a", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, n])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
                          initializer=[numpy_helper.from_array(w, "w"),
                                       numpy_helper.from_array(np.array([1], np.int64), "ax")])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
    onnx.save(m, str(path))


def test_wav_folder_calibration_and_run_wav(tmp_path):
    """WAVs at 8, 22.05 and 44.1 kHz calibrate a [1, 400] model at 16 kHz; `dsedge run -i x.wav`
    gives one output row per window, equal to the float model on the same windows within int8 error."""
    wavs = tmp_path / "wavs"
    wavs.mkdir()
    for k, (f, rate) in enumerate([(300, 8000), (1000, 22050), (2500, 44100), (5000, 44100)]):
        _sine_wav(wavs / f"{k}.wav", f, rate)
    model = tmp_path / "a.onnx"
    _audio_model(model)
    out = tmp_path / "a.dse"
    r = cli("quantize", model, "--calib", wavs, "--preprocess", "sample_rate=16000", "-o", out, "--no-progress",
               "--json")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["calibration"]["feeds"] == 4 * 20          # 0.5 s at 16 kHz / 400
    r = cli("run", out, "-i", wavs / "2.wav", "-o", tmp_path / "o.npz")
    assert r.returncode == 0, r.stderr
    y = np.load(tmp_path / "o.npz")["y"]
    assert y.shape == (20, 1, 4)
    from dsedge.calibration.preprocess import read_wav
    from dsedge.calibration.resample import resample
    x, sr = read_wav(wavs / "2.wav")
    x = resample(x, sr, 16000).astype(np.float32)
    s = ort.InferenceSession(str(model), providers=["CPUExecutionProvider"])
    ref = np.stack([s.run(None, {"x": x[None, k * 400:(k + 1) * 400]})[0] for k in range(20)])
    sqnr = 10 * np.log10(np.sum(ref ** 2) / np.sum((ref - y) ** 2))
    assert sqnr > 25, sqnr
    import dsedge
    with dsedge.Runtime(str(out)) as rt:
        np.testing.assert_array_equal(rt.run_file(wavs / "2.wav")["y"], y)
        np.testing.assert_array_equal(rt.run_file(x, sample_rate=16000)["y"], y)    # an array at the model's rate


def test_float_wav_exit_2(tmp_path):
    import struct
    data = np.zeros(16, "<f4").tobytes()
    fmt = struct.pack("<HHIIHH", 3, 1, 16000, 64000, 4, 32)
    body = b"WAVE" + b"fmt " + struct.pack("<I", len(fmt)) + fmt + b"data" + struct.pack("<I", len(data)) + data
    d = tmp_path / "w"
    d.mkdir()
    (d / "f.wav").write_bytes(b"RIFF" + struct.pack("<I", len(body)) + body)
    model = tmp_path / "a.onnx"
    _audio_model(model)
    r = cli("quantize", model, "--calib", d, "-o", tmp_path / "a.dse", "--no-progress")
    assert r.returncode == 2 and "f.wav: unsupported or corrupt WAV" in r.stderr and "sox" in r.stderr
    assert "Traceback" not in r.stderr


def test_run_file_quantises_for_int8_io(folders, tmp_path):
    """--io-dtype int8: run_file quantises the preprocessed image with the input's scale and zero
    point, which gives the float-io artifact's output exactly (the same rounding as its QuantizeLinear)."""
    import dsedge
    _, png, _ = folders
    outs = {}
    for io in ("float32", "int8"):
        r = cli("quantize", DIGITS / "model.onnx", "--calib", png, "--io-dtype", io, "-o", tmp_path / f"{io}.dse",
                "--no-progress")
        assert r.returncode == 0, r.stderr
        with dsedge.Runtime(str(tmp_path / f"{io}.dse")) as rt:
            assert rt.inputs[0].dtype == np.dtype(io)
            outs[io] = [rt.run_file(png / f"{k:03d}.png")["logits"] for k in range(8)]
    for a, b in zip(outs["float32"], outs["int8"]):
        np.testing.assert_array_equal(a, b)
