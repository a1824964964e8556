"""Judge alerts on real news: labelled episodes caught, and the rest counted against a budget.

The targets (issue 29): every labelled episode is caught, each with its delay from its
first story; and at most ``budget_per_week`` alerts a week per scope kind, outside the
labelled episodes, whose evidence a reader would not call negative news.

A tool cannot read evidence as a person does, so every alert outside the labelled
episodes counts against the budget unless a person recorded that its evidence is
negative news (a reviews file, :func:`streamer.evaluation.labels.read_reviews`). An
alert whose evidence cites a story the labeller cited for an episode belongs to that
episode whatever its scope key: the same news, seen on another scope.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Literal

from pydantic import BaseModel, Field

from streamer.evaluation.labels import Review, SpanLabel
from streamer.evaluation.rows import AlertRow
from streamer.schemas.alerts import SEVERITY_ORDER

Standing = Literal["episode", "shared story", "negative news", "not negative", "unreviewed"]
# Standings that do not count against the false-alert budget.
CLEARED: frozenset[str] = frozenset({"episode", "shared story", "negative news"})
WEEK_S = 7 * 86_400.0
# An alert may come this long after an episode's labelled end and still belong to it: a
# long window decides at its slot boundaries, up to a slot after the last story.
MATCH_AFTER_S = 1_800.0


class EpisodeResult(BaseModel):
    name: str
    scope: str
    key: str
    start: datetime
    end: datetime
    first_story: datetime
    caught: bool
    alert_id: str | None = None
    detected: datetime | None = None
    severity: str | None = Field(None, description="Highest severity its alert reached.")
    delay_s: float | None = Field(None, description="Alert - first story, event time.")
    cited_by: list[str] = Field(
        default_factory=list, description="Alerts on other scope keys whose evidence cites "
        "the episode's stories ('<scope> <key> <time>'): seen, but not where labelled.")


class JudgedAlert(BaseModel):
    """One alert episode (fired, with its escalations), and where it stands."""

    row: AlertRow = Field(description="Its first fired (or escalated) record.")
    peak_severity: str
    standing: Standing
    episode: str | None = Field(None, description="The labelled episode it belongs to.")
    note: str = ""


class KindRate(BaseModel):
    """Alerts of one scope kind over the stream."""

    scope: str
    alerts: int
    per_day: float
    per_week: float
    outside: int = Field(description="Not part of a labelled episode.")
    negative_news: int = Field(description="Outside, reviewed as negative news.")
    not_negative: int = Field(description="Outside, reviewed as not negative.")
    unreviewed: int = Field(description="Outside, not reviewed.")
    allowed: float = Field(description="Budget over the stream: per week x weeks (one week "
                           "at least).")

    @property
    def counted(self) -> int:
        """Against the budget: reviewed as not negative, or not reviewed."""
        return self.not_negative + self.unreviewed

    @property
    def within(self) -> bool:
        return self.counted <= self.allowed + 1e-9


class RealReport(BaseModel):
    start: datetime
    end: datetime
    episodes: list[EpisodeResult]
    alerts: list[JudgedAlert]
    kinds: list[KindRate]
    weekly: list[tuple[datetime, dict[str, int]]] = Field(
        description="Per week from the stream's start: alerts per scope kind.")
    budget_per_week: float
    stale_reviews: list[str] = Field(
        default_factory=list, description="Reviewed episode ids that match no alert.")

    @property
    def days(self) -> float:
        return (self.end - self.start).total_seconds() / 86_400.0

    @property
    def recall_measured(self) -> bool:
        return bool(self.episodes)

    @property
    def missed(self) -> list[EpisodeResult]:
        return [e for e in self.episodes if not e.caught]

    @property
    def budget_met(self) -> bool:
        return all(k.within for k in self.kinds)

    @property
    def unreviewed(self) -> int:
        return sum(k.unreviewed for k in self.kinds)


def _same_key(a: str, b: str) -> bool:
    return a.casefold() == b.casefold()


def _in_episode(row: AlertRow, lb: SpanLabel, after_s: float) -> bool:
    return (row.scope == lb.scope and _same_key(row.key, lb.key)
            and lb.start.timestamp() <= row.detected_s <= lb.end.timestamp() + after_s)


def judge_real(
    labels: Sequence[SpanLabel],
    rows: Iterable[AlertRow],
    *,
    span: tuple[float, float],
    scope_kinds: Iterable[str] = (),
    reviews: Mapping[str, Review] | None = None,
    match_after_s: float = MATCH_AFTER_S,
    budget_per_week: float = 2.0,
) -> RealReport:
    """Match each labelled episode with the first alert on its scope key detected in
    [start, end + ``match_after_s``]; judge every other alert episode by the reviews.

    ``scope_kinds`` are the kinds the detector watched: each gets a rate (zero alerts
    too); kinds that only the alerts or labels name are added."""
    reviews = reviews or {}
    by_episode: dict[str, list[AlertRow]] = defaultdict(list)
    for r in sorted(rows, key=lambda r: (r.detected_s, r.alert_id)):
        if r.fired:
            by_episode[r.episode_id].append(r)
    groups = sorted(by_episode.values(), key=lambda g: (g[0].detected_s, g[0].alert_id))

    episodes = []
    for lb in labels:
        match = next((g for g in groups if _in_episode(g[0], lb, match_after_s)), None)
        first = lb.first_story or lb.start
        cited = [f"{g[0].scope} {g[0].key} {g[0].detected:%m-%d %H:%M}" for g in groups
                 if g is not match and lb.story_ids & {e.event_id for r in g for e in r.evidence}]
        episodes.append(EpisodeResult(
            name=lb.title, scope=lb.scope, key=lb.key, start=lb.start, end=lb.end,
            first_story=first, caught=match is not None,
            alert_id=None if match is None else match[0].alert_id,
            detected=None if match is None else match[0].detected,
            severity=None if match is None else _peak(match),
            delay_s=None if match is None else match[0].detected_s - first.timestamp(),
            cited_by=cited,
        ))

    judged = []
    for g in groups:
        head = g[0]
        story_ids = {e.event_id for r in g for e in r.evidence}
        own = next((lb for lb in labels if _in_episode(head, lb, match_after_s)), None)
        shared = next((lb for lb in labels if lb.story_ids & story_ids), None)
        review = reviews.get(head.episode_id)
        standing: Standing
        if own is not None:
            standing, episode, note = "episode", own.title, ""
        elif shared is not None:
            standing, episode, note = "shared story", shared.title, ""
        elif review is not None:
            standing, episode, note = review.verdict, None, review.note
        else:
            standing, episode, note = "unreviewed", None, ""
        judged.append(JudgedAlert(row=head, peak_severity=_peak(g), standing=standing,
                                  episode=episode, note=note))

    t0, t1 = span
    days = max(t1 - t0, 1.0) / 86_400.0
    weeks = days / 7.0
    # A stream shorter than a week is allowed a week's budget: a rate read off two hours
    # would fail on the first alert.
    budget_weeks = max(weeks, 1.0)
    kinds = sorted({*scope_kinds, *(j.row.scope for j in judged), *(lb.scope for lb in labels)}
                   - {"all"})
    rates = []
    for kind in kinds:
        mine = [j for j in judged if j.row.scope == kind]
        outside = [j for j in mine if j.standing not in ("episode", "shared story")]
        rates.append(KindRate(
            scope=kind, alerts=len(mine), per_day=len(mine) / days, per_week=len(mine) / weeks,
            outside=len(outside),
            negative_news=sum(j.standing == "negative news" for j in outside),
            not_negative=sum(j.standing == "not negative" for j in outside),
            unreviewed=sum(j.standing == "unreviewed" for j in outside),
            allowed=budget_per_week * budget_weeks,
        ))
    weekly: list[tuple[datetime, dict[str, int]]] = []
    n_weeks = max(1, int((t1 - t0) // WEEK_S) + (1 if (t1 - t0) % WEEK_S else 0))
    for w in range(n_weeks):
        a, b = t0 + w * WEEK_S, t0 + (w + 1) * WEEK_S
        weekly.append((datetime.fromtimestamp(a, UTC),
                       {kind: sum(1 for j in judged if j.row.scope == kind
                                  and a <= j.row.detected_s < b) for kind in kinds}))
    matched = {j.row.episode_id for j in judged}
    return RealReport(
        start=datetime.fromtimestamp(t0, UTC), end=datetime.fromtimestamp(t1, UTC),
        episodes=episodes, alerts=judged, kinds=rates, weekly=weekly,
        budget_per_week=budget_per_week,
        stale_reviews=sorted(set(reviews) - matched),
    )


def _peak(group: Sequence[AlertRow]) -> str:
    return max((r.severity for r in group), key=lambda s: SEVERITY_ORDER.get(s, -1))


def week_label(start: datetime) -> str:
    end = start + timedelta(days=7)
    return f"{start:%Y-%m-%d} to {end:%m-%d}"
