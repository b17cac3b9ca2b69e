"""The memory planner: every activation tensor and every node's kernel scratch in one arena.

The C runtime never plans (DESIGN.md §5); the exporter computes, once, the byte offset of
every ARENA tensor (graph inputs and node outputs; constants stay in the weight blob and are
never copied) and the size of the arena. The algorithm is TFLite Micro's greedy planner with
in-place aliasing in front of it:

 1. Lifetimes. Nodes run in file order 0..N-1. A tensor is live from the node that writes it
    (graph inputs: from -1, before the first node) to the last node that reads it (graph
    outputs: to N, after the last node, so the caller can read them). Graph inputs also live
    to N (`keep_inputs`, the default): a session may run again without setting its inputs
    again (dsedge-run --repeat does), so a run must not overwrite them.
 2. Aliasing, in node order, groups tensors into buffers; a member sits at a fixed byte
    offset inside its buffer:
      * views: the output of an op with the `view` trait (Reshape / Flatten / Squeeze /
        Unsqueeze / Identity / Dropout) = the same bytes as its input (the kernel sees
        src == dst and does nothing);
      * in place: an op with the `in_place` trait (elementwise: unary, broadcasting binary,
        int8 table/add/mul; Quantize/Dequantize excluded: their sizes differ) writes over an
        input of the same dtype and byte size when every tensor of that input's buffer is dead
        after this node and none is a graph input (the app's input must survive a run) or
        graph output;
      * concat: a Concat whose output is contiguous per input (every dim before `axis` is
        1) gets each eligible input — produced by a node, not already part of a larger
        buffer, same dtype, not requantised by an int8 Concat, first occurrence — placed as
        its slice of the output: the producer writes straight into the output and the
        Concat kernel skips the copy (src == dst; byte movers use memmove).
    A buffer lives from its first member's start to its last member's end.
 3. Scratch. Node k needs s_k bytes of scratch (scratch.py, by kernel name). The format has
    one scratch offset for every node, so all scratch is one pseudo-buffer placed in the
    same greedy order as the tensors (as a buffer of size max s_k): it takes the lowest
    offset X at which, for every node k, [X, X + s_k) is free at k; after that it blocks
    only [X, X + s_k) at node k (scratch_size = max s_k).
 4. Placement (greedy, first fit): buffers sorted by size (largest first; ties by start,
    then name, for a deterministic plan); each gets the lowest offset, aligned to 16 bytes
    (64 from 8 KB), at which it overlaps no already-placed buffer whose lifetime intersects
    its own. The arena size is the highest end. Greedy-by-size fragments when a long-lived
    large buffer is placed before the short-lived ones it follows (yolo's head: 29 % over
    the bound), so three more orders are tried (bytes x lifetime, execution order, longest
    lifetime first), each improved locally by moving a buffer that reaches the top of the
    arena to the front of the order while that lowers the top; the smallest arena wins.
    The one scratch offset shared by every node makes a poor first fit costly (the int8
    GEMM kernels' packing tiles: yolo 20 % over the bound), so the scratch is also tried at
    32 fixed offsets across the best arena, placed first, with each order (yolo 2 %).
    Everything is deterministic.
 5. The lower bound reported beside it: the largest, over nodes, of the bytes of buffers
    live at that node plus that node's scratch. No placement can beat it; the greedy plan
    is usually within a few percent (fragmentation between differently sized buffers).
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..ir import Graph
from ..ops import REGISTRY
ALIGN, BIG_ALIGN, BIG = 16, 64, 8192


def _align(v: int, a: int) -> int:
    return -(-v // a) * a


@dataclass
class Buffer:
    name: str                      # the root tensor
    members: dict[str, int]        # tensor -> byte offset inside the buffer
    size: int
    first: int
    last: int
    offset: int = -1


@dataclass
class MemoryPlan:
    offsets: dict[str, int]                    # arena tensor -> byte offset
    arena_size: int
    scratch_offset: int
    scratch_size: int
    lower_bound: int                           # max over nodes of live buffer bytes + scratch
    node_scratch: list[int]
    lifetimes: dict[str, tuple[int, int]]
    aliases: dict[str, tuple[str, str]] = field(default_factory=dict)   # tensor -> (kind, other tensor)
    buffers: list[Buffer] = field(default_factory=list)

    @property
    def overhead(self) -> float:
        return self.arena_size / self.lower_bound - 1.0 if self.lower_bound else 0.0

    def summary(self) -> dict:
        kinds: dict[str, int] = {}
        for k, _ in self.aliases.values():
            kinds[k] = kinds.get(k, 0) + 1
        return {"arena_bytes": self.arena_size, "lower_bound_bytes": self.lower_bound,
                "over_bound_pct": round(100 * self.overhead, 2), "scratch_bytes": self.scratch_size,
                "buffers": len(self.buffers), "aliases": dict(sorted(kinds.items()))}


def nbytes_of(g: Graph, name: str) -> int:
    info = g.tensor_info(name)
    return int(np.prod(info.shape, dtype=np.int64)) * np.dtype(info.dtype).itemsize


_ORDERS = (
    lambda b: (-b.size, b.first, b.name),                              # TFLite Micro: largest first
    lambda b: (-(b.size * (b.last - b.first + 1)), b.first, b.name),   # largest area (bytes x time) first
    lambda b: (b.first, -b.size, b.name),                              # in execution order
    lambda b: (-(b.last - b.first), -b.size, b.name),                  # longest-lived first
)


_SCRATCH = "\0scratch"   # the scratch family's pseudo-buffer (no tensor name contains NUL)


def _interference(items: list[Buffer], scratch: list[int]) -> tuple[dict[str, list[str]], dict[str, int]]:
    """Per buffer: the other buffers (size > 0) whose lifetimes overlap its own, and the largest
    node scratch within its lifetime (0: none). What `_place` compares a buffer with, computed
    once per set of buffers instead of once per buffer per placement."""
    real = sorted((b for b in items if b.name != _SCRATCH), key=lambda b: (b.first, b.name))
    nbrs: dict[str, list[str]] = {b.name: [] for b in real}
    for i, b in enumerate(real):
        for c in real[i + 1:]:
            if c.first > b.last:
                break
            if c.size:
                nbrs[b.name].append(c.name)
            if b.size:
                nbrs[c.name].append(b.name)
    n = len(scratch)
    smax = {b.name: max(scratch[max(b.first, 0):min(b.last, n - 1) + 1], default=0) for b in real}
    return nbrs, smax


def _place(buffers: list[Buffer], scratch: list[int], scratch_at: int | None = None,
           pre: tuple | None = None, limit: int | None = None) -> tuple[dict[str, int], int]:
    """First-fit placement of buffers in the given order. The scratch pseudo-buffer takes the
    lowest offset at which every node's own scratch [off, off + s_k) is free at node k, or,
    with `scratch_at`, that offset before any buffer is placed. `pre`: `_interference` of these
    buffers (computed here when not given). `limit`: stop as soon as the arena reaches it (the
    caller only wants a smaller one; the offsets returned are then incomplete).

    A buffer is compared only with the placed buffers whose lifetimes overlap its own, and with
    the scratch as one interval [off, off + the largest s_k in its lifetime): first fit over
    intervals sorted by start gives the same offset for several intervals of one start as for
    the longest of them."""
    nbrs, smax = pre if pre is not None else _interference(buffers, scratch)
    size = {b.name: b.size for b in buffers}
    offs: dict[str, int] = {}
    placed: list[str] = []          # buffers of size > 0, in placement order
    top = 0
    s_max = max(scratch, default=0)
    s_off = None                    # the scratch family's offset, once placed
    if scratch_at is not None:
        offs[_SCRATCH] = s_off = scratch_at
        if s_max > 0:
            top = scratch_at + s_max
    for b in buffers:
        if b.name == _SCRATCH:
            if scratch_at is not None:
                continue
            # conflict at `off` with placed buffer [lo, hi) whose lifetime holds scratch m > 0:
            # lo < off + m and off < hi (some node's [off, off + s_k) overlaps it)
            ivs = [(offs[x], offs[x] + size[x], smax[x]) for x in placed]
            cands = sorted({0} | {_align(hi, BIG_ALIGN) for _, hi, _ in ivs})
            for off in cands:
                if all(not (m > 0 and lo < off + m and off < hi) for lo, hi, m in ivs):
                    break
            offs[b.name] = s_off = off
            if s_max > 0:
                top = max(top, off + s_max)
            if limit is not None and top >= limit:
                return offs, top
            continue
        a = BIG_ALIGN if b.size >= BIG else ALIGN
        busy = [(offs[x], offs[x] + size[x]) for x in nbrs[b.name] if x in offs]
        if s_off is not None and smax[b.name] > 0:
            busy.append((s_off, s_off + smax[b.name]))
        busy.sort()
        off = 0
        for lo, hi in busy:
            if off + b.size <= lo:
                break
            off = max(off, _align(hi, a))
        offs[b.name] = off
        if b.size:
            placed.append(b.name)
            top = max(top, off + b.size)
            if limit is not None and top >= limit:
                return offs, top
    return offs, top


def plan_memory(g: Graph, node_scratch: list[int] | None = None, *, alias: bool = True,
                keep_inputs: bool = True) -> MemoryPlan:
    """Plan the arena of a static graph (every arena tensor must have a static shape)."""
    N = len(g.nodes)
    scratch = list(node_scratch or [0] * N)
    consts = g.consts
    first: dict[str, int] = {}
    last: dict[str, int] = {}
    for name in g.inputs:
        first[name] = last[name] = -1
    for k, n in enumerate(g.nodes):
        for o in n.outputs:
            if o and o not in consts:
                first.setdefault(o, k)
                last.setdefault(o, k)
        for i in n.inputs:
            if i and i in first:
                last[i] = max(last[i], k)
    for o in g.outputs:
        if o in first:
            last[o] = N
    if keep_inputs:     # a session may run again without set_input: inputs stay intact
        for x in g.inputs:
            last[x] = N
    size = {t: nbytes_of(g, t) for t in first}
    dtype = {t: g.tensor_info(t).dtype for t in first}
    pinned = set(g.inputs) | set(g.outputs)

    # buffers (union of aliased tensors) ---------------------------------------------------
    owner: dict[str, Buffer] = {t: Buffer(t, {t: 0}, size[t], first[t], last[t]) for t in first}
    aliases: dict[str, tuple[str, str]] = {}

    def join(src: str, dst_buf: Buffer, at: int) -> None:
        """Move src's whole buffer into dst_buf, src's buffer offset 0 at byte `at`."""
        b = owner[src]
        for m, rel in b.members.items():
            dst_buf.members[m] = at + rel
            owner[m] = dst_buf
        dst_buf.size = max(dst_buf.size, at + b.size)
        dst_buf.first = min(dst_buf.first, b.first)
        dst_buf.last = max(dst_buf.last, b.last)

    def buf_last(b: Buffer) -> int:
        return max(last[m] for m in b.members)

    for k, n in enumerate(g.nodes) if alias else ():
        outs = [o for o in n.outputs if o and o in first]
        if not outs:
            continue
        out = n.outputs[0]
        if out not in first:
            continue
        acts = [i for i in n.inputs if i and i in first]
        d = REGISTRY.get(n.op, n.domain)
        if d is not None and d.view and n.inputs and n.inputs[0] in first:
            x = n.inputs[0]
            if size[x] == size[out] and dtype[x] == dtype[out] and owner[out].members == {out: 0}:
                b = owner[x]
                join(out, b, b.members[x])
                aliases[out] = ("view", x)
            continue
        if d is not None and d.in_place and len(outs) == 1:
            for x in acts:
                b = owner[x]
                if size[x] != size[out] or dtype[x] != dtype[out] or b is owner[out]:
                    continue
                if any(m in pinned for m in b.members) or buf_last(b) != k:
                    continue
                if any(i != x and i in first and owner[i] is b for i in acts):
                    continue
                join(out, b, b.members[x])
                aliases[out] = ("inplace", x)
                break
            continue
        if n.op == "Concat" and not n.domain:
            oshape = g.tensor_info(out).shape
            axis = int(n.attrs.get("axis", 0)) % max(len(oshape), 1)
            if any(d != 1 for d in oshape[:axis]):
                continue
            rescales = (n.attrs.get("_q") or {}).get("rescales") or [None] * len(n.inputs)
            ob = owner[out]
            pos, seen = 0, set()
            for j, x in enumerate(n.inputs):
                xs = g.tensor_info(x).shape
                nb = int(np.prod(xs, dtype=np.int64)) * np.dtype(g.tensor_info(x).dtype).itemsize
                here = pos
                pos += nb
                if x not in first or x in seen or x in g.inputs or rescales[j] is not None:
                    seen.add(x)
                    continue
                seen.add(x)
                b = owner[x]
                if dtype[x] != dtype[out] or b is ob or b.size != size[x] or b.members[x] != 0:
                    continue
                if any(m in g.inputs for m in b.members):
                    continue
                join(x, ob, here)
                aliases[x] = ("concat", out)

    buffers = sorted({id(b): b for b in owner.values()}.values(), key=lambda b: (-b.size, b.first, b.name))
    items = list(buffers)
    users = [k for k, s in enumerate(scratch) if s > 0]
    if users:
        items.append(Buffer(_SCRATCH, {}, max(scratch), users[0], users[-1]))
    pre = _interference(items, scratch)
    best = None
    for key in _ORDERS:
        order = sorted(items, key=key)
        offs, arena = _place(order, scratch, pre=pre)
        for _ in range(64):   # local improvement: a buffer that reaches the top goes first
            for b in [b for b in order if offs[b.name] + b.size > arena - ALIGN]:
                cand = [b] + [x for x in order if x is not b]
                o2, a2 = _place(cand, scratch, pre=pre, limit=arena)
                if a2 < arena:
                    order, offs, arena = cand, o2, a2
                    break
            else:
                break
        if best is None or arena < best[1]:
            best = (offs, arena)
    if users:   # the scratch offset found in passing can be a poor one: also try it fixed first
        step = _align(max(best[1] // 32, BIG_ALIGN), BIG_ALIGN)
        for at in range(0, best[1], step):
            for key in _ORDERS:
                offs, arena = _place(sorted(buffers, key=key), scratch, at, pre, best[1])
                if arena < best[1]:
                    best = (offs, arena)
    for b in buffers:
        b.offset = best[0][b.name]
    arena = best[1]
    scratch_offset = best[0].get(_SCRATCH, 0)
    offsets = {m: b.offset + rel for b in buffers for m, rel in b.members.items()}

    bound = 0
    for k in range(N):
        live = sum(b.size for b in buffers if b.first <= k <= b.last) + scratch[k]
        bound = max(bound, live)
    if N == 0:
        bound = sum(b.size for b in buffers)
    return MemoryPlan(offsets, _align(arena, ALIGN), scratch_offset, max(scratch + [0]), bound, scratch,
                      {t: (first[t], last[t]) for t in first}, aliases, buffers)


def check_plan(g: Graph, plan: MemoryPlan) -> list[str]:
    """Independent check: tensors live at the same node never share bytes unless the plan says
    they alias legally (view of, in place over a dying input, slice of a Concat output)."""
    problems = []
    names = sorted(plan.offsets)
    size = {t: nbytes_of(g, t) for t in names}
    root = {}
    for b in plan.buffers:
        for m in b.members:
            root[m] = b.name
    for t in names:
        if plan.offsets[t] + size[t] > plan.arena_size:
            problems.append(f"{t} exceeds the arena")
    by_start = sorted(names, key=lambda t: plan.offsets[t])
    for i, a in enumerate(by_start):
        a0, a1 = plan.offsets[a], plan.offsets[a] + size[a]
        for b in by_start[i + 1:]:
            b0 = plan.offsets[b]
            if b0 >= a1:
                break
            if size[a] == 0 or size[b] == 0:
                continue
            fa, la = plan.lifetimes[a]
            fb, lb = plan.lifetimes[b]
            if fa <= lb and fb <= la and root[a] != root[b]:
                problems.append(f"{a} and {b} overlap in bytes and time")
    for k, s in enumerate(plan.node_scratch):
        for t in names:
            f, l = plan.lifetimes[t]
            if (s and f <= k <= l and size[t] and plan.offsets[t] < plan.scratch_offset + s
                    and plan.scratch_offset < plan.offsets[t] + size[t]):
                problems.append(f"{t} overlaps the scratch of node {k}")
    return problems
