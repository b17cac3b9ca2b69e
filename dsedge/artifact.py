"""The `.dse` artifact: a frozen model of its contents, a writer and a reader.

The byte format is specified in docs/format.md (this module and runtimes/c/src/loader.c are
its two implementations). In short: a 64-byte header (magic, version, flags, sizes, CRC-32s),
then the tables encoded with LEB128 varints — strings, typed metadata, memory plan, tensors
(dtype, storage, layout, dims, offset, quantisation), graph inputs, nodes (op id, tensor
indices, typed attributes), graph outputs — then zero padding to a multiple of 64
and the weight blob, in which every constant starts at its dtype's alignment (at a multiple
of 64 when it has >= 8 KB).

`Artifact` is immutable. Constant tensors carry their bytes (`TensorRec.data`); their blob
offsets are assigned when the `Artifact` is built, so `read(write(a)) == a`. Writing is
deterministic: strings are sorted, metadata and attributes are sorted by key, padding is
zero, so the same `Artifact` always gives the same bytes.

    a = Artifact(tensors=(TensorRec.const("w", w), TensorRec.arena("x", "float32", (4,), 0), ...),
                 nodes=(NodeRec(op_id("Add"), (1, 0), (2,)),), inputs=(1,), outputs=(2,),
                 arena_size=64, metadata={"producer": "dsedge 0.1.0"})
    a.write("model.dse"); b = read("model.dse")
"""
from __future__ import annotations

import math
import os
import struct
import zlib
from dataclasses import dataclass, field, replace
from typing import Any, Iterable, Mapping

import numpy as np

from .errors import ModelError

MAGIC = b"\x89DSE\r\n\x1a\n"
VERSION = 1
HEADER_SIZE = 64
BLOB_ALIGN = 64
BIG_CONST = 8192     # constants of at least this many bytes start at a multiple of 64
MAX_RANK = 8
MAX_DIM = 2**31 - 1
MAX_NODE_IO = 64
FLAG_WEIGHTS_CRC = 1
_HEADER = struct.Struct("<8sIIQQQQI8xI")

# Dtype ids (append-only; mirrored in runtimes/c/include/dsedge_ops.h by dsedge.ops.gen_c):
# id -> (name, bits, alignment)
DTYPES: dict[int, tuple[str, int, int]] = {
    1: ("float32", 32, 4),
    2: ("float16", 16, 2),
    3: ("float64", 64, 8),
    4: ("int8", 8, 1),
    5: ("uint8", 8, 1),
    6: ("int16", 16, 2),
    7: ("uint16", 16, 2),
    8: ("int32", 32, 4),
    9: ("uint32", 32, 4),
    10: ("int64", 64, 8),
    11: ("uint64", 64, 8),
    12: ("bool", 8, 1),
    13: ("int4", 4, 1),
    14: ("uint4", 4, 1),
}
DTYPE_IDS = {name: i for i, (name, _, _) in DTYPES.items()}
_ZP_RANGE = {"int8": (-128, 127), "uint8": (0, 255), "int16": (-2**15, 2**15 - 1), "uint16": (0, 2**16 - 1),
             "int4": (-8, 7), "uint4": (0, 15)}

CONST, ARENA = 0, 1
Q_NONE, Q_TENSOR, Q_AXIS = 0, 1, 2
M_STRING, M_INT64, M_FLOAT64, M_BYTES, M_STRINGS = 1, 2, 3, 4, 5
A_INT, A_FLOAT, A_INTS, A_FLOATS, A_STRING, A_TENSOR = 1, 2, 3, 4, 5, 6


def op_id(name: str, domain: str = "") -> int:
    """The registry id of an op (the value stored in a node record)."""
    from .ops import REGISTRY
    d = REGISTRY.get(name, domain)
    if d is None:
        raise ModelError(f"op {name!r} is not in the op registry")
    return d.id


def _f32(x) -> float:
    return float(np.float32(x))


def _nbytes(dtype: str, shape: tuple[int, ...], layout: int = 0) -> int:
    if layout in I4_N8K4_LAYOUTS:
        R, K = packed_rk(layout, shape)
        return -(-R // 8) * -(-K // 4) * 16
    if layout in I4_LAYOUTS:
        R, K = packed_rk(layout, shape)
        return R * -(-K // 2)
    if layout in PACKED_LAYOUTS:
        R, K = packed_rk(layout, shape)
        return -(-R // 8) * 8 * -(-K // 4) * 4
    bits = DTYPES[DTYPE_IDS[dtype]][1]
    return (int(np.prod(shape, dtype=object)) * bits + 7) // 8


# -- packed int8 weight layouts (docs/format.md §4.4, "layout") ----------------------------------
# 1 "N8K4 rows": an int8 constant of rank >= 2 viewed as W[R][K], R = dims[0], K = prod(dims[1:]);
# 2 "N8K4 transposed": an int8 rank-2 constant B[K][N] viewed as W[R = N][K] = B[k][n].
# Bytes: blocks of 8 rows x 4 consecutive k (32 bytes, row-major inside: row r, then k), the
# blocks of one 8-row band in k order, then the next band; rows >= R and k >= K are 0.
# 3 "I4 rows" / 4 "I4 transposed": the same W[R][K] views of an int4 constant (W4A8 weights),
# each row packed along K on its own: ceil(K/2) bytes, W[r][k] in byte r*ceil(K/2) + k/2, the
# low nibble for even k (two's complement); the high nibble after an odd K is 0.
# 5 "fp16 weights": a float16 constant the C loader widens once into a float32 copy (exact), so
# that the float32 kernels take it as a float32 constant: half the file, float32 speed.
# 6 "I4 N8K4 rows" / 7 "I4 N8K4 transposed": the views of 1 / 2 for an int4 constant (per-channel
# W4A8 weights of the nodes whose int8 form uses 1 / 2), in the same 8 x 4 blocks, each block in
# 16 bytes: byte j (0..15) holds block element j (layout 1's in-block order: row r%8, then k%4) in
# its low nibble and element j + 16 in its high nibble, two's complement; padding nibbles 0. A
# kernel expands a block to layout 1's 32 int8 bytes with one load, two nibble masks and a table.
# 8 "F32 O32 panels": a float32 constant of rank >= 2 with dims[0] a multiple of 32, viewed as
# W[R][K] (R = dims[0], K = the rest: a Conv weight with group 1), stored as panels of 32 rows,
# each panel k-major: W[r][k] at float ((r/32)*K + k)*32 + r%32 (no padding). The float Conv with
# 1x1 kernels on small images (ops/nn.py `_conv_float_weight_layout`) reads 32 output channels
# of one k as 4 vectors.
# 9 "F32 P16 panels": a float32 rank-2 constant T[R][C] (MatMul's or Gemm's B[K][N]) in the panels of
# 16 columns that the optimised SGEMMs read in place: the C16 = C // 16 * 16 first columns as panels
# of R rows x 16, T[r][c] at float ((c/16)*R + r)*16 + c%16; then the last C - C16 columns row-major,
# T[r][c] at float C16*R + r*(C - C16) + c - C16 (no padding; C < 16: the plain bytes). Chosen for
# float MatMul / Gemm (transB 0) weights (ops/nn.py `_mm_float_weight_layout`).
LAYOUT_PLAIN, LAYOUT_N8K4, LAYOUT_N8K4_T, LAYOUT_I4, LAYOUT_I4_T, LAYOUT_F16W = 0, 1, 2, 3, 4, 5
LAYOUT_I4_N8K4, LAYOUT_I4_N8K4_T = 6, 7
LAYOUT_F32_O32, LAYOUT_F32_P16 = 8, 9
LAYOUTS = (LAYOUT_PLAIN, LAYOUT_N8K4, LAYOUT_N8K4_T, LAYOUT_I4, LAYOUT_I4_T, LAYOUT_F16W, LAYOUT_I4_N8K4,
           LAYOUT_I4_N8K4_T, LAYOUT_F32_O32, LAYOUT_F32_P16)
I4_N8K4_LAYOUTS = (LAYOUT_I4_N8K4, LAYOUT_I4_N8K4_T)
I4_LAYOUTS = (LAYOUT_I4, LAYOUT_I4_T) + I4_N8K4_LAYOUTS          # every layout of an int4 constant
PACKED_LAYOUTS = (LAYOUT_N8K4, LAYOUT_N8K4_T) + I4_LAYOUTS
F32_LAYOUTS = (LAYOUT_F32_O32, LAYOUT_F32_P16)          # reorderings of a float32 constant (same size)
REORDERED_LAYOUTS = PACKED_LAYOUTS + F32_LAYOUTS        # stored by pack_weights, read by unpack_weights
ROWS_LAYOUTS = (LAYOUT_N8K4, LAYOUT_I4, LAYOUT_I4_N8K4, LAYOUT_F32_O32)   # R = dims[0], K = the rest; the others [K][N]


def packed_rk(layout: int, shape) -> tuple[int, int]:
    """(R, K) of the W[R][K] view of a packed tensor of logical `shape`."""
    shape = tuple(int(d) for d in shape)
    if layout in ROWS_LAYOUTS or layout == LAYOUT_F32_P16:
        return shape[0], int(np.prod(shape[1:], dtype=object))
    if layout in PACKED_LAYOUTS:
        return shape[1], shape[0]
    raise ModelError(f"layout {layout} has no packed view")


def layout_ok(layout: int, dtype: str, storage: int, shape) -> bool:
    """Where a layout may be used: 0 anywhere; 1 (3, 6) int8 (int4) constants of rank >= 2; 2 (4, 7)
    int8 (int4) rank-2 constants; 5 float16 constants; 8 float32 constants of rank >= 2 whose first
    dimension is a multiple of 32; 9 float32 rank-2 constants."""
    if layout == LAYOUT_PLAIN:
        return True
    if layout == LAYOUT_F32_P16:
        return dtype == "float32" and storage == CONST and len(shape) == 2
    if layout == LAYOUT_F32_O32:
        return dtype == "float32" and storage == CONST and len(shape) >= 2 and shape[0] % 32 == 0
    if layout == LAYOUT_F16W:
        return dtype == "float16" and storage == CONST
    if dtype != ("int4" if layout in I4_LAYOUTS else "int8") or storage != CONST:
        return False
    return len(shape) >= 2 if layout in ROWS_LAYOUTS else (layout in PACKED_LAYOUTS and len(shape) == 2)


def layout_need(layout: int) -> str:
    """What `layout_ok` requires, in words (error messages)."""
    if layout == LAYOUT_F16W:
        return "a float16 constant"
    if layout == LAYOUT_F32_O32:
        return "a float32 constant of rank >= 2 whose first dimension is a multiple of 32"
    if layout == LAYOUT_F32_P16:
        return "a float32 constant of rank 2"
    dt = "int4" if layout in I4_LAYOUTS else "int8"
    return f"an {dt} constant of rank {'>= 2' if layout in ROWS_LAYOUTS else '2'}"


def _n8k4_blocks(w: np.ndarray, R: int, K: int) -> np.ndarray:
    """W[R][K] as [ceil(R/8)][ceil(K/4)][32] blocks of 8 rows x 4 k (row r%8, then k%4), zero-padded."""
    Rp, Kp = -(-R // 8) * 8, -(-K // 4) * 4
    buf = np.zeros((Rp, Kp), w.dtype)
    buf[:R, :K] = w
    # [rb][r][kb][c] -> [rb][kb][r][c]
    return np.ascontiguousarray(buf.reshape(Rp // 8, 8, Kp // 4, 4).transpose(0, 2, 1, 3)).reshape(Rp // 8, Kp // 4, 32)


def _from_n8k4_blocks(blocks: np.ndarray, layout: int, R: int, K: int, shape) -> np.ndarray:
    """The inverse of _n8k4_blocks, in the logical shape; ModelError if a padding element is not 0."""
    Rp, Kp = -(-R // 8) * 8, -(-K // 4) * 4
    buf = blocks.reshape(Rp // 8, Kp // 4, 8, 4).transpose(0, 2, 1, 3).reshape(Rp, Kp)
    if buf[R:].any() or buf[:, K:].any():
        raise ModelError(f"packed layout {layout}: padding {'nibbles' if layout in I4_LAYOUTS else 'bytes'} must be 0")
    w = buf[:R, :K]
    return np.ascontiguousarray(w.reshape(shape) if layout in ROWS_LAYOUTS else w.T.reshape(shape))


def pack_weights(value, layout: int) -> bytes:
    """The bytes of int8 array `value` (logical shape) in `layout` (1 or 2; 3, 4, 6 or 7: values are
    int4 codes in [-8, 7]; 8, 9: a float32 array)."""
    if layout == LAYOUT_F32_O32:
        a = np.asarray(value, np.float32)
        R, K = packed_rk(layout, a.shape)
        if R % 32:
            raise ModelError(f"layout {layout}: the first dimension ({R}) must be a multiple of 32")
        return np.ascontiguousarray(a.reshape(R // 32, 32, K).transpose(0, 2, 1)).astype("<f4").tobytes()
    if layout == LAYOUT_F32_P16:
        a = np.asarray(value, np.float32)
        if a.ndim != 2:
            raise ModelError(f"layout {layout}: needs a rank-2 array, not shape {list(a.shape)}")
        R, C = a.shape
        c16 = C // 16 * 16
        panels = a[:, :c16].reshape(R, c16 // 16, 16).transpose(1, 0, 2)
        return (np.ascontiguousarray(panels).astype("<f4").tobytes() +
                np.ascontiguousarray(a[:, c16:]).astype("<f4").tobytes())
    a = np.asarray(value, np.int8)
    R, K = packed_rk(layout, a.shape)
    w = a.reshape(R, K) if layout in ROWS_LAYOUTS else a.reshape(K, R).T
    if layout in I4_LAYOUTS and a.size and (a.min() < -8 or a.max() > 7):
        raise ModelError(f"layout {layout}: int4 values must lie in [-8, 7]")
    if layout in I4_N8K4_LAYOUTS:   # block element j in the low nibble of byte j, element j + 16 in its high nibble
        b = _n8k4_blocks(w.astype(np.uint8) & 0x0F, R, K)
        return np.ascontiguousarray(b[:, :, :16] | (b[:, :, 16:] << 4)).tobytes()
    if layout in I4_LAYOUTS:
        buf = np.zeros((R, 2 * -(-K // 2)), np.uint8)
        buf[:, :K] = w.astype(np.uint8) & 0x0F
        return np.ascontiguousarray(buf[:, 0::2] | (buf[:, 1::2] << 4)).tobytes()
    return _n8k4_blocks(w, R, K).tobytes()


def unpack_weights(data: bytes, layout: int, shape) -> np.ndarray:
    """The int8 array of logical `shape` stored in `layout` (8, 9: float32); ModelError if a padding byte
    is not 0."""
    R, K = packed_rk(layout, shape)
    if layout == LAYOUT_F32_O32:
        p = np.frombuffer(data, "<f4", R * K).reshape(R // 32, K, 32)
        return np.ascontiguousarray(p.transpose(0, 2, 1)).reshape(shape).astype(np.float32)
    if layout == LAYOUT_F32_P16:
        C = int(shape[1])
        c16 = C // 16 * 16
        f = np.frombuffer(data, "<f4", R * C)
        out = np.empty((R, C), np.float32)
        out[:, :c16] = f[:R * c16].reshape(c16 // 16, R, 16).transpose(1, 0, 2).reshape(R, c16)
        out[:, c16:] = f[R * c16:].reshape(R, C - c16)
        return out
    if layout in I4_N8K4_LAYOUTS:
        nb = -(-R // 8) * -(-K // 4)
        b = np.frombuffer(data, np.uint8, nb * 16).reshape(nb, 16)
        v = np.concatenate([b & 0x0F, b >> 4], axis=1)
        return _from_n8k4_blocks(((v.astype(np.int8) ^ 8) - 8).astype(np.int8), layout, R, K, shape)
    if layout in I4_LAYOUTS:
        Kh = -(-K // 2)
        b = np.frombuffer(data, np.uint8, R * Kh).reshape(R, Kh)
        if K % 2 and R and (b[:, -1] >> 4).any():
            raise ModelError(f"packed layout {layout}: the padding nibble after an odd K must be 0")
        v = np.empty((R, 2 * Kh), np.uint8)
        v[:, 0::2], v[:, 1::2] = b & 0x0F, b >> 4
        w = ((v[:, :K].astype(np.int8) ^ 8) - 8).astype(np.int8)     # sign-extend the nibble
        return np.ascontiguousarray(w.reshape(shape) if layout in ROWS_LAYOUTS else w.T.reshape(shape))
    Rp, Kp = -(-R // 8) * 8, -(-K // 4) * 4
    return _from_n8k4_blocks(np.frombuffer(data, np.int8, Rp * Kp), layout, R, K, shape)


@dataclass(frozen=True)
class QuantRec:
    """real = scale * (q - zero_point); axis None = per tensor; group_size 0 = per channel."""

    scales: tuple[float, ...]
    zero_points: tuple[int, ...]
    axis: int | None = None
    group_size: int = 0

    def __post_init__(self):
        object.__setattr__(self, "scales", tuple(np.asarray(self.scales).reshape(-1).astype(np.float32).tolist()))
        object.__setattr__(self, "zero_points", tuple(map(int, np.asarray(self.zero_points).reshape(-1).tolist())))


@dataclass(frozen=True)
class TensorRec:
    """One tensor. CONST tensors carry `data` (bytes, row-major); ARENA tensors an arena offset."""

    name: str
    dtype: str
    shape: tuple[int, ...]
    storage: int = ARENA
    offset: int = 0
    data: bytes | None = None
    layout: int = 0
    quant: QuantRec | None = None

    def __post_init__(self):
        object.__setattr__(self, "shape", tuple(int(d) for d in self.shape))

    @classmethod
    def const(cls, name: str, value, *, dtype: str | None = None, quant: QuantRec | None = None,
              layout: int = 0) -> "TensorRec":
        """A constant from a numpy array (int4/uint4: pass packed bytes and `dtype`)."""
        arr = np.asarray(value)
        arr = np.ascontiguousarray(arr).reshape(arr.shape)   # keeps 0-d arrays 0-d
        if dtype is None:
            dtype = "bool" if arr.dtype == np.bool_ else arr.dtype.name
        if dtype == "int4" and layout in I4_LAYOUTS:
            return cls(name, dtype, arr.shape, CONST, 0, pack_weights(arr, layout), layout, quant)
        if dtype in ("int4", "uint4"):
            raise ModelError("int4 constants: use layout 3, 4, 6 or 7, or build TensorRec(..., storage=CONST, data=packed)")
        arr = arr.astype(np.dtype(dtype).newbyteorder("<"), copy=False)
        if layout and not layout_ok(layout, dtype, CONST, arr.shape):
            raise ModelError(f"constant {name!r} ({dtype}{list(arr.shape)}) cannot use layout {layout}")
        data = pack_weights(arr, layout) if layout in REORDERED_LAYOUTS else arr.tobytes()
        return cls(name, dtype, arr.shape, CONST, 0, data, layout, quant)

    @classmethod
    def arena(cls, name: str, dtype: str, shape, offset: int, *, quant: QuantRec | None = None) -> "TensorRec":
        return cls(name, dtype, tuple(shape), ARENA, offset, None, 0, quant)

    @property
    def nbytes(self) -> int:
        return _nbytes(self.dtype, self.shape, self.layout)

    def array(self) -> np.ndarray:
        """The constant's value in its logical shape, unpacked from a packed layout (int4 in
        layout 3, 4, 6, 7: an int8 array of the codes; float32 in layout 8 or 9; other int4/uint4 stay
        packed)."""
        if self.data is None or (self.dtype in ("int4", "uint4") and self.layout not in I4_LAYOUTS):
            raise ValueError(f"tensor {self.name!r} has no unpacked constant value")
        if self.layout in REORDERED_LAYOUTS:
            return unpack_weights(self.data, self.layout, self.shape)
        return np.frombuffer(self.data, dtype=np.dtype(self.dtype).newbyteorder("<")).reshape(self.shape)


@dataclass(frozen=True)
class TensorAttr:
    """A node attribute that refers to a CONST tensor (e.g. requant multipliers)."""

    index: int


@dataclass(frozen=True)
class NodeRec:
    """One node: op id, tensor indices (-1 = absent optional), attributes sorted by name.

    Attribute values: int -> INT, float -> FLOAT (stored as f32), str -> STRING, a tuple of
    ints -> INTS, of floats -> FLOATS, TensorAttr -> TENSOR.
    """

    op: int
    inputs: tuple[int, ...]
    outputs: tuple[int, ...]
    attrs: tuple[tuple[str, Any], ...] = ()
    name: str = ""

    def __post_init__(self):
        attrs = self.attrs.items() if isinstance(self.attrs, Mapping) else self.attrs
        object.__setattr__(self, "attrs", tuple(sorted((str(k), _norm_attr(v)) for k, v in attrs)))
        object.__setattr__(self, "inputs", tuple(int(i) for i in self.inputs))
        object.__setattr__(self, "outputs", tuple(int(i) for i in self.outputs))

    def attr(self, key: str, default=None):
        return dict(self.attrs).get(key, default)


def _norm_attr(v):
    if isinstance(v, (TensorAttr, str)):
        return v
    if isinstance(v, (bool, int, np.integer)):
        return int(v)
    if isinstance(v, (float, np.floating)):
        return _f32(v)
    if isinstance(v, (list, tuple, np.ndarray)):
        a = np.asarray(v)
        if a.dtype.kind in "iub" or a.size == 0:
            return tuple(int(x) for x in a.reshape(-1))
        if a.dtype.kind == "f":
            return tuple(_f32(x) for x in a.reshape(-1))
    raise ModelError(f"attribute value {v!r} has no .dse attribute type")


def _norm_meta(v):
    if isinstance(v, (str, bytes, float)):
        return v
    if isinstance(v, (bool, int, np.integer)):
        return int(v)
    if isinstance(v, np.floating):
        return float(v)
    if isinstance(v, (list, tuple)) and all(isinstance(s, str) for s in v):
        return tuple(v)
    if isinstance(v, (bytearray, memoryview)):
        return bytes(v)
    raise ModelError(f"metadata value {v!r} has no .dse metadata type (str, int, float, bytes, list of str)")


@dataclass(frozen=True)
class Artifact:
    tensors: tuple[TensorRec, ...]
    nodes: tuple[NodeRec, ...]
    inputs: tuple[int, ...]
    outputs: tuple[int, ...]
    arena_size: int
    scratch_offset: int = 0
    scratch_size: int = 0
    metadata: tuple[tuple[str, Any], ...] = ()
    weights_crc: bool = False
    blob_size: int = field(default=0, init=False)

    def __post_init__(self):
        md = self.metadata.items() if isinstance(self.metadata, Mapping) else self.metadata
        object.__setattr__(self, "metadata", tuple(sorted((str(k), _norm_meta(v)) for k, v in md)))
        object.__setattr__(self, "inputs", tuple(self.inputs))
        object.__setattr__(self, "outputs", tuple(self.outputs))
        object.__setattr__(self, "nodes", tuple(self.nodes))
        # Lay out constants in tensor order, each at its dtype's alignment (64 when big).
        pos, ts = 0, []
        for t in self.tensors:
            if t.storage == CONST:
                align = 64 if t.nbytes >= BIG_CONST else DTYPES[DTYPE_IDS[t.dtype]][2]
                pos = -(-pos // align) * align
                t = replace(t, offset=pos)
                pos += len(t.data or b"")
            ts.append(t)
        object.__setattr__(self, "tensors", tuple(ts))
        object.__setattr__(self, "blob_size", pos)
        _validate(self)

    @property
    def meta(self) -> dict[str, Any]:
        return dict(self.metadata)

    def to_bytes(self) -> bytes:
        return _encode(self)

    def write(self, path) -> None:
        """Write atomically: a temporary file in the same directory, then rename (dsedge.util)."""
        from .util import atomic_write_bytes
        atomic_write_bytes(os.fspath(path), self.to_bytes())

    @classmethod
    def read(cls, src, *, verify_weights: bool = False) -> "Artifact":
        return read(src, verify_weights=verify_weights)


# -- validation (shared by writer and reader) ----------------------------------------------

def _validate(a: Artifact, where: str = "artifact") -> None:
    def bad(msg):
        raise ModelError(f"{where}: {msg}")

    nt = len(a.tensors)
    arena_limit = a.arena_size
    if a.scratch_offset + a.scratch_size > arena_limit:
        bad(f"scratch [{a.scratch_offset}, +{a.scratch_size}) exceeds the arena ({arena_limit} B)")
    if a.scratch_offset % 16:
        bad(f"scratch offset {a.scratch_offset} is not a multiple of 16")
    for i, t in enumerate(a.tensors):
        tw = f"tensor {i} ({t.name or 'unnamed'})"
        if t.dtype not in DTYPE_IDS:
            bad(f"{tw}: unknown dtype {t.dtype!r}")
        if len(t.shape) > MAX_RANK or any(not 0 <= d <= MAX_DIM for d in t.shape):
            bad(f"{tw}: shape {t.shape} has rank > {MAX_RANK} or a dimension outside [0, 2^31)")
        if t.layout not in LAYOUTS:
            bad(f"{tw}: layout {t.layout} is not defined in format version {VERSION}")
        if not layout_ok(t.layout, t.dtype, t.storage, t.shape):
            bad(f"{tw}: layout {t.layout} needs {layout_need(t.layout)}, not {t.dtype}{list(t.shape)}")
        align = DTYPES[DTYPE_IDS[t.dtype]][2]
        if t.offset % align:
            bad(f"{tw}: offset {t.offset} is not a multiple of {align}")
        if t.storage == CONST:
            if t.data is None or len(t.data) != t.nbytes:
                bad(f"{tw}: constant data has {len(t.data or b'')} bytes, shape needs {t.nbytes}")
        elif t.storage == ARENA:
            if t.data is not None:
                bad(f"{tw}: an arena tensor cannot carry data")
            if t.offset + t.nbytes > arena_limit:
                bad(f"{tw}: [{t.offset}, +{t.nbytes}) exceeds the arena ({arena_limit} B)")
        else:
            bad(f"{tw}: unknown storage {t.storage}")
        q = t.quant
        if q is not None and t.layout == LAYOUT_F16W:
            bad(f"{tw}: a layout-5 (fp16 weights) constant cannot be quantised")
        if q is not None:
            if q.axis is None:
                n = 1
            else:
                if not 0 <= q.axis < len(t.shape) or q.group_size < 0:
                    bad(f"{tw}: quantisation axis {q.axis} / group size {q.group_size} invalid for shape {t.shape}")
                d = t.shape[q.axis]
                n = d if q.group_size == 0 else (int(np.prod(t.shape)) // d * -(-d // q.group_size) if d else 0)
            if len(q.scales) != n or len(q.zero_points) != n:
                bad(f"{tw}: {len(q.scales)} scales / {len(q.zero_points)} zero points, expected {n}")
            if not (all(map(math.isfinite, q.scales)) and (not q.scales or min(q.scales) > 0)):
                bad(f"{tw}: quantisation scales must be finite and > 0")
            lo, hi = _ZP_RANGE.get(t.dtype, (-2**31, 2**31 - 1))
            if not all(lo <= z <= hi for z in q.zero_points):
                bad(f"{tw}: zero points outside [{lo}, {hi}]")
    defined = set()
    for i in a.inputs:
        if not 0 <= i < nt or a.tensors[i].storage != ARENA or i in defined:
            bad(f"graph input {i} must be a distinct arena tensor index")
        defined.add(i)
    for k, n in enumerate(a.nodes):
        nw = f"node {k} ({n.name or n.op})"
        if len(n.inputs) > MAX_NODE_IO or not 1 <= len(n.outputs) <= MAX_NODE_IO or len(n.attrs) > MAX_NODE_IO:
            bad(f"{nw}: too many inputs, outputs or attributes (or no output)")
        for i in n.inputs:
            if i == -1:
                continue
            if not 0 <= i < nt:
                bad(f"{nw}: input tensor index {i} out of range")
            if a.tensors[i].storage == ARENA and i not in defined:
                bad(f"{nw}: reads arena tensor {i} ({a.tensors[i].name}) before it is written")
        for o in n.outputs:
            if o == -1:
                continue
            if not 0 <= o < nt or a.tensors[o].storage != ARENA or o in defined:
                bad(f"{nw}: output {o} must be an arena tensor written once")
            defined.add(o)
        keys = [key for key, _ in n.attrs]
        if len(set(keys)) != len(keys) or "" in keys:
            bad(f"{nw}: attribute names must be unique and non-empty")
        for key, v in n.attrs:
            if isinstance(v, TensorAttr) and (not 0 <= v.index < nt or a.tensors[v.index].storage != CONST):
                bad(f"{nw}: attribute {key} must reference a constant tensor")
    for o in a.outputs:
        if not 0 <= o < nt or (a.tensors[o].storage == ARENA and o not in defined):
            bad(f"graph output {o} is not a constant, graph input or node output")
    if any(k == "" for k, _ in a.metadata) or len({k for k, _ in a.metadata}) != len(a.metadata):
        bad("metadata keys must be unique and non-empty")
    for s in _strings(a):
        if "\0" in s:
            bad(f"string {s!r} contains NUL")


# -- encoding -------------------------------------------------------------------------------

def _uv_slow(v: int) -> bytes:
    if v < 0 or v >= 1 << 64:
        raise ModelError(f"value {v} does not fit an unsigned 64-bit field")
    out = bytearray()
    while True:
        b = v & 0x7F
        v >>= 7
        if v:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def _zigzag(v: int) -> int:
    return ((v << 1) ^ (v >> 63)) & ((1 << 64) - 1)


# the encodings of small values, looked up (a tensor's per-channel zero points: one each)
_UV_SMALL = tuple(_uv_slow(v) for v in range(1 << 14))
_SV_SMALL = {v: _uv_slow(_zigzag(v)) for v in range(-(1 << 13), 1 << 13)}


def _uv(v: int) -> bytes:
    return _UV_SMALL[v] if 0 <= v < 1 << 14 else _uv_slow(v)


def _sv(v: int) -> bytes:
    b = None if isinstance(v, float) else _SV_SMALL.get(v)
    if b is not None:
        return b
    if not -(1 << 63) <= v < 1 << 63:
        raise ModelError(f"value {v} does not fit a signed 64-bit field")
    return _uv_slow(_zigzag(v))


def _svs(values) -> bytes:
    """_sv of each integer, concatenated (per-channel zero points: mostly all 0)."""
    if not any(values):
        return b"\0" * len(values)
    try:
        return b"".join(map(_SV_SMALL.__getitem__, values))
    except (KeyError, TypeError):
        return b"".join(_sv(v) for v in values)


def _strings(a: Artifact) -> list[str]:
    s = {""}
    s.update(k for k, _ in a.metadata)
    for _, v in a.metadata:
        if isinstance(v, str):
            s.add(v)
        elif isinstance(v, tuple):
            s.update(v)
    s.update(t.name for t in a.tensors)
    for n in a.nodes:
        s.add(n.name)
        for k, v in n.attrs:
            s.add(k)
            if isinstance(v, str):
                s.add(v)
    return sorted(s, key=lambda x: x.encode())


def _encode(a: Artifact) -> bytes:
    strings = _strings(a)
    sid = {s: i for i, s in enumerate(strings)}
    out = bytearray(_uv(len(strings)))
    for s in strings:
        b = s.encode()
        out += _uv(len(b)) + b + b"\0"
    out += _uv(len(a.metadata))
    for k, v in sorted(a.metadata, key=lambda kv: sid[kv[0]]):
        out += _uv(sid[k])
        if isinstance(v, str):
            out += bytes([M_STRING]) + _uv(sid[v])
        elif isinstance(v, int):
            out += bytes([M_INT64]) + _sv(v)
        elif isinstance(v, float):
            out += bytes([M_FLOAT64]) + struct.pack("<d", v)
        elif isinstance(v, bytes):
            out += bytes([M_BYTES]) + _uv(len(v)) + v
        else:
            out += bytes([M_STRINGS]) + _uv(len(v)) + b"".join(_uv(sid[x]) for x in v)
    out += _uv(a.arena_size) + _uv(a.scratch_offset) + _uv(a.scratch_size)
    out += _uv(len(a.tensors))
    for t in a.tensors:
        q = t.quant
        qk = Q_NONE if q is None else (Q_TENSOR if q.axis is None else Q_AXIS)
        out += _uv(sid[t.name]) + bytes([DTYPE_IDS[t.dtype], t.storage | qk << 4, t.layout, len(t.shape)])
        out += b"".join(_uv(d) for d in t.shape) + _uv(t.offset)
        if qk == Q_AXIS:
            out += _uv(q.axis) + _uv(q.group_size)
        if qk:
            out += struct.pack(f"<{len(q.scales)}f", *q.scales) + _svs(q.zero_points)
    out += _uv(len(a.inputs)) + b"".join(_uv(i) for i in a.inputs)
    out += _uv(len(a.nodes))
    for n in a.nodes:
        out += _uv(n.op) + _uv(sid[n.name])
        out += _uv(len(n.inputs)) + b"".join(_uv(i + 1) for i in n.inputs)
        out += _uv(len(n.outputs)) + b"".join(_uv(o + 1) for o in n.outputs)
        out += _uv(len(n.attrs))
        for k, v in sorted(n.attrs, key=lambda kv: sid[kv[0]]):
            out += _uv(sid[k])
            if isinstance(v, TensorAttr):
                out += bytes([A_TENSOR]) + _uv(v.index)
            elif isinstance(v, str):
                out += bytes([A_STRING]) + _uv(sid[v])
            elif isinstance(v, int):
                out += bytes([A_INT]) + _sv(v)
            elif isinstance(v, float):
                out += bytes([A_FLOAT]) + struct.pack("<f", v)
            elif all(isinstance(x, int) for x in v):
                out += bytes([A_INTS]) + _uv(len(v)) + _svs(v)
            else:
                out += bytes([A_FLOATS]) + _uv(len(v)) + struct.pack(f"<{len(v)}f", *v)
    out += _uv(len(a.outputs)) + b"".join(_uv(i) for i in a.outputs)

    tables = bytes(out)
    blob_offset = -(-(HEADER_SIZE + len(tables)) // BLOB_ALIGN) * BLOB_ALIGN
    blob = _blob_parts(a)     # the weight blob in pieces, joined once with the header and tables
    blob_len = sum(len(p) for p in blob)
    flags = FLAG_WEIGHTS_CRC if a.weights_crc else 0
    wcrc = 0
    if a.weights_crc:
        for p in blob:
            wcrc = zlib.crc32(p, wcrc)
    head = _HEADER.pack(MAGIC, VERSION, flags, blob_offset + blob_len, len(tables), blob_offset,
                        blob_len, wcrc, 0)
    crc = zlib.crc32(tables, zlib.crc32(head[:60]))
    head = head[:60] + struct.pack("<I", crc)
    pad = b"\0" * (blob_offset - HEADER_SIZE - len(tables))
    return b"".join([head, tables, pad, *blob])


def _blob_parts(a: Artifact) -> list[bytes]:
    """The weight blob (a.blob_size bytes: each CONST's data at its offset, zeros between) as
    pieces in order, without first copying every constant into one buffer."""
    parts: list[bytes] = []
    pos = 0
    for t in a.tensors:
        if t.storage != CONST or not t.data:
            continue
        if t.offset < pos:       # not laid out in tensor order: one buffer after all
            blob = bytearray(a.blob_size)
            for u in a.tensors:
                if u.storage == CONST:
                    blob[u.offset:u.offset + len(u.data)] = u.data
            return [bytes(blob)]
        if t.offset > pos:
            parts.append(bytes(t.offset - pos))
        parts.append(t.data)
        pos = t.offset + len(t.data)
    if a.blob_size > pos:
        parts.append(bytes(a.blob_size - pos))
    return parts


# -- decoding -------------------------------------------------------------------------------

class _Reader:
    def __init__(self, buf: memoryview, end: int):
        self.b, self.p, self.end = buf, HEADER_SIZE, end

    def need(self, n: int) -> memoryview:
        if n > self.end - self.p:
            raise ModelError("tables truncated")
        v = self.b[self.p:self.p + n]
        self.p += n
        return v

    def u8(self) -> int:
        return self.need(1)[0]

    def uv(self) -> int:
        v = shift = 0
        for k in range(10):
            b = self.u8()
            if k == 9 and b > 1:
                raise ModelError("varint exceeds 64 bits")
            v |= (b & 0x7F) << shift
            shift += 7
            if not b & 0x80:
                if b == 0 and k > 0:
                    raise ModelError("non-minimal varint")
                return v
        raise ModelError("varint longer than 10 bytes")

    def sv(self) -> int:
        u = self.uv()
        return (u >> 1) ^ -(u & 1)

    def f32s(self, n: int) -> tuple[float, ...]:
        return struct.unpack(f"<{n}f", self.need(4 * n))

    def count(self, limit: int, what: str) -> int:
        n = self.uv()
        if n > limit:
            raise ModelError(f"{what} count {n} exceeds {limit}")
        return n


def read(src, *, verify_weights: bool = False) -> Artifact:
    """Read a `.dse` file (path or bytes). Raises ModelError on any violation of the spec."""
    if isinstance(src, (bytes, bytearray, memoryview)):
        data, where = bytes(src), "<bytes>"
    else:
        where = os.fspath(src)
        with open(where, "rb") as f:
            data = f.read()
    try:
        return _decode(data, verify_weights)
    except ModelError as e:
        raise ModelError(f"{where}: {e}", hint="the file is not a valid .dse artifact; re-export it") from None


def _decode(data: bytes, verify_weights: bool) -> Artifact:
    if len(data) < HEADER_SIZE or data[:8] != MAGIC:
        raise ModelError("not a .dse file (bad magic or shorter than the header)")
    magic, version, flags, fsize, tsize, boff, bsize, wcrc, crc = _HEADER.unpack_from(data)
    if version != VERSION:
        raise ModelError(f"format version {version}, this reader supports {VERSION}")
    if flags & ~FLAG_WEIGHTS_CRC or data[52:60] != bytes(8):
        raise ModelError("unknown header flags or non-zero reserved bytes")
    if fsize != len(data) or tsize > fsize - HEADER_SIZE or boff != -(-(HEADER_SIZE + tsize) // 64) * 64 \
            or boff + bsize != fsize:
        raise ModelError(f"header sizes inconsistent with the file length ({len(data)} B): truncated or corrupt")
    end = HEADER_SIZE + tsize
    if zlib.crc32(data[HEADER_SIZE:end], zlib.crc32(data[:60])) != crc:
        raise ModelError("header/table checksum mismatch (the file is corrupt)")
    if any(data[end:boff]):
        raise ModelError("non-zero padding before the weight blob")
    if not flags & FLAG_WEIGHTS_CRC and wcrc:
        raise ModelError("weights CRC set without its flag")
    blob = data[boff:]
    if verify_weights and flags & FLAG_WEIGHTS_CRC and zlib.crc32(blob) != wcrc:
        raise ModelError("weight checksum mismatch (the weights are corrupt)")
    r = _Reader(memoryview(data), end)
    big = tsize  # no count can exceed the table size in bytes

    strings = []
    for _ in range(r.count(big, "string")):
        n = r.count(big, "string length")
        s = bytes(r.need(n))
        if r.u8() != 0 or b"\0" in s:
            raise ModelError("string not NUL-terminated or containing NUL")
        try:
            strings.append(s.decode())
        except UnicodeDecodeError:
            raise ModelError("string is not UTF-8") from None
    if not strings or strings[0] != "":
        raise ModelError("string 0 must be empty")
    if any(x.encode() >= y.encode() for x, y in zip(strings, strings[1:])):
        raise ModelError("strings must be sorted and unique")

    def st() -> str:
        i = r.uv()
        if i >= len(strings):
            raise ModelError(f"string index {i} out of range")
        return strings[i]

    meta, last = [], -1
    for _ in range(r.count(big, "metadata")):
        ki = r.uv()
        if ki <= last or ki >= len(strings) or ki == 0:
            raise ModelError("metadata keys must be valid, non-empty and strictly increasing")
        last = ki
        ty = r.u8()
        if ty == M_STRING:
            v = st()
        elif ty == M_INT64:
            v = r.sv()
        elif ty == M_FLOAT64:
            v = struct.unpack("<d", r.need(8))[0]
        elif ty == M_BYTES:
            v = bytes(r.need(r.count(big, "bytes")))
        elif ty == M_STRINGS:
            v = tuple(st() for _ in range(r.count(big, "string list")))
        else:
            raise ModelError(f"unknown metadata type {ty}")
        meta.append((strings[ki], v))

    arena, soff, ssize = r.uv(), r.uv(), r.uv()
    tensors = []
    for _ in range(r.count(big, "tensor")):
        name = st()
        dt, kind, layout, rank = r.u8(), r.u8(), r.u8(), r.u8()
        if dt not in DTYPES or kind & 15 not in (CONST, ARENA) or kind >> 4 > Q_AXIS or rank > MAX_RANK:
            raise ModelError(f"tensor {len(tensors)}: bad dtype/kind/rank")
        shape = tuple(r.uv() for _ in range(rank))
        if any(d > MAX_DIM for d in shape):
            raise ModelError(f"tensor {len(tensors)}: dimension too large")
        off = r.uv()
        quant = None
        if kind >> 4:
            axis, group = (None, 0) if kind >> 4 == Q_TENSOR else (r.uv(), r.uv())
            if axis is None:
                n = 1
            elif axis >= rank:
                raise ModelError(f"tensor {len(tensors)}: quantisation axis out of range")
            else:
                d = shape[axis]
                n = d if group == 0 else (int(np.prod(shape, dtype=object)) // d * -(-d // group) if d else 0)
            if 4 * n > big:
                raise ModelError(f"tensor {len(tensors)}: too many scales")
            quant = QuantRec(r.f32s(n), tuple(r.sv() for _ in range(n)), axis, group)
        name_dt = DTYPES[dt][0]
        data = None
        if off % DTYPES[dt][2]:
            raise ModelError(f"tensor {len(tensors)}: offset not aligned for {name_dt}")
        if layout not in LAYOUTS or not layout_ok(layout, name_dt, kind & 15, shape):
            raise ModelError(f"tensor {len(tensors)}: layout {layout} not allowed for {name_dt}{list(shape)}")
        if kind & 15 == CONST:
            nb = _nbytes(name_dt, shape, layout)
            if off + nb > len(blob):
                raise ModelError(f"tensor {len(tensors)}: data outside the weight blob")
            data = blob[off:off + nb]
            if layout in PACKED_LAYOUTS:
                unpack_weights(data, layout, shape)   # padding bytes must be 0
        tensors.append(TensorRec(name, name_dt, shape, kind & 15, off, data, layout, quant))

    inputs = tuple(r.uv() for _ in range(r.count(big, "graph input")))
    nodes = []
    for _ in range(r.count(big, "node")):
        opid, name = r.uv(), st()
        ins = tuple(r.uv() - 1 for _ in range(r.count(MAX_NODE_IO, "node input")))
        outs = tuple(r.uv() - 1 for _ in range(r.count(MAX_NODE_IO, "node output")))
        attrs, last = [], -1
        for _ in range(r.count(MAX_NODE_IO, "attribute")):
            ki = r.uv()
            if ki <= last or ki >= len(strings) or ki == 0:
                raise ModelError("attribute keys must be valid, non-empty and strictly increasing")
            last = ki
            ty = r.u8()
            if ty == A_INT:
                v = r.sv()
            elif ty == A_FLOAT:
                v = r.f32s(1)[0]
            elif ty == A_INTS:
                v = tuple(r.sv() for _ in range(r.count(big, "ints")))
            elif ty == A_FLOATS:
                n = r.count(big // 4, "floats")
                v = r.f32s(n)
            elif ty == A_STRING:
                v = st()
            elif ty == A_TENSOR:
                v = TensorAttr(r.uv())
            else:
                raise ModelError(f"unknown attribute type {ty}")
            attrs.append((strings[ki], v))
        nodes.append(NodeRec(opid, ins, outs, tuple(attrs), name))
    outputs = tuple(r.uv() for _ in range(r.count(big, "graph output")))
    if r.p != end:
        raise ModelError("trailing bytes after the graph outputs")
    # Constants are re-laid out canonically (a file written by another writer may place them
    # differently; the data is what counts).
    return Artifact(tuple(tensors), tuple(nodes), inputs, outputs, arena, soff, ssize, tuple(meta),
                    bool(flags & FLAG_WEIGHTS_CRC))


def write(artifact: Artifact, path) -> None:
    artifact.write(path)
