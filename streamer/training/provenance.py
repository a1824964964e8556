"""Where the model's inputs come from and on what terms: the shared data sets and the base
encoder, for the model card's licence, citation and Hugging Face metadata.

The terms are those of ``shared/data/README.md`` (data) and the base model's own card; a
data set or base not listed here (a user's own file, another encoder) is reported as of
unknown terms rather than guessed. The bundle's licence is derived from the terms of what
it was actually built from (:func:`bundle_licence`).
"""

from __future__ import annotations

import re
from pathlib import Path

from pydantic import BaseModel, Field

from streamer.network.encoder import BASE_PACKAGE
from streamer.training.encoders import ENCODERS


class Terms(BaseModel):
    """The terms one input (data set or base encoder) comes with."""

    title: str
    licence: str = Field(description="As its publisher words it, e.g. 'CC BY-NC-SA 3.0'.")
    hf_license: str | None = Field(
        None, description="The Hugging Face metadata licence id; None: no standard id."
    )
    hf_id: str | None = Field(None, description="Its Hugging Face hub id, where it has one.")
    permissive: bool = Field(
        description="False: the terms bind what is trained on it (non-commercial, "
        "share-alike, research only...)."
    )
    citation: str = ""


UNKNOWN_LICENCE = "unknown: check the data's own terms"
PERMISSIVE = frozenset({"MIT", "Apache-2.0"})

# Keyed by DatasetSpec.name (training/data.py's default_specs).
DATA_TERMS: dict[str, Terms] = {
    "tfn-sentiment": Terms(
        title="Twitter Financial News, sentiment (zeroshot)",
        licence="MIT",
        hf_license="mit",
        hf_id="zeroshot/twitter-financial-news-sentiment",
        permissive=True,
        citation="zeroshot, twitter-financial-news-sentiment, Hugging Face data set (2022)",
    ),
    "phrasebank": Terms(
        title="Financial PhraseBank v1.0, 50% agreement",
        licence="CC BY-NC-SA 3.0",
        hf_license="cc-by-nc-sa-3.0",
        hf_id="takala/financial_phrasebank",
        permissive=False,
        citation="P. Malo, A. Sinha, P. Korhonen, J. Wallenius and P. Takala, \"Good debt or "
        "bad debt: Detecting semantic orientations in economic texts\", JASIST 65(4), 2014",
    ),
    "tfn-topic": Terms(
        title="Twitter Financial News, topic (zeroshot)",
        licence="MIT",
        hf_license="mit",
        hf_id="zeroshot/twitter-financial-news-topic",
        permissive=True,
        citation="zeroshot, twitter-financial-news-topic, Hugging Face data set (2022)",
    ),
    "reuters-topics": Terms(
        title="Reuters-21578 Distribution 1.0, ModApte split, R8 subset",
        licence="free for research use (copyright Reuters Ltd.)",
        hf_id="ucirvine/reuters21578",
        permissive=False,
        citation="D. D. Lewis, Reuters-21578 text categorization test collection, "
        "Distribution 1.0 (Reuters Ltd. and Carnegie Group)",
    ),
}

# The packaged default base (encoder.default_base); its own card says apache-2.0.
DEFAULT_BASE_TERMS = Terms(
    title="sentence-transformers/all-MiniLM-L6-v2",
    licence="Apache-2.0",
    hf_license="apache-2.0",
    hf_id="sentence-transformers/all-MiniLM-L6-v2",
    permissive=True,
    citation="N. Reimers and I. Gurevych, \"Sentence-BERT: Sentence Embeddings using "
    "Siamese BERT-Networks\", EMNLP 2019 (all-MiniLM-L6-v2, sentence-transformers)",
)


def data_terms(name: str) -> Terms | None:
    return DATA_TERMS.get(name)


def base_terms(base: str) -> Terms | None:
    """The terms of the base encoder: the packaged default, a hub id, or a local model
    folder whose README front matter names its licence; None when nothing says."""
    path = Path(base)
    if BASE_PACKAGE in path.parts or base == DEFAULT_BASE_TERMS.hf_id:
        return DEFAULT_BASE_TERMS
    packaged = ENCODERS.get(path.name)
    if packaged is not None and (path / "provenance.json").is_file():
        # Fetched by streamer.training.encoders: its registry entry knows the upstream terms.
        return Terms(title=packaged.upstream, licence=packaged.licence,
                     hf_license=packaged.licence.lower(), hf_id=packaged.upstream,
                     permissive=packaged.licence in PERMISSIVE)
    readme = path / "README.md"
    if readme.is_file():
        found = re.search(r"^license:\s*(\S+)\s*$", _front_matter(readme.read_text("utf-8")),
                          re.M)
        if found:
            return Terms(title=path.name, licence=found[1], hf_license=found[1],
                         permissive=False)  # unknown to us: not assumed permissive
    return None


def _front_matter(text: str) -> str:
    if not text.startswith("---"):
        return ""
    end = text.find("\n---", 3)
    return text[3:end] if end > 0 else ""


class BundleLicence(BaseModel):
    """What the Hugging Face metadata says of the whole bundle, and why."""

    hf_license: str = Field(description="A licence id, or 'other' with license_name.")
    license_name: str | None = None
    binding: list[str] = Field(
        default_factory=list, description="The inputs whose terms bind the bundle."
    )


def bundle_licence(datasets: list[str], base: str) -> BundleLicence:
    """The licence a model trained on ``datasets`` from ``base`` can carry.

    Weights trained on a data set inherit its restrictions, so any non-permissive (or
    unknown) input decides: one with a standard id gives that id, several give 'other'
    named after all of them. Only permissive inputs: the base's licence.
    """
    binding: list[tuple[str, Terms | None]] = [
        (name, data_terms(name)) for name in datasets
        if (t := data_terms(name)) is None or not t.permissive
    ]
    if not binding:
        terms = base_terms(base)
        return BundleLicence(hf_license=(terms.hf_license if terms else None) or "other",
                             license_name=None if terms and terms.hf_license else "unknown")
    names = [name for name, _ in binding]
    ids = [t.hf_license if t and t.hf_license else _slug(name) for name, t in binding]
    if len(binding) == 1 and binding[0][1] is not None and binding[0][1].hf_license:
        return BundleLicence(hf_license=ids[0], binding=names)
    return BundleLicence(hf_license="other", license_name="-and-".join(ids), binding=names)


def _slug(name: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-") + "-terms"
