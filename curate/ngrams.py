"""Word n-gram overlap between held-out and training texts: the split stage's decontamination and the
leakage gate both use this, with the same defaults.

N-grams are hashed with MinHasher's shingling (literal, and with `numbers` on also with every number
as one token: a copy with its numbers changed still overlaps). An n-gram found in more than
`max_document_frequency` documents is boilerplate, not leakage. A (train, held) pair leaks when the
n-grams they share cover at least `min_overlap` of the shorter text's n-grams.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import polars as pl

from curate.minhash import MinHasher
from curate.normalize import Normalization

NGRAM = 13
MIN_OVERLAP = 0.1
MAX_DOCUMENT_FREQUENCY = 10


def hashers(ngram: int, numbers: bool) -> list[MinHasher]:
    """The literal n-gram hasher, and with `numbers` the one that reads every number as "0"."""
    literal = MinHasher(num_perm=16, ngram=ngram, normalization=Normalization())
    if not numbers:
        return [literal]
    return [literal, MinHasher(num_perm=16, ngram=ngram, normalization=Normalization(numbers=True))]


def overlaps(
    hasher: MinHasher, held_texts: list[str], train_texts: list[str], train_idx: np.ndarray, limit: int
) -> tuple[pl.DataFrame, np.ndarray, np.ndarray]:
    """Pairs (train row, held index) with the number of distinct n-grams they share (`len`), leaving out
    n-grams in more than `limit` documents; and each train and held text's n-gram count."""
    held_hashes, held_offsets = hasher.shingle_hashes64(held_texts)
    train_hashes, train_offsets = hasher.shingle_hashes64(train_texts)
    held_owner = np.repeat(np.arange(len(held_texts)), np.diff(held_offsets))
    train_owner = np.repeat(train_idx, np.diff(train_offsets))
    pairs = _pairs(held_hashes, held_owner, train_hashes, train_owner, limit)
    return pairs, np.diff(train_offsets), np.diff(held_offsets)


def covering(
    pairs: pl.DataFrame, train_idx: np.ndarray, train_grams: np.ndarray, held_grams: np.ndarray, min_overlap: float
) -> pl.DataFrame:
    """(train, held) of the pairs whose shared n-grams cover at least min_overlap of the shorter text."""
    if len(pairs):
        mine = np.zeros(int(train_idx.max()) + 1 if len(train_idx) else 0, np.int64)  # train row -> its n-grams
        mine[train_idx] = train_grams
        smaller = np.minimum(mine[pairs["train"].to_numpy()], held_grams[pairs["held"].to_numpy()])
        pairs = pairs.filter(pl.Series(pairs["len"].to_numpy() / np.maximum(smaller, 1) >= min_overlap))
    return pairs.select(pl.col("train").cast(pl.Int64), pl.col("held").cast(pl.Int64))


def leaking_pairs(
    train_texts: list[str],
    held_texts: list[str],
    ngram: int = NGRAM,
    min_overlap: float = MIN_OVERLAP,
    max_document_frequency: int = MAX_DOCUMENT_FREQUENCY,
    numbers: bool = True,
) -> int:
    """How many (train, held) text pairs leak, literally or with numbers read as one token."""
    if not train_texts or not held_texts:
        return 0
    train_idx = np.arange(len(train_texts))
    found = []
    for hasher in hashers(ngram, numbers):
        pairs, train_grams, held_grams = overlaps(hasher, held_texts, train_texts, train_idx, max_document_frequency)
        found.append(covering(pairs, train_idx, train_grams, held_grams, min_overlap))
    return pl.concat(found).unique().height


def _pairs(
    held_hashes: np.ndarray, held_owner: np.ndarray, train_hashes: np.ndarray, train_owner: np.ndarray, limit: int
) -> pl.DataFrame:
    held = pl.DataFrame({"h": held_hashes, "held": held_owner}, schema={"h": pl.UInt64, "held": pl.Int64}).unique()
    # Only train n-grams also found held out can leak or count towards a held-out n-gram's document
    # frequency: filter before de-duplicating the (much larger) train table.
    train = (
        pl.DataFrame({"h": train_hashes, "train": train_owner}, schema={"h": pl.UInt64, "train": pl.Int64})
        .join(held.select("h").unique(), on="h", how="semi")
        .unique()
    )
    if limit:
        held = held.join(_frequent(train, held, limit), on="h", how="anti")
    return train.join(held, on="h").group_by("train", "held").len()


def _frequent(train: pl.DataFrame, held: pl.DataFrame, limit: int) -> pl.DataFrame:
    """The held-out n-grams (column h) found in more than `limit` documents, train and held-out;
    `train` holds only (n-gram, document) pairs whose n-gram is held out too."""
    docs = pl.concat([train.select("h"), held.select("h")])
    return docs.group_by("h").len().filter(pl.col("len") > limit).select("h")


def gram_chunk(hasher: MinHasher, item: tuple[str, list[str], np.ndarray], partitions: int):
    """A pool task: one chunk's n-gram hashes, split by hash into the shuffle's partitions."""
    side, texts, owners = item
    hashes, offsets = hasher.shingle_hashes64(texts)
    owner = np.repeat(np.asarray(owners, np.int64), np.diff(offsets))
    part = (hashes % np.uint64(partitions)).astype(np.int64)
    return (side, np.diff(offsets)), [(side, hashes[part == k], owner[part == k]) for k in range(partitions)]


def pair_partition(limit: int, *parts: tuple[str, np.ndarray, np.ndarray]) -> pl.DataFrame:
    """A reducer: the pairs and shared-n-gram counts of the n-grams in one partition."""

    def side(name: str, i: int) -> np.ndarray:
        arrays = [p[i] for p in parts if p[0] == name]
        return np.concatenate(arrays) if arrays else np.empty(0, np.uint64 if i == 1 else np.int64)

    return _pairs(side("held", 1), side("held", 2), side("train", 1), side("train", 2), limit)


PARTITION_ROWS = 10_000  # texts whose n-grams one on-disk partition holds, about (memory, not results)
HASH_TEXTS = 4096  # texts hashed at once when adding (memory, not results)
MERGE_ROWS = 1_000_000  # partition pairs collected before they are first merged (memory, not results)


class _PairCounts:
    """(train, held) pair counts summed over partitions. Near-duplicates share n-grams in many
    partitions, so the per-partition frames are merged as they come (whenever the unmerged ones
    outgrow the merged), holding each pair about once instead of once per partition."""

    def __init__(self) -> None:
        self.merged: pl.DataFrame | None = None
        self.pending: list[pl.DataFrame] = []
        self.rows = 0

    def add(self, frame: pl.DataFrame) -> None:
        self.pending.append(frame)
        self.rows += frame.height
        if self.rows > max(MERGE_ROWS, self.merged.height if self.merged is not None else 0):
            self.merged, self.pending, self.rows = self.total(), [], 0

    def total(self) -> pl.DataFrame:
        frames = ([self.merged] if self.merged is not None else []) + self.pending
        return pl.concat(frames, how="vertical_relaxed").group_by("train", "held").agg(pl.col("len").sum())


class GramStore:
    """The hashed n-grams of many texts, partitioned by hash into files under `folder`, so that the
    pairs two sets of texts share are found one partition at a time: memory is bounded by a
    partition, not by the corpus. Texts are added batch by batch (`add`) and known by their row
    number; `pairs` gives exactly what `overlaps` gives for the same texts in memory (an n-gram lives
    in one partition, so its document frequency and the pairs it connects are all found there)."""

    def __init__(self, folder: Path, hasher: MinHasher, rows: int):
        self.folder, self.hasher = folder, hasher
        self.partitions = max(1, -(-rows // PARTITION_ROWS))
        folder.mkdir(parents=True, exist_ok=True)
        self.grams: list[np.ndarray] = []  # per batch added, each text's n-gram count
        self.rows = 0

    def add(self, texts: list[str]) -> None:
        """Hash `texts` (the next rows), HASH_TEXTS at a time: hashing holds several times the text."""
        for start in range(0, len(texts), HASH_TEXTS):
            self._add(texts[start : start + HASH_TEXTS])

    def _add(self, texts: list[str]) -> None:
        hashes, offsets = self.hasher.shingle_hashes64(texts)
        owner = np.repeat(np.arange(self.rows, self.rows + len(texts), dtype=np.int64), np.diff(offsets))
        # grouped by partition with one stable sort (a mask per partition costs partitions x n-grams)
        order = np.argsort(hashes % np.uint64(self.partitions), kind="stable")
        hashes, owner = hashes[order], owner[order]
        bounds = np.searchsorted(hashes % np.uint64(self.partitions), np.arange(self.partitions + 1))
        for k in np.flatnonzero(np.diff(bounds)):
            with open(self.folder / f"{k}.h", "ab") as fh:
                fh.write(hashes[bounds[k] : bounds[k + 1]].tobytes())
            with open(self.folder / f"{k}.r", "ab") as fh:
                fh.write(owner[bounds[k] : bounds[k + 1]].tobytes())
        self.grams.append(np.diff(offsets))
        self.rows += len(texts)

    def counts(self) -> np.ndarray:
        """Each text's n-gram count, by row."""
        return np.concatenate(self.grams) if self.grams else np.empty(0, np.int64)

    def _partition(self, k: int) -> tuple[np.ndarray, np.ndarray]:
        path = self.folder / f"{k}.h"
        if not path.is_file():
            return np.empty(0, np.uint64), np.empty(0, np.int64)
        return np.fromfile(path, np.uint64), np.fromfile(self.folder / f"{k}.r", np.int64)

    def pairs(
        self, held_rows: np.ndarray, train_rows: np.ndarray, extra: list[str], limit: int
    ) -> tuple[pl.DataFrame, np.ndarray]:
        """`overlaps` with held = the texts of `held_rows` (in that order) then the `extra` texts (an
        eval set's, hashed here), and train = the texts of `train_rows`, known by row: the (train row,
        held index) pairs with their shared n-gram count, and each held text's n-gram count."""
        extra_hashes, extra_offsets = self.hasher.shingle_hashes64(extra)
        extra_owner = np.repeat(np.arange(len(extra), dtype=np.int64) + len(held_rows), np.diff(extra_offsets))
        extra_part = extra_hashes % np.uint64(self.partitions)
        held_at = np.full(self.rows, -1, np.int64)
        held_at[held_rows] = np.arange(len(held_rows))
        is_train = np.zeros(self.rows, bool)
        is_train[train_rows] = True
        pairs = _PairCounts()
        for k in range(self.partitions):
            hashes, rows = self._partition(k)
            held = held_at[rows] >= 0
            mine = extra_part == k
            pairs.add(
                _pairs(
                    np.concatenate([hashes[held], extra_hashes[mine]]),
                    np.concatenate([held_at[rows[held]], extra_owner[mine]]),
                    hashes[is_train[rows]],
                    rows[is_train[rows]],
                    limit,
                )
            )
        pairs = pairs.total()
        held_grams = np.concatenate([self.counts()[held_rows], np.diff(extra_offsets)])
        return pairs, held_grams
