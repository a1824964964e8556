"""Producers: replay a file into Kafka, or generate the demo market stream."""
