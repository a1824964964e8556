"""Score stage: a batch of texts in, sentiment and topic probabilities out."""

from streamer.score.base import BatchScores, Scorer, ScorerError

__all__ = ["BatchScores", "Scorer", "ScorerError"]
