"""STREAMER_LOG_FORMAT=json: one JSON object a line with stable keys, from the CLI's set-up
and from the Faust worker's own handlers."""

from __future__ import annotations

import asyncio
import json
import logging
from pathlib import Path

import faust
import pytest
from harness import Namespace, WorkerProcess

from agents.worker import Worker
from streamer.logs import configure_logging
from streamer.settings import Settings


def json_lines(text: str) -> list[dict[str, object]]:
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def test_the_setting_reads_streamer_log_format(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STREAMER_LOG_FORMAT", "json")
    assert Settings(_env_file=None).worker.log_format == "json"
    monkeypatch.setenv("STREAMER_LOG_FORMAT", "yaml")
    with pytest.raises(ValueError, match="STREAMER_LOG_FORMAT"):
        Settings(_env_file=None)


def test_each_record_is_one_json_object_with_the_stable_keys(
    root_logger: logging.Logger, capsys: pytest.CaptureFixture[str],
) -> None:
    configure_logging("INFO", "json", worker="w1")
    logging.getLogger("streamer.test").warning("two\nlines: %d", 2)
    logging.getLogger("streamer.test").debug("below the level")
    [line] = json_lines(capsys.readouterr().err)
    assert set(line) == {"ts", "level", "logger", "message", "worker"}
    assert line["level"] == "WARNING" and line["logger"] == "streamer.test"
    assert line["message"] == "two\nlines: 2" and line["worker"] == "w1"
    assert str(line["ts"]).endswith("Z")


def test_a_traceback_stays_inside_its_record(
    root_logger: logging.Logger, capsys: pytest.CaptureFixture[str],
) -> None:
    configure_logging("INFO", "json")
    try:
        raise RuntimeError("boom")
    except RuntimeError:
        logging.getLogger("streamer.test").exception("failed")
    [line] = json_lines(capsys.readouterr().err)
    assert "worker" not in line  # not known here
    assert line["message"] == "failed"
    assert "RuntimeError: boom" in str(line["exc_info"])


def test_text_stays_the_default(root_logger: logging.Logger,
                                capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging("INFO", "text")
    logging.getLogger("streamer.test").warning("plain")
    assert capsys.readouterr().err == "plain\n"


def test_the_faust_worker_writes_json_lines_naming_its_worker(
    root_logger: logging.Logger, tmp_path: Path, capfd: pytest.CaptureFixture[str],
) -> None:
    loop = asyncio.new_event_loop()
    try:
        app = faust.App("json-log-test", broker="kafka://127.0.0.1:1", datadir=str(tmp_path))
        Worker(app, loglevel="info", loop=loop, log_format="json",
               worker_id="w7")._setup_logging()
        logging.getLogger("agents.scoring").warning("scored %d", 3)
        for handler in logging.getLogger().handlers:
            handler.flush()
    finally:
        loop.close()
    out = capfd.readouterr()
    lines = [line for line in json_lines(out.err + out.out)
             if line.get("logger") == "agents.scoring"]
    assert lines == [{"ts": lines[0]["ts"], "level": "WARNING", "logger": "agents.scoring",
                      "message": "scored 3", "worker": "w7"}]


@pytest.mark.slow
def test_a_worker_process_started_with_streamer_log_format_json_logs_only_json_lines(
    kafka_bootstrap: str, redis_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("STREAMER_TEST_WORKER_LOGLEVEL", "info")  # Faust's start-up story
    ns = Namespace(kafka_bootstrap, redis_url, tmp_path,
                   extra_env={"STREAMER_LOG_FORMAT": "json"})
    worker = WorkerProcess(ns, "json-w1").start()
    try:
        worker.wait_ready()
    finally:
        worker.stop()
    lines = json_lines(worker.log.read_text())
    assert len(lines) > 10
    assert all({"ts", "level", "logger", "message"} <= set(line) for line in lines)
    assert {line.get("worker") for line in lines} == {"json-w1"}
