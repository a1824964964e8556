"""The library: ingest -> batch -> score -> aggregate -> detect -> alert, with latency
stamps riding on one event; plus the bundle reader, training, evaluation, benchmarks,
the local dev stack and the ``streamer`` CLI. Import submodules directly."""
