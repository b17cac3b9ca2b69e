"""Shared helpers for the benchmark scripts: feed files, SQNR, child-process measurement, machine info.

Deliberately independent of dsedge (only numpy, onnx and the standard library), so that the
onnxruntime side of a benchmark never pays for importing dsedge and keeps working while
dsedge is broken.

Feeds (the same two layouts `dsedge quantize --calib` reads):
  (a) one `.npz` whose arrays carry a leading *sample* axis: feed i is {key: arr[i]};
  (b) a directory of `.npz` files, one feed each, in file-name order: feed = {key: arr}.
A single-input model may be fed from an npz saved with `np.savez(f, x)` (key `arr_0`). Keys
that are not model inputs (e.g. `label` in an eval set) are not fed to the model; in layout
(a) they are kept as `extras` for task metrics (e.g. top-1 accuracy against labels).
Feeds are read lazily: iterating a `FeedSet` twice reads the files twice, never all
activations, and for layout (b) never more than one feed at a time.

Child measurement: `measure_child` runs a command in a fresh process and takes that one
process's peak RSS from `os.wait4` (grandchildren it waited for included) and the wall time
around it. Two Linux traps are avoided:
  * `getrusage(RUSAGE_CHILDREN).ru_maxrss` is a maximum over *all* children ever waited for,
    so a second measurement in the same parent would report the larger of the two;
  * a child's `ru_maxrss` starts at its *parent's* high-water RSS (fork copies the page
    counters, and exec records the old address space's peak), so a benchmark parent that once
    held 500 MB makes every child look >= 500 MB, even after it freed them.
So the command is started by a tiny launcher process (`python -S`, ~10 MB) that does the
wait4 and the timing and writes them to a file: the measured process inherits only the
launcher's footprint.
"""
from __future__ import annotations

import datetime
import os
import platform
import shlex
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np


class FeedFileError(ValueError):
    """A feed file or directory that cannot be used; the message names the file and the fix."""


_FIX = ("a feed set is one .npz whose arrays have a leading sample axis (np.savez(path, **{input: samples})) "
        "or a directory of .npz files, one feed each")


@dataclass
class FeedSet:
    """A lazily read set of feeds. `len()` feeds; iterating yields {input name: array}."""
    path: str
    layout: str                      # "npz" (leading sample axis) or "dir" (one file per feed)
    files: list[str]
    n: int
    key_of: dict[str, str]           # model input name -> npz key
    extras: dict[str, np.ndarray] = field(default_factory=dict)   # non-input arrays (layout "npz")
    batch_is_sample: set[str] = field(default_factory=set)         # inputs fed as arr[i:i+1]

    def __len__(self) -> int:
        return self.n

    def __iter__(self) -> Iterator[dict[str, np.ndarray]]:
        if self.layout == "dir":
            for f in self.files:
                with np.load(f) as z:
                    yield {name: np.ascontiguousarray(z[key]) for name, key in self.key_of.items()}
            return
        with np.load(self.files[0]) as z:
            arrays = {name: z[key] for name, key in self.key_of.items()}
        for i in range(self.n):
            yield {name: np.ascontiguousarray(a[i:i + 1] if name in self.batch_is_sample else a[i])
                   for name, a in arrays.items()}

    def take(self, n: int) -> list[dict[str, np.ndarray]]:
        out = []
        for feed in self:
            if len(out) >= n:
                break
            out.append(feed)
        return out


def model_inputs(model) -> dict[str, list[int | None]]:
    """{graph input name: static shape (None for symbolic dims)} of an onnx.ModelProto, initializers excluded."""
    inits = {t.name for t in model.graph.initializer}
    out = {}
    for vi in model.graph.input:
        if vi.name in inits:
            continue
        dims = vi.type.tensor_type.shape.dim
        out[vi.name] = [d.dim_value if d.HasField("dim_value") else None for d in dims]
    return out


def _map_keys(keys: list[str], inputs: dict | None, where: str) -> dict[str, str]:
    if inputs is None:
        return {k: k for k in keys}
    if keys == ["arr_0"] and len(inputs) == 1:
        return {next(iter(inputs)): "arr_0"}
    missing = [i for i in inputs if i not in keys]
    if missing:
        raise FeedFileError(f"{where}: missing input(s) {missing}; the file has {keys}, "
                            f"the model's inputs are {list(inputs)}; {_FIX}")
    return {i: i for i in inputs}


def open_feeds(path, inputs: dict[str, list] | None = None) -> FeedSet:
    """Open a feed set. With `inputs` (see `model_inputs`), keys are checked against the model's
    inputs and other keys become extras; an array with exactly the model's rank whose first model
    dimension is 1 or symbolic is taken as [n, ...] with the batch axis doubling as the sample axis."""
    p = Path(path)
    if not p.exists():
        raise FeedFileError(f"{path}: no such file or directory; {_FIX}")
    if p.is_dir():
        files = sorted(str(f) for f in p.iterdir() if f.suffix == ".npz" and f.is_file())
        if not files:
            raise FeedFileError(f"{path}: no .npz files in this directory; {_FIX}")
        with np.load(files[0]) as z:
            keys = list(z.files)
        return FeedSet(str(path), "dir", files, len(files), _map_keys(keys, inputs, files[0]))
    if p.suffix.lower() != ".npz":
        raise FeedFileError(f"{path}: not an .npz file; {_FIX}")
    with np.load(path) as z:
        keys = list(z.files)
        key_of = _map_keys(keys, inputs, str(path))
        arrays = {k: z[k] for k in keys}
    used = set(key_of.values())
    lens = {k: (a.shape[0] if a.ndim else None) for k, a in arrays.items() if k in used}
    if not lens or None in lens.values() or len(set(lens.values())) != 1:
        raise FeedFileError(f"{path}: input arrays need one common leading sample axis, got shapes "
                            f"{ {k: arrays[k].shape for k in used} }; {_FIX}")
    batch_is_sample = set()
    if inputs is not None:
        for name, key in key_of.items():
            shape = inputs[name]
            if shape and arrays[key].ndim == len(shape) and shape[0] in (1, None):
                batch_is_sample.add(name)
            elif shape and arrays[key].ndim != len(shape) + 1:
                raise FeedFileError(f"{path}: array {key!r} has shape {arrays[key].shape}, the model input "
                                    f"{name!r} has shape {shape}: expected a leading sample axis; {_FIX}")
    extras = {k: a for k, a in arrays.items() if k not in used}
    return FeedSet(str(path), "npz", [str(path)], next(iter(lens.values())), key_of, extras, batch_is_sample)


def write_feed_dir(feeds: dict[str, np.ndarray], directory) -> str:
    """Write {name: [n, ...]} as a directory of n .npz files (feed_0000.npz, ...); returns the directory."""
    os.makedirs(directory, exist_ok=True)
    n = len(next(iter(feeds.values())))
    for i in range(n):
        np.savez(os.path.join(directory, f"feed_{i:04d}.npz"), **{k: v[i] for k, v in feeds.items()})
    return str(directory)


# -- metrics -----------------------------------------------------------------------------------

def sqnr_db(ref: np.ndarray, got: np.ndarray) -> float:
    """Signal-to-quantisation-noise ratio in dB, 10*log10(sum ref^2 / sum (ref-got)^2), in float64.

    inf when identical; -inf when the reference is all zeros but the result is not; NaN in the
    result (a broken model) gives NaN."""
    r = np.asarray(ref, np.float64).ravel()
    g = np.asarray(got, np.float64).ravel()
    if r.shape != g.shape:
        raise ValueError(f"shape mismatch: reference {np.shape(ref)} vs result {np.shape(got)}")
    noise = float(np.sum((r - g) ** 2))
    sig = float(np.sum(r * r))
    if np.isnan(noise):
        return float("nan")
    if noise == 0.0:
        return float("inf")
    if sig == 0.0:
        return float("-inf")
    return 10.0 * float(np.log10(sig / noise))


def top1_agreement(ref: dict[str, np.ndarray], got: dict[str, np.ndarray], extras: dict) -> float:
    """Task metric for classifiers: fraction of samples whose arg-max over the last axis of the
    first output matches the float model's. Outputs are stacked [n_samples, ...]."""
    name = next(iter(ref))
    a, b = ref[name], got[name]
    return float(np.mean(a.reshape(a.shape[0], -1, a.shape[-1]).argmax(-1)
                         == b.reshape(b.shape[0], -1, b.shape[-1]).argmax(-1)))


def label_accuracy(ref: dict[str, np.ndarray], got: dict[str, np.ndarray], extras: dict) -> float:
    """Task metric: top-1 accuracy of the quantised model against the eval set's `label` array."""
    if "label" not in extras:
        raise FeedFileError("task 'label' needs a 'label' array in the eval .npz (one label per sample)")
    b = got[next(iter(got))]
    pred = b.reshape(b.shape[0], -1).argmax(-1)
    return float(np.mean(pred == np.asarray(extras["label"]).reshape(-1)[: len(pred)]))


TASKS = {"top1": top1_agreement, "label": label_accuracy}


# -- processes and machine ---------------------------------------------------------------------

@dataclass(frozen=True)
class ChildResult:
    cmd: tuple[str, ...]
    returncode: int
    wall_s: float
    peak_rss_mb: float
    stdout: str
    stderr: str
    cpu_s: float = float("nan")   # the child's user + system CPU time (its children's included)


_LAUNCHER = r"""
import json, os, subprocess, sys, time
t0 = time.perf_counter()
p = subprocess.Popen(sys.argv[2:])
_, status, ru = os.wait4(p.pid, 0)
wall = time.perf_counter() - t0
p.returncode = os.waitstatus_to_exitcode(status)
with open(sys.argv[1], "w") as f:
    json.dump({"rc": p.returncode, "wall": wall, "maxrss": ru.ru_maxrss, "cpu": ru.ru_utime + ru.ru_stime}, f)
"""


def measure_child(cmd: Sequence[str], *, env: dict | None = None, cwd=None, timeout: float | None = None) -> ChildResult:
    """Run `cmd` in a fresh process (through the launcher); its wall time and peak RSS in MiB.

    On timeout the whole process group is killed and returncode is -9."""
    import json
    import signal

    with tempfile.TemporaryDirectory(prefix="dsedge-measure-") as tmp:
        res_path = os.path.join(tmp, "rusage.json")
        with open(os.path.join(tmp, "out"), "w+b") as out, open(os.path.join(tmp, "err"), "w+b") as err:
            proc = subprocess.Popen([sys.executable, "-S", "-c", _LAUNCHER, res_path, *cmd], stdout=out, stderr=err,
                                    env=env, cwd=cwd, start_new_session=True)
            try:
                proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
            out.seek(0)
            err.seek(0)
            so, se = out.read().decode(errors="replace"), err.read().decode(errors="replace")
        if not os.path.exists(res_path):
            return ChildResult(tuple(cmd), proc.returncode or -9,
                               float("nan"), float("nan"), so, se + f"\n(killed: no result from the launcher)")
        with open(res_path) as f:
            r = json.load(f)
    # ru_maxrss is KiB on Linux, bytes on macOS
    rss = r["maxrss"] / (1024.0 * 1024.0) if sys.platform == "darwin" else r["maxrss"] / 1024.0
    return ChildResult(tuple(cmd), r["rc"], r["wall"], rss, so, se, r.get("cpu", float("nan")))


def machine_info() -> dict[str, str]:
    """CPU model (lscpu), logical cores, OS, Python, numpy/onnxruntime versions, UTC date."""
    model = platform.processor() or platform.machine()
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, timeout=10).stdout
        for line in out.splitlines():
            if line.lower().startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except (OSError, subprocess.SubprocessError):
        pass
    info = {"cpu": model, "cores": str(os.cpu_count()), "os": f"{platform.system()} {platform.release()}",
            "python": platform.python_version(), "numpy": np.__version__,
            "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")}
    try:
        import onnxruntime
        info["onnxruntime"] = onnxruntime.__version__
    except ImportError:
        pass
    return info


def command_line() -> str:
    """The command that started this process, as one would retype it."""
    return " ".join(shlex.quote(a) for a in [os.path.basename(sys.executable), *sys.argv])


def replace_section(path, title: str, body: str) -> None:
    """Replace the markdown section `## title` (up to the next `## ` heading) in `path`, or append it.
    Subsections (`### `) written by hand under it are kept when `body` has none of its own: the
    body then replaces only the text before the first of them. Creates the file with a
    `# Benchmarks` heading when missing."""
    p = Path(path)
    text = p.read_text() if p.exists() else "# Benchmarks\n\nResults of the scripts in `benchmarks/` (see benchmarks/README.md).\n"
    head = f"## {title}"
    lines = text.splitlines(keepends=True)
    start = next((i for i, l in enumerate(lines) if l.rstrip("\n") == head), None)
    section = f"{head}\n\n{body.rstrip()}\n\n"
    if start is None:
        new = text.rstrip("\n") + "\n\n" + section
    else:
        stops = ("## ",) if any(l.startswith("### ") for l in body.splitlines()) else ("## ", "### ")
        end = next((j for j in range(start + 1, len(lines)) if lines[j].startswith(stops)), len(lines))
        new = "".join(lines[:start]) + section + "".join(lines[end:])
    p.write_text(new.rstrip("\n") + "\n")
