"""Streaming, mergeable range observers for int8 activation calibration.

Every observer has `update(x)`, `merge(other)` and `range() -> (lo, hi)` (Python floats,
lo <= 0 <= hi) and keeps a fixed amount of state, whatever the number of feeds.

The histogram (shared by percentile, entropy, mse and auto)
-----------------------------------------------------------
A signed histogram of 2*N bins (N = 2048 per sign side) anchored at 0: bin k in [-N, N)
holds the values x with floor(x / w) == k, i.e. x in [k*w, (k+1)*w). The bin width
w = 2**e is a power of two: e is the smallest exponent (>= E_MIN) for which every value
seen so far falls inside [-N*w, N*w). When a new batch needs a larger range, e grows and
the counts are re-binned by summing groups of 2**d adjacent bins (d = growth of e). Since
x / 2**e is exact in floating point and floor(x / 2w) == floor(floor(x / w) / 2), the
re-binned counts equal a direct binning at the new width. The final e depends only on the
global min and max, so the final histogram -- integer counts -- depends only on the data,
never on the order of the feeds nor on how they were split between merged observers: the
ranges are identical bit for bit after shuffling. Exact min and max are tracked beside it.

Sampling (calibrate() passes sample_max=SAMPLE_MAX; a bare observer bins every value): from a
tensor larger than sample_max, only a fixed strided subset of the values is binned, each
counted `step` times, plus every value in the tails (beyond TAIL_FRACTION of this feed's min
or max), counted once -- the tails decide where a range clips, the bulk only its shape. The
counts stay integers and a function of each feed alone, so merging and shuffling stay exact.

Range rules (asymmetric int8, scale = (hi-lo)/255, zero point = round(-128 - lo/scale)):
  * minmax     -- (min, max) of all values.
  * percentile -- hi = the p-quantile, lo = the (1-p)-quantile of the signed values
                  (default p = 99.99 %), linear inside a bin, clamped to [min, max].
  * entropy    -- TensorRT's KL-divergence threshold search on the |x| histogram: for each
                  candidate threshold i bins (clipped mass added to the last bin), merge the
                  i bins into L levels, expand back over the non-empty bins and keep the i
                  with the least KL(P || Q). L = 255 * (major side)/(|min| + max), at least
                  128: 128 for symmetric data, 255 for one-signed data (e.g. after ReLU).
                  As in NVIDIA's pytorch-quantization, bin 0 takes bin 1's count so the
                  spike of exact zeros does not decide. Evaluated for all candidates at
                  once with prefix sums. Range =
                  (max(min, -T), min(max, T)).
  * mse        -- the range minimising the expected squared quantisation error over the
                  histogram (values assumed uniform inside a bin, clipped to [min, max]),
                  integrated exactly code by code: each of the 256 codes' cells (the end
                  cells take the clipped values) from cumulative moments of the histogram,
                  O(256) per candidate range whatever the number of bins;
                  exact zeros are counted apart (no error: 0 is always representable).
                  Search: both ends scaled together, then hi alone, then lo alone: a
                  geometric grid on the histogram with 4x wider bins, refined by a linear
                  grid around its best point on the full histogram (on wider bins, spiky
                  data such as 8-bit pixel values lost up to 2 dB downstream). The last
                  stage keeps the widest range within WIDER_TOLERANCE (5 %) of the least
                  error: the MSE is flat there and clipping hurts more downstream.
  * auto       -- per tensor, whichever of the minmax, percentile and mse ranges has the
                  lowest histogram MSE (the chosen method is kept in `.chosen`); entropy,
                  which optimises KL rather than this MSE, is left out.
NaN or infinity in an observed tensor raises ModelError naming the tensor.
"""
from __future__ import annotations

import math

import numpy as np

from dsedge.errors import ModelError

NBITS = 11                  # N = 2**NBITS bins per sign side
E_MIN = -160                # smallest bin width 2**E_MIN (below float32's smallest subnormal)
_CHUNK = 1 << 20            # elements binned per numpy pass (bounds temporary memory)
SAMPLE_MAX = 1 << 16        # calibrate(): values per tensor per feed that enter a histogram (min/max see all)
TAIL_FRACTION = 0.5        # ... all values beyond this fraction of the feed's min / max are binned
WIDER_TOLERANCE = 0.05       # the mse search keeps the widest range within this of the least error
FINE_COARSEN = 0          # ... and is refined on bins 2**FINE_COARSEN times wider (spiky data, e.g. 8-bit pixels, needs 0)
SEARCH_COARSEN = 2          # the mse search runs on bins 2**SEARCH_COARSEN times wider
QMIN, QMAX = -128, 127


def int8_qparams(lo: float, hi: float) -> tuple[float, int]:
    """Asymmetric int8 (scale, zero_point) for a range containing 0 (float64 scale).

    A degenerate range (hi == lo) gets a tiny positive scale, never 0 or NaN."""
    lo, hi = min(float(lo), 0.0), max(float(hi), 0.0)
    scale = (hi - lo) / 255.0
    if not scale > 0.0:
        return 2.0 ** -40, 0
    zp = int(np.clip(np.rint(QMIN - lo / scale), QMIN, QMAX))
    return scale, zp


def quantize_dequantize(x: np.ndarray, lo: float, hi: float) -> np.ndarray:
    """x through int8 with the range (lo, hi): the float values int8 represents (float64)."""
    s, zp = int8_qparams(lo, hi)
    q = np.clip(np.rint(np.asarray(x, np.float64) / s) + zp, QMIN, QMAX)
    return (q - zp) * s


def _sample(x: np.ndarray, sample_max: int | None, mn: float, mx: float):
    """What of x enters the histogram: (bulk, step, tails). All of x (step 1) when sample_max
    is None or x is small. Else the tails -- every value at or beyond TAIL_FRACTION of this
    feed's extreme on its side, which decide where a range clips -- counted once each, and
    a fixed strided subset of the other values counted `step` times each (the stride is
    chosen coprime with the last two axes, so it walks across rows and channels instead of
    down one column). A function of x alone, so the histogram stays independent of feed order."""
    flat = x.reshape(-1)
    if sample_max is None or flat.size <= sample_max:
        return flat, 1, None
    step = -(-flat.size // sample_max)
    dims = [int(d) for d in x.shape[-2:]]
    while any(math.gcd(step, d) != 1 for d in dims + [int(np.prod(dims))]):
        step += 1
    hi, lo = mx * TAIL_FRACTION, mn * TAIL_FRACTION
    bulk = flat[step // 2::step]
    if not (hi > 0 or lo < 0):              # all zeros
        return bulk, step, flat[:0]

    def in_tail(v):                         # one pass per side that has a tail
        m = v >= hi if hi > 0 else v <= lo
        if hi > 0 and lo < 0:
            m |= v <= lo
        return m
    return bulk[~in_tail(bulk)], step, flat[in_tail(flat)]


class Observer:
    """Base class: tracks exact min/max and the number of values seen."""

    method = ""

    def __init__(self, name: str = "tensor", sample_max: int | None = None):
        self.name = name
        self.sample_max = sample_max       # unused here: min and max always see every value
        self.min = math.inf
        self.max = -math.inf
        self.count = 0

    def _minmax(self, x: np.ndarray) -> tuple[float, float] | None:
        x = np.asarray(x)
        if x.size == 0:
            return None
        mn, mx = float(x.min()), float(x.max())
        if not (math.isfinite(mn) and math.isfinite(mx)):
            raise ModelError(f"tensor {self.name!r} contains NaN or infinity",
                             hint="check the feed's preprocessing and the model's weights")
        return mn, mx

    def update(self, x: np.ndarray) -> None:
        r = self._minmax(x)
        if r is not None:
            self._see(np.asarray(x), *r)

    def _see(self, x, mn, mx):
        self.min, self.max = min(self.min, mn), max(self.max, mx)
        self.count += x.size

    def merge(self, other: "Observer") -> None:
        if type(other) is not type(self):
            raise TypeError(f"cannot merge a {type(other).__name__} into a {type(self).__name__}")
        self.min, self.max = min(self.min, other.min), max(self.max, other.max)
        self.count += other.count

    def _bounds(self) -> tuple[float, float]:
        if self.count == 0:
            return 0.0, 0.0
        return min(self.min, 0.0), max(self.max, 0.0)

    def range(self) -> tuple[float, float]:
        return self._bounds()


class MinMaxObserver(Observer):
    method = "minmax"


class HistogramObserver(Observer):
    """Signed power-of-two-width histogram anchored at 0 (see the module docstring)."""

    def __init__(self, name: str = "tensor", nbits: int = NBITS, sample_max: int | None = None):
        super().__init__(name, sample_max)      # sample_max None: every value is binned (see _sample)
        self.nbits = nbits
        self.n = 1 << nbits
        self.e: int | None = None          # bin width 2**e; None until data is seen
        self.zeros = 0                     # exact zeros (in bin 0; quantised without error)
        self.hist = np.zeros(2 * self.n, dtype=np.int64)   # index k + n for bin k

    # -- building -------------------------------------------------------------------------
    def _exponent(self, mn: float, mx: float) -> int:
        """Smallest e >= E_MIN with every value of [mn, mx] inside [-n*2**e, n*2**e)."""
        amax = max(mx, -mn)
        if amax == 0.0:
            return E_MIN
        e = max(math.frexp(amax)[1] - self.nbits - 1, E_MIN)
        while math.floor(math.ldexp(mx, -e)) > self.n - 1 or math.floor(math.ldexp(mn, -e)) < -self.n:
            e += 1
        return e

    def _grow(self, e: int) -> None:
        if self.e is None:
            self.e = e
            return
        d = min(e - self.e, self.nbits)       # after nbits halvings only bins -1 and 0 remain
        if d > 0:
            g = self.hist.reshape(-1, 1 << d).sum(axis=1)   # new bins -n>>d .. (n>>d)-1
            self.hist = np.zeros_like(self.hist)
            half = self.n >> d
            self.hist[self.n - half:self.n + half] = g
        self.e = max(e, self.e)

    def _see(self, x, mn, mx):
        super()._see(x, mn, mx)
        self._grow(self._exponent(mn, mx))
        flat, step, tail = _sample(x, self.sample_max, mn, mx)
        if step > 1:      # the bulk counts once per `step` values, the tails once per value
            self._bin(flat, step)
            self._bin(tail, 1)
        else:
            self._bin(flat, 1)

    def _bin(self, flat: np.ndarray, weight: int) -> None:
        f32 = flat.dtype == np.float32 and -126 <= self.e <= 126     # 2**-e a normal float32
        inv = np.float32(math.ldexp(1.0, -self.e)) if f32 else math.ldexp(1.0, -self.e)
        for s in range(0, flat.size, _CHUNK):
            part = flat[s:s + _CHUNK]
            # exact: power-of-two scaling (|x| * 2**-e < n, no overflow); only an underflow to -0.0
            # can misplace a value, fixed below
            v = part * inv if f32 else part.astype(np.float64) * inv
            self.zeros += weight * (part.size - int(np.count_nonzero(part)))
            k = np.floor(v, out=v).astype(np.intp)
            if self.e > 0:                         # a product may underflow to -0.0
                k[(k == 0) & (part < 0)] = -1
            k += self.n
            h = np.bincount(k, minlength=2 * self.n)
            self.hist += h if weight == 1 else h * weight

    def merge(self, other: "HistogramObserver") -> None:
        super().merge(other)
        self.zeros += other.zeros
        if other.e is None:
            return
        o_hist = other.hist
        if self.e is not None and other.e < self.e:
            tmp = HistogramObserver(nbits=self.nbits, sample_max=self.sample_max)
            tmp.e, tmp.hist = other.e, other.hist.copy()
            tmp._grow(self.e)
            o_hist = tmp.hist
        else:
            self._grow(other.e)
        self.hist = self.hist + o_hist

    # -- range rules over the histogram -----------------------------------------------------
    @property
    def width(self) -> float:
        return math.ldexp(1.0, self.e)

    def _percentile_range(self, p: float) -> tuple[float, float]:
        c = np.cumsum(self.hist)
        total = int(c[-1])
        w = self.width

        def quantile(q):
            r = q * total
            j = int(np.searchsorted(c, r, side="left"))     # first bin whose cumsum >= r
            j = min(j, 2 * self.n - 1)
            before = int(c[j - 1]) if j > 0 else 0
            inside = int(self.hist[j])
            frac = (r - before) / inside if inside else 0.0
            return ((j - self.n) + min(max(frac, 0.0), 1.0)) * w

        hi = min(max(quantile(p), self.min), self.max)
        lo = min(max(quantile(1.0 - p), self.min), self.max)
        return min(lo, 0.0), max(hi, 0.0)

    def _entropy_range(self) -> tuple[float, float]:
        lo0, hi0 = self._bounds()
        h = (self.hist[self.n:] + self.hist[:self.n][::-1]).astype(np.float64)  # |x| bins
        nb = int(np.flatnonzero(h)[-1]) + 1 if h.any() else 0
        major, minor = max(hi0, -lo0), min(hi0, -lo0)
        if nb == 0 or major == 0.0:
            return lo0, hi0
        levels = int(max(128, min(255, round(255 * major / (major + minor)))))
        if nb <= levels:
            return lo0, hi0
        h = h[:nb]
        h[0] = h[1]          # the spike at 0 (ReLU zeros) would dominate KL: ignore it
        total = h.sum()
        C = np.concatenate([[0.0], np.cumsum(h)])                 # C[k] = sum h[:k]
        NZ = np.concatenate([[0], np.cumsum(h > 0)])
        with np.errstate(divide="ignore", invalid="ignore"):
            hlogh = np.where(h > 0, h * np.log(np.where(h > 0, h, 1.0)), 0.0)
        PL = np.concatenate([[0.0], np.cumsum(hlogh)])

        i = np.arange(levels, nb + 1)                                  # candidate bin counts
        m = i // levels
        starts = np.arange(levels)[None, :] * m[:, None]               # (cand, levels)
        ends = np.concatenate([starts[:, 1:], i[:, None]], axis=1)
        T = C[ends] - C[starts]                                        # group sums, clipped hist
        nz = (NZ[ends] - NZ[starts]).astype(np.float64)
        out = total - C[i]                                             # clipped (outlier) mass
        last_h = h[i - 1]
        nz[:, -1] += (last_h == 0) & (out > 0)                         # last bin becomes non-empty
        P = T.copy()
        P[:, -1] += out
        p_last = last_h + out
        with np.errstate(divide="ignore", invalid="ignore"):
            plogp = PL[i - 1] + np.where(p_last > 0, p_last * np.log(np.where(p_last > 0, p_last, 1.0)), 0.0)
            logq = np.where(P > 0, np.log(np.where(T > 0, T, 1.0) / np.maximum(nz, 1.0)), 0.0)
            plogq = (P * logq).sum(axis=1)
            kl = (plogp - plogq) / total - math.log(total) + np.log(C[i])
            kl = np.where(((P > 0) & (T == 0)).any(axis=1), np.inf, kl)  # P mass where Q is empty
        best = int(i[int(np.argmin(kl))])
        t = best * self.width
        return max(lo0, -t), min(hi0, t)

    # expected squared error, over the histogram, of int8 with each candidate range
    def _moments(self):
        """The histogram as a piecewise-uniform density, for `_mse`: the non-empty bins' left
        ends a, right ends b (clipped to [min, max]), densities, and the prefix sums of their
        mass, first and second moments (float64). Exact zeros are left out (0 is exact in int8)."""
        key = (self.count, self.e, self.zeros, self.min, self.max, int(self.hist.sum()))
        if getattr(self, "_mom_key", None) == key:
            return self._mom
        h = self.hist.copy()
        h[self.n] -= self.zeros
        k = np.flatnonzero(h)
        c = h[k].astype(np.float64)
        w = self.width
        a = np.maximum((k - self.n) * w, self.min)
        b = np.minimum((k - self.n + 1) * w, self.max)
        m1 = c * (a + b) / 2.0
        m2 = c * (a * a + a * b + b * b) / 3.0
        pre = [np.concatenate([[0.0], np.cumsum(m)]) for m in (c, m1, m2)]
        width = b - a
        point = width <= 0                   # a bin holding one value (its end clipped to min or max)
        dens = np.where(point, 0.0, c / np.where(point, 1.0, width))
        self._mom_key, self._mom = key, (a, b, dens, point, pre)
        return self._mom

    def _mse(self, ranges: np.ndarray) -> np.ndarray:
        """Per candidate range (rows of `ranges`), the expected squared int8 error over the
        histogram, values uniform inside each bin. Every value goes to its nearest code, and a
        clipped value to the end code, so the error is the sum over the 256 codes q of
        integral (x - c_q)^2 p(x) dx over the values that round to q -- between the midpoints
        of neighbouring codes, the end codes' cells reaching to -inf / +inf. With cumulative
        moments M_j(x) = integral_{-inf}^{x} t^j p(t) dt (j = 0, 1, 2; closed form inside a bin)
        a cell costs M2 - 2 c M1 + c^2 M0 between its edges: O(256) per candidate, whatever
        the number of bins."""
        ranges = np.atleast_2d(np.asarray(ranges, np.float64))
        total = float(self.hist.sum())
        a, b, dens, point, pre = self._moments()
        if a.size == 0 or total == 0:
            return np.zeros(len(ranges))
        lo, hi = np.minimum(ranges[:, :1], 0.0), np.maximum(ranges[:, 1:], 0.0)
        s = (hi - lo) / 255.0
        s = np.where(s > 0, s, 2.0 ** -40)
        zp = np.clip(np.rint(QMIN - lo / s), QMIN, QMAX)
        codes = np.arange(QMIN, QMAX + 1, dtype=np.float64)
        centre = (codes[None, :] - zp) * s                                   # (R, 256)
        edges = centre[:, :-1] + s / 2.0                                     # (R, 255)
        i = np.searchsorted(a, edges, side="right") - 1                      # last bin starting at or before x
        ic = np.maximum(i, 0)
        seen = i >= 0
        x = np.clip(edges, a[ic], b[ic])                                     # the part of bin ic below the edge
        aa, d = a[ic], np.where(seen, dens[ic], 0.0)
        whole = seen & point[ic]                                             # a one-value bin at or below the edge
        zero = np.zeros((len(ranges), 1))
        cells = []                                   # per code, the j-th moment of its cell
        for j, P in enumerate(pre):
            part = d * (x ** (j + 1) - aa ** (j + 1)) / (j + 1)              # of bin ic, up to the edge
            Mj = np.where(seen, P[ic], 0.0) + np.where(whole, P[ic + 1] - P[ic], part)
            cells.append(np.diff(np.concatenate([zero, Mj, zero + P[-1]], axis=1), axis=1))   # -inf .. +inf
        d0, d1, d2 = cells
        err = d2 - 2.0 * centre * d1 + centre * centre * d0
        return np.maximum(err, 0.0).sum(axis=1) / total

    def _coarsened(self, d: int) -> "HistogramObserver":
        """This histogram with bins 2**d times wider (exact re-binning, see _grow)."""
        c = HistogramObserver(self.name, self.nbits, self.sample_max)
        c.min, c.max, c.count, c.zeros, c.e, c.hist = self.min, self.max, self.count, self.zeros, self.e, self.hist
        c._grow(self.e + d)
        return c

    def _mse_range(self) -> tuple[float, float]:
        lo0, hi0 = self._bounds()
        if max(hi0, -lo0) == 0.0:
            return lo0, hi0
        best = np.array([lo0, hi0])
        # both ends scaled together, then hi alone, then lo alone; searched on bins 4x wider, then
        # refined on the full histogram
        coarse, fine = self._coarsened(SEARCH_COARSEN), self._coarsened(FINE_COARSEN)
        stages = [np.array([1.0, 1.0])]
        if lo0 < 0.0 < hi0:                   # one-signed data: the joint search is the whole search
            stages += [np.array([0.0, 1.0]), np.array([1.0, 0.0])]
        for k, scale in enumerate(stages):
            best = fine._search(best, scale, lo0, hi0, coarse, WIDER_TOLERANCE if k + 1 == len(stages) else 0.0)
        return float(best[0]), float(best[1])

    def _search(self, best, scale, lo0, hi0, coarse=None, tol: float = 0.0):
        """1-D search of the fraction f in (0, 1] of (lo0, hi0) applied where scale is 1:
        a geometric grid from one bin to the full range (evaluated on `coarse`, this histogram
        with wider bins, when given), then a linear grid between the best grid point's
        neighbours on this histogram. The current best is a candidate, so the MSE never rises."""
        coarse = coarse or self
        amax = max(hi0 if scale[1] else 0.0, -lo0 if scale[0] else 0.0)
        f0 = min(self.width / amax, 1.0)

        def cands(f):
            c = np.repeat(best[None, :], len(f), axis=0)
            for j, b in ((0, lo0), (1, hi0)):
                if scale[j]:
                    c[:, j] = b * f
            return np.concatenate([best[None, :], c])

        f = np.geomspace(f0, 1.0, 32)
        err = coarse._mse(cands(f))[1:]
        j = len(f) - 1 - int(np.argmin(err[::-1]))          # ties: the wider range
        fine = np.linspace(f[max(j - 1, 0)], f[min(j + 1, len(f) - 1)], 15)
        c = cands(fine)
        e = self._mse(c)                                     # c[0] is the incoming best
        # Within `tol` of the least error, the widest range (the last stage gets WIDER_TOLERANCE):
        # near its optimum the histogram MSE is flat, and clipping costs more downstream than
        # rounding does (ddddocr's detector: 12 vs 18 dB output SQNR)
        ok = np.flatnonzero(e <= e.min() * (1.0 + tol))
        return c[ok[int(np.argmax((c[ok, 1] - c[ok, 0])))]]

    def candidates(self, percentile: float = 99.99,
                   methods=("minmax", "percentile", "entropy", "mse")) -> dict[str, tuple[float, float]]:
        """The range each of `methods` would pick from this histogram."""
        if self.count == 0:
            return {m: (0.0, 0.0) for m in methods}
        rule = {"minmax": self._bounds, "percentile": lambda: self._percentile_range(percentile / 100.0),
                "entropy": self._entropy_range, "mse": self._mse_range}
        return {m: rule[m]() for m in methods}

    def mse_of(self, lo: float, hi: float) -> float:
        """Expected int8 quantisation MSE of the observed values with the range (lo, hi)."""
        return float(self._mse(np.array([[lo, hi]]))[0])


class PercentileObserver(HistogramObserver):
    method = "percentile"

    def __init__(self, name: str = "tensor", nbits: int = NBITS, percentile: float = 99.99,
                 sample_max: int | None = None):
        super().__init__(name, nbits, sample_max)
        if not 50.0 < percentile <= 100.0:
            raise ValueError(f"percentile must be in (50, 100], got {percentile}")
        self.percentile = percentile

    def range(self):
        return self._percentile_range(self.percentile / 100.0) if self.count else (0.0, 0.0)


class EntropyObserver(HistogramObserver):
    method = "entropy"

    def range(self):
        return self._entropy_range() if self.count else (0.0, 0.0)


class MSEObserver(HistogramObserver):
    method = "mse"

    def range(self):
        return self._mse_range() if self.count else (0.0, 0.0)


class AutoObserver(HistogramObserver):
    """Per tensor, the candidate range with the lowest measured (histogram) MSE."""

    method = "auto"
    # Ties go to the earlier one. Entropy is not a candidate: it optimises KL, not this MSE, so
    # the mse search dominates it (it won 1 of 145 tensors on MobileNetV2 + ResNet-50) while
    # costing the most of the four.
    ORDER = ("minmax", "percentile", "mse")

    def __init__(self, name: str = "tensor", nbits: int = NBITS, percentile: float = 99.99,
                 sample_max: int | None = None):
        super().__init__(name, nbits, sample_max)
        self.percentile = percentile
        self.chosen = ""

    def range(self):
        if not self.count:
            return 0.0, 0.0
        cands = self.candidates(self.percentile, self.ORDER)
        errs = self._mse(np.array([cands[m] for m in self.ORDER]))
        j = int(np.argmin(errs))
        self.chosen = self.ORDER[j]
        return cands[self.ORDER[j]]


OBSERVERS: dict[str, type[Observer]] = {
    "minmax": MinMaxObserver,
    "percentile": PercentileObserver,
    "entropy": EntropyObserver,
    "mse": MSEObserver,
    "auto": AutoObserver,
}
DEFAULT_METHOD = "auto"


def make_observer(method: str = DEFAULT_METHOD, name: str = "tensor", **kw) -> Observer:
    """A fresh observer for `method` (one of OBSERVERS)."""
    cls = OBSERVERS.get(method)
    if cls is None:
        raise ValueError(f"unknown calibration method {method!r}; choose one of {', '.join(OBSERVERS)}")
    return cls(name, **kw)
