"""Negative-spike detection: a pure event-time detector core and its Redis windows."""

from streamer.detect.core import (
    SEVERITIES,
    AlertKind,
    Decision,
    Detector,
    DetectorParams,
    KeyState,
    Severity,
    WindowStats,
)

__all__ = [
    "SEVERITIES",
    "AlertKind",
    "Decision",
    "Detector",
    "DetectorParams",
    "KeyState",
    "Severity",
    "WindowStats",
]
