"""Shared fixtures. Real servers come from tests/servers.py (env, Docker or local processes).

``tests`` is not a package: pytest puts this directory on sys.path, so helpers import
as ``from servers import console_consume``.
"""

from __future__ import annotations

from servers import (
    kafka_bootstrap,
    kafka_server,
    local_kafka,
    local_stack_settings,
    redis_url,
)

__all__ = ["kafka_bootstrap", "kafka_server", "local_kafka", "local_stack_settings", "redis_url"]
