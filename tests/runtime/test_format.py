"""The .dse format in Python: a hand-built file (docs/format.md, byte by byte) equals the
writer's output, round trips, determinism, atomic writes, CRC checks, strict decoding,
the DESIGN.md §4 overhead budget, and the generated C header being up to date."""
from __future__ import annotations

import struct
import zlib

import numpy as np
import pytest

from dsedge.artifact import (MAGIC, Artifact, NodeRec, QuantRec, TensorAttr, TensorRec, op_id, read)
from dsedge.errors import ModelError

F = "float32"


def _relu_artifact(**kw) -> Artifact:
    return Artifact(tensors=(TensorRec.arena("x", F, (2,), 0), TensorRec.arena("y", F, (2,), 8)),
                    nodes=(NodeRec(op_id("Relu"), (0,), (1,)),), inputs=(0,), outputs=(1,), arena_size=16, **kw)


def hand_built_relu() -> bytes:
    """Relu on float32[2], written from docs/format.md without the writer."""
    relu = op_id("Relu")
    assert relu < 128   # one varint byte
    t = bytes([3, 0, 0, 1, ord("x"), 0, 1, ord("y"), 0])        # strings "", "x", "y"
    t += bytes([0])                                              # no metadata
    t += bytes([16, 0, 0])                                       # arena 16, no scratch
    t += bytes([2,                                               # 2 tensors
                1, 1, 1, 0, 1, 2, 0,                             # x: float32, ARENA, layout 0, rank 1, [2], @0
                2, 1, 1, 0, 1, 2, 8])                            # y: ... @8
    t += bytes([1, 0])                                           # graph inputs: [0]
    t += bytes([1, relu, 0, 1, 1, 1, 2, 0])                      # node Relu(in t0+1) -> t1+1, no attrs
    t += bytes([1, 1])                                           # graph outputs: [1]
    boff = -(-(64 + len(t)) // 64) * 64
    head = MAGIC + struct.pack("<IIQQQQI8x", 1, 0, boff, len(t), boff, 0, 0)
    crc = zlib.crc32(t, zlib.crc32(head))
    return head + struct.pack("<I", crc) + t + bytes(boff - 64 - len(t))


def test_hand_built_file_matches_writer_and_reads():
    data = hand_built_relu()
    assert _relu_artifact().to_bytes() == data
    a = read(data)
    assert a == _relu_artifact() and a.tensors[1].offset == 8 and a.blob_size == 0


def rich_artifact(weights_crc=False) -> Artifact:
    w = np.arange(12, dtype=np.int8).reshape(3, 4)
    return Artifact(
        tensors=(
            TensorRec.const("w", w, quant=QuantRec([0.5, 0.25, 2.0**-20], [0, 0, 0], axis=0)),
            TensorRec.const("bias", np.array([1, -2, 3], np.int32)),
            TensorRec.const("f16", np.array([1.5, -2], np.float16)),
            TensorRec.const("flag", np.array([True, False])),
            TensorRec.arena("x", "int8", (1, 4), 0, quant=QuantRec([0.1], [-128])),
            TensorRec.arena("y", "int8", (1, 4), 64, quant=QuantRec([0.1], [127])),
            TensorRec.arena("blk", "uint8", (2, 5), 128, quant=QuantRec(np.full(4, 0.5), [1, 2, 3, 4], 1, 3)),
            TensorRec("i4", "int4", (3,), storage=0, data=b"\x21\x03"),
            TensorRec.arena("", F, (2, 0, 3), 192),
        ),
        nodes=(NodeRec(op_id("Identity"), (4, -1), (5, -1), name="id",
                       attrs={"axis": -1, "alpha": 0.1, "pads": [0, 1, 2**40, -3], "scales": np.array([0.5, 3.0]),
                              "mode": "nearest", "M": TensorAttr(1), "empty": ()}),),
        inputs=(4, 6, 8), outputs=(5, 0),
        arena_size=256, scratch_offset=224, scratch_size=32, weights_crc=weights_crc,
        metadata={"producer": "dsedge 0.1.0", "source.character_list": ["a", "ß", "中", ""],
                  "calibration.n": 100, "calibration.loss": -0.125, "blob": b"\x00\x01\xff",
                  "precision_plan": '{"conv1": "int8"}'})


def test_round_trip_every_type():
    a = rich_artifact()
    b = read(a.to_bytes())
    assert b == a
    assert b.meta["source.character_list"] == ("a", "ß", "中", "")
    assert b.meta["calibration.loss"] == -0.125 and b.meta["calibration.n"] == 100
    assert b.nodes[0].attr("alpha") == float(np.float32(0.1))
    assert b.nodes[0].attr("pads") == (0, 1, 2**40, -3)
    assert b.nodes[0].attr("M") == TensorAttr(1)
    np.testing.assert_array_equal(b.tensors[0].array(), np.arange(12, dtype=np.int8).reshape(3, 4))
    assert b.tensors[2].array().dtype == np.float16 and b.tensors[3].array().tolist() == [True, False]
    assert b.tensors[6].quant.group_size == 3 and b.tensors[6].quant.zero_points == (1, 2, 3, 4)
    assert [t.offset for t in b.tensors if t.storage == 0] == [0, 12, 24, 28, 30]   # natural alignment


def test_deterministic_and_order_independent(tmp_path):
    a = rich_artifact()
    b = Artifact(a.tensors, a.nodes, a.inputs, a.outputs, a.arena_size, a.scratch_offset, a.scratch_size,
                 dict(reversed(a.metadata)))
    assert a.to_bytes() == b.to_bytes() == rich_artifact().to_bytes()
    data = a.to_bytes()
    assert len(data) % 64 == 0 or struct.unpack_from("<Q", data, 32)[0] % 64 == 0


def test_atomic_write_replaces_and_leaves_no_temp(tmp_path):
    p = tmp_path / "m.dse"
    p.write_bytes(b"old")
    rich_artifact().write(p)
    assert read(p) == rich_artifact()
    assert sorted(x.name for x in tmp_path.iterdir()) == ["m.dse"]


def test_table_crc_always_checked_weight_crc_on_request():
    data = bytearray(rich_artifact(weights_crc=True).to_bytes())
    tsize = struct.unpack_from("<Q", data, 24)[0]
    for i in (0, 9, 20, 59, 64, 64 + tsize // 2, 63 + tsize):
        bad = bytearray(data)
        bad[i] ^= 0x04
        with pytest.raises(ModelError):
            read(bytes(bad))
    boff = struct.unpack_from("<Q", data, 32)[0]
    data[boff + 5] ^= 1
    read(bytes(data))                                   # weights not verified by default
    with pytest.raises(ModelError, match="weight checksum"):
        read(bytes(data), verify_weights=True)


def test_truncation_and_trailing_bytes_are_errors():
    data = rich_artifact().to_bytes()
    for n in (0, 8, 63, 64, 100, len(data) - 1):
        with pytest.raises(ModelError):
            read(data[:n])
    with pytest.raises(ModelError):
        read(data + b"\0")


def _refix(t: bytes) -> bytes:
    """Wrap raw tables into a file with correct sizes and CRC (to test table decoding)."""
    boff = -(-(64 + len(t)) // 64) * 64
    head = MAGIC + struct.pack("<IIQQQQI8x", 1, 0, boff, len(t), boff, 0, 0)
    return head + struct.pack("<I", zlib.crc32(t, zlib.crc32(head))) + t + bytes(boff - 64 - len(t))


@pytest.mark.parametrize("mutate, match", [
    (lambda t: t.replace(bytes([1, 2, 0]), bytes([1, 0x82, 0])), "non-minimal"),        # dim 2 as 0x82 0x00
    (lambda t: t[:-1], "truncated"),
    (lambda t: t + b"\0", "trailing"),
    (lambda t: t.replace(bytes([3, 0, 0, 1, ord("x")]), bytes([3, 0, 0, 1, ord("z")])), "sorted"),
    (lambda t: t[:15] + bytes([99]) + t[16:], "dtype"),                                # x.dtype -> unknown
])
def test_strict_decoding(mutate, match):
    t = hand_built_relu()
    tables = t[64:64 + struct.unpack_from("<Q", t, 24)[0]]
    assert read(_refix(tables)) == _relu_artifact()
    with pytest.raises(ModelError):
        read(_refix(mutate(tables)))


def test_writer_refuses_inconsistent_graphs():
    x, y = TensorRec.arena("x", F, (2,), 0), TensorRec.arena("y", F, (2,), 8)
    relu = op_id("Relu")
    with pytest.raises(ModelError, match="before it is written"):
        Artifact((x, y), (NodeRec(relu, (1,), (0,)),), (), (0,), 16)
    with pytest.raises(ModelError, match="exceeds the arena"):
        Artifact((x, y), (NodeRec(relu, (0,), (1,)),), (0,), (1,), 12)
    with pytest.raises(ModelError, match="written once"):
        Artifact((x, y), (NodeRec(relu, (0,), (1,)), NodeRec(relu, (0,), (1,))), (0,), (1,), 16)
    with pytest.raises(ModelError, match="scales"):
        Artifact((TensorRec.arena("q", "int8", (3,), 0, quant=QuantRec([0.1, 0.2], [0, 0], axis=0)),), (), (0,), (0,), 4)
    with pytest.raises(ModelError, match="zero points"):
        Artifact((TensorRec.arena("q", "int8", (3,), 0, quant=QuantRec([0.1], [200])),), (), (0,), (0,), 4)
    with pytest.raises(ModelError, match="NUL"):
        Artifact((TensorRec.arena("a\0b", F, (2,), 0),), (), (0,), (0,), 8)


def _overhead(a: Artifact) -> int:
    payload = sum(t.nbytes for t in a.tensors if t.storage == 0)
    payload += sum(5 * len(t.quant.scales) for t in a.tensors if t.quant)   # scale + zero point
    return len(a.to_bytes()) - payload


def _chain(n_nodes: int, weight_bytes: int) -> Artifact:
    """A chain of quantised conv-like nodes: per-channel int8 weight, int32 bias, int8 output."""
    c = 16
    per = max(1, weight_bytes // n_nodes // c - 4)
    tensors = [TensorRec.arena("input", "int8", (1, c, 32, 32), 0, quant=QuantRec([0.1], [3]))]
    nodes = []
    for k in range(n_nodes):
        tensors.append(TensorRec.const("", np.ones((c, per), np.int8), quant=QuantRec(np.full(c, 0.01), np.zeros(c), axis=0)))
        tensors.append(TensorRec.const("", np.zeros(c, np.int32)))
        tensors.append(TensorRec.arena("", "int8", (1, c, 32, 32), 16384 * ((k + 1) % 2), quant=QuantRec([0.1], [-3])))
        prev = len(tensors) - 4 if k else 0
        nodes.append(NodeRec(op_id("Identity"), (prev, len(tensors) - 3, len(tensors) - 2), (len(tensors) - 1,)))
    return Artifact(tuple(tensors), tuple(nodes), (0,), (len(tensors) - 1,), 32768, metadata={"producer": "dsedge 0.1.0"})


@pytest.mark.parametrize("n_nodes, weight_bytes", [(10, 1000), (300, 200_000), (1000, 900_000), (60, 1_200_000)])
def test_overhead_budget(n_nodes, weight_bytes):
    """DESIGN.md §4 as refined in docs/format.md §7: < 1 % with >= 1 MB of weights, else
    <= 4 KB + 24 B per node + 12 B per constant tensor."""
    a = _chain(n_nodes, weight_bytes)
    over, n_const = _overhead(a), sum(t.storage == 0 for t in a.tensors)
    if a.blob_size >= 1 << 20:
        assert over < 0.01 * len(a.to_bytes())
    else:
        assert over <= 4096 + 24 * n_nodes + 12 * n_const, (over, n_nodes)


def test_node_with_activation_costs_at_most_24_bytes():
    def size(n):
        ts = [TensorRec.arena("", "int8", (1, 64, 56, 56), (k % 2) * 200704, quant=QuantRec([0.1], [-3])) for k in range(n + 1)]
        ns = [NodeRec(op_id("Relu"), (k,), (k + 1,)) for k in range(n)]
        return len(Artifact(tuple(ts), tuple(ns), (0,), (n,), 401408).to_bytes()) - 5 * (n + 1)
    assert (size(600) - size(100)) / 500 <= 24


def test_generated_c_header_is_current():
    from dsedge.ops import gen_c
    assert gen_c.HEADER.read_text() == gen_c.generate(), "stale: run `python -m dsedge.ops.gen_c`"
