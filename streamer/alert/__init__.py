"""Negative-spike alerts: the record, its Redis state and outbox, delivery, evaluation."""
