"""Batch stage: a micro-batch of raw records through decode, score and aggregate."""

from streamer.batch.processor import BatchOutput, BatchProcessor, RawRecord

__all__ = ["BatchOutput", "BatchProcessor", "RawRecord"]
