"""Word n-gram overlap between held-out and training texts: the split stage's decontamination and the
leakage gate both use this, with the same defaults.

A (train, held) pair leaks when the n-grams they share cover at least `min_overlap` of the held-out
text's tokens, Tülu 3's measure: a held-out token is covered when an n-gram holding it is also in the
train text. It is judged on the held-out side, so a train record that quotes a whole benchmark question
covers all of it, and an idiom or a phrase two texts happen to share covers little of either. A text
shorter than the n-gram size is one n-gram of all its tokens; an eval item that short (`Probes`) is also
looked for whole inside every train text.

N-grams are hashed with MinHasher's shingling, literally and (with `numbers`) also with every number as
one token, so a copy whose numbers were changed still covers its original. That number-blind pass
holds out only texts whose prompt has at least `min_words` words: "Tính 10% của 180" and "Tính 15% của
500" read the same without their numbers, and a prompt that short is its numbers (`worded`); and in it
an n-gram counts only when most of its tokens are words, so two number tables never match by their
shape. An n-gram found in more than `max_document_frequency` documents is boilerplate, not leakage.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from functools import lru_cache
from pathlib import Path
from typing import NamedTuple

import numpy as np
import polars as pl

from curate.minhash import MinHasher, token_hash
from curate.normalize import Normalization

NGRAM = 13
MIN_OVERLAP = 0.5
MAX_DOCUMENT_FREQUENCY = 5
MIN_WORDS = 8
MIN_PROBE = 5  # an eval item this many tokens long (up to the n-gram size) is looked for whole
BLIND = Normalization(numbers=True)  # the number-blind pass's reading: every number the token NUMBER
NUMBER = "0"
_BLIND_TOKENS = MinHasher(num_perm=16, ngram=1, normalization=BLIND)  # `worded`'s tokens
DISTINCT = -1  # `shared`'s mark for a held text's own spans, in place of a train row


def hashers(ngram: int, numbers: bool) -> list[MinHasher]:
    """The literal n-gram hasher, and with `numbers` the one that reads every number as "0"."""
    literal = MinHasher(num_perm=16, ngram=ngram, normalization=Normalization())
    if not numbers:
        return [literal]
    return [literal, MinHasher(num_perm=16, ngram=ngram, normalization=BLIND)]


@dataclass(frozen=True)
class Grams:
    """The n-grams of some texts: each one's hash, owner (its text's row), text (its index in the texts
    given) and the tokens it covers, `start` to `end` (exclusive); and per text its token count and
    how many of its tokens no n-gram covers (`bare`: a number table's, in the number-blind pass)."""

    hashes: np.ndarray
    owner: np.ndarray
    text: np.ndarray
    start: np.ndarray
    end: np.ndarray
    tokens: np.ndarray
    bare: np.ndarray
    blind: bool  # read with every number as one token

    @property
    def counts(self) -> "Counts":
        return Counts(self.tokens, self.bare)

    def part(self, mask: np.ndarray | slice = slice(None)) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """(hashes, owner, start, end) of the n-grams `mask` selects."""
        return self.hashes[mask], self.owner[mask], self.start[mask], self.end[mask]

    def held(self, worded: np.ndarray | None) -> np.ndarray:
        """Which n-grams may stand for their text as the held-out side: in the number-blind pass only
        those of the texts `worded` marks (None: all)."""
        if not self.blind or worded is None:
            return np.ones(len(self.hashes), bool)
        return np.asarray(worded, bool)[self.text]


def text_grams(
    hasher: MinHasher, texts: list[str], owners: np.ndarray | None = None, tokens: "Tokens | None" = None
) -> Grams:
    """The n-grams of `texts` (owned by `owners`, default 0..n-1; `tokens`: the texts already tokenised),
    hashed as MinHasher hashes its shingles; in the number-blind pass only those whose tokens are mostly
    words (an n-gram of a number table says nothing once its numbers are blanked)."""
    tokens = tokens if tokens is not None else Tokens.of(hasher, texts)
    width = np.minimum(hasher.ngram, tokens.lengths)
    hashes, text, start = tokens.windows(width)
    end = start + width[text]
    blind = hasher.normalization.numbers
    if blind:
        numbers = tokens.numbers_before()
        first = tokens.offsets[:-1][text]
        keep = (numbers[first + end] - numbers[first + start]) * 2 < end - start  # more words than numbers
        hashes, text, start, end = hashes[keep], text[keep], start[keep], end[keep]
    owner = text if owners is None else np.asarray(owners, np.int64)[text]
    # the tokens some n-gram covers: each n-gram's up to the next one of its text (they are in order)
    last = np.ones(len(text), bool)
    last[:-1] = text[1:] != text[:-1]
    reach = np.where(last, end, np.minimum(end, np.roll(start, -1)))
    spanned = np.bincount(text, reach - start, minlength=len(texts)).astype(np.int64)
    bare = tokens.lengths - spanned
    return Grams(hashes, owner, text, start.astype(np.int32), end.astype(np.int32), tokens.lengths, bare, blind)


class Counts(NamedTuple):
    """Per held-out text, its token count and how many of them no n-gram covers (`Grams.bare`)."""

    tokens: np.ndarray
    bare: np.ndarray

    @staticmethod
    def joined(parts: list["Counts"]) -> "Counts":
        return Counts(*_joined(parts)) if parts else Counts(np.empty(0, np.int64), np.empty(0, np.int64))


_PRIME = 0x100000001B3  # MinHasher's: a window's hash folds its tokens' hashes, h * _PRIME + token
_NUMBER_HASH = np.uint64(token_hash(NUMBER))


@dataclass(frozen=True)
class Tokens:
    """Texts tokenised once: every token's hash (MinHasher's), laid end to end, each text's first token
    (`offsets`), and the prefix hashes that give any window's hash in two operations (numpy's uint64
    arithmetic wraps at 2**64, where _PRIME is invertible)."""

    values: np.ndarray
    offsets: np.ndarray
    prefix: np.ndarray  # prefix[k]: the hash of tokens 0..k-1 laid end to end
    powers: np.ndarray  # powers[k] = _PRIME ** k

    @classmethod
    def of(cls, hasher: MinHasher, texts: list[str]) -> "Tokens":
        values, offsets = _one_token(hasher).shingle_hashes64(texts)
        n = len(values)
        powers, inverse = np.ones(n + 1, np.uint64), np.ones(n + 1, np.uint64)
        powers[1:] = np.cumprod(np.full(n, _PRIME, np.uint64))
        inverse[1:] = np.cumprod(np.full(n, pow(_PRIME, -1, 2**64), np.uint64))
        prefix = np.zeros(n + 1, np.uint64)
        prefix[1:] = np.cumsum(values * inverse[:n]) * powers[:n]
        return cls(values, offsets, prefix, powers)

    @property
    def lengths(self) -> np.ndarray:
        return np.diff(self.offsets)

    def windows(self, width: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(hash, text, start) of every window of `width[text]` tokens inside a text (none of width 0)."""
        lengths = self.lengths
        counts = np.where(width > 0, lengths - width + 1, 0)
        text = np.repeat(np.arange(len(lengths), dtype=np.int64), counts)
        start = np.arange(len(text), dtype=np.int64) - np.concatenate([[0], np.cumsum(counts)])[text]
        return self.hash(self.offsets[:-1][text] + start, width[text]), text, start

    def hash(self, first: np.ndarray, width: np.ndarray | int) -> np.ndarray:
        """The hash of the `width` tokens from token `first` on (laid end to end)."""
        return self.prefix[first + width] - self.prefix[first] * self.powers[width]

    def numbers_before(self) -> np.ndarray:
        """How many number tokens come before each token (one more at the end)."""
        numbers = np.zeros(len(self.values) + 1, np.int64)
        np.cumsum(self.values == _NUMBER_HASH, out=numbers[1:])
        return numbers


def worded(texts: list[str], min_words: int) -> np.ndarray:
    """Which texts have at least `min_words` words (tokens that are not numbers): those whose number-
    blind n-grams may match as the held-out side. A shorter one's substance is its numbers."""
    tokens = Tokens.of(_BLIND_TOKENS, texts)
    numbers = tokens.numbers_before()
    return tokens.lengths - (numbers[tokens.offsets[1:]] - numbers[tokens.offsets[:-1]]) >= min_words


@dataclass(frozen=True)
class Probes:
    """The eval items shorter than the n-gram size (at least MIN_PROBE tokens; in the number-blind pass
    those it holds out), each looked for whole inside every train text: a text that short is one n-gram
    of all its tokens, which no n-gram of a longer text equals. Per probe: that n-gram's hash, its
    held-out index and its token count."""

    hashes: np.ndarray
    item: np.ndarray
    tokens: np.ndarray
    heads: np.ndarray  # every probe's first token

    @classmethod
    def of(cls, hasher: MinHasher, texts: list[str], worded: np.ndarray | None = None, first: int = 0) -> "Probes":
        """The probes among eval items `texts`, which are held-out texts `first`, `first` + 1, ..."""
        tokens = Tokens.of(hasher, texts)
        grams = text_grams(hasher, texts, tokens=tokens)
        length = grams.tokens[grams.text]
        short = grams.held(worded) & (length >= MIN_PROBE) & (length < hasher.ngram)  # a short text: one n-gram
        heads = tokens.values[tokens.offsets[:-1][grams.text[short]]]
        return cls(grams.hashes[short], grams.text[short] + first, length[short], np.unique(heads))

    def held(self, mask: np.ndarray | slice = slice(None)) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """(hashes, held index, start, end) of the probes `mask` selects, as held-out n-grams."""
        zero = np.zeros(len(self.hashes), np.int32)
        return self.hashes[mask], self.item[mask], zero[mask], self.tokens.astype(np.int32)[mask]

    def found(self, tokens: "Tokens", owners: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(hash, owner) of every window of the tokenised texts that is a probe (starting where one does)."""
        if not len(self.hashes):
            return np.empty(0, np.uint64), np.empty(0, np.int64)
        starts = np.flatnonzero(np.isin(tokens.values, self.heads))
        text = np.searchsorted(tokens.offsets, starts, side="right") - 1
        hashes, owner = [], []
        for width in np.unique(self.tokens):
            fits = starts + width <= tokens.offsets[text + 1]
            window = tokens.hash(starts[fits], width)
            mine = np.isin(window, self.hashes[self.tokens == width])
            hashes.append(window[mine])
            owner.append(np.asarray(owners, np.int64)[text[fits][mine]])
        return np.concatenate(hashes), np.concatenate(owner)


@lru_cache(maxsize=8)
def _one_token(hasher: MinHasher) -> MinHasher:
    """The hasher whose shingles are single tokens: their hashes, from one tokenisation."""
    return replace(hasher, ngram=1)


def _held(hashes: np.ndarray, owner: np.ndarray, start: np.ndarray, end: np.ndarray) -> pl.DataFrame:
    schema = {"h": pl.UInt64, "held": pl.Int64, "start": pl.Int32, "end": pl.Int32}
    return pl.DataFrame({"h": hashes, "held": owner, "start": start, "end": end}, schema=schema)


def _train(hashes: np.ndarray, owner: np.ndarray) -> pl.DataFrame:
    return pl.DataFrame({"h": hashes, "train": owner}, schema={"h": pl.UInt64, "train": pl.Int64})


def overlaps(
    hasher: MinHasher,
    held_texts: list[str],
    train_texts: list[str],
    train_idx: np.ndarray,
    limit: int,
    held_worded: np.ndarray | None = None,
    probes: Probes | None = None,
) -> tuple[pl.DataFrame, "Counts"]:
    """The held-out tokens each train row shares n-grams with (`shared`: train row, held index, start,
    end), leaving out n-grams in more than `limit` documents, and in the number-blind pass held texts
    that `held_worded` does not mark, with the `probes` among the held texts found whole; and the held
    texts' `Counts`."""
    held = text_grams(hasher, held_texts)
    tokens = Tokens.of(hasher, train_texts)
    train = text_grams(hasher, train_texts, train_idx, tokens)
    mine = [held.part(held.held(held_worded)), *([probes.held()] if probes is not None else [])]
    theirs = [(train.hashes, train.owner), *([probes.found(tokens, train_idx)] if probes is not None else [])]
    return shared(_held(*_joined(mine)), _train(*_joined(theirs)), limit), held.counts


def _joined(parts: list[tuple[np.ndarray, ...]]) -> tuple[np.ndarray, ...]:
    """Parallel arrays from several parts, each part's arrays after the last's."""
    return tuple(np.concatenate(arrays) for arrays in zip(*parts))


def shared(held: pl.DataFrame, train: pl.DataFrame, limit: int) -> pl.DataFrame:
    """(train, held, start, end): the span of every held-out n-gram each train text also has, leaving
    out n-grams in more than `limit` documents; and each held text's spans of the n-grams not left out
    (train DISTINCT), for `covering`."""
    # Only train n-grams also found held out can leak or count towards a held-out n-gram's document
    # frequency: filter before de-duplicating the (much larger) train table.
    train = train.join(held.select("h").unique(), on="h", how="semi").unique()
    spans = ["train", "held", "start", "end"]
    if not limit:
        return train.join(held, on="h").select(spans)
    docs = pl.concat([train.select("h"), held.select("h", "held").unique().select("h")])
    frequent = docs.group_by("h").len().filter(pl.col("len") > limit).select("h")
    distinct = held.join(frequent, on="h", how="anti")
    own = distinct.select(pl.lit(DISTINCT, pl.Int64).alias("train"), *spans[1:])
    return pl.concat([train.join(distinct, on="h").select(spans), own])


def runs(spans: pl.DataFrame) -> pl.DataFrame:
    """The spans of each (train, held) pair merged where they overlap or touch: disjoint runs of tokens.
    Merging runs again with more spans gives the runs of all the spans (partitions merge as they come)."""
    spans = spans.sort("train", "held", "start")
    train, held = spans["train"].to_numpy(), spans["held"].to_numpy()
    start, end = spans["start"].to_numpy().astype(np.int64), spans["end"].to_numpy().astype(np.int64)
    pair = np.ones(len(start), bool)
    pair[1:] = (train[1:] != train[:-1]) | (held[1:] != held[:-1])
    # the furthest token covered so far in the pair: a running maximum, the pair's index above every end
    rank = (np.cumsum(pair) - 1) << 32
    reach = np.maximum.accumulate(rank + end) - rank
    first = pair.copy()
    first[1:] |= start[1:] > reach[:-1]
    at = np.flatnonzero(first)
    ends = np.maximum.reduceat(end, at) if len(at) else end[:0]
    return pl.DataFrame(
        {"train": train[at], "held": held[at], "start": start[at], "end": ends},
        schema={"train": pl.Int64, "held": pl.Int64, "start": pl.Int32, "end": pl.Int32},
    )


def covering(spans: pl.DataFrame, held: Counts, min_overlap: float) -> pl.DataFrame:
    """(train, held, coverage) of the pairs whose shared n-grams cover at least `min_overlap` of the held
    text's tokens, not counting those only boilerplate n-grams cover (with a document-frequency cut,
    `shared` gives each held text's distinct spans: the tokens counted are those plus the bare ones). An
    exact copy of a templated record is covered whole: the template is no more evidence of a leak than
    it is without the copy, and no less part of the copy."""
    covered = runs(spans).group_by("train", "held").agg((pl.col("end") - pl.col("start")).sum().alias("covered"))
    own = covered.filter(pl.col("train") == DISTINCT)
    counted = held.tokens.copy()
    mine = own["held"].to_numpy()
    counted[mine] = held.bare[mine] + own["covered"].to_numpy()
    pairs = covered.filter(pl.col("train") >= 0)
    share = pairs["covered"].to_numpy() / np.maximum(counted[pairs["held"].to_numpy()], 1)
    found = pairs.select(pl.col("train").cast(pl.Int64), pl.col("held").cast(pl.Int64))
    return found.with_columns(pl.Series("coverage", share, dtype=pl.Float64)).filter(pl.col("coverage") >= min_overlap)


def leaking_pairs(
    train_texts: list[str],
    held_texts: list[str],
    ngram: int = NGRAM,
    min_overlap: float = MIN_OVERLAP,
    max_document_frequency: int = MAX_DOCUMENT_FREQUENCY,
    numbers: bool = True,
    min_words: int = MIN_WORDS,
    held_prompts: list[str] | None = None,
) -> int:
    """How many (train, held) text pairs leak, literally or with numbers read as one token. The number-blind
    comparison holds out the texts whose prompt (`held_prompts`: a chat's user turns, a document's text)
    has `min_words` words, as the split stage does; without prompts it holds out none, so the count never
    exceeds what the split stage would find."""
    if not train_texts or not held_texts:
        return 0
    train_idx = np.arange(len(train_texts))
    held_worded = worded(held_prompts, min_words) if held_prompts is not None else np.zeros(len(held_texts), bool)
    found = []
    for hasher in hashers(ngram, numbers):
        spans, counts = overlaps(hasher, held_texts, train_texts, train_idx, max_document_frequency, held_worded)
        found.append(covering(spans, counts, min_overlap).select("train", "held"))
    return pl.concat(found).unique().height


def gram_chunk(
    hasher: MinHasher,
    probes: Probes | None,
    item: tuple[str, list[str], np.ndarray, np.ndarray | None],
    partitions: int,
):
    """A pool task: one chunk's n-grams (a held chunk's: those `overlaps` holds out, and its probes; a
    train chunk's: with the windows that are probes), split by hash into the shuffle's partitions; and
    its texts' `Counts`."""
    side, texts, owners, held_worded = item
    tokens = Tokens.of(hasher, texts)
    grams = text_grams(hasher, texts, owners, tokens)
    if side == "held":
        parts = [grams.part(grams.held(held_worded))]
        if probes is not None:
            parts.append(probes.held(np.isin(probes.item, owners)))
    else:
        parts = [(grams.hashes, grams.owner), *([probes.found(tokens, owners)] if probes is not None else [])]
    arrays = _joined(parts)
    part = (arrays[0] % np.uint64(partitions)).astype(np.int64)
    return (side, grams.counts), [(side, *(a[part == k] for a in arrays)) for k in range(partitions)]


def pair_partition(limit: int, *parts: tuple) -> pl.DataFrame:
    """A reducer: the shared spans of the n-grams in one partition."""

    def side(name: str, types: tuple) -> tuple[np.ndarray, ...]:
        mine = [p[1:] for p in parts if p[0] == name]
        return _joined(mine) if mine else tuple(np.empty(0, t) for t in types)

    held = side("held", (np.uint64, np.int64, np.int32, np.int32))
    return shared(_held(*held), _train(*side("train", (np.uint64, np.int64))), limit)


PARTITION_ROWS = 10_000  # texts whose n-grams one on-disk partition holds, about (memory, not results)
HASH_TEXTS = 4096  # texts hashed at once when adding (memory, not results)
MERGE_ROWS = 1_000_000  # partition spans collected before they are first merged (memory, not results)


class _Spans:
    """Shared spans gathered over partitions. A leaked text shares n-grams in every partition, so the
    per-partition frames are merged into runs as they come (whenever the unmerged ones outgrow the
    merged): a pair is held as a few runs of tokens, not one span per n-gram."""

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
        return runs(pl.concat(frames, how="vertical_relaxed"))


class GramStore:
    """The hashed n-grams of many texts, partitioned by hash into files under `folder`, so that the
    spans two sets of texts share are found one partition at a time: memory is bounded by a
    partition, not by the corpus. Texts are added batch by batch (`add`) and known by their row
    number, with their windows that are `probes` (kept apart: they are only ever the train side);
    `pairs` gives the runs of what `overlaps` gives for the same texts in memory (an n-gram lives in
    one partition, so its document frequency and the pairs it connects are all found there)."""

    def __init__(self, folder: Path, hasher: MinHasher, rows: int, probes: Probes | None = None):
        self.folder, self.hasher, self.probes = folder, hasher, probes
        self.partitions = max(1, -(-rows // PARTITION_ROWS))
        folder.mkdir(parents=True, exist_ok=True)
        self.counts: list[Counts] = []  # per batch added
        self.rows = 0

    def add(self, texts: list[str]) -> None:
        """Hash `texts` (the next rows), HASH_TEXTS at a time: hashing holds several times the text."""
        for start in range(0, len(texts), HASH_TEXTS):
            self._add(texts[start : start + HASH_TEXTS])

    def _add(self, texts: list[str]) -> None:
        owners = np.arange(self.rows, self.rows + len(texts), dtype=np.int64)
        tokens = Tokens.of(self.hasher, texts)
        grams = text_grams(self.hasher, texts, owners, tokens)
        self._write(("h", "r", "s"), (grams.hashes, grams.owner, grams.start))
        if self.probes is not None:
            self._write(("ph", "pr"), self.probes.found(tokens, owners))
        self.counts.append(grams.counts)
        self.rows += len(texts)

    def _write(self, suffixes: tuple[str, ...], arrays: tuple[np.ndarray, ...]) -> None:
        """Append parallel arrays (the first: hashes) to their partitions' files."""
        # grouped by partition with one stable sort (a mask per partition costs partitions x n-grams)
        order = np.argsort(arrays[0] % np.uint64(self.partitions), kind="stable")
        arrays = tuple(a[order] for a in arrays)
        bounds = np.searchsorted(arrays[0] % np.uint64(self.partitions), np.arange(self.partitions + 1))
        for k in np.flatnonzero(np.diff(bounds)):
            for suffix, values in zip(suffixes, arrays):
                with open(self.folder / f"{k}.{suffix}", "ab") as fh:
                    fh.write(values[bounds[k] : bounds[k + 1]].tobytes())

    def _read(self, k: int, suffixes: tuple[str, ...], types: tuple) -> tuple[np.ndarray, ...]:
        paths = [self.folder / f"{k}.{suffix}" for suffix in suffixes]
        if not paths[0].is_file():
            return tuple(np.empty(0, t) for t in types)
        return tuple(np.fromfile(path, t) for path, t in zip(paths, types))

    def pairs(
        self,
        held_rows: np.ndarray,
        train_rows: np.ndarray,
        extra: list[str],
        limit: int,
        held_worded: np.ndarray | None = None,
        probes: Probes | None = None,
    ) -> tuple[pl.DataFrame, Counts]:
        """`overlaps` with held = the texts of `held_rows` (in that order) then the `extra` texts (an
        eval set's, hashed here), and train = the texts of `train_rows`, known by row: the shared spans
        (as runs), and the held texts' `Counts`. `held_worded` and `probes` are `overlaps`' (the
        probes among the extras: those the store was built with)."""
        held_worded = np.ones(len(held_rows) + len(extra), bool) if held_worded is None else held_worded
        extras = text_grams(self.hasher, extra, np.arange(len(extra)) + len(held_rows))
        extra_held = [extras.part(extras.held(held_worded[len(held_rows) :]))]
        extra_held = _joined(extra_held + ([probes.held()] if probes is not None else []))
        extra_part = (extra_held[0] % np.uint64(self.partitions)).astype(np.int64)
        counts = Counts.joined(self.counts)
        tokens = counts.tokens
        stored = held_worded[: len(held_rows)] if self.hasher.normalization.numbers else np.ones(len(held_rows), bool)
        held_at = np.full(self.rows, -1, np.int64)
        held_at[held_rows[stored]] = np.flatnonzero(stored)
        is_train = np.zeros(self.rows, bool)
        is_train[train_rows] = True
        spans = _Spans()
        for k in range(self.partitions):
            hashes, rows, starts = self._read(k, ("h", "r", "s"), (np.uint64, np.int64, np.int32))
            probed, probe_rows = self._read(k, ("ph", "pr"), (np.uint64, np.int64))
            held, train, probe_train = held_at[rows] >= 0, is_train[rows], is_train[probe_rows]
            ends = starts[held] + np.minimum(self.hasher.ngram, tokens[rows[held]]).astype(np.int32)
            mine = (hashes[held], held_at[rows[held]], starts[held], ends)
            theirs = [(hashes[train], rows[train]), (probed[probe_train], probe_rows[probe_train])]
            frame = _held(*_joined([mine, tuple(a[extra_part == k] for a in extra_held)]))
            spans.add(shared(frame, _train(*_joined(theirs)), limit))
        return spans.total(), Counts.joined([Counts(tokens[held_rows], counts.bare[held_rows]), extras.counts])
