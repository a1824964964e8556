"""A trained model in Hugging Face layout: ``<bundle>/hf/<model>/``.

The folder is what ``transformers`` (and the exporters of ``optimum``) read:

- ``config.json`` + ``model.safetensors``: the fine-tuned encoder (only the layers the
  model kept), loadable with ``AutoModel.from_pretrained(folder)`` offline;
- ``tokenizer.json`` + ``tokenizer_config.json`` + ``special_tokens_map.json``: the base's
  tokenizer (the ids the bundle's ``tokenizer.json`` gives), for ``AutoTokenizer``;
- ``heads.safetensors`` + ``heads.json``: the sentiment and topic heads, one ``Linear``
  each over the pooled encoder output, with their labels, pooling and truncation.

No ``AutoModelForSequenceClassification`` form: BERT's classification head reads the
[CLS] vector through the pretrained pooler (dense + tanh), which neither of this model's
poolings (the masked mean, or the raw [CLS] vector) goes through. :func:`usage` is the
documented way to apply the heads; the tests run it.

Cheap by design: it saves weights the build already trained (no training, no tracing).
torch and transformers are imported inside the functions, as everywhere in the build.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

from pydantic import BaseModel, Field

from streamer.atomic import atomic_dir
from streamer.bundle.manifest import HF_DIR, HfFolder
from streamer.network.encoder import Pooling

if TYPE_CHECKING:
    from streamer.network.heads import ModelMeta, MultiTaskModel

HEADS_WEIGHTS = "heads.safetensors"
HEADS_CONFIG = "heads.json"
SPECIAL_TOKENS = "special_tokens_map.json"


class HfHeads(BaseModel):
    """``heads.json``: how the encoder's output becomes the bundle's probabilities."""

    pooling: Pooling = Field(
        description="'mean': mean of the last hidden states over the attention mask; "
        "'cls': the last hidden state of the first ([CLS]) token."
    )
    labels: dict[str, list[str]] = Field(
        description="Head -> its labels, in the order of the rows of <head>.weight."
    )
    max_length: dict[str, int] = Field(
        description="Truncation in tokens per source (chat, news), as the bundle scores."
    )
    weights: str = HEADS_WEIGHTS
    formula: str = "probs[head] = softmax(pooled @ weights[head.weight].T + weights[head.bias])"
    layers_from_base: list[int] = Field(description="The base encoder's blocks the model kept.")


def hf_path(model: str) -> str:
    """The folder of ``model`` relative to the bundle."""
    return f"{HF_DIR}/{model}"


def export_hf(
    model: MultiTaskModel, meta: ModelMeta, name: str, bundle: Path, base: str,
    max_length: dict[str, int],
) -> HfFolder:
    """Write ``model`` to ``<bundle>/hf/<name>/`` (replacing a previous export)."""
    from safetensors.torch import save_file
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(base)
    # A bare call truncates like the longest source; heads.json has each source's length.
    tokenizer.model_max_length = max(max_length.values())
    heads = HfHeads(
        pooling=meta.pooling, labels=meta.labels, max_length=max_length,
        layers_from_base=meta.layers_from_base,
    )
    with atomic_dir(bundle / hf_path(name)) as tmp:
        model.encoder.save_pretrained(tmp, safe_serialization=True)
        tokenizer.save_pretrained(tmp)
        if not (tmp / SPECIAL_TOKENS).exists():
            # transformers 5 folds it into tokenizer_config.json; 4.x readers look for it.
            (tmp / SPECIAL_TOKENS).write_text(
                json.dumps(tokenizer.special_tokens_map, indent=2), "utf-8"
            )
        tensors = {
            f"{head}.{param}": t.detach().cpu().contiguous()
            for head in meta.labels
            for param, t in model.heads[head].state_dict().items()
        }
        save_file(tensors, str(tmp / HEADS_WEIGHTS))
        (tmp / HEADS_CONFIG).write_text(heads.model_dump_json(indent=2), "utf-8")
        files = sorted(p.name for p in tmp.iterdir())
    return HfFolder(
        model=name, path=hf_path(name), role="teacher" if name == "teacher" else "student",
        layers=len(meta.layers_from_base), files=files,
    )


def usage(folder: str, texts: list[str] | None = None, source: str = "chat") -> str:
    """Python that scores ``texts`` with the HF folder alone (torch, transformers,
    safetensors): the snippet the card shows, and the tests run. It leaves the
    probabilities per head in ``probs``."""
    texts = texts or ["$TSLA to the moon!!", "Oil prices fell after OPEC raised output."]
    return f'''import json

import torch
from safetensors.torch import load_file
from transformers import AutoModel, AutoTokenizer

folder = {folder!r}
texts = {texts!r}
source = {source!r}  # "chat" or "news": the truncation the bundle uses for it
heads = json.load(open(f"{{folder}}/heads.json"))
weights = load_file(f"{{folder}}/heads.safetensors")
tokenizer = AutoTokenizer.from_pretrained(folder)
encoder = AutoModel.from_pretrained(folder).eval()
batch = tokenizer(texts, truncation=True, max_length=heads["max_length"][source],
                  padding=True, return_tensors="pt")
with torch.no_grad():
    hidden = encoder(**batch).last_hidden_state
    mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)
    pooled = (hidden * mask).sum(1) / mask.sum(1) if heads["pooling"] == "mean" else hidden[:, 0]
    probs = {{
        head: torch.softmax(pooled @ weights[f"{{head}}.weight"].T + weights[f"{{head}}.bias"], -1)
        for head in heads["labels"]
    }}
for head, labels in heads["labels"].items():
    print(head, [labels[i] for i in probs[head].argmax(-1)])
'''
