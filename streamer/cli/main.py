"""Entry point of the ``streamer`` command."""

from __future__ import annotations

import click

from streamer.cli.alerts_cmd import alerts, trends
from streamer.cli.bench_cmd import bench
from streamer.cli.common import StreamerGroup
from streamer.cli.config_cmd import config
from streamer.cli.eval_cmd import eval_alerts, eval_stream
from streamer.cli.lag_cmd import lag
from streamer.cli.models_cmd import models
from streamer.cli.produce_cmd import demo, replay
from streamer.cli.run_demo_cmd import run_demo
from streamer.cli.schema_cmd import schema
from streamer.cli.stack_cmd import stack
from streamer.cli.summary_cmd import latency, summary
from streamer.cli.topics_cmd import topics
from streamer.cli.worker_cmd import worker


# StreamerGroup: an expected failure (bad arguments, a server down, missing data) ends as
# one line on stderr and a documented exit code (README.md, "Exit codes").
@click.group(cls=StreamerGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="streamer")
def cli() -> None:
    """Real-time text monitoring for financial markets.

    Kafka in (news, chat) -> scored events out, trends in Redis, alerts, latency.
    Every setting can also be given as an environment variable (`streamer config`,
    docs/SETTINGS.md).
    """


for _command in (
    run_demo, worker, replay, demo, alerts, trends, eval_alerts, eval_stream, models, schema,
    summary, latency, stack, config, bench, lag, topics,
):
    cli.add_command(_command)


if __name__ == "__main__":
    cli()
