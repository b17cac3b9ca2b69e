"""Calibration feeds: what `--calib PATH` points at.

A folder of images or WAV files (no .npz in it), or one such file, is read by
calibration/media.py through the preprocessing of calibration/preprocess.py. Two .npz layouts:
  (a) a directory of `.npz` files, one feed each, read in file-name order. Keys are the
      model's input names; arrays are exactly what the model takes (batch axis included).
  (b) one `.npz` file whose arrays carry an extra leading *sample* axis, all of the same
      length; feed i is `{key: arr[i]}`. When a graph is given and an array has the model's
      rank (no extra axis) while the model's first dimension is a static 1, the batch axis
      doubles as the sample axis (feed i is `arr[i:i+1]`).
Convenience: an `.npz` saved with `np.savez(f, x)` (single key `arr_0`) feeds a model with a
single input.

Feeds are read lazily, one at a time: layout (a) opens one file per feed; layout (b)
memory-maps stored (uncompressed) members and streams compressed ones sample by sample, so
the whole calibration set is never in memory. Everything that can be checked from the
`.npy` headers (keys, ranks, dimensions, dtypes) is checked when the set is opened, so a
bad file fails at once and not after an hour of calibration; values (NaN/inf) are checked
as each feed is read.

Key policy: a key the model does not have is an error (a stale or wrong feed file is more
likely than a deliberate extra array); pass `extra="ignore"` to drop such keys instead.
"""
from __future__ import annotations

import os
import struct
import warnings
import zipfile
from pathlib import Path
from typing import Iterator

import numpy as np

from dsedge.errors import FeedError
from dsedge.ir import Graph

_FIX = "each feed is an .npz whose keys are the model's input names (np.savez(path, **{name: array}))"


def _read_header(fp) -> tuple[tuple[int, ...], np.dtype, bool]:
    """(shape, dtype, fortran_order) of the .npy stream at fp; leaves fp at the data."""
    version = np.lib.format.read_magic(fp)
    if version == (1, 0):
        shape, fortran, dtype = np.lib.format.read_array_header_1_0(fp)
    elif version == (2, 0):
        shape, fortran, dtype = np.lib.format.read_array_header_2_0(fp)
    else:  # (3, 0): utf-8 field names
        shape, fortran, dtype = np.lib.format._read_array_header(fp, version)
    return tuple(shape), np.dtype(dtype), bool(fortran)


class _Member:
    """One array of an .npz: its header, and where its raw bytes are when stored uncompressed."""

    def __init__(self, path: str, zf: zipfile.ZipFile, info: zipfile.ZipInfo):
        self.key = info.filename[:-4] if info.filename.endswith(".npy") else info.filename
        self.info = info
        with zf.open(info) as fp:
            self.shape, self.dtype, self.fortran = _read_header(fp)
            header_len = fp.tell()
        if self.dtype.hasobject:
            raise FeedError(f"{path}: array {self.key!r} holds Python objects, not numbers",
                            hint="save plain numeric arrays with np.savez")
        self.offset = None                                 # file offset of the data if stored
        if info.compress_type == zipfile.ZIP_STORED and not self.fortran:
            with open(path, "rb") as f:
                f.seek(info.header_offset)
                local = f.read(30)
                n, m = struct.unpack("<HH", local[26:30])
                self.offset = info.header_offset + 30 + n + m + header_len


def _members(path: str) -> dict[str, _Member]:
    try:
        with zipfile.ZipFile(path) as zf:
            infos = [i for i in zf.infolist() if not i.is_dir()]
            out = {}
            for i in infos:
                try:
                    mem = _Member(path, zf, i)
                except FeedError:
                    raise
                except Exception as e:
                    raise FeedError(f"{path}: member {i.filename!r} is not a .npy array ({e})",
                                    hint=_FIX) from None
                out[mem.key] = mem
            return out
    except (zipfile.BadZipFile, OSError) as e:
        raise FeedError(f"{path}: not an .npz file ({e})", hint=_FIX) from None


def _check_header(g: Graph, name: str, shape: tuple, dtype: np.dtype, where: str) -> None:
    """The header-level part of dsedge.interp.check_feeds (rank, static dims, dtype kind)."""
    info = g.tensor_info(name)
    if info.shape is not None:
        bad = len(shape) != len(info.shape) or any(
            isinstance(e, int) and e >= 0 and d != e for d, e in zip(shape, info.shape))
        if bad:
            exp = "[" + ", ".join("?" if not isinstance(d, int) else str(d) for d in info.shape) + "]"
            raise FeedError(f"{where}: input {name!r} has shape {list(shape)}, the model expects {exp}")
    if info.dtype is not None and dtype != info.dtype:
        ok = dtype.kind == info.dtype.kind == "f" or (
            dtype.kind in "iu" and info.dtype.kind in "iu" and np.can_cast(dtype, info.dtype))
        if not ok:
            raise FeedError(f"{where}: input {name!r} has dtype {dtype}, the model expects {info.dtype}")


class FeedSet:
    """A lazily read calibration set: `len()`, iteration over feed dicts, `.shapes()`."""

    def __init__(self, path: str, kind: str, files: list[str], n: int, keys: dict[str, str],
                 graph: Graph | None, sample_mode: dict[str, str]):
        self.path = path
        self.kind = kind                  # "dir" or "npz"
        self.files = files                # (a): one file per feed; (b): the one file
        self._n = n
        self._keys = keys                 # model input name -> key in the npz
        self.graph = graph
        self._sample_mode = sample_mode   # (b): input -> "axis" (arr[i]) or "batch" (arr[i:i+1])

    def __len__(self) -> int:
        return self._n

    def __repr__(self) -> str:
        return f"FeedSet({self.path!r}, {len(self)} feeds)"

    @property
    def names(self) -> list[str]:
        return list(self._keys)

    def labels(self) -> list[str]:
        if self.kind == "dir":
            return list(self.files)
        return [f"{self.path}[{i}]" for i in range(self._n)]

    def __iter__(self) -> Iterator[dict[str, np.ndarray]]:
        for _, feed in self.items():
            yield feed

    def items(self) -> Iterator[tuple[str, dict[str, np.ndarray]]]:
        """(label naming the file/sample, feed) pairs, read one at a time and validated."""
        if self.kind == "dir":
            for f in self.files:
                try:
                    with np.load(f, allow_pickle=False) as z:
                        raw = {name: z[key] for name, key in self._keys.items()}
                except FeedError:
                    raise
                except Exception as e:
                    raise FeedError(f"{f}: cannot read ({type(e).__name__}: {e})", hint=_FIX) from None
                yield f, self._validate(raw, f)
        else:
            yield from self._iter_samples()

    def _iter_samples(self):
        path = self.files[0]
        with zipfile.ZipFile(path) as zf:
            members = _members(path)
            readers = {}
            for name, key in self._keys.items():
                readers[name] = _SampleReader(path, zf, members[key])
            try:
                for i in range(self._n):
                    where = f"{path}[{i}]"
                    raw = {}
                    for name, r in readers.items():
                        a = r.next()
                        raw[name] = a[None] if self._sample_mode.get(name) == "batch" else a
                    yield where, self._validate(raw, where)
            finally:
                for r in readers.values():
                    r.close()

    def _validate(self, raw: dict[str, np.ndarray], where: str) -> dict[str, np.ndarray]:
        if self.graph is not None:
            from dsedge.interp import check_feeds
            return check_feeds(self.graph, raw, where=where)
        for name, a in raw.items():
            if a.dtype.kind in "fc" and not np.all(np.isfinite(a)):
                raise FeedError(f"{where}: input {name!r} contains NaN or infinity")
        return raw

    def shapes(self) -> dict[str, tuple[tuple, np.dtype]]:
        """Per input: (shape of one feed, dtype); a dimension that differs between feeds is None."""
        out: dict[str, tuple[tuple, np.dtype]] = {}
        files = self.files
        for f in files:
            mem = _members(f)
            for name, key in self._keys.items():
                m = mem[key]
                shp = tuple(m.shape)
                if self.kind == "npz":
                    shp = (1,) + shp[1:] if self._sample_mode.get(name) == "batch" else shp[1:]
                if name in out:
                    prev, dt = out[name]
                    shp = tuple(a if a == b else None for a, b in zip(prev, shp))
                out[name] = (shp, m.dtype)
        return out


class _SampleReader:
    """Reads arr[0], arr[1], ... of one .npz member: memory-mapped when stored, else streamed."""

    def __init__(self, path: str, zf: zipfile.ZipFile, m: _Member):
        self.m = m
        self.i = 0
        self.sample_shape = tuple(m.shape[1:])
        self.nbytes = int(np.prod(self.sample_shape, dtype=np.int64)) * m.dtype.itemsize
        self.mm = None
        self.fp = None
        self.full = None
        if m.offset is not None and m.shape[0] > 0:
            self.mm = np.memmap(path, dtype=m.dtype, mode="r", offset=m.offset, shape=tuple(m.shape))
        elif m.fortran:                 # rare: column-major arrays are read whole
            with zf.open(m.info) as fp:
                self.full = np.lib.format.read_array(fp, allow_pickle=False)
        else:
            self.fp = zf.open(m.info)
            _read_header(self.fp)

    def next(self) -> np.ndarray:
        i = self.i
        self.i += 1
        if self.mm is not None:
            return np.asarray(self.mm[i])
        if self.full is not None:
            return self.full[i]
        buf = self.fp.read(self.nbytes)
        if len(buf) != self.nbytes:
            raise FeedError(f"{self.m.info.filename}: truncated array data at sample {i}")
        return np.frombuffer(buf, dtype=self.m.dtype).reshape(self.sample_shape)

    def close(self):
        if self.fp is not None:
            self.fp.close()
        self.mm = self.full = None


def _map_keys(keys: list[str], g: Graph | None, where: str, extra: str) -> dict[str, str]:
    """Model input name -> npz key; checks missing and extra keys."""
    if g is None:
        return {k: k for k in keys}
    inputs = list(g.inputs)
    if keys == ["arr_0"] and len(inputs) == 1:
        return {inputs[0]: "arr_0"}
    missing = [i for i in inputs if i not in keys]
    if missing:
        raise FeedError(f"{where}: missing input(s) {', '.join(map(repr, missing))} (the file has "
                        f"{', '.join(map(repr, keys)) or 'no arrays'})",
                        hint=f"the model's inputs are {', '.join(map(repr, inputs))}; {_FIX}")
    unknown = [k for k in keys if k not in inputs]
    if unknown:
        if extra == "error":
            raise FeedError(f"{where}: array(s) {', '.join(map(repr, unknown))} are not inputs of the model",
                            hint=f"the model's inputs are {', '.join(map(repr, inputs))}; remove the extra "
                                 "arrays or pass extra='ignore'")
        if extra == "warn":
            warnings.warn(f"{where}: ignoring array(s) {', '.join(unknown)}: not inputs of the model")
    return {i: i for i in inputs}


def open_npz_feeds(path, graph: Graph | None = None, *, extra: str = "error", preprocess=None) -> FeedSet:
    """.npz calibration feeds: a directory of .npz files (one feed each) or one .npz whose
    arrays carry a leading sample axis (calibration/sources.py's `open_feeds` decides; images
    and WAV files are calibration/media.py's). Arguments as `open_feeds`."""
    p = Path(path)
    if p.is_dir():
        files = sorted(str(f) for f in p.iterdir() if f.suffix == ".npz" and f.is_file())
        keys = None
        first = None
        for f in files:
            mem = _members(f)
            names = _map_keys(list(mem), graph, f, extra)
            if keys is None:
                keys, first = names, f
            elif graph is None and set(mem) != set(keys):
                raise FeedError(f"{f}: arrays {sorted(mem)} differ from {first}'s {sorted(keys)}",
                                hint="every feed file must hold the same input names")
            if graph is not None:
                for name, key in names.items():
                    _check_header(graph, name, mem[key].shape, mem[key].dtype, f)
        if preprocess:
            raise FeedError(f"{path}: --preprocess applies to image or WAV feeds, this folder holds .npz feeds",
                            hint="drop --preprocess (.npz feeds are used as they are)")
        return FeedSet(str(path), "dir", files, len(files), keys, graph, {})

    if p.suffix.lower() == ".npy":
        raise FeedError(f"{path}: a single .npy is not a feed set",
                        hint="save it as .npz keyed by the model's input name, e.g. "
                             "np.savez('calib.npz', **{input_name: samples}) with a leading sample axis")
    if preprocess:
        raise FeedError(f"{path}: --preprocess applies to image or WAV feeds, not to an .npz",
                        hint="drop --preprocess (.npz feeds are used as they are)")
    path = str(path)
    mem = _members(path)
    if not mem:
        raise FeedError(f"{path}: the .npz holds no arrays", hint=_FIX)
    keys = _map_keys(list(mem), graph, path, extra)
    modes: dict[str, str] = {}
    lengths = {}
    for name, key in keys.items():
        m = mem[key]
        mode = "axis"
        if graph is not None:
            info = graph.tensor_info(name)
            if info.shape is not None and len(m.shape) == len(info.shape):
                if info.shape and info.shape[0] == 1:
                    mode = "batch"
                else:
                    raise FeedError(
                        f"{path}: array {key!r} has shape {list(m.shape)} but a single-file calibration set "
                        f"needs a leading sample axis (rank {len(info.shape) + 1} for input {name!r})",
                        hint="stack the feeds: np.savez(path, **{name: np.stack(samples)}), or save one .npz "
                             "per feed in a directory")
        if len(m.shape) == 0:
            raise FeedError(f"{path}: array {key!r} is a scalar; it needs a leading sample axis", hint=_FIX)
        modes[name] = mode
        lengths[key] = m.shape[0]
        if graph is not None:
            shp = (1,) + tuple(m.shape[1:]) if mode == "batch" else tuple(m.shape[1:])
            _check_header(graph, name, shp, m.dtype, f"{path} ({key!r}, per sample)")
    if len(set(lengths.values())) > 1:
        raise FeedError(f"{path}: arrays have different sample counts "
                        f"({', '.join(f'{k}: {n}' for k, n in lengths.items())})",
                        hint="the leading axis of every array is the sample index; all must be equal")
    n = next(iter(lengths.values()))
    if n == 0:
        raise FeedError(f"{path}: the arrays hold 0 samples", hint=_FIX)
    return FeedSet(path, "npz", [path], n, keys, graph, modes)
