"""Benchmarks that write their figures (with command, machine and date) for docs/BENCHMARKS.md."""
