"""Calibration: feed readers and streaming range observers (imported as `dsedge.calibration`).

    from dsedge.calibration import open_feeds, calibrate
    feeds = open_feeds("calib/", graph)          # a dir of .npz feeds, or one .npz with a sample axis
    feeds = open_feeds("photos/", graph, preprocess="resize=256,mean=0.485,0.456,0.406")  # images / WAVs
    feeds.spec.to_json()                         # the preprocessing the artifact stores (preprocess.py)
    res = calibrate(graph, feeds, method="auto")
    res.ranges["conv1_out"]                      # (lo, hi), lo <= 0 <= hi

Methods (observers.py): minmax, percentile (99.99 %), entropy (TensorRT KL), mse, auto.

Default: "auto" -- per tensor, the range among minmax/percentile/entropy/mse with the lowest
measured quantisation error on that tensor's histogram. It costs no extra pass (all four
come from the same histogram) and, on the histogram, it is never worse than any single rule;
in practice it nearly always picks "mse", whose search covers the others. Measured int8
SQNR (dB) of the real samples, per-tensor asymmetric int8, 10^6 float32 samples fed in 10
batches (seed 0; `quantize_dequantize(x, *make_observer(m).range())`):

    distribution          minmax  percentile  entropy    mse   auto
    Gaussian               39.45     40.33     39.45   40.59  40.59
    ReLU(Gaussian)         44.96     43.73     45.59   45.98  45.98
    Laplace                33.73     34.00     34.79   35.25  35.25
    Student-t (3 dof)      16.58     15.41     16.43   20.09  20.09
    GELU(2*Gaussian)       41.35     41.59     41.58   42.91  42.91

minmax is close on light tails but loses 3.5 dB on heavy tails (one outlier sets the scale);
percentile clips too much on ReLU outputs and too little on very heavy tails; entropy
(a KL criterion, not an error criterion) sits in between. Tensor SQNR is not task accuracy:
the caller should still check the model's outputs (CalibResult.outputs keeps the float
outputs of the first feeds for that). Cost: "auto"/"mse" search ~20-80 ms per tensor once,
at the end; updates are one np.bincount pass per tensor per feed.
"""
from .feeds import FeedSet  # noqa: F401
from .sources import is_media, open_feeds  # noqa: F401
from .preprocess import AudioSpec, ImageSpec, resolve as resolve_preprocessing, spec_from_json  # noqa: F401
from .observers import (DEFAULT_METHOD, OBSERVERS, AutoObserver, EntropyObserver,  # noqa: F401
                        HistogramObserver, MinMaxObserver, MSEObserver, Observer, PercentileObserver,
                        int8_qparams, make_observer, quantize_dequantize)
from .collect import CalibResult, calibrate  # noqa: F401
