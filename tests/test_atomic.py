"""Atomic writes (streamer.atomic) and the baseline model cache built by workers at once."""

from __future__ import annotations

import multiprocessing
import multiprocessing.synchronize
from pathlib import Path

import pytest

from streamer.atomic import atomic_dir, atomic_file, write_bytes
from streamer.score.baseline import BaselineScorer
from streamer.settings import Settings

WORKERS = 4
SAVES = 15  # each worker rewrites the cache this often after building it


class Boom(RuntimeError):
    pass


def test_a_file_being_written_is_not_visible_until_it_is_whole(tmp_path: Path) -> None:
    target = tmp_path / "cache.bin"
    write_bytes(target, b"old")
    with atomic_file(target) as fh:
        fh.write(b"new, half")
        fh.flush()
        assert target.read_bytes() == b"old"
        fh.write(b" and the rest")
    assert target.read_bytes() == b"new, half and the rest"
    assert [p.name for p in tmp_path.iterdir()] == ["cache.bin"]


def test_a_failed_write_leaves_the_old_file_and_no_temporary(tmp_path: Path) -> None:
    target = tmp_path / "cache.bin"
    write_bytes(target, b"old")
    with pytest.raises(Boom), atomic_file(target) as fh:
        fh.write(b"partial")
        raise Boom
    assert target.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["cache.bin"]


def test_a_directory_is_replaced_whole_or_not_at_all(tmp_path: Path) -> None:
    target = tmp_path / "model"
    with atomic_dir(target) as d:
        (d / "weights").write_text("v1")
    with pytest.raises(Boom), atomic_dir(target) as d:
        (d / "weights").write_text("partial")
        raise Boom
    assert (target / "weights").read_text() == "v1"
    with atomic_dir(target) as d:
        (d / "other").write_text("v2")
    assert [p.name for p in target.iterdir()] == ["other"]
    assert [p.name for p in tmp_path.iterdir()] == ["model"]


def _build_cache(data_dir: Path, cache_dir: Path, start: multiprocessing.synchronize.Barrier
                 ) -> None:
    start.wait()
    scorer = BaselineScorer.train(data_dir, cache_dir)
    (cached,) = cache_dir.glob("baseline-*.npz")
    for _ in range(SAVES):  # keep the writers overlapping, as workers restarting would
        scorer.save(cached)
        BaselineScorer.load(cached)


def test_workers_building_the_baseline_cache_at_once_all_succeed(tmp_path: Path) -> None:
    data_dir = Settings(_env_file=None).scoring.labelled_data_dir
    cache_dir = tmp_path / "baseline"
    ctx = multiprocessing.get_context("spawn")
    start = ctx.Barrier(WORKERS)
    procs = [ctx.Process(target=_build_cache, args=(data_dir, cache_dir, start))
             for _ in range(WORKERS)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(300)
    assert [p.exitcode for p in procs] == [0] * WORKERS
    (cached,) = cache_dir.iterdir()  # one cache file, no temporaries left behind
    assert BaselineScorer.load(cached).score(["shares slump"], ["news"]).sentiment.shape[0] == 1
