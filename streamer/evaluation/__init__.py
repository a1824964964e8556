"""Offline evaluation of alerting: synthetic labelled streams, replays through the real
pipeline, the detector stepped without Kafka, and the judge that scores the alerts."""
