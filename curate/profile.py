"""Cheap dataset profiles for the report: length histograms and value counts."""

from __future__ import annotations

import math

import polars as pl

from curate.records import content_texts

# Log2 buckets of characters: "<16", "16-31", ..., ">=1M" — stable across batches so they add up.
BUCKETS = [0] + [2**k for k in range(4, 21)]


def bucket_label(i: int) -> str:
    """Half-open bucket [lo, hi) in characters, e.g. "1k-2k"."""
    if i + 1 == len(BUCKETS):
        return f"{_human(BUCKETS[i])}+"
    return f"{_human(BUCKETS[i])}-{_human(BUCKETS[i + 1])}"


def _human(n: int) -> str:
    if n >= 1 << 20:
        return f"{n >> 20}M"
    if n >= 1 << 10:
        return f"{n >> 10}k"
    return str(n)


def length_histogram(df: pl.DataFrame) -> list[int]:
    counts = [0] * len(BUCKETS)
    for text in content_texts(df):
        n = len(text)
        i = 0 if n < BUCKETS[1] else min(len(BUCKETS) - 1, int(math.log2(n)) - 3)
        counts[i] += 1
    return counts


def add_histograms(hists: list[list[int]]) -> list[int]:
    return [sum(col) for col in zip(*hists)] if hists else [0] * len(BUCKETS)


def value_counts(df: pl.DataFrame, column: str, top: int = 20) -> dict[str, int]:
    if column not in df.columns or df.height == 0:
        return {}
    counts = df[column].fill_null("(none)").value_counts().sort(["count", column], descending=[True, False]).head(top)
    return dict(zip(counts[column].to_list(), counts["count"].to_list()))
