"""Calibration feeds from a folder of images or WAV files (or one such file).

The same interface as the .npz `FeedSet` (len, iteration, `items()` with labels naming the
file, `shapes()`), so calibration and comparison do not know where feeds come from. Files are
taken in file-name order; each image gives one feed, each WAV one feed per window (in time
order), so the order is deterministic. Reading is lazy and streaming: one image, or one block
of audio plus one window, is in memory at a time. Every header is checked when the set is
opened (an unreadable image or an unsupported WAV fails at once, naming the file), and the
number of feeds is known from the headers. The preprocessing is `self.spec`
(calibration/preprocess.py), which the exporters store in the artifact.
"""
from __future__ import annotations

from pathlib import Path
from typing import Iterator

import numpy as np

from dsedge.errors import FeedError

from .feeds import FeedSet
from .preprocess import AudioSpec, ImageSpec, check_image, media_kind, resolve, wav_info
from .resample import Resampler


class MediaFeedSet(FeedSet):
    def __init__(self, path: str, kind: str, files: list[str], spec, graph, counts: list[int]):
        self.path = path
        self.kind = kind                 # "images" | "audio"
        self.files = files
        self.spec = spec
        self.graph = graph
        self._counts = counts            # feeds per file
        self._n = sum(counts)
        self._keys = {spec.input: spec.input, **{o.name: o.name for o in spec.others}}
        self._sample_mode = {}
        self._outputs = None             # the float outputs of the last feed (calibrate hands them back)

    def observe_outputs(self, outputs) -> None:
        """The model's outputs for the feed just yielded: a carried recurrent state (AudioSpec.carry)
        of the next window of the same file is taken from them (calibration/collect.py calls this)."""
        self._outputs = outputs

    def _take_outputs(self):
        o, self._outputs = self._outputs, None
        return o

    def labels(self) -> list[str]:
        out = []
        for f, n in zip(self.files, self._counts):
            out += [f] if n == 1 and self.kind == "images" else [f"{f}[{k}]" for k in range(n)]
        return out

    def items(self) -> Iterator[tuple[str, dict[str, np.ndarray]]]:
        carry = isinstance(self.spec, AudioSpec) and bool(self.spec.carry)
        for f, n in zip(self.files, self._counts):
            self._outputs = None
            feeds = self.spec.feeds(f, state=self._take_outputs) if carry else self.spec.feeds(f)
            for k, feed in enumerate(feeds):
                where = f if self.kind == "images" else f"{f}[{k}]"
                yield where, self._validate(feed, where)

    def shapes(self) -> dict[str, tuple[tuple, np.dtype]]:
        out: dict[str, tuple[tuple, np.dtype]] = {}
        for o in self.spec.others:
            out[o.name] = (tuple(o.shape), np.dtype(o.dtype))
        s = self.spec
        if isinstance(s, AudioSpec):
            out[s.input] = (tuple(s.shape), np.dtype(s.dtype))
            return out
        shape = None
        for f in self.files:           # the headers give each image's size; dims that differ are None
            hw = _image_hw(s, check_image(f))
            shp = ((1,) if s.batch else ()) + ((s.channels,) + hw if s.layout == "nchw" else hw + (s.channels,))
            shape = shp if shape is None else tuple(a if a == b else None for a, b in zip(shape, shp))
        out[s.input] = (shape, np.dtype(s.dtype))
        return out


def _image_hw(s: ImageSpec, size: tuple[int, int]) -> tuple[int, int]:
    """(H, W) of the preprocessed image for an input image of `size` (W, H)."""
    if s.crop:
        return s.crop[1], s.crop[0]
    w0, h0 = size
    if s.shorter:
        k = s.shorter / min(w0, h0)
        return max(1, round(h0 * k)), max(1, round(w0 * k))
    if s.resize:
        rw, rh = s.resize
        return (rh or max(1, round(h0 * rw / w0))), (rw or max(1, round(w0 * rh / h0)))
    return h0, w0


def media_files(p: Path) -> tuple[str | None, list[str]]:
    """('image' | 'audio' | None, files) of a folder; mixing both kinds is an error."""
    files = sorted(f for f in p.iterdir() if f.is_file() and media_kind(f))
    kinds = {media_kind(f) for f in files}
    if len(kinds) > 1:
        n_img = sum(media_kind(f) == "image" for f in files)
        raise FeedError(f"{p}: holds both images ({n_img}) and WAV files ({len(files) - n_img})",
                        hint="put calibration images and audio in separate folders")
    return (kinds.pop() if kinds else None), [str(f) for f in files]


def open_media(path, graph, kind: str, files: list[str], preprocess=None) -> MediaFeedSet:
    """A MediaFeedSet over `files` (image or audio), preprocessing resolved against `graph`."""
    if graph is None:
        raise FeedError(f"{path}: image and audio feeds need the model (its input shape decides the preprocessing)")
    spec = preprocess if isinstance(preprocess, (ImageSpec, AudioSpec)) else resolve(graph, kind, preprocess)
    if spec.kind != kind:
        raise FeedError(f"{path}: holds {kind} files but the preprocessing is for {spec.kind}")
    if kind == "image":
        for f in files:
            check_image(f)
        counts = [1] * len(files)
    else:
        counts = []
        for f in files:
            sr, _, _, n = wav_info(f)
            counts.append(spec.n_windows(Resampler(sr, spec.sample_rate).out_length(n)))
    return MediaFeedSet(str(path), "images" if kind == "image" else "audio", files, spec, graph, counts)
