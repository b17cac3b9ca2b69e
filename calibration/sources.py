"""Where calibration feeds come from: `open_feeds` looks at a path and opens it as .npz feeds
(feeds.py) or as images / WAV files (media.py, which builds on feeds.py's FeedSet).

A path is read as images or WAV files when it is one such file, or a directory that holds no
.npz file but images or WAV files (not both); otherwise as .npz feeds.
"""
from __future__ import annotations

from pathlib import Path

from dsedge.errors import FeedError
from dsedge.ir import Graph

from .feeds import _FIX, FeedSet, open_npz_feeds
from .media import media_files, open_media
from .preprocess import media_kind


def _no_npz_in(p: Path) -> bool:
    return not any(f.suffix == ".npz" and f.is_file() for f in p.iterdir())


def is_media(path) -> bool:
    """Whether open_feeds reads `path` as images or WAV files (not .npz)."""
    p = Path(path)
    if p.is_file():
        return media_kind(p) is not None
    if p.is_dir() and _no_npz_in(p):
        try:
            return bool(media_files(p)[1])
        except FeedError:
            return True
    return False


def open_feeds(path, graph: Graph | None = None, *, extra: str = "error", preprocess=None) -> FeedSet:
    """Open a calibration set: a directory of .npz feeds, one .npz with a sample axis, or a
    directory of images or WAV files (or one such file; calibration/media.py).

    With `graph`, keys, ranks, static dimensions and dtypes are checked against its inputs
    now, and each feed goes through `dsedge.interp.check_feeds` when read. `extra` decides
    what an array that is not a model input does: "error" (default), "warn" or "ignore".
    `preprocess` (options string, dict or a spec of calibration/preprocess.py) applies to
    image and WAV feeds only; the returned set's `.spec` is the resolved preprocessing.
    """
    if extra not in ("error", "warn", "ignore"):
        raise ValueError(f"extra must be 'error', 'warn' or 'ignore', not {extra!r}")
    p = Path(path)
    if not p.exists():
        raise FeedError(f"{path}: no such file or directory",
                        hint="--calib takes a directory of .npz files (one feed each), one .npz "
                             "whose arrays have a leading sample axis, or a directory of images or WAV files")
    if p.is_file() and media_kind(p):
        return open_media(path, graph, media_kind(p), [str(p)], preprocess)
    if p.is_dir() and _no_npz_in(p):
        kind, media = media_files(p)
        if media:
            return open_media(path, graph, kind, media, preprocess)
        others = sorted(f.name for f in p.iterdir())[:5]
        raise FeedError(f"{path}: no .npz, image or WAV files in this directory"
                        + (f" (found {', '.join(others)}{', ...' if len(others) == 5 else ''})" if others else
                           " (it is empty)"), hint=_FIX)
    return open_npz_feeds(path, graph, extra=extra, preprocess=preprocess)
