"""Latency accounting: one clock, per-stage stamps, HDR histograms."""

from streamer.latency.clock import Clock
from streamer.latency.histograms import STAGES, LatencyRecorder

__all__ = ["STAGES", "Clock", "LatencyRecorder"]
