"""Datasets: read/write JSON, JSONL, CSV, Parquet; detect and convert formats; canonical rows with stable ids in the
workspace; validation with file + line; split, dedupe, balancing, statistics, paged preview.

Light on purpose (no torch/transformers at import): the studio process uses all of it.
"""
