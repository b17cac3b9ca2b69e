"""Calibration: run the reference interpreter over the feeds and observe every float tensor.

`calibrate(graph, feeds)` runs the float graph once per feed (in onnxruntime when it takes
the graph, else the numpy reference interpreter: calibration/engine.py) with a hook that streams
each float activation (graph inputs included; constants and integer/bool tensors skipped)
into one observer per tensor, then drops it: memory is the interpreter's live set for one
feed plus a fixed-size observer per tensor, whatever the number of feeds. The float
outputs of the first `keep_outputs` feeds (and those feeds) are kept so that the caller
can measure the quantised model's SQNR without a second float pass.
"""
from __future__ import annotations

import hashlib
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Mapping

import numpy as np

from dsedge.errors import DseError, FeedError, ModelError
from dsedge.ir import Graph

from .feeds import FeedSet
from .sources import open_feeds
from .observers import SAMPLE_MAX, AutoObserver, Observer, make_observer


@dataclass
class CalibResult:
    """Ranges per tensor name, plus what the CLI reuses for its accuracy check."""

    method: str
    ranges: dict[str, tuple[float, float]]
    n_feeds: int
    feeds: list[dict[str, np.ndarray]] = field(default_factory=list)      # first keep_outputs feeds
    outputs: list[dict[str, np.ndarray]] = field(default_factory=list)    # their float outputs
    observers: dict[str, Observer] = field(default_factory=dict)
    # Seen across ALL feeds (for export specialisation, dsedge/export/specialize.py):
    # input -> sorted list of distinct shapes; input -> its value when it is a small integer or
    # bool tensor (<= 16 elements) identical in every feed, else absent.
    input_shapes: dict[str, list[tuple[int, ...]]] = field(default_factory=dict)
    constant_inputs: dict[str, np.ndarray] = field(default_factory=dict)
    # float inputs that never varied: input -> "zeros" (every value 0 in every feed),
    # "constant" (one value throughout each feed, more than one element) or "identical" (the
    # same array in every feed, at least two feeds). See quant.quantize.check_degenerate_feeds.
    degenerate_inputs: dict[str, str] = field(default_factory=dict)
    engine: object = None     # the float engine that ran the feeds (calibration/engine.py)

    @property
    def chosen(self) -> dict[str, str]:
        """method="auto": which method each tensor whose range was computed used."""
        done = getattr(self.ranges, "_done", self.ranges)
        return {k: self.observers[k].chosen for k in done if isinstance(self.observers.get(k), AutoObserver)}

    def summary(self) -> dict:
        """A small JSON-able summary (for the artifact's metadata and `--json`)."""
        out = {"method": self.method, "feeds": self.n_feeds, "tensors": len(self.ranges)}
        if self.input_shapes:   # at most 8 shapes per input (the metadata stays small)
            out["input_shapes"] = {k: [list(s) for s in v[:8]] + (["..."] if len(v) > 8 else [])
                                   for k, v in sorted(self.input_shapes.items())}
        if self.chosen:
            counts: dict[str, int] = {}
            for m in self.chosen.values():
                counts[m] = counts.get(m, 0) + 1
            out["chosen"] = dict(sorted(counts.items()))
        return out


def _feed_items(feeds, graph: Graph):
    """(label, feed dict) pairs and the number of feeds (None if unknown)."""
    if isinstance(feeds, (str, Path)):
        feeds = open_feeds(feeds, graph)
    if isinstance(feeds, FeedSet):
        return feeds.items(), len(feeds)
    if isinstance(feeds, Mapping):                 # one feed dict
        feeds = [feeds]
    n = len(feeds) if hasattr(feeds, "__len__") else None
    from dsedge.interp import check_feeds
    return ((f"feed {i}", check_feeds(graph, f, where=f"feed {i}")) for i, f in enumerate(feeds)), n


def calibrate(graph: Graph, feeds: FeedSet | str | Path | Iterable[Mapping[str, np.ndarray]],
              method: str = "auto", tensors: Iterable[str] | None = None, progress: bool = True,
              keep_outputs: int = 8, engine=None, **observer_kw) -> CalibResult:
    """Observe the float tensors of `graph` over `feeds` and pick an int8 range for each.

    feeds: a FeedSet, a path for `open_feeds`, or an iterable of feed dicts.
    method: "minmax", "percentile", "entropy", "mse" or "auto" (see observers.py).
    tensors: restrict observation to these tensor names (default: every float tensor).
    observer_kw: passed to each observer (e.g. percentile=99.9, nbits=11).
    engine: the float engine to run the graph with (default: `engine.float_engine(graph)`).
    """
    make_observer(method)                             # unknown method: fail before running
    if engine is None:
        from .engine import float_engine
        engine = float_engine(graph, "fiub")   # integer tensors too: the measuring pass reads them

    want = None if tensors is None else set(tensors)
    consts = graph.consts
    observers: dict[str, Observer] = {}
    label = ["feed"]

    def hook(name: str, arr: np.ndarray, node) -> None:
        if name in consts or (want is not None and name not in want):
            return
        arr = np.asarray(arr)
        if arr.dtype.kind != "f" or arr.size == 0:
            return
        obs = observers.get(name)
        if obs is None:
            obs = observers[name] = make_observer(method, name, **{"sample_max": SAMPLE_MAX, **observer_kw})
        try:
            obs.update(arr)
        except ModelError:
            what = "graph input" if node is None else f"node {node.name or node.outputs[0]!r} ({node.op})"
            raise ModelError(f"{label[0]}: {what} produced NaN or infinity in tensor {name!r}",
                             hint="check the feed's values and preprocessing, and the model's weights "
                                  "(an overflow in float32 shows up here)") from None

    items, n = _feed_items(feeds, graph)
    # a feed set whose next feed depends on this one's outputs (recurrent state of audio windows)
    give_back = getattr(feeds, "observe_outputs", None)
    bar = None
    if progress and (n is None or n > 1):
        try:
            from tqdm import tqdm
            bar = tqdm(total=n, desc="calibrating", unit="feed", file=sys.stderr, leave=False)
        except ImportError:  # pragma: no cover - tqdm is optional
            bar = None
    kept: list[tuple[bytes, dict, dict]] = []   # max-heap by digest via sorted insert (k is small)
    count = 0
    shapes: dict[str, set] = {}
    const_vals: dict[str, np.ndarray | None] = {}
    flat: dict[str, list] = {}    # float input -> [all zeros so far, one value per feed so far, first digest or None]

    def note_inputs(feed) -> None:
        # Cheap: a shape tuple per input, and a <= 16-element comparison for small integer inputs.
        for k, v in feed.items():
            v = np.asarray(v)
            shapes.setdefault(k, set()).add(tuple(int(d) for d in v.shape))
            small = v.dtype.kind in "iub" and v.size <= _CONST_INPUT_MAX
            if count == 0:
                const_vals[k] = v.copy() if small else None
            elif const_vals.get(k) is not None and (not small or v.shape != const_vals[k].shape
                                                    or v.dtype != const_vals[k].dtype
                                                    or not np.array_equal(v, const_vals[k])):
                const_vals[k] = None
            if v.dtype.kind == "f" and v.size:
                # float inputs that never vary (all zeros, one value, the same array): one
                # min/max and one digest per feed, nothing kept
                st = flat.setdefault(k, [True, True, None]) if count == 0 else flat.get(k)
                if st is None:
                    continue
                lo, hi = float(v.min()), float(v.max())
                st[0] = st[0] and lo == 0.0 and hi == 0.0
                st[1] = st[1] and lo == hi and v.size > 1
                dig = hashlib.sha1(str(v.shape).encode() + np.ascontiguousarray(v).data).digest()
                if count == 0:
                    st[2] = dig
                elif st[2] != dig:
                    st[2] = None
                if not (st[0] or st[1] or st[2]):
                    del flat[k]
    try:
        for where, feed in items:
            label[0] = where
            note_inputs(feed)
            try:
                outs = engine.run(feed, hook=hook)
            except DseError as e:              # name the feed in node errors
                if e.args and str(e.args[0]).startswith(where):
                    raise
                raise type(e)(f"{where}: {e.args[0]}", hint=e.hint) from None
            if give_back is not None:
                give_back(outs)
            if keep_outputs > 0:
                # keep the feeds with the smallest content digests, not the first ones, so the
                # result (and the quantised model) does not depend on the order of the feeds
                dig = _digest(feed)
                if len(kept) < keep_outputs or dig < kept[-1][0]:
                    kept.append((dig, {k: np.array(v) for k, v in feed.items()},
                                 {k: v for k, v in outs.items() if np.asarray(v).dtype.kind == "f"}))
                    kept.sort(key=lambda t: t[0])
                    del kept[keep_outputs:]
            count += 1
            del feed, outs
            if bar is not None:
                bar.update(1)
    finally:
        if bar is not None:
            bar.close()
    if count == 0:
        raise FeedError("calibration got no feeds", hint="pass at least one feed (--calib PATH)")

    res = CalibResult(method=method, ranges=LazyRanges(observers), n_feeds=count, feeds=[k[1] for k in kept],
                       outputs=[k[2] for k in kept], observers=observers,
                       input_shapes={k: sorted(v) for k, v in shapes.items()},
                       constant_inputs={k: v for k, v in const_vals.items() if v is not None},
                       degenerate_inputs={k: ("zeros" if st[0] else "constant" if st[1] else "identical")
                                          for k, st in flat.items() if st[0] or st[1] or count >= 2})
    res.engine = engine
    return res


_CONST_INPUT_MAX = 16


def _digest(feed: Mapping[str, np.ndarray]) -> bytes:
    h = hashlib.sha1()
    for k in sorted(feed):
        a = np.ascontiguousarray(feed[k])
        h.update(k.encode() + str(a.dtype).encode() + str(a.shape).encode())
        h.update(a.data)
    return h.digest()


class LazyRanges(Mapping):
    """{tensor: (lo, hi)}, each range computed on first access: the range search (mse, entropy,
    auto) costs far more than observing, and only tensors that end up quantised need one."""

    def __init__(self, observers: dict[str, Observer]):
        self._obs = observers
        self._done: dict[str, tuple[float, float]] = {}

    def __getitem__(self, name):
        if name not in self._done:
            self._done[name] = self._obs[name].range()
        return self._done[name]

    def __iter__(self):
        return iter(self._obs)

    def __len__(self):
        return len(self._obs)

    def __contains__(self, name):
        return name in self._obs

    def __setitem__(self, name, lo_hi):
        """Replace a tensor's range (the quantiser refines some after the plan)."""
        if name not in self._obs:
            raise KeyError(name)
        self._done[name] = (float(lo_hi[0]), float(lo_hi[1]))
