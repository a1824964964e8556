"""Model bundles as the worker reads them: manifest, loading and verifying, tokenizers.

Serving code only: no torch and no training here (``streamer.training`` builds bundles).
"""
