"""Normalised content: the one definition of "the same text" that dedup's exact keys, the gates'
duplicate and leakage measures and the trainer's leakage check share.

Normalisation is a chain of vectorised polars string operations that applies to a `pl.Series`
(a batch of texts) and to a `pl.Expr` (a column inside a lazy query) alike, so the stage working
on Python lists and the gates working on shards compare texts the same way.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TypeVar

import polars as pl
import xxhash

_Text = TypeVar("_Text", pl.Series, pl.Expr)


@dataclass(frozen=True)
class Normalization:
    """How text is normalised before hashing or comparing."""

    lowercase: bool = True
    punctuation: bool = True  # drop punctuation: tokens are runs of word characters
    digits: bool = False  # map every digit to 0
    numbers: bool = False  # map every number (12, 3.5, 1,024) to one token "0": edited numbers still match

    def apply(self, s: _Text) -> _Text:
        """The normalised text: tokens joined by single spaces, no leading or trailing space."""
        if self.lowercase:
            s = s.str.to_lowercase()
        if self.numbers:
            s = s.str.replace_all(r"\b\d+(?:[.,]\d+)*\b", "0")
        if self.digits:
            s = s.str.replace_all(r"\d", "0")
        # Separators become single spaces, then split: the same tokens as extract_all(r"\w+") at a
        # third of the cost (most spaces are already single and are left alone).
        s = s.str.replace_all(r"[^\w ]+" if self.punctuation else r"[^\S ]+", " ")
        return s.str.replace_all(r" {2,}", " ").str.strip_chars(" ")

    def tokens(self, texts: list[str]) -> pl.Series:
        """A list of tokens per text (whitespace collapses; punctuation dropped if configured)."""
        s = self.apply(pl.Series(texts, dtype=pl.Utf8))
        return s.set(s == "", None).str.split(" ").fill_null([])

    def texts(self, texts: list[str]) -> list[str]:
        """The normalised text itself, for exact keys and char shingles."""
        return self.apply(pl.Series(texts, dtype=pl.Utf8)).to_list()


DEFAULT = Normalization()


def exact_keys(texts: list[str], normalization: Normalization = DEFAULT) -> list[str]:
    """Dedup's exact key of each text: a 128-bit hash of its normalised form (stored beside the shards)."""
    return [xxhash.xxh3_128_hexdigest(t.encode()) for t in normalization.texts(texts)]


def content_hash(content: pl.Expr, normalization: Normalization = DEFAULT) -> pl.Expr:
    """The same normalised form inside a polars query, hashed by polars (for counting duplicates and
    leaks across shards; equal exactly when `exact_keys` are, up to hash collisions)."""
    return normalization.apply(content).hash(seed=0)
