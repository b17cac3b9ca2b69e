"""The loader's memory-plan rules (docs/format.md 4.3, issue 9 items 3 and 4), through the
bindings: a node's ARENA operands share bytes only as its kernel's aliasing trait allows
(NONE / SAME / SLICE in the kernel list; partial overlap never, outputs never with each
other), and the header's arena and scratch sizes may exceed what the tensor table and the
kernels' scratch need only by the rounding to 64 bytes. The oracle for the files that load
is numpy; for the refused ones, the error names the node, the tensors and the rule."""
from __future__ import annotations

import numpy as np
import pytest

import dsedge
from dsedge.artifact import Artifact, NodeRec, TensorRec, op_id
from dsedge.errors import ModelError

F = "float32"


def gather(y_off: int, arena: int = 128) -> Artifact:
    """y = x[[1, 2]] (Gather axis 0) on a (4, 8) float32 x at arena offset 0 (128 bytes)."""
    ts = (TensorRec.arena("x", F, (4, 8), 0), TensorRec.const("i", np.array([1, 2], np.int64)),
          TensorRec.arena("y", F, (2, 8), y_off))
    return Artifact(ts, (NodeRec(op_id("Gather"), (0, 1), (2,), {"axis": 0}, name="g"),), (0,), (2,), arena)


def relu(y_off: int, n: int = 16, arena: int | None = None, **kw) -> Artifact:
    ts = (TensorRec.arena("x", F, (n,), 0), TensorRec.arena("y", F, (n,), y_off))
    end = max(4 * n, y_off + 4 * n)
    return Artifact(ts, (NodeRec(op_id("Relu"), (0,), (1,), name="r"),), (0,), (1,),
                    arena if arena is not None else -(-end // 64) * 64, **kw)


X = np.arange(32, dtype=np.float32).reshape(4, 8) - 10


def test_gather_output_overlapping_its_input_is_refused():
    """The fuzzer's finding: a Gather whose output partly overlaps its data input made the
    kernel memcpy between overlapping ranges. Gather never works in place (trait NONE)."""
    ok = dsedge.Runtime(gather(128, 192).to_bytes())
    np.testing.assert_array_equal(ok.run({"x": X})["y"], np.take(X, [1, 2], axis=0))
    with pytest.raises(ModelError, match=r"node 0 \(Gather g\): input 0 \(x, arena \[0, \+128\)\) partly overlaps "
                                         r"output 0 \(y, arena \[16, \+64\)\); dse_any_gather__ref never works in place"):
        dsedge.Runtime(gather(16).to_bytes())
    with pytest.raises(ModelError, match=r"partly overlaps output 0"):   # y starting inside x, ending past it
        dsedge.Runtime(gather(96, 192).to_bytes())


def test_elementwise_in_place_only_on_exactly_the_same_bytes():
    x = np.linspace(-3, 3, 16).astype(np.float32)
    same = dsedge.Runtime(relu(0).to_bytes())           # the planner's in-place form: y == x
    np.testing.assert_array_equal(same.run({"x": x})["y"], np.maximum(x, 0))
    np.testing.assert_array_equal(same.run({"x": x})["y"], np.maximum(x, 0))
    for off in (16, 32, 48):                             # shifted by 4..12 floats: partial overlap
        with pytest.raises(ModelError, match=r"node 0 \(Relu r\): input 0 \(x.*partly overlaps output 0.*works in place only on exactly the same bytes"):
            dsedge.Runtime(relu(off).to_bytes())


def concat(x0_off: int, x1_off: int, y_off: int, lead: int = 1) -> Artifact:
    """y = concat([x0 (lead, 4), x1 (lead, 4)], axis 1) in float32."""
    ts = (TensorRec.arena("x0", F, (lead, 4), x0_off), TensorRec.arena("x1", F, (lead, 4), x1_off),
          TensorRec.arena("y", F, (lead, 8), y_off))
    end = max(t.offset + t.nbytes for t in ts)
    return Artifact(ts, (NodeRec(op_id("Concat"), (0, 1), (2,), {"axis": 1}, name="cat"),), (0, 1), (2,),
                    -(-end // 64) * 64)


def test_concat_input_inside_the_output_only_at_its_slice():
    a, b = np.arange(4, dtype=np.float32)[None], -np.arange(4, dtype=np.float32)[None] - 1
    # x1 written by the planner straight into its slice (bytes 16..32 of y): the copy is skipped
    rt = dsedge.Runtime(concat(64, 16, 0).to_bytes())
    # (as a graph input it is overwritten by nothing: x0's copy goes to bytes 0..16)
    np.testing.assert_array_equal(rt.run({"x0": a, "x1": b})["y"], np.concatenate([a, b], axis=1))
    with pytest.raises(ModelError, match=r"node 0 \(Concat cat\): input 1 overlaps the output's bytes but is not placed "
                                         r"exactly at its slice"):
        dsedge.Runtime(concat(64, 0, 0).to_bytes())     # x1 inside y, but at x0's slice
    with pytest.raises(ModelError, match=r"input 1 overlaps the output's bytes but is not placed exactly"):
        dsedge.Runtime(concat(128, 16, 0, lead=2).to_bytes())   # two rows: slices are not contiguous
    with pytest.raises(ModelError, match=r"input 0 overlaps the output's bytes but is not placed exactly"):
        dsedge.Runtime(concat(16, 128, 24).to_bytes())  # x0 straddles the start of y


def test_outputs_of_one_node_never_share_bytes():
    x = TensorRec.arena("x", F, (2, 4), 0)
    split = lambda o1: Artifact((x, TensorRec.arena("a", F, (1, 4), 32), TensorRec.arena("b", F, (1, 4), o1)),  # noqa: E731
                                (NodeRec(op_id("Split"), (0,), (1, 2), {"axis": 0, "num_outputs": 2}, name="s"),),
                                (0,), (1, 2), 64)
    v = np.arange(8, dtype=np.float32).reshape(2, 4)
    out = dsedge.Runtime(split(48).to_bytes()).run({"x": v})
    np.testing.assert_array_equal(out["a"], v[:1]) and np.testing.assert_array_equal(out["b"], v[1:])
    with pytest.raises(ModelError, match=r"node 0 \(Split s\): outputs 0 and 1 share arena bytes"):
        dsedge.Runtime(split(40).to_bytes())


def test_arena_size_beyond_the_plan_is_refused():
    """Issue 9 item 4: a tiny file claiming a 2 GiB arena made every session allocate and clear
    2 GiB. The plan needs the end of its last ARENA tensor (here 128 bytes): up to that rounded
    to 64 loads, anything more is refused before a session exists."""
    assert dsedge.Runtime(relu(64).to_bytes()).arena_size == 128
    for claim in (192, 2**31, 2**40):
        with pytest.raises(ModelError, match=rf"arena_size {claim} exceeds the 128 bytes the tensor table and scratch "
                                             r"need \(128 rounded up to 64\)"):
            dsedge.Runtime(relu(64, arena=claim).to_bytes())
    assert dsedge.Runtime(relu(64, n=3, arena=128).to_bytes()).arena_size == 128   # 76 bytes -> 128: the slack
    with pytest.raises(ModelError, match=r"arena_size 192 exceeds the 128 bytes"):
        dsedge.Runtime(relu(64, n=3, arena=192).to_bytes())
    empty = Artifact((TensorRec.arena("x", F, (0,), 0), TensorRec.arena("y", F, (0,), 0)),
                     (NodeRec(op_id("Relu"), (0,), (1,)),), (0,), (1,), 64)
    assert dsedge.Runtime(empty.to_bytes()).arena_size == 64   # an empty plan may still claim 64


def test_scratch_size_beyond_the_kernels_need_is_refused():
    """No node here uses scratch: a non-zero scratch region is more than the plan needs."""
    with pytest.raises(ModelError, match=r"scratch_size 64 exceeds the 0 bytes the nodes' kernels use"):
        dsedge.Runtime(relu(0, arena=64, scratch_offset=0, scratch_size=64).to_bytes())
