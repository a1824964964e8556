"""The report of ``streamer eval-alerts``, for people: rich tables and a verdict.

Two target sets (issue 29):

* **synthetic** (labelled injected spikes): every spike of >= 20 msgs/min and >= 3x
  share caught, median detection delay <= 20 s of event time, <= 1 false alert per 6 h
  of calm stream per scope kind;
* **real** (labelled news episodes): every episode caught (with its delay from its first
  story), at most 2 alerts a week per scope kind outside the episodes that a person has
  not confirmed as negative news.

A target with nothing to measure (no labels) is reported as *not measured*: the verdict
then never says "targets met", and only a measured target that is missed fails the run.
"""

from __future__ import annotations

import statistics
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Literal

from rich.console import RenderableType
from rich.markup import escape
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from streamer.evaluation.judge import EvalReport
from streamer.evaluation.real import RealReport, week_label
from streamer.evaluation.rows import AlertRow, top_headlines

Status = Literal["met", "missed", "not measured"]
SPIKE_MIN_PER_MIN = 20.0
SPIKE_MIN_RATIO = 3.0
MAX_DELAY_S = 20.0
FALSE_PER_6H = 1.0


@dataclass(frozen=True)
class Target:
    name: str
    status: Status
    detail: str


@dataclass(frozen=True)
class Verdict:
    targets: list[Target]

    @property
    def failed(self) -> bool:
        return any(t.status == "missed" for t in self.targets)

    @property
    def unmeasured(self) -> list[Target]:
        return [t for t in self.targets if t.status == "not measured"]

    def panel(self) -> Panel:
        body = Text()
        marks = {"met": ("✔", "green"), "missed": ("✘", "red"), "not measured": ("?", "yellow")}
        for t in self.targets:
            mark, color = marks[t.status]
            body.append(f"{mark} ", style=color)
            body.append(f"{t.name}: ", style="bold")
            body.append(f"{t.status}", style=color)
            body.append(f" ({t.detail})\n" if t.detail else "\n")
        if self.failed:
            head = "[bold red]targets NOT met[/]"
        elif self.unmeasured:
            head = ("[bold yellow]recall NOT MEASURED[/]: nothing labelled to catch; "
                    "the measured targets hold")
        else:
            head = "[bold green]targets met[/]"
        return Panel.fit(body, title=head, title_align="left")


def pct(x: float | None) -> str:
    return "-" if x is None else f"{x:.0%}"


def _time(r: AlertRow, long: bool) -> str:
    return f"{r.detected:%Y-%m-%d %H:%M}" if long else f"{r.detected:%H:%M:%S}"


def _rate(n: int, days: float, per_days: float) -> str:
    """Alerts per ``per_days``; '-' when the stream is shorter than that (no rate to read)."""
    return f"{n * per_days / days:.2f}" if days >= per_days else "-"


# --- synthetic ------------------------------------------------------------------------------
def synthetic_verdict(report: EvalReport, scope_kinds: Iterable[str]) -> Verdict:
    q = report.qualifying(SPIKE_MIN_PER_MIN, SPIKE_MIN_RATIO)
    name = f"every spike >= {SPIKE_MIN_PER_MIN:g} msgs/min and >= {SPIKE_MIN_RATIO:g}x share caught"
    if not report.spikes:
        recall = Target(name, "not measured", "no labelled spikes")
    elif not q:
        recall = Target(name, "not measured",
                        f"none of the {len(report.spikes)} labelled spikes is that large")
    else:
        caught = sum(s.caught for s in q)
        recall = Target(name, "met" if caught == len(q) else "missed",
                        f"{caught} of {len(q)} caught")
    med = report.median_delay_s
    delay = Target(f"median detection delay <= {MAX_DELAY_S:g} s (event time)",
                   "not measured" if med is None else ("met" if med <= MAX_DELAY_S else "missed"),
                   "no spike caught" if med is None else f"{med:.1f} s")
    targets = [recall, delay]
    for kind in scope_kinds:
        rate = report.false_per_hour(kind) * 6
        n = sum(1 for f in report.false_alerts if f.scope == kind)
        targets.append(Target(
            f"false alerts ({kind}) <= {FALSE_PER_6H:g} per 6 h calm",
            "met" if rate <= FALSE_PER_6H else "missed",
            f"{n} in {report.calm_hours:.2f} h = {rate:.2f} per 6 h"))
    return Verdict(targets)


def synthetic_tables(report: EvalReport, scope_kinds: Iterable[str]) -> list[RenderableType]:
    out: list[RenderableType] = []
    if report.spikes:
        spikes = Table(title="Labelled spikes")
        numeric = ("messages", "per min", "neg share before", "during", "x", "delay (event s)")
        for col in ("scope", "key", "onset (UTC)", *numeric[:5], "caught", numeric[5],
                    "severity"):
            spikes.add_column(col, justify="right" if col in numeric else "left")
        covered = {id(s) for s in report.qualifying(SPIKE_MIN_PER_MIN, SPIKE_MIN_RATIO)}
        for s in report.spikes:
            spikes.add_row(
                s.scope, s.key, f"{s.start:%Y-%m-%d %H:%M:%S}", str(s.messages),
                f"{s.per_min:.0f}", pct(s.baseline_share), pct(s.spike_share),
                "-" if s.ratio is None else f"{s.ratio:.1f}",
                "[green]caught[/]" if s.caught else
                ("[red]MISSED[/]" if id(s) in covered else "[yellow]missed[/] (not covered)"),
                f"{s.delay_s:.1f}" if s.delay_s is not None else "-", s.severity or "-",
            )
        out.append(spikes)
    else:
        out.append(Text("recall not measured: no labelled spikes (pass --labels spikes.json "
                        "to measure it)", style="yellow"))
    summary = Table(title="Summary", show_header=False)
    summary.add_column("")
    summary.add_column("", justify="right")
    q = report.qualifying(SPIKE_MIN_PER_MIN, SPIKE_MIN_RATIO)
    if report.spikes:
        summary.add_row("spikes caught", f"{report.caught} of {len(report.spikes)}")
        summary.add_row(f">= {SPIKE_MIN_PER_MIN:g} msgs/min and >= {SPIKE_MIN_RATIO:g}x "
                        "share: caught", f"{sum(s.caught for s in q)} of {len(q)}")
    else:
        summary.add_row("spikes caught", "not measured (no labels)")
    med = report.median_delay_s
    summary.add_row("median detection delay", f"{med:.1f} s" if med is not None else "-")
    if report.delays:
        summary.add_row("p90 detection delay",
                        f"{statistics.quantiles(report.delays, n=10)[-1]:.1f} s"
                        if len(report.delays) > 1 else f"{report.delays[0]:.1f} s")
    summary.add_row("calm stream", f"{report.calm_hours:.2f} h")
    for kind in scope_kinds:
        n = sum(1 for f in report.false_alerts if f.scope == kind)
        summary.add_row(f"false alerts ({kind})",
                        f"{n} = {report.false_per_hour(kind) * 6:.2f} per 6 h")
    summary.add_row("alerts (fired + escalated)", str(report.alerts))
    out.append(summary)
    return out


# --- real news ------------------------------------------------------------------------------
def real_verdict(report: RealReport) -> Verdict:
    name = "every labelled episode caught"
    if not report.episodes:
        targets = [Target(name, "not measured", "no labelled episodes")]
    else:
        caught = len(report.episodes) - len(report.missed)
        missed = ", ".join(e.name for e in report.missed)
        targets = [Target(name, "missed" if report.missed else "met",
                          f"{caught} of {len(report.episodes)} caught"
                          + (f"; missed: {missed}" if missed else ""))]
    for k in report.kinds:
        targets.append(Target(
            f"unconfirmed alerts ({k.scope}) <= {report.budget_per_week:g} a week",
            "met" if k.within else "missed",
            f"{k.counted} counted ({k.unreviewed} unreviewed, {k.not_negative} not negative) "
            f"<= {k.allowed:.1f} allowed over "
            + (f"{report.days / 7:.1f} weeks" if report.days >= 7 else
               f"{report.days:.1f} days, judged as one week")))
    return Verdict(targets)


def real_tables(report: RealReport) -> list[RenderableType]:
    out: list[RenderableType] = []
    if report.episodes:
        t = Table(title="Labelled episodes")
        t.add_column("episode", min_width=16, overflow="fold")
        t.add_column("scope / key", max_width=16, overflow="fold")
        t.add_column("first story (UTC)", max_width=11)
        t.add_column("caught", max_width=24)
        t.add_column("alert (event time)", max_width=11)
        t.add_column("delay from first story", justify="right", max_width=10)
        t.add_column("severity")
        for e in report.episodes:
            missed = "[red]MISSED[/]" + "".join(
                f"\n[dim]its stories alerted {escape(c)}[/]" for c in e.cited_by)
            t.add_row(e.name, f"{e.scope}\n{e.key}", f"{e.first_story:%Y-%m-%d %H:%M}",
                      "[green]caught[/]" if e.caught else missed,
                      "-" if e.detected is None else f"{e.detected:%Y-%m-%d %H:%M}",
                      "-" if e.delay_s is None else _span(e.delay_s), e.severity or "-")
        out.append(t)
    else:
        out.append(Text("recall not measured: no labelled episodes (pass --labels "
                        "episodes.json to measure it)", style="yellow"))
    rates = Table(title=f"Alerts per scope kind over {report.days:.1f} days "
                        f"({report.start:%Y-%m-%d} to {report.end:%Y-%m-%d})")
    for col in ("scope kind", "alerts", "per day", "per week", "outside episodes",
                "reviewed: negative news", "reviewed: not negative", "unreviewed",
                "counted", "allowed", ""):
        rates.add_column(col, justify="left" if col == "scope kind" else "right")
    for k in report.kinds:
        rates.add_row(k.scope, str(k.alerts), _rate(k.alerts, report.days, 1),
                      _rate(k.alerts, report.days, 7),
                      str(k.outside), str(k.negative_news), str(k.not_negative),
                      f"[yellow]{k.unreviewed}[/]" if k.unreviewed else "0", str(k.counted),
                      f"{k.allowed:.1f}", "[green]within[/]" if k.within else "[red]over[/]")
    out.append(rates)
    if len(report.weekly) > 1 and report.kinds:
        weekly = Table(title="Alerts per week")
        weekly.add_column("week (UTC)")
        for k in report.kinds:
            weekly.add_column(k.scope, justify="right")
        for start, counts in report.weekly:
            weekly.add_row(week_label(start), *(str(counts.get(k.scope, 0))
                                                for k in report.kinds))
        out.append(weekly)
    if report.alerts:
        out.append(alerts_table(
            [(j.row, j.peak_severity, _standing(j.standing, j.episode, j.note))
             for j in report.alerts], long=report.days > 1,
            title="Every alert, with its evidence (one row per alert episode)"))
    if report.unreviewed:
        out.append(Text(
            f"{report.unreviewed} alert(s) outside the labelled episodes are unreviewed: read "
            "their evidence and record a verdict in a --reviewed file "
            "({\"<episode id>\": {\"verdict\": \"negative news\" | \"not negative\", "
            "\"note\": \"...\"}})", style="yellow"))
    if report.stale_reviews:
        out.append(Text(f"{len(report.stale_reviews)} reviewed episode id(s) match no alert: "
                        + ", ".join(report.stale_reviews[:5]), style="yellow"))
    return out


def _standing(standing: str, episode: str | None, note: str) -> str:
    colors = {"episode": "green", "shared story": "green", "negative news": "green",
              "not negative": "red", "unreviewed": "yellow"}
    text = f"[{colors.get(standing, 'white')}]{standing}[/]"
    if episode:
        text += f": {episode}"
    if note:
        text += f" ({note})"
    return text


def _span(seconds: float) -> str:
    sign = "-" if seconds < 0 else ""
    s = abs(seconds)
    if s < 120:
        return f"{sign}{s:.0f} s"
    if s < 7_200:
        return f"{sign}{s / 60:.0f} min"
    return f"{sign}{s / 3600:.1f} h"


def alerts_table(rows: Sequence[tuple[AlertRow, str, str]], *, long: bool, title: str,
                 headlines: int = 3) -> Table:
    """One row per alert: when, where, how severe, why, how strong, and what drove it
    (its most negative headlines, one per story), with the episode id a review names."""
    t = Table(title=title, show_lines=True)
    t.add_column("#", justify="right")
    t.add_column("detected (UTC)", max_width=10 if long else 8)
    t.add_column("scope / key", max_width=16, overflow="fold")
    t.add_column("severity", max_width=9)
    t.add_column("fired by", max_width=12)
    t.add_column("neg share vs base", max_width=10)
    t.add_column("standing", max_width=13, overflow="fold")
    t.add_column("why / top evidence (deduplicated) / episode id", min_width=26,
                 overflow="fold")
    for i, (r, peak, standing) in enumerate(rows, 1):
        sev = r.severity if peak == r.severity else f"{r.severity} → {peak}"
        lines = [f"[italic]{escape(r.sentence)}[/]"] if r.sentence else []
        lines += [f"{e.negative_prob:.2f} {escape(e.headline)}"
                  for e in top_headlines(r.evidence, headlines)] or ["[dim](no evidence kept)[/]"]
        lines.append(f"[dim]{r.episode_id}[/]")
        t.add_row(str(i), _time(r, long), f"{r.scope}\n{r.key}", sev,
                  f"{r.why or '-'}\nz {r.z:.1f}",
                  f"{pct(r.negative_share)} vs {pct(r.baseline_share)}\n"
                  f"{r.negatives} of {r.messages}", standing, "\n".join(lines))
    return t
