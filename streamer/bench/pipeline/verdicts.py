"""Judging the measured steps: the sustainability rule, capacities, medians, the targets.

Pure functions of the result models, so they are unit-tested without Kafka or Redis.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from streamer.bench.pipeline.results import (
    BARE_RATIO_TARGET,
    MATCH_TOLERANCE,
    P99_RATIO_TARGET,
    PEER_THROUGHPUT_TARGET,
    THROUGHPUT_TARGET,
    BareReport,
    BareRow,
    Comparison,
    Run,
    Sample,
    Targets,
    VariantResult,
    Verdict,
)

# --- the sustainability rule --------------------------------------------------------------


def slope(points: Sequence[tuple[float, float]]) -> float:
    """Least-squares slope of y over t (0 with fewer than two distinct t)."""
    n = len(points)
    if n < 2:
        return 0.0
    mt = sum(t for t, _ in points) / n
    my = sum(y for _, y in points) / n
    var = sum((t - mt) ** 2 for t, _ in points)
    if var <= 0:
        return 0.0
    return sum((t - mt) * (y - my) for t, y in points) / var


def judge(samples: Sequence[Sample], rate: float, duration_s: float, drained_s: float | None,
          grace_s: float, tolerance: float = 0.05, min_backlog_s: float = 1.0) -> Verdict:
    """Sustainable when the backlog is flat over the step's second half and drains within
    ``grace_s`` of the producer's end. Growth counts only once the backlog holds more than
    ``min_backlog_s`` of offered load: a short step's slope is mostly batching noise."""
    half = [(s.t, float(s.backlog)) for s in samples if duration_s / 2 <= s.t <= duration_s]
    growth = slope(half)
    limit = max(1.0, tolerance * rate)
    backlog = half[-1][1] if half else 0.0
    if growth > limit and backlog > rate * min_backlog_s:
        return Verdict(sustainable=False, slope=round(growth, 2), limit=round(limit, 2),
                       drained_s=drained_s,
                       reason=f"backlog grew {growth:.1f} msg/s over the second half "
                       f"(limit {limit:.1f})")
    if drained_s is None or drained_s > grace_s:
        after = "never drained" if drained_s is None else f"drained in {drained_s:.1f} s"
        return Verdict(sustainable=False, slope=round(growth, 2), limit=round(limit, 2),
                       drained_s=drained_s,
                       reason=f"backlog {after} after the producer stopped (grace {grace_s:g} s)")
    return Verdict(sustainable=True, slope=round(growth, 2), limit=round(limit, 2),
                   drained_s=drained_s,
                   reason=f"flat backlog ({growth:+.1f} msg/s), drained in {drained_s:.1f} s")


def drain_rate(samples: Sequence[Sample], total: int) -> float | None:
    """msg/s completed between 10% and 90% of ``total`` (a probe's saturated rate)."""
    lo = next((s for s in samples if s.done >= 0.1 * total), None)
    hi = next((s for s in samples if s.done >= 0.9 * total), None)
    if lo is None or hi is None or hi.t <= lo.t:
        last = samples[-1] if samples else None
        return total / last.t if last is not None and last.t > 0 and last.done >= total else None
    return (hi.done - lo.done) / (hi.t - lo.t)


# --- capacities ---------------------------------------------------------------------------


def capacity(runs: Sequence[Run], variant: str) -> Run | None:
    """The ramp's highest sustainable step of ``variant``."""
    ok = [r for r in runs if r.variant == variant and r.phase == "ramp" and r.sustainable
          and r.offered_rate is not None]
    return max(ok, key=lambda r: r.offered_rate or 0.0) if ok else None


def refine_rate(runs: Sequence[Run], variant: str) -> float | None:
    """The geometric midpoint between ``variant``'s highest sustainable ramp step and the
    lowest unsustainable one above it; None without such a bracket."""
    best = capacity(runs, variant)
    if best is None or best.offered_rate is None:
        return None
    lo = best.offered_rate
    above = [r.offered_rate for r in runs if r.variant == variant and r.phase == "ramp"
             and not r.sustainable and r.offered_rate is not None and r.offered_rate > lo]
    return (lo * min(above)) ** 0.5 if above else None


# --- latency rounds -----------------------------------------------------------------------


def latency_runs(runs: Sequence[Run], variant: str, load: str) -> list[Run]:
    return [r for r in runs if r.variant == variant and r.phase == "latency" and r.load == load]


def latency_run(runs: Sequence[Run], variant: str, load: str) -> Run | None:
    """``variant``'s run at ``load``: of several rounds, the one with the median p99 (the
    lower middle one of an even count), so that one bad minute of the machine decides
    nothing."""
    return next((r for r in median_runs(runs, variant) if r.load == load), None)


def median_runs(runs: Sequence[Run], variant: str) -> list[Run]:
    """``variant``'s latency runs, one per fixed load and rate: the median round of each."""
    groups: dict[tuple[str, float | None], list[Run]] = {}
    for r in runs:
        if r.variant == variant and r.phase == "latency":
            groups.setdefault((r.load, r.offered_rate), []).append(r)
    out = []
    for same in groups.values():
        measured = sorted((r for r in same if r.p99_ms is not None),
                          key=lambda r: r.p99_ms or 0.0)
        out.append(measured[(len(measured) - 1) // 2] if measured else same[0])
    return out


def rounds_lower(runs: Sequence[Run], a: str, b: str, load: str) -> int | None:
    """In how many rounds ``a``'s p99 was below ``b``'s; None when no round has both."""
    theirs = {r.round: r.p99_ms for r in latency_runs(runs, b, load)}
    pairs = [(r.p99_ms, theirs[r.round]) for r in latency_runs(runs, a, load)
             if r.round in theirs]
    both = [(x, y) for x, y in pairs if x is not None and y is not None]
    return sum(x < y for x, y in both) if both else None


# --- the targets --------------------------------------------------------------------------


def ratio_of(a: float | None, b: float | None) -> float | None:
    """a / b to three places; None when either is missing or b is 0."""
    return round(a / b, 3) if a is not None and b else None


def compare(runs: Sequence[Run], variants: Sequence[VariantResult], load: str,
            adaptive: str = "adaptive") -> Comparison:
    """Adaptive's p99 against the best (lowest p99) fixed setting's at one fixed load."""
    mine = latency_run(runs, adaptive, load)
    fixed = [r for v in variants if v.kind == "ours" and v.name.startswith("fixed")
             if (r := latency_run(runs, v.name, load)) is not None and r.p99_ms is not None]
    best = min(fixed, key=lambda r: (not r.sustainable, r.p99_ms or 0.0), default=None)
    a = mine.p99_ms if mine else None
    b = best.p99_ms if best else None
    ratio = ratio_of(a, b)
    if ratio is None:
        verdict = "not measured"
    elif mine is not None and not mine.sustainable and best is not None and best.sustainable:
        verdict = "worse (adaptive not sustainable)"
    elif ratio < 1.0:
        verdict = "beats"
    elif ratio <= 1.0 + MATCH_TOLERANCE:
        verdict = "matches"
    else:
        verdict = "worse"
    return Comparison(load=load, rate=mine.offered_rate if mine else None, adaptive_p99_ms=a,
                      best_fixed=best.variant if best else None, best_fixed_p99_ms=b,
                      ratio=ratio, verdict=verdict,
                      rounds=len(latency_runs(runs, adaptive, load)) or 1,
                      rounds_lower=rounds_lower(runs, adaptive, best.variant, load)
                      if best else None)


def targets(runs: Sequence[Run], variants: Sequence[VariantResult], low_rate: float | None,
            ours: str = "adaptive") -> Targets:
    naive = next((v for v in variants if v.kind == "naive"), None)
    mine = next((v for v in variants if v.name == ours), None)
    n_cap = naive.capacity_completed if naive else None
    o_cap = mine.capacity_completed if mine else None
    t_ratio = ratio_of(o_cap, n_cap)
    naive_low = latency_run(runs, naive.name, "low") if naive else None
    ours_low = latency_run(runs, ours, "low")
    p_ratio = ratio_of(ours_low.p99_ms if ours_low else None,
                       naive_low.p99_ms if naive_low else None)
    fixed_caps = [v.capacity_completed for v in variants
                  if v.name.startswith("fixed") and v.capacity_completed]
    peer = peer_targets(runs, variants, ours)
    return Targets(
        naive_capacity=n_cap, ours_capacity=o_cap, throughput_ratio=t_ratio,
        throughput_met=None if t_ratio is None else t_ratio >= THROUGHPUT_TARGET,
        low_rate=low_rate,
        naive_p99_ms=naive_low.p99_ms if naive_low else None,
        ours_p99_ms=ours_low.p99_ms if ours_low else None,
        p99_ratio=p_ratio,
        p99_met=None if p_ratio is None else p_ratio <= P99_RATIO_TARGET + 1e-9,
        adaptive_vs_fixed=[compare(runs, variants, load, ours) for load in ("low", "high")],
        adaptive_capacity_vs_best_fixed=ratio_of(o_cap, max(fixed_caps, default=None)),
        **peer,
    )


# --- against the bare model -----------------------------------------------------------------


def bare_sizes(runs: Sequence[Run], variants: Sequence[VariantResult]
               ) -> list[tuple[str, int, str, float | None]]:
    """(variant, batch size, where it comes from, mean batch observed at capacity) for each
    of this project's variants: a fixed setting's size; adaptive's mean batch at its
    capacity step (else over its ramp), left out when its worker reported none."""
    out: list[tuple[str, int, str, float | None]] = []
    for v in variants:
        if v.kind != "ours":
            continue
        best = capacity(runs, v.name)
        observed = best.batch_mean if best is not None else None
        if v.env.get("STREAMER_BATCH_MODE") == "fixed" and "STREAMER_BATCH_MAX_SIZE" in v.env:
            out.append((v.name, int(v.env["STREAMER_BATCH_MAX_SIZE"]), "its fixed size",
                        observed))
            continue
        source = "its mean batch at capacity"
        mean = observed
        if mean is None:  # over every ramp step, weighted by batches
            steps = [r for r in runs if r.variant == v.name and r.phase == "ramp"
                     and r.batches and r.batch_mean is not None]
            n = sum(r.batches or 0 for r in steps)
            mean = sum((r.batches or 0) * (r.batch_mean or 0.0) for r in steps) / n if n else None
            source = "its mean batch over the ramp"
        if mean is not None:
            out.append((v.name, max(1, round(mean)), source, observed))
    return out


def bare_rows(runs: Sequence[Run], variants: Sequence[VariantResult],
              report: BareReport | None) -> list[BareRow]:
    """Each variant's end-to-end capacity against the bare model at its batch size."""
    by_name = {v.name: v for v in variants}
    rows = []
    for name, size, source, observed in bare_sizes(runs, variants):
        cell = report.median(size) if report is not None else None
        e2e = by_name[name].capacity_completed
        rows.append(BareRow(
            variant=name, size=size, size_from=source, observed_batch_mean=observed,
            bare_msgs_per_s=cell.msgs_per_s if cell else None,
            tokens_per_msg=cell.tokens_per_msg if cell else None,
            tokenize_share=cell.tokenize_share if cell else None,
            e2e_msgs_per_s=e2e, ratio=ratio_of(e2e, cell.msgs_per_s if cell else None)))
    return rows


def bare_targets(rows: Sequence[BareRow], ours: str = "adaptive") -> dict[str, Any]:
    """Ours (adaptive) end to end / the bare model at its batch size; {} without it."""
    row = next((r for r in rows if r.variant == ours and r.ratio is not None), None)
    if row is None:
        return {}
    return {"bare_variant": row.variant, "bare_ratio": row.ratio,
            "bare_met": (row.ratio or 0.0) >= BARE_RATIO_TARGET}


def peer_targets(runs: Sequence[Run], variants: Sequence[VariantResult],
                 ours: str = "adaptive") -> dict[str, Any]:
    """Ours against the peer (the first ``peer`` variant): capacity ratio, and p99 at the
    fixed loads both ran (median rounds); {} when no peer ran."""
    peer = next((v for v in variants if v.kind == "peer"), None)
    mine = next((v for v in variants if v.name == ours), None)
    if peer is None:
        return {}
    t_ratio = ratio_of(mine.capacity_completed if mine else None, peer.capacity_completed)
    p99: dict[str, tuple[float | None, float | None]] = {}
    for load in ("low", "high"):
        a, b = latency_run(runs, ours, load), latency_run(runs, peer.name, load)
        p99[load] = (a.p99_ms if a else None, b.p99_ms if b else None)
    both = [(a, b) for a, b in p99.values() if a is not None and b is not None]
    return {
        "peer": peer.name, "peer_capacity": peer.capacity_completed,
        "peer_throughput_ratio": t_ratio,
        "peer_throughput_met": None if t_ratio is None else t_ratio >= PEER_THROUGHPUT_TARGET,
        "peer_p99_ms": p99["low"][1], "peer_p99_ratio": ratio_of(*p99["low"]),
        "peer_high_p99_ms": p99["high"][1], "ours_high_p99_ms": p99["high"][0],
        "peer_p99_met": all(a <= b for a, b in both) if both else None,
    }
