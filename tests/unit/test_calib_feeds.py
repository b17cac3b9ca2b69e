"""Calibration feed readers: both layouts, laziness, and every user error named with its fix."""
import numpy as np
import pytest
from onnx import TensorProto, helper

from dsedge.calibration import open_feeds
from dsedge.converters.onnx.reader import from_model_proto
from dsedge.errors import FeedError


def _graph(shape_x=(1, 3, 4, 4), with_idx=False):
    """x -> Relu -> y (and optionally an int64 input idx -> Identity -> z)."""
    nodes = [helper.make_node("Relu", ["x"], ["y"])]
    ins = [helper.make_tensor_value_info("x", TensorProto.FLOAT, list(shape_x))]
    outs = [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)]
    if with_idx:
        nodes.append(helper.make_node("Identity", ["idx"], ["z"]))
        ins.append(helper.make_tensor_value_info("idx", TensorProto.INT64, [2]))
        outs.append(helper.make_tensor_value_info("z", TensorProto.INT64, None))
    m = helper.make_model(helper.make_graph(nodes, "g", ins, outs), opset_imports=[helper.make_opsetid("", 17)])
    return from_model_proto(m)


def _x(rng, n=None):
    shape = (1, 3, 4, 4) if n is None else (n, 1, 3, 4, 4)
    return rng.standard_normal(shape).astype(np.float32)


def test_directory_layout_sorted_and_lazy(tmp_path):
    rng = np.random.default_rng(0)
    arrays = {}
    for name in ["b.npz", "a.npz", "c10.npz", "c2.npz"]:
        arrays[name] = _x(rng)
        np.savez(tmp_path / name, x=arrays[name])
    (tmp_path / "notes.txt").write_text("ignored")
    fs = open_feeds(tmp_path, _graph())
    assert len(fs) == 4
    order = sorted(arrays)                                     # plain file-name order
    assert [p.split("/")[-1] for p in fs.labels()] == order
    got = list(fs)
    for name, feed in zip(order, got):
        assert set(feed) == {"x"}
        np.testing.assert_array_equal(feed["x"], arrays[name])
    assert fs.shapes() == {"x": ((1, 3, 4, 4), np.dtype(np.float32))}
    it = iter(fs)                                             # lazy: a generator, one feed at a time
    assert not isinstance(it, (list, tuple))
    # a file deleted after opening fails only when reached, naming the file
    (tmp_path / "c2.npz").unlink()
    with pytest.raises(FeedError, match="c2.npz"):
        list(fs)


@pytest.mark.parametrize("compressed", [False, True])
def test_single_npz_with_sample_axis(tmp_path, compressed):
    rng = np.random.default_rng(1)
    x = _x(rng, 5)
    idx = rng.integers(0, 9, (5, 2))
    (np.savez_compressed if compressed else np.savez)(tmp_path / "calib.npz", x=x, idx=idx)
    fs = open_feeds(tmp_path / "calib.npz", _graph(with_idx=True))
    assert len(fs) == 5
    for i, feed in enumerate(fs):
        np.testing.assert_array_equal(feed["x"], x[i])
        np.testing.assert_array_equal(feed["idx"], idx[i])
        assert feed["x"].shape == (1, 3, 4, 4) and feed["idx"].dtype == np.int64
    assert len(list(fs)) == 5                                 # iterable more than once
    assert fs.labels()[3].endswith("calib.npz[3]")
    sh = fs.shapes()
    assert sh["x"] == ((1, 3, 4, 4), np.dtype(np.float32)) and sh["idx"][0] == (2,)


def test_batch_axis_doubles_as_sample_axis_for_batch1_models(tmp_path):
    x = np.arange(4 * 3 * 4 * 4, dtype=np.float32).reshape(4, 3, 4, 4)
    np.savez(tmp_path / "c.npz", x=x)
    fs = open_feeds(tmp_path / "c.npz", _graph())
    feeds = list(fs)
    assert len(feeds) == 4 and feeds[2]["x"].shape == (1, 3, 4, 4)
    np.testing.assert_array_equal(feeds[2]["x"][0], x[2])
    # a dynamic batch dimension is ambiguous: a clear error
    np.savez(tmp_path / "d.npz", x=np.zeros((4, 3, 4, 4), np.float32))
    with pytest.raises(FeedError, match="leading sample axis"):
        open_feeds(tmp_path / "d.npz", _graph(shape_x=("N", 3, 4, 4)))


def test_shapes_summary_marks_varying_dims(tmp_path):
    for i, hw in enumerate([(4, 4), (4, 6), (4, 5)]):
        np.savez(tmp_path / f"{i}.npz", x=np.zeros((1, 3) + hw, np.float32))
    fs = open_feeds(tmp_path, _graph(shape_x=(1, 3, "H", "W")))
    assert fs.shapes() == {"x": ((1, 3, 4, None), np.dtype(np.float32))}


def test_savez_positional_key_for_single_input(tmp_path):
    x = _x(np.random.default_rng(2))
    np.savez(tmp_path / "f.npz", x)                            # key arr_0
    (feed,) = list(open_feeds(tmp_path, _graph()))
    np.testing.assert_array_equal(feed["x"], x)


def test_float64_feed_is_converted_like_check_feeds(tmp_path):
    x = _x(np.random.default_rng(3)).astype(np.float64)
    np.savez(tmp_path / "f.npz", x=x)
    (feed,) = list(open_feeds(tmp_path, _graph()))
    assert feed["x"].dtype == np.float32


def test_without_graph(tmp_path):
    np.savez(tmp_path / "a.npz", x=np.ones(3), y=np.zeros(2))
    np.savez(tmp_path / "b.npz", x=np.ones(3), y=np.zeros(2))
    assert [sorted(f) for f in open_feeds(tmp_path)] == [["x", "y"], ["x", "y"]]
    np.savez(tmp_path / "c.npz", x=np.ones(3))
    with pytest.raises(FeedError, match="c.npz.*differ"):
        open_feeds(tmp_path)
    np.savez(tmp_path / "one.npz", v=np.array([[1.0], [np.inf]]))
    with pytest.raises(FeedError, match=r"one.npz\[1\].*NaN or inf"):
        list(open_feeds(tmp_path / "one.npz"))


# -- errors: each names the file and says what to do -------------------------------------------

def test_missing_path(tmp_path):
    with pytest.raises(FeedError, match="no such file") as e:
        open_feeds(tmp_path / "nope", _graph())
    assert "directory of .npz" in str(e.value)


def test_empty_dir_and_dir_without_npz(tmp_path):
    with pytest.raises(FeedError, match="empty"):
        open_feeds(tmp_path, _graph())
    (tmp_path / "notes.txt").write_text("x")
    with pytest.raises(FeedError, match="no .npz, image or WAV files.*notes.txt"):
        open_feeds(tmp_path, _graph())
    (tmp_path / "img.png").write_bytes(b"\x89PNG")          # now an image folder: a broken image is named
    with pytest.raises(FeedError, match="img.png: cannot read the image"):
        open_feeds(tmp_path, _graph())


def test_not_an_npz(tmp_path):
    (tmp_path / "bad.npz").write_bytes(b"this is not a zip file")
    with pytest.raises(FeedError, match="bad.npz: not an .npz"):
        open_feeds(tmp_path, _graph())
    with pytest.raises(FeedError, match="bad.npz: not an .npz"):
        open_feeds(tmp_path / "bad.npz", _graph())
    np.save(tmp_path / "x.npy", np.zeros(3))
    with pytest.raises(FeedError, match="single .npy"):
        open_feeds(tmp_path / "x.npy", _graph())


def test_object_array_refused(tmp_path):
    np.savez(tmp_path / "o.npz", x=np.array([{"a": 1}], dtype=object))
    with pytest.raises(FeedError, match="Python objects"):
        open_feeds(tmp_path, _graph())


def test_missing_input_lists_model_inputs(tmp_path):
    np.savez(tmp_path / "f.npz", x=_x(np.random.default_rng(4)))
    with pytest.raises(FeedError, match=r"f.npz: missing input\(s\) 'idx'") as e:
        open_feeds(tmp_path, _graph(with_idx=True))
    assert "'x', 'idx'" in str(e.value)


def test_extra_key_is_an_error_unless_ignored(tmp_path):
    x = _x(np.random.default_rng(5))
    np.savez(tmp_path / "f.npz", x=x, mask=np.ones(3))
    with pytest.raises(FeedError, match="'mask' are not inputs of the model"):
        open_feeds(tmp_path, _graph())
    (feed,) = list(open_feeds(tmp_path, _graph(), extra="ignore"))
    assert set(feed) == {"x"}
    with pytest.warns(UserWarning, match="mask"):
        open_feeds(tmp_path, _graph(), extra="warn")


@pytest.mark.parametrize("arr, msg", [
    (np.zeros((3, 4, 4), np.float32), r"shape \[3, 4, 4\], the model expects \[1, 3, 4, 4\]"),      # rank
    (np.zeros((1, 3, 4, 5), np.float32), r"shape \[1, 3, 4, 5\], the model expects \[1, 3, 4, 4\]"),  # dim
    (np.zeros((1, 3, 4, 4), np.int32), "dtype int32, the model expects float32"),
])
def test_wrong_rank_shape_dtype_fail_at_open(tmp_path, arr, msg):
    np.savez(tmp_path / "a.npz", x=np.zeros((1, 3, 4, 4), np.float32))
    np.savez(tmp_path / "z_bad.npz", x=arr)                   # the last file: caught before any run
    with pytest.raises(FeedError, match="z_bad.npz.*" + msg):
        open_feeds(tmp_path, _graph())


def test_wrong_shape_in_sample_file(tmp_path):
    np.savez(tmp_path / "c.npz", x=np.zeros((5, 1, 3, 4, 7), np.float32))
    with pytest.raises(FeedError, match="c.npz.*per sample.*expects"):
        open_feeds(tmp_path / "c.npz", _graph())
    np.savez(tmp_path / "d.npz", x=np.zeros((5, 1, 3, 4, 4), np.float32), idx=np.zeros((4, 2), np.int64))
    with pytest.raises(FeedError, match="different sample counts"):
        open_feeds(tmp_path / "d.npz", _graph(with_idx=True))
    np.savez(tmp_path / "e.npz", x=np.zeros((0, 1, 3, 4, 4), np.float32))
    with pytest.raises(FeedError, match="0 samples"):
        open_feeds(tmp_path / "e.npz", _graph())


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_nan_inf_in_a_feed_names_the_file(tmp_path, bad):
    x = _x(np.random.default_rng(6))
    np.savez(tmp_path / "a.npz", x=x)
    x[0, 1, 2, 3] = bad
    np.savez(tmp_path / "b.npz", x=x)
    fs = open_feeds(tmp_path, _graph())
    it = iter(fs)
    next(it)
    with pytest.raises(FeedError, match="b.npz: input 'x' contains NaN or inf"):
        next(it)
    xs = np.stack([_x(np.random.default_rng(7)), x])
    np.savez(tmp_path / "s.npz", x=xs)
    with pytest.raises(FeedError, match=r"s.npz\[1\]: input 'x' contains NaN"):
        list(open_feeds(tmp_path / "s.npz", _graph()))
