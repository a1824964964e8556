"""Kafka client security (SASL, TLS) from the settings, for every client the project makes.

``client_options`` feeds aiokafka producers, consumers and admin clients;
``faust_credentials`` feeds the worker's Faust app; ``preflight`` connects once and
turns a refused password or an untrusted certificate into a message that says what to fix
(aiokafka itself only logs the cause and keeps retrying, or fails with "Unable to
bootstrap"). Passwords never appear in messages.
"""

from __future__ import annotations

import asyncio
import ssl
from typing import Any, Protocol

from aiokafka.errors import KafkaConnectionError, KafkaError

from streamer.settings import KafkaSettings


class KafkaSecurityError(RuntimeError):
    """Kafka refused the credentials or the TLS handshake, or did not answer at all
    (``transient``: refused connections and timeouts, which a retry may get past); the
    message says what to fix."""

    def __init__(self, message: str, *, transient: bool = False) -> None:
        super().__init__(message)
        self.transient = transient


def _ssl_context(kafka: KafkaSettings) -> ssl.SSLContext:
    from aiokafka.helpers import create_ssl_context

    cafile = kafka.ssl_cafile
    if cafile is not None and not cafile.is_file():
        raise KafkaSecurityError(
            f"STREAMER_KAFKA_SSL_CAFILE={cafile} is not a readable file")
    context: ssl.SSLContext = create_ssl_context(cafile=str(cafile) if cafile else None)
    return context


def _credentials(kafka: KafkaSettings) -> tuple[str, str]:
    user = kafka.sasl_username
    try:
        password = kafka.password()
    except ValueError as exc:
        raise KafkaSecurityError(f"{exc}; check STREAMER_KAFKA_SASL_PASSWORD_FILE") from exc
    if not user or password is None:
        raise KafkaSecurityError(
            f"STREAMER_KAFKA_SECURITY_PROTOCOL={kafka.security_protocol} needs "
            "STREAMER_KAFKA_SASL_USERNAME and STREAMER_KAFKA_SASL_PASSWORD (or "
            "STREAMER_KAFKA_SASL_PASSWORD_FILE)")
    return user, password


def client_options(kafka: KafkaSettings) -> dict[str, Any]:
    """Keyword arguments for AIOKafkaProducer/Consumer/AdminClient/Client."""
    protocol = kafka.security_protocol
    options: dict[str, Any] = {"security_protocol": protocol}
    if protocol in ("SSL", "SASL_SSL"):
        options["ssl_context"] = _ssl_context(kafka)
    if protocol in ("SASL_PLAINTEXT", "SASL_SSL"):
        user, password = _credentials(kafka)
        options.update(sasl_mechanism=kafka.sasl_mechanism,
                       sasl_plain_username=user, sasl_plain_password=password)
    return options


def faust_credentials(kafka: KafkaSettings) -> Any:
    """``broker_credentials`` for faust.App: None (PLAINTEXT), SSL or SASL credentials."""
    import faust

    protocol = kafka.security_protocol
    if protocol == "PLAINTEXT":
        return None
    if protocol == "SSL":
        return faust.SSLCredentials(_ssl_context(kafka))
    user, password = _credentials(kafka)
    # Faust picks SASL_SSL when an ssl_context is given, SASL_PLAINTEXT otherwise.
    return faust.SASLCredentials(
        username=user, password=password, mechanism=kafka.sasl_mechanism,
        ssl_context=_ssl_context(kafka) if protocol == "SASL_SSL" else None,
    )


def describe(kafka: KafkaSettings, exc: BaseException) -> str:
    """What went wrong talking to Kafka, in words, without any secret."""
    from aiokafka.errors import SaslAuthenticationFailed, UnsupportedSaslMechanismError

    where = kafka.bootstrap
    protocol = kafka.security_protocol
    if isinstance(exc, KafkaSecurityError):
        return str(exc)
    if isinstance(exc, SaslAuthenticationFailed):
        return (f"Kafka at {where} refused the SASL credentials of user "
                f"{kafka.sasl_username!r} ({kafka.sasl_mechanism}): check "
                "STREAMER_KAFKA_SASL_USERNAME and STREAMER_KAFKA_SASL_PASSWORD(_FILE)")
    if isinstance(exc, UnsupportedSaslMechanismError):
        return (f"Kafka at {where} does not offer SASL mechanism "
                f"{kafka.sasl_mechanism}; check STREAMER_KAFKA_SASL_MECHANISM")
    if isinstance(exc, ssl.SSLCertVerificationError):
        return (f"Kafka at {where}: the broker's TLS certificate is not trusted "
                f"({exc.verify_message}); set STREAMER_KAFKA_SSL_CAFILE to the CA that "
                "signed it")
    if isinstance(exc, ssl.SSLError):
        return (f"Kafka at {where}: TLS handshake failed ({exc.reason or exc}); does the "
                f"listener speak {protocol}? (STREAMER_KAFKA_SECURITY_PROTOCOL)")
    if isinstance(exc, ConnectionRefusedError):
        return f"Kafka at {where} did not answer (connection refused)"
    message = f"Kafka at {where} did not answer ({type(exc).__name__}: {exc})"
    if protocol == "PLAINTEXT" and not isinstance(exc, TimeoutError):
        # A TLS or SASL listener drops a plaintext client without a word.
        message += ("; if its listener needs TLS or SASL, set "
                    "STREAMER_KAFKA_SECURITY_PROTOCOL and the credentials")
    return message


class _Startable(Protocol):
    async def start(self) -> None: ...


async def start_client(kafka: KafkaSettings, client: _Startable) -> None:
    """``await client.start()``; when it cannot bootstrap, find out why (preflight) and
    raise KafkaSecurityError saying so, instead of aiokafka's bare "Unable to bootstrap"."""
    try:
        await client.start()
    except KafkaConnectionError:
        await preflight(kafka)  # raises with the reason when it is one we can name
        raise


async def preflight(kafka: KafkaSettings, timeout_s: float = 15.0) -> None:
    """Connect (TLS + SASL) to the first bootstrap server that answers and ask for its
    API versions; raise KafkaSecurityError with a clear reason when none does.

    Unlike a client's start(), a refused password or certificate fails here at once
    instead of surfacing as a retry loop or a bare "Unable to bootstrap".
    """
    from aiokafka.conn import create_conn

    options = client_options(kafka)
    last: BaseException | None = None
    for hostport in (h.strip() for h in kafka.bootstrap.split(",")):
        if not hostport:
            continue
        host, _, port = hostport.rpartition(":")
        try:
            conn = await asyncio.wait_for(
                create_conn(host.strip("[]") or "127.0.0.1", int(port),
                            client_id="streamer-preflight",
                            request_timeout_ms=int(timeout_s * 1000), **options),
                timeout_s,
            )
        except (OSError, KafkaError, asyncio.IncompleteReadError) as exc:  # timeouts: OSError
            last = exc
            continue
        conn.close()
        return
    # Refused or timed out (TLS errors are OSErrors too, but never transient): the broker
    # may be starting or restarting.
    transient = isinstance(last, ConnectionRefusedError | TimeoutError)
    raise KafkaSecurityError(describe(kafka, last or ValueError("no bootstrap server")),
                             transient=transient)
