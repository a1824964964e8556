"""The market topic taxonomy: Twitter Financial News' 20 topics, and Reuters R8 mapped onto it.

The topic head speaks one language for news and chat: the 20 topic names of the
``tfn-topic`` set, exactly as its data card writes them. Reuters R8 stories train the
same head through :data:`R8_TO_TFN`, the one place that says which TFN topic each R8
topic becomes and why. The reasons were checked against the TFN annotators' own
choices: for each R8 topic, the TFN training tweets on the same subject were counted by
their label (``python -m streamer.taxonomy`` prints those counts again).

Both the trained bundles (``streamer.training.data``) and the Naive Bayes baseline
(``streamer.score.baseline``) read it, so it lives beside them, not inside either.
No R8 topic is trained as a topic of its own: every one fits a TFN topic that the
annotators already use for the same kind of story, so the taxonomy needs none.
"""

from __future__ import annotations

import csv
import re
import sys
from collections import Counter
from pathlib import Path
from typing import NamedTuple


class Mapping(NamedTuple):
    topic: str
    reason: str


# Keys: the R8 names as ``reuters-topics/train.csv`` writes them, and Reuters' own short
# names (earn, acq, ...) so that a file labelled either way maps.
_R8: dict[str, Mapping] = {
    "earnings": Mapping(
        "Earnings", "results and dividends declared with them: TFN's Earnings"),
    "mergers-acquisitions": Mapping(
        "M&A | Investments", "takeovers, stakes and asset sales: TFN's M&A | Investments"),
    "energy-oil": Mapping(
        "Energy | Oil", "crude prices, OPEC, output: TFN's Energy | Oil"),
    "currencies": Mapping(
        "Currencies", "exchange rates and interventions: TFN's Currencies"),
    "interest-rates": Mapping(
        "Fed | Central Banks",
        "mostly central-bank and money-market rate moves; TFN tweets on interest rates are "
        "labelled Fed | Central Banks 206 times, Macro 62, Markets 29"),
    "trade": Mapping(
        "Macro",
        "trade balances, tariffs and trade talks; TFN tweets on tariffs, exports and trade "
        "deficits are labelled Macro 59 times, Politics 2"),
    "commodities-grain": Mapping(
        "Macro",
        "crop reports, farm policy and grain export deals; TFN tweets on wheat, corn and "
        "grain are labelled Macro 63 times, General News | Opinion 19; Gold | Metals | "
        "Materials never"),
    "shipping": Mapping(
        "General News | Opinion",
        "ferries, canal queues, port strikes and Gulf tanker attacks: events, not company "
        "news. TFN tweets with shipping words are mostly company news (a fleet bought, a "
        "product that ships: Company | Product News 16); those about events (a port shutting "
        "its gates) are General News | Opinion. TFN has no shipping topic and a risk desk "
        "needs none, so no 21st topic is made for 108 stories"),
}
_SHORT = {"earn": "earnings", "acq": "mergers-acquisitions", "crude": "energy-oil",
          "money-fx": "currencies", "interest": "interest-rates",
          "grain": "commodities-grain", "ship": "shipping"}
R8_TO_TFN: dict[str, Mapping] = {**_R8, **{short: _R8[long] for short, long in _SHORT.items()}}


def r8_label_map() -> dict[str, str]:
    """R8 label -> TFN topic, for ``DatasetSpec.label_map``."""
    return {r8: m.topic for r8, m in R8_TO_TFN.items()}


def r8_label_reasons() -> dict[str, str]:
    """R8 label -> why it maps there (recorded in the manifest, shown on the card)."""
    return {r8: m.reason for r8, m in R8_TO_TFN.items()}


# The subjects counted to check each mapping against the TFN annotators.
EVIDENCE_PATTERNS: dict[str, str] = {
    "interest-rates": r"\b(interest rate|prime rate|rate cut|rate hike)",
    "trade": r"\b(tariff|trade deficit|trade surplus|trade war|exports)",
    "commodities-grain": r"\b(wheat|corn|grain|soybean|crop|farm)",
    "shipping": r"\b(shipping|freight|tanker|port strike|vessel|container ship)",
}


def evidence(tfn_topic_csv: Path) -> dict[str, Counter[str]]:
    """For each R8 topic in :data:`EVIDENCE_PATTERNS`: TFN labels of the tweets on it."""
    with tfn_topic_csv.open(newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    return {
        r8: Counter(r["label"] for r in rows if re.search(pattern, r["text"], re.I))
        for r8, pattern in EVIDENCE_PATTERNS.items()
    }


def main(argv: list[str]) -> int:
    from streamer.settings import Settings

    data = Settings().scoring.labelled_data_dir
    path = Path(argv[0]) if argv else data / "tfn-topic" / "train.csv"
    for r8, counts in evidence(path).items():
        top = ", ".join(f"{label} {n}" for label, n in counts.most_common(5))
        print(f"{r8} -> {R8_TO_TFN[r8].topic}: TFN tweets on it: {top}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
