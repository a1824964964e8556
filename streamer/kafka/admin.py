"""Create the project's topics up front, with the configured partitions, replication factor
and retention; warn about existing topics whose settings differ; delete topics a run made
for itself (benchmark namespaces)."""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType
from aiokafka.errors import for_code

from streamer.kafka.security import KafkaSecurityError, client_options, start_client
from streamer.settings import Settings, TopicSettings

log = logging.getLogger(__name__)

_TOPIC_ALREADY_EXISTS = 36
RETENTION = "retention.ms"
MIN_ISR = "min.insync.replicas"


class TopicError(KafkaSecurityError):
    """Kafka refused to create a topic (e.g. a replication factor above the number of
    brokers); the message names the topic, the broker's reason and the setting. Not
    transient: like a refused credential it needs an operator, and the callers that
    handle KafkaSecurityError (the worker's start: exit 78; the CLI's one-line errors)
    treat it so."""


@dataclass(frozen=True)
class TopicDrift:
    """An existing topic whose setting differs from what the app would create."""

    topic: str
    setting: str  # partitions, replication_factor, retention.ms or min.insync.replicas
    want: str
    have: str

    def __str__(self) -> str:
        env = {"partitions": "STREAMER_TOPIC_PARTITIONS",
               "replication_factor": "STREAMER_TOPIC_REPLICATION_FACTOR",
               RETENTION: "STREAMER_TOPIC_RETENTION_MS",
               MIN_ISR: "STREAMER_TOPIC_MIN_INSYNC_REPLICAS"}[self.setting]
        return (f"topic {self.topic!r} exists with {self.setting} {self.have}, but {env} "
                f"asks for {self.want}; it is left as it is (change it with kafka-topics.sh "
                "/ kafka-configs.sh --alter, or the setting)")


def project_topics(settings: Settings) -> list[str]:
    inputs = list(settings.topics.inputs)
    return [
        *inputs,
        *(settings.topics.dlq(t) for t in inputs),
        settings.topics.scored,
        settings.topics.alerts,
    ]


def topic_configs(topics: TopicSettings) -> dict[str, str]:
    """The topic-level configs the app sets on a topic it creates (unset ones: the
    brokers' defaults)."""
    wanted = {RETENTION: topics.retention_ms, MIN_ISR: topics.min_insync_replicas}
    return {key: str(value) for key, value in wanted.items() if value is not None}


def _admin(settings: Settings) -> AIOKafkaAdminClient:
    return AIOKafkaAdminClient(bootstrap_servers=settings.kafka.bootstrap,
                               **client_options(settings.kafka))


def _raise_on_errors(response: Any, topics: TopicSettings) -> None:
    for entry in getattr(response, "topic_errors", []):
        name, code = entry[0], entry[1]
        if code in (0, _TOPIC_ALREADY_EXISTS):  # another process may have made it: fine
            continue
        message = entry[2] if len(entry) > 2 and entry[2] else for_code(code).__name__
        raise TopicError(
            f"Kafka refused to create topic {name!r}: {message} (partitions "
            f"{topics.partitions}, replication factor {topics.replication_factor}, "
            f"configs {topic_configs(topics) or 'broker defaults'}); check "
            "STREAMER_TOPIC_REPLICATION_FACTOR against the brokers in the cluster, "
            "STREAMER_TOPIC_MIN_INSYNC_REPLICAS against it, STREAMER_TOPIC_PARTITIONS and "
            "STREAMER_TOPIC_RETENTION_MS")


async def ensure_topics(
    settings: Settings, topics: Iterable[str] | None = None, partitions: int | None = None
) -> list[str]:
    """Create missing topics; returns the names created. Existing ones are left as they
    are, with a warning for each setting that differs (``topic_drift``)."""
    names = list(topics) if topics is not None else project_topics(settings)
    n = partitions or settings.topics.partitions
    admin = _admin(settings)
    await start_client(settings.kafka, admin)
    try:
        existing = set(await admin.list_topics())
        missing = [t for t in names if t not in existing]
        present = [t for t in names if t in existing]
        if present:
            for drift in await _drift(admin, settings.topics, present, n):
                log.warning("%s", drift)
        if not missing:
            return []
        rf, configs = settings.topics.replication_factor, topic_configs(settings.topics)
        response = await admin.create_topics(
            [NewTopic(t, num_partitions=n, replication_factor=rf, topic_configs=configs)
             for t in missing])
        _raise_on_errors(response, settings.topics)
        log.info("created topics %s with %d partitions, replication factor %d%s",
                 missing, n, rf, f", {configs}" if configs else "")
        return missing
    finally:
        await admin.close()


async def topic_drift(settings: Settings, topics: Iterable[str] | None = None,
                      partitions: int | None = None) -> list[TopicDrift]:
    """How the existing ones of ``topics`` (default: the project's) differ from the
    settings: partitions, replication factor, and retention.ms and min.insync.replicas
    when they are set."""
    return (await check_topics(settings, topics, partitions))[1]


async def check_topics(settings: Settings, topics: Iterable[str] | None = None,
                       partitions: int | None = None) -> tuple[list[str], list[TopicDrift]]:
    """(the missing ones of ``topics``, how the existing ones differ from the settings)."""
    names = list(topics) if topics is not None else project_topics(settings)
    admin = _admin(settings)
    await start_client(settings.kafka, admin)
    try:
        existing = set(await admin.list_topics())
        present = [t for t in names if t in existing]
        drift = await _drift(admin, settings.topics, present,
                             partitions or settings.topics.partitions) if present else []
        return [t for t in names if t not in existing], drift
    finally:
        await admin.close()


async def _drift(admin: AIOKafkaAdminClient, topics: TopicSettings, names: list[str],
                 partitions: int) -> list[TopicDrift]:
    out: list[TopicDrift] = []
    for described in await admin.describe_topics(names):
        if described.get("error_code"):
            continue
        name = described["topic"]
        parts = described["partitions"]
        if len(parts) != partitions:
            out.append(TopicDrift(name, "partitions", str(partitions), str(len(parts))))
        rf = max((len(p["replicas"]) for p in parts), default=0)
        if parts and rf != topics.replication_factor:
            out.append(TopicDrift(name, "replication_factor", str(topics.replication_factor),
                                  str(rf)))
    wanted = topic_configs(topics)
    if wanted:
        have = await _configs(admin, names, list(wanted))
        out.extend(TopicDrift(name, key, wanted[key], value)
                   for (name, key), value in have.items() if value != wanted[key])
    return sorted(out, key=lambda d: (names.index(d.topic), d.setting))


async def _configs(admin: AIOKafkaAdminClient, names: list[str],
                   keys: list[str]) -> dict[tuple[str, str], str]:
    """(topic, config) -> value, for the ``keys`` of each topic in ``names``."""
    resources = [ConfigResource(ConfigResourceType.TOPIC, t, configs=dict.fromkeys(keys))
                 for t in names]
    out: dict[tuple[str, str], str] = {}
    for response in await admin.describe_configs(resources):
        for resource in response.resources:
            error_code, _msg, _type, name, entries = resource[:5]
            if error_code:
                continue
            for entry in entries:
                if entry[0] in keys:
                    out[(name, entry[0])] = entry[1]
    return out


async def delete_topics(settings: Settings, topics: Iterable[str]) -> list[str]:
    """Delete those of ``topics`` that exist; returns the names deleted."""
    admin = _admin(settings)
    await start_client(settings.kafka, admin)
    try:
        existing = set(await admin.list_topics())
        gone = [t for t in topics if t in existing]
        if gone:
            await admin.delete_topics(gone)
        return gone
    finally:
        await admin.close()
