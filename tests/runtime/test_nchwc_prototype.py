"""benchmarks/nchwc/nchwc.c (the NCHW8c conv prototype of session 16, not runtime code): built as its
benchmark builds it, its `check` mode must find every kernel's output equal, bit for bit, to a scalar
fmaf() chain in NCHW (the order (ic, kh, kw), then + bias, then ReLU) and within K * 2^-24 * sum|x w|
of a float64 sum, on odd shapes (padding on every side, strides, channel counts not a multiple of
8, IC chunks, 1x1 long rows, depthwise s1/s2), and the reorders to round-trip. The figures in
BENCHMARKS.md ("Session 16: NCHW8c prototype") rest on this."""
from __future__ import annotations

import platform
import shutil
import subprocess
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[2] / "benchmarks" / "nchwc" / "nchwc.c"


def _avx2_fma() -> bool:
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return " avx2" in flags and " fma" in flags


@pytest.mark.slow
@pytest.mark.skipif(platform.machine() not in ("x86_64", "AMD64") or not shutil.which("gcc") or not _avx2_fma(),
                    reason="the prototype is AVX2 + FMA, built with gcc")
def test_prototype_matches_the_fma_chain_and_float64(tmp_path):
    exe = tmp_path / "nchwc"
    subprocess.run(["gcc", "-O3", "-std=gnu11", "-mavx2", "-mfma", "-o", str(exe), str(SRC), "-lm"], check=True)
    out = subprocess.run([str(exe), "check"], capture_output=True, text=True)
    assert out.returncode == 0, out.stdout[-4000:]
    lines = out.stdout.splitlines()
    assert lines[-1] == "all ok"
    ok = [ln for ln in lines if ln.startswith("ok ")]
    assert len(ok) >= 50 and not any(ln.startswith("FAIL") for ln in lines)
    assert any(" dw " in ln for ln in ok) and any("reorder round trip" in ln for ln in ok)
