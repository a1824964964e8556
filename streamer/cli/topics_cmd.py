"""``streamer topics``: do the project's topics exist, and with the settings' partitions,
replication factor and retention?

The worker creates missing topics with STREAMER_TOPIC_PARTITIONS,
STREAMER_TOPIC_REPLICATION_FACTOR and STREAMER_TOPIC_RETENTION_MS and never changes an
existing one; this says where an existing topic differs. Exit codes (README.md, "Exit
codes"): 0 every topic exists as configured, 1 one differs, 66 one is missing, 69 Kafka
did not answer.
"""

from __future__ import annotations

import click

from streamer.cli.common import ExitCode, console, fail, run, settings_with
from streamer.kafka.admin import check_topics, project_topics


@click.command()
def topics() -> None:
    """Check the project's topics against STREAMER_TOPIC_* (partitions, replication
    factor, retention.ms).

    Exit code 0: all as configured; 1: one differs; 66: one is missing; 69: Kafka did
    not answer.
    """
    settings = settings_with()
    missing, drift = run(check_topics(settings))
    for d in drift:
        console.print(f"[yellow]differs:[/] {d}", highlight=False)
    present = [t for t in project_topics(settings) if t not in missing]
    if present:
        console.print(f"checked on {settings.kafka.bootstrap}: {', '.join(present)}",
                      highlight=False)
    if missing:
        fail(f"no such topic on {settings.kafka.bootstrap}: {', '.join(missing)}",
             "start a worker (it creates them), or check STREAMER_TOPIC_*",
             ExitCode.NOT_FOUND)
    if drift:
        fail(f"{len(drift)} topic setting(s) differ from STREAMER_TOPIC_*",
             "change the topics with kafka-topics.sh / kafka-configs.sh --alter, or the "
             "settings", ExitCode.FAILED)
