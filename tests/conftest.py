"""Shared fixtures. Real servers come from tests/servers.py (env, Docker or local processes).

``tests`` is not a package: pytest puts this directory on sys.path, so helpers import
as ``from servers import console_consume``.
"""

from __future__ import annotations

import json
from typing import Any

from servers import (
    kafka_bootstrap,
    kafka_server,
    local_kafka,
    local_stack_settings,
    redis_url,
)

__all__ = ["kafka_bootstrap", "kafka_server", "local_kafka", "local_stack_settings", "redis_url"]


def pytest_terminal_summary(terminalreporter: Any) -> None:
    """The fault table of tests/test_chaos.py: printed, and saved to test-output/."""
    from harness import CHAOS_ROWS, REPO

    if not CHAOS_ROWS:
        return
    cols = ["fault", "sent", "scored", "lost", "double_counted", "dead_lettered",
            "recovery_s", "recovery", "note"]
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for row in CHAOS_ROWS:
        lines.append("| " + " | ".join("-" if row[c] is None else str(row[c]) for c in cols)
                     + " |")
    out = REPO / "test-output"
    out.mkdir(exist_ok=True)
    (out / "chaos.md").write_text("\n".join(lines) + "\n")
    (out / "chaos.json").write_text(json.dumps(CHAOS_ROWS, indent=2) + "\n")
    terminalreporter.write_sep("=", "fault table (test-output/chaos.md)")
    for line in lines:
        terminalreporter.write_line(line)
