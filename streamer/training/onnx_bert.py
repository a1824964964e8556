"""Rebuild a Hugging Face ``BertModel`` folder from a BERT ONNX export and its tokenizer.json.

Written for ``torch.onnx`` exports of ``BertModel`` (e.g. Xenova's, which langchain4j packages
in its Maven jars): the graph's named initializers are the embeddings, biases and
LayerNorms, while every Linear weight is an anonymous ``onnx::MatMul_N`` initializer, stored
transposed. Each such weight is named after the ``.bias`` added to its MatMul's output; the
number of heads and the LayerNorm epsilon are read from the graph. Anything that does not
fit that shape fails with :class:`EncoderError` rather than producing a wrong model, and
:func:`max_abs_diff` compares the result with the ONNX graph itself.

numpy, onnx, onnxruntime, torch and transformers are imported inside the functions
(training-only code paths).
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel

from streamer.network.encoder import EncoderError

if TYPE_CHECKING:
    import numpy as np
    import onnx

ANONYMOUS = "onnx::"
OUTPUT = "last_hidden_state"
# Not parameters: torch exports this registered buffer when it is used as a constant.
_BUFFERS = frozenset({"embeddings.position_ids"})
_SPECIAL_TOKENS = {
    "unk_token": "[UNK]", "sep_token": "[SEP]", "pad_token": "[PAD]", "cls_token": "[CLS]",
    "mask_token": "[MASK]",
}
# The parameters of one BertLayer, without the ``.weight``/``.bias`` suffix.
_LAYER_MODULES = (
    "attention.self.query", "attention.self.key", "attention.self.value",
    "attention.output.dense", "attention.output.LayerNorm", "intermediate.dense",
    "output.dense", "output.LayerNorm",
)
_EMBEDDING_MODULES = (
    "embeddings.word_embeddings", "embeddings.position_embeddings",
    "embeddings.token_type_embeddings",
)


class BertShape(BaseModel):
    """What the conversion read from the graph (also recorded in the provenance)."""

    layers: int
    hidden: int
    heads: int
    intermediate: int
    vocab: int
    max_positions: int
    layer_norm_eps: float
    tensors: int


@dataclass
class _Graph:
    """An ONNX graph with the look-ups the conversion needs."""

    proto: onnx.GraphProto
    inits: dict[str, np.ndarray]
    producers: dict[str, onnx.NodeProto] = field(default_factory=dict)
    consumers: dict[str, list[onnx.NodeProto]] = field(default_factory=dict)

    @classmethod
    def load(cls, path: Path) -> _Graph:
        import onnx
        from onnx import numpy_helper

        try:
            proto = onnx.load(str(path)).graph
        except Exception as exc:  # onnx raises DecodeError and friends
            raise EncoderError(f"{path} is not a readable ONNX model: {exc}") from exc
        graph = cls(proto, {t.name: numpy_helper.to_array(t) for t in proto.initializer})
        for node in proto.node:
            for out in node.output:
                graph.producers[out] = node
            for name in node.input:
                graph.consumers.setdefault(name, []).append(node)
        return graph

    def nodes(self, op_type: str) -> Iterator[onnx.NodeProto]:
        return (n for n in self.proto.node if n.op_type == op_type)

    def constant(self, name: str) -> np.ndarray | None:
        """The value of ``name`` when it is an initializer or a Constant node's output."""
        from onnx import numpy_helper

        if name in self.inits:
            return self.inits[name]
        node = self.producers.get(name)
        if node is not None and node.op_type == "Constant" and node.attribute:
            return numpy_helper.to_array(node.attribute[0].t)
        return None


def _fail(path: Path, why: str) -> EncoderError:
    return EncoderError(f"{path} does not look like a torch BertModel ONNX export: {why}")


def _matmul_weights(graph: _Graph, path: Path) -> dict[str, np.ndarray]:
    """Each anonymous MatMul weight, named after the one bias added to the MatMul's output
    and transposed from ONNX's ``x @ W`` (in, out) to torch Linear's (out, in)."""
    import numpy as np

    weights: dict[str, np.ndarray] = {}
    for node in graph.nodes("MatMul"):
        weight = node.input[1]
        if not (weight.startswith(ANONYMOUS) and weight in graph.inits):
            continue  # activations times activations (attention scores)
        biases = [
            name
            for add in graph.consumers.get(node.output[0], [])
            if add.op_type == "Add"
            for name in add.input
            if name in graph.inits and name.endswith(".bias")
        ]
        if len(biases) != 1:
            raise _fail(path, f"MatMul {node.name!r} feeds {len(biases)} named biases, not one")
        name = biases[0].removesuffix(".bias") + ".weight"
        if name in weights:
            raise _fail(path, f"two MatMul weights would both be called {name}")
        weights[name] = np.ascontiguousarray(graph.inits[weight].T)
    return weights


def _state_dict(graph: _Graph, path: Path) -> dict[str, np.ndarray]:
    named = {
        k: v for k, v in graph.inits.items() if not k.startswith(ANONYMOUS) and k not in _BUFFERS
    }
    return {**named, **_matmul_weights(graph, path)}


def _layer_count(state: dict[str, np.ndarray]) -> int:
    return len({int(k.split(".")[2]) for k in state if k.startswith("encoder.layer.")})


def _check_keys(state: dict[str, np.ndarray], layers: int, path: Path) -> None:
    """Exactly BertModel's parameters (without the pooler, which the exports drop)."""
    modules = [*_EMBEDDING_MODULES, "embeddings.LayerNorm"]
    modules += [f"encoder.layer.{i}.{m}" for i in range(layers) for m in _LAYER_MODULES]
    expected = {f"{m}.weight" for m in modules}
    expected |= {f"{m}.bias" for m in modules if m not in _EMBEDDING_MODULES}
    missing, extra = sorted(expected - state.keys()), sorted(state.keys() - expected)
    if missing or extra:
        raise _fail(path, f"missing {missing[:4]}, unexpected {extra[:4]}")


def _shape_dims(graph: _Graph, name: str) -> list[int | None]:
    """A Reshape target: a constant, or a Concat of (partly) constant pieces."""
    value = graph.constant(name)
    if value is not None:
        return [int(v) for v in value.ravel()]
    node = graph.producers.get(name)
    if node is None or node.op_type != "Concat":
        return []
    pieces = [graph.constant(i) for i in node.input]
    return [int(p.ravel()[0]) if p is not None and p.size == 1 else None for p in pieces]


def _num_heads(graph: _Graph, hidden: int, path: Path) -> int:
    """From the first self-attention's [batch, seq, heads, head_dim] Reshape."""
    for node in graph.nodes("Reshape"):
        if "layer.0/attention/self" not in node.name:
            continue
        dims = _shape_dims(graph, node.input[1])
        if len(dims) == 4 and dims[2] and dims[3] and dims[2] * dims[3] == hidden:
            return dims[2]
    raise _fail(path, "no [batch, seq, heads, head_dim] Reshape in the first self-attention")


def _layer_norm_eps(graph: _Graph, path: Path) -> float:
    """A fused LayerNormalization's epsilon, or the constant added to the variance of the
    embeddings' decomposed LayerNorm (opset < 17 exports)."""
    import numpy as np

    eps: float | None = None
    for node in graph.proto.node:
        if node.op_type == "LayerNormalization":
            # 1e-5 is the operator's default when the attribute is absent.
            eps = next((a.f for a in node.attribute if a.name == "epsilon"), 1e-5)
            break
        if node.op_type == "Add" and node.name == "/embeddings/LayerNorm/Add":
            values = [v for v in map(graph.constant, node.input) if v is not None]
            if len(values) == 1 and values[0].size == 1:
                eps = float(values[0].ravel()[0])
            break
    if eps is None:
        raise _fail(path, "no LayerNorm epsilon found")
    # The shortest decimal of the float32 (1e-12, not 9.99999996e-13).
    return float(str(np.float32(eps)))


def _check_graph(graph: _Graph, path: Path) -> None:
    outputs = [o.name for o in graph.proto.output]
    if OUTPUT not in outputs:
        raise _fail(path, f"outputs are {outputs}, not {OUTPUT}")
    # BERT's exact GELU exports as Erf; the tanh approximation would need another hidden_act.
    if next(graph.nodes("Erf"), None) is None:
        raise _fail(path, "no Erf node (exact GELU)")


def _bert_config(shape: BertShape, pad_id: int, type_vocab: int) -> dict[str, Any]:
    return {
        "architectures": ["BertModel"],
        "model_type": "bert",
        "attention_probs_dropout_prob": 0.1,
        "hidden_dropout_prob": 0.1,
        "hidden_act": "gelu",
        "hidden_size": shape.hidden,
        "initializer_range": 0.02,
        "intermediate_size": shape.intermediate,
        "layer_norm_eps": shape.layer_norm_eps,
        "max_position_embeddings": shape.max_positions,
        "num_attention_heads": shape.heads,
        "num_hidden_layers": shape.layers,
        "pad_token_id": pad_id,
        "position_embedding_type": "absolute",
        "type_vocab_size": type_vocab,
        "vocab_size": shape.vocab,
    }


def _write_json(path: Path, data: dict[str, Any]) -> None:
    path.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")


def write_tokenizer(tokenizer_json: Path, out: Path, max_length: int) -> int:
    """The fast tokenizer as shipped, plus the files that make it a ``BertTokenizer``
    (vocab.txt, configs); returns the padding token's id."""
    raw = tokenizer_json.read_bytes()
    spec = json.loads(raw)
    model = spec.get("model", {})
    if model.get("type") != "WordPiece":
        raise EncoderError(f"{tokenizer_json}: a WordPiece tokenizer is required")
    vocab = sorted(model["vocab"].items(), key=lambda kv: kv[1])
    if [i for _, i in vocab] != list(range(len(vocab))):
        raise EncoderError(f"{tokenizer_json}: vocabulary ids are not 0..{len(vocab) - 1}")
    ids = dict(vocab)
    absent = sorted(t for t in _SPECIAL_TOKENS.values() if t not in ids)
    if absent:
        raise EncoderError(f"{tokenizer_json}: no {absent} in the vocabulary")
    (out / "tokenizer.json").write_bytes(raw)  # byte for byte: its sha256 is the jar member's
    (out / "vocab.txt").write_text("".join(f"{t}\n" for t, _ in vocab), encoding="utf-8")
    lower = bool((spec.get("normalizer") or {}).get("lowercase", True))
    _write_json(out / "tokenizer_config.json", {
        "tokenizer_class": "BertTokenizer", "do_lower_case": lower,
        "model_max_length": max_length, "clean_up_tokenization_spaces": True,
        "tokenize_chinese_chars": True, "strip_accents": None, **_SPECIAL_TOKENS,
    })
    _write_json(out / "special_tokens_map.json", dict(_SPECIAL_TOKENS))
    return ids[_SPECIAL_TOKENS["pad_token"]]


def convert(onnx_path: Path, tokenizer_json: Path, out: Path) -> BertShape:
    """Write a BertModel folder (config.json, model.safetensors, tokenizer files) into the
    existing directory ``out``."""
    from safetensors.numpy import save

    graph = _Graph.load(onnx_path)
    _check_graph(graph, onnx_path)
    state = _state_dict(graph, onnx_path)
    layers = _layer_count(state)
    _check_keys(state, layers, onnx_path)
    words = state["embeddings.word_embeddings.weight"]
    shape = BertShape(
        layers=layers,
        hidden=int(words.shape[1]),
        heads=_num_heads(graph, int(words.shape[1]), onnx_path),
        intermediate=int(state["encoder.layer.0.intermediate.dense.weight"].shape[0]),
        vocab=int(words.shape[0]),
        max_positions=int(state["embeddings.position_embeddings.weight"].shape[0]),
        layer_norm_eps=_layer_norm_eps(graph, onnx_path),
        tensors=len(state),
    )
    pad_id = write_tokenizer(tokenizer_json, out, shape.max_positions)
    type_vocab = int(state["embeddings.token_type_embeddings.weight"].shape[0])
    _write_json(out / "config.json", _bert_config(shape, pad_id, type_vocab))
    # "pt": transformers loads the file as torch weights. Serialised in memory and written
    # with open() (save_file leaves it 0600; the cache is shared by the user's processes).
    (out / "model.safetensors").write_bytes(save(state, metadata={"format": "pt"}))
    return shape


def max_abs_diff(folder: Path, onnx_path: Path, texts: Sequence[str]) -> float:
    """Largest |difference| of ``last_hidden_state`` between the folder loaded with
    transformers and the ONNX graph under onnxruntime, on ``texts`` padded into one batch."""
    import numpy as np
    import onnxruntime as ort
    import torch
    from transformers import AutoModel, AutoTokenizer
    from transformers.utils import logging as hf_logging

    tokenizer = AutoTokenizer.from_pretrained(str(folder), local_files_only=True)
    # The exports have no pooler: its freshly initialised weights are expected, not news;
    # nor is a progress bar for loading 130 MB worth showing.
    verbosity, bars = hf_logging.get_verbosity(), hf_logging.is_progress_bar_enabled()
    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    try:
        model = AutoModel.from_pretrained(
            str(folder), local_files_only=True, attn_implementation="eager"
        ).eval()
    finally:
        hf_logging.set_verbosity(verbosity)
        if bars:
            hf_logging.enable_progress_bar()
    batch = tokenizer(list(texts), padding=True, return_tensors="np")
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1  # a few short texts; leave the cores to other work
    session = ort.InferenceSession(str(onnx_path), options, providers=["CPUExecutionProvider"])
    wanted = [i.name for i in session.get_inputs()]
    ids = batch["input_ids"].astype(np.int64)
    feeds = {
        name: batch[name].astype(np.int64) if name in batch else np.zeros_like(ids)
        for name in wanted
    }
    (expected,) = session.run([OUTPUT], feeds)
    with torch.inference_mode():
        got = model(**{k: torch.from_numpy(v) for k, v in feeds.items()}).last_hidden_state
    return float(np.abs(got.numpy() - expected).max())
