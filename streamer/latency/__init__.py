"""Latency accounting: one clock, per-stage stamps, HDR histograms."""

from streamer.latency.clock import Clock
from streamer.latency.histograms import MEANING, STAGES, LatencyRecorder, requested_at

__all__ = ["MEANING", "STAGES", "Clock", "LatencyRecorder", "requested_at"]
