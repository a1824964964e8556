"""The bare model stage: tokenize + infer alone, what the worker's end to end is set against.

Issue 32 asks how much of the model's own speed the worker keeps end to end. This measures
the model stage by itself, in a process of its own (so the harness and the waiting workers
share nothing with it but the machine), and with nothing else changed:

* the scorer is the worker's: ``streamer.score.select.load_scorer`` with the same
  settings (bundle, variant, ONNX Runtime threads, INT8 rows alone, max group/tokens), warmed
  up the same way, on the worker's ``ScoringPool`` (``STREAMER_INFER_THREADS`` threads,
  ``STREAMER_SCORE_QUEUE_DEPTH``), fed by as many concurrent callers as the pool has threads
  (the worker's news and chat agents score side by side);
* the texts are the load generator's messages (``Messages``, the same demo generator and
  seed), decoded and normalized as the worker does *before* the clock starts;
* the batches have the worker's sizes, one input topic per batch (each agent batches its
  own topic), in arrival order.

No Kafka, no Redis, no decoding in the timed part. Each size is held ``--seconds`` (the
batches cycle), sizes interleaved, ``--rounds`` times.

Run: ``python -m streamer.bench.pipeline.bare --sizes 32,18 --seconds 10 --out FILE``
(settings from the usual ``STREAMER_*`` environment); writes a :class:`BareReport`.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from streamer.bench.pipeline.errors import BenchError
from streamer.bench.pipeline.results import BareCell, BareReport, Plan
from streamer.schemas.events import Kind
from streamer.score.pool import ScoringPool
from streamer.settings import Settings


@dataclass(frozen=True)
class Batch:
    texts: list[str]
    sources: list[Kind]


def texts_of(settings: Settings, seed: int, n: int) -> list[tuple[str, Kind]]:
    """The load generator's first ``n`` messages as the worker scores them: decoded,
    normalized (text cleaned, truncated to the input limit) and valid ones only."""
    from streamer.bench.pipeline.messages import Messages
    from streamer.ingest import DecodeFailure, MarketExtractor, TickerExtractor, decode, normalize
    from streamer.schemas import Origin

    inputs = settings.input
    tickers = TickerExtractor.from_csv(inputs.symbols_file,
                                       max_tickers=inputs.max_tickers_per_event)
    markets = MarketExtractor.from_csv(inputs.markets_file)
    kinds: dict[str, Kind] = {settings.topics.news: "news", settings.topics.chat: "chat"}
    out: list[tuple[str, Kind]] = []
    for i, m in enumerate(Messages(seed).make(settings, n, rate=500.0)):
        kind = kinds[m.topic]
        msg = decode(m.value, kind, max_bytes=inputs.max_message_bytes,
                     strict=inputs.schema_strict)
        if isinstance(msg, DecodeFailure):
            continue
        ev = normalize(msg, Origin(topic=m.topic, partition=0, offset=i), tickers,
                       max_chars=inputs.max_text_chars, markets=markets)
        if not isinstance(ev, DecodeFailure):
            out.append((ev.text, ev.kind))
    return out


def batches_of(items: Sequence[tuple[str, Kind]], size: int) -> list[Batch]:
    """Batches of up to ``size`` messages of one source each (one agent per input topic),
    in the order their first message arrived."""
    open_: dict[Kind, list[int]] = {}
    firsts: list[tuple[int, list[int]]] = []
    for i, (_, kind) in enumerate(items):
        rows = open_.get(kind)
        if rows is None or len(rows) >= size:
            rows = open_[kind] = []
            firsts.append((i, rows))
        rows.append(i)
    return [Batch([items[i][0] for i in rows], [items[i][1] for i in rows])
            for _, rows in sorted(firsts, key=lambda f: f[0])]


async def run_size(pool: ScoringPool, batches: Sequence[Batch], seconds: float,
                   callers: int, size: int, round_: int) -> BareCell:
    """Score ``batches`` (cycling) with ``callers`` concurrent callers for ``seconds``."""
    loop = asyncio.get_running_loop()
    nxt = 0
    done = tokens = 0
    tok_s = inf_s = 0.0
    t0 = loop.time()
    deadline = t0 + seconds

    async def caller() -> None:
        nonlocal nxt, done, tokens, tok_s, inf_s
        while loop.time() < deadline:
            b = batches[nxt % len(batches)]
            nxt += 1
            scores = await pool.score(b.texts, b.sources)
            done += len(b.texts)
            tokens += int(scores.extra.get("tokens", 0))
            tok_s += scores.tokenize_s
            inf_s += scores.infer_s

    await asyncio.gather(*(caller() for _ in range(callers)))
    took = loop.time() - t0
    return BareCell(size=size, round=round_, messages=done, seconds=round(took, 3),
                    msgs_per_s=round(done / took, 1) if took > 0 else 0.0,
                    tokens_per_msg=round(tokens / done, 1) if done else 0.0,
                    tokenize_share=round(tok_s / (tok_s + inf_s), 3) if tok_s + inf_s else 0.0)


async def measure(settings: Settings, sizes: Sequence[int], *, seconds: float, rounds: int,
                  messages: int, seed: int) -> BareReport:
    from streamer.score.select import load_scorer

    sc = settings.scoring
    scorer = await asyncio.to_thread(load_scorer, settings)  # warmed up, as the worker's
    pool = ScoringPool(scorer, threads=sc.infer_threads, queue_depth=sc.score_queue_depth)
    items = texts_of(settings, seed, messages)
    report = BareReport(scorer=scorer.name, model=scorer.model.short(), threads=pool.threads,
                        queue_depth=pool.queue_depth,
                        ort_intra_op_threads=sc.ort_intra_op_threads, texts=len(items))
    by_size = {size: batches_of(items, size) for size in sizes}
    try:
        for size, batches in by_size.items():  # each size's shapes once, off the clock
            await run_size(pool, batches, min(1.0, seconds / 4), pool.threads, size, 0)
        for k in range(rounds):
            for size, batches in by_size.items():
                report.cells.append(await run_size(pool, batches, seconds, pool.threads,
                                                   size, k))
    finally:
        pool.shutdown()
    return report


async def run_bare(base: Settings, plan: Plan, sizes: Sequence[int], out: Path) -> BareReport:
    """The bare model at ``sizes``, in a process of its own with the workers' environment
    (so the same settings pick the same scorer); BenchError when it fails."""
    from streamer.bench.pipeline.preflight import bundle_env
    from streamer.bench.pipeline.processes import REPO

    report = out / "bare.json"
    log = out / "logs" / "bare.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    cmd = [sys.executable, "-m", "streamer.bench.pipeline.bare",
           "--sizes", ",".join(str(n) for n in sizes), "--seconds", f"{plan.bare_s:g}",
           "--rounds", str(plan.rounds), "--messages", str(plan.bare_messages),
           "--seed", str(plan.seed), "--out", str(report.resolve())]
    env = {**os.environ, "STREAMER_DATA_DIR": str(base.paths.data_dir), **bundle_env(base)}
    # Loading and warming the scorer, one warm-up pass per size, then every cell.
    limit = 120.0 + len(sizes) * (plan.rounds * plan.bare_s + 5.0) * 1.5
    with log.open("ab") as fh:
        proc = await asyncio.create_subprocess_exec(*cmd, env=env, cwd=REPO, stdout=fh,
                                                    stderr=fh)
        try:
            rc = await asyncio.wait_for(proc.wait(), limit)
        except TimeoutError:
            proc.kill()
            await proc.wait()
            raise BenchError(f"the bare model did not finish in {limit:.0f} s ({log})") from None
    if rc != 0 or not report.is_file():
        tail = "\n".join(log.read_text(errors="replace").splitlines()[-15:])
        raise BenchError(f"the bare model failed (exit {rc}, {log}):\n{tail}")
    return BareReport.model_validate_json(report.read_text("utf-8"))


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m streamer.bench.pipeline.bare",
                                     description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", required=True, help="batch sizes, comma-separated")
    parser.add_argument("--seconds", type=float, default=10.0, help="hold time per size")
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--messages", type=int, default=2000,
                        help="distinct load-generator messages the batches cycle through")
    parser.add_argument("--seed", type=int, default=7, help="the load generator's seed")
    parser.add_argument("--out", type=Path, required=True, help="where the JSON report goes")
    args = parser.parse_args(argv)
    sizes = sorted({int(x) for x in args.sizes.split(",") if x.strip()})
    if not sizes or min(sizes) < 1 or args.seconds <= 0 or args.rounds < 1:
        parser.error("--sizes needs sizes >= 1; --seconds and --rounds must be positive")
    t0 = time.monotonic()
    report = asyncio.run(measure(Settings(), sizes, seconds=args.seconds, rounds=args.rounds,
                                 messages=args.messages, seed=args.seed))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(report.model_dump_json(indent=2), "utf-8")
    print(f"bare model: {report.scorer}, {len(report.cells)} cells in "
          f"{time.monotonic() - t0:.0f} s -> {args.out}", flush=True)


if __name__ == "__main__":
    main()
