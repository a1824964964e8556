"""The benchmark's errors: what a person must fix before it can run, said in the message."""

from __future__ import annotations


class BenchError(RuntimeError):
    """Something a person must fix before the benchmark can run (said in the message)."""


class StackDown(BenchError):
    """Kafka or Redis does not answer."""
