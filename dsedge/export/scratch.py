"""Kernel scratch sizes: one formula per C kernel name, used by the exporter's memory planner.

A C kernel that needs temporary memory (an im2col buffer, an int32 accumulator row, an LSTM
gate vector, ...) gets it from the session's arena: the exporter reserves, for the node the
kernel runs, `SCRATCH[kernel name](node, shapes)` bytes at the plan's scratch offset (the
same offset for every node; see planner.py), and the kernel's `check` recomputes the same
formula at load and refuses the node when `dse_model`'s scratch_size is smaller.

    @scratch("dse_i8_conv__ref")
    def _(node, shapes) -> int:          # shapes: {tensor name: tuple of ints}
        x, w = shapes[node.inputs[0]], shapes[node.inputs[1]]
        return 4 * w[0]                  # e.g. one int32 accumulator per output channel

`node` is the IR node as exported (its `inputs`/`outputs` are tensor names, `attrs` its
attributes); kernel authors add their entry here (one function per kernel name). A kernel
without an entry needs no scratch (0 bytes). The kernel name follows
`dse_<dtype>_<op>__<isa>`; the planner asks for the `ref` variant, which every optimised
variant of a kernel must not exceed.
"""
from __future__ import annotations

from typing import Callable

from ..artifact import LAYOUT_F32_P16

SCRATCH: dict[str, Callable] = {}
WITH_LAYOUT: set[str] = set()   # kernels whose formula also takes the stored layout of the weight (input 1)


def scratch(kernel_name: str, *, weight_layout: bool = False):
    """Register the scratch formula of a kernel (refuses a second one for the same name);
    `weight_layout`: it is called as fn(node, shapes, w_layout)."""
    def deco(fn):
        if kernel_name in SCRATCH:
            raise ValueError(f"scratch formula for {kernel_name} declared twice")
        SCRATCH[kernel_name] = fn
        if weight_layout:
            WITH_LAYOUT.add(kernel_name)
        return fn
    return deco


def kernel_name(op: str, out_dtype: str, isa: str = "ref") -> str:
    """`dse_<dtype>_<op>__<isa>` for a node's op and output dtype (int8 -> i8, float32 -> f32)."""
    short = {"int8": "i8", "uint8": "u8", "float32": "f32", "float16": "f16", "int32": "i32",
             "int64": "i64", "bool": "bool"}.get(out_dtype, out_dtype)
    return f"dse_{short}_{op.lower()}__{isa}"


def scratch_bytes(node, shapes: dict, out_dtype: str, w_layout: int = 0) -> int:
    """Scratch bytes of a node: the formula of its dtype's kernel, else of the dtype-generic one.
    A dynamically quantised node (`_q` kind "dynamic") runs `dse_f32_<op>_dyn__ref`. `w_layout`: the
    layout its weight (input 1) is stored in, for the formulas registered with `weight_layout`."""
    kind = (node.attrs.get("_q") or {}).get("kind")
    names = (kernel_name(node.op, out_dtype), kernel_name(node.op, "any"))
    if kind == "dynamic":
        names = (kernel_name(node.op + "_dyn", out_dtype),)
    elif kind == "w4a8":       # dse_i8_<op>_w4__*: the AVX2 variants' plan (REF uses none)
        return w4_plan(node, shapes)
    elif kind == "act_matmul":   # MatMul of two int8 activations, both output dtypes: dse_i8_matmul_act__*
        names = (kernel_name("matmul_act", "int8"),)
    elif kind == "weighted":   # int8 compute; float_out nodes (float32 output) run the int8 kernel too
        names = (kernel_name(node.op, "int8"),)
    for name in names:
        fn = SCRATCH.get(name)
        if fn is not None:
            return max(0, int(fn(node, shapes, w_layout) if name in WITH_LAYOUT else fn(node, shapes)))
    return 0


RNN_CHUNK_FLOATS = 65536   # the optimised LSTM/GRU's input-projection chunk (internal.h dse__rnn_f32_chunk)


def rnn_f32_plan(T: int, B: int, I: int, H: int, gates: int) -> int:
    """Scratch planned for a float LSTM (gates 4) / GRU (3): what the optimised variants use
    (runtimes/c/kernels/avx2/rnn.c; runtimes/c/src/internal.h dse__rnn_f32_plan, the same formula),
    per direction: h, h_next and c (LSTM) or r*h (GRU), B*H float32 each (all that REF uses,
    kernels/ref/rnn.c); the input and recurrent gate sums, B*G*H each; for a chunk of Tc time
    steps the transposed inputs (I x Tc*B) and their projection (G*H x Tc*B), Tc = 65536 //
    (B*(G*H + I)) clamped to [1, T]."""
    gh = gates * H
    per = B * (gh + I)
    tc = min(max(RNN_CHUNK_FLOATS // per if per else 1, 1), T)
    return 4 * (3 * B * H + 2 * B * gh + tc * B * (gh + I))


def _rnn_scratch(gates: int):
    def f(node, shapes) -> int:
        x, r = shapes[node.inputs[0]], shapes[node.inputs[2]]
        lay = node.attrs.get("layout", 0)
        T, B = (x[1], x[0]) if lay else (x[0], x[1])
        return rnn_f32_plan(int(T), int(B), int(x[2]), int(r[2]), gates)
    f.__doc__ = rnn_f32_plan.__doc__
    return f


scratch("dse_f32_lstm__ref")(_rnn_scratch(4))
scratch("dse_f32_gru__ref")(_rnn_scratch(3))


INT_MM_ROWS = 64   # rows of the broadcast operand packed at a time (runtimes/c/src/requant.h DSE_INT_MM_ROWS)


def int_gemm_plan(rows: int, K: int) -> int:
    """What the optimised ConvInteger / MatMulInteger / DynamicQuantizeLSTM products use
    (runtimes/c/kernels/avx2/integer.c; requant.h dse_int_gemm_plan, the same formula): `rows`
    rows of the broadcast operand as int16 pairs (4 * rows * ceil(K/2) bytes) and one panel of
    16 columns of the other (64 * ceil(K/2))."""
    if rows <= 0 or K <= 0:
        return 0
    return (4 * rows + 64) * ((K + 1) // 2)


@scratch("dse_f32_dynamicquantizelstm__ref")
def _dyn_lstm_scratch(node, shapes) -> int:
    """com.microsoft DynamicQuantizeLSTM (runtimes/c/kernels/ref/dyn_lstm.c): X quantised
    (T*B*I bytes, rounded up to 16), X times W (T*B*4H float32), h quantised (B*H bytes,
    rounded up to 16), the gates (B*4H int32/float32), h and c (B*H float32 each); then the
    optimised variants' packing of the products, int_gemm_plan(min(T*B, 64), max(I, H))."""
    T, B, I = (int(d) for d in shapes[node.inputs[0]])
    H = int(shapes[node.inputs[2]][1])
    a16 = lambda v: (v + 15) // 16 * 16   # noqa: E731
    ref = a16(T * B * I) + 4 * T * B * 4 * H + a16(B * H) + 4 * B * 4 * H + 8 * B * H
    return ref + int_gemm_plan(min(T * B, INT_MM_ROWS), max(I, H))


@scratch("dse_i32_convinteger__ref")
def _conv_integer_scratch(node, shapes) -> int:
    """ConvInteger: the optimised variants' (REF uses none): all O rows of weights as int16 pairs,
    K = C/group * kernel taps: int_gemm_plan(O, K)."""
    w = shapes[node.inputs[1]]
    return int_gemm_plan(int(w[0]), _prod(w[1:]))


@scratch("dse_i32_matmulinteger__ref")
def _matmul_integer_scratch(node, shapes) -> int:
    """MatMulInteger: the optimised variants' (REF uses none): int_gemm_plan(min(M, 64), K) with
    M the rows of one matrix of A (1 for a 1-D A), K its last axis."""
    a = shapes[node.inputs[0]]
    if not a:
        return 0
    M = int(a[-2]) if len(a) >= 2 else 1
    return int_gemm_plan(min(M, INT_MM_ROWS), int(a[-1]))


def _dynamic_scratch(node, shapes) -> int:
    """Dynamic int8 Conv/Gemm/MatMul (runtimes/c/kernels/ref/dyn_i8.c): the quantised input
    (numel(x) bytes rounded up to 16), then a zero int32 bias[C] and the scales float32[C]."""
    numel = 1
    for d in shapes[node.inputs[0]]:
        numel *= int(d)
    return (numel + 15) // 16 * 16 + 8 * len(node.attrs["_q"]["w_scale"])


for _op in ("conv", "gemm", "matmul"):
    scratch(f"dse_f32_{_op}_dyn__ref")(_dynamic_scratch)


# -- int8 Conv / Gemm / MatMul: the optimised variants' packing buffer -------------------------------

PACK_TILE = 256   # output pixels (Conv) or rows (Gemm/MatMul) packed per tile


def packed_gemm_plan(K: int, P: int) -> int:
    """Scratch planned for an int8 GEMM-like node (the most any variant uses; the REF kernels use
    none): one tile of A = (x - zp_in) as int16, K rounded up to 4, at most PACK_TILE columns,
    plus 4096 bytes (runtimes/c/src/requant.h: dse_i8_gemm_scratch_plan, the same formula)."""
    if K <= 0 or P <= 0:
        return 0
    return 2 * (-(-K // 4) * 4) * min(P, PACK_TILE) + 4096


def w4_dw_plan(C: int, K: int, P: int) -> int:
    """Scratch planned for a W4A8 depthwise Conv: the int8 depthwise plan and its weights expanded to
    int8, C * K rounded up to 64 bytes (the AVX2 W4 depthwise kernel; requant.h dse_w4_dw_scratch_plan)."""
    return packed_gemm_plan(K, P) + -(-C * K // 64) * 64 if K > 0 and P > 0 else 0


def w4_plan(node, shapes) -> int:
    """W4A8 nodes (dse_i8_{conv,gemm,matmul}_w4__*): per channel with group 1 (weights in layouts 6/7,
    the AVX2 W4 kernels) the int8 GEMM plan; depthwise Conv the int8 depthwise plan and its expanded
    weights; other int4 nodes (group multipliers on Conv group 1, Gemm, MatMul; grouped Conv) none."""
    x, w, y = shapes[node.inputs[0]], shapes[node.inputs[1]], shapes[node.outputs[0]]
    per_channel = not int(node.attrs["_q"].get("w4_group", 0) or 0)
    if node.op == "Conv":
        group = int(node.attrs.get("group", 1) or 1)
        K, P = _prod(w[1:]), _prod(y[2:])
        if group == 1:
            return packed_gemm_plan(K, P) if per_channel else 0
        return w4_dw_plan(int(w[0]), K, P) if group == int(x[1]) == int(w[0]) and int(w[1]) == 1 else 0
    if not per_channel or len(w) != 2:
        return 0
    return packed_gemm_plan(int(x[-1]), _prod(x[:-1]))


def _prod(v) -> int:
    out = 1
    for d in v:
        out *= int(d)
    return out


@scratch("dse_i8_conv__ref")
def _conv_i8_plan(node, shapes) -> int:
    """int8 Conv with group 1 (layout-1 weights: GEMM on an int16 im2col tile) or depthwise
    (group == C_in == C_out: int16 rows of the input in the same budget); other groups 0."""
    x, w, y = shapes[node.inputs[0]], shapes[node.inputs[1]], shapes[node.outputs[0]]
    group = int(node.attrs.get("group", 1) or 1)
    if group != 1 and not (group == int(x[1]) == int(w[0]) and int(w[1]) == 1):
        return 0
    if group == 1:
        return conv_i8_plan(_prod(w[1:]), _prod(y[2:]), int(y[0]))
    return packed_gemm_plan(_prod(w[1:]), _prod(y[2:]))


def conv_i8_imgs_tile(K: int, P: int, N: int) -> int:
    """Columns per tile of the AVX2 int8 Conv's tiles across a batch of small images (P < 16 output
    pixels each, N >= 2): N * P, at most max(16, 65536 // K) and PACK_TILE; 0 when it does not apply
    (runtimes/c/src/requant.h dse_i8_conv_imgs_tile)."""
    if not K or not 0 < P < 16 or N < 2:
        return 0
    return min(N * P, max(65536 // K, 16), PACK_TILE)


def conv_i8_plan(K: int, P: int, N: int) -> int:
    """int8 Conv with group 1: the GEMM plan, or for a batch of small images the tile across them,
    the [T][K] im2row stage and 4096 bytes, if larger (requant.h dse_i8_conv_scratch_plan)."""
    T = conv_i8_imgs_tile(K, P, N)
    return max(packed_gemm_plan(K, P), 2 * (-(-K // 4) * 4) * T + K * T + 4096 if T else 0)


@scratch("dse_i8_gemm__ref")
def _gemm_i8_plan(node, shapes) -> int:
    x = shapes[node.inputs[0]]
    return packed_gemm_plan(int(x[1]), int(x[0])) if len(x) == 2 else 0


@scratch("dse_i8_matmul__ref")
def _matmul_i8_plan(node, shapes) -> int:
    x, w = shapes[node.inputs[0]], shapes[node.inputs[1]]
    if len(w) != 2:
        return 0
    return packed_gemm_plan(int(w[0]), _prod(x[:-1]))


def _pack_floats(k: int) -> int:
    """The optimised float GEMMs copy B into panels a chunk of columns at a time: K x cols floats,
    cols = 65536 // K rounded down to 16, within [16, 256] (runtimes/c/src/internal.h,
    dse__sgemm_pack_floats)."""
    cols = min(max(65536 // k // 16 * 16 if k else 256, 16), 256)
    return k * cols


WINO_UCOST = 64            # kernels/ref/conv.c dse__conv_f32_wino_plan: the weight transform's cost
WINO_U_MAX = 1 << 20       # at most this many transformed weight floats (16 * M * C)


def conv_f32_wino_plan(N: int, C: int, M: int, OH: int, OW: int) -> dict | None:
    """The float Winograd F(2x2, 3x3) variant's plan (dse_f32_conv_wino__avx2) for a 2-D conv with
    group 1, a 3x3 kernel, unit strides and dilations: None when the node does not take it (its
    cost model: 16 * N*T + WINO_UCOST <= 0.8 * 9 * N*OH*OW with T = ceil(OH/2) * ceil(OW/2)
    tiles; 16 * M * C <= WINO_U_MAX), else {"TB", "ld", "L", "bytes"} (runtimes/c/kernels/ref/conv.c
    `dse__conv_f32_wino_plan`, which explains the formula:
    4 * (16*M*C + 16*(C + M)*ld + 8*L + 8))."""
    if min(N, C, M, OH, OW) <= 0 or 16 * M * C > WINO_U_MAX:
        return None
    TH, TW = -(-OH // 2), -(-OW // 2)
    T = TH * TW
    if 10 * (16 * N * T + WINO_UCOST) > 8 * 9 * N * OH * OW:
        return None
    TB = min(max(16384 // C // 16 * 16, 16), 256)
    TB = min(TB, T)
    ld, L = TB + 8, TW + 9
    return {"TB": TB, "ld": ld, "L": L, "bytes": 4 * (16 * M * C + 16 * (C + M) * ld + 8 * L + 8)}


def conv_f32_imgs_plan(N: int, C: int, M: int, K: int, P: int) -> int:
    """The AVX2 float Conv's IMGS path (runtimes/c/kernels/ref/conv.c `dse__conv_f32_imgs_plan`):
    group 1, a batch of N >= 2 images of P < 16 output pixels each, tiles of TW columns across the
    images (TW = roundup(N * P, 16) at most 128 and at most 65536 // (K + M) rounded down to 16, at
    least 16); scratch 4 * (K + M) * TW, 0 when the node does not take it."""
    if N < 2 or not 0 < P < 16 or M <= 0 or C <= 0:
        return 0
    tw = min(-(-N * P // 16) * 16, 128, max(65536 // (K + M) // 16 * 16, 16))
    return 4 * (K + M) * tw


def _conv_f32_scratch(node, shapes) -> int:
    """fp32 Conv: the largest of `_conv_f32_direct`, `conv_f32_imgs_plan` (group 1) and, for a 2-D
    3x3 stride-1 conv with group 1, the Winograd variant's `conv_f32_wino_plan` (C
    `dse__conv_f32_scratch_plan`)."""
    direct = _conv_f32_direct(node, shapes)
    if node.attrs.get("_q"):
        return direct
    x, w, y = shapes[node.inputs[0]], shapes[node.inputs[1]], shapes[node.outputs[0]]
    if 3 <= len(x) <= 5 and len(w) == len(x) == len(y) and int(node.attrs.get("group", 1)) == 1:
        direct = max(direct, conv_f32_imgs_plan(int(x[0]), int(x[1]), int(w[0]), _prod(w[1:]), _prod(y[2:])))
    if len(x) != 4 or len(w) != 4 or len(y) != 4:
        return direct
    a = node.attrs
    k = [int(v) for v in (a.get("kernel_shape") or w[2:])]
    if (k != [3, 3] or int(a.get("group", 1)) != 1 or any(int(v) != 1 for v in (a.get("strides") or [1, 1]))
            or any(int(v) != 1 for v in (a.get("dilations") or [1, 1]))):
        return direct
    p = conv_f32_wino_plan(int(x[0]), int(x[1]), int(w[0]), int(y[2]), int(y[3]))
    return max(direct, p["bytes"]) if p else direct


DW8_PLANES = 320 * 1024   # kernels/ref/conv.c CONV_DW8_PLANES


CONV_BANDS_FLOATS = 262144   # internal.h DSE_CONV_BANDS_FLOATS


def _conv_f32_direct(node, shapes) -> int:
    """fp32 Conv: what the optimised variants use (runtimes/c/kernels/avx2/conv.c; the REF kernel
    uses none, but every variant of a kernel shares its plan): the formula of the C
    `dse__conv_f32_plan` (kernels/ref/conv.c), which explains the paths:
      * 1x1 with unit strides and no padding: 4 * _pack_floats(K) (x's columns copied into
        panels, a chunk at a time);
      * depthwise 1-D/2-D with at most 25 taps and OW < 32, or OW < 64 when sW > 1 or more than
        9 taps and 4 * 8 * PH * PW <= 320 KiB: 4 * 8 * (PH * PW + OH * OW);
      * other depthwise 1-D/2-D: 8 * kH*kW + 4 * (PH * sw * ceil(PW / sw) + 8);
      * other 1-D/2-D with unit strides and OW >= 16: bands of R output rows, 8 * K + 4 * (C/group * NRp * Lw + 16)
        with Lw = OW + (kW-1)*dw, NRp = R + (kH-1)*dh, R the most rows (1..OH) with
        C/group * Lw * NRp <= 65536;
      * other 1-D/2-D (strided or OW < 16): bands of R output rows, 8 * K + 4 * (C/group * kW*sh * NRp * OW + 16)
        with NRp = R + (kH-1)*dh // sh, R the most rows (1..OH) with C/group * kW*sh*OW * NRp <= CONV_BANDS_FLOATS
        (262144; 65536 before session 23, which the x86 kernels still run with);
      * 3-D: 4 * K * min(roundup(P, 16), 128);
    K = C/group * kernel taps, P = output pixels per image; PH, PW the padded height and width."""
    if node.attrs.get("_q"):   # an int8 conv with a float output runs an int8 kernel
        return 0
    x, w, y = shapes[node.inputs[0]], shapes[node.inputs[1]], shapes[node.outputs[0]]
    nd = len(x) - 2
    if nd < 1 or nd > 3 or len(w) != len(x) or len(y) != len(x):
        return 0
    a = node.attrs
    k = [int(v) for v in (a.get("kernel_shape") or w[2:])]
    s = [int(v) for v in (a.get("strides") or [1] * nd)]
    d = [int(v) for v in (a.get("dilations") or [1] * nd)]
    p = [int(v) for v in (a.get("pads") or [0] * (2 * nd))]
    group = int(a.get("group", 1))
    pad3 = lambda v, fill: [fill] * (3 - nd) + list(v)   # noqa: E731 - to (D, H, W) as the C code
    k3, s3, d3, pb3, pe3 = pad3(k, 1), pad3(s, 1), pad3(d, 1), pad3(p[:nd], 0), pad3(p[nd:], 0)
    in3, out3 = pad3([int(v) for v in x[2:]], 1), pad3([int(v) for v in y[2:]], 1)
    cg, mg = int(x[1]) // group, int(w[0]) // group
    K = cg * k3[0] * k3[1] * k3[2]
    if all(kk == 1 and ss == 1 and b == 0 and e == 0 for kk, ss, b, e in zip(k3, s3, pb3, pe3)):
        return 4 * _pack_floats(K)
    flat = in3[0] == 1 and k3[0] == 1 and pb3[0] == 0 and pe3[0] == 0
    sh, sw = s3[1], s3[2]
    taps = k3[1] * k3[2]
    ph, pw = in3[1] + pb3[1] + pe3[1], in3[2] + pb3[2] + pe3[2]
    if flat and cg == 1 and mg == 1 and taps <= 25 and (
            out3[2] < 32 or ((sw > 1 or taps > 9) and out3[2] < 64 and 4 * 8 * ph * pw <= DW8_PLANES)):
        return 4 * 8 * (ph * pw + out3[1] * out3[2])
    if flat and cg == 1 and mg == 1:
        return 8 * k3[1] * k3[2] + 4 * (ph * sw * (-(-pw // sw)) + 8)
    if flat and sh == 1 and sw == 1 and out3[2] >= 16:
        extra = (k3[1] - 1) * d3[1]
        lw = out3[2] + (k3[2] - 1) * d3[2]
        r = 65536 // (cg * lw)
        r = min(r - extra if r > extra else 1, out3[1]) or 1
        return 8 * K + 4 * (cg * (r + extra) * lw + 16)
    if flat:
        extra = (k3[1] - 1) * d3[1] // sh
        r = CONV_BANDS_FLOATS // (cg * k3[2] * sh * out3[2])
        r = min(r - extra if r > extra else 1, out3[1]) or 1
        return 8 * K + 4 * (cg * k3[2] * sh * (r + extra) * out3[2] + 16)
    P = out3[0] * out3[1] * out3[2]
    return 4 * K * min(-(-P // 16) * 16, 128)


scratch("dse_f32_conv__ref")(_conv_f32_scratch)


def _gemm_f32_scratch(node, shapes, w_layout: int = 0) -> int:
    """fp32 Gemm with transB = 0: B's columns packed (_pack_floats(K) floats); transB = 1 reads
    B's rows in place (runtimes/c/kernels/avx2/gemm.c), and so does a B stored in layout 9 (its
    panels: kernels/ref/gemm.c)."""
    if node.attrs.get("_q") or int(node.attrs.get("transB", 0)) or w_layout == LAYOUT_F32_P16:
        return 0
    a = shapes[node.inputs[0]]
    if len(a) != 2:
        return 0
    return 4 * _pack_floats(int(a[0] if int(node.attrs.get("transA", 0)) else a[1]))


def _matmul_f32_scratch(node, shapes, w_layout: int = 0) -> int:
    """fp32 MatMul with N > 1: B's columns packed (_pack_floats(K) floats; kernels/avx2/matmul.c);
    none for a B stored in layout 9 (its panels read in place: kernels/ref/matmul.c)."""
    if node.attrs.get("_q") or w_layout == LAYOUT_F32_P16:
        return 0
    a, b = shapes[node.inputs[0]], shapes[node.inputs[1]]
    if not a or not b or len(b) < 2 or int(b[-1]) <= 1:
        return 0
    return 4 * _pack_floats(int(a[-1]))


scratch("dse_f32_gemm__ref", weight_layout=True)(_gemm_f32_scratch)
scratch("dse_f32_matmul__ref", weight_layout=True)(_matmul_f32_scratch)


# -- ConvTranspose: the optimised variants' blocks (runtimes/c/kernels/avx2/conv_transpose*.c) ----------

CONVT_JC, CONVT_QC = 64, 32   # runtimes/c/src/internal.h: DSE_CONVT_JC, DSE_CONVT_QC


def convtranspose_plan(nd: int, cg: int, mg: int, kh: int, kw: int, sh: int, sw: int, dh: int, dw: int,
                       i8: bool) -> int:
    """Scratch of a 1-D/2-D ConvTranspose's optimised variants (the REF kernels use none; their checks
    report this as the plan): runtimes/c/src/internal.h `dse__convt_plan`, the same formula, which
    explains the two paths. cg / mg: input / output channels per group; (kh, sh, dh) = 1 for 1-D."""
    if nd < 1 or nd > 2 or cg < 1 or mg < 1 or min(kh, kw, sh, sw) < 1 or kh > 1024 or kw > 1024 \
            or dh > 65536 or dw > 65536:
        return 0
    T, kp2 = kh * kw, (cg + 1) // 2
    direct = (kh - 1) * dh < sh and (kw - 1) * dw < sw and T <= 64
    if not direct and (sw > 16 or T > 1024):
        return 0
    kw_words, packw = (kp2 if i8 else cg), i8 or not direct
    mb = 48 // T if direct else min(96 // sw, 48)
    if packw:
        mb = min(mb, 16384 // (T * kw_words))
    mb = min(max(mb, 1), mg)
    w2 = 4 * mb * T * kw_words if packw else 0
    if direct:
        return w2 + (4 * kp2 * CONVT_JC if i8 else 0) + 4 * mb * T * CONVT_JC
    xw = (CONVT_QC + ((kw - 1) * dw + 2 * sw - 1) // sw + 1 + 7) // 8 * 8 + 8
    return w2 + (4 * kp2 * xw if i8 else 0) + 4 * mb * sw * CONVT_QC


def _convtranspose_scratch(i8: bool):
    def f(node, shapes) -> int:
        if not i8 and node.attrs.get("_q"):   # an int8 node with a float output runs the int8 kernel
            return 0
        x, w = shapes[node.inputs[0]], shapes[node.inputs[1]]
        nd = len(x) - 2
        if nd < 1 or nd > 2 or len(w) != len(x):
            return 0
        a = node.attrs
        k = [int(v) for v in (a.get("kernel_shape") or w[2:])]
        s = [int(v) for v in (a.get("strides") or [1] * nd)]
        d = [int(v) for v in (a.get("dilations") or [1] * nd)]
        k, s, d = [1] * (2 - nd) + k, [1] * (2 - nd) + s, [1] * (2 - nd) + d
        group = int(a.get("group", 1) or 1)
        return convtranspose_plan(nd, int(w[0]) // group, int(w[1]), k[0], k[1], s[0], s[1], d[0], d[1], i8)
    return f


scratch("dse_f32_convtranspose__ref")(_convtranspose_scratch(False))
scratch("dse_i8_convtranspose__ref")(_convtranspose_scratch(True))
