"""Kafka over SASL_SSL (SCRAM-SHA-256, the local stack's own CA): the pipeline runs
through it end to end; a wrong password, an untrusted certificate or a plaintext client
fail fast with a message that says what to fix; the password never reaches a log or a
command line."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from harness import REPO, Namespace, WorkerProcess, is_valid, mixed_stream, produce, read_topic
from harness import wait_consumed as wait_all_consumed
from pydantic import SecretStr
from servers import free_ports, running

from streamer.devstack import LocalKafka
from streamer.kafka.security import KafkaSecurityError, preflight
from streamer.produce.sender import Outgoing, send_all
from streamer.settings import Settings

PASSWORD = "kpw-5e0c7a1b-scram"
WRONG = "kpw-wrong-0000"


@dataclass(frozen=True)
class SecureKafka:
    bootstrap: str
    settings: Settings  # the clients' view: SASL_SSL, user, password file, CA file
    env: dict[str, str]  # the same for a subprocess, the password in the environment


@pytest.fixture(scope="module")
def sasl_kafka(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SecureKafka]:
    """A second local broker whose client listener is SASL_SSL with SCRAM user alice."""
    data = tmp_path_factory.mktemp("saslkafka")
    secret = data / "kafka.pw"
    secret.write_text(PASSWORD + "\n")
    secret.chmod(0o600)
    kafka_port, controller_port = free_ports(2)
    bootstrap = f"127.0.0.1:{kafka_port}"
    ca = data / "tls" / "ca.pem"
    settings = Settings(
        _env_file=None, data_dir=data, kafka_port=kafka_port,
        kafka_controller_port=controller_port, KAFKA_BOOTSTRAP=bootstrap,
        kafka_security_protocol="SASL_SSL", kafka_sasl_mechanism="SCRAM-SHA-256",
        kafka_sasl_username="alice", kafka_sasl_password_file=secret, kafka_ssl_cafile=ca,
    )
    env = {
        "STREAMER_KAFKA_SECURITY_PROTOCOL": "SASL_SSL",
        "STREAMER_KAFKA_SASL_MECHANISM": "SCRAM-SHA-256",
        "STREAMER_KAFKA_SASL_USERNAME": "alice",
        "STREAMER_KAFKA_SASL_PASSWORD": PASSWORD,
        "STREAMER_KAFKA_SSL_CAFILE": str(ca),
    }
    with running(LocalKafka(settings), "a SASL_SSL local Kafka"):
        yield SecureKafka(bootstrap, settings, env)


def _cli(args: list[str], env: dict[str, str], timeout: float = 90.0
         ) -> tuple[subprocess.CompletedProcess[str], float]:
    t0 = time.monotonic()
    out = subprocess.run([sys.executable, "-m", "streamer.cli.main", *args],
                         env={**os.environ, **env}, cwd=REPO, capture_output=True, text=True,
                         timeout=timeout)
    return out, time.monotonic() - t0


# --- fast: connection checks --------------------------------------------------------------


def test_the_right_credentials_connect(sasl_kafka: SecureKafka) -> None:
    asyncio.run(preflight(sasl_kafka.settings.kafka))


def test_a_wrong_password_is_a_clear_error(sasl_kafka: SecureKafka) -> None:
    wrong = sasl_kafka.settings.replace(**{
        "kafka_sasl_password": SecretStr(WRONG), "kafka_sasl_password_file": None})
    t0 = time.monotonic()
    with pytest.raises(KafkaSecurityError, match="refused the SASL credentials") as err:
        asyncio.run(send_all(wrong, [Outgoing("news", None, b"{}")], rate=None,
                             progress=False))
    assert time.monotonic() - t0 < 30
    assert "STREAMER_KAFKA_SASL_PASSWORD" in str(err.value) and WRONG not in str(err.value)


def test_an_untrusted_certificate_names_the_ca_setting(sasl_kafka: SecureKafka) -> None:
    no_ca = sasl_kafka.settings.replace(**{"kafka_ssl_cafile": None})
    with pytest.raises(KafkaSecurityError, match="STREAMER_KAFKA_SSL_CAFILE"):
        asyncio.run(preflight(no_ca.kafka))


def test_a_plaintext_client_is_told_about_the_security_protocol(
    sasl_kafka: SecureKafka,
) -> None:
    plain = sasl_kafka.settings.replace(**{"kafka_security_protocol": "PLAINTEXT"})
    with pytest.raises(KafkaSecurityError, match="STREAMER_KAFKA_SECURITY_PROTOCOL"):
        asyncio.run(preflight(plain.kafka))


def test_missing_credentials_are_named(sasl_kafka: SecureKafka) -> None:
    none = sasl_kafka.settings.replace(**{"kafka_sasl_password_file": None})
    with pytest.raises(KafkaSecurityError, match="STREAMER_KAFKA_SASL_PASSWORD"):
        asyncio.run(preflight(none.kafka))


def test_the_password_stays_off_every_command_line(sasl_kafka: SecureKafka) -> None:
    """The SCRAM user was created through a java @argfile, not kafka-storage arguments."""
    for pid in os.listdir("/proc"):
        if pid.isdigit():
            try:
                cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
            except OSError:
                continue
            assert PASSWORD.encode() not in cmdline


def test_the_cli_producer_with_a_wrong_password_fails_fast(
    sasl_kafka: SecureKafka, tmp_path: Path,
) -> None:
    lines = tmp_path / "one.jsonl"
    lines.write_text(json.dumps({"id": "n1", "headline": "XOM falls", "body": "oil"}) + "\n")
    env = {**sasl_kafka.env, "KAFKA_BOOTSTRAP": sasl_kafka.bootstrap,
           "STREAMER_KAFKA_SASL_PASSWORD": WRONG, "STREAMER_DATA_DIR": str(tmp_path)}
    out, seconds = _cli(["replay", str(lines), "--topic", "news", "--rate", "0"], env)
    text = out.stdout + out.stderr
    assert out.returncode != 0, text
    assert "refused the SASL credentials" in text and "Traceback" not in text, text
    assert WRONG not in text
    assert seconds < 30


# --- slow: real workers -------------------------------------------------------------------


@pytest.mark.slow
def test_a_worker_with_a_wrong_password_stops_with_the_reason(
    sasl_kafka: SecureKafka, redis_url: str, tmp_path: Path,
) -> None:
    ns = Namespace(sasl_kafka.bootstrap, redis_url, tmp_path,
                   extra_env={**sasl_kafka.env, "STREAMER_KAFKA_SASL_PASSWORD": WRONG})
    out, seconds = _cli(["worker"], ns.env(), timeout=120)
    text = out.stdout + out.stderr
    assert out.returncode != 0, text
    assert "refused the SASL credentials" in text, text
    assert WRONG not in text
    assert seconds < 30, f"took {seconds:.0f}s"


@dataclass
class SecureRun:
    ns: Namespace
    worker: WorkerProcess
    n_messages: int
    n_valid: int


@pytest.fixture(scope="module")
def secure_run(sasl_kafka: SecureKafka, redis_url: str,
               tmp_path_factory: pytest.TempPathFactory) -> Iterator[SecureRun]:
    """One worker scores a few hundred messages, everything through SASL_SSL."""
    ns = Namespace(sasl_kafka.bootstrap, redis_url, tmp_path_factory.mktemp("secure"),
                   extra_env=sasl_kafka.env)
    messages = mixed_stream(ns, seed=5, minutes=1.5, bad_fraction=0.05, big_message=False)
    valid = [m for m in messages if is_valid(ns.settings(), m)]
    assert len(messages) >= 300
    worker = WorkerProcess(ns, "secure").start()
    try:
        worker.wait_ready()
        produce(ns, messages)  # the project's producer, SASL_SSL from the settings
        wait_all_consumed(ns, len(messages), workers=[worker])
        yield SecureRun(ns, worker, len(messages), len(valid))
    finally:
        worker.stop()


@pytest.mark.slow
def test_the_pipeline_runs_through_sasl_ssl(secure_run: SecureRun) -> None:
    scored = read_topic(secure_run.ns, secure_run.ns.settings().topics.scored,
                        secure_run.n_valid)
    assert len(scored) == secure_run.n_valid == len({ev["id"] for ev in scored})


@pytest.mark.slow
def test_the_worker_log_never_holds_the_password(secure_run: SecureRun) -> None:
    secure_run.worker.stop()  # flush everything it would write
    log = secure_run.worker.log.read_text(errors="replace")
    assert log, "the worker wrote no log at all"
    assert PASSWORD not in log
