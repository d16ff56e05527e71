"""Evaluation of a model on a held-out set: answer checks, judge win-rate, KL/perplexity (the `evaluate` job)."""
