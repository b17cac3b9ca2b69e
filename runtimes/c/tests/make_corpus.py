"""Generate the loader's seed/regression corpus (runtimes/c/tests/corpus/), deterministically.

    python runtimes/c/tests/make_corpus.py

Seeds are small valid artifacts written by dsedge.artifact (Add with broadcasting, Relu,
Identity, quantisation parameters, every metadata and attribute type, optional inputs).
Mutants are derived from them with a fixed RNG: truncations, bit flips, random bytes, table
bytes replaced by varint extremes (0x80.., 0xff..), header sizes set to huge values. Most
mutants get their CRCs recomputed ("fixcrc") so they reach the table parser; a few keep the
stale CRC to exercise the checksum path. The C corpus runner (and the fuzz target) load every
file; none may crash.

Files named `fuzz_*.dse` are not generated here: they are the libFuzzer corpus minimised with
`-merge=1` (CRCs rewritten, so the plain loader reaches past the checksum too), including one
regression file per bug the fuzzer found; `runtimes/c/fuzz/README.md` says how to refresh
them. This script leaves them in place.
"""
from __future__ import annotations

import struct
import sys
import zlib
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[3]))
from dsedge.artifact import (Artifact, NodeRec, QuantRec, TensorAttr, TensorRec, op_id)  # noqa: E402

OUT = Path(__file__).resolve().parent / "corpus"


def seeds() -> dict[str, Artifact]:
    add, relu, ident = op_id("Add"), op_id("Relu"), op_id("Identity")
    f = "float32"
    bias = TensorRec.const("bias", np.array([0.5, -1.0, 2.0], np.float32))
    s = {}
    s["add_bcast"] = Artifact(
        tensors=(bias, TensorRec.arena("x", f, (2, 1, 3), 0), TensorRec.arena("y", f, (2, 4, 3), 64),
                 TensorRec.arena("w", f, (4, 1), 192)),
        nodes=(NodeRec(add, (1, 3), (2,), name="add1"),),
        inputs=(1, 3), outputs=(2,), arena_size=256, metadata={"producer": "corpus"})
    s["relu_chain"] = Artifact(
        tensors=(TensorRec.arena("x", f, (5,), 0), TensorRec.arena("h", f, (5,), 32), TensorRec.arena("y", f, (5,), 0)),
        nodes=(NodeRec(relu, (0,), (1,)), NodeRec(ident, (1,), (2,), name="copy")),
        inputs=(0,), outputs=(2, 1), arena_size=64, scratch_offset=32, scratch_size=0)
    q = QuantRec([0.1, 0.2], [0, 0], axis=0)
    s["meta_quant"] = Artifact(
        tensors=(TensorRec.const("wq", np.array([[1, -2], [3, 4]], np.int8), quant=q),
                 TensorRec.const("m", np.array([1 << 30, 1 << 30], np.int32)),
                 TensorRec.arena("a", "int8", (2, 2), 0, quant=QuantRec([0.05], [-3])),
                 TensorRec.arena("b", "int8", (2, 2), 16, quant=QuantRec([0.05], [-3])),
                 TensorRec.arena("g", "uint8", (4, 6), 32, quant=QuantRec(np.full(8, 0.5), np.arange(8), 1, 4))),
        nodes=(NodeRec(ident, (2,), (3,), {"i": -7, "f": 1.5, "ints": (1, -1, 1 << 40), "fl": (0.25, 2.0),
                                            "s": "same_upper", "req": TensorAttr(1)}, name="id"),),
        inputs=(2, 4), outputs=(3, 0), arena_size=64, weights_crc=True,
        metadata={"producer": "corpus", "n": -5, "ratio": 0.75, "blob": b"\x00\xff", "chars": ["a", "b", "\u00e9"]})
    return s


def mutants(name: str, data: bytes, rng: np.random.Generator) -> dict[str, bytes]:
    out = {}
    tsize = struct.unpack_from("<Q", data, 24)[0]
    tend = 64 + tsize

    def fixcrc(b: bytearray) -> bytes:
        if len(b) >= 64:
            ts = struct.unpack_from("<Q", b, 24)[0]
            if ts <= len(b) - 64:
                struct.pack_into("<I", b, 60, zlib.crc32(b[64:64 + ts], zlib.crc32(b[:60])))
        return bytes(b)

    for k, n in enumerate(sorted({0, 7, 8, 63, 64, 65, tend - 1, tend, len(data) - 1} | set(rng.integers(1, len(data), 4).tolist()))):
        out[f"trunc{k:02d}"] = data[:n]
    for k in range(24):   # single bit flips in header + tables, CRC fixed
        b = bytearray(data)
        i = int(rng.integers(0, tend))
        b[i] ^= 1 << int(rng.integers(0, 8))
        out[f"flip{k:02d}"] = fixcrc(b)
    for k in range(4):    # stale CRC
        b = bytearray(data)
        b[int(rng.integers(64, tend))] ^= 0x10
        out[f"stale{k}"] = bytes(b)
    for k in range(16):   # random bytes / varint extremes in the tables
        b = bytearray(data)
        i = int(rng.integers(64, tend))
        pat = [b"\xff" * 10, b"\x80" * 11, b"\xff\xff\xff\xff\x0f", b"\x00", b"\x7f", b"\x80\x00"][k % 6]
        b[i:i + len(pat)] = pat[:max(0, tend - i)]
        out[f"varint{k:02d}"] = fixcrc(b[:len(data)] if len(b) >= len(data) else b)
    for k, (off, val) in enumerate([(16, 2**64 - 1), (24, 2**63), (32, 2**32 + 64), (40, 2**64 - 64), (24, 0), (8, 2)]):
        b = bytearray(data)
        struct.pack_into("<Q" if off != 8 else "<I", b, off, val)
        out[f"header{k}"] = fixcrc(b)
    for k in range(6):    # random garbage of the file's length, valid magic, CRC fixed
        b = bytearray(rng.integers(0, 256, len(data), dtype=np.uint8).tobytes())
        b[:64] = data[:64]
        out[f"garbage{k}"] = fixcrc(b)
    return out


def main() -> int:
    OUT.mkdir(parents=True, exist_ok=True)
    for p in OUT.glob("*.dse"):
        if not p.name.startswith("fuzz_"):   # fuzz_*: the minimised libFuzzer corpus (runtimes/c/fuzz/README.md)
            p.unlink()
    rng = np.random.default_rng(20260601)
    for name, art in seeds().items():
        data = art.to_bytes()
        (OUT / f"seed_{name}.dse").write_bytes(data)
        for mname, m in mutants(name, data, rng).items():
            (OUT / f"{name}_{mname}.dse").write_bytes(m)
    print(f"wrote {len(list(OUT.glob('*.dse')))} files to {OUT}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
