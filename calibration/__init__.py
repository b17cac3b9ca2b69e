"""Calibration: feed readers and streaming range observers (imported as `dsedge.calibration`).

    from dsedge.calibration import open_feeds, calibrate
    feeds = open_feeds("calib/", graph)          # a dir of .npz feeds, or one .npz with a sample axis
    res = calibrate(graph, feeds, method="auto")
    res.ranges["conv1_out"]                      # (lo, hi), lo <= 0 <= hi

Methods (observers.py): minmax, percentile (99.99 %), entropy (TensorRT KL), mse, auto.

Default: "auto" -- per tensor, the range among minmax/percentile/entropy/mse with the lowest
measured quantisation error on that tensor's histogram. It costs no extra pass (all four
come from the same histogram) and it is never worse, on the histogram, than the best single
rule; in practice it nearly always picks "mse", whose search covers the others. Measured int8
SQNR (dB, per-tensor asymmetric int8, 10^6 samples, benchmarks/calib_sqnr.py):

    distribution          minmax  percentile  entropy    mse   auto
    Gaussian               39.45     40.33     39.45   40.59  40.59
    ReLU(Gaussian)         44.96     43.73     44.96   45.98  45.98
    Laplace                33.35     34.15     35.13   35.22  35.22
    Student-t (3 dof)      11.31     13.63     16.22   16.28  16.28

minmax loses little on light-tailed tensors but collapses on heavy tails (one outlier sets
the scale); percentile clips too much on ReLU outputs; entropy is good on heavy tails but
is tuned for KL, not error. Tensor SQNR is not task accuracy: the CLI should still check
the model's outputs (CalibResult.outputs keeps the float outputs of the first feeds for it).
"""
from .feeds import FeedSet, open_feeds  # noqa: F401
from .observers import (DEFAULT_METHOD, OBSERVERS, AutoObserver, EntropyObserver,  # noqa: F401
                        HistogramObserver, MinMaxObserver, MSEObserver, Observer, PercentileObserver,
                        int8_qparams, make_observer, quantize_dequantize)
from .collect import CalibResult, calibrate  # noqa: F401
