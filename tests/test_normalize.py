"""Dedup's exact keys and the gates' duplicate/leakage hash agree on what "the same text" is."""

import polars as pl

from curate.normalize import Normalization, content_hash, exact_keys

TEXTS = [
    "Don't stop!",
    "don t   stop",  # same tokens after punctuation and spacing
    "DON'T STOP",
    "dont stop",  # a different token: not the same text
    "Hello,\tworld\n",
    "hello world",
    "a-b",
    "ab",
    "",
    "  ...  ",  # nothing but punctuation: the same as the empty text
]


def _groups(values: list) -> list[set[int]]:
    by: dict = {}
    for i, v in enumerate(values):
        by.setdefault(v, set()).add(i)
    return sorted(by.values(), key=min)


def test_gate_hash_groups_texts_exactly_as_dedup_keys_do():
    keys = exact_keys(TEXTS)
    hashes = pl.DataFrame({"t": TEXTS}).select(content_hash(pl.col("t")))[:, 0].to_list()
    assert _groups(hashes) == _groups(keys)
    assert _groups(keys) == [{0, 1, 2}, {3}, {4, 5}, {6}, {7}, {8, 9}]


def test_a_stage_normalisation_setting_changes_both_the_same_way():
    texts = ["Total: 1,024 items", "total 2048 items", "Total 1024 items"]
    numbers = Normalization(numbers=True)
    keys = exact_keys(texts, numbers)
    hashes = pl.DataFrame({"t": texts}).select(content_hash(pl.col("t"), numbers))[:, 0].to_list()
    assert _groups(keys) == _groups(hashes) == [{0, 1, 2}]
    assert _groups(exact_keys(texts)) == [{0}, {1}, {2}]
