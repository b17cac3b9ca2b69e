"""silero-vad calibrated from a folder of WAV files (espeak-ng speech at 22.05 kHz, a quiet
stereo 44.1 kHz recording), then run on a WAV through the preprocessing stored in the .dse.

Windows are 576 samples at 16 kHz with a hop of 512 (silero's 512 new samples + 64 of
context), sr = 16000 (the feed reader's rule for integer scalars named sr), and the recurrent
state carried from window to window (stateN -> state, found by name; zeros at the start of each
file): during calibration from the float model's outputs, when running from the artifact's.
The oracle is the float model in onnxruntime run the same way (as silero_vad's OnnxWrapper).
"""
import os
import shutil
import subprocess
import wave

import numpy as np
import onnxruntime as ort
import pytest

from tests.models import devmodels

pytestmark = pytest.mark.slow

SENTENCES = ["The quick brown fox jumps over the lazy dog.", "Seven tiny models run on a small board today.",
             "Please say the number forty two again slowly."]


@pytest.fixture(scope="module")
def vad(tmp_path_factory):
    if "silero/silero_vad" not in devmodels.dev_models():
        pytest.skip("silero-vad==6.2.3 is not installed (pip install --no-deps silero-vad==6.2.3)")
    exe = shutil.which("espeak-ng") or shutil.which("espeak")
    if exe is None:
        pytest.skip("espeak-ng is not installed (apt-get install espeak-ng): no speech to calibrate on")
    d = tmp_path_factory.mktemp("vad")
    wavs = d / "wavs"
    wavs.mkdir()
    for k, s in enumerate(SENTENCES):
        subprocess.run([exe, "-w", str(wavs / f"speech{k}.wav"), s], check=True, capture_output=True)
    rng = np.random.default_rng(0)
    quiet = np.rint(rng.standard_normal((44100, 2)) * 30).astype("<i2")       # 1 s of faint stereo hiss
    with wave.open(str(wavs / "quiet.wav"), "wb") as w:
        w.setnchannels(2)
        w.setsampwidth(2)
        w.setframerate(44100)
        w.writeframes(quiet.tobytes())
    out = d / "vad.dse"
    from tests.cli.test_media_cli import cli
    r = cli("quantize", devmodels.model_path("silero/silero_vad"), "--calib", wavs, "--preprocess",
            "window=576,hop=512", "-o", out, "--no-progress")
    assert r.returncode == 0, r.stderr
    return wavs, out


def test_vad_from_wav_folder_matches_float(vad):
    import dsedge
    wavs, out = vad
    sess = ort.InferenceSession(devmodels.model_path("silero/silero_vad"), providers=["CPUExecutionProvider"])
    with dsedge.Runtime(str(out)) as rt:
        spec = rt.preprocessing
        assert (spec.sample_rate, spec.window, spec.hop) == (16000, 576, 512)
        assert spec.carry == (("stateN", "state"),)
        for name, speech in [("speech1.wav", True), ("quiet.wav", False)]:
            last = {}
            ref = []
            for f in spec.feeds(str(wavs / name), state=lambda: last.get("o")):
                prob, state = sess.run(None, f)
                last["o"] = {"stateN": state}
                ref.append(prob.ravel()[0])
            ref = np.array(ref)
            got = rt.run_file(wavs / name)["output"].ravel()
            assert got.shape == ref.shape
            assert np.mean((ref > 0.5) == (got > 0.5)) >= 0.9
            assert np.mean(np.abs(ref - got)) < 0.05
            if speech:        # the resampled speech is speech to the float model
                assert np.mean(ref > 0.5) > 0.3
            else:
                assert np.mean(ref > 0.5) < 0.1
