"""Every `streamer` command fails the same way on an expected condition (a server down,
a topic that is not there, bad arguments, a bad setting): one line on stderr saying what,
why and what to do, no traceback, and the exit code README.md documents ("Exit codes").

The servers are real: a closed port for "down", the session's Kafka for a missing topic.
The commands run as the installed `streamer` program, so what a person sees (stdout,
stderr, warnings printed as the interpreter exits) is what is checked.
"""

from __future__ import annotations

import asyncio
import os
import re
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
from aiokafka.admin import AIOKafkaAdminClient

from streamer.cli.common import ExitCode
from streamer.devstack import free_port

ROOT = Path(__file__).resolve().parents[1]
STREAMER = str(Path(sys.executable).parent / "streamer")


def streamer(args: list[str], tmp_path: Path, **env: str) -> subprocess.CompletedProcess[str]:
    """``streamer ARGS`` in ``tmp_path`` (no .env there) with ``env`` on top of ours."""
    return subprocess.run([STREAMER, *args], cwd=tmp_path, env={**os.environ, **env},
                          capture_output=True, text=True, timeout=120, check=False)


def assert_one_line(out: subprocess.CompletedProcess[str], code: int, *words: str) -> str:
    """The run printed one line on stderr, nothing on stdout, no traceback or warning,
    and exited ``code``; that line holds each of ``words``. Returns the line."""
    text = out.stdout + out.stderr
    assert out.returncode == code, text
    assert out.stdout == "", text
    lines = out.stderr.splitlines()
    assert len(lines) == 1, text
    assert "Traceback" not in text and "Unclosed" not in text, text
    assert lines[0].startswith("error: "), text
    for word in words:
        assert word in lines[0], (word, text)
    return lines[0]


def closed() -> str:
    return f"127.0.0.1:{free_port()}"


@pytest.mark.parametrize("args", [["summary"], ["latency"], ["trends"]],
                         ids=lambda a: a[0])
def test_a_command_reading_redis_when_it_is_down_says_so_in_one_line(
        args: list[str], tmp_path: Path) -> None:
    out = streamer(args, tmp_path, REDIS_URL=f"redis://{closed()}/0")
    line = assert_one_line(out, ExitCode.UNAVAILABLE, "Redis at", "did not answer",
                           "what to do:", "REDIS_URL")
    assert "connection refused" in line


def test_the_redis_password_stays_out_of_the_error_line(tmp_path: Path) -> None:
    out = streamer(["summary"], tmp_path, REDIS_URL=f"redis://:hunter2@{closed()}/0")
    line = assert_one_line(out, ExitCode.UNAVAILABLE, "Redis at")
    assert "hunter2" not in line


@pytest.mark.parametrize("args", [
    ["alerts"],
    ["replay", "--topic", "news", "SAMPLE"],
    ["demo", "--minutes", "1"],
], ids=lambda a: a[0])
def test_a_command_talking_to_kafka_when_it_is_down_says_so_in_one_line(
        args: list[str], tmp_path: Path) -> None:
    args = [str(_sample(tmp_path)) if a == "SAMPLE" else a for a in args]
    out = streamer(args, tmp_path, KAFKA_BOOTSTRAP=closed())
    assert_one_line(out, ExitCode.UNAVAILABLE, "Kafka at", "did not answer", "KAFKA_BOOTSTRAP")


def _topics(bootstrap: str) -> set[str]:
    async def go() -> set[str]:
        admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
        await admin.start()
        try:
            return set(await admin.list_topics())
        finally:
            await admin.close()

    return asyncio.run(go())


def _sample(tmp_path: Path) -> Path:
    path = tmp_path / "news.jsonl"
    path.write_text('{"id": "n1", "source": "w", "headline": "Oil rises", '
                    '"published_at": "2026-01-02T03:04:05Z"}\n', encoding="utf-8")
    return path


def test_replay_to_a_topic_that_does_not_exist_fails_and_creates_nothing(
        kafka_bootstrap: str, tmp_path: Path) -> None:
    typo = f"nwes-{uuid.uuid4().hex[:6]}"
    out = streamer(["replay", "--topic", typo, str(_sample(tmp_path))], tmp_path,
                   KAFKA_BOOTSTRAP=kafka_bootstrap)
    assert_one_line(out, ExitCode.NOT_FOUND, repr(typo), "does not exist", "--create-topic")
    assert typo not in _topics(kafka_bootstrap)


def test_replay_with_create_topic_creates_it_and_sends(kafka_bootstrap: str,
                                                       tmp_path: Path) -> None:
    topic = f"fresh-{uuid.uuid4().hex[:6]}"
    out = streamer(["replay", "--topic", topic, "--create-topic", str(_sample(tmp_path))],
                   tmp_path, KAFKA_BOOTSTRAP=kafka_bootstrap)
    assert out.returncode == 0, out.stdout + out.stderr
    assert f"sent 1 messages to {topic}" in out.stdout
    assert topic in _topics(kafka_bootstrap)


def test_demo_without_its_input_topics_fails_naming_them(kafka_bootstrap: str,
                                                         tmp_path: Path) -> None:
    uid = uuid.uuid4().hex[:6]
    out = streamer(["demo", "--minutes", "1"], tmp_path, KAFKA_BOOTSTRAP=kafka_bootstrap,
                   STREAMER_TOPIC_NEWS=f"news-{uid}", STREAMER_TOPIC_CHAT=f"chat-{uid}")
    assert_one_line(out, ExitCode.NOT_FOUND, f"'news-{uid}', 'chat-{uid}' do not exist",
                    "streamer worker", "--create-topic")
    assert not {f"news-{uid}", f"chat-{uid}"} & _topics(kafka_bootstrap)


@pytest.mark.parametrize("args, option", [
    (["summary", "--top", "many"], "'--top'"),
    (["replay", "--topic", "news", "/no/such/file.jsonl"], "'FILE'"),
    (["alerts", "--min-severity", "loud"], "'--min-severity'"),
    (["no-such-command"], "'no-such-command'"),
], ids=["bad-value", "missing-file", "bad-choice", "unknown-command"])
def test_bad_arguments_fail_in_one_line_naming_them(args: list[str], option: str,
                                                    tmp_path: Path) -> None:
    line = assert_one_line(streamer(args, tmp_path), ExitCode.USAGE, option, "--help")
    assert not line.startswith("Usage:")


def test_a_bad_setting_fails_in_one_line_naming_its_variable(tmp_path: Path) -> None:
    out = streamer(["summary"], tmp_path, STREAMER_REDIS_KEY_PREFIX="not a prefix!")
    assert_one_line(out, ExitCode.NEEDS_OPERATOR, "STREAMER_REDIS_KEY_PREFIX",
                    "'not a prefix!'", "streamer config")


def test_every_exit_code_is_documented_in_the_readme() -> None:
    text = (ROOT / "README.md").read_text("utf-8")
    section = text.split("## Exit codes", 1)[1].split("\n## ", 1)[0]
    documented = {int(n) for n in re.findall(r"^\| `(\d+)` \|", section, flags=re.M)}
    assert documented == {int(code) for code in ExitCode}
